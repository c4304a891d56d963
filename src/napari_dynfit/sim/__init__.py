"""Ground-truth simulators: active particles, dividing cells, and their fluorescence movies.

* :func:`simulate_abp` -> :class:`ParticleTrajectories` (active Brownian particles, alignment,
  density-dependent speed; periodic 2D/3D box), :func:`abp_msd` (exact free-ABP MSD),
  :func:`vicsek_bands_preset` (parameters that form travelling bands in 2D);
* :func:`simulate_dividing_cells` -> lineage table (divisions, deaths);
* :func:`.beads_in_focus.simulate_beads_in_focus`: tracks of beads seen while in focus (mixed populations, for
  the MSD composition check);
* :func:`render_movie` (spots through a Gaussian PSF), :func:`render_cells` + :func:`render_labels`
  (nuclei and their ground-truth masks), Poisson + read noise, uint16;
* :func:`simulate_chemotaxis` (cells steered by a hidden diffusing chemical, for latent-field inference);
* :func:`simulate_ou_snapshots`, :func:`simulate_bistable_growth` (untracked snapshots with known drift
  and growth, for probability flow inference);
* :func:`active_matter_example`, :func:`write_active_matter_example` (fields of known physics in The Well's
  ``active_matter`` layout);
* :mod:`.samples`: the embedded samples used by napari and ``dynfit demo``.
"""

from .abp import ParticleTrajectories, abp_msd, simulate_abp, vicsek_bands_preset
from .cells import expected_growth_factor, simulate_dividing_cells
from .chemotaxis import ChemotaxisSimulation, simulate_chemotaxis, source_spots
from .render import amplitude_for_snr, render_cells, render_labels, render_movie
from .samples import Sample, active_particles_2d, dividing_cells_3d
from .snapshots import bistable_birth_rate, bistable_drift, simulate_bistable_growth, simulate_ou_snapshots
from .well_example import active_matter_example, write_active_matter_example

__all__ = [
    "active_matter_example",
    "write_active_matter_example",
    "ParticleTrajectories",
    "simulate_abp",
    "abp_msd",
    "vicsek_bands_preset",
    "simulate_dividing_cells",
    "expected_growth_factor",
    "render_movie",
    "render_cells",
    "render_labels",
    "amplitude_for_snr",
    "Sample",
    "active_particles_2d",
    "dividing_cells_3d",
    "ChemotaxisSimulation",
    "simulate_chemotaxis",
    "source_spots",
    "bistable_birth_rate",
    "bistable_drift",
    "simulate_bistable_growth",
    "simulate_ou_snapshots",
]
