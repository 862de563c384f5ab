"""MSR Action3D skeletons (``MSRAction3DSkeletonReal3D``, "real world" coordinates).

One text file per sequence, ``aXX_sYY_eZZ_skeleton3D.txt`` (action 1..20, subject 1..10, repetition),
20 rows per frame, each row ``x y z c`` (``c`` a tracking confidence, dropped here). Recorded at
15 fps by a depth camera with the Shotton et al. tracker, one person.

Joint order. The file's 20 rows are *not* in Kinect SDK order. The dataset's own ``drawskt.m``
draws bones between (1-based) rows 20-3, 1-3, 2-3, 1-8, 8-10, 10-12, 2-9, 9-11, 11-13, 3-4, 4-7,
7-5, 7-6, 5-14, 6-15, 14-16, 15-17, 16-18, 17-19, which gives this order::

    1 L-shoulder  2 R-shoulder  3 neck  4 spine  5 L-hip  6 R-hip  7 hip-centre  8 L-elbow
    9 R-elbow  10 L-wrist  11 R-wrist  12 L-hand  13 R-hand  14 L-knee  15 R-knee  16 L-ankle
    17 R-ankle  18 L-foot  19 R-foot  20 head

:data:`KINECT20_FROM_FILE` reorders the rows into the ``kinect20`` layout (the order of N-UCLA and
UTKinect).

Axes. ``drawskt.m`` plots column 1 as x, column 3 as y and column 2 as z, and MATLAB's ``plot3``
draws its third argument vertically, so column 2 is already the vertical axis. The columns are
kept as they are (x, y up, z depth from the camera, metres), like Kinect camera space.

What was checked on the real files (the 566 non-zero sequences, 23,440 frames, after reordering):

- vertical: head above hip centre in 95% of frames (median head - hip-centre y = +0.62 m); an
  ankle or foot is the lowest joint in 95% of frames; depth z is positive (5-95%: 1.96-2.82 m);
- bone lengths plausible and left/right symmetric (medians: upper arm 0.275 m, forearm 0.29 m,
  thigh 0.54 m, shin 0.43 m, equal on both sides to the millimetre). MSR's tracker places hips and
  shoulders wider than the Kinect SDK does (hip centre to hip 0.22 m, vs 0.09 m in N-UCLA);
- left/right: the subjects were asked to use their right arm or leg for one-limb actions (Li et al.
  2010). In every one-arm class (a01-a09, a17) the hand that moves is file row 13 (summed
  per-axis std 0.65-0.81 m vs 0.07-0.23 m for row 12; in a01 "high arm wave" row 13 rises on
  average 0.19 m above the head while row 12 stays 0.76 m below it), and in a14/a15 (kicks) the
  moving foot is row 19 (0.59/0.52 m vs 0.13/0.06 m). So rows 13/19 are the subject's right, as
  inferred. The right side also has the larger x (right shoulder x > left shoulder x in 94% of
  frames, as in N-UCLA, 94%, and UTKinect, over 97%), so no x flip is needed for the three
  Kinect v1 datasets to agree.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.formats import Discovery, Reader
from skelssl.data.formats._files import dataset_folder, list_folder
from skelssl.data.formats._text import float_table, read_text
from skelssl.data.sample import RawSample

__all__ = ["READER", "NAME", "LAYOUT", "DATASET", "CLASS_NAMES", "KINECT20_FROM_FILE", "PROTOCOL_LIST", "discover", "read"]

NAME = "msr"
LAYOUT = "kinect20"
DATASET = "msr"

# Names as stored in the release's action_names.mat; label = action id - 1.
CLASS_NAMES = (
    "high arm wave", "horizontal arm wave", "hammer", "hand catch", "forward punch", "high throw",
    "draw X", "draw tick", "draw circle", "hand clap", "two hand wave", "side boxing", "bend",
    "forward kick", "side kick", "jogging", "tennis swing", "tennis serve", "golf swing", "pickup and throw",
)

# kinect20 joint k = file row KINECT20_FROM_FILE[k] (0-based), per the drawskt.m topology above:
# hip_center<-7, spine<-4, shoulder_center<-3, head<-20, L arm <- 1, 8, 10, 12, R arm <- 2, 9, 11, 13,
# L leg <- 5, 14, 16, 18, R leg <- 6, 15, 17, 19 (1-based file rows).
KINECT20_FROM_FILE = (6, 3, 2, 19, 0, 7, 9, 11, 1, 8, 10, 12, 4, 13, 15, 17, 5, 14, 16, 18)

# The 557 sequences of Wang et al. CVPR 2012 / Vemulapalli et al. CVPR 2014 (10 noisy ones dropped).
PROTOCOL_LIST = "files_used_in_cvpr12_paper.txt"

_NAME_RE = re.compile(r"^a(\d{2})_s(\d{2})_e(\d{2})_skeleton3D\.txt$")
_STEM_RE = re.compile(r"^a\d{2}_s\d{2}_e\d{2}$")
_SUFFIX = "_skeleton3D.txt"
_JOINTS = 20
_COLS = 4


def _folder(source: Path) -> Path:
    """The folder holding the files: ``source`` itself or its ``MSRAction3DSkeletonReal3D`` subfolder."""
    return dataset_folder(source, "MSRAction3DSkeletonReal3D", "MSRAction3DSkeletonReal3D")


def _protocol_stems(path: Path) -> set[str]:
    """The sequence names (``aXX_sYY_eZZ``) listed in the protocol file.

    A word that is no sequence name fails the whole list (one clear message): the list defines
    which sequences the protocol has, and a garbled copy of it cannot be trusted for the others.
    """
    tokens = read_text(path, "protocol list").split()  # a regular file only: a FIFO is refused unopened
    stems = set()
    for tok in tokens:
        stem = tok[: -len(_SUFFIX)] if tok.endswith(_SUFFIX) else tok
        if not _STEM_RE.match(stem):
            raise SkeletonFormatError(path, f"{tok[:60]!r} is not a sequence name aXX_sYY_eZZ")
        stems.add(stem)
    if not stems:
        raise SkeletonFormatError(path, "the protocol list is empty")
    return stems


def discover(source: Path, protocol_list: bool = True, **_other: Any) -> Discovery:
    """Find the MSR Action3D skeleton files under ``source``.

    Args:
        source: the ``MSRAction3DSkeletonReal3D`` folder, or a folder containing it.
        protocol_list: keep only the 557 sequences of ``files_used_in_cvpr12_paper.txt`` (the
            common protocol); the other files go to ``excluded``. ``False`` takes all files (567).
        **_other: options meant for other readers or for ``prepare`` itself (ignored).

    Returns:
        ``Discovery`` with one unit (the file path) per sequence, sorted by name.

    Raises:
        SkeletonFormatError: ``source`` is missing or holds no skeleton file, or ``protocol_list``
            is set and the list file is missing, unreadable or malformed.
    """
    folder = _folder(source)
    paths = list_folder(folder, _NAME_RE.match, "no MSR Action3D files (aXX_sYY_eZZ_skeleton3D.txt) found")
    if not protocol_list:
        return Discovery(units=paths)
    list_path = folder / PROTOCOL_LIST
    if not os.path.lexists(list_path):
        raise SkeletonFormatError(list_path, "protocol list not found (pass protocol_list=False to take every file)")
    keep = _protocol_stems(list_path)
    units, excluded = [], []
    for p in paths:
        if p.name[: -len(_SUFFIX)] in keep:
            units.append(p)
        else:
            excluded.append((str(p), f"not in {PROTOCOL_LIST} (the 557-sequence protocol)"))
    return Discovery(units=units, excluded=excluded)


def read(unit: Path | str, **_other: Any) -> list[RawSample]:
    """Read one MSR Action3D sequence.

    Args:
        unit: path of an ``aXX_sYY_eZZ_skeleton3D.txt`` file.
        **_other: options meant for other readers or for ``prepare`` itself (ignored).

    Returns:
        One ``RawSample``: ``bodies`` ``(T, 1, 20, 3)`` float32 metres in ``kinect20`` joint order,
        y up; ``label`` = action - 1 (0..19); ``subject``, ``repetition`` from the name.

    Raises:
        SkeletonFormatError: bad name, unreadable or garbled text, rows that are not 4 numbers,
            a row count that is not a multiple of 20, non-finite values, or all joints zero
            (``a13_s09_e02`` in the release).
    """
    path = Path(unit)
    m = _NAME_RE.match(path.name)
    if m is None:
        raise SkeletonFormatError(path, "name does not match aXX_sYY_eZZ_skeleton3D.txt")
    action, subject, rep = (int(g) for g in m.groups())
    if not 1 <= action <= len(CLASS_NAMES):
        raise SkeletonFormatError(path, f"action a{action:02d} outside a01..a{len(CLASS_NAMES):02d}")
    rows = float_table(path, _COLS, np.float32)  # (R, 4)
    if rows.shape[0] % _JOINTS:
        raise SkeletonFormatError(path, f"{rows.shape[0]} rows is not a multiple of {_JOINTS} (rows per frame)")
    joints = rows[:, :3].reshape(-1, _JOINTS, 3)  # (T, 20, 3) file order
    if not joints.any():
        raise SkeletonFormatError(path, "all joints are zero")
    bodies = np.ascontiguousarray(joints[:, KINECT20_FROM_FILE])[:, None]  # (T, 1, 20, 3) kinect20 order
    return [
        RawSample(
            name=path.name[: -len(_SUFFIX)], bodies=bodies, label=action - 1, subject=subject,
            repetition=rep, source=str(path),
        )
    ]


class MSRReader(Reader):
    """MSR Action3D ``_skeleton3D.txt`` files: Kinect v1, one person."""

    NAME, LAYOUT, DATASET, CLASS_NAMES = NAME, LAYOUT, DATASET, CLASS_NAMES
    NUM_PERSONS = 1
    discover = staticmethod(discover)
    read = staticmethod(read)


READER = MSRReader()
