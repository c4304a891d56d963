"""The napari readers refuse damaged inputs with one clear line (issue 23): a truncated ImageJ TIFF series, an
absent Zarr chunk that held data, a chunk that cannot be decoded. Never fewer frames, zeros or a codec traceback.

Foreign stores (not written by dynfit) may omit chunks of fill values; the rule that tells an omitted empty chunk
from a lost one (another pyramid level, else the neighbouring chunks) is in ``docs/safety.md``.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_dynfit._napari._apr_reader import get_pixels_reader, get_pixels_to_apr_reader
from napari_dynfit.cli import main
from napari_dynfit.errors import InputError

zarr = pytest.importorskip("zarr")


def _movie(seed=0, shape=(4, 32, 32), offset=50.0):
    """A dense movie (no zero anywhere: a microscope image with its camera offset)."""
    rng = np.random.default_rng(seed)
    return (offset + 100 * rng.random(shape)).astype(np.uint16)


def _imagej_tiff(path, movie):
    import tifffile

    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})
    return path


def _foreign_ome_zarr(path, movie, *, levels=2, chunks=(1, 16, 16), zarr_format=2):
    """An OME-Zarr (NGFF 0.4 layout) written with plain zarr, as other tools do: no dynfit marker, chunks of fill
    values omitted (zarr's default)."""
    grp = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    datasets = []
    for lv in range(levels):
        data = movie[:, :: 2 ** lv, :: 2 ** lv]
        grp.create_array(str(lv), data=data, chunks=tuple(min(c, n) for c, n in zip(chunks, data.shape)))
        datasets.append({"path": str(lv), "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 2.0 ** lv, 2.0 ** lv]}]})
    grp.attrs["multiscales"] = [{"version": "0.4", "name": "img", "datasets": datasets,
                                 "axes": [{"name": "t", "type": "time"}, {"name": "y", "type": "space"},
                                          {"name": "x", "type": "space"}]}]
    return path


def _chunk_file(store, array, index):
    arr = zarr.open_array(str(store / array), mode="r")
    return store / array / arr.metadata.encode_chunk_key(index)


def _read(path):
    """What napari gets from our pixel reader, computed (a lazy layer is read in full)."""
    reader = get_pixels_reader(str(path))
    assert reader is not None
    (data, kwargs, _), = reader(str(path))
    return np.asarray(data[0] if kwargs.get("multiscale") else data)  # a pyramid: its full-resolution level


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


# ---------------------------------------------------------------------------------------------------- TIFF


def test_truncated_imagej_tiff_is_refused_by_the_readers(tmp_path):
    movie = _movie()
    good = _imagej_tiff(tmp_path / "good.tif", movie)
    np.testing.assert_array_equal(_read(good), movie)  # the intact file: every frame
    bad = tmp_path / "cut.tif"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) - 2 * movie[0].nbytes - 10])  # 4 frames declared, fewer stored
    for get in (get_pixels_reader, get_pixels_to_apr_reader):
        with pytest.raises(InputError) as info:
            get(str(bad))(str(bad))
        msg = _one_line(info)
        assert "cut.tif" in msg and "truncated" in msg, msg


def test_truncated_tiff_is_refused_by_the_axis_reader(tmp_path):
    """``tiff_axes`` is the one place every TIFF reader (CLI, napari, pipeline) asks: it checks completeness."""
    from napari_dynfit._tiff import tiff_axes

    movie = _movie(shape=(5, 16, 16))
    good = _imagej_tiff(tmp_path / "m.tif", movie)
    assert tiff_axes(good).shape == movie.shape
    data = good.read_bytes()
    good.write_bytes(data[: len(data) - 3 * movie[0].nbytes])
    with pytest.raises(InputError, match="truncated"):
        tiff_axes(good)


def test_empty_and_one_pixel_wide_tiffs_name_the_real_problem(tmp_path):
    """tifffile calls a 0-frame TIFF and a (t, y, 1) ImageJ movie 'truncated'; both files are complete: the error names
    the 0 frames / the 1-pixel-wide frames and the fix, through the one movie reader (``open_movie``)."""
    import warnings

    import tifffile

    from napari_dynfit.pipeline import open_movie

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns that a zero-size array makes a nonconformant TIFF
        tifffile.imwrite(tmp_path / "none.tif", np.zeros((0, 8, 8), np.uint16))
        tifffile.imwrite(tmp_path / "none_ij.tif", np.zeros((0, 8, 8), np.uint16), imagej=True)
    # the ImageJ one: shape (0, 0) with tifffile 2026.3, no series at all with 2026.11 (then the ImageJ metadata says)
    for name, says in (("none.tif", ("(shape (0, 8, 8))",)), ("none_ij.tif", ("(shape (0, 0))", "(ImageJ metadata: 0 images)"))):
        with pytest.raises(InputError) as info:
            open_movie(tmp_path / name)
        msg = _one_line(info)
        assert name in msg and "has 0 frames" in msg and any(s in msg for s in says) and "truncated" not in msg, msg
    thin = _imagej_tiff(tmp_path / "thin.tif", _movie(shape=(3, 1, 1)))
    with pytest.raises(InputError) as info:
        open_movie(thin)
    msg = _one_line(info)
    assert "holds 3 frames 1 pixel wide" in msg and "3 x 1 image" in msg and "truncated" not in msg, msg
    assert "without imagej=True" in msg
    # the advised fix reads back every frame
    tifffile.imwrite(thin, _movie(shape=(3, 5, 1)), metadata={"axes": "TYX"})
    assert open_movie(thin).data.shape == (3, 5, 1)
    # a truncated file is still called truncated (also one whose frames are as many as their rows)
    good = _imagej_tiff(tmp_path / "square.tif", _movie(shape=(16, 16, 16)))
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        open_movie(good)


