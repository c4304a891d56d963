"""The one device rule of the package: ``"auto"`` (the default everywhere), ``"cpu"`` or ``"cuda"``.

Every function that can run on a GPU (APR filters, PINNs, probability flow inference) takes ``device=`` and
resolves it here, so the same word means the same thing in the CLI, the widgets and scripts.
"""

from __future__ import annotations

from .errors import InputError

#: the default of every ``device=`` parameter and ``--device`` option
DEFAULT_DEVICE = "auto"
DEVICES = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    """Whether PyTorch is installed and sees a CUDA GPU (False without torch)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str = DEFAULT_DEVICE) -> str:
    """The device that runs: ``"cpu"`` or ``"cuda"`` (``"cuda:N"`` is kept as given).

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"} or "cuda:N"
        ``"auto"``: CUDA when PyTorch sees a GPU, else the CPU; ``"cuda"`` without a GPU is an error.

    Returns
    -------
    str
        A name that both the native kernels and :class:`torch.device` accept.

    Raises
    ------
    InputError
        An unknown name, or ``"cuda"`` asked for where torch sees no GPU.
    """
    name = str(device).lower() if device is not None else DEFAULT_DEVICE
    if name not in DEVICES and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if name == "cpu":
        return "cpu"
    has_cuda = cuda_available()
    if name == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise InputError(f"device={device!r} needs PyTorch with a visible CUDA GPU; use device='cpu' or 'auto'")
    return name
