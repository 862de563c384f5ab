"""Observed, true and predicted motion side by side, as one animated GIF.

Three 3-D panels share the same axes: *observed* (the observed frames, then the last observed pose
held still: what the zero-velocity baseline predicts), *true* (observed then true future) and
*predicted* (observed then the model's future). The counter above each panel says whether the frame
is observed or predicted. Built from the artists and palette of :mod:`skelssl.viz.animate`, with the
same blitting (axes drawn once, only skeletons per frame).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.core.layouts import Layout, get_layout
from skelssl.data.store import atomic_write_bytes
from skelssl.viz.animate import _check_frames, _SkeletonPlot, _to_palette

__all__ = ["prediction_gif"]


def prediction_gif(
    observed: np.ndarray,
    true_future: np.ndarray,
    predicted_future: np.ndarray,
    layout: Layout | str,
    out_path: str | Path,
    *,
    fps: int = 10,
    up: str = "y",
    title: str | None = None,
) -> Path:
    """Write the three-panel GIF.

    Args:
        observed: ``(T_obs, M, V, C)`` observed frames.
        true_future: ``(T_pred, M, V, C)`` the true continuation.
        predicted_future: ``(T_pred, M, V, C)`` the predicted continuation.
        layout: skeleton layout (or its name).
        out_path: the ``.gif`` to write (atomically).
        fps: frames per second.
        up: the data axis drawn vertically (``"y"`` camera coordinates, ``"z"`` after ``agcn``).
        title: a line above the panels.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.
    """
    out = Path(out_path)
    if out.suffix.lower() != ".gif":
        raise ValueError(f"{out}: the prediction picture is written as .gif")
    observed, true_future, predicted_future = (np.asarray(a, dtype=np.float32) for a in (observed, true_future, predicted_future))
    if true_future.shape != predicted_future.shape or observed.shape[1:] != true_future.shape[1:]:
        raise ValueError(f"shapes differ: observed {observed.shape}, true {true_future.shape}, predicted {predicted_future.shape}")
    layout = get_layout(layout)
    t_obs, t_pred = len(observed), len(true_future)
    held = np.repeat(observed[-1:], t_pred, axis=0)  # (T_pred, M, V, C) the zero-velocity continuation
    panels = {
        "observed": np.concatenate([observed, held]),
        "true": np.concatenate([observed, true_future]),
        "predicted": np.concatenate([observed, predicted_future]),
    }
    fig, plots = _figure(panels, layout, up, title)
    images = _to_palette(_render(fig, plots, t_obs, t_pred), observed.shape[1])

    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / max(fps, 1)), loop=0)
    atomic_write_bytes(out, buf.getvalue())  # (creates the folder)
    return out


def _figure(panels: dict[str, np.ndarray], layout: Layout, up: str, title: str | None) -> tuple[Any, list[_SkeletonPlot]]:
    """One row of 3-D panels, one per ``(T, M, V, C)`` sequence of ``panels``, all with the limits of
    the second (the true motion), so the panels compare directly."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.5, 4.0), dpi=72)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=0.8, wspace=0.0)
    if title:
        fig.suptitle(title, fontsize=9, y=0.99)
    plots = []
    for k, (name, frames) in enumerate(panels.items()):
        ax = fig.add_subplot(1, 3, k + 1, projection="3d")
        plots.append(_SkeletonPlot(ax, _check_frames(frames, layout, up), layout, up, name))
    ref = plots[1].ax
    for p in plots:
        p.ax.set_xlim(ref.get_xlim())
        p.ax.set_ylim(ref.get_ylim())
        p.ax.set_zlim(ref.get_zlim())
        p.ax.set_box_aspect(ref.get_box_aspect(), zoom=0.9)
    return fig, plots


def _render(fig: Any, plots: list[_SkeletonPlot], t_obs: int, t_pred: int) -> list[Any]:
    """Every frame as an RGB image, blitting as in ``animate._render``: the axes drawn once into a
    background, then only the skeletons."""
    from PIL import Image

    canvas = fig.canvas
    first = [a for p in plots for a in _show(p, 0, t_obs, t_pred)]
    for a in first:
        a.set_visible(False)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    for a in first:
        a.set_visible(True)
    images = []
    for t in range(t_obs + t_pred):
        canvas.restore_region(background)
        for p in plots:
            for artist in _show(p, t, t_obs, t_pred):
                if hasattr(artist, "do_3d_projection"):
                    artist.do_3d_projection()  # collections project in Axes3D.draw, not in their own draw
                p.ax.draw_artist(artist)
        images.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy()))
    return images


def _show(plot: _SkeletonPlot, t: int, t_obs: int, t_pred: int) -> list:
    """Move one panel's artists to frame ``t`` and label the phase; returns its artists."""
    artists = plot.show(t)
    plot.counter.set_text(f"observed {t + 1}/{t_obs}" if t < t_obs else f"future {t - t_obs + 1}/{t_pred}")
    return artists
