"""Published numbers (top-1 %, test split) that ``skelssl report`` shows beside ours.

Transcribed from the maintainers' notes on the papers (their tables are in docs/hitrs.md, docs/isc.md,
docs/mamp.md and docs/protocols.md) and nothing else; a number not there is not here. Each method's
numbers are in its file (``methods/<name>.py``, registered with it); the context rows of methods
skelssl does not implement are here. Every entry keeps its provenance tag in ``source`` (``READ``,
``RECALL``: not verified, ``2nd-hand``; :func:`skelssl.methods.published_rows`).

Semi-supervised entries carry ``label_fraction``; transfer entries carry ``pretrained_on`` (the
protocol or dataset the encoder was pre-trained on) and the protocol is the fine-tuning target.
"""

from __future__ import annotations

import re
from typing import Any

from skelssl.methods import published_numbers, published_rows

__all__ = ["CONTEXT", "all_published", "DATASET_CLASSES", "method_key", "published_for", "is_papers_data"]

# Classes of each paper dataset (by protocol prefix): a store evaluated under a paper's protocol name is
# only the paper's data if it has these classes (a user's 4-class pickle read with ``-o dataset=ntu`` is not).
DATASET_CLASSES = {"ntu60": 60, "ntu120": 120, "nucla": 10, "pku1": 51, "pku2": 41, "msr": 20, "utkinect": 10}


def is_papers_data(protocol: str, store_dataset: str | None, store_classes: int | None, source_format: str | None = None) -> bool:
    """Whether a result's store can be the data a paper's number for ``protocol`` was measured on.

    Results written before stores were recorded (``None``) are given the benefit of the doubt.
    """
    prefix = protocol.split("-", 1)[0]
    if prefix not in DATASET_CLASSES or "-" not in protocol:
        return False  # a store's own split (``xsub`` of a user's pickle) is no paper's protocol
    if store_classes is not None and store_classes != DATASET_CLASSES[prefix]:
        return False
    if source_format in ("pyskl", "arrays") and store_dataset not in (None, "ntu", "pku1"):
        return False
    return True

_AWESOME_REF = "Yingfei-Wu/Awesome-Self-supervised-Skeleton-based-Action-Recognition README"

# Context: contrastive methods skelssl does not implement, linear protocol (docs/protocols.md). The
# numbers of the methods it implements are in their files (``methods/<name>.py``, ``PUBLISHED``).
CONTEXT: list[dict[str, Any]] = [
    *published_rows("SkeletonCLR", "linear", {"ntu60-xsub": 68.3, "ntu60-xview": 76.4, "ntu120-xsub": 56.8, "ntu120-xset": 55.9}, "READ", _AWESOME_REF),
    *published_rows("AimCLR", "linear", {"ntu60-xsub": 74.3, "ntu60-xview": 79.7, "ntu120-xsub": 63.4, "ntu120-xset": 63.4, "pku2-xsub": 38.5},
                    "READ", _AWESOME_REF),
    *published_rows("ActCLR", "linear", {"ntu60-xsub": 80.9, "ntu60-xview": 86.7, "ntu120-xsub": 69.0, "ntu120-xset": 70.5}, "READ", _AWESOME_REF),
]


def all_published() -> list[dict[str, Any]]:
    """Every published number: the registered methods' (:func:`~skelssl.methods.published_numbers`), then the context."""
    return [*published_numbers(), *(dict(row) for row in CONTEXT)]


def method_key(name: str) -> str:
    """Normalised method name for matching: ``"Hi-TRS"``, ``"hitrs"`` and ``"hi_trs"`` all give ``"hitrs"``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _dataset_of(protocol: str) -> str:
    return protocol.split("-", 1)[0]


def published_for(task: str, protocol: str, *, label_fraction: float | None = None, pretrained_on: str | None = None) -> list[dict[str, Any]]:
    """Published entries for a task and protocol.

    Semi-supervised entries match only the same ``label_fraction``; transfer entries only the same
    pre-training dataset (``pretrained_on`` may be a dataset key ``ntu60`` or a protocol
    ``ntu60-xsub``). An unknown fraction or source matches nothing of that kind.
    """
    out = []
    for row in all_published():
        if row["task"] != task or row["protocol"] != protocol:
            continue
        if "label_fraction" in row and (label_fraction is None or abs(row["label_fraction"] - label_fraction) > 1e-9):
            continue
        if "pretrained_on" in row and (pretrained_on is None or _dataset_of(pretrained_on) != row["pretrained_on"]):
            continue
        out.append(row)
    return out
