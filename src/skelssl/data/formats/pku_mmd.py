"""PKU-MMD phase 1 (Kinect v2, 25 joints, NTU order = ``ntu25``): skeletons, labels, official splits.

Source layout (the official release's folder names)::

    PKU_Skeleton_Renew/NNNN-V.txt       one row per frame: 150 numbers = 2 bodies x 25 joints x xyz
    Train_Label_PKU_final/NNNN-V.txt    one row per action instance: label,start,end,confidence
    Split/cross-subject.txt             "Training videos:" line, ids; "Validataion videos:" (sic), ids
    Split/cross-view.txt                same shape (train views L and R, test view M)

``V`` is the view: L = 1, M = 2, R = 3. Labels are 1..51 (0..50 here). The second body is all zeros
when one person acts. Only skeleton files that exist become units; label files without a skeleton
file are ignored (a partial copy of the dataset is normal).

Modes:

- trimmed (default): one unit per labelled instance, as MAMP's ``data/pku_v1/pku_gendata.py`` and
  the ISC-derived code cut them (docs/protocols.md, docs/mamp.md): rows ``[start, end)`` of the skeleton
  file, no denoising, no centring. All-zero instances, which that code skips, are reported here.
  Skeleton files are parsed once per process for their instances (a small cache).
- ``untrimmed=True``: one unit per video, the whole sequence with per-frame labels (``-1``
  background), for detection-style use.

Frame convention, checked on the 1,076 label files: frames are 0-based (0089-L/M/R have an instance
starting at frame 0), and in 34 places an instance starts exactly at the previous one's end
(e.g. 0007-L: ``36,2820,2889`` then ``49,2889,3024``). A half-open ``[start, end)`` makes those
abut without sharing a frame, whereas an inclusive end would put frame 2889 in two actions; so
``end`` is read as exclusive, which is also what the reference code's ``data[start:end]`` does.
No two instances overlap in any of the 1,076 label files (a few list rows out of order, and one,
0043-L, has a reversed range, reported as an error); were they to overlap, the untrimmed per-frame
labels would take the later row's class.

Splits: a video is ``1`` (training) or ``0`` (validation/test) in ``extra["pku_xsub_train"]`` and
``extra["pku_xview_train"]``, ``-1`` if the split file does not list it. MAMP reads only the
training line; reading both lets a video missing from both be told apart from a test video.
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
from skelssl.data.formats._files import list_folder, read_bytes
from skelssl.data.formats._text import file_stamp, float_table, read_text
from skelssl.data.sample import RawSample

__all__ = ["READER", "NAME", "LAYOUT", "DATASET", "CLASS_NAMES", "VIEWS", "SPLIT_FILES", "PKUUnit", "discover", "read", "dataset_for"]

NAME = "pku_mmd"
LAYOUT = "ntu25"
DATASET = "pku1"

# From the official Split/Actions.xlsx; label = index + 1.
CLASS_NAMES = (
    "bow", "brushing hair", "brushing teeth", "check time (from watch)", "cheer up", "clapping",
    "cross hands in front (say stop)", "drink water", "drop", "eat meal/snack", "falling",
    "giving something to other person", "hand waving", "handshaking", "hopping (one foot jumping)",
    "hugging other person", "jump up", "kicking other person", "kicking something",
    "make a phone call/answer phone", "pat on back of other person", "pickup", "playing with phone/tablet",
    "point finger at the other person", "pointing to something with finger", "punching/slapping other person",
    "pushing other person", "put on a hat/cap", "put something inside pocket", "reading",
    "rub two hands together", "salute", "sitting down", "standing up", "take off a hat/cap",
    "take off glasses", "take off jacket", "take out something from pocket", "taking a selfie",
    "tear up paper", "throw", "touch back (backache)", "touch chest (stomachache/heart pain)",
    "touch head (headache)", "touch neck (neckache)", "typing on a keyboard",
    "use a fan (with hand or paper)/feeling warm", "wear jacket", "wear on glasses", "wipe face", "writing",
)
VIEWS = {"L": 1, "M": 2, "R": 3}
SPLIT_FILES = {"pku_xsub_train": "cross-subject.txt", "pku_xview_train": "cross-view.txt"}

SKELETON_DIR = "PKU_Skeleton_Renew"
LABEL_DIR = "Train_Label_PKU_final"
SPLIT_DIR = "Split"

_VIDEO_RE = re.compile(r"^(\d{4})-([LMR])\.txt$")
_ID_RE = re.compile(r"^\d{4}-[LMR]$")
_BODIES, _JOINTS = 2, 25
_COLS = _BODIES * _JOINTS * 3


@dataclass(frozen=True)
class PKUUnit:
    """One ``read`` unit: a labelled instance (trimmed) or a whole video (``instance == -1``).

    Args:
        path: the skeleton file ``PKU_Skeleton_Renew/NNNN-V.txt``.
        label_path: its label file (may not exist: ``read`` reports that).
        video: ``"NNNN-V"``.
        instance: 0-based row of the label file, or ``-1`` for the whole video.
        splits: ``(column, value)`` pairs from the split files (1 train, 0 test, -1 unlisted).
    """

    path: str
    label_path: str
    video: str
    instance: int
    splits: tuple[tuple[str, int], ...]

    @property
    def name(self) -> str:
        return self.video if self.instance < 0 else f"{self.video}_{self.instance:02d}"


def _parse_split(path: Path) -> dict[str, int]:
    """``{video: 1 train / 0 test}`` from an official split file.

    The file holds a line ``Training videos:`` then a line of comma-separated ids, then
    ``Validataion videos:`` (sic) and its ids; ids may also follow the header on its own line.
    Any malformed word fails the whole file (one clear message): the file defines the protocol of
    every video, and a garbled copy cannot be trusted for the others.
    """
    text = read_text(path, "split file")  # a regular file only: a FIFO is refused unopened
    out: dict[str, int] = {}
    section = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        head, colon, rest = line.partition(":")
        if colon and head.strip().lower().startswith(("train", "valid", "test")):
            section = 1 if head.strip().lower().startswith("train") else 0
            line = rest
        ids = [tok.strip() for tok in line.split(",") if tok.strip()]
        if ids and section is None:
            raise SkeletonFormatError(path, f"line {n}: video ids before any 'Training videos:' header")
        for vid in ids:
            if not _ID_RE.match(vid):
                raise SkeletonFormatError(path, f"line {n}: {vid[:40]!r} is not a video id NNNN-V")
            if out.get(vid, section) != section:
                raise SkeletonFormatError(path, f"line {n}: {vid} is listed as both training and test")
            out[vid] = section
    if 1 not in out.values() or 0 not in out.values():
        raise SkeletonFormatError(path, "expected a training and a validation list of video ids")
    return out


def _split_path(source: Path, name: str) -> Path:
    for p in (source / SPLIT_DIR / name, source / name):
        if p.is_file():
            return p
    raise SkeletonFormatError(source / SPLIT_DIR / name, "official split file not found")


def discover(source: Path, untrimmed: bool = False, **_other: Any) -> Discovery:
    """Find the PKU-MMD phase-1 units under ``source``.

    Args:
        source: the dataset folder holding ``PKU_Skeleton_Renew``, ``Train_Label_PKU_final`` and
            ``Split`` (the split files may also lie in ``source`` itself).
        untrimmed: one unit per video instead of one per labelled instance.
        **_other: options meant for other readers or for ``prepare`` itself (ignored).

    Returns:
        ``Discovery`` with :class:`PKUUnit` s, sorted by video then instance. A skeleton file whose
        label file is missing or lists no instance still gets one unit, whose ``read`` reports it.

    Raises:
        SkeletonFormatError: missing folders, no skeleton file, or a missing, unreadable or
            malformed split file.
    """
    source = Path(source)
    if not source.is_dir():
        raise SkeletonFormatError(source, "no such folder" if not source.exists() else "not a folder")
    skel_dir, label_dir = source / SKELETON_DIR, source / LABEL_DIR
    for d in (skel_dir, label_dir):
        if not d.is_dir():
            raise SkeletonFormatError(d, "folder not found (expected the official PKU-MMD layout)")
    skeletons = list_folder(skel_dir, _VIDEO_RE.match, "no skeleton files (NNNN-V.txt) found")
    splits = {col: _parse_split(_split_path(source, name)) for col, name in SPLIT_FILES.items()}
    units = []
    for path in skeletons:
        video = path.stem
        label_path = label_dir / path.name
        split_cols = tuple((col, members.get(video, -1)) for col, members in splits.items())
        if untrimmed:
            units.append(PKUUnit(str(path), str(label_path), video, -1, split_cols))
            continue
        try:  # count rows exactly as _label_rows splits them
            text = read_bytes(label_path, "label file").decode("utf-8", errors="replace")
            count = sum(1 for line in text.splitlines() if line.strip())
        except SkeletonFormatError:
            count = 0  # missing, unreadable, a FIFO: the single unit below makes read() report it
        for k in range(max(count, 1)):
            units.append(PKUUnit(str(path), str(label_path), video, k, split_cols))
    return Discovery(units=units)


def dataset_for(untrimmed: bool = False, **_other: Any) -> str:
    """The store's dataset key: ``pku1``, or ``pku1_untrimmed`` for whole videos (detection stores)."""
    return f"{DATASET}_untrimmed" if untrimmed else DATASET


