"""The figures the README publishes: one :class:`~napari_dynfit.bench.table.Figure` per row.

``dynfit bench --all --markdown [--quick] [--only NAME] [--update-readme] [--update-docs]`` runs the
commands below (from the checkout's root, each in its own process; each prints JSON, the last JSON
object of its output is read) and writes the README's table between ``<!-- bench:begin -->`` and
``<!-- bench:end -->`` and ``docs/figures.md``. A row that cannot run here says why in the table
(``not re-measured: needs pyapr`` / ``a GPU`` / ``the CTC movie (local only: set DYNFIT_DATA)`` /
``a quiet machine``) and keeps the value measured before, with where it came from. ``quick`` commands
measure the same figure on fewer seeds or a smaller problem; the table marks them.

Local data sets (never committed) are read from the folder ``$DYNFIT_DATA`` names, laid out as
``bulk_water/`` (trackpy's bead movie, PNG frames) and ``bacteria_div/data/bacteria/{img,TRA}`` (the CTC
movie of ``bentaculum/divisualisation``).

Add a row here, not in the README: the table is written from this list. Every row has a command that
prints JSON, or ``needs`` saying what would measure it (tests/test_bench_table.py checks).
"""

from __future__ import annotations

from napari_dynfit.bench.table import Figure


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
        met = [k for k, r in rows.items() if r["n_exact"] == n and r["n_within_5pct"] == n]
        short = []
        for k, r in rows.items():
            if k not in met:
                w = r["max_rel_coef_error_when_exact"]
                short.append(f"{_LOCAL.get(k, k)} exact {r['n_exact']}/{n}, within 5 % {r['n_within_5pct']}/{n}"
                             + ("" if w is None else f" (worst {_pct(w)})"))
        ident = min(r["n_identifiable"] for r in rows.values())
        parts.append(f"{float(noise):.0%} noise: {len(met)} of {len(rows)} equations exact and within 5 % on {n}/{n} "
                     f"seeds ({', '.join(_LOCAL.get(k, k) for k in met)})" + (f"; {'; '.join(short)}" if short else "")
                     + f"; identifiable >= {ident}/{n} each")
    return " / ".join(parts)


_LOCAL = {"fisher_kpp": "Fisher", "burgers_shock": "shock", "allen_cahn": "Allen-Cahn",
          "advection_diffusion_layer": "layer", "zeldovich": "Zeldovich"}


def _pdefind(js: dict) -> str:
    res = js["results"]
    text = "; ".join(f"{k}: {v['ours']['exact_sets']}" + (f" (PySINDy {v['pysindy']['exact_sets']})" if "pysindy" in v
                                                          else "") for k, v in res.items())
    sources = sorted(set(js.get("data", {}).values()))
    return text + (f" (data: {', '.join(sources)})" if sources else "")


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
    never_worse = sum(r["never_worse"] for r in c["cases"])
    runtime = (f"; per run at most {c['max_wall_s']:.0f} s wall / {c['max_cpu_s']:.0f} s CPU, {c['jobs']} at a time, "
               f"load {c['load_average'][0]:.1f}" if "max_wall_s" in c else "")
    return f"{never_worse}/{n} never worse / {ok} of {n} <= 0.03 (median {c['median_rel_error']:.3f}){runtime}"


def _apr_conv(js: dict) -> str:
    return (f"{js['speedup_vs_pyapr']:.1f}x pyapr ({js['threads']} thread), {js['speedup_vs_scipy']:.0f}x scipy; "
            f"max rel. error vs pyapr {js['max_rel_error_vs_pyapr']:.1e} (comp. ratio {js['computational_ratio']:g}, "
            f"{js['shape'][0]}^3)")


def _apr_conv_gpu(js: dict) -> str:
    cudnn = js.get("speedup_vs_cudnn")
    return (f"{js['pixel_equiv_gpix_s']:.0f} Gpixel/s ({js['gpu_name']}; 5^3 Gaussian, {js['source']}, comp. ratio "
            f"{js['computational_ratio']:g}; tree means included, data resident"
            + (f"; {cudnn:.1f}x cuDNN conv3d" if cudnn is not None else "") + ")")


