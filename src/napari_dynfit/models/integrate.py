"""Forward integration of a PDE model (model JSON) from an observed frame, and forecast errors.

* Periodic domains: pseudo-spectral. Terms that are linear with constant coefficients and diagonal
  in Fourier space (``u``, ``u_xx``, ``u_xxxx``, ``lap(p)``, ``d_xy(u)``...) are integrated exactly
  with an integrating factor; all other terms are evaluated in real space with spectral derivatives
  and advanced with fourth-order Runge-Kutta (IF-RK4), 2/3-rule dealiasing of the explicit part.
* Other domains: method of lines with finite differences (:mod:`napari_dynfit.fields.derivatives`)
  and RK4; the values within ``boundary_width`` points of a non-periodic edge follow the observed
  fields (interpolated in time), i.e. observed Dirichlet data.

Fields read by the terms but without an equation are taken from the observed bundle (interpolated
in time) as forcing. The step is ``frame interval / substeps``; a step that produces non-finite or
exploding values is retried with twice as many substeps (up to ``max_substeps``).
"""

from __future__ import annotations

import numpy as np

from .._progress import progress_iter
from ..errors import InputError
from ..fields.bundle import FieldBundle
from .model_json import validate_model
from .terms import Deriv, Field, Op, evaluate_terms, parse_term, term_fields


def _evolved(model: dict) -> dict[str, dict[str, float]]:
    out = {}
    for lhs, terms in model["equations"].items():
        node = parse_term(lhs)
        if not (isinstance(node, Field) and node.derivs == ("t",)):
            raise InputError(f"equation '{lhs}' is not a first time derivative of a field (e.g. 'u_t')")
        out[node.field] = terms
    return out


def _linear_symbol(name: str, field: str, ks: list[np.ndarray], space_axes) -> np.ndarray | None:
    """Fourier symbol of a term that is a constant-coefficient linear operator on ``field``, else None."""
    node = parse_term(name)
    letters = None
    if isinstance(node, Field) and node.field == field and "t" not in node.derivs or isinstance(node, Deriv) and isinstance(node.arg, Field) and node.arg.field == field \
            and not node.arg.derivs and "t" not in node.derivs:
        letters = node.derivs
    elif isinstance(node, Op) and node.op == "lap" and isinstance(node.arg, Field) and node.arg.field == field \
            and not node.arg.derivs:
        return -sum(k ** 2 for k in ks)
    if letters is None:
        return None
    sym = np.ones(np.broadcast_shapes(*[k.shape for k in ks]), dtype=complex)
    for letter in letters:
        sym = sym * (1j * ks[space_axes.index(letter)])
    return sym


