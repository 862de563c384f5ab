"""Northwestern-UCLA Multiview Action 3D (N-UCLA), the CTR-GCN ``all_sqe`` JSON release.

One file per clip, named ``aAA_sSS_eEE_vVV.json`` (action, subject, repetition, view), holding a
JSON object ``{"file_name": str, "label": int 1..10, "skeletons": [T x 20 x 3]}``: one person,
Kinect v1 MS-SDK joint order (the ``kinect20`` layout), camera-space metres. CTR-GCN's
``feeders/feeder_ucla.py`` reads exactly these files; the standard protocol is cross-view (train on
views 1 and 2, test on view 3).

The ``label`` field is the class index of the file's action id (a01..a06 -> 1..6, a08 -> 7,
a09 -> 8, a11 -> 9, a12 -> 10; actions 7 and 10 are not in the 10-class set). The reader checks
the two agree, so a renamed or mislabelled file is reported rather than silently trained on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.formats import Discovery, Reader
from skelssl.data.formats._files import dataset_folder, list_folder, read_bytes
from skelssl.data.sample import RawSample

__all__ = ["READER", "NAME", "LAYOUT", "DATASET", "CLASS_NAMES", "ACTION_IDS", "discover", "read"]

NAME = "nucla"
LAYOUT = "kinect20"
DATASET = "nucla"

# Index i is the 0-based label of file action id ACTION_IDS[i] (N-UCLA paper, CTR-GCN).
CLASS_NAMES = (
    "pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
    "stand up", "donning", "doffing", "throw", "carry",
)
ACTION_IDS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)

_NAME_RE = re.compile(r"^a(\d{2})_s(\d{2})_e(\d{2})_v(\d{2})\.json$")
_NUM_JOINTS = 20


def _folder(source: Path) -> Path:
    """The folder holding the files: ``source`` itself or its ``all_sqe`` subfolder."""
    return dataset_folder(source, "all_sqe", "the N-UCLA all_sqe folder")


def discover(source: Path, **_other: Any) -> Discovery:
    """Find the N-UCLA clips under ``source``.

    Args:
        source: the ``all_sqe`` folder, or a folder containing it.
        **_other: options meant for other readers or for ``prepare`` itself (ignored).

    Returns:
        ``Discovery`` with one unit (the file path) per ``aAA_sSS_eEE_vVV.json`` file, sorted by
        name; other ``.json`` files are listed in ``excluded`` with the reason.

    Raises:
        SkeletonFormatError: ``source`` is missing, unreadable, or holds no N-UCLA file.
    """
    folder = _folder(source)
    paths = list_folder(folder, lambda name: Path(name).suffix == ".json")
    units, excluded = [], []
    for p in paths:
        if _NAME_RE.match(p.name):
            units.append(p)
        else:
            excluded.append((str(p), "name does not match aAA_sSS_eEE_vVV.json"))
    if not units:
        raise SkeletonFormatError(folder, "no N-UCLA files (aAA_sSS_eEE_vVV.json) found")
    return Discovery(units=units, excluded=excluded)


def read(unit: Path | str, **_other: Any) -> list[RawSample]:
    """Read one N-UCLA clip.

    Args:
        unit: path of an ``aAA_sSS_eEE_vVV.json`` file.
        **_other: options meant for other readers or for ``prepare`` itself (ignored).

    Returns:
        One ``RawSample``: ``bodies`` ``(T, 1, 20, 3)`` float32 metres, ``label`` = json
        ``label`` - 1 (0..9), ``subject``/``repetition``/``view`` from the file name.

    Raises:
        SkeletonFormatError: bad name, not a readable regular file, invalid JSON, missing or
            inconsistent fields, a joint array that is not ``T x 20 x 3`` finite numbers, or all
            joints zero.
    """
    path = Path(unit)
    m = _NAME_RE.match(path.name)
    if m is None:
        raise SkeletonFormatError(path, "name does not match aAA_sSS_eEE_vVV.json")
    action, subject, rep, view = (int(g) for g in m.groups())
    data = read_bytes(path)  # a regular file, bounded: a FIFO or a symlink to /dev/zero is refused
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, RecursionError, ValueError) as e:  # ValueError: JSONDecodeError, an int of >4300 digits
        raise SkeletonFormatError(path, f"not valid JSON: {str(e)[:200]}") from None
    if not isinstance(doc, dict):
        raise SkeletonFormatError(path, f"expected a JSON object, got {type(doc).__name__}")
    for key in ("label", "skeletons"):
        if key not in doc:
            raise SkeletonFormatError(path, f"missing key {key!r}")
    label = doc["label"]
    if isinstance(label, bool) or not isinstance(label, int) or not 1 <= label <= len(CLASS_NAMES):
        raise SkeletonFormatError(path, f"'label' must be an integer 1..{len(CLASS_NAMES)}, got {label!r}")
    if action not in ACTION_IDS:
        raise SkeletonFormatError(path, f"action a{action:02d} is not one of the 10 N-UCLA classes")
    if ACTION_IDS[label - 1] != action:
        raise SkeletonFormatError(
            path, f"'label' {label} is action a{ACTION_IDS[label - 1]:02d}, but the file name says a{action:02d}"
        )
    bodies = _joints(path, doc["skeletons"])  # (T, 1, 20, 3)
    return [
        RawSample(
            name=path.stem, bodies=bodies, label=label - 1, subject=subject, view=view,
            repetition=rep, source=str(path),
        )
    ]


def _joints(path: Path, skeletons: Any) -> np.ndarray:
    """Validate the ``skeletons`` list -> ``(T, 1, 20, 3)`` float32."""
    if not isinstance(skeletons, list) or not skeletons:
        raise SkeletonFormatError(path, "'skeletons' must be a non-empty list of frames")
    try:
        arr = np.asarray(skeletons)
    except (ValueError, TypeError) as e:  # ragged nesting
        raise SkeletonFormatError(path, f"'skeletons' is not a T x 20 x 3 array: {e}") from None
    if arr.dtype.kind not in "iuf":  # strings, booleans, nulls, mixed objects
        raise SkeletonFormatError(path, f"'skeletons' must hold numbers, got dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[1:] != (_NUM_JOINTS, 3):
        raise SkeletonFormatError(path, f"'skeletons' has shape {arr.shape}, expected (T, {_NUM_JOINTS}, 3)")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf, reported below
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        t = int(np.flatnonzero(~np.isfinite(arr).all(axis=(1, 2)))[0])
        raise SkeletonFormatError(path, f"frame {t}: non-finite coordinate (NaN or inf)")
    if not arr.any():
        raise SkeletonFormatError(path, "all joints are zero")
    return arr[:, None]  # (T, 1, V, 3)


class NUCLAReader(Reader):
    """N-UCLA ``all_sqe`` JSON files: Kinect v1, one person."""

    NAME, LAYOUT, DATASET, CLASS_NAMES = NAME, LAYOUT, DATASET, CLASS_NAMES
    NUM_PERSONS = 1
    discover = staticmethod(discover)
    read = staticmethod(read)


READER = NUCLAReader()
