"""The studies' ``--compilation_cache DIR|none`` (experiments.enable_compilation_cache)."""

import jax
import jax.numpy as jnp
import pytest
from jax._src import compilation_cache

import experiments


@pytest.fixture
def restore_cache_config():
    """Switches JAX's persistent cache off again after the test."""
    yield
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    compilation_cache.reset_cache()


def test_none_leaves_the_cache_off(restore_cache_config):
    assert experiments.enable_compilation_cache("none") is None
    assert experiments.enable_compilation_cache("NONE") is None
    assert jax.config.jax_compilation_cache_dir is None


def test_a_folder_receives_the_compiled_programs(tmp_path, restore_cache_config):
    folder = tmp_path / "cache"
    assert experiments.enable_compilation_cache(str(folder)) == str(folder)
    assert jax.config.jax_compilation_cache_dir == str(folder)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
    jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)(jnp.arange(7.0)).block_until_ready()
    assert any(folder.iterdir())  # a program that compiled in milliseconds is kept


def test_default_folder_from_the_environment(
    tmp_path, monkeypatch, restore_cache_config
):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "env"))
    assert experiments.enable_compilation_cache(None) == str(tmp_path / "env")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    monkeypatch.setenv("HETRLHF_CACHE_DIR", str(tmp_path / "hetrlhf"))
    assert experiments.enable_compilation_cache(None) == str(
        tmp_path / "hetrlhf" / "jax"
    )
