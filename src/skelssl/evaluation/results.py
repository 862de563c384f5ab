"""``results.json``: what every evaluation leaves in its run folder, and what ``skelssl report`` reads.

Required fields (DESIGN.md "Evaluation outputs"):

========================  ===========================================================================
``task``                  one of :data:`TASKS`, or ``transfer`` or ``ensemble``
``protocol``              the split, named as :mod:`skelssl.data.protocols` names it (``ntu60-xsub``)
``metric``                e.g. ``top1`` (percent), ``map@0.5``, ``mpjpe``
``final``                 the metric at the last epoch (or the only value, for kNN)
``best``                  ``{"epoch": e, "value": v}``, the best epoch on the test split (what ISC and
                          MAMP report), or ``null`` where there are no epochs
``train_samples``         labelled training samples used (after any label fraction)
``test_samples``          test samples
``seed``                  the run's seed
``config_hash``           :func:`config_hash` of the resolved config
``wall_seconds``          wall-clock time of the evaluation
========================  ===========================================================================

Any other JSON field may be added (``method``, ``encoder``, ``random_init``, ``label_fraction``,
``seeds``, ``per_seed``, ``std``, ``baseline``, ``curve``, ``test_identical_to_train``: how many test
samples have frames bit-identical to a training sample, ``null`` for stores that do not record it, ...).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from skelssl.core.canonical import config_hash, to_jsonable
from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.store import atomic_write_text

__all__ = ["REQUIRED_KEYS", "TASKS", "RESULTS_FILE", "write_results", "read_results", "validate_results", "config_hash", "to_jsonable"]

REQUIRED_KEYS = ("task", "protocol", "metric", "final", "best", "train_samples", "test_samples", "seed", "config_hash", "wall_seconds")
# The tasks ``skelssl eval`` runs (``jobs/evaluate.py`` reads this list); a results.json may also record a
# ``transfer`` (``finetune`` of an encoder pre-trained on other data) or an ``ensemble`` of saved logits.
TASKS = ("knn", "linear", "finetune", "semi", "tsne", "detect", "predict")
_RECORDED_TASKS = frozenset(TASKS) | {"transfer", "ensemble"}
RESULTS_FILE = "results.json"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_results(results: dict[str, Any], where: str | Path = "results") -> None:
    """Raise :class:`~skelssl.core.conventions.SkeletonFormatError` naming ``where`` and the problem."""
    if not isinstance(results, dict):
        raise SkeletonFormatError(where, f"results must be a JSON object, got {type(results).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in results]
    if missing:
        raise SkeletonFormatError(where, f"missing required key(s) {', '.join(missing)}")
    if results["task"] not in _RECORDED_TASKS:
        raise SkeletonFormatError(where, f"task {results['task']!r} is not one of {', '.join(sorted(_RECORDED_TASKS))}")
    for key in ("protocol", "metric", "config_hash"):
        if not isinstance(results[key], str) or not results[key]:
            raise SkeletonFormatError(where, f"{key} must be a non-empty string, got {results[key]!r}")
    if not _number(results["final"]):
        raise SkeletonFormatError(where, f"final must be a finite number, got {results['final']!r}")
    best = results["best"]
    if best is not None:
        if not isinstance(best, dict) or not {"epoch", "value"} <= set(best) or not _number(best["value"]):
            raise SkeletonFormatError(where, f'best must be null or {{"epoch": e, "value": v}}, got {best!r}')
    for key in ("train_samples", "test_samples"):
        v = results[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise SkeletonFormatError(where, f"{key} must be a non-negative integer, got {v!r}")
    if not isinstance(results["seed"], int) or isinstance(results["seed"], bool):
        raise SkeletonFormatError(where, f"seed must be an integer, got {results['seed']!r}")
    if not _number(results["wall_seconds"]) or results["wall_seconds"] < 0:
        raise SkeletonFormatError(where, f"wall_seconds must be a non-negative number, got {results['wall_seconds']!r}")


def write_results(out_dir: str | Path, results: dict[str, Any]) -> Path:
    """Validate ``results`` and write ``out_dir/results.json`` atomically; returns its path.

    Numpy / torch scalars, tuples and paths are converted to plain JSON first.
    """
    path = Path(out_dir) / RESULTS_FILE
    data = to_jsonable(results)
    validate_results(data, path)
    try:
        text = json.dumps(data, indent=1, allow_nan=False)
    except ValueError as e:  # NaN / inf in an extra field
        raise SkeletonFormatError(path, f"not valid JSON ({e})") from None
    atomic_write_text(path, text + "\n")
    return path


def read_results(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``results.json`` (or the one inside a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SkeletonFormatError(path, "no such results file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SkeletonFormatError(path, f"unreadable JSON ({e})") from None
    validate_results(data, path)
    return data
