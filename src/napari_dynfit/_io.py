"""Safe file output: nothing is written unless the write completes, and nothing of the user's is lost.

* :func:`atomic_path` for every file or directory the package writes: the caller writes to a hidden
  temporary sibling (``.NAME.tmp-PID-XXXXXX``), which is renamed onto the destination only when
  the ``with`` block exits without an exception. Temporary paths in flight are registered, so a
  signal handler (:func:`remove_temporaries`) can remove them; temporaries left by a killed run
  (their process is gone) are removed by the next write to the same path (:func:`clean_stale`).
* Directories we write (Zarr stores, ``.aprmovie`` folders, CTC folders, projects) carry a marker
  file :data:`MARKER`; an existing directory is replaced only when it carries the marker (or is
  empty), never a folder of the user's.
* :func:`check_output` checks an output location before any computation (suffix, parent folder,
  writability, free space, an existing folder, output equal to an input).
* :func:`output_transaction` groups the writes of one command: when the command fails or is
  interrupted, every output it wrote is removed again and the files it replaced are restored, so
  no half-done set of outputs is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path

from .errors import InputError

# zarr lists every entry of a group folder and warns about files that are not Zarr nodes: our marker is one
warnings.filterwarnings("ignore", message=r"Object at \.dynfit is not recognized")

#: Marker file inside every directory store that napari-dynfit writes.
MARKER = ".dynfit"

#: Suffixes of the directory stores we write (a ``kind="auto"`` output with one of them is a store).
STORE_SUFFIXES = (".zarr", ".aprmovie")

_TEMPS: set[Path] = set()
_JOURNAL: list | None = None


def check_input_file(path, *, suffixes: tuple[str, ...] | None = None, what: str = "input file",
                     file: bool = False) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` after checking that it exists and is readable.

    Parameters
    ----------
    path : str or Path
        The file (or directory, e.g. OME-Zarr) the user named.
    suffixes : tuple of str, optional
        Accepted suffixes (lower case, with the dot). ``None`` accepts any.
    what : str
        How the message names the file, e.g. ``"APR file"``.
    file : bool
        A regular file is needed (HDF5, npz): a folder of that name, a pipe or a device is an error saying so
        (h5py's own message for a folder is a multi-line dump of its read state).
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
    if file and not p.is_file():
        raise InputError(f"{what} '{p}' is a folder, not a file: pass the file itself" if p.is_dir() else
                         f"{what} '{p}' is not a regular file (a pipe, socket or device): save the data to a file "
                         "and pass that")
    if p.is_file() and not os.access(p, os.R_OK):
        raise InputError(f"{what} '{p}' is not readable: check its permissions")
    return p


# ------------------------------------------------------------------------------------------------
# temporaries


def _tmp_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}{dest.suffix}")


def _stale_pattern(dest: Path) -> re.Pattern:
    stem, suffix, name = (re.escape(s) for s in (dest.stem, dest.suffix, dest.name))
    return re.compile(rf"^\.(?:{stem}\.tmp-(?:(\d+)-)?[0-9a-f]{{6,8}}{suffix}|{name}\.old-(?:(\d+)-)?[0-9a-f]{{6,8}})$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_stale(dest) -> list[Path]:
    """Remove the temporaries (``.NAME.tmp-*``, ``.NAME.old-*``) that a killed run left next to ``dest``.

    A temporary whose process id is still running (another ``dynfit`` writing the same path) is left alone.
    Returns the paths removed.
    """
    dest = Path(dest).expanduser()
    parent = dest.parent
    if not parent.is_dir():
        return []
    pat = _stale_pattern(dest)
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        m = pat.match(entry.name)
        if not m or entry in _TEMPS:
            continue
        pid = m.group(1) or m.group(2)
        if pid is not None and _alive(int(pid)):
            continue
        _remove(entry)
        removed.append(entry)
    return removed


def remove_temporaries(settle: float = 0.3, timeout: float = 3.0) -> None:
    """Remove every temporary path of a failed or interrupted write (called on SIGINT / SIGTERM / errors).

    A library may still be writing into it from a background thread (zarr's I/O loop finishes the
    chunks already submitted), so a path is removed again until it stayed absent for ``settle``
    seconds (at most ``timeout`` seconds in all).
    """
    import time

    pending = list(_TEMPS)
    end = time.monotonic() + timeout
    while pending and time.monotonic() < end:
        for tmp in pending:
            _remove(tmp)
        time.sleep(settle)
        pending = [tmp for tmp in pending if os.path.lexists(tmp)]
    _TEMPS.clear()


def is_ours(path) -> bool:
    """Whether the directory ``path`` was written by napari-dynfit (carries :data:`MARKER`) or is empty."""
    p = Path(path)
    if not p.is_dir():
        return False
    if (p / MARKER).exists():
        return True
    return not any(p.iterdir())


def write_marker(folder) -> None:
    """Mark ``folder`` as written by napari-dynfit (see :data:`MARKER`)."""
    from . import __version__

    (Path(folder) / MARKER).write_text(json.dumps({"written_by": "napari-dynfit", "version": __version__}) + "\n")


def _refuse_replace(dest: Path, is_dir: bool) -> None:
    if dest.is_dir() and not dest.is_symlink():
        if not is_dir:
            raise InputError(f"output '{dest}' is a folder but a file is expected: choose a file path")
        if not is_ours(dest):
            raise InputError(f"output '{dest}' is an existing folder that dynfit did not write (no {MARKER} marker):"
                             " nothing was replaced; choose a new path or remove the folder yourself")
    elif dest.exists() and is_dir:
        raise InputError(f"output '{dest}' is an existing file but a folder is written there: choose another path")


def _mkdirs(folder: Path) -> None:
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder '{folder}' ({exc.strerror}): choose another path") from exc
    if _JOURNAL is not None:
        _JOURNAL.extend(("mkdir", d, None) for d in reversed(missing))


@contextlib.contextmanager
def atomic_path(dest, *, is_dir: bool = False, record: bool = True):
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` on success.

    Parameters
    ----------
    dest : str or Path
        Final file or directory path. Missing parent folders are created.
    is_dir : bool
        ``True`` when the payload is a directory (Zarr store, CTC folder): the temporary
        directory is created empty, and marked with :data:`MARKER` on success. An existing ``dest``
        directory is replaced as a whole only when it carries the marker (or is empty); a folder of
        the user's raises :class:`~napari_dynfit.errors.InputError` and is left untouched.
    record : bool
        ``False``: the write is not part of an enclosing :func:`output_transaction`, so it stays when the
        command later fails or is killed (a long benchmark's partial results, :func:`keep_json`).

    Yields
    ------
    Path
        Where the caller must write. It keeps ``dest``'s suffix so that libraries that dispatch
        on the file extension (tifffile, zarr, h5py) behave the same.
    """
    dest = Path(dest).expanduser()
    _refuse_replace(dest, is_dir)
    _mkdirs(dest.parent)
    clean_stale(dest)
    tmp = _tmp_path(dest)
    _TEMPS.add(tmp)
    try:
        if is_dir:
            tmp.mkdir()
        with _complete_zarr_chunks(is_dir):
            yield tmp
        if is_dir:
            write_marker(tmp)
        _refuse_replace(dest, is_dir)
        _commit(tmp, dest, is_dir, record)
    except BaseException:
        _remove(tmp)  # stays registered: remove_temporaries() removes what a background writer adds later
        raise
    _TEMPS.discard(tmp)


