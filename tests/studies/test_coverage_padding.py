"""The coverage study's speed options: one program for every n, the PRNG choice.

* ``config.pad_sample_sizes`` (default True): every replicate simulates the largest n
  and gives the rows beyond its own n weight 0. The unpadded replicate (one program
  per n) is the reference: the same datasets, estimates equal to rounding, the same
  covered flags — and the study compiles its replicate program once, not once per n.
* ``config.prng_impl="rbg"``: other random numbers (XLA's RngBitGenerator), checked
  by its coverage against the binomial band (slow).
"""

import io
import logging
from contextlib import redirect_stdout

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from configs import coverage as coverage_config
from experiments import coverage
from hetrlhf.data import simulate as sim


def _replicates(design, sizes, keys, padded):
    """Replicate outputs per n, padded (one function, n traced) or not."""
    options = {"alpha": 0.05, "information": "observed", "method": "newton"}
    outs = {}
    if padded:
        fn = coverage.make_replicate(design, max(sizes), padded=True, **options)
        run = jax.jit(jax.vmap(fn, in_axes=(0, None)))
        for n in sizes:
            outs[n] = run(keys, jnp.asarray(n, jnp.int32))
    else:
        for n in sizes:
            fn = coverage.make_replicate(design, n, **options)
            outs[n] = jax.jit(jax.vmap(fn))(keys)
    return outs


@pytest.mark.parametrize("design_name", ["default", "heavy"])
def test_padded_replicates_equal_unpadded(design_name):
    design = sim.get_design(design_name)
    sizes = (80, 150, 230)
    keys = jax.random.split(jax.random.key(7), 24)
    padded = _replicates(design, sizes, keys, padded=True)
    plain = _replicates(design, sizes, keys, padded=False)
    for n in sizes:
        a, b = padded[n], plain[n]
        np.testing.assert_array_equal(a.converged, b.converged)
        assert bool(np.all(np.asarray(b.converged)))  # the comparison is not vacuous
        np.testing.assert_allclose(a.estimate, b.estimate, rtol=0, atol=1e-10)
        np.testing.assert_allclose(a.se, b.se, rtol=1e-10, atol=0)
        np.testing.assert_allclose(a.length, b.length, rtol=1e-10, atol=0)
        np.testing.assert_array_equal(a.covered, b.covered)
        np.testing.assert_array_equal(a.num_steps, b.num_steps)
    # The sizes really differ: a larger n gives narrower intervals.
    widths = [float(np.mean(plain[n].length)) for n in sizes]
    assert widths[0] > widths[1] > widths[2]


def test_padded_data_are_the_unpadded_draws():
    """The first n rows of a draw of n_max comparisons are the draw of n: bit for bit
    in the default design; to rounding where the features go through a matrix
    product (the AR(1) design's Cholesky factor)."""
    key = jax.random.key(3)
    for name, rtol in (("default", 0.0), ("correlated", 1e-14)):
        design = sim.get_design(name)
        small, large = sim.simulate(key, design, 70), sim.simulate(key, design, 200)
        for field in ("phi0", "phi1", "psi", "psi0", "y"):
            np.testing.assert_allclose(
                getattr(small, field),
                getattr(large, field)[:70],
                rtol=rtol,
                atol=0,
                err_msg=f"{name} {field}",
            )


def _study_compiles(tmp_path, caplog, pad):
    config = coverage_config.get_config()
    config.sample_sizes = (40, 60, 90)
    config.num_replicates = 4
    config.chunk_size = 4
    config.vmap_size = 2
    config.checkpoint = False
    config.progress = False
    config.shard = False
    config.pad_sample_sizes = pad
    config.results_dir = str(tmp_path / f"pad{pad}")
    caplog.clear()
    with (
        jax.log_compiles(True),
        caplog.at_level(logging.WARNING, logger="jax"),
        redirect_stdout(io.StringIO()),
    ):
        payload = coverage.run(config)
    compiles = [
        r.getMessage()
        for r in caplog.records
        if "Finished XLA compilation of jit(batch)" in r.getMessage()
    ]
    return len(compiles), payload


def test_three_sample_sizes_compile_one_program(tmp_path, caplog):
    """The study with padding compiles its replicate program once for three sizes
    (without: three times), with the unpadded study's covered flags and estimates."""
    count_padded, padded = _study_compiles(tmp_path, caplog, True)
    count_plain, plain = _study_compiles(tmp_path, caplog, False)
    assert count_padded == 1
    assert count_plain == 3  # the counter sees every compilation
    for n in ("40", "60", "90"):
        a, b = padded["replicates"][n], plain["replicates"][n]
        np.testing.assert_array_equal(a["covered"], b["covered"])
        np.testing.assert_allclose(a["estimate"], b["estimate"], rtol=0, atol=1e-10)


def test_bad_speed_fields_raise(tmp_path):
    config = coverage_config.get_config()
    config.results_dir = str(tmp_path)
    config.prng_impl = "mersenne"
    with pytest.raises(ValueError, match="prng_impl"):
        coverage.run(config)


def test_rbg_coverage_inside_binomial_band(tmp_path):
    """XLA's RngBitGenerator draws, 400 replicates at n = 200 and 600: at n = 600 every
    coordinate's coverage lies inside the binomial band around 0.95 (as the threefry
    study's, tests/studies/test_experiments_coverage.py); at both n it agrees with the threefry study's
    coverage of the same design within the two-sample band (at n = 200 the Wald
    intervals under-cover a little whatever the random numbers)."""

    def study(impl):
        config = coverage_config.get_config()
        config.sample_sizes = (200, 600)
        config.num_replicates = 400
        config.chunk_size = 200
        config.prng_impl = impl
        config.results_dir = str(tmp_path / impl)
        config.progress = False
        config.checkpoint = False
        config.seed = 5
        with redirect_stdout(io.StringIO()):
            return coverage.run(config)

    rbg, threefry = study("rbg"), study("threefry")
    level = 0.01 / 32  # two-sided 1%, Bonferroni over 2 sizes × 8 coordinates
    for n in ("200", "600"):
        s, t = rbg["summary"][n], threefry["summary"][n]
        assert s["num_not_converged"] <= 2
        r = s["num_converged"]
        cov, ref = np.array(s["coverage"]), np.array(t["coverage"])
        if n == "600":
            lo = stats.binom.ppf(level, r, 0.95) / r
            hi = stats.binom.isf(level, r, 0.95) / r
            assert np.all((cov >= lo) & (cov <= hi)), (n, lo, hi, cov)
        pooled = (cov + ref) / 2
        se = np.sqrt(2 * pooled * (1 - pooled) / r)
        z = stats.norm.isf(level)
        assert np.all(np.abs(cov - ref) <= z * se), (n, cov, ref)
        est = np.asarray(rbg["replicates"][n]["estimate"])
        # Distinct replicates (rbg under vmap draws a batch from its first key) ...
        assert len(np.unique(est[:, 0])) == len(est)
        # ... and another stream than threefry's.
        other = np.asarray(threefry["replicates"][n]["estimate"])
        assert not np.allclose(est, other)
