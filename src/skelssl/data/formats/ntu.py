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
does) spends nearly all its time in Python per joint line. Here a regular file (the common case) is
read by :func:`_read_regular`: Python touches one header line per frame and one id per body; line and
field boundaries come from ``flatnonzero`` over the whole file, and the numbers are converted by
vectorised digit arithmetic that gives bit-for-bit the doubles ``float()`` gives. Anything irregular
(odd spacing, a damaged file) goes to :func:`_read_checked`, a line-by-line reader that is the
reference for the fast one and names the line of the first problem.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Sequence
from importlib import resources
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


# -- the line-by-line reference reader ------------------------------------------------------
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
            raise SkeletonFormatError(path, f"line {i + 1}: file ends after {t} of the {num_frames} frames "
                                      "its first line declares (truncated?)")
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


def _read_checked(data: bytes, path: Path, cols: np.ndarray, max_bodies: int):
    """Read any file line by line, naming the first problem; the reference for :func:`_read_regular`.

    The rule both readers apply: every byte is a digit, ``.``, ``-``, ``+``, ``e``, ``E``, a space (or
    a tab, here) or a line break; every joint line has 12 fields; the requested fields are finite
    decimal numbers. The fast reader accepts a subset of what this one accepts, with equal results.

    Returns:
        ``(num_frames, nmax, where, values)``: ``where`` is ``(3, K)`` int64, the frame, slot and
        body id of each of the K kept bodies; ``values`` is ``(K * 25, C)`` float64.
    """
    lines = data.splitlines()  # LF, CRLF (official zips) and lone CR alike
    num_frames, kept, nmax = _walk(lines, path, max_bodies)
    bad = _BAD_CHAR.search(data.replace(b"\t", b" "))
    if bad:  # name the whitespace-separated word holding the first stray byte
        line = len(data[:bad.start() + 1].splitlines())
        words = [w for w in lines[line - 1].split() if _BAD_CHAR.search(w)] or [bad.group()]
        word = words[0][:30].decode("latin-1")
        what = "non-finite value" if word.lstrip("+-").lower() in ("nan", "inf", "infinity") else "bad number"
        raise SkeletonFormatError(path, f"line {line}: {what} {word!r}")
    values = np.zeros((len(kept) * NUM_JOINTS, len(cols)))
    row = 0
    for first in (k[3] for k in kept):
        for i in range(first, first + NUM_JOINTS):
            fields = lines[i].split()
            if len(fields) != len(JOINT_FIELDS):
                raise SkeletonFormatError(
                    path, f"line {i + 1}: a joint line needs {len(JOINT_FIELDS)} fields, got {len(fields)}")
            for c, col in enumerate(cols):
                try:
                    values[row, c] = value = float(fields[col])
                except ValueError:
                    raise SkeletonFormatError(path, f"line {i + 1}: bad number {fields[col][:30].decode()!r}") from None
                if not math.isfinite(value):
                    raise SkeletonFormatError(path, f"line {i + 1}: non-finite value {fields[col][:30].decode()!r}")
            row += 1
    where = np.array([k[:3] for k in kept], dtype=np.int64).reshape(-1, 3).T  # (3, K)
    return num_frames, nmax, where, values


# -- fast decimal numbers --------------------------------------------------------------------------
_FILE_CHARS = b"0123456789.-+eE \r\n"  # every byte of a regular file is one of these
_BAD_CHAR = re.compile(rb"[^0-9.eE+\- \r\n]")
_POW10 = 10.0 ** np.arange(16)  # exact doubles 1 .. 1e15
_POW10_INT = 10 ** np.arange(16, dtype=np.int64)
_ONE_PER_BYTE = np.uint64(0x0101010101010101)
_DOT_MAGIC = np.uint64(0x0706050403020100)
# A token of length L right-aligned in 16 bytes (two little-endian words): _KEEP[L] keeps its bytes,
# _FILL[L] puts ASCII '0' in the 16 - L bytes before it.
_KEEP = np.array([[0xFF if j >= 16 - n else 0 for j in range(16)] for n in range(17)], dtype=np.uint8)
_FILL = np.where(_KEEP == 0, np.uint8(48), np.uint8(0))
_KEEP, _FILL = _KEEP.view("V16").ravel(), _FILL.view("V16").ravel()  # (17,) 16-byte items
# (shift, multiplier, lane mask): 8 digit bytes -> 4 two-digit -> 2 four-digit -> 1 eight-digit lane.
_SWAR_STEPS = (
    (np.uint64(8), np.uint64(10), np.uint64(0x00FF00FF00FF00FF)),
    (np.uint64(16), np.uint64(100), np.uint64(0x0000FFFF0000FFFF)),
    (np.uint64(32), np.uint64(10000), np.uint64(0x00000000FFFFFFFF)),
)


