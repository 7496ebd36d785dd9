"""Tests of the shared config checks (configs/__init__.py) through the studies."""

import pytest

from configs import convergence as convergence_config
from configs import coverage as coverage_config
from experiments import convergence, coverage


@pytest.mark.parametrize(
    ("module", "check"),
    [
        (coverage_config, coverage.check_config),
        (convergence_config, convergence.check_config),
    ],
)
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sample_sizes", (), "sample_sizes must be a non-empty tuple"),
        ("sample_sizes", (200, 1), "sample_sizes must be a non-empty tuple"),
        ("sample_sizes", (200, True), "sample_sizes must be a non-empty tuple"),
        ("sample_sizes", (200, 200), "sample_sizes has duplicates"),
        ("num_replicates", 0, "num_replicates must be an int >= 1"),
        ("chunk_size", 0, "chunk_size must be an int >= 1"),
        ("vmap_size", -1, "vmap_size must be an int >= 0"),
    ],
)
def test_bad_fields_are_named(module, check, field, value, message):
    config = module.get_config()
    check(config)  # the shipped config is valid
    config[field] = value
    with pytest.raises(ValueError, match=message):
        check(config)
