"""The figures the README publishes: one :class:`~napari_dynfit.bench_table.Figure` per row.

``dynfit bench --all --markdown [--quick] [--only NAME] [--update-readme]`` runs the commands below
(from the checkout's root, each in its own process; each prints JSON) and writes the README's table
between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``. A row whose command is ``None`` (or
cannot run here: no GPU, a local data set missing) keeps the value measured before, and says so.
``quick`` commands measure the same figure on fewer seeds or a smaller problem; the table marks them.

Add a row here, not in the README: the table is written from this list.
"""

from __future__ import annotations

from napari_dynfit.bench_table import Figure


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _walk(js: dict) -> str:
    runs = js["runs"]
    errs = [r["max_relative_error"] for r in runs if r["identifiable"] and r["exact_terms"]]
    worst = f"; worst coefficient {_pct(max(errs))}" if errs else ""
    seeds = ", ".join(str(r["seed"]) for r in runs)
    return f"{js['identifiable_with_exact_terms']} exact and identifiable (held-out seeds {seeds}){worst}"


def _too_small(js: dict) -> str:
    runs = js["runs"]
    return f"{sum(not r['identifiable'] for r in runs)}/{len(runs)} not identifiable ({runs[0]['particles']} particles)"


def _localized(js: dict) -> str:
    res = js["results"]
    parts = []
    for noise in ("0.01", "0.05"):
        rows = {k.split("@")[0]: v["ours"] for k, v in res.items() if k.endswith(f"@{noise}")}
        if not rows:
            continue
        n = len(rows[next(iter(rows))]["equations"])
        exact = ", ".join(f"{r['n_exact']}" for r in rows.values())
        within = ", ".join(f"{r['n_within_5pct']}" for r in rows.values())
        ident = ", ".join(f"{r['n_identifiable']}" for r in rows.values())
        parts.append(f"{float(noise):.0%} noise, of {n} seeds: exact {exact}; within 5 % {within}; identifiable {ident}")
    return " / ".join(parts) + " (Fisher, shock, Allen-Cahn, layer)"


def _pdefind(js: dict) -> str:
    res = js["results"]
    return "; ".join(f"{k}: {v['ours']['exact_sets']}" + (f" (PySINDy {v['pysindy']['exact_sets']})" if "pysindy" in v
                                                          else "") for k, v in res.items())


def _abp(js: dict) -> str:
    return f"{js['both_equations_within_10pct']} ({js['particles']} particles)"


def _vicsek(js: dict) -> str:
    errs = [r["relative_error"] for r in js["runs"]]
    span = _pct(max(errs)) if len(errs) == 1 else f"{_pct(min(errs))}-{_pct(max(errs))}"
    return f"{span} ({js['within_10pct']} seeds within 10 %)"


def _tracking_accuracy(js: dict) -> str:
    a = js["accuracy"]
    b = a["brownian_0.15"]["ours_defaults"]["correct_link_fraction"]
    s = a["self_propelled_0.4"]["ours_defaults"]["correct_link_fraction"]
    return f"{b:.3f}, {s:.3f}"


def _tracking_speed(js: dict) -> str:
    sp = js["speed"]
    lap = sp.get("speedup_vs_laptrack")
    flag = " (laptrack at a smaller size, extrapolated)" if sp.get("laptrack_measured_at_smaller_size") else ""
    return (f"{sp['ours_s']:.1f} s; {sp['speedup_vs_trackpy']:.1f}x trackpy"
            + (f", {lap:.0f}x laptrack{flag}" if lap is not None else ""))


def _pfi_ou(js: dict) -> str:
    parts = [f"{k}: {js[k]['rel_error_A_plus_B']:.3f} (moment fit {js[k]['gaussian_mle_rel_error']:.3f})"
             for k in ("ou2", "ou10") if k in js]
    return "; ".join(parts)


def _pfi_cli(js: dict) -> str:
    c = js["ou2_cli"]
    n = len(c["cases"])
    ok = sum(r["rel_error"] <= 0.03 for r in c["cases"])
    never_worse = sum(r["rel_error"] <= r["moment_fit_rel_error"] + 1e-12 for r in c["cases"])
    return f"{never_worse}/{n} never worse / {ok} of {n} <= 0.03 (median {c['median_rel_error']:.3f})"


def _apr_conv(js: dict) -> str:
    return (f"{js['speedup_vs_pyapr']:.1f}x pyapr ({js['threads']} thread), {js['speedup_vs_scipy']:.0f}x scipy; "
            f"max rel. error vs pyapr {js['max_rel_error_vs_pyapr']:.1e} (comp. ratio {js['computational_ratio']:g}, "
            f"{js['shape'][0]}^3)")


def _pinn(js: dict) -> str:
    return (f"{js['inverse_dirichlet_rel_l2']:.2g} vs {js['fixed_rel_l2']:.2g} "
            f"({js['fixed_over_inverse_dirichlet']:.1f}x, {js['steps']} steps)")


