"""Tests of the coverage study (experiments/coverage.py) and of the simulator's truth.

The study runs through its real command line in child processes that share a JAX
persistent compilation cache, so the program is compiled once for the three runs:
uninterrupted, killed midway (SIGKILL inside a chunk), and resumed.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import warnings

import jax
import numpy as np
import pytest
from scipy import stats

from configs import coverage as coverage_config
from experiments import coverage
from hetrlhf import checkpoint as ck
from hetrlhf.data import simulate as sim

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository (tests/<part>/)

TINY = [
    "--config.sample_sizes=(120,)",
    "--config.num_replicates=14",  # 4 chunks of 4, the last padded
    "--config.chunk_size=4",
    "--config.vmap_size=2",  # lax.map over 2 vmapped batches per chunk
    "--config.progress=False",
    "--config.shard=False",  # the kill counter below counts un-sharded chunk calls
    "--config.seed=3",
]

CHILD_SRC = """
import os
import signal

import jax

from hetrlhf import checkpoint, parallel

kill_at = int(os.environ.get("KILL_AT_CALL", "0"))
log = os.environ["CHUNK_LOG"]
_run_chunked = checkpoint.run_chunked


def run_chunked(fn, keys, compiler_options=None, **kwargs):
    # The program run_chunked would build (no mesh: shard=False; its options on the
    # outermost jit), called by a counter that runs eagerly once per chunk.
    program = parallel.top_level(fn, compiler_options)
    calls = [0]

    def counting(k, *shared):
        if isinstance(k, jax.core.Tracer):  # shape inference, not a chunk
            return fn(k, *shared)
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup: as a killed job
        with open(log, "a") as f:
            f.write("chunk\\n")
        return program(k, *shared)

    return _run_chunked(counting, keys, **kwargs)


checkpoint.run_chunked = run_chunked
import experiments  # noqa: E402
from experiments import coverage  # noqa: E402

