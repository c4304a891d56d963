"""APR conversion, files, movie folders, lazy views and CLI, checked against pyapr as the oracle."""

import json
import os

import numpy as np
import pytest

from napari_dynfit import InputError
from napari_dynfit.apr import (
    AprImage,
    LazyAprArray,
    apr_info,
    labels_to_apr,
    lazy_multiscale,
    open_lazy,
    read_apr,
    read_apr_movie,
    to_apr,
    write_apr,
    write_apr_movie,
)
from napari_dynfit.apr.convert import pyapr_particles
from napari_dynfit.cli import main


def blobs(shape, rng, n=20, sigma=3.0, amp=1000.0, background=100.0, noise=5.0):
    """Gaussian blobs on a noisy background, uint16 (a stand-in for a fluorescence image)."""
    grids = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij", sparse=True)
    img = np.full(shape, background, np.float32)
    for _ in range(n):
        c = [rng.uniform(0, s) for s in shape]
        r2 = sum((g - ci) ** 2 for g, ci in zip(grids, c))
        img += amp * np.exp(-r2 / (2 * sigma ** 2))
    img += rng.normal(0, noise, shape)
    return img.clip(0, 65535).astype(np.uint16)


@pytest.fixture
def pyapr():
    _pyapr = pytest.importorskip("pyapr")

    return _pyapr


