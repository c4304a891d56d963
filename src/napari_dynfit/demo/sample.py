"""``dynfit demo`` stage "Simulated sample": the embedded 2D sample of active particles and the field-learning ABPs."""

from __future__ import annotations

from ..sim.samples import demo_trajectories


def _demo(ctx) -> None:
    import matplotlib.pyplot as plt

    from ..sim import abp_msd, active_particles_2d
    from ..sim.samples import DEMO_PIECE

    sample = active_particles_2d(seed=ctx.seed, **DEMO_PIECE)
    ctx.artefacts["sample"] = sample
    ctx.artefacts["movie"] = sample.movie
    ctx.artefacts["truth"] = sample.truth
    ctx.artefact_meta["movie"] = {"scale": [1.0, *sample.spacing], "dt": sample.dt, "layer_type": "image"}
    ctx.artefact_meta["truth"] = {"scale": [1.0, *sample.spacing], "dt": sample.dt, "layer_type": "tracks"}
    traj = demo_trajectories(quick=ctx.quick, seed=ctx.seed)
    ctx.artefacts["trajectories"] = traj
    # ~100 MB as a table and regenerated exactly from its seed: not stored in the project folder
    ctx.artefact_meta["trajectories"] = {"units": "physical", "box": traj.box.tolist(), "dt": traj.frame_interval,
                                         "params": traj.params, "persist": False}

    sim = sample.params["simulation"]
    ctx.report.add_text(
        f"Embedded sample: {sim['n_particles']} active Brownian particles (v0 = {sim['v0']} um/s, "
        f"Dr = {sim['Dr']} 1/s, Dt = {sim['Dt']} um^2/s), {sample.movie.shape[0]} frames of "
        f"{sample.movie.shape[1]} x {sample.movie.shape[2]} "
        f"pixels ({sample.spacing[0]} um, {sample.dt:g} s), Gaussian PSF "
        f"{sample.params['render']['psf_sigma']} px, peak SNR 10 (a piece of the GUI's sample). "
        f"Field-learning trajectories: {traj.n_particles} free ABPs from a density stripe, "
        f"{len(traj.times)} frames, box {traj.box[0]:g} x {traj.box[1]:g}.")
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    t = sample.movie.shape[0] // 2
    axes[0].imshow(sample.movie[t], cmap="gray")
    f = sample.truth[sample.truth["frame"] == t]
    axes[0].scatter(f["x"], f["y"], s=40, facecolors="none", edgecolors="tab:red", linewidths=0.8)
    axes[0].set_title(f"frame {t} with ground truth (red)")
    disp = traj.unwrapped - traj.unwrapped[0]
    msd = (disp**2).sum(-1).mean(1)
    p = traj.params
    axes[1].loglog(traj.times[1:], msd[1:], "o", ms=3, label="simulation")
    axes[1].loglog(traj.times[1:], abp_msd(traj.times[1:], v0=p["v0"], Dr=p["Dr"], Dt=p["Dt"]), "-", label="theory")
    axes[1].set_xlabel("t")
    axes[1].set_ylabel("MSD")
    axes[1].legend()
    axes[1].set_title("field-learning ABPs: MSD vs theory")
    ctx.report.add_figure(fig, "Simulated sample and the free-ABP mean-squared displacement against theory.")


DEMO_STAGE = (10, "Simulated sample", _demo)
