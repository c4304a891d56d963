"""Safe file output: nothing is written unless the write completes.

Use :func:`atomic_path` for every file or directory the package writes: the caller writes to a
temporary sibling path, which is renamed onto the destination only when the ``with`` block exits
without an exception. An existing destination is replaced only at that moment (so a failed write
never destroys the user's previous file).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from .errors import InputError


def check_input_file(path, *, suffixes: tuple[str, ...] | None = None, what: str = "input file") -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` after checking that it exists and is readable.

    Parameters
    ----------
    path : str or Path
        The file (or directory, e.g. OME-Zarr) the user named.
    suffixes : tuple of str, optional
        Accepted suffixes (lower case, with the dot). ``None`` accepts any.
    what : str
        How the message names the file, e.g. ``"APR file"``.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{what} '{p}' does not exist: check the path")
    if suffixes is not None:
        name = p.name.lower()
        if not any(name.endswith(s) for s in suffixes):
            raise InputError(
                f"{what} '{p}' has an unsupported type; expected one of {', '.join(suffixes)}"
            )
    return p


@contextlib.contextmanager
def atomic_path(dest, *, is_dir: bool = False):
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` on success.

    Parameters
    ----------
    dest : str or Path
        Final file or directory path. Its parent directory is created if missing.
    is_dir : bool
        ``True`` when the payload is a directory (Zarr store, CTC folder): the temporary
        directory is created empty and an existing ``dest`` directory is replaced as a whole.

    Yields
    ------
    Path
        Where the caller must write. It keeps ``dest``'s suffix so that libraries that dispatch
        on the file extension (tifffile, zarr, h5py) behave the same.
    """
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.tmp-{uuid.uuid4().hex[:8]}{dest.suffix}")
    if is_dir:
        tmp.mkdir()
    try:
        yield tmp
        if is_dir:
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
                os.replace(dest, old)
                os.replace(tmp, dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, dest)
        else:
            os.replace(tmp, dest)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def emit_json(obj, output=None, *, indent: int = 2) -> str:
    """Print ``obj`` as JSON on stdout and, when ``output`` is given, also write it there atomically.

    Used by ``dynfit bench`` and the scripts in ``benchmarks/``; numpy scalars are written as floats.
    Returns the JSON text.
    """
    import json

    text = json.dumps(obj, indent=indent, default=float)
    print(text)
    if output:
        with atomic_path(output) as tmp:
            tmp.write_text(text)
    return text