@contextlib.contextmanager
def _complete_zarr_chunks(active: bool):
    """Zarr writes inside a marked store write every chunk (also all-zero ones), so that a missing
    chunk in such a store is damage (:func:`check_zarr_chunks`), never a chunk of fill values."""
    if not active:
        yield
        return
    try:
        import zarr
    except ImportError:  # pragma: no cover
        yield
        return
    with zarr.config.set({"array.write_empty_chunks": True}):
        yield


_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
_HELD: list = []


def _hold(signum, frame) -> None:
    _HELD.append(signum)


@contextlib.contextmanager
def deferred_signals(*, discard: bool = False):
    """Hold SIGINT / SIGTERM / SIGHUP until the block is done, so that a rename pair, a commit or a rollback is never
    cut in half; a signal that arrived meanwhile is then handled as usual (or dropped with ``discard``: a rollback
    after a first signal ignores a second one).

    Python-level handlers are swapped (a thread mask would not do: CPython runs handlers in the main thread whichever
    thread the kernel picks). Outside the main thread the block runs as it is.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = [getattr(signal, n) for n in _SIGNALS if hasattr(signal, n)]
    previous = {}
    mark = len(_HELD)
    try:
        for sig in sigs:
            previous[sig] = signal.signal(sig, _hold)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        held = _HELD[mark:]
        del _HELD[mark:]
        if held and not discard:
            handler = previous.get(held[0])
            if callable(handler):
                handler(held[0], None)  # raises KeyboardInterrupt / Terminated (or holds it for an outer block)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), held[0])


def _commit(tmp: Path, dest: Path, is_dir: bool, record: bool = True) -> None:
    with deferred_signals():  # the destination is never left moved aside and not recorded
        _commit_now(tmp, dest, is_dir, record)


def _commit_now(tmp: Path, dest: Path, is_dir: bool, record: bool = True) -> None:
    exists = dest.exists() or dest.is_symlink()
    if _JOURNAL is not None and record:
        backup = None
        if exists:
            backup = dest.with_name(f".{dest.name}.old-{os.getpid()}-{uuid.uuid4().hex[:6]}")
            os.replace(dest, backup)
        os.replace(tmp, dest)
        _JOURNAL.append(("write", dest, backup))
        return
    if is_dir and exists:
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        os.replace(dest, old)
        os.replace(tmp, dest)
        _remove(old)
    else:
        os.replace(tmp, dest)


@contextlib.contextmanager
def output_transaction():
    """Group the writes of one command: on an exception (or a signal) every output written inside
    the block is removed, replaced files are restored and created folders removed.

    Nested transactions join the outermost one. Writes still go to their final paths at once (a
    command may read back what it wrote); the replaced versions are kept as hidden ``.NAME.old-*``
    siblings until the block succeeds.
    """
    global _JOURNAL
    if _JOURNAL is not None:
        yield
        return
    _JOURNAL = journal = []
    try:
        yield
    except BaseException:
        _JOURNAL = None
        with deferred_signals(discard=True):  # a second Ctrl-C must not stop the restore half-way
            _rollback(journal)
        raise
    else:
        _JOURNAL = None
        with deferred_signals():
            for kind, _, backup in journal:
                if kind == "write" and backup is not None:
                    _remove(backup)
    finally:
        _JOURNAL = None


def note_new_folders(path) -> None:
    """Inside :func:`output_transaction`: remove ``path`` and its missing parents on rollback if left empty."""
    if _JOURNAL is None:
        return
    missing = []
    p = Path(path).expanduser()
    while not p.exists() and p.parent != p:
        missing.append(p)
        p = p.parent
    _JOURNAL.extend(("mkdir", d, None) for d in reversed(missing))


def _rollback(journal) -> None:
    for kind, path, backup in reversed(journal):
        with contextlib.suppress(OSError):
            if kind == "write":
                _remove(path)
                if backup is not None:
                    os.replace(backup, path)
            elif kind == "mkdir" and path.is_dir() and not any(path.iterdir()):
                path.rmdir()


# ------------------------------------------------------------------------------------------------
# output checks (before any computation)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"


def _same_or_inside(a: Path, b: Path) -> bool:
    """Whether ``a`` is ``b`` or lies inside ``b``."""
    try:
        a.relative_to(b)
        return True
    except ValueError:
        return False


def _writable(folder: Path) -> str | None:
    """``None`` when a file can be created in ``folder``, else the reason."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".dynfit-probe-")
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def check_output(path, *, kind: str = "file", suffixes: tuple[str, ...] | None = None, overwrite: bool = False,
                 inputs=(), estimate_bytes: float = 0, flag: str = "-o") -> Path:
    """Check an output location before any work starts; returns it as a Path.

    Parameters
    ----------
    path : str or Path
        The output the user named.
    kind : {"file", "store", "folder", "auto"}
        ``file``: one file (an existing file needs ``overwrite`` and is then replaced atomically at the end; a
        folder is refused);
        ``store``: a directory written as a whole (Zarr, ``.aprmovie``, CTC), replaced only with
        ``overwrite`` and only when dynfit wrote it; ``folder``: a folder the command writes several
        files into (an existing non-empty folder needs ``overwrite``; only the command's files are
        replaced); ``auto``: ``store`` for :data:`STORE_SUFFIXES`, else ``file``.
    suffixes : tuple of str, optional
        Accepted suffixes (lower case): the path is written exactly as given, or refused.
    overwrite : bool
        The user's ``--overwrite``.
    inputs : iterable of path
        The command's inputs: the output may not be one of them (nor contain one) unless ``overwrite``.
    estimate_bytes : float
        Estimated output size; refused when the file system has less free space.
    flag : str
        How the message names the option.

    Raises
    ------
    InputError
        With one line naming the problem and the fix.
    """
    p = Path(path).expanduser()
    if kind == "auto":
        kind = "store" if p.name.lower().endswith(STORE_SUFFIXES) else "file"
    if not p.name or p.name in (".", ".."):
        raise InputError(f"{flag} '{path}' is not a file name: give a path such as 'out{(suffixes or ('',))[0]}'")
    if suffixes and not any(p.name.lower().endswith(s) for s in suffixes):
        raise InputError(f"{flag} '{p}' must end in {' or '.join(suffixes)} (it is written exactly as named): "
                         f"e.g. '{p.name}{suffixes[0]}'")
    # nearest existing ancestor must be a writable folder
    anc = p.parent
    while not anc.exists() and anc.parent != anc:
        anc = anc.parent
    if not anc.is_dir():
        raise InputError(f"{flag} '{p}': '{anc}' is a file, not a folder: choose another output path")
    reason = _writable(anc)
    if reason:
        raise InputError(f"{flag} '{p}': cannot write in '{anc}' ({reason}): choose a writable folder")
    if p.is_symlink() and not p.exists():
        raise InputError(f"{flag} '{p}' is a broken symbolic link: remove it or choose another path")
    resolved = p.resolve()
    for inp in inputs:
        q = Path(inp).expanduser()
        if not q.exists():
            continue
        q = q.resolve()
        if resolved == q or (kind != "file" and _same_or_inside(q, resolved)):
            if kind == "folder" and resolved != q:
                continue  # a folder output may hold the inputs; only the command's own files are written
            if not overwrite:
                raise InputError(f"{flag} '{p}' is also an input of this command: choose another output path "
                                 "(or pass --overwrite to replace the input)")
            if kind == "store" and resolved != q:
                raise InputError(f"{flag} '{p}' contains the input '{inp}': choose another output path")
    if p.exists():
        if kind == "file" and p.is_dir():
            raise InputError(f"{flag} '{p}' is a folder but a file is expected: choose a file path")
        if kind == "file" and not overwrite:
            raise InputError(f"{flag} '{p}' already exists: pass --overwrite to replace it, or choose a new path")
        if kind in ("store", "folder") and not p.is_dir():
            raise InputError(f"{flag} '{p}' is an existing file but a folder is written there: choose another path")
        if kind == "store" and any(p.iterdir()):
            if not overwrite:
                raise InputError(f"{flag} '{p}' already exists: pass --overwrite to replace it, or choose a new path")
            if not is_ours(p):
                raise InputError(f"{flag} '{p}' is a folder that dynfit did not write (no {MARKER} marker): it is "
                                 "never replaced; choose a new path")
        if kind == "folder" and any(p.iterdir()) and not overwrite:
            raise InputError(f"{flag} '{p}' is a folder that is not empty: pass --overwrite to write into it "
                             "(only this command's files are replaced), or choose a new folder")
    if estimate_bytes:
        free = shutil.disk_usage(anc).free
        if free < estimate_bytes:
            raise InputError(f"{flag} '{p}': the output needs about {_fmt_bytes(estimate_bytes)} but only "
                             f"{_fmt_bytes(free)} are free there: free space or choose another disk")
    clean_stale(p)
    return p