def _pinn(js: dict) -> str:
    return (f"{js['inverse_dirichlet_rel_l2']:.2g} vs {js['fixed_rel_l2']:.2g} "
            f"({js['fixed_over_inverse_dirichlet']:.1f}x, {js['steps']} steps)")


def _chemotaxis(js: dict) -> str:
    e = js["rel_error"]
    return f"{_pct(js['rel_l2_chi_c'])} / {_pct(e['Dc'])}, {_pct(e['k'])} ({js['steps']} steps)"


def _detect(js: dict) -> str:
    (snr, r), = js["snr"].items()
    o, t = r["ours"], r["trackpy"]
    return (f"{o['recall']:.3f} / {o['median_error_px']:.3f} px (trackpy, minmass tuned on held-out frames: "
            f"{t['recall']:.3f} / {t['median_error_px']:.3f} px; CPU {r['time_ratio_cpu']:.2f}x trackpy's)")


def _interval(fit: dict) -> str:
    """`` (95 % interval lo-hi)`` of an MSD fit's exponent (``MsdFit.exponent_ci``), or "" when not recorded."""
    lo, hi = (fit.get("exponent_ci") or [None, None])[:2]
    return "" if lo is None or hi is None else f" (95 % interval {lo:.3f}-{hi:.3f})"


def _beads(js: dict) -> str:
    from napari_dynfit.track.analysis import COMPOSITION_TOLERANCE

    m = js["msd"]
    met = abs(js["exponent_difference"]) <= 0.05 and abs(js["prefactor_difference_pct"]) <= 10
    bias = m["ours"].get("composition_bias")
    mix = ("" if bias is None else
           f"; composition check: mix stable (bias {bias:+.3f})" if not abs(bias) >= COMPOSITION_TOLERANCE else
           f"; composition check: **exponent flagged as not identified** (bias {bias:+.3f}; "
           f"{m['ours']['exponent_fixed_composition']:.3f} with the mix held fixed)")
    pops = m["ours"].get("populations") or []
    if pops:
        big = max(pops, key=lambda p: p["tracks"])
        mobile = m["ours"]["tracks"] - m["ours"].get("immobile_excluded", 0)
        mix += (f"; its largest mobility population ({big['tracks']} of {mobile} mobile "
                f"tracks, fitted on its own by the defaults): **{big['exponent']:.3f}{_interval(big)} vs "
                f"{m['trackpy']['exponent']:.3f} / {100 * (big['prefactor'] / m['trackpy']['prefactor'] - 1):+.1f} %**")
    return (f"{m['ours']['exponent']:.3f}{_interval(m['ours'])} vs {m['trackpy']['exponent']:.3f} / "
            f"{js['prefactor_difference_pct']:+.1f} %"
            + ("" if met else " (not met)") + f"; {100 * js['checks']['ours']['outside']:.0f} % outside the image; "
            f"detection CPU time {js['cpu_ratio_ours_over_trackpy']:.2f}x trackpy's (polarity {js['polarity']}"
            + (f", sigma {js['sigma']:.2f} px estimated)" if js.get("sigma") is not None else ")") + mix)


def _ctc(js: dict) -> str:
    o = js["ours"]
    tr = js.get("traccuracy")
    ref = (f" (traccuracy {tr['LNK']:.3f} / {tr['Division F1']:.3f})" if isinstance(tr, dict) and "LNK" in tr
           and "Division F1" in tr else "")
    return f"{o['LNK']:.3f} / {o['division_f1']:.3f}{ref}"


def _segment_sim(js: dict) -> str:
    sim = js["simulated"]

    def f1(prefix):
        return " / ".join(f"{v['f1']:.3f}" for k, v in sim.items() if k.startswith(prefix))

    methods = sorted({v.get("method") for k, v in sim.items() if k.startswith("rods_2d") and v.get("method")})
    rods = "rods (phase contrast" + (f", {'/'.join(methods)} back end" if methods else "") + ")"
    low = [k for k, v in sim.items() if v["f1"] < 0.95]
    verdict = "met" if not low else f"not met: {', '.join(low)} below 0.95"
    return (f"{rods} {f1('rods_2d')} / 2D nuclei {f1('nuclei_2d')} / 3D nuclei {f1('nuclei_3d')} (2 seeds each; "
            f"{verdict})")


