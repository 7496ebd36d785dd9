"""Benchmark: the vmapped JAX coverage study vs a per-replicate statsmodels loop.

The same Monte Carlo coverage study (our design of DESIGN.md §6: d = 5, k = 3, n = 600,
95% Wald intervals of every coordinate of θ and γ) is run twice on the SAME simulated
datasets, in one process:

(a) JAX: one replicate = simulate → ``hr.fit`` (Newton) → ``hr.confidence_intervals``
    (observed information) → covered?, one jitted program vmapped over the PRNG keys
    (``experiments.coverage.make_replicate``; ``--batch_size`` replicates per vmapped
    batch, ``hetrlhf.parallel.batched_vmap``). Compilation (``.lower().compile()``) is
    timed apart from the run; the run is broken down into simulate / fit / intervals
    by timing the jitted prefixes of the pipeline.
(b) statsmodels: for each dataset, the homogeneous start (``sm.Logit`` on ψ0·Δφ, the
    same cold start ``hr.fit`` uses), then a ``GenericLikelihoodModel`` of the same
    heterogeneous Bradley–Terry likelihood fitted by BFGS, with its Wald intervals
    (``conf_int``; the covariance is the inverse observed information, as in (a)).
    By default the model gets the analytic score and Hessian (the fastest honest
    statsmodels baseline); ``--statsmodels_derivatives=numeric`` leaves them to
    statsmodels' finite differences.

The statsmodels loop may run on fewer replicates (``--statsmodels_replicates``); its
per-replicate time is then extrapolated to the full count, and the output says so.

Run:
  python benchmarks/coverage_speed.py                       # 1000 replicates, n = 600
  python benchmarks/coverage_speed.py --statsmodels_replicates 200
  python benchmarks/coverage_speed.py --devices 2           # 2 CPU devices, sharded
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=1000, help="JAX replicates")
    parser.add_argument(
        "--statsmodels_replicates",
        type=int,
        default=None,
        help="replicates of the statsmodels loop (default: all; fewer are "
        "extrapolated to --replicates)",
    )
    parser.add_argument("--n", type=int, default=600, help="comparisons per dataset")
    parser.add_argument("--design", default="default", help="hetrlhf.simulate preset")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--statsmodels_derivatives",
        choices=("analytic", "numeric"),
        default="analytic",
        help="give GenericLikelihoodModel the analytic score/Hessian, or let it "
        "use finite differences",
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=1,
        help="CPU devices (XLA_FLAGS host device count); >1 shards the replicates",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=25,
        help="vmap width: lax.map over vmapped batches of this many replicates "
        "(small batches stay in cache: ~1.7x less CPU than one vmap over 1000 on "
        "a 2-core CPU); 0 vmaps over all replicates at once",
    )
    parser.add_argument(
        "--no_breakdown",
        action="store_true",
        help="skip the simulate/fit/intervals breakdown (3 extra compiles)",
    )
    args = parser.parse_args(argv)
    if args.replicates < 1:
        parser.error("--replicates must be >= 1")
    if args.statsmodels_replicates is None:
        args.statsmodels_replicates = args.replicates
    if not 1 <= args.statsmodels_replicates <= args.replicates:
        parser.error("--statsmodels_replicates must lie in [1, --replicates]")
    if args.n < 10:
        parser.error("--n must be >= 10")
    if args.devices < 1:
        parser.error("--devices must be >= 1")
    if args.batch_size < 0:
        parser.error("--batch_size must be >= 0")
    return args


# ------------------------------------------------------------------------------------
# (b) statsmodels: the same likelihood as a GenericLikelihoodModel.
# ------------------------------------------------------------------------------------


def _statsmodels_model(derivatives: str):
    import numpy as np
    from statsmodels.base.model import GenericLikelihoodModel

    class HeterogeneousBTL(GenericLikelihoodModel):
        """y ~ Bernoulli(sigmoid((ψ0 + ψᵀγ)·θᵀΔφ)); exog = Δφ, extra params γ."""

        def __init__(self, y, dphi, psi, psi0, **kwds):
            k = psi.shape[1]
            super().__init__(
                y, dphi, extra_params_names=[f"gamma{j + 1}" for j in range(k)], **kwds
            )
            self.psi, self.psi0, self.d = psi, psi0, dphi.shape[1]

        def _parts(self, params):
            theta, gamma = params[: self.d], params[self.d :]
            r = self.exog @ theta
            sigma = self.psi0 + self.psi @ gamma
            return r, sigma, sigma * r

        def loglike(self, params):
            _, _, eta = self._parts(params)
            return float(np.sum(self.endog * eta - np.logaddexp(0.0, eta)))

        if derivatives == "analytic":

            def score(self, params):
                r, sigma, eta = self._parts(params)
                resid = self.endog - 1.0 / (1.0 + np.exp(-eta))
                g = np.hstack([sigma[:, None] * self.exog, r[:, None] * self.psi])
                return g.T @ resid

            def hessian(self, params):
                r, sigma, eta = self._parts(params)
                p = 1.0 / (1.0 + np.exp(-eta))
                g = np.hstack([sigma[:, None] * self.exog, r[:, None] * self.psi])
                h = -(g.T * (p * (1.0 - p))) @ g
                cross = (self.exog.T * (self.endog - p)) @ self.psi  # ∂²η/∂θ∂γ = Δφψᵀ
                h[: self.d, self.d :] += cross
                h[self.d :, : self.d] += cross.T
                return h

    return HeterogeneousBTL


def statsmodels_replicate(model_cls, data, truth, alpha):
    """Fits one dataset (numpy arrays) with statsmodels; returns (covered, length, ...)."""
    import numpy as np
    import statsmodels.api as sm

    dphi = data["phi1"] - data["phi0"]
    y, psi, psi0 = data["y"], data["psi"], data["psi0"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hom = sm.Logit(y, psi0[:, None] * dphi).fit(disp=0)
        start = np.concatenate([hom.params, np.zeros(psi.shape[1])])
        res = model_cls(y, dphi, psi, psi0).fit(
            start_params=start, method="bfgs", maxiter=1000, disp=0, gtol=1e-8
        )
        ci = np.asarray(res.conf_int(alpha))
    lower, upper = ci[:, 0], ci[:, 1]
    return {
        "estimate": np.asarray(res.params),
        "covered": (lower <= truth) & (truth <= upper),
        "length": upper - lower,
        "converged": bool(res.mle_retvals["converged"]),
    }


# ------------------------------------------------------------------------------------
# Main.
# ------------------------------------------------------------------------------------


class Timer:
    """Wall-clock and process-CPU seconds of a block (CPU time: all threads of this
    process; less sensitive than wall time to other jobs on a shared host)."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.devices > 1:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={args.devices}"
        )
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, str(ROOT))

    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)

    import hetrlhf as hr
    from experiments.coverage import make_replicate
    from hetrlhf import parallel, reporting
    from hetrlhf.data import simulate as sim
    from hetrlhf.types import ravel_params

    design = sim.get_design(args.design)
    names = reporting.param_names(design.d, design.k)
    truth = np.asarray(ravel_params(sim.design_truth(design)))
    r, n = args.replicates, args.n
    keys = jax.random.split(jax.random.key(args.seed), r)
    mesh = parallel.replicate_mesh() if jax.device_count() > 1 else None
    if mesh is not None and r % mesh.size:
        raise SystemExit(f"--replicates must be a multiple of {mesh.size} devices")
    keys_in = parallel.shard_replicates(keys, mesh) if mesh is not None else keys

    def batched(fn):
        """``fn`` over all keys: lax.map over vmapped batches of --batch_size."""
        batch = jax.jit(parallel.batched_vmap(fn, args.batch_size or None))
        if mesh is not None:
            batch = jax.jit(parallel.sharded_map(batch, mesh))
        with Timer() as t:
            exe = batch.lower(keys_in).compile()
        return exe, t

    def timed(exe):
        with Timer() as t:
            out = jax.block_until_ready(exe(keys_in))
        return out, t

    width = (
        f"lax.map over vmapped batches of {args.batch_size}"
        if args.batch_size
        else ("one vmap over all replicates")
    )
    print(
        f"coverage_speed: {r} replicates, n = {n}, d = {design.d}, k = {design.k} "
        f"(our design '{args.design}'), alpha = {args.alpha}, float64, "
        f"{jax.device_count()} {jax.default_backend()} device(s), {width}; "
        f"{os.cpu_count()} CPU cores, load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg()),
        flush=True,
    )

    # (a) JAX.
    replicate = make_replicate(
        design, n, alpha=args.alpha, information="observed", method="newton"
    )
    exe, t_compile = batched(replicate)
    jax_out, t_run = timed(exe)
    _, t_run2 = timed(exe)  # steady state
    jax_out = jax.tree.map(np.asarray, jax_out)

    def sim_only(key):
        return sim.simulate(key, design, n).y.mean()

    def sim_fit(key):
        return hr.fit(sim.simulate(key, design, n)).params

    breakdown = {}
    if not args.no_breakdown:
        for name, fn in (("simulate", sim_only), ("simulate+fit", sim_fit)):
            e, tc = batched(fn)
            timed(e)
            _, tr = timed(e)
            breakdown[name] = (tc, tr)
        breakdown["simulate+fit+intervals"] = (t_compile, t_run2)
    else:
        e, tc = batched(sim_only)
        timed(e)
        breakdown["simulate"] = (tc, timed(e)[1])
    t_sim = breakdown["simulate"][1]

    # (b) statsmodels on the same datasets (numpy copies).
    r_sm = args.statsmodels_replicates
    data = jax.jit(jax.vmap(lambda k: sim.simulate(k, design, n)))(keys[:r_sm])
    data = {
        f: np.asarray(getattr(data, f))
        for f in data._fields
        if getattr(data, f) is not None
    }
    model_cls = _statsmodels_model(args.statsmodels_derivatives)
    sm_rows = []
    with Timer() as t_sm:
        for i in range(r_sm):
            one = {f: v[i] for f, v in data.items()}
            sm_rows.append(statsmodels_replicate(model_cls, one, truth, args.alpha))
    sm_wall, sm_cpu = t_sm.wall / r_sm * r, t_sm.cpu / r_sm * r
    extrapolated = r_sm < r

    sm_cov = np.array([row["covered"] for row in sm_rows])
    sm_conv = np.array([row["converged"] for row in sm_rows])
    sm_est = np.array([row["estimate"] for row in sm_rows])
    sm_len = np.array([row["length"] for row in sm_rows])
    jx_cov = np.asarray(jax_out.covered, bool)
    jx_conv = np.asarray(jax_out.converged, bool)
    jx_len = np.asarray(jax_out.length)

    def cov_se(cov, mask):
        c = cov[mask].mean(0)
        return c, np.sqrt(c * (1 - c) / max(int(mask.sum()), 1))

    jx_c, jx_se = cov_se(jx_cov, jx_conv)
    jx_c_sub, _ = cov_se(jx_cov[:r_sm], jx_conv[:r_sm])
    sm_c, sm_se = cov_se(sm_cov, sm_conv)
    both = jx_conv[:r_sm] & sm_conv
    max_diff = float(
        np.max(np.abs(np.asarray(jax_out.estimate)[:r_sm][both] - sm_est[both]))
    )
    agree = float(np.mean(jx_cov[:r_sm][both] == sm_cov[both]))

    def ws(t):
        return f"{t.wall:7.2f} s wall {t.cpu:7.2f} s CPU"

    print("\n(a) JAX: simulate → hr.fit → hr.confidence_intervals → covered?, jitted")
    print(f"    compile        {ws(t_compile)}   (.lower().compile())")
    print(
        f"    run            {ws(t_run)}   ({1e3 * t_run.cpu / r:.2f} ms CPU/replicate)"
    )
    print(f"    second run     {ws(t_run2)}")
    print(
        f"    fits not converged: {int((~jx_conv).sum())}/{r}; Newton steps (all "
        f"phases) mean {float(np.mean(jax_out.num_steps)):.2f}, max "
        f"{int(np.max(jax_out.num_steps))}"
    )
    print(
        "    where the time goes (jitted prefixes of the pipeline, steady-state runs):"
    )
    prev_w = prev_c = 0.0
    for name, (tc, tr) in breakdown.items():
        part = name.split("+")[-1]
        print(
            f"      {part:10s} run {tr.wall - prev_w:6.2f} s wall {tr.cpu - prev_c:6.2f} "
            f"s CPU   (compile of the prefix: {tc.wall:.1f} s wall {tc.cpu:.1f} s CPU)"
        )
        prev_w, prev_c = tr.wall, tr.cpu
    label = args.statsmodels_derivatives
    print(
        f"\n(b) statsmodels: sm.Logit homogeneous start, GenericLikelihoodModel BFGS "
        f"({label} score/Hessian), conf_int Wald intervals; same datasets"
    )
    print(
        f"    {r_sm} replicates: {ws(t_sm)}   ({1e3 * t_sm.cpu / r_sm:.2f} ms "
        f"CPU/replicate); fits not converged: {int((~sm_conv).sum())}/{r_sm}"
    )
    if extrapolated:
        print(
            f"    EXTRAPOLATED to {r} replicates: {sm_wall:.1f} s wall, {sm_cpu:.1f} s "
            f"CPU (= {r} × the per-replicate time measured on {r_sm} replicates)"
        )
    fit_ci = (t_run2.wall - t_sim.wall, t_run2.cpu - t_sim.cpu)
    rows = [
        ("JAX compile + run", t_compile.wall + t_run.wall, t_compile.cpu + t_run.cpu),
        ("JAX run (incl. simulate)", t_run.wall, t_run.cpu),
        ("JAX fit + intervals only", *fit_ci),
        ("statsmodels loop" + " (extrapolated)" * extrapolated, sm_wall, sm_cpu),
    ]
    print(f"\nwhole study of {r} replicates            wall s      CPU s")
    for name, w, c in rows:
        print(f"    {name:34s} {w:9.2f}  {c:9.2f}")
    ratios = {
        "run": (sm_wall / t_run.wall, sm_cpu / t_run.cpu),
        "fit_intervals": (sm_wall / fit_ci[0], sm_cpu / fit_ci[1]),
        "compile_run": (
            sm_wall / (t_compile.wall + t_run.wall),
            sm_cpu / (t_compile.cpu + t_run.cpu),
        ),
    }
    print("ratio statsmodels / JAX                      wall        CPU")
    for name, key in (
        ("run (JAX also simulates)", "run"),
        ("like for like: fit + intervals", "fit_intervals"),
        ("including JAX compile", "compile_run"),
    ):
        w, c = ratios[key]
        print(f"    {name:34s} {w:8.1f}×  {c:8.1f}×")
    print(
        f"\ncoverage of the {1 - args.alpha:.0%} Wald intervals (converged fits; ± MC se)"
    )
    print(
        f"    {'coord':6s} {'JAX (' + str(r) + ')':>16s} "
        f"{'JAX (first ' + str(r_sm) + ')':>18s} {'statsmodels (' + str(r_sm) + ')':>22s}"
        f" {'JAX len':>8s} {'sm len':>8s}"
    )
    for j, name in enumerate(names):
        print(
            f"    {name:6s} {jx_c[j]:9.3f} ± {jx_se[j]:.3f} {jx_c_sub[j]:18.3f} "
            f"{sm_c[j]:15.3f} ± {sm_se[j]:.3f} {jx_len[jx_conv, j].mean():8.3f} "
            f"{sm_len[sm_conv, j].mean():8.3f}"
        )
    print(
        f"    same datasets: max |estimate JAX − statsmodels| = {max_diff:.2e}; "
        f"per-interval covered/not-covered agreement {agree:.4f}"
    )
    return {
        "ratios": ratios,
        "coverage_jax": jx_c,
        "coverage_statsmodels": sm_c,
        "max_estimate_diff": max_diff,
        "interval_agreement": agree,
    }


if __name__ == "__main__":
    main()