experiments.launch(coverage.run, "configs/coverage.py")
"""


def _child(tmp, results_dir, kill_at=0):
    script = tmp / "child.py"
    script.write_text(textwrap.dedent(CHILD_SRC))
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        KILL_AT_CALL=str(kill_at),
        CHUNK_LOG=str(tmp / "chunks.log"),
        PYTHONPATH=str(ROOT),
        JAX_COMPILATION_CACHE_DIR=str(tmp / "jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )
    env.pop("XLA_FLAGS", None)
    cmd = [sys.executable, str(script), "--config", "configs/coverage.py", *TINY]
    cmd.append(f"--config.results_dir={results_dir}")
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(uninterrupted dir, its stdout, resumed dir, chunk counts) of the tiny study."""
    tmp = tmp_path_factory.mktemp("coverage")
    full = _child(tmp, tmp / "full")
    assert full.returncode == 0, full.stderr[-3000:]
    log = tmp / "chunks.log"
    log.write_text("")
    killed = _child(tmp, tmp / "resumed", kill_at=3)
    assert killed.returncode == -9, killed.stderr[-3000:]
    count_killed = log.read_text().count("chunk")
    log.write_text("")
    resumed = _child(tmp, tmp / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    count_resumed = log.read_text().count("chunk")
    return tmp / "full", full.stdout, tmp / "resumed", (count_killed, count_resumed)


def test_smoke_files_and_sane_numbers(runs):
    full, stdout, _, _ = runs
    for name in ("results.json", "results.md", "coverage.png"):
        assert (full / name).stat().st_size > 0, name
    assert "## Coverage of 95% Wald intervals" in stdout
    assert "| θ1 |" in stdout and "| γ3 |" in stdout
    payload = json.loads((full / "results.json").read_text())
    design = sim.get_design("default")
    np.testing.assert_allclose(payload["truth"], [*design.theta, *design.gamma])
    s = payload["summary"]["120"]
    assert s["num_replicates"] == 14
    assert s["num_converged"] + s["num_not_converged"] == 14
    assert s["num_not_converged"] <= 2  # Newton from the homogeneous start, n = 120
    cov = np.array(s["coverage"])
    assert cov.shape == (8,) and np.all((cov >= 0) & (cov <= 1))
    assert np.mean(cov) > 0.7  # 14 replicates: only gross failures are detectable
    np.testing.assert_allclose(
        s["mc_se"], np.sqrt(cov * (1 - cov) / s["num_converged"]), rtol=1e-12
    )
    reps = payload["replicates"]["120"]
    conv = np.array(reps["converged"], bool)
    covered = np.array(reps["covered"], bool)
    np.testing.assert_allclose(cov, covered[conv].mean(0))
    # Interval length = 2·z_{0.975}·se (independent quantile: scipy).
    length, se = np.array(reps["length"]), np.array(reps["se"])
    np.testing.assert_allclose(length, 2 * stats.norm.ppf(0.975) * se, rtol=1e-10)
    # se at n = 120 is of order 1/sqrt(n) (a few tenths), never 0 or huge.
    assert np.all((se[conv] > 0.05) & (se[conv] < 3.0))
    np.testing.assert_allclose(s["mean_length"], length[conv].mean(0))
    # Theorem 2: per coordinate, KS of z = (τ̂ − τ*)/se against N(0, 1), recomputed
    # here with scipy from the stored replicates.
    assert (full / "zscores_qq.png").stat().st_size > 0
    assert "## Theorem 2" in stdout
    est = np.array(reps["estimate"])[conv]
    z = (est - np.array(payload["truth"])) / se[conv]
    for j, name in enumerate(payload["coordinates"]):
        ref = stats.kstest(z[:, j], "norm")
        assert s["ks_p"][j] == pytest.approx(ref.pvalue, rel=1e-10)
        assert s["ks_stat"][j] == pytest.approx(ref.statistic, rel=1e-10)
        assert payload["theorem2"]["120"][name]["ks_p"] == s["ks_p"][j]
        assert s["z_sd"][j] == pytest.approx(z[:, j].std(ddof=1), rel=1e-10)


def test_killed_study_resumes_to_the_same_json(runs):
    full, _, resumed, (count_killed, count_resumed) = runs
    assert count_killed == 2  # chunks 0 and 1 finished; killed inside chunk 2
    assert count_resumed == 2  # only chunks 2 and 3 recomputed
    assert ck.latest_step(resumed / "checkpoints" / "n120") == 3
    a = json.loads((full / "results.json").read_text())
    b = json.loads((resumed / "results.json").read_text())
    assert a["config"].pop("results_dir") != b["config"].pop("results_dir")
    assert a == b  # bit-identical numbers


def test_bad_config_fields_raise(tmp_path):
    base = coverage_config.get_config()
    base.results_dir = str(tmp_path)
    for field, value, match in [
        ("num_replicates", 0, "num_replicates"),
        ("chunk_size", 0, "chunk_size"),
        ("vmap_size", -1, "vmap_size"),
        ("alpha", 1.5, "alpha"),
        ("information", "fisher", "information"),
        ("fit_method", "alternating", "fit_method"),
        ("sample_sizes", (), "sample_sizes"),
        ("sample_sizes", (100, 100), "duplicates"),
        ("preset", "huge", "preset"),
    ]:
        config = coverage_config.get_config()
        config.results_dir = str(tmp_path)
        config[field] = value
        with pytest.raises(ValueError, match=match):
            coverage.run(config)
    assert not any(tmp_path.iterdir())  # nothing written, nothing computed


def test_simulator_truth_recovered_at_large_n_by_statsmodels():
    """An independent fit (statsmodels, not hetrlhf) of large simulated samples."""
    import statsmodels.api as sm

    from benchmarks.coverage_speed import _statsmodels_model

    model_cls = _statsmodels_model("analytic")
    for name in ("heavy", "binary", "scaled_psi0"):
        design = sim.get_design(name)
        data = sim.simulate(jax.random.key(5), design, 30_000)
        data = {f: np.asarray(getattr(data, f)) for f in data._fields}
        dphi = data["phi1"] - data["phi0"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hom = sm.Logit(data["y"], data["psi0"][:, None] * dphi).fit(disp=0)
            start = np.concatenate([hom.params, np.zeros(design.k)])
            model = model_cls(data["y"], dphi, data["psi"], data["psi0"])
            res = model.fit(start_params=start, method="bfgs", maxiter=2000, disp=0)
            # Newton polish with the analytic Hessian: BFGS alone can stop short of a
            # tight gtol on a 30 000-term score ("precision loss").
            res = model.fit(
                start_params=res.params, method="newton", maxiter=50, tol=1e-10, disp=0
            )
        assert res.mle_retvals["converged"], name
        truth = np.array([*design.theta, *design.gamma])
        z = (np.asarray(res.params) - truth) / np.asarray(res.bse)
        # 8 coordinates × 3 designs: |z| < 4 for all fails with probability < 2e-3.
        assert np.all(np.abs(z) < 4.0), (name, z)
        assert np.all(np.asarray(res.bse) < 0.1), name  # n = 30000: tight


def test_coverage_inside_binomial_band(tmp_path):
    """400 replicates at n = 600: every coordinate's coverage near 0.95."""
    config = coverage_config.get_config()
    config.sample_sizes = (600,)
    config.num_replicates = 400
    config.chunk_size = 200
    config.vmap_size = 25
    config.results_dir = str(tmp_path)
    config.progress = False
    config.checkpoint = False
    config.seed = 11
    payload = coverage.run(config)
    s = payload["summary"]["600"]
    assert s["num_not_converged"] <= 2
    r = s["num_converged"]
    # Two-sided binomial acceptance band at level 0.01 for each of the 8 coordinates
    # (Bonferroni over the coordinates: overall false-alarm rate <= 1%).
    lo = stats.binom.ppf(0.01 / 16, r, 0.95) / r
    hi = stats.binom.isf(0.01 / 16, r, 0.95) / r
    cov = np.array(s["coverage"])
    assert np.all((cov >= lo) & (cov <= hi)), (lo, hi, cov)
    # The average over coordinates is much tighter (positively correlated events:
    # the band below uses the single-coordinate se, which is conservative).
    assert abs(cov.mean() - 0.95) < 3 * np.sqrt(0.95 * 0.05 / r)
    # Theorem 2 at n = 600: the z-scores are close to N(0, 1), though not exactly (in
    # our default run the θ z-scores keep a finite-sample mean shift of 0.1–0.2 that
    # the KS test detects with 300 replicates). Tolerances: sd within ±0.15 (its MC
    # error is ≈ 0.035 at 400 replicates) and |mean| < 0.35 (MC error ≈ 0.05).
    assert np.all(np.abs(np.array(s["z_sd"]) - 1.0) < 0.15), s["z_sd"]
    assert np.all(np.abs(s["z_mean"]) < 0.35), s["z_mean"]