def _segment_real(js: dict) -> str:
    r = js["real"]
    ctc = r.get("ctc", {})
    extra = ", ".join(f"{k} {ctc[k]:.3f}" for k in ("DET", "TRA", "LNK", "Division F1") if k in ctc)
    f1 = r["segmentation"]["f1"]
    met = f1 >= 0.95 and all(ctc.get(k, 1.0) >= t for k, t in (("DET", 0.95), ("TRA", 0.95), ("LNK", 0.90),
                                                                ("Division F1", 0.80)))
    return f"{f1:.3f}" + ("" if met else " (not met)") + (
        f" (then `dynfit track --divisions`: {extra}; targets 0.95 / 0.95 / 0.90 / 0.80)" if extra else "")


def _apr_construct(js: dict) -> str:
    p, q, t = js["particle_ratio_range"], js["psnr_diff_db_range"], js["time_ratio_range"]
    same = "identical particles and values" if js["all_identical"] else (
        f"particles {p[0]:.3f}-{p[1]:.3f}x pyapr's, PSNR {q[0]:+.2f} to {q[1]:+.2f} dB")
    return f"{same}; {t[0]:.2f}-{t[1]:.2f}x pyapr's time ({js['threads']} thread)"


def _apr_overhead(js: dict) -> str:
    o = js["overhead"]
    return (f"{100 * (o['overhead_ratio'] - 1):+.0f} % (best of {o['repeats']}, {'x'.join(map(str, o['image_shape']))}; "
            f"our own steps {100 * o['our_steps_fraction']:.2f} %)")


def _conv_accuracy(runs: list) -> str:
    errs = {f"{r['stencil'][0]}^3": r["max_rel_error_vs_pyapr"] for r in runs}
    return f"< {max(errs.values()):.1e} (" + ", ".join(f"{k}: {v:.1e}" for k, v in errs.items()) + "; CPU, 3D)"


def _tests(js: dict) -> str:
    n = js["passed"] + js["failed"] + js["errors"]
    if js["failed"] or js["errors"]:
        bad = ", ".join(t.split("::")[-1] for t in js["tests"]["failed"] + js["tests"]["errors"])
        return f"NOT MET: {js['failed'] + js['errors']} of {n} checks fail ({bad})"
    skip = f", {js['skipped']} skipped" if js["skipped"] else ""
    return f"holds: {js['passed']}/{n} asserting tests pass{skip}"


def _pfi_ou10(js: dict) -> str:
    o = js["ou10"]
    return f"{o['rel_error_A_plus_B']:.3f} (moment fit {o['gaussian_mle_rel_error']:.3f})"


def _bistable(js: dict) -> str:
    b = js["bistable"]
    u, bal = b["unbalanced"], b["balanced"]
    return (f"{u['path_energy_distance']:.3f} / {u['fate_correlation']:.3f} (balanced PFI "
            f"{bal['path_energy_distance']:.3f} / {bal['fate_correlation']:.3f}; true vs true "
            f"{b['path_energy_true_vs_true']:.3f} / {b['fate_correlation_true_vs_true']:.3f})")


def _parallel(js: dict) -> str:
    same = all(v for k, v in js.items() if k.endswith("_identical"))
    return f"{js['threads_2_vs_1']:.2f}x, {'identical' if same else 'NOT identical'}"


def _demo(js: dict) -> str:
    st = sorted(js["stages_s"].items(), key=lambda kv: -kv[1])[:2]
    top = ", ".join(f"{k.split(':')[0].split(' (')[0]} {v:.0f} s" for k, v in st)
    skipped = f"; {len(js['skipped_stages'])} stage(s) skipped" if js["skipped_stages"] else ""
    return (f"{js['wall_s']:.0f} s wall (stages sum to {js['stages_sum_s']:.0f} s: {top}), {js['peak_rss_gb']:.2f} GB "
            f"peak RSS, load average {js['load_average_before']:.1f} on {js['cpus']} cores{skipped}")


