"""Field denoising and inpainting with a learned PDE as the physics loss.

Coarse-grained fields are noisy and have gaps (no cells nearby, frames dropped). A field network
is fitted to the observed grid values (``data`` losses, one per field) while the residuals of a
PDE model (the model JSON of PDE discovery, ``{"equations": {"u_t": {"u*u_x": -1.0, ...}}}``)
are penalised at random collocation points over the whole space-time box. The network's values
on the grid are the denoised fields; masked-out points are filled by the physics (inpainting).
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ..terms import parse_term, term_fields
from .losses import Coefficient, PointLoss, ResidualLoss
from .network import FieldNetwork
from .results import _options, _options_of
from .train import PINN


def _equations(model) -> dict:
    eqs = model.get("equations") if isinstance(model, dict) else None
    if not isinstance(eqs, dict) or not eqs:
        raise InputError("the model needs an 'equations' mapping like {'u_t': {'u*u_x': -1.0}}: "
                         "pass a model JSON written by `dynfit discover-pde`")
    for lhs, rhs in eqs.items():
        parse_term(lhs)
        if not isinstance(rhs, dict):
            raise InputError(f"equation '{lhs}' must map terms to numbers")
    return eqs


def fields_pinn(bundle, model, *, fields=None, mask=None, learn_coefficients: bool = False,
                weighting: str = "inverse-dirichlet", hidden=(64, 64, 64), harmonics: int = 6,
                fourier_features: int = 16, fourier_scale: float = 2.0, n_collocation: int = 4000,
                batch_size: int = 1024, lr: float = 2e-3, device: str = "auto", seed: int = 0) -> PINN:
    """Build the PINN that fits ``bundle``'s fields under the model's equations.

    Parameters
    ----------
    bundle : FieldBundle
        Observed fields on a ``(t, *space)`` grid.
    model : dict
        Model JSON with ``"equations"`` (and optionally ``"reference"`` for ``dev(...)`` terms).
    fields : sequence of str, optional
        Fields to fit (default: every field the equations use).
    mask : ndarray of bool, shape (t, *space), optional
        ``True`` where the data is observed (default everywhere); the rest is inpainted.
    learn_coefficients : bool
        Refine the model's coefficients too (initialised at the model's values).
    weighting, hidden, harmonics, fourier_features, fourier_scale, n_collocation, batch_size, lr, device, seed
        As in :func:`~.chemotaxis.latent_chemotaxis_pinn`.
    """
    eqs = _equations(model)
    used = term_fields(list(eqs) + [t for rhs in eqs.values() for t in rhs])
    names = list(fields) if fields is not None else sorted(used)
    missing = [n for n in set(names) | used if n not in bundle.fields]
    if missing:
        raise InputError(f"the equations use fields {missing} that the bundle lacks (it has {sorted(bundle.fields)})")
    for n in names:
        if bundle.kinds[n] not in ("scalar", "vector"):
            raise InputError(f"field '{n}' is a {bundle.kinds[n]}; only scalar and vector fields can be fitted")
    if mask is None:
        mask = np.ones(bundle.shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != bundle.shape:
        raise InputError(f"mask has shape {mask.shape}; expected the bundle grid {bundle.shape}")
    if not mask.any():
        raise InputError("the mask selects no observed points: nothing to fit")
    axes = ["t", *bundle.space_axes]
    mesh = np.meshgrid(*[bundle.coords[a] for a in axes], indexing="ij")
    pts = np.stack([m[mask] for m in mesh], axis=1)
    bounds = [(float(bundle.coords[a].min()), float(bundle.coords[a].max())) for a in axes]
    for i, a in enumerate(bundle.space_axes):
        if bundle.periodic[i]:  # the period includes the last grid step
            bounds[1 + i] = (bounds[1 + i][0], bounds[1 + i][1] + bundle.spacing[i])
    for i, (lo, hi) in enumerate(bounds):
        if hi <= lo:
            raise InputError(f"axis '{axes[i]}' has a single coordinate: need at least two points per axis")
    scale = {n: float(np.std(bundle[n][mask])) or 1.0 for n in names}
    offset = {n: float(np.mean(bundle[n][mask])) if bundle.kinds[n] == "scalar" else 0.0 for n in names}
    net = FieldNetwork(bounds, {n: bundle.kinds[n] for n in names}, periodic=bundle.periodic, hidden=hidden,
                       harmonics=harmonics, fourier_features=fourier_features, fourier_scale=fourier_scale,
                       output_scale=scale, output_offset=offset, seed=seed)
    losses = [PointLoss(f"data {n}", n, pts, bundle[n][mask], batch_size=batch_size) for n in names]
    rng = np.random.default_rng(seed)
    coll = np.column_stack([rng.uniform(lo, hi, n_collocation) for lo, hi in bounds])
    coefs = {}
    for lhs, rhs in eqs.items():
        terms = {}
        for j, (term, c) in enumerate(rhs.items()):
            if learn_coefficients:
                cname = f"c{len(coefs)}"
                coefs[cname] = Coefficient(float(c), positive=False)
                terms[term] = cname
            else:
                terms[term] = float(c)
        losses.append(ResidualLoss(f"pde {lhs}", lhs, terms, coll, batch_size=batch_size))
    return PINN(net, losses, coefs, weighting=weighting, reference=model.get("reference"), lr=lr,
                device=device, seed=seed)


def denoise_fields(bundle, model, *, steps: int = 2000, lbfgs_steps: int = 0, checkpoint=None, fields=None, mask=None,
                   learn_coefficients: bool = False, weighting: str = "inverse-dirichlet", hidden=(64, 64, 64),
                   harmonics: int = 6, fourier_features: int = 16, fourier_scale: float = 2.0,
                   n_collocation: int = 4000, batch_size: int = 1024, lr: float = 2e-3, device: str = "auto",
                   seed: int = 0):
    """Denoise/inpaint fields with a PDE model as the physics loss.

    Parameters
    ----------
    bundle : FieldBundle
        Observed (noisy, gappy) fields.
    model : dict
        Model JSON with ``"equations"``.
    steps, lbfgs_steps : int
        Adam steps and L-BFGS iterations.
    checkpoint : str or Path, optional
        Checkpoint file (resumed from when it exists).
    fields, mask, learn_coefficients, weighting, hidden, harmonics, fourier_features, fourier_scale, n_collocation, \
