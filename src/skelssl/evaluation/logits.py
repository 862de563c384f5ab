"""Saved test logits (``eval ... --save-logits``): one ``logits.npz`` beside an evaluation's ``results.json``.

The file holds, for the protocol's test split in the order the evaluation saw it:

- ``logits`` ``(N, classes)`` float32: the trained head's logits (SGD linear probe, fine-tuning,
  semi-supervised), or the robust probe's log-probabilities (``-inf`` for a class the training split
  lacks); a softmax of a row is the model's class probabilities either way;
- ``labels`` ``(N,)`` int64, ``indices`` ``(N,)`` int64 (rows of the store), ``names`` ``(N,)`` str;
- ``store`` (its absolute path) and ``kind`` (``logits`` or ``log_proba``), as 0-d strings;
- for the robust probe, ``baseline_raw_input`` and ``baseline_random_init`` ``(N, classes)``: the
  baselines' log-probabilities on the same rows, so that an ensemble is given beside the ensemble of
  its members' baselines.

Written atomically; read without unpickling. Multi-stream ensembles
(:mod:`skelssl.evaluation.ensemble`) combine such files over the same test samples.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.core.files import atomic_write_bytes

__all__ = ["LOGITS_FILE", "write_logits", "read_logits", "LogitsError"]

LOGITS_FILE = "logits.npz"


class LogitsError(ValueError):
    """A logits file that cannot be read, or files that cannot be combined."""


def write_logits(path: str | Path, logits: np.ndarray, labels: np.ndarray, indices: np.ndarray, names: np.ndarray,
                 *, store: str = "", kind: str = "logits", baselines: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``logits.npz`` atomically (see the module docstring for the fields).

    Raises:
        ValueError: the arrays do not describe the same ``N`` samples.
    """
    logits = np.asarray(logits, dtype=np.float32)
    labels, indices = np.asarray(labels, dtype=np.int64), np.asarray(indices, dtype=np.int64)
    names = np.asarray([str(n) for n in names])
    if logits.ndim != 2 or not len(logits) == len(labels) == len(indices) == len(names):
        raise ValueError(f"logits {logits.shape}, labels {labels.shape}, indices {indices.shape} and names "
                         f"{names.shape} do not describe the same samples")
    extra = {f"baseline_{k}": np.asarray(v, dtype=np.float32) for k, v in (baselines or {}).items()}
    if any(v.shape != logits.shape for v in extra.values()):
        raise ValueError(f"baseline scores {[v.shape for v in extra.values()]} do not match logits {logits.shape}")
    buf = io.BytesIO()
    np.savez(buf, logits=logits, labels=labels, indices=indices, names=names, store=np.asarray(str(store)),
             kind=np.asarray(kind), **extra)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def read_logits(path: str | Path) -> dict[str, Any]:
    """The fields of a ``logits.npz`` (``store`` and ``kind`` as str).

    Raises:
        LogitsError: not a readable logits file (missing fields, wrong shapes).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise LogitsError(f"{path}: not a logits file ({' '.join(str(e).split())})") from None
    missing = [k for k in ("logits", "labels", "indices") if k not in data]
    if missing:
        raise LogitsError(f"{path}: not a logits file (no {', '.join(missing)}; written by eval --save-logits?)")
    logits = data["logits"]
    if logits.ndim != 2 or len(data["labels"]) != len(logits) or len(data["indices"]) != len(logits):
        raise LogitsError(f"{path}: logits {logits.shape} do not match labels {data['labels'].shape} "
                          f"and indices {data['indices'].shape}")
    out: dict[str, Any] = {"logits": logits.astype(np.float32), "labels": data["labels"].astype(np.int64),
                           "indices": data["indices"].astype(np.int64), "path": path}
    out["names"] = data["names"] if "names" in data else np.asarray([""] * len(logits))
    out["store"] = str(data["store"]) if "store" in data else ""
    out["kind"] = str(data["kind"]) if "kind" in data else "logits"
    out["baselines"] = {k[len("baseline_"):]: v.astype(np.float32) for k, v in data.items()
                        if k.startswith("baseline_") and v.shape == logits.shape}
    return out
