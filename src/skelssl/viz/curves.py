"""Training curves from a run's ``metrics.jsonl`` (one JSON object per logged step or epoch)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Sequence

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.store import atomic_write_bytes

__all__ = ["read_metrics", "plot_curves"]


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` file (blank lines skipped).

    Raises:
        SkeletonFormatError: naming the file and line when a line is not a JSON object.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SkeletonFormatError(path, "no such metrics file") from None
    records = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise SkeletonFormatError(path, f"line {no}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise SkeletonFormatError(path, f"line {no}: expected a JSON object")
        records.append(rec)
    return records


def _x_of(rec: dict, i: int, x_key: str | None) -> float:
    if x_key is not None:
        return float(rec[x_key])
    for key in ("step", "global_step", "epoch"):
        if isinstance(rec.get(key), (int, float)):
            return float(rec[key])
    return float(i)


def plot_curves(
    metrics_jsonl_path: str | Path,
    out_png: str | Path,
    keys: Sequence[str] = ("loss",),
    x_key: str | None = None,
    title: str | None = None,
) -> Path:
    """One panel per metric name against the step (or epoch), written as a PNG.

    Args:
        metrics_jsonl_path: the run's ``metrics.jsonl``.
        out_png: where to write the picture.
        keys: metric names to draw; records without a key are skipped for that panel, non-finite
            values are dropped.
        x_key: the x-axis field (default: ``step``, else ``global_step``, else ``epoch``, else the
            record number).
        title: figure title (default: the run folder's name).

    Returns:
        The PNG path.

    Raises:
        SkeletonFormatError: when the file is unreadable or no record holds any of ``keys``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(metrics_jsonl_path)
    records = read_metrics(path)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for key in keys:
        xs, ys = [], []
        for i, rec in enumerate(records):
            v = rec.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                if x_key is not None and x_key not in rec:
                    continue
                xs.append(_x_of(rec, i, x_key))
                ys.append(float(v))
        if xs:
            series[key] = (xs, ys)
    if not series:
        raise SkeletonFormatError(path, f"no record holds any of {', '.join(keys)}")

    fig = Figure(figsize=(6.0, 2.6 * len(series)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(series), 1, squeeze=False)[:, 0]
    for ax, (key, (xs, ys)) in zip(axes, series.items()):
        ax.plot(xs, ys, linewidth=1.0)
        ax.set_ylabel(key)
        ax.grid(True, alpha=0.3)
    auto = next((k for k in ("step", "global_step", "epoch") if any(k in r for r in records)), "record")
    axes[-1].set_xlabel(x_key or auto)
    fig.suptitle(title if title is not None else path.parent.name)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    out = Path(out_png)
    atomic_write_bytes(out, buf.getvalue())
    return out
