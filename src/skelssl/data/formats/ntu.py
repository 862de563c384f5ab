"""NTU RGB+D 60/120 raw ``.skeleton`` files (Kinect v2, 25 joints, up to 4 tracked bodies).

Format (one text file per sample, CRLF in the official zips, LF in many re-uploads)::

    T                                   frame count
    B                                   body count of frame 1 (0 allowed)
    bodyID clipedEdges hLconf hLstate hRconf hRstate isRestricted leanX leanY trackingState
    25                                  joint count
    x y z depthX depthY colorX colorY orientW orientX orientY orientZ trackingState   (x 25)
    ...                                 (B bodies, then the next frame)

The file name ``SsssCcccPpppRrrrAaaa`` gives setup, camera, performer, replication and action.

Body slot ``m`` of frame ``t`` is the ``m``-th body listed in that frame, exactly as the official
``ntu_gendata.py`` ``read_xyz`` fills ``data[m, n]`` (and as Hi-TRS's ``prepare_NTU_60.py`` does);
bodies past ``max_bodies`` are checked but not kept. Slots are *not* matched across frames by body
id; ``body_ids`` is returned so that a pipeline can.

Speed: a straightforward reader (``readline``/``split``/``float`` per value, as the official code
does) spends nearly all its time in Python per joint line. Here Python only walks the frame and body
header lines; the joint lines of a file are joined into one buffer and their numbers are converted by
vectorised digit arithmetic (:func:`parse_number_block`), which gives bit-for-bit the same doubles as
``float()``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from importlib import resources
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.formats import Discovery
from skelssl.data.sample import RawSample

__all__ = [
    "NAME", "LAYOUT", "DATASET", "JOINT_FIELDS", "MISSING_REASON", "discover", "read",
    "parse_sample_name", "missing_skeleton_samples", "write_skeleton_file",
]

NAME = "ntu"
LAYOUT = "ntu25"
DATASET = "ntu"

NUM_JOINTS = 25
# The 12 per-joint columns, in file order (Kinect v2 SDK ``Joint``/``JointOrientation``/``DepthSpacePoint``/
# ``ColorSpacePoint`` as the NTU toolbox writes them).
JOINT_FIELDS = (
    "x", "y", "z", "depthX", "depthY", "colorX", "colorY",
    "orientW", "orientX", "orientY", "orientZ", "trackingState",
)
BODY_FIELDS = 10  # bodyID clipedEdges hLconf hLstate hRconf hRstate isRestricted leanX leanY trackingState
MISSING_REASON = "official list of samples with missing skeletons"

_NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
# NTU-120's list (535 names) contains NTU-60's (302); the 233 extra names are all setups 18..32, so
# using it for NTU-60 too excludes exactly the official 302 there.
_MISSING_FILE = "NTU_RGBD120_samples_with_missing_skeletons.txt"
_MISSING_FILE_60 = "NTU_RGBD_samples_with_missing_skeletons.txt"


# -- names and the exclusion list ------------------------------------------------------------------
def parse_sample_name(name: str) -> dict[str, int] | None:
    """``SsssCcccPpppRrrrAaaa`` -> ``{setup, view, subject, repetition, label}`` (label = A - 1).

    Args:
        name: a sample name or file stem (``S001C002P003R001A017``).

    Returns:
        The integer metadata, or ``None`` when the name is not an NTU sample name.
    """
    m = _NAME_RE.fullmatch(name)
    if m is None:
        return None
    s, c, p, r, a = (int(g) for g in m.groups())
    return {"setup": s, "view": c, "subject": p, "repetition": r, "label": a - 1}


def missing_skeleton_samples(version: int = 120) -> frozenset[str]:
    """The official names of samples with missing skeletons (package data).

    Args:
        version: 120 for the NTU-120 list (535 names, a superset), 60 for the NTU-60 list (302).

    Returns:
        The sample names (``S001C002P005R002A008``, ...).
    """
    if version not in (60, 120):
        raise ValueError(f"version must be 60 or 120, got {version!r}")
    fname = _MISSING_FILE if version == 120 else _MISSING_FILE_60
    text = resources.files("skelssl").joinpath("resources", fname).read_text(encoding="ascii")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


# -- discover --------------------------------------------------------------------------------------
def discover(source: str | Path, exclude_missing: bool = True, **opts: Any) -> Discovery:
    """All ``*.skeleton`` files under ``source`` (recursively, sorted by path).

    Args:
        source: a folder (for example the unzipped ``nturgb+d_skeletons``) or one ``.skeleton`` file.
        exclude_missing: leave out the official samples with missing skeletons, as every published
            NTU protocol does (NTU-60 then has 56,578 samples, NTU-120 113,945).
        **opts: other prepare options; ignored here.

    Returns:
        ``Discovery`` with the file paths, and ``(path, reason)`` for each file left out on purpose
        (the official exclusion list, hidden files such as macOS ``._*`` resource forks, a second
        file with an already-seen sample name).
    """
    source = Path(source)
    if source.is_file():
        if source.suffix != ".skeleton":
            raise SkeletonFormatError(source, "not a .skeleton file")
        files = [source]
    elif source.is_dir():
        files = sorted(source.rglob("*.skeleton"))
    else:
        raise SkeletonFormatError(source, "no such file or folder")
    if not files:
        raise SkeletonFormatError(source, "no .skeleton files in this folder or below it")
    missing = missing_skeleton_samples(120) if exclude_missing else frozenset()
    units: list[Path] = []
    excluded: list[tuple[str, str]] = []
    seen: dict[str, Path] = {}
    for f in files:
        if f.name.startswith("."):
            excluded.append((str(f), "hidden file (e.g. a macOS ._ resource fork), not a recording"))
        elif f.stem in missing:
            excluded.append((str(f), MISSING_REASON))
        elif f.stem in seen:
            excluded.append((str(f), f"duplicate sample name (first seen at {seen[f.stem]})"))
        else:
            seen[f.stem] = f
            units.append(f)
    return Discovery(units=units, excluded=excluded)


# -- fast decimal numbers ----------------------------------------------------------------------------
class NumberBlockError(Exception):
    """A problem on 0-based ``line`` of a number block; the caller maps it to a file line."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