def _bpinn(js: dict) -> str:
    from napari_dynfit.bench.bpinn_cases import SAMPLER_LABELS  # absolute: the registry is loaded as a file

    parts = []
    sob = js.get("sobolev", [])
    if sob:
        seeds = ", ".join(str(r["seed"]) for r in sob)
        runs = []
        for smp in sob[0].get("samplers", {"output": None}):
            rs = [r["samplers"][smp] if "samplers" in r else r for r in sob]
            ad, eq = [r["ratio_adaptive"] for r in rs], [r["ratio_equal"] for r in rs]
            label = SAMPLER_LABELS.get(smp, smp)
            runs.append(f"{label}: adaptive {min(ad):.2f}-{max(ad):.2f}x / equal {min(eq):.2f}-{max(eq):.2f}x")
        parts.append(f"Sobolev (seeds {seeds}) vs eps-optimal, {'; '.join(runs)}")
    s = js.get("lotka_volterra_summary")
    if s:
        n = len(s["seeds"])
        ref = f" (exact ODE posterior {s['reference_all_covered']}/{n})" if "reference_all_covered" in s else ""
        parts.append(f"LV within 5 % {s['all_within_5pct']}/{n}, covered {s['all_covered']}/{n}{ref}")
        if "covered" in s:
            per = sum(s["covered"].values())
            ex = sum(s["reference_covered"].values())
            parts.append(f"LV rates covered {per}/{4 * n} (exact {ex}/{4 * n})")
    for r in js.get("chemotaxis", []):
        parts.append(f"chemotaxis {_pct(r['rel_l2'])}, coverage {_pct(r['coverage95'])}")
    return "; ".join(parts)


def _closure_resolved(js: dict) -> str:
    ap, est = js["a_priori"], js.get("estimate_alpha", {})
    better = sum(r["learned_S"] <= r["bingham_S"] for r in ap.values())
    parts = [f"learned <= Bingham at {better}/{len(ap)} alpha: " + ", ".join(
        f"{a} {r['learned_S']:.4f} / {r['bingham_S']:.4f}" for a, r in ap.items())]
    if est:
        parts.append("alpha estimated " + ", ".join(f"{a}: {r['estimate']:.3f} ({r['rel_error']:.1%})"
                                                    for a, r in est.items()))
    pos = [r for r in js.get("kinetic_positivity", {}).values() if r]
    if pos:
        parts.append(f"reference's negative Psi mass <= {max(r['negative_mass_max'] for r in pos):.2%} (worst frame)")
    return "; ".join(parts)


def _closure_post(js: dict) -> str:
    alpha, res = next(iter(js["stationary"].items()))
    parts = []
    for name in ("learned", "bingham"):
        r = res[name]
        if "rel_diff" not in r:
            parts.append(f"{name}: {r['blew_up']}/{res['members']} blew up")
            continue
        d, e, v = r["rel_diff"], r["resolution"], r["verdict"]
        parts.append(f"{name} {d['mean_speed']:+.1%} +- {e['mean_speed']:.1%} ({v['mean_speed']}) / "
                     f"{d['order']:+.1%} +- {e['order']:.1%} ({v['order']}) / shell {d['worst_shell']} "
                     f"{d['spectrum_worst']:+.1%} +- {e['spectrum_worst']:.1%} ({v['spectrum']}), "
                     f"{r['blew_up']}/{res['members']} blew up")
    return (f"alpha {float(alpha):g}, {res['members']} runs, t = {res['window'][0]:g}..{res['window'][1]:g}: "
            + "; ".join(parts) + " (+- two paired standard errors)").replace("%", " %")