class _System:
    def __init__(self, model, observed: FieldBundle, spectral: bool, boundary_width: int):
        self.model = model
        self.obs = observed
        self.eqs = _evolved(model)
        self.ref = model.get("reference", {})
        self.spectral = spectral
        self.bw = boundary_width
        needed = term_fields([n for terms in self.eqs.values() for n in terms])
        missing = needed - set(observed.fields)
        if missing:
            raise InputError(f"the model reads fields {sorted(missing)} that the observed bundle lacks")
        for f in self.eqs:
            if f not in observed.fields:
                raise InputError(f"the model evolves '{f}' but the observed bundle has no such field")
        self.forcing = sorted(needed - set(self.eqs))
        self.space = observed.ndim
        shape = observed.shape[1:]
        if spectral:
            ks = []
            for a, n in enumerate(shape):
                k = 2 * np.pi * (np.fft.rfftfreq(n, observed.spacing[a]) if a == len(shape) - 1
                                 else np.fft.fftfreq(n, observed.spacing[a]))
                sh = [1] * len(shape)
                sh[a] = len(k)
                ks.append(k.reshape(sh))
            self.ks = ks
            self.linear = {}
            self.explicit = {}
            for f, terms in self.eqs.items():
                L = 0.0
                rest = {}
                for name, c in terms.items():
                    sym = _linear_symbol(name, f, ks, observed.space_axes)
                    if sym is None:
                        rest[name] = c
                    else:
                        L = L + c * sym
                self.linear[f] = L * np.ones(np.broadcast_shapes(*[k.shape for k in ks]))
                self.explicit[f] = rest
            cut = [np.abs(k) <= (2.0 / 3.0) * np.abs(k).max() for k in ks]
            self.dealias = np.ones(np.broadcast_shapes(*[k.shape for k in ks]), bool)
            for c in cut:
                self.dealias = self.dealias & c
        else:
            self.explicit = self.eqs

    def frame_bundle(self, state: dict, t: float) -> FieldBundle:
        fields = {k: v[None] for k, v in state.items()}
        for f in self.forcing:
            fields[f] = self.observed_at(f, t)[None]
        coords = dict(self.obs.coords)
        coords["t"] = np.array([t])
        return FieldBundle(fields, coords, periodic=self.obs.periodic)

    def observed_at(self, f: str, t: float) -> np.ndarray:
        times = self.obs.coords["t"]
        i = int(np.clip(np.searchsorted(times, t) - 1, 0, len(times) - 2)) if len(times) > 1 else 0
        if len(times) == 1:
            return self.obs[f][0]
        w = (t - times[i]) / (times[i + 1] - times[i])
        return (1 - w) * self.obs[f][i] + w * self.obs[f][i + 1]

    def rhs(self, state: dict, t: float, terms_by_field: dict) -> dict:
        b = self.frame_bundle(state, t)
        names = sorted({n for terms in terms_by_field.values() for n in terms})
        vals = evaluate_terms(b, names, method="spectral" if self.spectral else "finite", reference=self.ref)
        out = {}
        for f, terms in terms_by_field.items():
            acc = np.zeros_like(state[f])
            for n, c in terms.items():
                acc = acc + c * (vals[n][0] if n != "1" else 1.0)
            out[f] = acc
        return out

    def impose_boundary(self, state: dict, t: float) -> dict:
        if self.bw == 0 or all(self.obs.periodic):
            return state
        for f in state:
            ref = self.observed_at(f, t)
            for a, per in enumerate(self.obs.periodic):
                if per:
                    continue
                for sl in (slice(0, self.bw), slice(-self.bw, None)):
                    idx = (slice(None),) * a + (sl,)
                    state[f][idx] = ref[idx]
        return state

    # --- steppers --------------------------------------------------------------------------
    def _fft(self, a):
        axes = tuple(range(self.space))
        return np.fft.rfftn(a, axes=axes)

    def _ifft(self, a, shape):
        axes = tuple(range(self.space))
        return np.fft.irfftn(a, s=shape, axes=axes)

    def step_spectral(self, state, t, h):
        shape = self.obs.shape[1:]
        fields = list(state)

        def expand(L, arr):
            return L if arr.ndim == self.space else L[..., None]

        def N(st, tt):
            r = self.rhs(st, tt, self.explicit)
            return {f: self._fft(r[f]) * expand(self.dealias, r[f]) for f in fields}

        def real(hat):
            return {f: self._ifft(hat[f], shape) for f in fields}

        u = {f: self._fft(state[f]) for f in fields}
        E = {f: expand(np.exp(self.linear[f] * h), state[f]) for f in fields}
        E2 = {f: expand(np.exp(self.linear[f] * h / 2), state[f]) for f in fields}
        k1 = N(state, t)
        a = {f: E2[f] * (u[f] + h / 2 * k1[f]) for f in fields}
        k2 = N(real(a), t + h / 2)
        b = {f: E2[f] * u[f] + h / 2 * k2[f] for f in fields}
        k3 = N(real(b), t + h / 2)
        c = {f: E[f] * u[f] + h * E2[f] * k3[f] for f in fields}
        k4 = N(real(c), t + h)
        new = {f: E[f] * u[f] + h / 6 * (E[f] * k1[f] + 2 * E2[f] * (k2[f] + k3[f]) + k4[f]) for f in fields}
        return real(new)

    def step_finite(self, state, t, h):
        def add(s, k, w):
            return {f: s[f] + w * k[f] for f in s}

        k1 = self.rhs(state, t, self.explicit)
        k2 = self.rhs(self.impose_boundary(add(state, k1, h / 2), t + h / 2), t + h / 2, self.explicit)
        k3 = self.rhs(self.impose_boundary(add(state, k2, h / 2), t + h / 2), t + h / 2, self.explicit)
        k4 = self.rhs(self.impose_boundary(add(state, k3, h), t + h), t + h, self.explicit)
        new = {f: state[f] + h / 6 * (k1[f] + 2 * k2[f] + 2 * k3[f] + k4[f]) for f in state}
        return self.impose_boundary(new, t + h)


