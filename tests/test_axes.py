"""Axes and names as the user gives them: TIFF axes from metadata, else a question; output names exact."""

import json

import numpy as np
import pytest
import tifffile

from napari_dynfit._tiff import AmbiguousAxesError, tiff_axes
from napari_dynfit.apr.io import read_pixels
from napari_dynfit.cli import main
from napari_dynfit.errors import InputError
from napari_dynfit.pipeline import open_movie
from napari_dynfit.track.formats import read_label_movie


@pytest.fixture
def stack(rng):
    """5 planes of 24 x 20 with a bright square that moves (as a movie) or grows (as a stack)."""
    a = rng.poisson(5, (5, 24, 20)).astype(np.uint16)
    for k in range(5):
        a[k, 6:12, 4 + 2 * k:10 + 2 * k] += 200
    return a


@pytest.mark.parametrize("axes", ["TYX", "ZYX"])
def test_imagej_and_ome_axes_are_honoured(tmp_path, stack, axes):
    ij, ome = tmp_path / "ij.tif", tmp_path / "ome.tif"
    tifffile.imwrite(ij, stack, imagej=True, metadata={"axes": axes, "spacing": 2.0, "finterval": 0.5, "unit": "um"},
                     resolution=(1 / 0.25, 1 / 0.25))
    tifffile.imwrite(ome, stack, ome=True, metadata={"axes": axes})
    info = tiff_axes(ij)
    assert info.axes == axes.lower() and info.source == "imagej" and info.shape == stack.shape
    assert info.scale["y"] == pytest.approx(0.25) and info.scale["x"] == pytest.approx(0.25)
    assert tiff_axes(ome).axes == axes.lower() and tiff_axes(ome).source == "ome"
    for path in (ij, ome):
        px = read_pixels(path)
        assert px["axes"] == axes.lower()
        np.testing.assert_array_equal(px["data"], stack)
    if axes == "TYX":  # every movie reader agrees
        np.testing.assert_array_equal(read_label_movie(ij), stack)
        assert open_movie(ij).data.shape == stack.shape and open_movie(ij).spacing == pytest.approx((0.25, 0.25))
    else:  # a z-stack is no movie, and the readers say so instead of guessing
        assert read_pixels(ij)["scale"][0] == 2.0
        with pytest.raises(InputError, match="no time axis"):
            read_label_movie(ij)
        with pytest.raises(InputError, match="t axis"):
            open_movie(ij)


def test_ambiguous_tiff_asks_for_axes(tmp_path, stack):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, stack)  # shape only: frames or slices?
    for read in (tiff_axes, read_pixels, read_label_movie, open_movie):
        with pytest.raises(AmbiguousAxesError, match="--axes tyx .* or --axes zyx") as exc:
            read(plain)
        assert exc.value.ndim == 3 and isinstance(exc.value, InputError)
    tifffile.imwrite(tmp_path / "four.tif", np.zeros((2, 5, 8, 8), np.uint16))
    with pytest.raises(AmbiguousAxesError, match="tzyx"):
        tiff_axes(tmp_path / "four.tif")
    np.save(tmp_path / "s.npy", stack)
    with pytest.raises(AmbiguousAxesError, match="--axes tyx"):
        read_pixels(tmp_path / "s.npy")
    tifffile.imwrite(tmp_path / "flat.tif", stack[0])  # 2D is unambiguous
    assert tiff_axes(tmp_path / "flat.tif").axes == "yx"