# ------------------------------------------------------------------------------------------------
# input integrity (before any computation)


def check_input_integrity(path) -> None:
    """Check that an input file is complete: a regular file or folder (not a pipe or device), not empty, a ``.npy``
    whose data is all there, a TIFF series with every frame its metadata declares, a dynfit Zarr store with every
    chunk.

    Raises :class:`InputError` naming the file and the place. Other inputs are checked by their readers.
    """
    p = Path(path).expanduser()
    name = p.name.lower()
    if p.is_file():
        if p.stat().st_size == 0:
            raise InputError(f"input '{p}' is empty (0 bytes): was it written completely?")
        if name.endswith(".npy"):
            check_npy(p)
        elif name.endswith((".tif", ".tiff")):
            check_tiff_complete(p)
    elif p.is_dir():
        check_zarr_chunks(p)
    elif p.exists():  # a FIFO blocked the reader forever, a device (/dev/zero) was read until memory ran out
        raise InputError(f"input '{p}' is not a regular file or folder (a pipe, socket or device): save the data to "
                         "a file and pass that")


def check_npy(path) -> None:
    """Raise :class:`InputError` unless ``path`` is a complete ``.npy`` array (header and all the data)."""
    import numpy as np

    p = Path(path)
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
        del arr
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, EOFError, OSError ... for broken files
        raise InputError(f".npy file '{p}' is empty, truncated or not a .npy array ({exc.__class__.__name__}: "
                         f"{' '.join(str(exc).split())}): re-save it with numpy.save") from exc


