"""Run logs: ``metrics.jsonl`` (one JSON object per line), TensorBoard scalars and progress bars.

Only rank 0 writes. On resume, lines logged after the checkpoint being resumed from (by the run that
was killed) are dropped from ``metrics.jsonl`` and purged from TensorBoard, so the logs of a resumed
run read as if it had never stopped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from skelssl.data.store import atomic_write_text

__all__ = ["RunLogger", "read_metrics", "scalar", "progress_bar"]


def scalar(value: Any) -> float:
    """A log value as a float (0-d tensors are synchronised here, only when a line is written)."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().item())
    return float(value)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file (or of ``run/metrics.jsonl``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def progress_bar(total: int | None, desc: str, enabled: bool, position: int = 0, initial: int = 0, leave: bool = True):
    """A tqdm bar (a disabled one when ``enabled`` is false, so callers never branch)."""
    return tqdm(total=total, desc=desc, disable=not enabled, position=position, initial=initial, leave=leave, dynamic_ncols=True)


class RunLogger:
    """Writes ``metrics.jsonl`` and TensorBoard scalars into a run folder.

    Args:
        run_dir: the run folder.
        enabled: whether this process writes (rank 0).
        tensorboard: also write TensorBoard event files under ``run_dir/tb``.
        resume_step: when resuming, the checkpoint's step: later records are discarded.
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True, resume_step: int | None = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled = enabled
        self._writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            atomic_write_text(self.path, "")
        else:
            keep = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= resume_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        self._file = open(self.path, "a", encoding="utf-8")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events at or after it that a killed run wrote past its checkpoint.
            purge = None if resume_step is None else resume_step + 1
            self._writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb"), purge_step=purge)

    def log(self, record: dict[str, Any], kind: str = "train") -> None:
        """Append one record (must hold ``step``); numeric entries also go to TensorBoard as ``kind/key``.

        Args:
            record: ``step``, ``epoch`` and scalar values (floats, ints or 0-d tensors).
            kind: ``"train"`` or ``"eval"``; stored in the line as ``"kind"``.
        """
        if not self.enabled:
            return
        clean: dict[str, Any] = {"kind": kind}
        for key, value in record.items():
            if isinstance(value, torch.Tensor):
                value = scalar(value)
            if isinstance(value, float) and not math.isfinite(value):
                value = str(value)  # JSON has no NaN/inf; keep the line valid
            clean[key] = value
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()
        if self._writer is not None:
            step = int(record["step"])
            for key, value in clean.items():
                if key in ("step", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                self._writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if not self.enabled:
            return
        self._file.close()
        if self._writer is not None:
            self._writer.close()