FIGURES = [
    Figure("apr-roundtrip", "APR round trip vs pyapr's reconstruction (2D, 3D; tests/test_apr_io.py)", "exact",
           "{python} -m napari_dynfit.bench.suite tests/test_apr_io.py -k pyapr", _tests, requires=("pyapr",)),
    Figure("apr-napari-1024", "1024^3 APR in napari: first slice (fresh viewer) / peak RSS", "< 2 s / < 1.5 GB",
           None, needs="a display and a manual run: `napari_dynfit.bench.apr_io --size 1024 --napari` generates and "
           "converts a 1024^3 uint16 image (2 GiB) once, too heavy for `--all` on a shared machine"),
    Figure("to-apr-overhead", "`to_apr(backend=\"pyapr\")` overhead over `pyapr.converter.get_apr`, same image and "
           "parameters", "<= 10 %", "{python} -m napari_dynfit.bench.apr_io --overhead-only", _apr_overhead,
           quick="{python} -m napari_dynfit.bench.apr_io --overhead-only --overhead-size 128 --repeats 3",
           requires=("pyapr",)),
    Figure("apr-construct", "APR construction, ours vs pyapr 1.0.7, same parameters (2D/3D spots and dense cells; "
           "`napari_dynfit.bench.apr_construct`)", "particles +-10 %, PSNR +-0.5 dB, time <= pyapr",
           "{python} -m napari_dynfit.bench.apr_construct --threads 1", _apr_construct, requires=("pyapr",)),
    Figure("apr-conv-accuracy", "APR-native convolution vs `pyapr.filter.convolve` (float32, 3^3, 5^3, 7^3 "
           "Gaussian stencils)", "1e-5 rel.",
           [f"{{python}} -m napari_dynfit.cli bench apr-conv --size 96 --stencil-size {k} --repeat 1 --no-scipy"
            for k in (3, 5, 7)], _conv_accuracy, requires=("pyapr", "torch")),
    Figure("apr-conv-speed", "CPU convolution, 5^3 Gaussian, comp. ratio ~42", ">= 1x pyapr, >= 20x scipy",
           "{python} -m napari_dynfit.cli bench apr-conv --size 256", _apr_conv,
           quick="{python} -m napari_dynfit.cli bench apr-conv --size 96 --repeat 3", requires=("pyapr", "torch")),
    Figure("apr-conv-gpu", "GPU convolution 1024^3", ">= 250 Gpixel/s",
           "{python} -m napari_dynfit.cli bench apr-conv --device cuda --size 1024 --ratio 30 --repeat 10 "
           "--budget-s 150", _apr_conv_gpu, gpu=True, requires=("torch",), timeout_s=600),
    Figure("detect-recall", "detection on rendered spots (400 per 512^2 frame, uniform, close pairs included; "
           "`napari_dynfit.bench.detect`), SNR 10, defaults: recall / median error", ">= 0.98 / <= 0.3 px",
           "{python} -m napari_dynfit.bench.detect --snr 10 --json", _detect,
           quick="{python} -m napari_dynfit.bench.detect --snr 10 --frames 3 --rounds 1 --json", requires=("trackpy",)),
    Figure("beads-msd", "real bead movie (trackpy's `bulk_water`, brightfield, defaults, polarity auto -> dark): "
           "MSD exponent / prefactor vs trackpy's walkthrough", "within 0.05 / 10 %",
           "{python} -m napari_dynfit.bench.beads {data}/bulk_water --json", _beads, data=("bulk_water",),
           data_label="the bulk_water movie", requires=("trackpy",)),
    Figure("beads-msd-bright", "held-out real movie of bright particles on a dark background (Lyxilion/Microrheology "
           "`Sample/video2.mp4`, 1078 frames of 480 x 360, decoded to one TIFF; defaults, polarity auto -> bright; "
           "px^2 at 30 frames/s, no pixel size given): MSD exponent / prefactor vs trackpy's walkthrough",
           "within 0.05 / 10 %",
           "{python} -m napari_dynfit.bench.beads {data}/lyxilion/video2.tif --mpp 1 --fps 30 --diameter 7 "
           "--minmass 200 --no-invert --search-range 9 --memory 3 --json", _beads, data=("lyxilion/video2.tif",),
           data_label="the Lyxilion video2 movie as a TIFF (docs/tracking.md)", requires=("trackpy",),
           timeout_s=3600),
    Figure("beads-msd-fluo", "real fluorescence bead movie (Princeton's \"Atomic Nature of Matter\" beads, `run_1` "
           "frames 0-99 of 640 x 480, 0.175 um/px, 2 frames/s; defaults, polarity auto -> bright): MSD exponent / "
           "prefactor vs trackpy's walkthrough (diameter 11, minmass 200)", "within 0.05 / 10 %",
           "{python} -m napari_dynfit.bench.beads {data}/princeton_beads/run_1 --mpp 0.175 --fps 2 --diameter 11 "
           "--minmass 200 --no-invert --search-range 15 --memory 3 --json", _beads, data=("princeton_beads/run_1",),
           data_label="the Princeton run_1 frames (docs/tracking.md)", requires=("trackpy",)),
    Figure("link-accuracy", "linking: Brownian at 0.15, ABP at 0.4, **no parameters given**", ">= 0.975, >= 0.95",
           "{python} -m napari_dynfit.bench.tracking --sections accuracy", _tracking_accuracy, timeout_s=3600),
    Figure("ctc-bacteria", "real CTC bacteria GT masks relabelled per frame, **no flags**: LNK / division F1",
           ">= 0.90 / >= 0.85", "{python} -m napari_dynfit.bench.track_ctc {data}/bacteria_div/data/bacteria/TRA", _ctc,
           data=("bacteria_div/data/bacteria/TRA",), data_label="the CTC bacteria movie"),
    Figure("eval-vs-traccuracy", "`--eval` (CTC mask matching) vs traccuracy 0.4.3 on the same inputs "
           "(tests/test_track_metrics.py)", "equal to 1e-6",
           "{python} -m napari_dynfit.bench.suite tests/test_track_metrics.py -k traccuracy", _tests,
           requires=("traccuracy",)),
    Figure("segment-f1", "touching cells from raw images, segmentation F1 at IoU 0.5 (`dynfit segment` defaults: "
           "the learned back end for phase-contrast rods when torch is installed, else classic): generated rod "
           "colonies (phase contrast) / 2D touching nuclei / 3D nuclei", ">= 0.95",
           "{python} -m napari_dynfit.bench.cells", _segment_sim),
    Figure("segment-f1-real", "the same on real phase-contrast bacteria (the CTC movie, `dynfit segment` defaults: "
           "auto picks the shipped rod U-Net with 4-fold test-time augmentation)",
           ">= 0.95", "{python} -m napari_dynfit.bench.cells {data}/bacteria_div/data/bacteria --no-sim",
           _segment_real, data=("bacteria_div/data/bacteria/img", "bacteria_div/data/bacteria/TRA"),
           data_label="the CTC bacteria movie", timeout_s=7200),
    Figure("segment-classic-real", "the same movie with the classic back end (`dynfit segment --method classic`: "
           "what a user without torch gets), no per-movie flags: segmentation F1 at IoU 0.5",
           ">= 0.95", "{python} -m napari_dynfit.bench.cells {data}/bacteria_div/data/bacteria --no-sim "
           "--segment-args=--method=classic",
           _segment_real, data=("bacteria_div/data/bacteria/img", "bacteria_div/data/bacteria/TRA"),
           data_label="the CTC bacteria movie", timeout_s=7200),
    Figure("link-speed", "10^4 particles x 100 frames with gap closing", "<= trackpy, >= 5x laptrack",
           "{python} -m napari_dynfit.bench.tracking --sections speed --laptrack-n 2000", _tracking_speed,
           quick="{python} -m napari_dynfit.bench.tracking --sections speed --n 2000 --frames 50 --laptrack-n 500",
           timeout_s=7200, requires=("trackpy", "laptrack")),
    Figure("pdefind", "PDE-FIND data at 10 % / 20 % noise: exact term set", "5/5, >= 4/5",
           "{python} -m napari_dynfit.bench.pdefind", _pdefind,
           quick="{python} -m napari_dynfit.bench.pdefind --noise 0.1 --seeds 2", timeout_s=7200),
    Figure("pde-localized", "localized terms (Fisher-KPP front, Burgers shock, Allen-Cahn, boundary layer, Zeldovich "
           "front), defaults, 5 held-out seeds at 1 % / 5 % noise: equations with the exact set and every coefficient "
           "within 5 % on 5/5 seeds", ">= 4 of 5 at each noise level",
           "{python} -m napari_dynfit.bench.pde_localized --no-pdefind --first-seed 400", _localized,
           quick="{python} -m napari_dynfit.bench.pde_localized --no-pdefind --first-seed 400 --noise 0.05 --seeds 2",
           timeout_s=7200),
    Figure("abp-pde", "free ABPs, 2x10^4 particles: `rho_t = -v0 div p`, `p_t = -Dr p - v0/2 grad rho`",
           ">= 4/5 seeds, 10 %", "{python} -m napari_dynfit.bench.abp_pde", _abp,
           quick="{python} -m napari_dynfit.bench.abp_pde --seeds 1"),
    Figure("sample-walk", "GUI sample walk-through (2D sample, 750 particles, panel defaults; "
           "`napari_dynfit.bench.sample_walk`): exact `rho_t`, `p_t` terms; coefficients", "3/3; within 15 %",
           "{python} -m napari_dynfit.bench.sample_walk --seeds 3 4 5", _walk,
           quick="{python} -m napari_dynfit.bench.sample_walk --seeds 3"),
    Figure("sample-too-small", "a 128 µm, 50-frame piece of the sample (83 particles) through the same walk",
           "not identifiable", "{python} -m napari_dynfit.bench.sample_walk --seeds 3 4 5 --fov 128 --frames 50",
           _too_small),
    Figure("vicsek-bands", "Vicsek bands: band speed from the learned model", "within 10 %",
           "{python} -m napari_dynfit.bench.vicsek_pde", _vicsek, quick="{python} -m napari_dynfit.bench.vicsek_pde --seeds 1"),
    Figure("balances", "dominant balances: Burgers regimes; Vicsek bands (learned Toner-Tu model), front vs dilute "
           "bulk (tests/test_balance.py, tests/test_balance_bands.py)", "3 regimes, shock at max `\\|u_x\\|`; "
           "different balances, front has alignment + `grad(rho)`",
           "{python} -m napari_dynfit.bench.suite tests/test_balance.py::test_burgers_three_regimes_and_shock "
           "tests/test_balance_bands.py -m \"slow or not slow\"", _tests,
           timeout_s=3600),
    Figure("pinn-weighting", "PINN multiscale Poisson: inverse-Dirichlet vs fixed weights", "<= 1e-2, >= 10x",
           "{python} -m napari_dynfit.cli bench pinn-weighting", _pinn,
           quick="{python} -m napari_dynfit.cli bench pinn-weighting --steps 500", requires=("torch",)),
    Figure("latent-chemotaxis", "latent chemotaxis field `chi c` / `Dc`, `k`", "<= 5 % / 10 %",
           "{python} -m napari_dynfit.cli bench pinn-chemotaxis", _chemotaxis,
           quick="{python} -m napari_dynfit.cli bench pinn-chemotaxis --steps 300", requires=("torch",)),
    Figure("pfi-ou10", "PFI OU 10D `\\|A+B\\|/\\|B\\|` (the benchmark's settings)", "<= 0.10",
           "{python} -m napari_dynfit.cli bench pfi --case ou10", _pfi_ou10,
           quick="{python} -m napari_dynfit.cli bench pfi --case ou10 --quick", requires=("torch", "geomloss")),
    Figure("bpinn", "BPINN adaptive weights: Sobolev error vs eps-optimal / equal weights; Lotka-Volterra rates "
           "(5 seeds) within 5 % / 95 % interval covers; latent chemotaxis coverage", "<= 2x, >= 10x / 5/5, 5/5 / "
           "90-98 %", "{python} -m napari_dynfit.cli bench bpinn", _bpinn,
           quick="{python} -m napari_dynfit.cli bench bpinn --quick", requires=("torch",), timeout_s=7200),
    Figure("closure-resolved", "kinetic closures (issue 19) at the resolved reference (64^2 x 48 angles, solver "
           "version 2, the default): a-priori relative error of `S` over held-out snapshots, learned / Bingham, at "
           "alpha -2.5, -3.5, -4.5 (inside the trained -2..-5) and -6 (outside); alpha estimated from moment data of "
           "held-out runs", "learned <= Bingham; within 5 %",
           "{python} -m napari_dynfit.bench.closure --steps a_priori,a_posteriori,estimate --json", _closure_resolved,
           quick="", requires=("torch",), timeout_s=4 * 3600),
    Figure("closure-a-posteriori", "kinetic closures a posteriori (issue 19): moment model vs kinetic theory on a paired "
           "12-run ensemble at alpha = -2.5 (32^2; moment model from t = 10 to 60, 100x the training unroll; "
           "statistics over t = 20..60), learned / Bingham: mean `\\|u\\|` / order parameter / worst "
           "velocity-spectrum shell up to half of k_max; blow-ups. **Measured at the earlier, under-resolved "
           "reference** (32^2 x 32 angles, solver version 1: Psi 0.5 % negative at this alpha); the command now runs "
           "at the resolved 64^2 x 48 default and has not been re-run there (~1-2 CPU-h; docs/closures.md)",
           "within 5 % / 5 % / 10 %; none",
           "{python} -m napari_dynfit.bench.closure --steps a_priori,a_posteriori,stationary --json", _closure_post,
           quick="{python} -m napari_dynfit.bench.closure --steps a_priori,a_posteriori,stationary --json "
           "--stationary-t-end 30", requires=("torch",), timeout_s=4 * 3600),
    Figure("closure-a-posteriori-gpu", "the same a-posteriori check on a paired 128-run ensemble at alpha = -2.5 "
           "(on a GPU; seeds 99, 101-227; same window and training; the same earlier 32^2 x 32 reference, solver version 1; "
           "not re-run at 64^2 x 48)", "within 5 % / 5 % / 10 %; none",
           "{python} -m napari_dynfit.bench.closure --steps a_priori,a_posteriori,stationary "
           "--stationary-seeds 99,101-227 --stationary-batch 1000 --device cuda --json", _closure_post,
           gpu=True, requires=("torch",), timeout_s=3600),
    Figure("pfi-ou2", "PFI OU 2D `\\|A+B\\|/\\|B\\|` (the benchmark's settings)", "<= 0.05",
           "{python} -m napari_dynfit.cli bench pfi --case ou2", _pfi_ou,
           quick="{python} -m napari_dynfit.cli bench pfi --case ou2 --quick",
           requires=("torch", "geomloss")),
    Figure("infer-flow-defaults", "`dynfit infer-flow` defaults, 2D OU, 8 held-out drifts/seeds: never worse than the "
           "moment fit / error", "always / <= 0.03", "{python} -m napari_dynfit.cli bench pfi --case ou2-cli", _pfi_cli,
           quick="", requires=("torch", "geomloss")),  # the figure is about the CLI's defaults: no quick variant
    Figure("pfi-bistable", "PFI bistable with growth, d = 10: path energy / fate corr.", "<= 0.05 / >= 0.95",
           "{python} -m napari_dynfit.cli bench pfi --case bistable", _bistable,
           quick="{python} -m napari_dynfit.cli bench pfi --case bistable --quick", requires=("torch", "geomloss"),
           timeout_s=4 * 3600),  # about an hour on 2 idle cores
    Figure("pipeline-dask", "per-frame pipeline, 100 frames 512^2, 2 vs 1 Dask workers", ">= 1.7x, identical",
           "{python} -m napari_dynfit.bench.parallel", _parallel,
           quick="{python} -m napari_dynfit.bench.parallel --frames 30 --size 256", max_load=0.5),
    Figure("demo", "`dynfit demo` (full, every stage (8); `napari_dynfit.bench.demo_run`: wall time and peak memory of "
           "`dynfit demo -o DIR`)", "< 10 min on 2 cores", "{python} -m napari_dynfit.bench.demo_run", _demo,
           quick="", timeout_s=3600),
]
