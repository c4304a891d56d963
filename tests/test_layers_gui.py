"""``show_layer``: the dock widgets' "update the result layer in place, or add it"."""

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.gui


def test_show_layer_adds_then_updates_in_place(make_napari_viewer):
    from napari_dynfit._napari._contract import LayerOwner
    from napari_dynfit._napari._layers import show_layer

    viewer, step = make_napari_viewer(), LayerOwner()
    pts = np.array([[0.0, 1.0, 2.0], [1.0, 3.0, 4.0]])
    first = show_layer(viewer, "points", pts, "detections", owner=step,
                       features=pd.DataFrame({"size": [1.0, 2.0]}), metadata={"dt": 2.0}, scale=(2.0, 0.5, 0.5), size=3,
                       face_color="cyan")
    assert [lay.name for lay in viewer.layers] == ["detections"]
    assert first is viewer.layers["detections"]
    assert tuple(first.scale) == (2.0, 0.5, 0.5) and first.size[0] == 3
    first.opacity = 0.3  # the user's style survives a re-run
    first.metadata["note"] = "kept"
    new = np.array([[0.0, 5.0, 6.0], [1.0, 7.0, 8.0], [2.0, 9.0, 9.0]])
    again = show_layer(viewer, "points", new, "detections", owner=step,
                       features=pd.DataFrame({"size": [4.0, 5.0, 6.0]}), metadata={"dt": 3.0}, scale=(1.0, 1.0, 1.0),
                       opacity=1.0)
    assert again is first and len(viewer.layers) == 1
    np.testing.assert_array_equal(again.data, new)
    np.testing.assert_array_equal(again.features["size"], [4.0, 5.0, 6.0])
    assert again.metadata == {"dt": 3.0, "note": "kept"}  # metadata merged
    assert tuple(again.scale) == (2.0, 0.5, 0.5) and again.opacity == 0.3  # creation-only keywords ignored

    # Tracks: the graph is set after the data (a new data resets it)
    tracks = np.array([[1, 0, 0.0, 0.0], [1, 1, 1.0, 1.0], [2, 2, 2.0, 2.0], [3, 2, 0.0, 2.0]])
    lay = show_layer(viewer, "tracks", tracks[:2], "tracks", owner=step, graph={})
    assert show_layer(viewer, "tracks", tracks, "tracks", owner=step, graph={2: [1], 3: [1]}) is lay
    assert lay.graph == {2: [1], 3: [1]} and len(lay.data) == 4


def test_show_layer_other_kind_is_left_alone(make_napari_viewer):
    from napari_dynfit._napari._contract import LayerOwner
    from napari_dynfit._napari._layers import show_layer

    viewer, step = make_napari_viewer(), LayerOwner()
    image = viewer.add_image(np.ones((4, 4)), name="cells")
    labels = show_layer(viewer, "labels", np.eye(4, dtype=np.int32), "cells", owner=step, opacity=0.5)
    assert labels is not image and type(labels).__name__ == "Labels"
    assert labels.name == "cells [1]" and labels.opacity == 0.5  # napari's renamed copy
    np.testing.assert_array_equal(image.data, np.ones((4, 4)))  # the image is untouched
    again = show_layer(viewer, "labels", 2 * np.eye(4, dtype=np.int32), "cells", owner=step, opacity=0.5)  # re-run
    assert again is labels and [lay.name for lay in viewer.layers] == ["cells", "cells [1]"]  # no "cells [2]"
    np.testing.assert_array_equal(labels.data, 2 * np.eye(4))
    np.testing.assert_array_equal(image.data, np.ones((4, 4)))
    with pytest.raises(ValueError, match="unknown layer kind"):
        show_layer(viewer, "mesh", np.zeros(3), "x", owner=step)
    with pytest.raises(TypeError, match="owner"):  # no update by name alone: it would claim the user's "cells"
        show_layer(viewer, "image", np.zeros((4, 4)), "cells")
    np.testing.assert_array_equal(image.data, np.ones((4, 4)))