def check_tiff_complete(path) -> None:
    """Raise :class:`InputError` when a TIFF holds fewer frames or bytes than its metadata declares.

    Checks the ImageJ ``images`` count (a truncated ImageJ hyperstack is otherwise read as its first
    frame), tifffile's ``shape`` metadata, and that the data of every page lies inside the file. Two complete files
    that tifffile reports as truncated are named for what they are: a TIFF of 0 frames, and a movie of frames 1 pixel
    wide that tifffile's ImageJ writer stored as one t x y image.
    """
    import logging

    import numpy as np
    import tifffile

    p = Path(path)
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        size = p.stat().st_size
        with tifffile.TiffFile(p) as tif:
            ij = tif.imagej_metadata or {}
            if not tif.series:
                if ij.get("images", 1) == 0:  # newer tifffile gives such an ImageJ file no series at all
                    raise InputError(f"TIFF '{p}' has 0 frames (ImageJ metadata: 0 images): it holds no image; "
                                     "re-export the movie with its frames")
                raise InputError(f"TIFF '{p}' holds no image: is it a TIFF file?")
            series = tif.series[0]
            planes = int(np.prod([n for a, n in zip(series.axes, series.shape) if a not in "YXS"] or [1]))
            shaped = tif.shaped_metadata or ()
            shape = tuple(shaped[0]["shape"]) if shaped and "shape" in shaped[0] else tuple(series.shape)
            if series.size == 0 or 0 in shape or ij.get("images", 1) == 0:  # tifffile calls these files truncated
                raise InputError(f"TIFF '{p}' has 0 frames (shape {shape}): it holds no image; re-export the movie "
                                 "with its frames")
            declared = int(ij.get("images", 1) or 1)
            page = tif.pages.first
            if (declared > planes and len(tif.pages) == 1 and page.shape and page.shape[0] == declared
                    and series.dataoffset is not None and series.dataoffset + series.nbytes == size):
                # tifffile writes a (t, y, 1) ImageJ movie as one t x y image: complete, but its frames are lost
                raise InputError(f"TIFF '{p}' holds {declared} frames 1 pixel wide, which tifffile's ImageJ writer "
                                 f"stored as one {' x '.join(map(str, page.shape))} image (ImageJ metadata: {declared}"
                                 " images): save the movie without imagej=True (tifffile.imwrite(path, movie, "
                                 "metadata={'axes': 'TYX'})), as .npy or as OME-Zarr")
            if declared > planes:
                raise InputError(f"TIFF '{p}' is truncated: its ImageJ metadata declares {declared} images but the "
                                 f"file holds {planes}: re-export the file")
            if shaped and "shape" in shaped[0]:
                want = int(np.prod(shaped[0]["shape"]))
                if want > int(np.prod(series.shape)):
                    raise InputError(f"TIFF '{p}' is truncated: its metadata declares shape {tuple(shaped[0]['shape'])}"
                                     f" but the file holds {series.shape}: re-export the file")
            offset = series.dataoffset
            if offset is not None:
                if offset + series.nbytes > size:
                    raise InputError(f"TIFF '{p}' is truncated: its data needs {offset + series.nbytes} bytes, the "
                                     f"file has {size}: re-export the file")
            else:
                for i, page in enumerate(series.pages):
                    if page is None:
                        raise InputError(f"TIFF '{p}' is truncated or damaged at frame {i}: re-export the file")
                    ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts)]
                    if ends and max(ends) > size:
                        raise InputError(f"TIFF '{p}' is truncated at frame {i}: re-export the file")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for broken files
        raise InputError(f"cannot read TIFF '{p}' ({exc.__class__.__name__}: {' '.join(str(exc).split())}): "
                         "is the file complete?") from exc
    finally:
        log.setLevel(level)