def read(unit: PKUUnit, **_other: Any) -> list[RawSample]:
    """Read one instance (or, with ``unit.instance == -1``, one whole video).

    Args:
        unit: a :class:`PKUUnit` from :func:`discover`.
        **_other: options meant for other readers or for ``prepare`` itself (ignored: the mode is
            in the unit).

    Returns:
        One ``RawSample``. Trimmed: ``bodies`` ``(end - start, 2, 25, 3)`` float32 metres,
        ``label`` 0..50. Untrimmed: the whole ``(T, 2, 25, 3)`` with ``frame_labels`` ``(T,)``
        int32 (class 0..50 inside instances, -1 background) and ``label`` -1. Both carry ``view``
        (L 1, M 2, R 3) and ``extra`` split columns.

    Raises:
        SkeletonFormatError: no label file, a malformed label row, an instance outside the
            sequence or empty, an all-zero instance, or a malformed skeleton file.
    """
    m = _VIDEO_RE.match(Path(unit.path).name)
    if m is None:
        raise SkeletonFormatError(unit.path, "name does not match NNNN-V.txt")
    if not os.path.lexists(unit.label_path):
        raise SkeletonFormatError(unit.path, f"no label file ({unit.label_path})")
    rows = _label_rows(unit.label_path, *file_stamp(unit.label_path))  # per row: (label, start, end) or a problem
    if unit.instance >= len(rows):
        raise SkeletonFormatError(unit.label_path, f"no instance {unit.instance + 1} (the file lists {len(rows)})")
    wanted = range(len(rows)) if unit.instance < 0 else [unit.instance]
    for k in wanted:  # a bad row fails only its own instance in trimmed mode
        if isinstance(rows[k], str):
            raise SkeletonFormatError(unit.label_path, rows[k])
    skeleton = _skeleton(unit.path, *file_stamp(unit.path))  # (T, 2, 25, 3), read-only
    num_frames = skeleton.shape[0]
    for k in wanted:
        _, start, end = rows[k]
        if end > num_frames:
            raise SkeletonFormatError(
                unit.label_path,
                f"line {k + 1}: frames [{start}, {end}) go beyond the sequence "
                f"({num_frames} frames in {Path(unit.path).name})",
            )
    common = dict(view=VIEWS[m.group(2)], source=unit.path, extra=dict(unit.splits))
    if unit.instance < 0:
        frame_labels = np.full(num_frames, -1, dtype=np.int32)  # (T,)
        for label, start, end in rows:  # later rows win where instances overlap
            frame_labels[start:end] = label
        if not skeleton.any():
            raise SkeletonFormatError(unit.path, "all joints are zero")
        return [RawSample(name=unit.name, bodies=skeleton.copy(), label=-1, frame_labels=frame_labels, **common)]
    label, start, end = rows[unit.instance]
    bodies = skeleton[start:end].copy()  # (T, 2, 25, 3); [start, end), see the module docstring
    if not bodies.any():
        raise SkeletonFormatError(
            unit.path, f"instance {unit.instance + 1} (class {label + 1}, frames [{start}, {end})): all joints are zero"
        )
    return [RawSample(name=unit.name, bodies=bodies, label=label, **common)]