def test_show_layer_refresh_follows_the_data(make_napari_viewer):
    from napari_dynfit._napari._contract import LayerOwner
    from napari_dynfit._napari._layers import show_layer

    viewer, step = make_napari_viewer(), LayerOwner()
    img = show_layer(viewer, "image", np.arange(16.0).reshape(4, 4), "phi", owner=step,
                     contrast_limits=(0.0, 15.0), scale=(2.0, 2.0), colormap="magma",
                     refresh=("contrast_limits", "scale"))
    img.colormap = "gray"  # the user's choice survives; the refreshed keywords follow the data
    new = 100.0 + np.arange(16.0).reshape(4, 4) / 10
    again = show_layer(viewer, "image", new, "phi", owner=step, contrast_limits=(100.0, 101.5),
                       scale=(0.5, 0.5), colormap="magma", refresh=("contrast_limits", "scale"))
    assert again is img and len(viewer.layers) == 1
    assert tuple(img.contrast_limits) == (100.0, 101.5) and tuple(img.contrast_limits_range) == (100.0, 101.5)
    assert tuple(img.scale) == (0.5, 0.5) and img.colormap.name == "gray"
    # without refresh napari keeps the old limits (the reason for the option)
    show_layer(viewer, "image", np.zeros((4, 4)), "phi", owner=step, contrast_limits=(0.0, 1.0))
    assert tuple(img.contrast_limits) == (100.0, 101.5)
    with pytest.raises(ValueError, match="refresh names keywords that were not given: edge_width"):
        show_layer(viewer, "image", new, "phi", owner=step, refresh=("edge_width",))


def test_data_range_is_napari_s_default_contrast(make_napari_viewer):
    from napari_dynfit._napari._layers import data_range

    viewer = make_napari_viewer()
    for arr in (np.array([[0.5, -2.0], [3.0, np.nan]]), np.full((2, 2), 5.0), np.full((2, 2), -0.5)):
        layer = viewer.add_image(arr)
        assert data_range(arr) == pytest.approx(tuple(layer.contrast_limits))
    assert data_range([np.nan]) == (0.0, 1.0)


def test_show_layer_for_a_step_never_claims_the_users_layer_of_that_name(make_napari_viewer):
    """``owner=``: the user's own Points layer called "detections" is left as it was (data, style); the step's
    layer is added beside it ("detections [1]"), is the step's before the viewer's insertion handlers run, and a
    re-run updates it in place, also after the user renamed it; when the user deleted it a new one is added."""
    from napari_dynfit._napari._contract import StepContract
    from napari_dynfit._napari._layers import show_layer

    class Step(StepContract):
        OUTPUTS = (("detections", "Points"),)

    viewer = make_napari_viewer()
    step = Step()
    mine = viewer.add_points(np.array([[0.0, 1.0, 1.0]]), name="detections", size=7, face_color="yellow")
    seen = []
    viewer.layers.events.inserted.connect(lambda e: seen.append(step.made_as(e.value, "detections")))
    pts = np.array([[0.0, 5.0, 6.0], [1.0, 7.0, 8.0]])
    made = show_layer(viewer, "points", pts, "detections", owner=step, size=2, metadata={"dt": 1.0})
    assert made is not mine and made.name == "detections [1]" and seen == [True]
    assert step.makes(made) and step.made_layer("detections", viewer.layers) is made
    np.testing.assert_array_equal(mine.data, [[0.0, 1.0, 1.0]])
    assert mine.size[0] == 7 and not step.made_as(mine, "detections")
    made.name = "my detections"
    again = show_layer(viewer, "points", pts[:1] + 1, "detections", owner=step, size=2, metadata={"dt": 2.0})
    assert again is made and made.metadata["dt"] == 2.0 and len(viewer.layers) == 2
    np.testing.assert_array_equal(made.data, pts[:1] + 1)
    np.testing.assert_array_equal(mine.data, [[0.0, 1.0, 1.0]])
    viewer.layers.remove(made)
    fresh = show_layer(viewer, "points", pts, "detections", owner=step)
    assert fresh is not made and fresh.name == "detections [1]" and mine.size[0] == 7
    img = show_layer(viewer, "image", np.eye(3), "preview", owner=step)  # as viewer.add_image makes it
    assert img.blending == "translucent_no_depth" and img.colormap.name == "gray"
