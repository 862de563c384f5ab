"""UTKinect-Action3D: continuous Kinect v1 recordings cut into labelled action segments.

The release has one continuous recording per subject and take, ``joints_sSS_eEE.txt`` (one row per
frame: the depth-frame id, then 20 joints x (x, y, z) in metres, Kinect v1 SDK order = ``kinect20``),
and one label file, ``actionLabel.txt``: a header line ``sSS_eEE`` per recording followed by ten
lines ``action: start end``. ``start``/``end`` are frame ids from column 1 (not row numbers),
inclusive at both ends. Vemulapalli et al.'s corrected copy, ``actionLabel_modified.txt``,
is selected with ``labels="modified"``.

Each labelled segment is its own unit (:class:`Segment`), so one bad segment (the release has one,
``s10_e02 carry: NaN NaN``) is reported on its own and the recording's other nine are kept. A small
per-process cache parses a recording once for its ten segments.

Frame ids repeat in the recordings (542 adjacent pairs share an id and hold different skeletons);
a segment keeps every row whose id lies in ``[start, end]``, repeats included, in file order. Some
original segment ends are ids that are not in the file (e.g. s01_e02 walk ends at 192, the file
jumps past it); the cut still takes the rows inside the range.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.formats import Discovery, Reader
from skelssl.data.formats._files import dataset_folder, list_folder
from skelssl.data.formats._text import file_stamp, float_table, read_text
from skelssl.data.sample import RawSample

__all__ = ["READER", "NAME", "LAYOUT", "DATASET", "CLASS_NAMES", "LABEL_FILES", "Segment", "discover", "read"]

NAME = "utkinect"
LAYOUT = "kinect20"
DATASET = "utkinect"

# Class names exactly as the label file spells them; label = index.
CLASS_NAMES = ("walk", "sitDown", "standUp", "pickUp", "carry", "throw", "push", "pull", "waveHands", "clapHands")
LABEL_FILES = {"original": "actionLabel.txt", "modified": "actionLabel_modified.txt"}

_JOINTS_RE = re.compile(r"^joints_(s\d{2}_e\d{2})\.txt$")
_HEADER_RE = re.compile(r"^s(\d{2})_e(\d{2})$")
_COLS = 1 + 20 * 3


@dataclass(frozen=True)
class Segment:
    """One labelled action segment of a continuous recording (a ``read`` unit).

    Args:
        path: the recording's ``joints_sSS_eEE.txt``.
        label_path: the label file the segment comes from.
        recording: ``"sSS_eEE"``.
        action: the action name as written in the label file.
        frames: the text after the colon (``"252 390"``), validated by :func:`read`.
        line: 1-based line of the segment in the label file (for messages).
    """

    path: str
    label_path: str
    recording: str
    action: str
    frames: str
    line: int

    @property
    def name(self) -> str:
        return f"{self.recording}_{self.action}"


def _folder(source: Path) -> Path:
    """The folder holding the files: ``source`` itself or its ``joints`` subfolder."""
    return dataset_folder(source, "joints", "the UTKinect joints folder")


def _label_entries(path: Path) -> tuple[list[tuple[str, str, str, int]], list[tuple[str, str]]]:
    """``(recording, action, frames_text, line)`` for every segment line of a label file, and
    ``(path, reason)`` for each line that cannot be used (skipped alone: one garbled line does not
    void the other segments).

    A line that is neither a header ``sSS_eEE`` nor ``action: start end`` is taken for a broken
    header when it is a single word or starts like one (``s`` and a digit): the segment lines after
    it, up to the next good header, are then skipped too, since their recording is unknown.

    Raises:
        SkeletonFormatError: the label file cannot be read, or lists no usable segment.
    """
    text = read_text(path, "label file")
    entries: list[tuple[str, str, str, int]] = []
    problems: list[tuple[str, str]] = []
    recording: str | None = None
    broken_header: int | None = None  # line of the unreadable header the next segments belong to
    seen: dict[tuple[str, str], int] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if _HEADER_RE.match(line):
            recording, broken_header = line, None
            continue
        action, colon, frames = line.partition(":")
        if not colon:
            problem = f"line {n}: expected 'sSS_eEE' or 'action: start end', got {line[:60]!r}"
            if len(line.split()) == 1 or re.match(r"^s\d", line):
                recording, broken_header = None, n
                problem += " (taken for a broken header: its segments are skipped)"
            problems.append((str(path), problem))
            continue
        if recording is None:
            why = (f"follows the unreadable header on line {broken_header}" if broken_header
                   else "comes before any 'sSS_eEE' header")
            problems.append((str(path), f"line {n}: segment {line[:60]!r} {why}"))
            continue
        key = (recording, action.strip())
        if key in seen:
            problems.append((str(path), f"line {n}: second {action.strip()!r} segment for {recording} "
                                        f"(the first, line {seen[key]}, is kept)"))
            continue
        seen[key] = n
        entries.append((recording, action.strip(), frames.strip(), n))
    if not entries:
        raise SkeletonFormatError(path, "label file lists no segments" + (f" ({problems[0][1]})" if problems else ""))
    return entries, problems


def discover(source: Path, labels: str = "original", **_other: Any) -> Discovery:
    """Find the labelled segments of the UTKinect recordings under ``source``.

    Args:
        source: the ``joints`` folder, or a folder containing it.
        labels: ``"original"`` (``actionLabel.txt``, the official labels) or ``"modified"``
            (``actionLabel_modified.txt``, Vemulapalli et al.'s corrected boundaries).
        **_other: options meant for other readers or for ``prepare`` itself (ignored).

    Returns:
        ``Discovery`` with one :class:`Segment` per label line whose recording file exists, in
        label-file order; recordings without labels and labels without a recording file are listed
        in ``excluded``.

    Raises:
        SkeletonFormatError: ``source`` is missing, holds no recording, the label file is
            missing, unreadable or lists no usable segment. A label line that cannot be used (garbled,
            a second segment of one action) is listed in ``skipped`` and the other lines are kept.
        ValueError: ``labels`` is not ``"original"`` or ``"modified"``.
    """
    if labels not in LABEL_FILES:
        raise ValueError(f"labels must be one of {sorted(LABEL_FILES)}, got {labels!r}")
    folder = _folder(source)
    found = list_folder(folder, _JOINTS_RE.match, "no UTKinect recordings (joints_sSS_eEE.txt) found")
    recordings = {_JOINTS_RE.match(p.name).group(1): p for p in found}
    label_path = folder / LABEL_FILES[labels]
    if not os.path.lexists(label_path):
        raise SkeletonFormatError(label_path, "label file not found")
    entries, problems = _label_entries(label_path)
    units, excluded, labelled = [], [], set()
    for recording, action, frames, line in entries:
        labelled.add(recording)
        path = recordings.get(recording)
        if path is None:
            excluded.append((f"{folder / f'joints_{recording}.txt'}", f"{recording} {action}: recording file missing"))
            continue
        units.append(Segment(str(path), str(label_path), recording, action, frames, line))
    for recording, path in recordings.items():
        if recording not in labelled:
            excluded.append((str(path), f"no segments for {recording} in {label_path.name}"))
    return Discovery(units=units, excluded=excluded, skipped=problems)


def read(unit: Segment, **_other: Any) -> list[RawSample]:
    """Cut one labelled segment out of its recording.

    Args:
        unit: a :class:`Segment` from :func:`discover`.
        **_other: options meant for other readers or for ``prepare`` itself (ignored; the label
            file choice is already in the unit).

    Returns:
        One ``RawSample`` named ``sSS_eEE_action``: ``bodies`` ``(T, 1, 20, 3)`` float32 metres
        (every row whose frame id lies in ``[start, end]``), ``label`` = class index (0..9),
        ``subject`` and ``repetition`` (take) from the recording name.

    Raises:
        SkeletonFormatError: an unknown action, a frame range that is not two integer ids with
            start <= end (the release's ``NaN NaN``), no frame inside the range, all joints zero,
            or a malformed recording file.
    """
    label_name = Path(unit.label_path).name
    where = f"segment {unit.recording} {unit.action} (line {unit.line} of {label_name})"
    if unit.action not in CLASS_NAMES:
        raise SkeletonFormatError(unit.path, f"{where}: unknown action; known: {', '.join(CLASS_NAMES)}")
    start, end = _frame_range(unit, where)
    ids, joints = _recording(unit.path, *file_stamp(unit.path))  # (R,), (R, 20, 3)
    keep = (ids >= start) & (ids <= end)
    if not keep.any():
        raise SkeletonFormatError(
            unit.path, f"{where}: no frame id in [{start}, {end}] (recording ids {int(ids[0])}..{int(ids[-1])})"
        )
    bodies = joints[keep][:, None]  # (T, 1, 20, 3), a copy (boolean indexing)
    if not bodies.any():
        raise SkeletonFormatError(unit.path, f"{where}: all joints are zero")
    m = _HEADER_RE.match(unit.recording)
    subject, take = (int(g) for g in m.groups()) if m else (-1, -1)
    return [
        RawSample(
            name=unit.name, bodies=bodies, label=CLASS_NAMES.index(unit.action), subject=subject,
            repetition=take, source=unit.path,
        )
    ]


def _frame_range(unit: Segment, where: str) -> tuple[int, int]:
    toks = unit.frames.split()
    try:
        start, end = (int(t) for t in toks)
    except ValueError:
        problem = f"{where}: frame range {unit.frames!r} is not two integer frame ids"
        raise SkeletonFormatError(unit.path, problem) from None
    if start > end:
        raise SkeletonFormatError(unit.path, f"{where}: frame range {start} {end} ends before it starts")
    return start, end


@functools.lru_cache(maxsize=2)
def _recording(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse a recording once per process -> frame ids ``(R,)`` int64, joints ``(R, 20, 3)`` float32.

    Both arrays are made read-only: they are shared by every segment cut from the cache.
    """
    rows = float_table(Path(path), _COLS, np.float64)  # (R, 61); float64 keeps frame ids exact
    col = rows[:, 0]
    bad = (col != np.round(col)) | (np.abs(col) > 2**53)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise SkeletonFormatError(path, f"row {r + 1}: frame id {col[r]!r} is not an integer")
    ids = col.astype(np.int64)
    with np.errstate(over="ignore"):
        joints = rows[:, 1:].astype(np.float32).reshape(-1, 20, 3)  # (R, 20, 3)
    if not np.isfinite(joints).all():
        r = int(np.flatnonzero(~np.isfinite(joints).all(axis=(1, 2)))[0])
        raise SkeletonFormatError(path, f"row {r + 1}: coordinate too large for float32")
    ids.flags.writeable = False
    joints.flags.writeable = False
    return ids, joints


class UTKinectReader(Reader):
    """UTKinect-Action3D joint files and label lists: Kinect v1, one person."""

    NAME, LAYOUT, DATASET, CLASS_NAMES = NAME, LAYOUT, DATASET, CLASS_NAMES
    NUM_PERSONS = 1
    discover = staticmethod(discover)
    read = staticmethod(read)


READER = UTKinectReader()
