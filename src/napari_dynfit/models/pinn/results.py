"""Results of the PINN estimators: the fitted fields with the trained network, in the package's result shape.

Both still unpack as the pairs the functions returned before (``bundle, pinn = denoise_fields(...)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...results import Result

__all__ = ["DenoiseResult", "LatentFieldResult"]


@dataclass
class _FieldsResult(Result):
    """Fitted fields (``fields``, a FieldBundle) and the options of the call (``options``)."""

    fields: object
    options: dict | None = None

    def __iter__(self):  # unpacks as the former (fields, second) tuple
        yield self.fields
        yield self._second()

    def _second(self):
        raise NotImplementedError

    @property
    def pinn_summary(self) -> dict:
        """Steps, final losses, loss weights and coefficients (``fields.attrs["pinn"]``)."""
        return dict((getattr(self.fields, "attrs", None) or {}).get("pinn", {}))

    def summary(self) -> str:
        info = self.pinn_summary
        lines = [f"{type(self).__name__}: fields {', '.join(sorted(self.fields.fields))} on "
                 f"{' x '.join(map(str, self.fields.shape))} ({', '.join(('t',) + tuple(self.fields.space_axes))})"]
        if info:
            lines.append(f"  {info.get('adam_steps', 0)} Adam steps, {info.get('lbfgs_steps', 0)} L-BFGS, weighting "
                         f"{info.get('weighting')}")
            for k, v in (info.get("coefficients") or {}).items():
                lines.append(f"  {k} = {v:.4g}")
            for k, v in (info.get("losses") or {}).items():
                lines.append(f"  loss {k}: {v:.3g}")
        return "\n".join(lines)

    def plot(self, ax=None, *, field: str | None = None, frame: int = -1):
        """The last frame (``frame``) of ``field`` (default the first scalar field) as an image; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        b = self.fields
        name = field or next(n for n, k in b.kinds.items() if k == "scalar")
        v = np.asarray(b.fields[name])[frame]
        if v.ndim == 1:
            ax.plot(np.asarray(b.coords[b.space_axes[0]]), v)
            ax.set_xlabel(b.space_axes[0])
        else:
            im = ax.imshow(v, origin="lower")
            ax.figure.colorbar(im, ax=ax)
        ax.set_title(f"{name}, frame {frame}")
        return ax


@dataclass
class DenoiseResult(_FieldsResult):
    """What :func:`~napari_dynfit.models.pinn.denoise_fields` returns.

    Attributes
    ----------
    fields : FieldBundle
        The fitted fields on the input grid (``attrs["pinn"]``: final losses, weights, coefficients).
    pinn : PINN
        The trained network (not written by :meth:`save`; None after :meth:`load`).
    options : dict
        The options of the call.
    """

    pinn: object = None

    def _second(self):
        return self.pinn

    def predict(self, points) -> np.ndarray:
        """The fields at points ``(n, 1 + d)`` (``t, *space``) from the trained network."""
        if self.pinn is None:
            raise ValueError("a loaded result has no network: predict from the saved fields instead")
        return self.pinn.predict(points)


@dataclass
class LatentFieldResult(_FieldsResult):
    """What :func:`~napari_dynfit.models.pinn.fit_latent_field` returns.

    Attributes
    ----------
    fields : FieldBundle
        ``phi = chi c`` (and the learned source ``s``) on a grid; ``attrs["pinn"]`` holds the coefficients
        ``Dc``, ``k`` (and ``chi``), their starting values and the final losses.
    problem : LatentFieldProblem
        The PINN and the velocity data (the network is not written by :meth:`save`).
    options : dict
        The options of the call.
    """

    problem: object = None

    def _second(self):
        return self.problem

    @property
    def coefficients(self) -> dict:
        """``Dc``, ``k`` (``chi``) as fitted."""
        return dict(self.pinn_summary.get("coefficients") or {})


def _options(values: dict, skip=()) -> dict:
    """The options of a call (its ``locals()`` at entry) to echo in the result, without the data arguments."""
    return {k: v for k, v in values.items() if k not in skip}


def _options_of(builder, options: dict) -> dict:
    """The subset of ``options`` that ``builder`` (a function taking them as keywords) accepts."""
    import inspect

    return {k: options[k] for k in inspect.signature(builder).parameters if k in options}