_NUMBER_CHARS = b"0123456789.-+eE \n"
_BAD_CHAR = re.compile(rb"[^0-9.eE+\- \n]")
# Tokens of up to 15 characters go through the vectorised path: 15 digits stay below 2**53, so the
# digit sums below are exact integers in float64.
_MAX_FAST = 15
_POW10 = 10.0 ** np.arange(_MAX_FAST + 1)  # exact doubles 1 .. 1e15
_POW10_INT = 10 ** np.arange(_MAX_FAST + 1, dtype=np.int64)


def parse_number_block(block: bytes, num_fields: int, cols: np.ndarray) -> np.ndarray:
    """Convert columns of a block of lines holding ``num_fields`` decimal numbers each.

    Equivalent to ``[[float(line.split()[c]) for c in cols] for line in block.split(b"\\n")]`` plus
    checks, but the numbers are converted by array arithmetic on the bytes: a token
    ``-?d*.d*`` of at most 15 characters is read as the integer of its digits ``M`` and the count of
    decimals ``f``; ``M`` and ``10**f`` are exact doubles, so ``M / 10**f`` is the correctly rounded
    value, the same double ``float()`` returns (Clinger's fast path). Other tokens (exponents,
    ``+``, long ones) go to ``float()`` one by one; NTU files have a handful per file.

    Args:
        block: lines joined by ``\\n`` (no trailing newline), fields separated by spaces.
        num_fields: how many fields every line must have.
        cols: the 0-based columns to convert.

    Returns:
        ``(L, len(cols))`` float64.

    Raises:
        NumberBlockError: a line with another field count; a token that is not a finite decimal.
    """
    buf = np.frombuffer(block, dtype=np.uint8)
    bounds = _token_bounds(buf, num_fields, cols)
    if bounds is None:
        # Irregular spacing (tabs, double or trailing spaces) or a wrong field count: name the bad
        # line, or normalise the spacing and take the fast path.
        lines = block.split(b"\n")
        for i, line in enumerate(lines):
            if len(line.split()) != num_fields:
                raise NumberBlockError(i, f"a joint line needs {num_fields} fields, got {len(line.split())}")
        block = b"\n".join(b" ".join(line.split()) for line in lines)
        buf = np.frombuffer(block, dtype=np.uint8)
        bounds = _token_bounds(buf, num_fields, cols)
        if bounds is None:  # unreachable once every line has num_fields fields; never loop on it
            raise NumberBlockError(0, "irregular field separators")
    if block.translate(None, _NUMBER_CHARS):  # every field, read or not, must be made of these
        raise _token_error(block, _BAD_CHAR.search(block).start())
    tok_start, tok_end = bounds  # (C * L,) each, column-major
    values = _decimal_tokens(buf, tok_start, tok_end)
    for k in np.flatnonzero(np.isnan(values)):  # NaN marks the tokens the vectorised path left
        value = None
        try:
            value = float(block[tok_start[k]:tok_end[k]])
        except ValueError:
            pass
        if value is None or not math.isfinite(value):
            raise _token_error(block, int(tok_start[k]), non_finite=value is not None)
        values[k] = value
    return values.reshape(len(cols), -1).T  # (L, C)


