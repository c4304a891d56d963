"""``dynfit demo`` stage "APR conversion": the sample movie to an APR movie, read back lazily."""

from __future__ import annotations


def _demo_stage(ctx) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    from ..apr import open_lazy, to_apr, write_apr_movie

    movie = ctx.artefacts.get("movie")
    if movie is None:
        ctx.report.add_text("No simulated movie in this run (the simulation stage did not produce one): "
                            "APR conversion skipped.")
        return
    meta = ctx.artefact_meta.get("movie", {})
    scale = list(meta.get("scale", [1.0] * np.ndim(movie)))
    dt = float(meta.get("dt", scale[0]))
    apr_movie = to_apr(np.asarray(movie), movie=True, frame_interval=dt, spacing=scale[1:], rel_error=0.1)
    path = write_apr_movie(apr_movie, ctx.out_dir / "movie_apr.aprmovie")
    stats = apr_movie.stats()
    ctx.artefacts["apr"] = {"path": path.name, **{k: stats[k] for k in
                                                  ("particles", "computational_ratio", "memory_saved")}}
    ctx.report.add_text(f"The movie {tuple(np.shape(movie))} was converted frame by frame to the APR "
                        f"(rel_error 0.1) and written to {path.name}: {stats['particles']} particles, "
                        f"computational ratio {stats['computational_ratio']:.1f}, "
                        f"{100 * stats['memory_saved']:.0f} % less memory than the pixels.")
    ctx.report.add_table({k: stats[k] for k in ("shape", "particles", "computational_ratio", "memory_saved")})
    lazy = open_lazy(path)["levels"][0][0]
    lev = open_lazy(path, mode="level")["levels"][0][0]
    err = np.abs(lazy[0].astype(float) - np.asarray(movie[0], float))
    ctx.report.add_text(f"Frame 0 read back lazily from the file: mean |reconstruction - pixels| = {err.mean():.2f} "
                        f"grey levels (pixel std {np.std(movie[0]):.1f}); noise-dominated background needs many "
                        "particles, so noisy 2D movies compress little, 3D stacks with dark background much more.")
    fig, ax = plt.subplots(1, 3, figsize=(12, 4))
    first = np.asarray(movie[0])
    for a, img, title in zip(ax, (first, lazy[0], lev[0]),
                             ("frame 0 (pixels)", "APR reconstruction (lazy, from file)", "particle level")):
        a.imshow(img if img.ndim == 2 else img.max(0), cmap="magma" if title != "particle level" else "viridis")
        a.set_title(title)
        a.axis("off")
    ctx.report.add_figure(fig, "First frame, its APR reconstruction and the particle levels")


DEMO_STAGE = (20, "APR conversion", _demo_stage)