def _zarr_arrays(group):
    for _, arr in group.arrays():
        yield arr
    for _, sub in group.groups():
        yield from _zarr_arrays(sub)


def _zarr_meta(p: Path) -> bool:
    return any((p / f).exists() for f in ("zarr.json", ".zgroup", ".zarray"))


def _pyramids(group) -> dict:
    """``{array path: [arrays of its OME-NGFF multiscale pyramid, finest first]}`` for every multiscale in ``group``."""
    out = {}
    groups = [group]
    while groups:
        g = groups.pop()
        attrs = dict(g.attrs)
        for ms in (attrs.get("ome") or attrs).get("multiscales") or ():
            try:
                levels = [g[d["path"]] for d in ms.get("datasets", ())]
            except (KeyError, TypeError):
                continue
            for lv in levels:
                out[lv.path] = levels
        groups.extend(sub for _, sub in g.groups())
    return out


def _chunk_grid(arr) -> tuple[tuple[int, ...], list[range]]:
    import math

    shape = tuple(arr.shards or arr.chunks)  # the stored objects: shards when the array is sharded
    return shape, [range(math.ceil(s / c)) for s, c in zip(arr.shape, shape)]


def _missing_chunks(arr, store: Path) -> list:
    """Chunk indices of ``arr`` whose stored object is absent (an empty list when all are there)."""
    import itertools

    if arr.nchunks_initialized >= arr.nchunks:
        return []
    folder = store / arr.path if arr.path else store
    _, grid = _chunk_grid(arr)
    return [idx for idx in itertools.product(*grid) if not (folder / arr.metadata.encode_chunk_key(idx)).exists()]