@functools.lru_cache(maxsize=4)
def _label_rows(path: str, mtime_ns: int, size: int) -> tuple[tuple[int, int, int] | str, ...]:
    """Per non-blank line of a label file: ``(label 0..50, start, end)``, or the line's problem.

    Problems are kept per row (not raised) so that in trimmed mode one bad row fails only its own
    instance. Line numbers count non-blank lines, which is what instance indices refer to.
    """
    text = read_text(path, "label file")
    rows: list[tuple[int, int, int] | str] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        n = len(rows) + 1
        fields = [f.strip() for f in raw.split(",")]
        try:
            if len(fields) != 4:
                raise ValueError
            label, start, end, _confidence = (int(f) for f in fields)
        except ValueError:
            rows.append(f"line {n}: expected 'label,start,end,confidence' integers, got {raw.strip()[:60]!r}")
            continue
        if not 1 <= label <= len(CLASS_NAMES):
            rows.append(f"line {n}: label {label} outside 1..{len(CLASS_NAMES)}")
        elif start < 0 or end <= start:
            rows.append(f"line {n}: empty or reversed frame range [{start}, {end})")
        else:
            rows.append((label - 1, start, end))
    if not rows:
        raise SkeletonFormatError(path, "label file lists no instances")
    return tuple(rows)


@functools.lru_cache(maxsize=2)
def _skeleton(path: str, mtime_ns: int, size: int) -> np.ndarray:
    """Parse a skeleton file once per process -> ``(T, 2, 25, 3)`` float32, read-only (shared)."""
    rows = float_table(path, _COLS, np.float32, row_hint="a row is 2 bodies x 25 joints x xyz")  # (T, 150)
    skeleton = rows.reshape(-1, _BODIES, _JOINTS, 3)  # (T, 2, 25, 3)
    skeleton.flags.writeable = False
    return skeleton


class PKUMMDReader(Reader):
    """PKU-MMD phase 1: labelled instances, or whole videos (``untrimmed``) for detection."""

    NAME, LAYOUT, DATASET, CLASS_NAMES = NAME, LAYOUT, DATASET, CLASS_NAMES
    discover = staticmethod(discover)
    read = staticmethod(read)
    dataset_for = staticmethod(dataset_for)


READER = PKUMMDReader()