def _decimal_tokens(buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Values of the tokens ``buf[start:end]`` of the form ``-?d*.?d*``; NaN for any other token.

    A token of at most 15 characters is the integer ``M`` of its digits over ``10**f`` (``f``
    decimals); ``M < 10**15 < 2**53`` and ``10**f`` are exact doubles, so ``M / 10**f`` is the
    correctly rounded value, the double ``float()`` returns (Clinger's fast path). To get ``M``, each
    token is right-aligned in a 16-byte window (two little-endian uint64 read at unaligned offsets),
    the bytes before it become '0', and the digits are combined eight at a time with the SWAR
    multiply-shift steps of simdjson's ``parse_eight_digits_unrolled``. Temporaries are reused in
    place: fresh pages cost more than the arithmetic on some virtual machines.

    Shape:
        ``start``, ``end``: ``(k,)`` byte offsets; returns ``(k,)`` float64.
    """
    length = end - start
    k = length.size
    if k == 0 or buf.size < 16 or sys.byteorder != "little":  # (the byte tricks assume little-endian)
        return np.full(k, np.nan)
    # items[i] = the 16 bytes buf[i:i+16] as one raw item (numpy copies unaligned items itself).
    items = np.ndarray((buf.size - 15,), dtype="V16", buffer=buf, strides=(1,))
    first = np.maximum(end - 16, 0)  # a token ending before byte 16 goes to float()
    window = items[first].view(np.uint64).reshape(k, 2)  # bytes buf[end-16:end-8], buf[end-8:end]
    # Keep the token's own bytes (the last `length` of the 16) and put '0' in front of them.
    fit = np.minimum(length, 16)
    mask = np.empty(k, dtype="V16")
    scratch = mask.view(np.uint64).reshape(k, 2)
    window &= np.take(_KEEP, fit, out=mask).view(np.uint64).reshape(k, 2)
    window |= np.take(_FILL, fit, out=mask).view(np.uint64).reshape(k, 2)
    chars = window.view(np.uint8).reshape(k, 16)  # column j = byte end-16+j

    digits = scratch.view(np.uint8).reshape(k, 16)
    np.subtract(chars, np.uint8(48), out=digits)  # a non-digit wraps to >= 10
    non_digit = digits >= 10
    is_dot = np.equal(chars, 46, out=chars.view(np.bool_))  # (the characters are not needed again)
    num_non_digits = _bytes_set(non_digit)  # (k,)
    num_dots = _bytes_set(is_dot)
    neg = np.take(buf, start) == 45  # a leading '-'
    # Valid here: at most 15 characters, at most one '.', a '-' only in front, at least one digit.
    ok = (length <= 15) & (end >= 16) & (num_dots <= 1) & (num_non_digits == num_dots + neg)
    ok &= num_non_digits < length
    np.invert(non_digit, out=non_digit)
    digits *= non_digit  # '.', '-' -> 0
    lanes = scratch  # (k, 2): 8 digits each, the first character in the low byte
    shifted = non_digit.view(np.uint64)
    for shift, mult, lane_mask in _SWAR_STEPS:
        np.right_shift(lanes, shift, out=shifted)
        lanes *= mult
        lanes += shifted
        lanes &= lane_mask
    weighted = lanes[:, 0].astype(np.int64) * 100_000_000 + lanes[:, 1].astype(np.int64)  # 16 columns
    # The dot's column counts as a digit place, so the digits left of it weigh 10x too much: split
    # at 10**decimals and scale the left part back, in exact integers.
    has_dot = num_dots == 1
    # Columns right of the dot: a word holding the dot's single 0x01 byte at byte b, times
    # 0x0706050403020100, carries 7 - b into its top byte.
    dot_words = is_dot.view(np.uint64)  # (k, 2)
    after_dot = (dot_words * _DOT_MAGIC) >> np.uint64(56)
    decimals = (after_dot[:, 1] + (after_dot[:, 0] + np.uint64(8)) * (dot_words[:, 0] != 0)).astype(np.int64)
    decimals *= has_dot
    scale = _POW10_INT[decimals]
    right = weighted % scale
    values = np.where(has_dot, right + (weighted - right) // 10, weighted) / _POW10[decimals]
    np.negative(values, out=values, where=neg)
    values[~ok] = np.nan
    return values


def _bytes_set(mask: np.ndarray) -> np.ndarray:
    """Per row, how many of the 16 bytes of a ``(k, 16)`` bool mask are set (a SWAR byte sum)."""
    words = mask.view(np.uint64)  # (k, 2), bytes 0 or 1
    return ((words[:, 0] * _ONE_PER_BYTE) >> np.uint64(56)) + ((words[:, 1] * _ONE_PER_BYTE) >> np.uint64(56))


def _fields_ok(spaces: np.ndarray, first: np.ndarray, start: np.ndarray, end: np.ndarray, num_spaces: int) -> bool:
    """Whether each line ``[start, end)`` holds exactly the ``num_spaces`` spaces from ``spaces[first]``
    on, none at either end (``spaces``: sorted positions of every space, no two adjacent)."""
    last = first + (num_spaces - 1)
    if last.max() >= spaces.size or not ((spaces[first] > start).all() and (spaces[last] < end - 1).all()):
        return False
    after = np.minimum(last + 1, spaces.size - 1)
    return bool(((last + 1 >= spaces.size) | (spaces[after] > end)).all())


def _read_regular(data: bytes, cols: np.ndarray, max_bodies: int):
    """The common case, fast: a well-formed file with single spaces between fields.

    Same result as :func:`_read_checked`, or ``None`` at the first irregularity of any kind (that
    reader then reads the file again and names the problem).
    """
    if data.translate(None, _FILE_CHARS):
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    is_char = buf == 10  # reused for the spaces below
    ends = np.flatnonzero(is_char)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    starts = np.zeros_like(ends)
    starts[1:] = ends[:-1] + 1
    if b"\r" in data:  # CRLF: drop the CR at each line end; any other CR is irregular
        cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
        if int(np.count_nonzero(cr)) != data.count(b"\r"):
            return None
        ends = ends - cr
    # Python reads one line per frame, the body count; everything else is checked in bulk below.
    num_lines, line_start, line_end = ends.size, starts.item, ends.item
    try:
        num_frames = int(data[:line_end(0)])
        counts, i = [], 1
        for _ in range(num_frames):
            nb = int(data[line_start(i):line_end(i)])  # (IndexError past the end)
            i += 1 + (2 + NUM_JOINTS) * nb
            if nb < 0 or i > num_lines:
                return None
            counts.append(nb)
    except (ValueError, IndexError):
        return None
    if num_frames <= 0 or (i < num_lines and data[line_start(i):].strip()):
        return None
    counts = np.array(counts, dtype=np.int64)  # (T,)
    headers = np.concatenate([[1], 1 + np.cumsum(1 + (2 + NUM_JOINTS) * counts)[:-1]])  # (T,)
    frame = np.repeat(np.arange(num_frames), counts)  # (K_all,) frame of every body
    slot = np.arange(frame.size) - np.repeat(np.cumsum(counts) - counts, counts)
    body_line = headers[frame] + 1 + (2 + NUM_JOINTS) * slot
    if frame.size == 0:
        return num_frames, 0, np.zeros((3, 0), dtype=np.int64), np.zeros((0, len(cols)))
    spaces = np.flatnonzero(np.equal(buf, 32, out=is_char))
    if spaces.size == 0 or (is_char[1:] & is_char[:-1]).any():  # "  ": an empty field
        return None
    count_line = starts[body_line + 1]  # each must read exactly "25"
    if not ((ends[body_line + 1] - count_line == 2).all() and (buf[count_line] == 50).all()
            and (buf[count_line + 1] == 53).all()):
        return None
    body_spaces = np.searchsorted(spaces, starts[body_line])  # (K_all,) first space of each body line
    if not _fields_ok(spaces, body_spaces, starts[body_line], ends[body_line], BODY_FIELDS - 1):
        return None
    keep = slot < max_bodies
    frame, slot, body_line = frame[keep], slot[keep], body_line[keep]
    id_ends = spaces[body_spaces[keep]]
    try:
        # Body ids reach ~7.2e16 (> 2**53): parse as int, never through float.
        ids = [int(data[a:b]) for a, b in zip(starts[body_line].tolist(), id_ends.tolist())]
    except ValueError:
        return None
    if ids and not (-(2**63) <= min(ids) and max(ids) < 2**63):
        return None

    joint_line = (body_line[:, None] + 2 + np.arange(NUM_JOINTS)).ravel()  # (L,)
    js, je = starts[joint_line], ends[joint_line]
    # A body's 25 joint lines follow each other, 11 spaces each: predict where each line's spaces
    # start, and let _fields_ok reject the body if any line has another count.
    per_line = len(JOINT_FIELDS) - 1
    first = (np.searchsorted(spaces, js[::NUM_JOINTS])[:, None] + per_line * np.arange(NUM_JOINTS)).ravel()
    if not _fields_ok(spaces, first, js, je, per_line):
        return None
    tok_start = np.concatenate([js if c == 0 else spaces[first + c - 1] + 1 for c in cols])  # (C * L,)
    tok_end = np.concatenate([je if c == len(JOINT_FIELDS) - 1 else spaces[first + c] for c in cols])
    values = _decimal_tokens(buf, tok_start, tok_end)
    for k in np.flatnonzero(np.isnan(values)):  # exponents and other rare forms
        token = data[tok_start[k]:tok_end[k]]
        try:
            values[k] = float(token)
        except ValueError:
            return None
        if not math.isfinite(values[k]):
            return None
    where = np.stack([frame, slot, np.array(ids, dtype=np.int64)])  # (3, K)
    return num_frames, int(counts.max()), where, values.reshape(len(cols), -1).T


@functools.cache
def _keep_freed_memory() -> None:
    """Once per process: allocate and free one 16 MiB block.

    glibc hands freed memory above an adaptive threshold back to the OS, so in a fresh process the
    ~1 MB of temporaries of every file is faulted in afresh for the next one: ~450 page faults per
    file, which on some virtual machines cost more than the arithmetic (measured here: 3.7 -> 2.2 ms
    of CPU per file). Freeing one large block raises glibc's mmap and trim thresholds (to 16 and
    32 MiB), after which the temporaries are reused. Any process that once frees a large array ends
    up the same way; with other allocators this changes nothing.
    """
    np.empty(16 << 20, dtype=np.uint8)  # freed at once; never touched, so it costs no page faults


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
    if not data or data.isspace():
        raise SkeletonFormatError(path, "empty file")
    _keep_freed_memory()
    parsed = _read_regular(data, cols, max_bodies)
    if parsed is None:
        parsed = _read_checked(data, path, cols, max_bodies)
    num_frames, nmax, where, values = parsed  # where: (3, K) frame, slot, body id

    num_slots = max(1, min(max_bodies, nmax))
    bodies = np.zeros((num_frames, num_slots, NUM_JOINTS, len(cols)), dtype=np.float32)
    body_ids = np.full((num_frames, num_slots), -1, dtype=np.int64)
    if where.shape[1]:
        frame_idx, slot_idx, ids = where
        bodies[frame_idx, slot_idx] = values.reshape(-1, NUM_JOINTS, len(cols))  # (K, 25, C)
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


# NTU RGB+D 120 action names (A001..A120); NTU-60 is the first 60.
CLASS_NAMES: tuple[str, ...] = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw",
    "sitting down", "standing up (from sitting position)", "clapping", "reading", "writing", "tear up paper",
    "wear jacket", "take off jacket", "wear a shoe", "take off a shoe", "wear on glasses", "take off glasses",
    "put on a hat/cap", "take off a hat/cap", "cheer up", "hand waving", "kicking something", "reach into pocket",
    "hopping (one foot jumping)", "jump up", "make a phone call/answer phone", "playing with phone/tablet",
    "typing on a keyboard", "pointing to something with finger", "taking a selfie", "check time (from watch)",
    "rub two hands together", "nod head/bow", "shake head", "wipe face", "salute", "put the palms together",
    "cross hands in front (say stop)", "sneeze/cough", "staggering", "falling", "touch head (headache)",
    "touch chest (stomachache/heart pain)", "touch back (backache)", "touch neck (neckache)",
    "nausea or vomiting condition", "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person", "point finger at the other person",
    "hugging other person", "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball", "tennis bat swing",
    "juggling table tennis balls", "hush (quite)", "flick hair", "thumb up", "thumb down", "make ok sign",
    "make victory sign", "staple book", "counting money", "cutting nails", "cutting paper (using scissors)",
    "snapping fingers", "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper", "ball up paper",
    "play magic cube", "apply cream on face", "apply cream on hand back", "put on bag", "take off bag",
    "put something into a bag", "take something out of a bag", "open a box", "move heavy objects", "shake fist",
    "throw up cap/hat", "hands up (both hands)", "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself", "blow nose",
    "hit other person with something", "wield knife towards other person", "knock over other person (hit with body)",
    "grab other person's stuff", "shoot at other person with a gun", "step on foot", "high-five",
    "cheers and drink", "carry something with other person", "take a photo of other person",
    "follow other person", "whisper in other person's ear", "exchange things with other person",
    "support somebody with hand", "finger-guessing game (playing rock-paper-scissors)",
)


def class_names_for(max_label: int) -> tuple[str, ...]:
    """NTU-60 names for a store whose labels are all below 60, else the NTU-120 names."""
    return CLASS_NAMES[:60] if max_label < 60 else CLASS_NAMES
