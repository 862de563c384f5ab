"""Detected against true action segments along the timeline of one untrimmed sequence (a PNG).

Two bars over the frames: the ground truth on top, the detections below, one colour per class
(detections drawn more transparent the lower their confidence), each segment marked with its class
index when it is wide enough; under them, optionally, the per-frame probability that some action is
happening (one minus the background probability). Drawn on matplotlib's Agg canvas without pyplot
and written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from skelssl.data.store import atomic_write_bytes
from skelssl.evaluation.detection import Segment

__all__ = ["detection_timeline"]


def _colour(label: int) -> tuple[float, float, float, float]:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return cmap((label * 7) % 20)  # a stride through the 20 colours: neighbouring classes differ


def detection_timeline(
    ground_truth: Sequence[Segment],
    detections: Sequence[Segment],
    num_frames: int,
    out_png: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    frame_scores: np.ndarray | None = None,
    background_index: int | None = None,
    title: str | None = None,
) -> Path:
    """Draw true and detected segments of one sequence.

    Args:
        ground_truth: the sequence's true segments.
        detections: its detected segments (``score`` = confidence in ``[0, 1]``).
        num_frames: the sequence length ``T`` (the x range).
        out_png: the picture to write.
        class_names: names for the legend (index -> name).
        frame_scores: optional ``(T, K)`` per-frame class probabilities; with ``background_index``
            the action probability ``1 - p[:, background_index]`` is drawn under the bars.
        background_index: the background column of ``frame_scores``.
        title: figure title.

    Returns:
        The PNG path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    with_scores = frame_scores is not None and background_index is not None
    fig = Figure(figsize=(12.0, 3.4 if with_scores else 2.4), dpi=100)
    FigureCanvasAgg(fig)
    if with_scores:
        bars, curve = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    else:
        bars, curve = fig.subplots(1, 1), None
    rows = (("true", 1.0, ground_truth), ("detected", 0.0, detections))
    for _, y, segments in rows:
        for seg in segments:
            alpha = 1.0 if y == 1.0 else 0.25 + 0.75 * float(np.clip(seg.score, 0.0, 1.0))
            bars.broken_barh([(seg.start, seg.length)], (y - 0.35, 0.7), facecolors=[_colour(seg.label)], alpha=alpha,
                             edgecolor="black", linewidth=0.4)
            if seg.length >= 0.015 * num_frames:
                bars.text(seg.start + seg.length / 2, y, str(seg.label), ha="center", va="center", fontsize=6)
    bars.set_yticks([1.0, 0.0], [r[0] for r in rows])
    bars.set_ylim(-0.6, 1.6)
    bars.set_xlim(0, num_frames)
    labels = sorted({s.label for s in ground_truth} | {s.label for s in detections})
    legend_width = 0.0
    if labels:
        names = class_names or []
        handles = [Patch(facecolor=_colour(c), label=(f"{c} {names[c]}" if c < len(names) else str(c))[:24]) for c in labels]
        ncol = -(-len(handles) // 14)  # at most 14 rows, so the legend fits the figure's height
        fig.legend(handles=handles, loc="center right", fontsize=6, ncol=ncol, frameon=False)
        legend_width = min(0.6, 0.17 * ncol)
    if curve is not None:
        scores = np.asarray(frame_scores, dtype=np.float64)
        curve.plot(np.arange(len(scores)), 1.0 - scores[:, background_index], linewidth=0.8, color="tab:gray")
        curve.set_ylim(0, 1)
        curve.set_ylabel("p(action)", fontsize=8)
        curve.grid(True, alpha=0.3)
        curve.set_xlabel("frame")
    else:
        bars.set_xlabel("frame")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0.0, 0.0, 1.0 - legend_width, 1.0))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    out = Path(out_png)
    atomic_write_bytes(out, buf.getvalue())
    return out
