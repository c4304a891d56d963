"""The track analysis plot (_napari/_plots.plot_track_analysis, drawn by the track widget) shows the mobility
populations' fits when the composition check flags the ensemble exponent."""

import pytest

pytestmark = pytest.mark.gui


def test_plot_shows_populations_when_flagged():
    from matplotlib.figure import Figure

    from napari_dynfit._napari._plots import plot_track_analysis
    from napari_dynfit.sim.beads_in_focus import simulate_beads_in_focus
    from napari_dynfit.track import fit_msd, velocity_autocorrelation

    tr = simulate_beads_in_focus(2000, 100, D=(1.0, 0.1), fractions=(0.7, 0.3), height=100, depth=20, seed=0)
    fit = fit_msd(tr, min_length=25)
    assert not fit.composition_ok and len(fit.populations) == 2
    fig = Figure()
    ax, _ = plot_track_analysis(fig, fit, velocity_autocorrelation(tr, max_lag=5))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("not identified" in x for x in labels)
    assert sum(x.startswith("population") for x in labels) == 2
    assert f"({fit.populations[0].n_tracks} tracks)" in " ".join(labels)
    one = fit_msd(simulate_beads_in_focus(2000, 100, D=(1.0,), height=100, depth=20, seed=0), min_length=25)
    ax, _ = plot_track_analysis(Figure(), one, velocity_autocorrelation(tr, max_lag=5))
    assert [t.get_text() for t in ax.get_legend().get_texts()][1] == f"fit: exponent {one.exponent:.2f}"