def _holds_fill(block, fill) -> bool:
    import numpy as np

    block = np.asarray(block)
    if isinstance(fill, float) and fill != fill:
        return bool(np.isnan(block).any())
    return bool((block == fill).any())


def _all_fill(block, fill) -> bool:
    import numpy as np

    block = np.asarray(block)
    if isinstance(fill, float) and fill != fill:
        return bool(np.isnan(block).all())
    return bool((block == fill).all())


def _fill_value(arr):
    return arr.fill_value if arr.fill_value is not None else 0


def _region(arr, idx) -> tuple:
    shape, _ = _chunk_grid(arr)
    return tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(idx, shape, arr.shape))


def _missing_evidence(arr, idx, pyramid, missing: dict) -> str | None:
    """Why the absent chunk ``idx`` of a foreign array is damage, or ``None`` when it may be an omitted chunk of
    fill values (see :func:`check_zarr_chunks` for the rule)."""
    import itertools
    import math

    import numpy as np

    region = _region(arr, idx)
    fill = _fill_value(arr)
    if pyramid and len(pyramid) > 1 and any(lv.path == arr.path for lv in pyramid):
        pos = [lv.path for lv in pyramid].index(arr.path)
        for other in (pyramid[pos + 1] if pos + 1 < len(pyramid) else None, pyramid[pos - 1] if pos else None):
            if other is None or other.ndim != arr.ndim:
                continue
            sel = []
            for sl, n, m in zip(region, arr.shape, other.shape):
                lo = int(math.floor(sl.start * m / n))
                sel.append(slice(lo, max(lo + 1, int(math.ceil(sl.stop * m / n)))))
            shape, _ = _chunk_grid(other)
            chunks = set(itertools.product(*[range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(sel, shape)]))
            if chunks <= set(missing.setdefault(other.path, _missing_chunks(other, missing["__store__"]))):
                continue  # that level lacks the place too: no evidence from it
            try:
                block = np.asarray(other[tuple(sel)])
            except Exception:  # noqa: BLE001 - a damaged level gives no evidence; it is reported on its own
                continue
            if not _all_fill(block, _fill_value(other)):
                return f"pyramid level '{other.path}' holds data there"
            return None
    # no other level covers the place: the absent chunks connected to this one form one empty region; it is lost
    # when every chunk present around it holds no fill value (data that never reaches the fill value does not stop
    # exactly at chunk borders)
    absent = set(missing.get(arr.path, ()))
    _, grid = _chunk_grid(arr)
    region, border, todo = {idx}, set(), [idx]
    while todo:
        c = todo.pop()
        for axis in range(arr.ndim):
            for step in (-1, 1):
                n = c[:axis] + (c[axis] + step,) + c[axis + 1:]
                if not 0 <= n[axis] < len(grid[axis]) or n in region:
                    continue
                if n in absent:
                    region.add(n)
                    todo.append(n)
                else:
                    border.add(n)
    missing.setdefault(("region", arr.path), set()).update(region)  # one verdict for all of them
    seen = 0
    for n in sorted(border):
        try:
            block = arr[_region(arr, n)]
        except Exception:  # noqa: BLE001 - a damaged chunk gives no evidence; it is reported on its own
            continue
        seen += 1
        if _holds_fill(block, fill):
            return None
    if seen:
        what = "chunk" if len(region) == 1 else f"region of {len(region)} absent chunks"
        return (f"the {seen} chunk(s) around this {what} hold no fill value ({fill}), so it is no omitted empty "
                "region")
    return None