@pytest.mark.parametrize("shape", [(96, 120), (24, 64, 80)])
def test_round_trip_equals_pyapr_reconstruction(tmp_path, rng, pyapr, shape):
    img = blobs(shape, rng)
    im = to_apr(img, spacing=(0.5,) * len(shape))
    assert im.shape == shape and im.ndim == len(shape)
    oracle = pyapr.reconstruction.reconstruct_constant(im.apr, pyapr_particles(im.parts))
    oracle = oracle[0] if len(shape) == 2 else oracle
    path = write_apr(im, tmp_path / "img.apr")
    back = read_apr(path)
    assert back.spacing == (0.5,) * len(shape)
    assert back.n_particles == im.n_particles
    np.testing.assert_array_equal(back.reconstruct(), oracle)
    np.testing.assert_array_equal(back.particles, im.particles)
    # the APR is a faithful sampling of the image (pyapr's error bound, loosely)
    assert np.abs(oracle.astype(float) - img).mean() < 0.05 * img.std()
    # lazy views from the file: full resolution equals pyapr's full reconstruction ...
    lazy = open_lazy(path)["levels"][0]
    np.testing.assert_array_equal(np.asarray(lazy[0]), oracle)
    if len(shape) == 3:
        np.testing.assert_array_equal(lazy[0][7], oracle[7])
        np.testing.assert_array_equal(lazy[0][-3:, 10:40:3, 5], oracle[-3:, 10:40:3, 5])
    else:
        view = lazy[0][10:20, -7:]  # slices only: a lazy view, reconstructed by np.asarray
        assert isinstance(view, LazyAprArray) and view.shape == (10, 7)
        np.testing.assert_array_equal(np.asarray(view), oracle[10:20, -7:])
        np.testing.assert_array_equal(view[2:, ::2][3], oracle[15, -7::2])
    # ... and a coarse level equals pyapr's own lazy reconstruction at that level
    patch = pyapr.ReconPatch()
    patch.level_delta = -1
    ref = pyapr.reconstruction.reconstruct_lazy(str(path), patch=patch)
    ref = ref[0] if len(shape) == 2 else ref
    coarse = LazyAprArray(path, level_delta=-1)
    assert coarse.shape == ref.shape == tuple(-(-s // 2) for s in shape)
    np.testing.assert_array_equal(np.asarray(coarse), ref)
    # level and smooth modes agree with pyapr (smooth: patch vs whole-image rounding, +-1)
    np.testing.assert_array_equal(LazyAprArray(path, mode="level").compute(), im.reconstruct("level"))
    smooth = LazyAprArray(path, mode="smooth").compute().astype(int)
    assert np.abs(smooth - im.reconstruct("smooth")).max() <= 1


def test_conversion_matches_pyapr_directly(rng, pyapr):
    img = blobs((20, 48, 56), rng)
    im = to_apr(img, rel_error=0.2, gradient_smoothing=1.0, intensity_threshold=120.0)
    p = pyapr.APRParameters()
    p.rel_error, p.gradient_smoothing, p.Ip_th, p.auto_parameters = 0.2, 1.0, 120.0, True
    apr, parts = pyapr.converter.get_apr(img, params=p)
    assert im.n_particles == apr.total_number_particles()
    np.testing.assert_array_equal(im.particles, np.asarray(parts))
    st = im.stats()
    assert st["computational_ratio"] == pytest.approx(img.size / apr.total_number_particles())
    assert st["memory_saved"] == pytest.approx(1 - apr.total_number_particles() / img.size)
    # a larger error bound gives fewer particles
    assert to_apr(img, rel_error=0.5).n_particles < to_apr(img, rel_error=0.05).n_particles


def test_spacing_and_dtypes(rng):
    img = blobs((40, 50), rng)
    assert to_apr(img.astype(np.int64)).dtype == np.uint16
    assert to_apr(img.astype(np.float64)).dtype == np.float32
    assert to_apr(img.astype(np.int32) - 200).dtype == np.float32  # negative -> float
    assert to_apr(img, spacing=(2.0, 0.5)).spacing == (2.0, 0.5)
    with pytest.raises(InputError, match="spacing"):
        to_apr(img, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="rel_error"):
        to_apr(img, rel_error=0)
    with pytest.raises(InputError, match="gradient_threshold"):
        to_apr(img, auto_parameters=False)


def test_bad_input_gives_clear_errors(tmp_path, rng):
    with pytest.raises(InputError, match="5 dimensions.*expected 2D"):
        to_apr(np.ones((2, 2, 4, 8, 8), np.uint16))
    with pytest.raises(InputError, match="all zero"):
        to_apr(np.zeros((32, 32), np.uint16))
    f = blobs((32, 32), rng).astype(np.float32)
    f[3, 4] = np.nan
    with pytest.raises(InputError, match="1 NaN"):
        to_apr(f)
    movie = np.stack([blobs((32, 32), rng), np.zeros((32, 32), np.uint16)])
    with pytest.raises(InputError, match="frame 1.*all zero"):
        to_apr(movie, movie=True)
    # truncated and non-APR files
    good = write_apr(to_apr(blobs((64, 64), rng)), tmp_path / "good.apr")
    data = good.read_bytes()
    (tmp_path / "cut.apr").write_bytes(data[: len(data) // 2])
    for fn in (apr_info, read_apr, open_lazy, LazyAprArray):
        with pytest.raises(InputError, match="truncated or corrupt"):
            fn(tmp_path / "cut.apr")
    (tmp_path / "junk.apr").write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_apr(tmp_path / "junk.apr")
    import h5py

    with h5py.File(tmp_path / "other.apr", "w") as h:
        h["x"] = np.arange(3)
    with pytest.raises(InputError, match="not an APR file"):
        read_apr(tmp_path / "other.apr")
    with pytest.raises(InputError, match="does not exist"):
        read_apr(tmp_path / "missing.apr")


def test_nothing_written_unless_the_write_completes(tmp_path, rng, monkeypatch):
    from napari_dynfit.apr import io as aprio

    im = to_apr(blobs((48, 48), rng))
    dest = write_apr(im, tmp_path / "a.apr")
    before = dest.read_bytes()
    im2 = to_apr(blobs((48, 48), rng, n=5))

    def broken(image, tmp):
        tmp.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(aprio, "_write_one", broken)
    with pytest.raises(OSError, match="disk full"):
        write_apr(im2, dest)
    with pytest.raises(OSError, match="disk full"):
        write_apr(im2, tmp_path / "new.apr")
    mv = to_apr(np.stack([blobs((32, 32), rng)] * 2), movie=True)
    with pytest.raises(OSError, match="disk full"):
        write_apr_movie(mv, tmp_path / "m.aprmovie")
    assert dest.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.apr"]  # no temporary left over


def test_movie_container_and_lazy_movie(tmp_path, rng):
    movie = np.stack([blobs((40, 48), rng, n=8) for _ in range(5)])
    mv = to_apr(movie, movie=True, frame_interval=0.25, spacing=(0.5, 0.5), channel_names=["gfp"], n_workers=2)
    assert mv.shape == (5, 40, 48)
    for t in range(5):  # parallel conversion = frame-by-frame conversion
        np.testing.assert_array_equal(mv.frames[t][0].particles, to_apr(movie[t], spacing=(0.5, 0.5)).particles)
    path = write_apr_movie(mv, tmp_path / "mov.aprmovie")
    assert path.name == "mov.aprmovie"
    head = apr_info(path)
    assert head["shape"] == [5, 40, 48] and head["channel_names"] == ["gfp"]
    assert head["frame_interval"] == 0.25 and head["spacing"] == [0.5, 0.5]
    assert head["particles"] == sum(f[0].n_particles for f in mv.frames)
    back = read_apr_movie(path)
    assert back.frame_interval == 0.25 and back.channel_names == ("gfp",)
    opened = open_lazy(path)
    assert opened["scale"] == [0.25, 0.5, 0.5]
    lazy = opened["levels"][0][0]
    assert lazy.shape == (5, 40, 48)
    for t in (0, 3, -1):
        np.testing.assert_array_equal(lazy[t], mv.frames[t][0].reconstruct())
    np.testing.assert_array_equal(lazy[1:4, 5, :9], np.stack([mv.frames[t][0].reconstruct()[5, :9]
                                                               for t in range(1, 4)]))
    # two-channel movies: one pyramid per channel
    two = np.stack([movie, movie[:, ::-1]], axis=1)
    mv2 = to_apr(two, movie=True, channel_axis=1, channel_names=("a", "b"))
    p2 = write_apr_movie(mv2, tmp_path / "two.aprmovie")
    o2 = open_lazy(p2)
    assert o2["channel_names"] == ["a", "b"]
    np.testing.assert_array_equal(o2["levels"][1][0][2], mv2.frames[2][1].reconstruct())
    # frames beyond the cache are closed and reopened on demand; a closed array refuses to read
    small = open_lazy(path)["levels"][0][0]
    small.cache = 2
    for t in (0, 1, 2, 3, 4, 0):
        np.testing.assert_array_equal(small[t], mv.frames[t][0].reconstruct())
    assert len(small._open) == 2
    single = LazyAprArray(tmp_path / "mov.aprmovie" / "c0" / "t00000.apr")
    single.close()
    with pytest.raises(ValueError, match="closed"):
        single[0]
    # a frame file missing -> clear error
    os.remove(p2 / "c1" / "t00003.apr")
    with pytest.raises(InputError, match="lacks 1 frame files"):
        open_lazy(p2)


def test_multiscale_levels_and_in_memory_views(rng):
    img = blobs((16, 300, 260), rng, n=30)
    im = to_apr(img)
    levels = lazy_multiscale(im, min_size=64)
    assert [lv.shape for lv in levels] == [(16, 300, 260), (8, 150, 130), (4, 75, 65)]
    np.testing.assert_array_equal(levels[0][5], im.reconstruct()[5])
    # coarse levels are downsampled views of the same image
    c = levels[1][4].astype(float)
    assert np.corrcoef(c.ravel(), img[8:10, ::2, ::2].mean(0).ravel())[0, 1] > 0.9
    assert levels[0][3:3].shape == (0, 300, 260)
    with pytest.raises(IndexError):
        levels[0][16]


def test_labels_round_trip_exactly(rng):
    from skimage.draw import disk

    lab = np.zeros((120, 140), np.int32)
    for i in range(1, 12):
        rr, cc = disk((rng.uniform(15, 105), rng.uniform(15, 125)), rng.uniform(4, 14), shape=lab.shape)
        lab[rr, cc] = i
    im = labels_to_apr(lab)
    np.testing.assert_array_equal(im.reconstruct(), lab)
    assert im.computational_ratio > 2
    with pytest.raises(InputError, match="integers"):
        labels_to_apr(lab.astype(float))


def test_pixel_readers_tiff_and_ome_zarr(tmp_path, rng):
    import tifffile
    import zarr

    from napari_dynfit.apr.io import pixels_to_apr, read_pixels

    vol = blobs((12, 40, 44), rng)
    tifffile.imwrite(tmp_path / "v.tif", vol, imagej=True, metadata={"axes": "ZYX", "spacing": 2.5})
    px = read_pixels(tmp_path / "v.tif")
    assert px["axes"] == "zyx" and px["scale"][0] == 2.5
    im = pixels_to_apr(px)
    assert isinstance(im, AprImage) and im.spacing == (2.5, 1.0, 1.0)
    np.testing.assert_array_equal(im.particles, to_apr(vol, spacing=(2.5, 1, 1)).particles)

    mov = np.stack([blobs((30, 32), rng) for _ in range(3)])
    root = zarr.open_group(str(tmp_path / "m.ome.zarr"), mode="w", zarr_format=2)
    root.create_array("0", data=mov, chunks=(1, 30, 32))
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "t", "type": "time"},
                                                            {"name": "y", "type": "space"},
                                                            {"name": "x", "type": "space"}],
                                  "datasets": [{"path": "0", "coordinateTransformations": [
                                      {"type": "scale", "scale": [0.5, 0.2, 0.2]}]}]}]
    px = read_pixels(tmp_path / "m.ome.zarr")
    assert px["axes"] == "tyx" and px["scale"] == [0.5, 0.2, 0.2]
    assert type(px["data"]).__name__ == "Array"  # lazy Dask array
    mv = pixels_to_apr(px)
    assert mv.shape == (3, 30, 32) and mv.frame_interval == 0.5 and mv.spacing == (0.2, 0.2)
    np.testing.assert_array_equal(mv.frames[2][0].particles, to_apr(mov[2], spacing=(0.2, 0.2)).particles)
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(InputError, match="multiscales"):
        read_pixels(tmp_path / "plain.zarr")


