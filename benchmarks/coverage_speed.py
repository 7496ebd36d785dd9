"""Benchmark: the vmapped JAX coverage study vs a per-replicate statsmodels loop.

The same Monte Carlo coverage study (our design of DESIGN.md §6: d = 5, k = 3, n = 600,
95% Wald intervals of every coordinate of θ and γ) is run twice on the SAME simulated
datasets, in one process:

(a) JAX: one replicate = simulate → ``hr.fit`` (Newton) → ``hr.confidence_intervals``
    (observed information) → covered?, one jitted program vmapped over the PRNG keys
    (``experiments.coverage.make_replicate``). Compilation (``.lower().compile()``) is
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
    parser.add_argument("--design", default="paper", help="hetrlhf.simulate preset")
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
    from experiments.coverage import coordinate_names, make_replicate
    from hetrlhf import parallel
    from hetrlhf import simulate as sim
    from hetrlhf.estimate import ravel_params

    design = sim.get_design(args.design)
    names = coordinate_names(design)
    truth = np.asarray(ravel_params(sim.design_truth(design)))
    r, n = args.replicates, args.n
    keys = jax.random.split(jax.random.key(args.seed), r)
    mesh = parallel.replicate_mesh() if jax.device_count() > 1 else None
    if mesh is not None and r % mesh.size:
        raise SystemExit(f"--replicates must be a multiple of {mesh.size} devices")

    cpu = {}  # process CPU seconds of the last compile / run (robust to a shared host)

    def compiled(fn):
        """(compiled batch function, compile seconds) for ``fn`` vmapped over keys."""
        batch = jax.jit(jax.vmap(fn))
        args_ = keys
        if mesh is not None:
            batch = parallel.sharded_map(batch, mesh)
            args_ = parallel.shard_replicates(keys, mesh)
        t0, c0 = time.perf_counter(), time.process_time()
        exe = jax.jit(batch).lower(args_).compile()
        cpu["compile"] = time.process_time() - c0
        return exe, args_, time.perf_counter() - t0

    def timed(exe, args_):
        t0, c0 = time.perf_counter(), time.process_time()
        out = jax.block_until_ready(exe(args_))
        cpu["run"] = time.process_time() - c0
        return out, time.perf_counter() - t0

    print(
        f"coverage_speed: {r} replicates, n = {n}, d = {design.d}, k = {design.k} "
        f"(our design '{args.design}'), alpha = {args.alpha}, float64, "
        f"{jax.device_count()} {jax.default_backend()} device(s)",
        flush=True,
    )

    # (a) JAX.
    replicate = make_replicate(
        design, n, alpha=args.alpha, information="observed", method="newton"
    )
    exe, args_, compile_s = compiled(replicate)
    compile_cpu = cpu["compile"]
    jax_out, run_s = timed(exe, args_)
    run_cpu = cpu["run"]
    _, run2_s = timed(exe, args_)  # a second run: steady state
    jax_out = jax.tree.map(np.asarray, jax_out)

    breakdown = {}
    if not args.no_breakdown:

        def sim_only(key):
            return sim.simulate(key, design, n).y.mean()

        def sim_fit(key):
            data = sim.simulate(key, design, n)
            return hr.fit(data).params

        for name, fn in (("simulate", sim_only), ("simulate+fit", sim_fit)):
            e, a, c = compiled(fn)
            timed(e, a)
            _, t = timed(e, a)
            breakdown[name] = {"compile_s": c, "run_s": t}
        breakdown["simulate+fit+intervals"] = {"compile_s": compile_s, "run_s": run2_s}

    # The same datasets as numpy, for statsmodels.
    r_sm = args.statsmodels_replicates
    data = jax.jit(jax.vmap(lambda k: sim.simulate(k, design, n)))(keys[:r_sm])
    data = {f: np.asarray(getattr(data, f)) for f in data._fields}
    model_cls = _statsmodels_model(args.statsmodels_derivatives)
    sm_rows = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(r_sm):
        one = {f: v[i] for f, v in data.items()}
        sm_rows.append(statsmodels_replicate(model_cls, one, truth, args.alpha))
    sm_s = time.perf_counter() - t0
    sm_cpu_total = (time.process_time() - c0) / r_sm * r
    sm_per = sm_s / r_sm
    sm_total = sm_per * r
    extrapolated = r_sm < r

    sm_cov = np.array([row["covered"] for row in sm_rows])
    sm_conv = np.array([row["converged"] for row in sm_rows])
    sm_est = np.array([row["estimate"] for row in sm_rows])
    sm_len = np.array([row["length"] for row in sm_rows])
    jx_cov = np.asarray(jax_out.covered, bool)
    jx_conv = np.asarray(jax_out.converged, bool)

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

    print("\n(a) JAX, one jitted program vmapped over the replicates")
    print(
        f"    compile        {compile_s:8.2f} s   (.lower().compile(); CPU time "
        f"{compile_cpu:.2f} s)"
    )
    print(
        f"    run            {run_s:8.2f} s   ({1e3 * run_s / r:.2f} ms/replicate; "
        f"second run {run2_s:.2f} s; CPU time {run_cpu:.2f} s)"
    )
    print(f"    compile + run  {compile_s + run_s:8.2f} s")
    print(
        f"    fits not converged: {int((~jx_conv).sum())}/{r}; mean Newton steps "
        f"{float(np.mean(jax_out.num_steps)):.2f} (all phases)"
    )
    if breakdown:
        sim_run = breakdown["simulate"]["run_s"]
        fit_run = breakdown["simulate+fit"]["run_s"] - sim_run
        ci_run = breakdown["simulate+fit+intervals"]["run_s"] - sim_run - fit_run
        print("    where the run time goes (differences of jitted prefixes, 2nd runs):")
        print(f"      simulate   {sim_run:7.3f} s")
        print(f"      fit        {fit_run:7.3f} s   (homogeneous start + joint Newton)")
        print(f"      intervals  {ci_run:7.3f} s   (observed information, Cholesky)")
        print(
            "    compile of the prefixes: "
            + ", ".join(f"{k} {v['compile_s']:.1f} s" for k, v in breakdown.items())
        )
    label = args.statsmodels_derivatives
    print(
        f"\n(b) statsmodels GenericLikelihoodModel, BFGS from the sm.Logit homogeneous "
        f"start, {label} score/Hessian, conf_int Wald intervals"
    )
    print(
        f"    {r_sm} replicates in {sm_s:.2f} s ({1e3 * sm_per:.1f} ms/replicate); "
        f"fits not converged: {int((~sm_conv).sum())}/{r_sm}"
    )
    if extrapolated:
        print(
            f"    EXTRAPOLATED to {r} replicates: {sm_total:.1f} s "
            f"(= {r} × the measured per-replicate time of {r_sm} replicates)"
        )
    print("\nwall time for the whole study of", r, "replicates:")
    print(f"    JAX run only           {run_s:9.2f} s")
    print(f"    JAX compile + run      {compile_s + run_s:9.2f} s")
    print(
        f"    statsmodels loop       {sm_total:9.2f} s"
        + (" (extrapolated)" * extrapolated)
    )
    print(f"    ratio statsmodels / JAX (run only):      {sm_total / run_s:8.1f}×")
    print(
        f"    ratio of process CPU time (run only):    {sm_cpu_total / run_cpu:8.1f}×  "
        f"(statsmodels {sm_cpu_total:.2f} s, JAX {run_cpu:.2f} s; less sensitive to "
        "other jobs on a shared host)"
    )
    print(
        f"    ratio statsmodels / JAX (compile + run): "
        f"{sm_total / (compile_s + run_s):8.1f}×"
    )
    print(
        f"\ncoverage of the {1 - args.alpha:.0%} Wald intervals (converged fits; ± MC se)"
    )
    header = (
        f"    {'coord':6s} {'JAX (' + str(r) + ')':>16s} "
        f"{'JAX (first ' + str(r_sm) + ')':>18s} {'statsmodels (' + str(r_sm) + ')':>22s}"
        f" {'JAX len':>8s} {'sm len':>8s}"
    )
    print(header)
    jx_len = np.asarray(jax_out.length)
    for j, name in enumerate(names):
        print(
            f"    {name:6s} {jx_c[j]:9.3f} ± {jx_se[j]:.3f} {jx_c_sub[j]:18.3f} "
            f"{sm_c[j]:15.3f} ± {sm_se[j]:.3f} {jx_len[jx_conv, j].mean():8.3f} "
            f"{sm_len[sm_conv, j].mean():8.3f}"
        )
    agree = np.mean(jx_cov[:r_sm][both] == sm_cov[both])
    print(
        f"    same datasets: max |estimate JAX − statsmodels| = {max_diff:.2e}; "
        f"per-interval covered/not-covered agreement {agree:.4f}"
    )
    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "statsmodels_s": sm_total,
        "statsmodels_measured_replicates": r_sm,
        "ratio_run": sm_total / run_s,
        "ratio_run_cpu": sm_cpu_total / run_cpu,
        "ratio_total": sm_total / (compile_s + run_s),
        "coverage_jax": jx_c,
        "coverage_statsmodels": sm_c,
        "max_estimate_diff": max_diff,
        "breakdown": breakdown,
    }


if __name__ == "__main__":
    main()