def check_zarr_chunks(path) -> None:
    """Raise :class:`InputError` naming the array and chunk when a Zarr store lacks a chunk that holds data.

    Rule (``docs/safety.md``): in a dynfit store (one carrying :data:`MARKER`, written with every chunk) any absent
    chunk is damage. Other stores may legitimately omit chunks that hold only the fill value, so an absent chunk
    there is damage only when the data says the place was not empty: another level of its OME-NGFF pyramid (the
    next coarser one, else the next finer one) holds values other than the fill value in that region, or - without
    a pyramid level that covers the place - every chunk present around the connected region of absent chunks holds
    no fill value at all (data that never reaches the fill value does not stop exactly at chunk borders).
    """
    p = Path(path)
    if not p.is_dir() or not _zarr_meta(p):
        return
    import zarr

    try:
        node = zarr.open(str(p), mode="r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"Zarr store '{p}' cannot be opened ({exc.__class__.__name__}: "
                         f"{' '.join(str(exc).split())}): the store is damaged") from exc
    ours = (p / MARKER).exists()
    arrays = [node] if isinstance(node, zarr.Array) else list(_zarr_arrays(node))
    pyramids = {} if ours or isinstance(node, zarr.Array) else _pyramids(node)
    missing = {"__store__": p}
    for arr in arrays:
        absent = missing.setdefault(arr.path, _missing_chunks(arr, p))
        for idx in absent:
            if idx in missing.get(("region", arr.path), ()):
                continue  # decided with the region it belongs to
            why = "" if ours else _missing_evidence(arr, idx, pyramids.get(arr.path), missing)
            if ours or why:
                key = arr.metadata.encode_chunk_key(idx)
                why = f"; {why}" if why else ""
                raise InputError(f"Zarr store '{p}': array '{arr.path}' lacks chunk {key} (chunk index {idx}{why}): "
                                 "the store is incomplete or damaged; re-create it")


class _CheckedZarr:
    """A Zarr array for :func:`dask.array.from_array` whose undecodable chunks raise one-line :class:`InputError`."""

    def __init__(self, arr, store):
        self.arr, self.store = arr, store
        self.shape, self.dtype, self.ndim = arr.shape, arr.dtype, arr.ndim

    def __getitem__(self, sel):
        try:
            return self.arr[sel]
        except Exception as exc:  # noqa: BLE001 - codecs raise RuntimeError, ValueError ...
            raise _chunk_error(self.arr, self.store, exc, sel) from exc


def _bad_chunk(arr, sel=None):
    """``(chunk key, exception)`` of the first chunk of ``arr`` (within the slices ``sel``) that cannot be decoded,
    or ``None``."""
    import itertools

    shape, grid = _chunk_grid(arr)
    if isinstance(sel, tuple) and all(isinstance(s, slice) for s in sel):
        grid = [range((s.start or 0) // c, -(-(n if s.stop is None else s.stop) // c))
                for s, c, n in zip(sel, shape, arr.shape)] + grid[len(sel):]
    for idx in itertools.product(*grid):
        try:
            arr[_region(arr, idx)]
        except Exception as exc:  # noqa: BLE001 - codecs raise RuntimeError, ValueError ...
            return arr.metadata.encode_chunk_key(idx), exc
    return None


def _chunk_error(arr, store, exc, sel=None, found=None) -> InputError:
    """The one-line error of ``arr`` failing with ``exc``, naming the first chunk (in ``sel``) that fails
    (``found``: what :func:`_bad_chunk` already returned)."""
    found = found or _bad_chunk(arr, sel)
    where = ""
    if found:
        where, exc = f" chunk {found[0]}", found[1]
    return InputError(f"Zarr store '{store}': array '{arr.path}'{where} cannot be read ({exc.__class__.__name__}: "
                      f"{' '.join(str(exc).split())}): the store is damaged; re-create it")


def lazy_zarr(arr, store):
    """``arr`` as a lazy Dask array (one block per stored chunk) whose unreadable chunks raise :class:`InputError`
    naming the store, array and chunk, instead of a codec's traceback (napari readers, pipelines)."""
    import dask.array as da
    import numpy as np

    shape, _ = _chunk_grid(arr)
    return da.from_array(_CheckedZarr(arr, store), chunks=shape, asarray=True, fancy=False, name=False,
                         meta=np.empty((0,) * arr.ndim, arr.dtype))


def diagnose_input(path) -> None:
    """After an unexpected failure: raise :class:`InputError` naming the damaged place of an input
    (every chunk of every array of a Zarr store is decoded; every page of a TIFF is read); returns
    quietly when nothing is found."""
    p = Path(path).expanduser()
    if p.is_dir() and any((p / f).exists() for f in ("zarr.json", ".zgroup", ".zarray")):
        import zarr

        try:
            node = zarr.open(str(p), mode="r")
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"Zarr store '{p}' cannot be opened ({exc.__class__.__name__}): it is damaged") from exc
        for arr in [node] if isinstance(node, zarr.Array) else _zarr_arrays(node):
            read_zarr_array(arr, p, full=False)
    elif p.is_file() and p.name.lower().endswith((".tif", ".tiff")):
        import tifffile

        try:
            with tifffile.TiffFile(p) as tif:
                for i, page in enumerate(tif.pages):
                    try:
                        page.asarray()
                    except Exception as exc:  # noqa: BLE001
                        raise InputError(f"TIFF '{p}': page {i} cannot be read ({exc.__class__.__name__}: "
                                         f"{' '.join(str(exc).split())}): the file is damaged") from exc
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"TIFF '{p}' cannot be read ({exc.__class__.__name__}): the file is damaged") from exc