def test_cli_convert_info_reconstruct(tmp_path, rng, capsys):
    import tifffile

    vol = blobs((10, 48, 40), rng)
    tifffile.imwrite(tmp_path / "v.tif", vol, imagej=True, metadata={"axes": "ZYX"})
    assert main(["-q", "convert", str(tmp_path / "v.tif"), "-o", str(tmp_path / "v.apr"),
                 "--rel-error", "0.2", "--spacing", "3", "1", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["-q", "info", str(tmp_path / "v.apr")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [10, 48, 40] and info["particles"] == out["particles"]
    assert info["computational_ratio"] == pytest.approx(vol.size / info["particles"])
    assert info["spacing"] == [3.0, 1.0, 1.0]
    assert main(["-q", "reconstruct", str(tmp_path / "v.apr"), "-o", str(tmp_path / "r.tif")]) == 0
    rec = tifffile.imread(tmp_path / "r.tif")
    np.testing.assert_array_equal(rec, read_apr(tmp_path / "v.apr").reconstruct())
    assert main(["-q", "reconstruct", str(tmp_path / "v.apr"), "-o", str(tmp_path / "l.tif"),
                 "--mode", "level"]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), read_apr(tmp_path / "v.apr").reconstruct("level"))
    # a movie TIFF becomes an .aprmovie folder
    mov = np.stack([blobs((30, 34), rng) for _ in range(3)])
    tifffile.imwrite(tmp_path / "m.tif", mov, imagej=True, metadata={"axes": "TYX", "finterval": 2.0})
    assert main(["-q", "convert", str(tmp_path / "m.tif"), "-o", str(tmp_path / "m.apr")]) == 2  # never renamed
    assert "a movie is written as a .aprmovie folder: name the output 'm.aprmovie'" in capsys.readouterr().err
    assert not (tmp_path / "m.apr").exists() and not (tmp_path / "m.aprmovie").exists()
    assert main(["-q", "convert", str(tmp_path / "m.tif"), "-o", str(tmp_path / "m.aprmovie")]) == 0
    capsys.readouterr()
    assert main(["-q", "info", str(tmp_path / "m.aprmovie")]) == 0
    assert json.loads(capsys.readouterr().out)["frame_interval"] == 2.0
    # bad input: one line, exit status 2
    np.save(tmp_path / "zero.npy", np.zeros((16, 16), np.uint16))
    assert main(["-q", "convert", str(tmp_path / "zero.npy"), "-o", str(tmp_path / "z.apr")]) == 2
    assert "all zero" in capsys.readouterr().err
    assert not (tmp_path / "z.apr").exists()


def test_demo_stage(tmp_path, rng):
    from napari_dynfit.demo.apr import DEMO_STAGE
    from napari_dynfit.report import DemoContext, Report

    order, title, func = DEMO_STAGE
    assert order == 20
    ctx = DemoContext(out_dir=tmp_path, report=Report("t"))
    ctx.report.section(title)
    func(ctx)  # no movie yet: skipped with a line in the report
    assert "skipped" in ctx.report.to_html()
    ctx.artefacts["movie"] = np.stack([blobs((48, 48), rng, n=6) for _ in range(3)])
    func(ctx)
    assert (tmp_path / "movie_apr.aprmovie" / "movie.json").exists()
    assert ctx.artefacts["apr"]["computational_ratio"] > 1
    assert "computational ratio" in ctx.report.to_html()


def test_movie_conversion_reports_progress_and_cancels(rng):
    import threading

    from napari_dynfit import Cancelled
    from napari_dynfit._progress import progress_context

    movie = np.stack([blobs((32, 32), rng, n=4) for _ in range(4)])
    seen = []
    with progress_context(lambda done, total, desc: seen.append((done, total, desc))):
        to_apr(movie, movie=True, n_workers=2)
    assert seen[0] == (0, 4, "APR conversion") and seen[-1] == (4, 4, "APR conversion")  # frames
    stop = threading.Event()

    def cancel_after_first(done, total, desc):
        if done == 1:
            stop.set()

    with pytest.raises(Cancelled), progress_context(cancel_after_first, stop):
        to_apr(movie, movie=True, n_workers=1)


@pytest.mark.slow
def test_large_lazy_browse_memory(tmp_path):
    """Browsing a 512^3 APR in a fresh process stays far below 1.5 GB (bench_apr_io.py does 1024^3)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "napari_dynfit.bench.apr_io", "--size", "512", "--skip-overhead", "--slices", "5",
                          "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["browse"]["peak_rss_gb"] < 1.5
    assert result["browse"]["first_slice_shape"] == [512, 512]
    assert result["browse"]["metadata"]["particles"] == result["generate"]["particles"]