def _token_bounds(buf: np.ndarray, num_fields: int, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Byte offsets ``(start, end)`` of the tokens in columns ``cols`` of every line, column-major
    (``(C * L,)`` each), when every line is ``num_fields`` fields split by single spaces; ``None``
    otherwise (the caller then looks closer)."""
    n = buf.size
    newlines = np.flatnonzero(buf == 10)
    num_lines = newlines.size + 1
    spaces = np.flatnonzero(buf == 32)
    if spaces.size != (num_fields - 1) * num_lines:
        return None
    line_start = np.empty(num_lines, dtype=np.int64)
    line_start[0] = 0
    line_start[1:] = newlines + 1
    line_end = np.empty(num_lines, dtype=np.int64)
    line_end[:-1] = newlines
    line_end[-1] = n
    if num_fields == 1:
        return (line_start, line_end) if (line_end > line_start).all() else None
    # Row r's spaces strictly inside line r, no two adjacent: with the total right, every line
    # then has exactly num_fields non-empty fields.
    if (np.diff(spaces) < 2).any():
        return None
    spaces = spaces.reshape(num_lines, num_fields - 1)
    if not ((spaces[:, 0] > line_start).all() and (spaces[:, -1] < line_end - 1).all()):
        return None
    starts = [line_start if c == 0 else spaces[:, c - 1] + 1 for c in cols]
    ends = [line_end if c == num_fields - 1 else spaces[:, c] for c in cols]
    return np.concatenate(starts), np.concatenate(ends)


def _decimal_tokens(buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Values of the tokens ``buf[start:end]`` of the form ``-?d*.?d*``; NaN for any other token."""
    length = (end - start).astype(np.int32)
    if length.size == 0:
        return np.empty(0, dtype=np.float64)
    width = int(min(length.max(), _MAX_FAST))
    # Right-align the tokens in a (width, k) window with '0' in the columns before a token's start
    # (leading zeros change nothing), so that row j always weighs 10**(width-1-j).
    padded = np.concatenate([np.full(width, 48, dtype=np.uint8), buf])
    row = np.arange(width, dtype=np.int32)[:, None]
    chars = np.take(padded, end.astype(np.int32) + row)  # (width, k)
    inside = row >= width - length  # (width, k): the token's own columns
    digits = chars - np.uint8(48)  # a non-digit wraps to >= 10
    non_digit = (digits >= 10) & inside
    is_dot = (chars == 46) & inside
    num_non_digits = np.add.reduce(non_digit, axis=0, dtype=np.uint8)  # (k,)
    num_dots = np.add.reduce(is_dot, axis=0, dtype=np.uint8)
    neg = np.take(padded, start.astype(np.int32) + width) == 45  # a leading '-'
    # Valid here: at most one '.', a '-' only in front, at least one digit; the rest go to float().
    ok = (length <= width) & (num_dots <= 1) & (num_non_digits == num_dots + neg) & (length > num_non_digits)
    digits *= inside & ~non_digit
    # The dot's row counts as a digit place, so the digits left of it weigh 10x too much: split the
    # digit sum at 10**decimals and scale the left part back, in exact integers (all < 2**53).
    weighted = (_POW10[width - 1::-1] @ digits.astype(np.float64)).astype(np.int64)  # (k,)
    has_dot = num_dots == 1
    dot_row = np.add.reduce(is_dot * row.astype(np.uint8), axis=0, dtype=np.uint8).astype(np.int64)
    decimals = np.where(has_dot, width - 1 - dot_row, 0)
    scale = _POW10_INT[decimals]
    right = weighted % scale
    mantissa = np.where(has_dot, right + (weighted - right) // 10, weighted)
    values = mantissa / _POW10[decimals]
    np.negative(values, out=values, where=neg)
    values[~ok] = np.nan
    return values


def _token_error(block: bytes, pos: int, non_finite: bool = False) -> NumberBlockError:
    """The error for the token around byte ``pos`` of ``block``."""
    line = block.count(b"\n", 0, pos)
    a = max(block.rfind(b" ", 0, pos), block.rfind(b"\n", 0, pos)) + 1
    ends = [i for i in (block.find(b" ", pos), block.find(b"\n", pos)) if i >= 0]
    token = block[a:min(ends) if ends else len(block)][:40].decode("ascii", "replace")
    if non_finite or token.lstrip("+-").lower() in ("nan", "inf", "infinity"):
        return NumberBlockError(line, f"non-finite value {token!r}")
    return NumberBlockError(line, f"bad number {token!r}")


# -- read ------------------------------------------------------------------------------------------
def _field_columns(fields: Sequence[str]) -> np.ndarray:
    if isinstance(fields, str):
        fields = (fields,)
    unknown = [f for f in fields if f not in JOINT_FIELDS]
    if unknown or not fields:
        raise ValueError(f"unknown NTU joint field(s) {unknown}; known: {', '.join(JOINT_FIELDS)}")
    return np.array([JOINT_FIELDS.index(f) for f in fields], dtype=np.int64)


def _count(lines: list[bytes], i: int, path: Path, what: str) -> int:
    """The integer on line ``i`` (0-based), or a SkeletonFormatError naming line and problem."""
    try:
        return int(lines[i])
    except ValueError:
        text = lines[i][:40].decode("ascii", "replace")
        raise SkeletonFormatError(path, f"line {i + 1}: expected {what}, got {text!r}") from None


def _walk(lines: list[bytes], path: Path, max_bodies: int):
    """Walk the frame/body header lines.

    Returns:
        ``(T, kept, nmax)``: the frame count; for each kept body ``(frame, slot, body_id, first joint
        line)``; the largest body count of any frame.
    """
    n = len(lines)
    if not lines[0].strip():
        raise SkeletonFormatError(path, "line 1: expected the frame count, got an empty line")
    num_frames = _count(lines, 0, path, "the frame count (not an NTU .skeleton file?)")
    if num_frames <= 0:
        raise SkeletonFormatError(path, f"line 1: frame count is {num_frames}; a sample needs at least one frame")
    kept: list[tuple[int, int, int, int]] = []
    nmax = 0
    i = 1
    for t in range(num_frames):
        if i >= n:
            raise SkeletonFormatError(
                path, f"line {i + 1}: file ends after {t} of the {num_frames} frames its first line declares (truncated?)")
        nb = _count(lines, i, path, f"the body count of frame {t + 1}")
        if nb < 0:
            raise SkeletonFormatError(path, f"line {i + 1}: negative body count {nb}")
        i += 1
        # Each body takes exactly 27 lines (body line, "25", 25 joint lines): check the whole frame
        # fits before walking it, so that a huge garbled count fails at once instead of looping.
        if i + (2 + NUM_JOINTS) * nb > n:
            raise SkeletonFormatError(
                path, f"line {i}: frame {t + 1} declares {nb} bodies but the file ends at line {n} (truncated?)")
        nmax = max(nmax, nb)
        for m in range(nb):
            body = lines[i].split()
            if len(body) != BODY_FIELDS:
                raise SkeletonFormatError(
                    path, f"line {i + 1}: a body line needs {BODY_FIELDS} fields, got {len(body)}")
            try:
                # Body ids reach ~7.2e16 (> 2**53): parse as int, never through float.
                body_id = int(body[0])
            except ValueError:
                raise SkeletonFormatError(path, f"line {i + 1}: bad body id {body[0][:30]!r}") from None
            if not -(2**63) <= body_id < 2**63:
                raise SkeletonFormatError(path, f"line {i + 1}: body id {body_id} does not fit in 64 bits")
            joints = lines[i + 1].strip()
            if joints != b"25":
                raise SkeletonFormatError(
                    path, f"line {i + 2}: expected the joint count 25, got {joints[:30].decode('ascii', 'replace')!r}")
            if m < max_bodies:
                kept.append((t, m, body_id, i + 2))
            i += 2 + NUM_JOINTS
    for j in range(i, n):
        if lines[j].strip():
            raise SkeletonFormatError(
                path, f"line {j + 1}: unexpected content after the {num_frames} frames the first line declares "
                "(frame count does not match the file)")
    return num_frames, kept, nmax


def read(
    path: str | Path, fields: Sequence[str] = ("x", "y", "z"), max_bodies: int = 4, **opts: Any,
) -> list[RawSample]:
    """Read one ``.skeleton`` file.

    Args:
        path: the file.
        fields: joint columns to return, by name (:data:`JOINT_FIELDS`); ``C = len(fields)``.
        max_bodies: body slots kept per frame (the official reader keeps 4).
        **opts: other prepare options; ignored here.

    Returns:
        One :class:`RawSample`: name = file stem; label/setup/view/subject/repetition from an NTU
        name (``-1`` when the stem is not one); ``body_ids`` ``(T, B)`` int64, ``-1`` where absent.

    Shape:
        ``bodies``: ``(T, B, 25, C)`` float32, ``B = min(max_bodies, most bodies in any frame)`` (at
        least 1); a slot with no body in a frame is all zeros.

    Raises:
        SkeletonFormatError: the file is empty, truncated, has a wrong count, a garbled or non-finite
            number, or content past the declared frames; the message gives the line number.
    """
    path = Path(path)
    cols = _field_columns(fields)
    if max_bodies < 1:
        raise ValueError(f"max_bodies must be >= 1, got {max_bodies}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SkeletonFormatError(path, f"cannot read: {e.strerror or e}") from None
    if not data.strip():
        raise SkeletonFormatError(path, "empty file")
    lines = data.splitlines()  # LF, CRLF (official zips) and lone CR alike
    num_frames, kept, nmax = _walk(lines, path, max_bodies)

    num_slots = max(1, min(max_bodies, nmax))
    bodies = np.zeros((num_frames, num_slots, NUM_JOINTS, len(cols)), dtype=np.float32)
    body_ids = np.full((num_frames, num_slots), -1, dtype=np.int64)
    if kept:
        frame_idx, slot_idx, ids, starts = (list(c) for c in zip(*kept))
        # One buffer holding every kept joint line, in (body-frame, joint) order.
        block = b"\n".join(chain.from_iterable(lines[s:s + NUM_JOINTS] for s in starts))
        try:
            values = parse_number_block(block, len(JOINT_FIELDS), cols)  # (K*25, C) float64
        except NumberBlockError as e:
            line_no = starts[e.line // NUM_JOINTS] + e.line % NUM_JOINTS + 1
            raise SkeletonFormatError(path, f"line {line_no}: {e.problem}") from None
        bodies[frame_idx, slot_idx] = values.reshape(len(kept), NUM_JOINTS, len(cols))
        body_ids[frame_idx, slot_idx] = ids

    meta = parse_sample_name(path.stem) or {}
    return [RawSample(
        name=path.stem, bodies=bodies, label=meta.get("label", -1), subject=meta.get("subject", -1),
        view=meta.get("view", -1), setup=meta.get("setup", -1), repetition=meta.get("repetition", -1),
        source=str(path), body_ids=body_ids,
    )]


# -- write -----------------------------------------------------------------------------------------
# Pinhole projections for the depthX/depthY/colorX/colorY columns. Roughly what the official files
# show (a least-squares fit of those columns against x/z, y/z on sample files gives depth
# fx~366, cx~257, fy~368, cy~209 and colour fx~1054, cx~977, fy~1040, cy~565); only plausibility matters.
_DEPTH = (366.0, 257.0, 368.0, 209.0)
_COLOR = (1054.0, 977.0, 1040.0, 565.0)
# 9 significant digits round-trip any float32 exactly (IEEE 754: ceil(1 + 24 log10 2) = 9).
_JOINT_LINE = "%.9g %.9g %.9g %.7g %.7g %.7g %.7g 1 0 0 0 2"
# First id the Kinect v2 SDK hands out looks like 72057594037927936 + n (2**56 + n) in the NTU files.
_BASE_BODY_ID = 72057594037927936 + 3165


def write_skeleton_file(
    path: str | Path, bodies: np.ndarray, body_ids: np.ndarray | None = None, crlf: bool = False,
) -> Path:
    """Write a valid NTU ``.skeleton`` file.

    Body slot ``b`` of frame ``t`` is written when it has any non-zero coordinate; absent slots are
    skipped, so a reader sees the present bodies of a frame in slot order (a body in slot 1 with
    slot 0 empty comes back in slot 0, as it would from a real file). Orientation is written as the
    identity quaternion and every tracking state as 2 (tracked).

    Args:
        path: the file to write (parent folders are created).
        bodies: camera-space joint positions in metres.
        body_ids: tracking ids per slot; default ``2**56 + 3165 + slot`` (the shape of real ids).
        crlf: end lines with CRLF as the official zips do (default LF).

    Shape:
        ``bodies``: ``(T, B, 25, 3)``; ``body_ids``: ``(T, B)`` int.

    Returns:
        The path written.
    """
    path = Path(path)
    xyz = np.asarray(bodies, dtype=np.float32)
    if xyz.ndim != 4 or xyz.shape[2:] != (NUM_JOINTS, 3) or xyz.shape[0] < 1:
        raise ValueError(f"bodies must be (T>=1, B, 25, 3), got {xyz.shape}")
    if not np.isfinite(xyz).all():
        raise ValueError("bodies contain NaN or inf; NTU files hold finite numbers only")
    num_frames, num_slots = xyz.shape[:2]
    ids = np.asarray(body_ids, dtype=np.int64) if body_ids is not None else None
    if ids is not None and ids.shape != (num_frames, num_slots):
        raise ValueError(f"body_ids must be {(num_frames, num_slots)}, got {ids.shape}")
    present = np.any(xyz != 0, axis=(2, 3))  # (T, B)

    # Columns x y z depthX depthY colorX colorY for every written joint, in file order.
    xyz64 = xyz[present].astype(np.float64)  # (K, 25, 3)
    z = np.where(np.abs(xyz64[..., 2]) > 1e-3, xyz64[..., 2], 1e-3)
    u, v = xyz64[..., 0] / z, xyz64[..., 1] / z
    cols = np.stack([
        xyz64[..., 0], xyz64[..., 1], xyz64[..., 2],
        _DEPTH[1] + _DEPTH[0] * u, _DEPTH[3] - _DEPTH[2] * v,
        _COLOR[1] + _COLOR[0] * u, _COLOR[3] - _COLOR[2] * v,
    ], axis=-1)  # (K, 25, 7)

    # A template with one %-field per number, filled by a single formatting call.
    joint_block = "\n".join([_JOINT_LINE] * NUM_JOINTS)
    parts = [str(num_frames)]
    for t in range(num_frames):
        slots = np.flatnonzero(present[t])
        parts.append(str(len(slots)))
        for b in slots:
            bid = int(ids[t, b]) if ids is not None and ids[t, b] >= 0 else _BASE_BODY_ID + int(b)
            parts.append(f"{bid} 0 1 1 1 1 0 0 0 2")
            parts.append(str(NUM_JOINTS))
            parts.append(joint_block)
    text = "\n".join(parts) % tuple(cols.ravel().tolist()) + "\n"
    if crlf:
        text = text.replace("\n", "\r\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("ascii"))
    return path
