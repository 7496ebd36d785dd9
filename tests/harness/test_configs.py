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


def test_field_checks_with_dotted_names():
    import ml_collections

    import configs

    config = ml_collections.ConfigDict(
        {"lr": 0.5, "order": "jacobi", "alpha": 0.05, "sub": {"num": 3, "tol": 1e-4}}
    )
    configs.check_int_fields(config, ("sub.num",), minimum=2)
    configs.check_positive(config, ("lr", "sub.tol"))
    configs.check_choice(config, "order", ("gauss_seidel", "jacobi"))
    configs.check_alpha(config)
    config.sub.num = 1
    with pytest.raises(
        ValueError, match=r"config\.sub\.num must be an int >= 2, got 1"
    ):
        configs.check_int_fields(config, ("sub.num",), minimum=2)
    config.sub.tol = 0.0
    with pytest.raises(ValueError, match=r"config\.sub\.tol must be > 0, got 0\.0"):
        configs.check_positive(config, ("lr", "sub.tol"))
    config.order = "random"
    with pytest.raises(ValueError, match=r"config\.order must be one of"):
        configs.check_choice(config, "order", ("gauss_seidel", "jacobi"))
    for bad in (0.0, 1.0):
        config.alpha = bad
        with pytest.raises(ValueError, match=r"config\.alpha must lie in \(0, 1\)"):
            configs.check_alpha(config)