def _chemotaxis(js: dict) -> str:
    e = js["rel_error"]
    return f"{_pct(js['rel_l2_chi_c'])} / {_pct(e['Dc'])}, {_pct(e['k'])} ({js['steps']} steps)"


def _bpinn(js: dict) -> str:
    parts = []
    for r in js.get("sobolev", []):
        parts.append(f"Sobolev {r['ratio_adaptive']:.2f}x / {r['ratio_equal']:.0f}x eps-optimal")
    s = js.get("lotka_volterra_summary")
    if s:
        n = len(s["seeds"])
        parts.append(f"LV within 5 % {s['all_within_5pct']}/{n}, covered {s['all_covered']}/{n}")
    for r in js.get("chemotaxis", []):
        parts.append(f"chemotaxis {_pct(r['rel_l2'])}, coverage {_pct(r['coverage95'])}")
    return "; ".join(parts)


FIGURES = [
    Figure("apr-roundtrip", "APR round trip vs pyapr's reconstruction", "exact", None,
           needs="pyapr (tests/test_apr_io.py; no JSON benchmark)"),
    Figure("apr-napari-1024", "1024^3 APR in napari: first slice (fresh viewer) / peak RSS", "< 2 s / < 1.5 GB",
           None, needs="a 1024^3 APR file and a display (benchmarks/bench_apr_io.py, manual)"),
    Figure("to-apr-overhead", "`to_apr` overhead over pyapr", "<= 10 %", None,
           needs="pyapr (benchmarks/bench_apr_io.py, manual)"),
    Figure("apr-construct", "APR construction, ours vs pyapr 1.0.7, same parameters (2D/3D spots and dense cells, a "
           "real frame; `benchmarks/bench_apr_construct.py`)", "particles +-10 %, PSNR +-0.5 dB, time <= pyapr", None,
           needs="pyapr (benchmarks/bench_apr_construct.py prints a text table)"),
    Figure("apr-conv-accuracy", "APR-native convolution vs `pyapr.filter.convolve` (float32, 3^d..7^d, CPU and "
           "torch back ends)", "1e-5 rel.", None, needs="pyapr (`dynfit bench apr-conv`)"),
    Figure("apr-conv-speed", "CPU convolution, 5^3 Gaussian, comp. ratio ~42", ">= 1x pyapr, >= 20x scipy",
           "{python} -m napari_dynfit.cli bench apr-conv --size 256", _apr_conv,
           quick="{python} -m napari_dynfit.cli bench apr-conv --size 96 --repeat 3", needs="pyapr"),
    Figure("apr-conv-gpu", "GPU convolution 1024^3", ">= 250 Gpixel/s", None, needs="a GPU"),
    Figure("detect-recall", "detection on rendered particles, SNR 10: recall / median error", ">= 0.98 / <= 0.3 px",
           None, needs="a JSON output of benchmarks/bench_detect.py (prints a text table)"),
    Figure("beads-msd", "real bead movie (trackpy's `bulk_water`, brightfield, defaults, polarity auto -> dark): "
           "MSD exponent / prefactor vs trackpy's walkthrough", "within 0.05 / 10 %", None,
           needs="the bulk_water movie (local only, benchmarks/bench_beads.py)"),
    Figure("link-accuracy", "linking: Brownian at 0.15, ABP at 0.4, **no parameters given**", ">= 0.975, >= 0.95",
           "{python} benchmarks/bench_tracking.py --sections accuracy", _tracking_accuracy, timeout_s=3600),
    Figure("ctc-bacteria", "real CTC bacteria GT masks relabelled per frame, **no flags**: LNK / division F1",
           ">= 0.90 / >= 0.85", None, needs="the CTC movie (local only, benchmarks/track_ctc.py)"),
    Figure("eval-vs-traccuracy", "`--eval` (CTC mask matching) vs traccuracy 0.4.3 on the same inputs",
           "equal to 1e-6", None, needs="a test, not a benchmark (tests/test_track_metrics.py)"),
    Figure("segment-f1", "touching cells from raw images, segmentation F1 at IoU 0.5: generated rod colonies / 2D "
           "touching nuclei / 3D nuclei / real phase-contrast bacteria", ">= 0.95", None,
           needs="the CTC movie for the real row (benchmarks/bench_cells.py)"),
    Figure("link-speed", "10^4 particles x 100 frames with gap closing", "<= trackpy, >= 5x laptrack",
           "{python} benchmarks/bench_tracking.py --sections speed --laptrack-n 2000", _tracking_speed,
           quick="{python} benchmarks/bench_tracking.py --sections speed --n 2000 --frames 50 --laptrack-n 500",
           timeout_s=7200),
    Figure("pdefind", "PDE-FIND data at 10 % / 20 % noise: exact term set", "5/5, >= 4/5",
           "{python} benchmarks/bench_pdefind.py", _pdefind,
           quick="{python} benchmarks/bench_pdefind.py --noise 0.1 --seeds 2", timeout_s=7200),
    Figure("pde-localized", "localized terms (Fisher-KPP front, Burgers shock, Allen-Cahn, boundary layer), defaults, "
           "5 seeds at 1 % / 5 % noise: exact set; coefficients within 5 %", "5/5; 5/5",
           "{python} benchmarks/bench_pde_localized.py --no-pdefind --first-seed 400", _localized,
           quick="{python} benchmarks/bench_pde_localized.py --no-pdefind --first-seed 400 --noise 0.05 --seeds 2"),
    Figure("abp-pde", "free ABPs, 2x10^4 particles: `rho_t = -v0 div p`, `p_t = -Dr p - v0/2 grad rho`",
           ">= 4/5 seeds, 10 %", "{python} benchmarks/bench_abp_pde.py", _abp,
           quick="{python} benchmarks/bench_abp_pde.py --seeds 1"),
    Figure("sample-walk", "GUI sample walk-through (2D sample, 750 particles, panel defaults; "
           "`benchmarks/bench_sample_walk.py`): exact `rho_t`, `p_t` terms; coefficients", "3/3; within 15 %",
           "{python} benchmarks/bench_sample_walk.py --seeds 3 4 5", _walk,
           quick="{python} benchmarks/bench_sample_walk.py --seeds 3"),
    Figure("sample-too-small", "a 128 µm, 50-frame piece of the sample (83 particles) through the same walk",
           "not identifiable", "{python} benchmarks/bench_sample_walk.py --seeds 3 4 5 --fov 128 --frames 50",
           _too_small),
    Figure("vicsek-bands", "Vicsek bands: band speed from the learned model", "within 10 %",
           "{python} benchmarks/bench_vicsek_pde.py", _vicsek, quick="{python} benchmarks/bench_vicsek_pde.py --seeds 1"),
    Figure("balances", "dominant balances: Burgers regimes; Vicsek bands (learned Toner-Tu model), front vs dilute "
           "bulk", "3 regimes, shock at max `\\|u_x\\|`; different balances, front has alignment + `grad(rho)`", None,
           needs="slow tests (tests/test_balance*.py -m slow), no JSON benchmark"),
    Figure("pinn-weighting", "PINN multiscale Poisson: inverse-Dirichlet vs fixed weights", "<= 1e-2, >= 10x",
           "{python} -m napari_dynfit.cli bench pinn-weighting", _pinn,
           quick="{python} -m napari_dynfit.cli bench pinn-weighting --steps 500"),
    Figure("latent-chemotaxis", "latent chemotaxis field `chi c` / `Dc`, `k`", "<= 5 % / 10 %",
           "{python} -m napari_dynfit.cli bench pinn-chemotaxis", _chemotaxis,
           quick="{python} -m napari_dynfit.cli bench pinn-chemotaxis --steps 300"),
    Figure("bpinn", "BPINN adaptive weights: Sobolev error vs eps-optimal / equal weights; Lotka-Volterra rates "
           "(5 seeds) within 5 % / 95 % interval covers; latent chemotaxis coverage", "<= 2x, >= 10x / 5/5, 5/5 / "
           "90-98 %", "{python} -m napari_dynfit.cli bench bpinn", _bpinn,
           quick="{python} -m napari_dynfit.cli bench bpinn --quick", timeout_s=7200),
    Figure("pfi-ou", "PFI OU `\\|A+B\\|/\\|B\\|`: 2D / 10D", "<= 0.05 / <= 0.10", None,
           needs="two runs: `benchmarks/bench_pfi.py --case ou2` and `--case ou10` (see the pfi-ou2 row)"),
    Figure("pfi-ou2", "PFI OU 2D `\\|A+B\\|/\\|B\\|` (the benchmark's settings)", "<= 0.05",
           "{python} benchmarks/bench_pfi.py --case ou2", _pfi_ou, quick="{python} benchmarks/bench_pfi.py --case ou2 --quick"),
    Figure("infer-flow-defaults", "`dynfit infer-flow` defaults, 2D OU, 8 held-out drifts/seeds: never worse than the "
           "moment fit / error", "always / <= 0.03", "{python} benchmarks/bench_pfi.py --case ou2-cli", _pfi_cli,
           quick=""),  # the figure is about the CLI's defaults: no quick variant
    Figure("pfi-bistable", "PFI bistable with growth, d = 10: path energy / fate corr.", "<= 0.05 / >= 0.95", None,
           needs="`benchmarks/bench_pfi.py --case bistable` (about an hour; JSON keys not mapped yet)"),
    Figure("pipeline-dask", "per-frame pipeline, 100 frames 512^2, 2 vs 1 Dask workers", ">= 1.7x, identical", None,
           needs="a quiet machine (benchmarks/bench_parallel.py; timings on a shared machine mislead)"),
    Figure("demo", "`dynfit demo` (full, all 9 stages)", "< 10 min on 2 cores", None,
           needs="`/usr/bin/time -v dynfit demo -o DIR` (wall time and peak memory; not JSON)"),
]