def read_zarr_array(arr, store, *, full: bool = True) -> np.ndarray:  # noqa: F821
    """``arr`` read into memory; a chunk that cannot be decoded raises :class:`InputError` naming it.

    With ``full=False`` nothing is returned: every chunk is only decoded (see :func:`diagnose_input`)."""
    import numpy as np

    if full:
        try:
            return np.asarray(arr)
        except Exception as exc:  # noqa: BLE001 - codecs raise RuntimeError, ValueError ...
            raise _chunk_error(arr, store, exc) from exc
    found = _bad_chunk(arr)
    if found:
        raise _chunk_error(arr, store, found[1], found=found)
    return None


def check_free_space(path, nbytes: float, *, what: str = "the output", fix: str = "free space or choose another disk"):
    """Raise :class:`InputError` when the file system of ``path`` has less than ``nbytes`` free."""
    anc = Path(path).expanduser().absolute().parent
    while not anc.exists() and anc.parent != anc:
        anc = anc.parent
    free = shutil.disk_usage(anc).free
    if free < nbytes:
        raise InputError(f"{what} needs about {_fmt_bytes(nbytes)} on disk but only {_fmt_bytes(free)} are free in "
                         f"'{anc}': {fix}")


def keep_json(obj, output, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``output`` now (:func:`atomic_path` with ``record=False``), outside
    :func:`output_transaction`.

    For the partial results of a long benchmark, rewritten after each stage: unlike a recorded write inside a
    command, the file stays when the command later fails or is killed (a rollback would remove it). The caller
    marks the record as partial (e.g. a ``"status"`` key). ``output`` has been checked by the command
    (:func:`check_output`) before.
    """
    with atomic_path(output, record=False) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent, default=float))


def emit_json(obj, output=None, *, indent: int = 2) -> str:
    """Print ``obj`` as JSON on stdout and, when ``output`` is given, also write it there atomically.

    Used by ``dynfit bench`` and the benchmark modules of :mod:`napari_dynfit.bench`; numpy scalars are written as floats.
    Returns the JSON text.
    """
    text = json.dumps(obj, indent=indent, default=float)
    print(text)
    if output:
        with atomic_path(output) as tmp:
            tmp.write_text(text)
    return text
