"""``dynfit demo`` stage "Fields and PDE discovery": ABP trajectories coarse-grained, their PDEs learned."""

from __future__ import annotations


def _demo(ctx) -> None:
    import numpy as np

    from ..fields.coarse_grain import coarse_grain
    from ..models.integrate import forecast_error
    from ..models.model_json import format_model, write_model
    from ..models.pde import discover_pde
    from ..models.pde_plots import plot_observed_vs_simulated, plot_stability_paths

    traj = ctx.artefacts.get("trajectories")
    if traj is None:
        ctx.report.add_text("Skipped: needs particle trajectories from the simulation stage.")
        return
    box = np.asarray(traj.box, dtype=float)
    spacing = float(box[0]) / (32 if ctx.quick else 64)
    fields = coarse_grain(traj, spacing=spacing, sigma=2 * spacing)
    fields.to_zarr(ctx.out_dir / "fields.zarr")
    ctx.artefacts["fields"] = fields
    res = discover_pde(fields, stochastic=True, n_subsamples=20 if ctx.quick else 40,
                       n_bootstrap=50 if ctx.quick else 200, seed=ctx.seed)
    model = res.model
    params = getattr(traj, "params", {})
    v0, Dr, Dt = params.get("v0"), params.get("Dr"), params.get("Dt")
    fe = forecast_error(model, fields, start=0) if all(model["equations"].values()) else None
    if fe is not None:
        model["diagnostics"]["forecast_relative_l2"] = {f: e[-1] for f, e in fe["relative_l2"].items()}
    write_model(model, ctx.out_dir / "model.json")
    ctx.artefacts["model"] = model
    ctx.report.add_text(f"{traj.n_particles} particles coarse-grained on a {fields.shape[1]} x {fields.shape[2]} grid "
                        f"(spacing {spacing:.3g}, Gaussian sigma {2 * spacing:.3g}), {fields.shape[0]} frames; "
                        "(rho, p) library, Ito weak form, IHT-d stability selection (pi_th = 0.8).")
    if res.identifiable:
        ctx.report.add_equation(format_model(model))
    else:
        ctx.report.add_text(res.summary())
    if v0 is not None:
        ctx.report.add_equation(f"truth: rho_t = -{v0:g} div(p) + {Dt:g} lap(rho)\n"
                                f"       p_t = -{Dr:g} p - {v0 / 2:g} grad(rho) + {Dt:g} lap(p) - {v0:g} div(Q)")
    rows = {f"{lhs}: {t}": f"{c:.4g} [{lo:.4g}, {hi:.4g}]"
            for lhs, terms in model["equations"].items() for t, c in terms.items()
            for lo, hi in [model["confidence_intervals"][lhs][t]]}
    if rows:
        ctx.report.add_table(rows, caption="Learned coefficients with 95 % block-jackknife intervals")
    ctx.report.add_figure(plot_stability_paths(model), caption="Stability paths (thick: selected terms; dotted: pi_th)")
    if fe is not None:
        ctx.report.add_text("Forecast from the first frame, relative L2 error at the last frame: "
                            + ", ".join(f"{f} {e[-1]:.3g}" for f, e in fe["relative_l2"].items()))
        ctx.report.add_figure(plot_observed_vs_simulated(fields, fe["simulated"], "rho"),
                              caption="Observed (top) and model-integrated (bottom) density")


DEMO_STAGE = (60, "Fields and PDE discovery", _demo)
