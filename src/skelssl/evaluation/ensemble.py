"""Multi-stream ensembles of fine-tuned classifiers (joint / bone / motion).

The "3s" numbers of Hi-TRS (3s-Hi-TRS), 2s-AGCN, MS-G3D and PYSKL come from one model per input stream,
fused by adding their class scores. The official Hi-TRS code only saves each stream's test logits
(``test_on_NTU_AR.py`` writes ``test_result.npz``; docs/hitrs.md marks the fusion rule as inferred);
the convention of the 2s-AGCN family (``ensemble.py``: ``r = r11 + r22 * alpha``) is a weighted sum of
the raw scores, without a softmax, and that is what :func:`ensemble_logits` computes.

:func:`ensemble_saved` combines saved evaluations (``skelssl eval ... --save-logits``, then
``skelssl ensemble``): by default a weighted sum of each member's softmax probabilities, which puts
members whose logits have different scales (a fine-tuned head, the robust probe's log-probabilities)
on one footing; ``use_logits=True`` sums the raw logits as above. Members must cover the same test
samples: the same store rows in the same order, with the same labels and class count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from skelssl.evaluation.logits import LOGITS_FILE, LogitsError, read_logits
from skelssl.evaluation.metrics import topk_accuracy

__all__ = ["ensemble_logits", "load_member", "ensemble_saved", "ensemble_record", "softmax"]


def ensemble_logits(
    logits: Sequence[torch.Tensor | np.ndarray],
    weights: Sequence[float] | None = None,
) -> torch.Tensor | np.ndarray:
    """Weighted sum of per-stream logits (no softmax).

    Args:
        logits: one ``(N, num_classes)`` array per stream, rows in the same sample order.
        weights: one weight per stream (default: all 1).

    Returns:
        ``(N, num_classes)``: ``sum_s weights[s] * logits[s]``, a NumPy array if every input is one,
        else a float tensor (float64 if any input is).

    Raises:
        ValueError: no streams, mismatched shapes, or a wrong number of weights.
    """
    if len(logits) == 0:
        raise ValueError("ensemble_logits needs at least one stream")
    if weights is None:
        weights = [1.0] * len(logits)
    if len(weights) != len(logits):
        raise ValueError(f"{len(weights)} weights for {len(logits)} streams")
    shape = tuple(logits[0].shape)
    if len(shape) != 2:
        raise ValueError(f"each stream's logits must be (N, num_classes), got shape {shape}")
    for i, item in enumerate(logits):
        if tuple(item.shape) != shape:
            raise ValueError(f"stream {i} has logits of shape {tuple(item.shape)}, stream 0 has {shape}")
    if all(isinstance(item, np.ndarray) for item in logits):
        return sum(float(w) * item for w, item in zip(weights, logits))
    tensors = [torch.as_tensor(item) for item in logits]
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    device = next((t.device for t in tensors if t.device.type != "cpu"), torch.device("cpu"))
    out = torch.zeros(shape, dtype=dtype, device=device)
    for w, t in zip(weights, tensors):
        out = out + float(w) * t.to(device, dtype)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, K)`` scores (``-inf`` gives probability 0), float64."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def load_member(given: str | Path) -> dict[str, Any]:
    """One saved evaluation: an evaluation folder whose ``results.json`` names its logits file, a
    folder holding ``logits.npz`` (a ``semi`` seed folder), or a ``logits.npz`` itself.

    Returns:
        :func:`~skelssl.evaluation.logits.read_logits`'s fields, with ``given`` (as typed) and
        ``results`` (the folder's results.json, or ``None``).

    Raises:
        LogitsError: nothing readable there, or results saved without ``--save-logits``.
    """
    path = Path(given)
    results = None
    if path.is_dir():
        rfile = path / "results.json"
        if rfile.is_file():
            try:
                results = json.loads(rfile.read_text())
            except (OSError, ValueError):
                raise LogitsError(f"{given}: results.json is not readable JSON") from None
        named = results.get("logits") if isinstance(results, dict) else None
        if isinstance(named, str):
            file = path / named
        elif (path / LOGITS_FILE).is_file():
            file = path / LOGITS_FILE
        elif isinstance(results, dict) and any(isinstance(r, dict) and r.get("logits") for r in results.get("per_seed") or []):
            seeds = [r["logits"] for r in results["per_seed"] if isinstance(r, dict) and r.get("logits")]
            raise LogitsError(f"{given}: a semi-supervised result with one logits file per seed; give one of "
                              f"{', '.join(str(path / s) for s in seeds)}")
        elif results is not None:
            raise LogitsError(f"{given}: its results.json names no logits (evaluate with --save-logits: "
                              "linear, finetune or semi)")
        else:
            raise LogitsError(f"{given}: no results.json or {LOGITS_FILE} in this folder")
        if not file.is_file():
            raise LogitsError(f"{given}: {file.name} named by its results.json is missing")
    elif path.is_file():
        file = path
        rfile = path.parent / "results.json"
        if rfile.is_file():
            try:
                r = json.loads(rfile.read_text())
                results = r if isinstance(r, dict) and r.get("logits") == path.name else None
            except (OSError, ValueError):
                results = None
    else:
        raise LogitsError(f"{given}: no such evaluation folder or logits file")
    member = read_logits(file)
    member["given"] = str(given)
    member["results"] = results
    return member


def _check_same_samples(members: list[dict[str, Any]]) -> None:
    first = members[0]
    for m in members[1:]:
        a, b = first["given"], m["given"]
        if len(m["indices"]) != len(first["indices"]):
            raise LogitsError(f"{b} has {len(m['indices'])} test samples, {a} has {len(first['indices'])}: "
                              "an ensemble needs the same test samples (same store and protocol)")
        diff = np.flatnonzero(m["indices"] != first["indices"])
        if len(diff):
            i = int(diff[0])
            raise LogitsError(f"{b} and {a} list different test samples ({len(diff)} of {len(m['indices'])} "
                              f"differ; first at position {i}: store row {m['indices'][i]} vs {first['indices'][i]}): "
                              "an ensemble needs the same store and protocol")
        diff = np.flatnonzero(m["labels"] != first["labels"])
        if len(diff):
            i = int(diff[0])
            raise LogitsError(f"{b} and {a} give different labels to the same test samples ({len(diff)} differ; first "
                              f"store row {m['indices'][i]}: {m['labels'][i]} vs {first['labels'][i]}): not the same store")
        if m["logits"].shape[1] != first["logits"].shape[1]:
            raise LogitsError(f"{b} has {m['logits'].shape[1]} classes, {a} has {first['logits'].shape[1]}")


def _top(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    acc = topk_accuracy(torch.from_numpy(np.ascontiguousarray(scores)), torch.from_numpy(labels), ks=(1, 5))
    return {"top1": float(acc[1]), "top5": float(acc[5])}


def ensemble_saved(given: Sequence[str | Path], weights: Sequence[float] | None = None, *,
                   use_logits: bool = False) -> dict[str, Any]:
    """Combine saved test logits of several evaluations over the same test samples.

    Args:
        given: evaluation folders or ``logits.npz`` files (see :func:`load_member`).
        weights: one non-negative weight per member (default all 1).
        use_logits: sum ``weight * logits`` instead of ``weight * softmax(logits)``.

    Returns:
        ``{"top1", "top5", "test_samples", "combine", "members": [{"path", "logits", "weight",
        "top1", "top5", ...}], "scores": (N, K) float64, "labels", "indices"}``.

    Raises:
        LogitsError: fewer than two members, bad weights, unreadable members, or members over other samples.
    """
    if len(given) < 2:
        raise LogitsError(f"an ensemble needs at least two saved evaluations, got {len(given)}")
    if weights is None:
        weights = [1.0] * len(given)
    weights = [float(w) for w in weights]
    if len(weights) != len(given):
        raise LogitsError(f"{len(weights)} weights for {len(given)} members")
    if any(not np.isfinite(w) or w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise LogitsError(f"weights must be finite, non-negative and not all zero, got {weights}")
    members = [load_member(g) for g in given]
    _check_same_samples(members)
    labels = members[0]["labels"]
    rows = []
    for m, w in zip(members, weights):
        res = m["results"] or {}
        rows.append({"path": m["given"], "logits": str(m["path"]), "weight": w, "kind": m["kind"],
                     "task": res.get("task"), "method": res.get("method"), "run": res.get("run"),
                     **_top(softmax(m["logits"]), labels)})
    total = _combine([m["logits"] for m in members], weights, use_logits)
    # The same ensemble of the members' baselines (raw input, random init: the robust probe's scores that
    # --save-logits keeps beside each member's own), for each baseline every member carries.
    carried = sorted(set.intersection(*(set(m["baselines"]) for m in members)))
    baselines = {name: _top(_combine([m["baselines"][name] for m in members], weights, use_logits), labels)
                 for name in carried}
    return {"combine": "logits" if use_logits else "softmax", **_top(total, labels),
            "test_samples": int(len(labels)), "members": rows, "scores": total, "labels": labels,
            "indices": members[0]["indices"], "store": members[0]["store"], "baselines": baselines}


def _combine(scores: list[np.ndarray], weights: list[float], use_logits: bool) -> np.ndarray:
    """``sum_i w_i * softmax(scores_i)`` (or of the raw scores), float64; a zero weight adds nothing
    (``0 * -inf``, a class the robust probe never saw, would be NaN)."""
    total = np.zeros(scores[0].shape, dtype=np.float64)
    for s, w in zip(scores, weights):
        if w > 0:
            total += w * (np.asarray(s, np.float64) if use_logits else softmax(s))
    return total


def ensemble_record(summary: dict[str, Any], wall_seconds: float) -> dict[str, Any]:
    """The ``results.json`` of an ensemble (task ``ensemble``) from :func:`ensemble_saved`'s summary:
    top-1 as ``final`` (top-5 as ``final_top5``), the members with their weights and own figures, and
    the protocol, store and training-sample count of the first member that records them."""
    from skelssl.evaluation.results import config_hash

    first: dict[str, Any] = {}
    for m in summary["members"]:
        if m.get("task") is not None:
            first = load_member(m["path"])["results"] or {}
            break
    members = [{k: v for k, v in m.items() if v is not None} for m in summary["members"]]
    return {
        "task": "ensemble", "protocol": str(first.get("protocol") or "test"), "metric": "top1",
        "final": summary["top1"], "final_top5": summary["top5"], "best": None,
        "train_samples": int(first.get("train_samples") or 0), "test_samples": summary["test_samples"],
        "seed": int(first.get("seed") or 0),
        "config_hash": config_hash({"members": [(m["logits"], m["weight"]) for m in members], "combine": summary["combine"]}),
        "wall_seconds": float(wall_seconds), "combine": summary["combine"], "members": members,
        "store": summary["store"] or first.get("store"), "method": "ensemble",
        "baselines": {k: {"probe_top1": v["top1"], "probe_top5": v["top5"]} for k, v in summary["baselines"].items()},
        **{k: first[k] for k in ("store_dataset", "store_classes", "store_source_format") if k in first},
    }