# ---------------------------------------------------------------------------------------------------- Zarr


def test_foreign_store_with_omitted_empty_chunk_reads(tmp_path):
    """A region of fill values (zeros) is not stored by zarr: that is no damage, the reader shows zeros there."""
    movie = _movie()
    movie[1, :16, :16] = 0  # one chunk of level 0 and its region in level 1 are empty
    store = _foreign_ome_zarr(tmp_path / "sparse.zarr", movie)
    assert not _chunk_file(store, "0", (1, 0, 0)).exists()  # zarr omitted it
    np.testing.assert_array_equal(_read(store), movie)


def test_foreign_store_lost_chunk_seen_in_the_pyramid(tmp_path):
    """An absent level-0 chunk whose region holds data in level 1 was lost: an error naming array and chunk."""
    movie = _movie()
    store = _foreign_ome_zarr(tmp_path / "lost.zarr", movie)
    _chunk_file(store, "0", (2, 1, 0)).unlink()
    with pytest.raises(InputError) as info:
        _read(store)
    msg = _one_line(info)
    assert "lost.zarr" in msg and "'0'" in msg and "(2, 1, 0)" in msg and "level '1'" in msg, msg


def test_foreign_store_lost_chunk_empty_in_the_pyramid_is_accepted(tmp_path):
    """Where the other level is empty too, an absent chunk is a plausible omitted one (the rule's limit)."""
    movie = _movie()
    movie[1, :16, :16] = 0
    store = _foreign_ome_zarr(tmp_path / "both.zarr", movie)
    assert not _chunk_file(store, "0", (1, 0, 0)).exists()
    assert _read(store)[1, :16, :16].max() == 0


def test_foreign_single_level_lost_chunk_seen_by_its_neighbours(tmp_path):
    """Without another level, an absent chunk among neighbours that hold no fill value was lost."""
    movie = _movie()
    store = _foreign_ome_zarr(tmp_path / "one.zarr", movie, levels=1, zarr_format=3)
    _chunk_file(store, "0", (1, 1, 1)).unlink()
    with pytest.raises(InputError) as info:
        _read(store)
    msg = _one_line(info)
    assert "one.zarr" in msg and "(1, 1, 1)" in msg and "no fill value" in msg, msg
    sparse = movie.copy()
    sparse[:, :20, :20] = 0  # chunks (t, 0, 0) are empty and their neighbours hold zeros: omitted, not lost
    store = _foreign_ome_zarr(tmp_path / "sparse1.zarr", sparse, levels=1, zarr_format=3)
    np.testing.assert_array_equal(_read(store), sparse)


def test_foreign_single_level_lost_frames_are_one_lost_region(tmp_path):
    """A partial copy that lost the last frames: the absent chunks form one region, bordered by data without zeros."""
    movie = _movie(shape=(6, 32, 32))
    store = _foreign_ome_zarr(tmp_path / "partial.zarr", movie, levels=1)
    for t in (4, 5):
        for y in (0, 1):
            for x in (0, 1):
                _chunk_file(store, "0", (t, y, x)).unlink()
    with pytest.raises(InputError) as info:
        _read(store)
    assert "region of 8 absent chunks" in _one_line(info)


def test_dynfit_store_any_absent_chunk_is_an_error(tmp_path):
    """Stores dynfit writes keep every chunk (also all-zero ones): any absent chunk is damage."""
    from napari_dynfit.commands.simulate import write_image

    movie = _movie()
    movie[2] = 0
    store = write_image(movie, tmp_path / "ours.ome.zarr", spacing=(1.0, 1.0), dt=1.0)
    np.testing.assert_array_equal(_read(store), movie)
    _chunk_file(store, "0", (2, 0, 0)).unlink()  # the all-zero frame
    with pytest.raises(InputError, match=r"lacks chunk"):
        _read(store)


@pytest.mark.parametrize("ours", [False, True], ids=["foreign", "dynfit"])
def test_corrupt_chunk_is_a_one_line_reader_error(tmp_path, ours):
    from napari_dynfit.commands.simulate import write_image

    movie = _movie()
    if ours:
        store = write_image(movie, tmp_path / "c.ome.zarr", spacing=(1.0, 1.0), dt=1.0)
        chunk = _chunk_file(store, "0", (3, 0, 0))
    else:
        store = _foreign_ome_zarr(tmp_path / "c.zarr", movie)
        chunk = _chunk_file(store, "0", (3, 1, 0))
    chunk.write_bytes(b"\x00garbage\xff" * 3)
    (data, kwargs, _), = get_pixels_reader(str(store))(str(store))  # opens: the layer stays lazy
    data = data[0] if kwargs.get("multiscale") else data
    np.testing.assert_array_equal(np.asarray(data[0]), movie[0])  # intact frames are shown
    with pytest.raises(InputError) as info:
        np.asarray(data[3])
    msg = _one_line(info)
    assert store.name in msg and "chunk" in msg and "damaged" in msg, msg


def test_cli_refuses_foreign_store_with_lost_chunk(tmp_path, capsys):
    """The same rule before a command runs: one line, exit 2, nothing written."""
    movie = _movie()
    store = _foreign_ome_zarr(tmp_path / "in.zarr", movie)
    shutil.copytree(store, tmp_path / "ok.zarr")
    _chunk_file(store, "0", (0, 0, 1)).unlink()
    out = tmp_path / "det.csv"
    assert main(["-q", "detect", str(store), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lacks chunk" in err[0] and not out.exists(), err
    assert main(["-q", "detect", str(tmp_path / "ok.zarr"), "-o", str(out)]) == 0