def test_given_axes_are_honoured_and_checked(tmp_path, stack):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, stack)
    assert read_pixels(plain, axes="zyx")["axes"] == "zyx"
    assert tiff_axes(plain, "TYX").source == "given"
    np.testing.assert_array_equal(read_label_movie(plain, axes="tyx"), stack)
    np.testing.assert_array_equal(np.asarray(open_movie(plain, axes="tyx").data[3]), stack[3])
    ij = tmp_path / "ij.tif"
    tifffile.imwrite(ij, stack, imagej=True, metadata={"axes": "ZYX"})
    assert read_pixels(ij, axes="tyx")["axes"] == "tyx"  # the user's word wins over the file's
    for bad in ("tzyx", "tyy", "tyq", "ytx"):
        with pytest.raises(InputError, match="do not fit"):
            tiff_axes(plain, bad)
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(InputError, match="RGB"):
        tiff_axes(tmp_path / "rgb.tif")


def test_cli_axes_flag(tmp_path, stack, capsys):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, stack)
    out = tmp_path / "det.csv"
    assert main(["detect", str(plain), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--axes tyx" in err and err.count("\n") == 1 and not out.exists()
    assert main(["detect", str(plain), "-o", str(out), "--axes", "tyx"]) == 0
    import pandas as pd

    det = pd.read_csv(out)
    assert sorted(det["frame"].unique()) == [0, 1, 2, 3, 4]  # frames, one square each
    lab = (stack > 100).astype(np.uint16)
    tifffile.imwrite(tmp_path / "lab.tif", lab)
    assert main(["track", str(tmp_path / "lab.tif"), "-o", str(tmp_path / "t.csv")]) == 2
    assert "--axes" in capsys.readouterr().err and not (tmp_path / "t.csv").exists()
    assert main(["track", str(tmp_path / "lab.tif"), "-o", str(tmp_path / "t.csv"), "--axes", "tyx"]) == 0
    assert pd.read_csv(tmp_path / "t.csv")["track_id"].nunique() == 1
    capsys.readouterr()
    assert main(["-q", "convert", str(plain), "-o", str(tmp_path / "a.apr")]) == 2
    assert "--axes tyx" in capsys.readouterr().err
    assert main(["-q", "convert", str(plain), "-o", str(tmp_path / "z.apr"), "--axes", "zyx"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == list(stack.shape)
    assert main(["-q", "convert", str(plain), "-o", str(tmp_path / "m.aprmovie"), "--axes", "tyx"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == str(tmp_path / "m.aprmovie")
    # segment asks too, and takes the metadata's or the user's axes
    assert main(["segment", str(plain), "-o", str(tmp_path / "l.tif"), "--scheduler", "sync"]) == 2
    err = capsys.readouterr().err
    assert "--axes tyx" in err and err.count("\n") == 1 and not (tmp_path / "l.tif").exists()
    assert main(["segment", str(plain), "-o", str(tmp_path / "l.tif"), "--scheduler", "sync", "--axes", "tyx"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frames"] == 5
    ij = tmp_path / "zstack.tif"
    tifffile.imwrite(ij, stack, imagej=True, metadata={"axes": "ZYX"})
    assert main(["segment", str(ij), "-o", str(tmp_path / "z.tif"), "--scheduler", "sync"]) == 2
    assert "t axis" in capsys.readouterr().err  # a z-stack is not read as frames


@pytest.mark.parametrize("axes, name, need", [
    ("tyx", "m.apr", "m.aprmovie"), ("tyx", "m", "m.aprmovie"), ("tyx", "m.txt", "m.aprmovie"),
    ("zyx", "c.txt", "c.apr"), ("zyx", "v.aprmovie", "v.apr"), ("zyx", "v", "v.apr"),
])
def test_output_names_exact_or_refused(tmp_path, stack, capsys, axes, name, need):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, stack, imagej=True, metadata={"axes": axes.upper()})
    assert main(["-q", "convert", str(src), "-o", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert f"name the output '{need}'" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]  # nothing written, nothing renamed
    assert main(["-q", "convert", str(src), "-o", str(tmp_path / need)]) == 0
    assert (tmp_path / need).exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.tif", need])


def _ij(desc: str) -> str:
    """An ImageJ image description (what Fiji writes) with ``desc``'s hyperstack entries."""
    return "ImageJ=1.54f\n" + desc


@pytest.mark.parametrize("shape, write, axes", [
    # ImageJ hyperstacks whose metadata declare singleton dimensions (tifffile squeezes them)
    ((5, 24, 20, 1), dict(imagej=True, metadata={"axes": "TYXS"}), "tyx"),
    ((5, 3, 1, 24, 20), dict(imagej=True, metadata={"axes": "TZCYX"}), "tzyx"),
    ((5, 1, 24, 20), dict(imagej=True, metadata={"axes": "TCYX"}), "tyx"),
    ((5, 24, 20), dict(description=_ij("images=5\nchannels=1\nslices=1\nframes=5\nhyperstack=true\n"),
                       metadata=None), "tyx"),
    # tifffile's shaped files keep them: a samples, channel or slice axis of 1 is dropped, a trailing 1 is never x
    ((5, 24, 20, 1), dict(metadata={"axes": "TYXS"}), "tyx"),
    ((5, 24, 20, 1), dict(metadata={"axes": "TYXC"}), "tyx"),
    ((5, 1, 24, 20), dict(metadata={"axes": "TZYX"}), "tyx"),
    ((5, 1, 3, 24, 20, 1), dict(metadata={"axes": "TCZYXS"}), "tzyx"),
])
def test_singleton_axes_are_dropped_and_named(tmp_path, rng, shape, write, axes):
    """Axes of length 1 the metadata declares give the movie ``(t, [z,] y, x)`` of the others, read whole and
    frame by frame: the same pixels, a trailing 1 never taken for x (a shaped ``TYXS`` of S = 1 was refused as
    RGB, ``TYXC`` asked for axes, ``TZYX`` of Z = 1 was a 3D movie one slice deep)."""
    a = rng.integers(0, 200, shape).astype(np.uint8)
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, a, **write)
    want = a.reshape([n for n in shape if n != 1])
    info = tiff_axes(path)
    assert info.axes == axes and info.shape == want.shape
    assert read_pixels(path)["axes"] == axes
    np.testing.assert_array_equal(read_pixels(path)["data"], want)
    movie = open_movie(path).data
    assert movie.shape == want.shape
    np.testing.assert_array_equal(np.stack([movie[t] for t in range(len(movie))]), want)
    if axes == "tyx":
        np.testing.assert_array_equal(read_label_movie(path), want)


def test_trailing_one_is_not_x(tmp_path, rng):
    """``(t, y, x, 1)`` saved without axis names: tifffile's pages say which axes are y and x, so the trailing 1
    is dropped; the question names the 3 axes left, and axes for the 4 stored ones (``tzyx``: x = 1) are refused."""
    a = rng.integers(0, 200, (5, 24, 20, 1)).astype(np.uint16)
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, a)
    with pytest.raises(AmbiguousAxesError, match=r"3 dimensions \(5, 24, 20\).*--axes tyx") as exc:
        tiff_axes(path)
    assert exc.value.ndim == 3 and "\n" not in str(exc.value)
    with pytest.raises(InputError, match="axes 'tzyx' do not fit.*length 1 dropped") as exc:
        tiff_axes(path, "tzyx")
    assert "\n" not in str(exc.value)
    assert tiff_axes(path, "tyx").shape == (5, 24, 20)
    for movie in (open_movie(path, axes="tyx").data, read_label_movie(path, axes="tyx")):
        assert movie.shape == (5, 24, 20)
        np.testing.assert_array_equal(np.stack([movie[t] for t in range(5)]), a[..., 0])


def test_channels_after_yx_are_a_clear_error(tmp_path):
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, np.zeros((5, 24, 20, 2), np.uint8), metadata={"axes": "TYXC"})
    with pytest.raises(InputError, match=r"axes after y, x are not read.*'TCYX'") as exc:
        tiff_axes(path)
    assert "\n" not in str(exc.value) and not isinstance(exc.value, AmbiguousAxesError)