def iter_integrate(model: dict, observed: FieldBundle, *, start: int = 0, stop: int | None = None,
                   substeps: int = 8, max_substeps: int = 1024, boundary_width: int = 3):
    """Integrate frame by frame; yields ``(frame index, {field: array})`` starting with frame ``start``.

    Same parameters as :func:`integrate_model` (which collects this generator into a bundle); the
    napari widget uses it to show the simulated fields while they are computed.
    """
    model = validate_model(model)
    nt = observed.shape[0]
    stop = nt if stop is None else min(stop, nt)
    if not 0 <= start < stop:
        raise InputError(f"start frame {start} must be before stop frame {stop} (of {nt})")
    spectral = all(observed.periodic)
    system = _System(model, observed, spectral, boundary_width)
    state = {f: np.array(observed[f][start], dtype=float) for f in system.eqs}
    scale = {f: max(float(np.abs(observed[f]).max()), 1e-12) for f in state}
    times = observed.coords["t"]
    yield start, {f: v.copy() for f, v in state.items()}
    m = substeps
    for i in progress_iter(range(start, stop - 1), desc="integrating model"):
        t0, t1 = times[i], times[i + 1]
        while True:
            h = (t1 - t0) / m
            s = {f: v.copy() for f, v in state.items()}
            ok = True
            with np.errstate(all="ignore"):
                for j in range(m):
                    s = system.step_spectral(s, t0 + j * h, h) if spectral else system.step_finite(s, t0 + j * h, h)
                    if not all(np.isfinite(v).all() and np.abs(v).max() < 1e3 * scale[f] for f, v in s.items()):
                        ok = False
                        break
            if ok:
                break
            m *= 2
            if m > max_substeps:
                hint = ("unstable (check the learned terms)" if spectral else
                        "unstable, or too stiff for explicit finite differences (high-order derivatives on a "
                        "non-periodic grid; periodic grids integrate linear terms exactly)")
                raise InputError(f"the model blows up between t={t0:g} and t={t1:g} even with {max_substeps} "
                                 f"steps per frame: it is {hint}")
        state = s
        yield i + 1, {f: v.copy() for f, v in state.items()}


def integrate_model(model: dict, observed: FieldBundle, *, start: int = 0, stop: int | None = None,
                    substeps: int = 8, max_substeps: int = 1024, boundary_width: int = 3) -> FieldBundle:
    """Integrate a model forward from frame ``start`` of ``observed`` to the frames up to ``stop``.

    Parameters
    ----------
    model : dict
        Model JSON (``{"equations": {"u_t": {...}}, ...}``); every left-hand side is ``<field>_t``.
    observed : FieldBundle
        Supplies the initial state (frame ``start``), the grid, periodicity, forcing fields and,
        on non-periodic axes, the boundary values.
    start, stop : int
        Frame range (``stop`` exclusive, default all frames).
    substeps : int
        Initial number of time steps per frame interval.
    max_substeps : int
        Give up (``InputError``) when a frame interval still blows up with this many steps.
    boundary_width : int
        Non-periodic axes: points next to each edge that follow the observed values.

    Returns
    -------
    FieldBundle
        The simulated fields on the observed grid at the frames ``start .. stop - 1``.
    """
    out: dict[str, list] = {}
    frames = []
    for i, state in iter_integrate(model, observed, start=start, stop=stop, substeps=substeps,
                                   max_substeps=max_substeps, boundary_width=boundary_width):
        frames.append(i)
        for f, v in state.items():
            out.setdefault(f, []).append(v)
    coords = dict(observed.coords)
    coords["t"] = observed.coords["t"][frames]
    return FieldBundle({f: np.stack(v) for f, v in out.items()}, coords, periodic=observed.periodic,
                       attrs={"simulated_from": "model", "start_frame": start})


def forecast_error(model: dict, observed: FieldBundle, *, start: int = 0, stop: int | None = None,
                   substeps: int = 8, max_substeps: int = 1024, boundary_width: int = 3) -> dict:
    """Relative L2 error of the integrated model against the observed frames.

    Parameters
    ----------
    model, observed, start, stop, substeps, max_substeps, boundary_width
        As in :func:`integrate_model`.

    Returns
    -------
    dict
        ``{"times": [...], "relative_l2": {field: [...]}, "simulated": FieldBundle}``; the error at
        time ``t`` is ``|sim(t) - obs(t)| / |obs(t) - mean obs(t)|`` over the grid (so a model
        that keeps the mean but loses the pattern scores about 1).
    """
    sim = integrate_model(model, observed, start=start, stop=stop, substeps=substeps, max_substeps=max_substeps,
                          boundary_width=boundary_width)
    errs = {}
    for f in sim.fields:
        obs = observed[f][start:start + sim.shape[0]]
        diff = (sim[f] - obs).reshape(len(obs), -1)
        dev = (obs - obs.mean(axis=tuple(range(1, obs.ndim)), keepdims=True)).reshape(len(obs), -1)
        errs[f] = (np.linalg.norm(diff, axis=1) / np.maximum(np.linalg.norm(dev, axis=1), 1e-300)).tolist()
    return {"times": sim.coords["t"].tolist(), "relative_l2": errs, "simulated": sim}
