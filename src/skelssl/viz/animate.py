"""Skeleton sequences drawn in 3-D: one still frame, or an animated GIF.

Everything is drawn on matplotlib's Agg canvas without pyplot (no global figure state, no display).
Bones come from the :class:`~skelssl.core.layouts.Layout`; each person has one colour; absent persons
(all-zero slots) and zero joints are not drawn. The vertical axis of the picture is the data's "up"
axis: ``y`` for camera coordinates (Kinect: x left of the sensor, y up, z away from it; the ``raw``
pipeline), ``z`` after the ``agcn`` pipeline (which turns the spine onto +z). Both mappings are proper
rotations, so the picture is never mirrored: for ``up="y"`` the depth axis is drawn reversed, and the
default view looks at the person from the camera's side.

Frames use the store's layout ``(T, M, V, C)`` (:mod:`skelssl.core.conventions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import warnings

import numpy as np

from skelssl.core.files import atomic_write_with
from skelssl.core.layouts import Layout, get_layout

__all__ = ["animate", "draw_frame", "drawable", "FRONT"]

# One colour per person slot (matplotlib's tab10 order), cycled beyond ten persons.
PERSON_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple",
                  "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
# Data axes shown as the picture's (horizontal, depth, vertical) axes, per "up" convention.
_AXES = {"y": (0, 2, 1), "z": (0, 1, 2)}
_VIEW = (15.0, 70.0)  # (elevation, azimuth) in degrees: slightly above, from the person's front-left
FRONT = (0.0, -90.0)  # straight along the depth axis, x to the right: a 2-D skeleton as in its image


def drawable(frames: np.ndarray, channel_names: list[str]) -> np.ndarray:
    """``(T, M, V, 3)`` positions to draw from a store's ``(T, M, V, C)`` frames: the coordinates only
    (a ``score`` channel is never drawn as a coordinate); 2-D ``x, y`` get depth 0 (draw them with
    ``view=FRONT``)."""
    frames = np.asarray(frames)
    coords = [channel_names.index(c) for c in ("x", "y", "z") if c in channel_names]
    if len(coords) < 2 or frames.shape[-1] != len(channel_names):
        raise ValueError(f"cannot draw channels {', '.join(channel_names)} of frames {frames.shape}")
    xyz = frames[..., coords]
    if xyz.shape[-1] == 2:
        xyz = np.concatenate([xyz, np.zeros_like(xyz[..., :1])], axis=-1)  # (T, M, V, 3), depth 0
    return xyz


def _check_frames(frames: np.ndarray, layout: Layout, up: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] < 3:
        raise ValueError(f"frames must be (T, M, V, C>=3), got shape {frames.shape}")
    if frames.shape[2] != layout.num_joints:
        raise ValueError(f"frames have {frames.shape[2]} joints, layout {layout.name} has {layout.num_joints}")
    if frames.shape[0] == 0:
        raise ValueError("frames has no frame to draw")
    if up not in _AXES:
        raise ValueError(f"up must be one of {sorted(_AXES)}, got {up!r}")
    # (T, M, V, 3) in picture order (horizontal, depth, vertical); non-finite joints count as absent.
    xyz = frames[..., list(_AXES[up])].astype(np.float64)
    return np.where(np.isfinite(xyz).all(axis=-1, keepdims=True), xyz, 0.0)


def _present_joints(xyz: np.ndarray) -> np.ndarray:
    """``(T, M, V)`` joints to draw.

    A zero joint is normally a dropped joint and is not drawn, but pipelines that centre the skeleton
    (``agcn``, ``ctrgcn``) put one joint of body 0 exactly at the origin. So a zero joint is drawn
    when the origin lies inside the bounding box of that person's other joints in that frame, which
    never happens in camera coordinates (the camera is metres away from the body).
    """
    nonzero = xyz.any(axis=-1)  # (T, M, V)
    big = np.where(nonzero[..., None], xyz, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(big, axis=2), np.nanmax(big, axis=2)  # (T, M, 3)
    inside = np.nan_to_num((lo <= 0) & (hi >= 0), nan=0).all(axis=-1)  # (T, M)
    return nonzero | (inside[..., None] & nonzero.any(axis=-1, keepdims=True))


class _SkeletonPlot:
    """The axes and artists of one drawing; :meth:`show` moves the artists to another frame.

    Artists are created once (one bone collection and one joint marker line per person) and only
    their data change between frames, which keeps a 100-frame GIF at a few seconds.
    """

    def __init__(self, ax: Any, xyz: np.ndarray, layout: Layout, up: str, title: str | None,
                 view: tuple[float, float] | None = None) -> None:
        from mpl_toolkits.mplot3d.art3d import Line3DCollection

        self.ax, self.xyz = ax, xyz
        self.present = _present_joints(xyz)  # (T, M, V) joints to draw
        bones = np.array(layout.bones, dtype=np.int64).reshape(-1, 2)  # (n_bones, 2) child, parent
        self.bone_child, self.bone_parent = bones[:, 0], bones[:, 1]
        self.bones_coll, self.joints = [], []
        for m in range(xyz.shape[1]):
            colour = PERSON_COLOURS[m % len(PERSON_COLOURS)]
            coll = Line3DCollection([], colors=colour, linewidths=2.0)
            ax.add_collection3d(coll, autolim=False)
            self.bones_coll.append(coll)
            (line,) = ax.plot([], [], [], linestyle="", marker="o", markersize=2.5, color=colour)
            self.joints.append(line)
        self._fix_axes(up, view or _VIEW)
        # Plain axes-relative texts, not the axes title (Axes.draw re-positions titles, which blitting
        # skips). The title is static and lands in the blitted background; only the counter changes.
        self.counter = ax.text2D(0.5, 1.0, "", transform=ax.transAxes, ha="center", va="bottom")
        ax.text2D(0.5, 1.06, title or "", transform=ax.transAxes, ha="center", va="bottom")

    def _fix_axes(self, up: str, view: tuple[float, float]) -> None:
        """Axis limits over the whole sequence, true proportions, labels and view."""
        from matplotlib.ticker import MaxNLocator

        ax, pts = self.ax, self.xyz[self.present]  # (n_points, 3)
        if pts.size == 0:
            lo, hi = np.full(3, -1.0), np.full(3, 1.0)
        else:
            lo, hi = pts.min(axis=0), pts.max(axis=0)
        # Every axis spans at least 40% of the longest one (a person seen from the front is nearly
        # flat in depth, and a flat box hides the 3-D shape); 5% margin all round.
        span = np.maximum(hi - lo, 0.4 * max(float((hi - lo).max()), 1e-3)) * 1.1
        mid = (lo + hi) / 2
        lo, hi = mid - span / 2, mid + span / 2
        ax.set_xlim(lo[0], hi[0])
        # Camera coordinates drawn as (x, z, y) would be a mirror image; reversing the depth axis
        # makes the mapping a rotation again while the ticks keep the recorded depth values.
        ax.set_ylim((hi[1], lo[1]) if up == "y" else (lo[1], hi[1]))
        ax.set_zlim(lo[2], hi[2])
        ax.set_box_aspect(tuple(float(s) for s in span), zoom=0.9)  # room for the tick labels
        names = "xyz"
        for axis, data_axis in zip((ax.xaxis, ax.yaxis, ax.zaxis), _AXES[up]):
            axis.set_major_locator(MaxNLocator(4))
            axis.set_label_text(names[data_axis])
        ax.view_init(elev=view[0], azim=view[1])

    def show(self, t: int) -> list[Any]:
        """Move every artist to frame ``t``; returns the artists (for ``FuncAnimation``)."""
        for m, (coll, line) in enumerate(zip(self.bones_coll, self.joints)):
            pts, on = self.xyz[t, m], self.present[t, m]  # (V, 3), (V,)
            keep = on[self.bone_child] & on[self.bone_parent]
            segs = np.stack([pts[self.bone_child[keep]], pts[self.bone_parent[keep]]], axis=1)  # (n, 2, 3)
            coll.set_segments(segs)
            line.set_data_3d(pts[on, 0], pts[on, 1], pts[on, 2])
        self.counter.set_text(f"frame {t + 1}/{self.xyz.shape[0]}")
        return [*self.bones_coll, *self.joints, self.counter]


def _new_axes(figsize: tuple[float, float] = (4.0, 4.0), dpi: int = 80) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="3d")
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=0.9)
    return ax


def draw_frame(frames: np.ndarray, layout: Layout | str, t: int, ax: Any = None, up: str = "y",
               title: str | None = None, view: tuple[float, float] | None = None) -> Any:
    """Draw frame ``t`` of a sequence on a 3-D axes (for still pictures).

    Axis limits cover the whole sequence, so stills of different frames line up.

    Args:
        frames: ``(T, M, V, C)`` joint positions, ``C >= 3`` (the first three are x, y, z).
        layout: the skeleton layout (or its name).
        t: the frame to draw (negative counts from the end).
        ax: a matplotlib ``Axes3D`` to draw on; a new Agg figure when ``None``.
        up: the data axis that points up (``"y"`` camera coordinates, ``"z"`` after ``agcn``).
        title: first title line (the second is the frame counter).
        view: ``(elevation, azimuth)`` in degrees (default: slightly above, from the front-left;
            :data:`FRONT` looks straight at a flat 2-D skeleton).

    Returns:
        The axes; save with ``ax.figure.savefig(path)``.
    """
    layout = get_layout(layout)
    xyz = _check_frames(frames, layout, up)
    if not -xyz.shape[0] <= t < xyz.shape[0]:
        raise IndexError(f"frame {t} outside 0..{xyz.shape[0] - 1}")
    ax = _new_axes() if ax is None else ax
    _SkeletonPlot(ax, xyz, layout, up, title, view).show(t % xyz.shape[0])
    return ax


def _render(plot: _SkeletonPlot, shown: np.ndarray) -> list[Any]:
    """Frames as RGB PIL images: the axes drawn once, then only the skeleton artists per frame.

    With a fixed view the panes, grid and ticks never change, and drawing them is most of a 3-D
    frame's cost; so they are drawn once into a background that each frame restores (blitting).
    """
    from PIL import Image

    ax = plot.ax
    canvas = ax.figure.canvas
    artists = plot.show(int(shown[0]))
    for artist in artists:
        artist.set_visible(False)
    canvas.draw()  # also sets the projection ax.M that the per-frame draws below use
    background = canvas.copy_from_bbox(ax.figure.bbox)
    for artist in artists:
        artist.set_visible(True)
    images = []
    for t in shown:
        canvas.restore_region(background)
        for artist in plot.show(int(t)):
            if hasattr(artist, "do_3d_projection"):
                artist.do_3d_projection()  # collections project in Axes3D.draw, not in their own draw
            ax.draw_artist(artist)
        rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4) view of the canvas
        images.append(Image.fromarray(rgba[..., :3].copy()))
    return images


def _to_palette(images: list[Any], persons: int) -> list[Any]:
    """Map every frame onto one shared 128-colour palette (what a GIF stores).

    Quantising each frame on its own (Pillow's default) costs ~30 ms a frame and lets colours flicker;
    one palette taken from a few frames plus swatches of every person's colour (also blended with
    white, for anti-aliased edges) is both faster and steadier.
    """
    from matplotlib.colors import to_rgb
    from PIL import Image

    width = images[0].width
    picks = [images[i] for i in np.unique(np.linspace(0, len(images) - 1, min(6, len(images))).astype(int))]
    colours = np.array([to_rgb(c) for c in PERSON_COLOURS[:persons]])  # (M, 3)
    swatch = np.concatenate([colours * a + (1.0 - a) for a in (1.0, 0.75, 0.5, 0.25)])  # (4M, 3)
    strip = np.repeat((swatch * 255).round().astype(np.uint8), 8, axis=0)[None, :width]  # (1, 32M, 3)
    mosaic = Image.new("RGB", (width, sum(im.height for im in picks) + 8), "white")
    for i, im in enumerate(picks):
        mosaic.paste(im, (0, i * im.height))
    mosaic.paste(Image.fromarray(np.repeat(strip, 8, axis=0)), (0, mosaic.height - 8))
    palette = mosaic.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    return [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]


def animate(frames: np.ndarray, layout: Layout | str, out_path: str | Path, fps: int = 15,
            title: str | None = None, max_frames: int = 300, up: str = "y",
            view: tuple[float, float] | None = None) -> Path:
    """Write an animated 3-D drawing of a skeleton sequence (GIF; MP4 when ffmpeg is installed).

    Sequences longer than ``max_frames`` are subsampled evenly (the counter keeps the original frame
    numbers). The file is written under a temporary name in the same folder and renamed, so an
    interrupted call never leaves a partial file at ``out_path``.

    Args:
        frames: ``(T, M, V, C)`` joint positions, ``C >= 3``; all-zero persons/joints are not drawn.
        layout: the skeleton layout (or its name).
        out_path: ``.gif`` (Pillow) or ``.mp4`` (needs ffmpeg on ``PATH``).
        fps: frames per second of the animation.
        title: first title line (the second is the frame counter).
        max_frames: most frames rendered.
        up: the data axis that points up (``"y"`` camera coordinates, ``"z"`` after ``agcn``).
        view: ``(elevation, azimuth)`` in degrees (default: slightly above, from the front-left).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: bad shapes, an unsupported suffix, ``fps``/``max_frames`` below 1.
        RuntimeError: ``.mp4`` asked for but ffmpeg is not installed.
    """
    from matplotlib import animation

    out = Path(out_path)
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"{out}: animations are written as .gif or .mp4, not {out.suffix!r}")
    if fps < 1 or max_frames < 1:
        raise ValueError(f"fps and max_frames must be >= 1, got {fps} and {max_frames}")
    if suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
        raise RuntimeError(f"{out}: writing .mp4 needs ffmpeg on PATH; write a .gif instead")
    layout = get_layout(layout)
    xyz = _check_frames(frames, layout, up)
    shown = np.unique(np.linspace(0, xyz.shape[0] - 1, min(max_frames, xyz.shape[0])).round().astype(int))
    ax = _new_axes()
    plot = _SkeletonPlot(ax, xyz, layout, up, title, view)


    def write(tmp: str) -> None:  # the temporary name keeps the suffix: Pillow and ffmpeg pick the format from it
        if suffix == ".gif":
            images = _to_palette(_render(plot, shown), xyz.shape[1])
            # What matplotlib's PillowWriter does, minus its full redraw of every frame.
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=round(1000 / fps), loop=0)
        else:
            anim = animation.FuncAnimation(ax.figure, plot.show, frames=[int(t) for t in shown], repeat=False)
            anim.save(tmp, writer=animation.FFMpegWriter(fps=fps), dpi=ax.figure.dpi)

    atomic_write_with(out, write, keep_suffix=True)
    return out
