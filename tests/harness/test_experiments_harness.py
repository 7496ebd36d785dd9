"""Tests of the shared study plumbing in experiments/__init__.py."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import experiments
from tests import fresh_interpreter


def _config(tmp_path, **fields):
    config = ml_collections.ConfigDict(
        {
            "preset": "default",
            "precision": "float64",
            "results_dir": str(tmp_path),
            "chunk_size": 3,
            "vmap_size": 2,
            "checkpoint": True,
            "overwrite": False,
            "progress": False,
            "shard": True,
        }
    )
    config.update(fields)
    return config


def test_replicates_with_a_shared_argument_compile_once_and_resume(tmp_path):
    config = _config(tmp_path)
    traces = []

    def replicate(key, scale):
        traces.append(1)  # runs when traced only
        return {"x": scale * jax.random.normal(key, (2,)), "pos": scale > 0}

    keys = jax.random.split(jax.random.key(1), 7)
    normal = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (2,)))(keys))
    traced = []
    for scale in (2.0, -1.0):
        out = experiments.replicates(
            config, replicate, keys, jnp.asarray(scale), part=f"scale{scale}"
        )
        assert isinstance(out["x"], np.ndarray) and out["x"].shape == (7, 2)
        np.testing.assert_allclose(out["x"], scale * normal, rtol=1e-14)
        assert out["pos"].all() == (scale > 0)
        traced.append(len(traces))
    assert traced[0] > 0 and traced[1] == traced[0]  # the second value: no new trace
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "scale-1.0",
        "scale2.0",
    ]
    # A rerun restores every chunk (the keys and fingerprint match).
    again = experiments.replicates(
        config, replicate, keys, jnp.asarray(-1.0), part="scale-1.0"
    )
    np.testing.assert_array_equal(again["x"], out["x"])
    with pytest.raises(ValueError, match="fingerprint"):
        experiments.replicates(
            _config(tmp_path, vmap_size=1), replicate, keys, 1.0, part="scale2.0"
        )


def test_replicates_compile_with_the_studies_cpu_options(tmp_path, monkeypatch):
    assert jax.default_backend() == "cpu"
    assert experiments.compiler_options() == {"xla_backend_optimization_level": 2}
    config = _config(tmp_path, checkpoint=False)
    keys = jax.random.split(jax.random.key(3), 5)

    def replicate(key):
        return {"x": jax.random.normal(key, (2,))}

    # A fresh function each time: a compiled program is never reused across arms.
    out = experiments.replicates(config, lambda k: replicate(k), keys, part="o2")
    np.testing.assert_array_equal(out["x"], jax.vmap(replicate)(keys)["x"])
    monkeypatch.setattr(
        experiments, "STUDY_CPU_COMPILER_OPTIONS", {"xla_hetrlhf_no_such_option": 1}
    )
    with pytest.raises(Exception, match="xla_hetrlhf_no_such_option"):
        experiments.replicates(config, lambda k: replicate(k), keys, part="bad")
    defaults = experiments.replicates(  # XLA's defaults: the option is not passed
        config, lambda k: replicate(k), keys, part="defaults", xla_defaults=True
    )
    np.testing.assert_array_equal(defaults["x"], out["x"])


def test_prepare_checks_precision_and_preset(tmp_path):
    config = _config(tmp_path, num_replicates=10)
    presets = {"full": {"num_replicates": 1000}}
    assert experiments.prepare(config, presets).num_replicates == 10
    config.preset = "full"
    assert experiments.prepare(config, presets).num_replicates == 1000
    with pytest.raises(ValueError, match="preset"):
        experiments.prepare(_config(tmp_path, preset="paper"), presets)
    with pytest.raises(ValueError, match="jax_enable_x64 is True"):
        experiments.prepare(_config(tmp_path, precision="float32"), presets)
    with pytest.raises(ValueError, match="precision must be one of"):
        experiments.prepare(_config(tmp_path, precision="bfloat16"), presets)


def test_write_records_config_precision_and_devices(tmp_path):
    config = _config(tmp_path)
    paths = experiments.write(config, {"x": np.arange(2.0)}, "| a |\n|---|")
    with open(paths["json"]) as f:
        stored = json.load(f)
    assert stored["precision"] == "float64" and stored["x"] == [0.0, 1.0]
    assert stored["config"]["chunk_size"] == 3
    assert stored["devices"] == [str(d) for d in jax.devices()]
    assert experiments.fingerprint(config, part="a") == {
        "preset": "default",
        "precision": "float64",
        "chunk_size": 3,
        "vmap_size": 2,
        "part": "a",
    }


_FLAGS_PROBE = """
import os
import experiments, jax, jax.numpy as jnp
print(os.environ["XLA_FLAGS"])
print(float(jax.jit(lambda x: jnp.exp(x).sum())(jnp.arange(3.0))))
"""


@pytest.mark.parametrize(
    "user_flags",
    ["", "--xla_cpu_use_fusion_emitters=true --xla_cpu_experimental_ynn_fusion_type="],
)
def test_study_xla_flags_are_added_unless_the_user_set_them(user_flags):
    # A fresh interpreter: XLA reads XLA_FLAGS once, when its backend starts, and
    # aborts on a flag it does not know (e.g. one a new jaxlib renamed).
    out = fresh_interpreter.run(_FLAGS_PROBE, user_flags).splitlines()
    flags = out[0].split()
    assert abs(float(out[1]) - float(np.exp(np.arange(3.0)).sum())) < 1e-5
    for flag in experiments.STUDY_XLA_FLAGS:
        name = flag.split("=")[0]
        assert sum(f.split("=")[0] == name for f in flags) == 1, flags
    expected = "true" if user_flags else "false"
    assert f"--xla_cpu_use_fusion_emitters={expected}" in flags
