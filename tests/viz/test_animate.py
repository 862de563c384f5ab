"""Skeleton drawings: a GIF with one frame per sequence frame, written atomically; still frames."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from skelssl.core.layouts import NTU25
from skelssl.viz.animate import PERSON_COLOURS, animate, draw_frame

from conftest import standing_ntu25

STAND = standing_ntu25()  # 3 m in front of the camera (x = the person's right, y up)


def two_people(t: int = 12) -> np.ndarray:
    """``(t, 2, 25, 3)``: person 0 raises the right arm; person 1 walks in at frame 4."""
    frames = np.zeros((t, 2, 25, 3), np.float32)
    frames[:, 0] = STAND
    lift = np.linspace(0.0, 0.5, t)
    frames[:, 0, [9, 10, 11, 23, 24], 1] += lift[:, None]
    frames[4:, 1] = STAND + [0.9, 0.0, 0.3]
    frames[4:, 1, :, 0] -= np.linspace(0.3, 0.0, max(t - 4, 0))[:, None]
    return frames


def colour_pixels(rgb: np.ndarray, name: str, tol: int = 40) -> int:
    from matplotlib.colors import to_rgb

    target = np.array(to_rgb(name)) * 255
    return int((np.abs(rgb.astype(int) - target).max(axis=-1) < tol).sum())


def test_gif_has_one_frame_per_sequence_frame(tmp_path):
    frames = two_people(12)
    out = animate(frames, NTU25, tmp_path / "walk.gif", fps=10, title="synthetic")
    assert out == tmp_path / "walk.gif" and out.stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["walk.gif"]  # no temporary file left behind
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.n_frames == 12 and gif.info.get("loop") == 0
        gif.seek(0)
        first = np.asarray(gif.convert("RGB"))
        gif.seek(11)
        last = np.asarray(gif.convert("RGB"))
    # Person 1 is absent in frame 0 (not drawn), present in the last frame; person 0 in both.
    assert colour_pixels(first, PERSON_COLOURS[0]) > 50 and colour_pixels(last, PERSON_COLOURS[0]) > 50
    assert colour_pixels(first, PERSON_COLOURS[1]) == 0 and colour_pixels(last, PERSON_COLOURS[1]) > 50
    assert not np.array_equal(first, last)


def test_long_sequences_are_subsampled_and_files_replaced(tmp_path):
    path = tmp_path / "sub" / "long.gif"
    animate(two_people(40), "ntu25", path, max_frames=8)
    with Image.open(path) as gif:
        assert gif.n_frames == 8
    animate(two_people(5), "ntu25", path)  # overwrite in place
    with Image.open(path) as gif:
        assert gif.n_frames == 5
    assert sorted(p.name for p in path.parent.iterdir()) == ["long.gif"]


def test_bad_requests_leave_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        animate(two_people(3), NTU25, tmp_path / "a.png")
    with pytest.raises(ValueError, match="joints"):
        animate(np.zeros((3, 1, 20, 3), np.float32), NTU25, tmp_path / "a.gif")
    with pytest.raises(ValueError, match="up must be"):
        animate(two_people(3), NTU25, tmp_path / "a.gif", up="x")
    assert list(tmp_path.iterdir()) == []


def test_draw_frame_draws_bones_of_present_people(tmp_path):
    frames = two_people(12)
    ax = draw_frame(frames, NTU25, 0, title="still")
    ax.figure.canvas.draw()  # 3-D collections hold their projected segments after a draw
    coll0, coll1 = ax.collections[:2]
    assert len(coll0.get_segments()) == len(NTU25.bones) and len(coll1.get_segments()) == 0
    frames[0, 0, 3] = 0  # an untracked head: its joint and its one bone are not drawn
    ax = draw_frame(frames, NTU25, 0)
    ax.figure.canvas.draw()
    assert len(ax.collections[0].get_segments()) == len(NTU25.bones) - 1
    assert len(ax.lines[0].get_data_3d()[0]) == 24
    png = tmp_path / "still.png"
    ax.figure.savefig(png)
    with Image.open(png) as im:
        assert colour_pixels(np.asarray(im.convert("RGB")), PERSON_COLOURS[0]) > 50
    with pytest.raises(IndexError):
        draw_frame(frames, NTU25, 12)


def test_failed_render_removes_its_temporary_file(tmp_path, monkeypatch):
    import skelssl.viz.animate as module

    def broken(*args, **kwargs):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(module, "_render", broken)
    with pytest.raises(RuntimeError, match="renderer broke"):
        animate(two_people(3), NTU25, tmp_path / "a.gif")
    assert list(tmp_path.iterdir()) == []


def test_mp4_needs_ffmpeg(tmp_path):
    from matplotlib import animation

    if animation.writers.is_available("ffmpeg"):
        pytest.skip("ffmpeg is installed; the missing-ffmpeg error cannot be checked")
    with pytest.raises(RuntimeError, match="ffmpeg"):
        animate(two_people(3), NTU25, tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []
