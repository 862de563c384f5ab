"""``skelssl show`` on a 2D + score store: COCO bones, coordinates only (the score is never drawn as
depth), y up, seen from the front; and an existing --out is never replaced silently."""

from __future__ import annotations

import numpy as np
import pytest

from skelssl.cli import main as cli_main
from skelssl.viz.animate import FRONT, draw_frame, drawable

pytestmark = pytest.mark.usefixtures("one_thread")


def test_drawable_keeps_coordinates_and_never_draws_the_score():
    rng = np.random.default_rng(0)
    frames = rng.uniform(-1, 1, size=(4, 2, 17, 3)).astype(np.float32)  # x, y, score
    xyz = drawable(frames, ["x", "y", "score"])
    assert xyz.shape == (4, 2, 17, 3)
    np.testing.assert_array_equal(xyz[..., :2], frames[..., :2])
    assert not xyz[..., 2].any()  # depth 0, not the score
    xyzs = rng.uniform(size=(3, 1, 25, 4)).astype(np.float32)
    np.testing.assert_array_equal(drawable(xyzs, ["x", "y", "z", "score"]), xyzs[..., :3])
    with pytest.raises(ValueError, match="cannot draw"):
        drawable(frames[..., :1], ["score"])


def _blue_columns_rows(frames, layout):
    ax = draw_frame(frames, layout, 0, view=FRONT)
    ax.figure.canvas.draw()
    img = np.asarray(ax.figure.canvas.buffer_rgba())[..., :3].astype(int)
    return np.nonzero(np.abs(img - np.array([31, 119, 180])).sum(-1) < 60)  # tab:blue pixels


def test_front_view_puts_x_right_and_y_up():
    frames = np.zeros((1, 1, 17, 3))
    frames[0, 0, :, 1] = np.linspace(-0.2, 0.2, 17)
    frames[0, 0, 9, :2] = [1.0, 0.0]  # one wrist far to the right
    rows, cols = _blue_columns_rows(frames, "coco17")
    assert cols.max() - np.median(cols) > np.median(cols) - cols.min()  # the outlier is on the right
    frames[0, 0, 9, :2] = [0.0, 1.0]  # now far up
    rows, cols = _blue_columns_rows(frames, "coco17")
    assert np.median(rows) - rows.min() > rows.max() - np.median(rows)  # the outlier is at the top


def test_show_a_2d_store_and_refuse_to_replace_a_file(tmp_path, capsys):
    from skelssl.data.store import write_store

    rng = np.random.default_rng(1)
    samples = [(f"c{i}", np.concatenate([rng.uniform(-1, 1, (6, 1, 17, 2)), rng.uniform(0, 1, (6, 1, 17, 1))], -1)
                .astype(np.float32), {"label": 0}) for i in range(2)]
    store = write_store(tmp_path / "s", samples, "coco17", 1, channels=3,
                        info={"dataset": "pyskl", "channel_names": ["x", "y", "score"]})
    gif = tmp_path / "c0.gif"
    assert cli_main(["show", str(store.path), "c0", "--out", str(gif)]) == 0
    assert gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    before = gif.read_bytes()
    capsys.readouterr()
    assert cli_main(["show", str(store.path), "c1", "--out", str(gif)]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists; pass --overwrite" in err and "\n" not in err and gif.read_bytes() == before
    assert cli_main(["show", str(store.path), "c1", "--out", str(gif), "--overwrite"]) == 0
    assert gif.read_bytes() != before