batch_size, lr, device, seed
        The network, losses and training of :func:`fields_pinn` (same meanings and defaults).

    Returns
    -------
    DenoiseResult
        ``fields``: the fitted fields on the same grid (``attrs["pinn"]`` holds the final losses, weights and
        any refined coefficients); ``pinn``: the trained PINN; ``options``: every option of the call. Unpacks as
        ``fields, pinn``.
    """
    options = _options(locals(), ("bundle", "model"))  # first: locals() is the call's arguments only here
    from pathlib import Path

    from ...fields import FieldBundle

    pinn = fields_pinn(bundle, model, **_options_of(fields_pinn, options))
    if checkpoint is not None and Path(checkpoint).exists():
        pinn.load_checkpoint(checkpoint)
    pinn.fit(steps, lbfgs_steps, checkpoint=checkpoint)
    vals = pinn.predict_grid(bundle.coords)
    out = FieldBundle(vals, dict(bundle.coords), {n: bundle.kinds[n] for n in vals}, bundle.periodic,
                      {**bundle.attrs, "pinn": summary(pinn)})
    from .results import DenoiseResult

    return DenoiseResult(fields=out, pinn=pinn, options=options)


def summary(pinn: PINN) -> dict:
    """JSON-serialisable summary of a trained PINN: steps, final losses, weights, coefficients."""
    return {"adam_steps": pinn.step, "lbfgs_steps": pinn.lbfgs_step, "weighting": pinn.weighting.strategy,
            "weights": dict(pinn.weighting.weights), "coefficients": pinn.coefficient_values(),
            "losses": {k[5:]: v[-1] for k, v in pinn.history.items() if k.startswith("loss:") and v}}
