"""``dynfit demo`` stage "Dominant balance": the balances of the learned model's equation."""

from __future__ import annotations


def _demo(ctx) -> None:
    from ..models.balance import dominant_balance, plot_equation_space, write_balances

    bundle, model = ctx.artefacts.get("fields"), ctx.artefacts.get("model")
    if bundle is None or model is None:
        ctx.report.add_text("Skipped: needs the fields and the learned model of the earlier stages.")
        return
    eqs = [lhs for lhs, terms in model["equations"].items() if terms]
    if not eqs:
        ctx.report.add_text("Skipped: the learned model has no right-hand-side terms.")
        return
    lhs = "p_t" if "p_t" in eqs else eqs[0]
    res = dominant_balance(bundle, model, lhs, max_clusters=4 if ctx.quick else 8,
                           max_samples=5000 if ctx.quick else 20000, seed=ctx.seed)
    write_balances(res, ctx.out_dir / "balance")
    ctx.artefacts["balance"] = res
    ctx.report.add_text(f"Dominant balances of the {lhs} equation: {len(res.balances)} balances from "
                        f"{res.n_clusters} mixture components.")
    ctx.report.add_table(res.table(), caption="Balances: active terms, share of the domain, dropped-term residual")
    ctx.report.add_figure(plot_equation_space(res), caption="Equation space, coloured by balance")


DEMO_STAGE = (80, "Dominant balance", _demo)
