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
read by :func:`_read_regular`: Python touches one line per frame (its body count) and one id per
body; line and field boundaries come from one ``flatnonzero`` over the whole file, the body counts
fix the exact sequence of separators a regular file holds (compared in one go), and the numbers are
converted by vectorised digit arithmetic that gives bit-for-bit the doubles ``float()`` gives (those
numeric helpers live in :mod:`skelssl.data.formats._fastnum`). Anything irregular (odd spacing, a
damaged file) goes to :func:`_read_checked`, a line-by-line reader that is the reference for the fast one
and names the line of the first problem. Where numba is installed (the ``[fast]`` extra), a compiled
one-pass reader with the same contract (:mod:`skelssl.data.formats._ntu_compiled`) takes the place
of the numpy one, about twice as fast; ``read(parser=...)`` chooses.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data._numba import kernels
from skelssl.data.formats import Discovery, Reader
from skelssl.data.formats._files import file_problem, read_bytes
from skelssl.data.formats._fastnum import (  # private names as before the split (tests use ntu._decimal_tokens)
    decimal_tokens as _decimal_tokens,
    keep_freed_memory as _keep_freed_memory,
)
from skelssl.data.sample import RawSample

__all__ = [
    "READER",
    "NAME", "LAYOUT", "DATASET", "JOINT_FIELDS", "MISSING_REASON", "PARSERS", "discover", "read",
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
        file with an already-seen sample name). Entries that are not readable regular files (a
        FIFO, a device, a dangling symlink, a symlink loop, a folder named ``*.skeleton``) go to
        ``skipped`` and do not claim their sample name, so a good file of that name elsewhere is kept.
    """
    source = Path(source)
    if source.is_file():
        if source.suffix != ".skeleton":
            raise SkeletonFormatError(source, "not a .skeleton file")
        files = [source]
    elif source.is_dir():
        try:
            files = sorted(source.rglob("*.skeleton"))
        except OSError as e:
            raise SkeletonFormatError(source, f"cannot list the folder: {e.strerror or e}") from None
    elif source.exists():
        raise SkeletonFormatError(source, "neither a regular file nor a folder")
    else:
        raise SkeletonFormatError(source, "no such file or folder")
    if not files:
        raise SkeletonFormatError(source, "no .skeleton files in this folder or below it")
    missing = missing_skeleton_samples(120) if exclude_missing else frozenset()
    units: list[Path] = []
    excluded: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, Path] = {}
    for f in files:
        if f.name.startswith("."):
            excluded.append((str(f), "hidden file (e.g. a macOS ._ resource fork), not a recording"))
        elif (problem := file_problem(f)) is not None:
            skipped.append((str(f), problem))
        elif f.stem in missing:
            excluded.append((str(f), MISSING_REASON))
        elif f.stem in seen:
            excluded.append((str(f), f"duplicate sample name (first seen at {seen[f.stem]})"))
        else:
            seen[f.stem] = f
            units.append(f)
    return Discovery(units=units, excluded=excluded, skipped=skipped)


# -- the line-by-line reference reader ------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _field_columns(fields: tuple[str, ...]) -> np.ndarray:
    """Column indices of the named joint fields (read-only, cached per field tuple)."""
    unknown = [f for f in fields if f not in JOINT_FIELDS]
    if unknown or not fields:
        raise ValueError(f"unknown NTU joint field(s) {unknown}; known: {', '.join(JOINT_FIELDS)}")
    cols = np.array([JOINT_FIELDS.index(f) for f in fields], dtype=np.int64)
    cols.flags.writeable = False
    return cols


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


# -- the fast reader (numeric helpers in _fastnum) -------------------------------------------------
_FILE_CHARS = b"0123456789.-+eE \r\n"  # every byte of a regular file is one of these
_BAD_CHAR = re.compile(rb"[^0-9.eE+\- \r\n]")


def _line_kinds(spaces: int, nl: int) -> bytes:
    """The separators (bytes <= 32) of a regular line holding ``spaces + 1`` fields, in file order."""
    return b" " * spaces + (b"\r\n" if nl == 2 else b"\n")


# Per line ending (1: LF, 2: CR LF), the separators of a regular file, line by line: the frame-count
# line, then per frame its body-count line and per body the body line, the "25" line, 25 joint lines.
_HEAD_KINDS = {nl: _line_kinds(0, nl) for nl in (1, 2)}
_BODY_KINDS = {nl: _line_kinds(BODY_FIELDS - 1, nl) + _line_kinds(0, nl)
               + _line_kinds(len(JOINT_FIELDS) - 1, nl) * NUM_JOINTS for nl in (1, 2)}
_FRAME_KINDS = {nl: [_line_kinds(0, nl) + _BODY_KINDS[nl] * nb for nb in range(8)] for nl in (1, 2)}
# Offsets in the separators from the LF before a body line to the LF before each of its joint lines,
# and to the LF before its "25" line.
_JOINT_LF = {nl: (BODY_FIELDS - 1 + 2 * nl) + (len(JOINT_FIELDS) - 1 + nl) * np.arange(NUM_JOINTS) for nl in (1, 2)}
_COUNT_LF = {nl: BODY_FIELDS - 1 + nl for nl in (1, 2)}
# That LF, the "25" line and the byte after it (its CR or LF), as one little-endian uint32.
_COUNT_LINE = {nl: int.from_bytes(b"\n25" + (b"\r" if nl == 2 else b"\n"), "little") for nl in (1, 2)}


def _frame_counts(data: bytes, seps: np.ndarray, nl: int):
    """Walk the body-count lines (Python touches one line per frame), or ``None`` at anything odd.

    Returns:
        ``(counts, frame_lf, q)``: per frame its body count and the index in ``seps`` of the LF before
        its body-count line; ``q``: the index of the LF that ends the last frame.
    """
    sep, num_seps = seps.item, seps.size
    per_body = len(_BODY_KINDS[nl])  # separators in one body block
    try:
        num_frames = int(data[:sep(0)])
    except ValueError:
        return None
    counts: list[int] = []
    frame_lf: list[int] = []
    q = nl - 1  # the LF before the frame's body-count line (the first line's)
    for _ in range(num_frames):  # (q grows every frame: at most num_seps steps, whatever T says)
        if q + 1 >= num_seps:
            return None
        start, end = sep(q) + 1, sep(q + 1)
        nb = data[start] - 48  # one digit, the usual case
        if end != start + 1 or not 0 <= nb <= 9:
            try:
                nb = int(data[start:end])
            except ValueError:
                return None
            if nb < 0:
                return None
        counts.append(nb)
        frame_lf.append(q)
        q += nl + nb * per_body
    if num_frames <= 0 or q >= num_seps:
        return None
    return counts, frame_lf, q


def _by_float(data: bytes, flat: np.ndarray, tokens) -> bool:
    """Convert the tokens the fast readers leave to ``float()``: ``flat[at] = float(data[start:end])``
    for each ``(start, end, at)``; ``False`` at the first one that is not a finite number (the
    reference reader then reads the file and names it)."""
    for start, end, at in tokens:
        try:
            flat[at] = value = float(data[start:end])
        except ValueError:
            return False
        if not math.isfinite(value):
            return False
    return True


def _read_regular(data: bytes, cols: np.ndarray, max_bodies: int):
    """The common case, fast: a well-formed file with single spaces between fields.

    Same result as :func:`_read_checked`, or ``None`` at the first irregularity of any kind (that
    reader then reads the file again and names the problem).

    The only bytes ``<= 32`` of a regular file are space, CR and LF, so one ``flatnonzero`` gives
    every field and line boundary (``seps``). The layout fixes how many of them each line holds (a
    header none, a body line 9 spaces, a joint line 11, then CR LF or LF), so once Python has read
    the body count of each frame, the whole sequence of separator bytes is known: it is compared in
    one go, and the index in ``seps`` of every line end and of every joint field is arithmetic. The
    only other check over all separators: no two of them touch (an empty field), bar CR LF.
    """
    if data.translate(None, _FILE_CHARS):
        return None
    first_lf = data.find(b"\n")
    crlf = first_lf > 0 and data[first_lf - 1] == 13
    nl = 2 if crlf else 1  # separators that end a line
    if not data.endswith(b"\n"):
        data += b"\r\n" if crlf else b"\n"
    buf = np.frombuffer(data, dtype=np.uint8)
    seps = np.flatnonzero(buf <= 32)  # (n_all,) every space, CR and LF
    walked = _frame_counts(data, seps, nl)
    if walked is None:
        return None
    counts, frame_lf, q = walked
    if data[seps.item(q) + 1:].strip():  # content past the declared frames
        return None
    seps = seps[:q + 1]  # (n,)
    kinds = np.take(buf, seps)  # (n,) 32, 13 or 10
    frame_kinds = _FRAME_KINDS[nl]
    expected = b"".join([_HEAD_KINDS[nl]] + [frame_kinds[c] if c < 8 else frame_kinds[0] + _BODY_KINDS[nl] * c
                                             for c in counts])
    if kinds.tobytes() != expected:
        return None
    gaps = seps[1:] - seps[:-1]  # (n-1,) bytes from one separator to the next: 1 only from a CR to its LF
    if not (np.array_equal(gaps < 2, kinds[:-1] == 13) if crlf else gaps.min() >= 2):
        return None
    num_frames, num_all, nmax = len(counts), sum(counts), max(counts)
    if num_all == 0:
        return num_frames, 0, np.zeros((3, 0), dtype=np.int64), np.zeros((0, len(cols)))
    counts = np.array(counts)  # (T,)
    frame = np.repeat(np.arange(num_frames), counts)  # (K_all,) frame of every body
    slot = np.arange(num_all) - np.repeat(np.cumsum(counts) - counts, counts)
    body = np.array(frame_lf)[frame] + nl + len(_BODY_KINDS[nl]) * slot  # (K_all,) the LF before each body line
    # Each joint-count line reads exactly "25" (the separator after it is its end, as compared above).
    words = np.ndarray((buf.size - 3,), dtype="<u4", buffer=buf, strides=(1,))  # words[i] = bytes i..i+3
    if not (words[seps[body + _COUNT_LF[nl]]] == _COUNT_LINE[nl]).all():
        return None
    try:
        # Body ids reach ~7.2e16 (> 2**53): parse as int, never through float.
        ids = [int(data[a + 1:b]) for a, b in zip(seps[body].tolist(), seps[body + 1].tolist())]
    except ValueError:
        return None
    if not (-(2**63) <= min(ids) and max(ids) < 2**63):
        return None
    ids = np.array(ids, dtype=np.int64)
    if nmax > max_bodies:  # bodies past max_bodies: checked above, not read
        keep = slot < max_bodies
        frame, slot, body, ids = frame[keep], slot[keep], body[keep], ids[keep]

    # Field c of a joint line runs from the separator c after the line's preceding LF to the next;
    # tokens in file order (joint line by joint line, the C fields of each), so values come out (K*25, C).
    at = (body[:, None] + (_JOINT_LF[nl][:, None] + cols).ravel()).ravel()  # (K*25*C,)
    tok_start = np.take(seps, at)
    tok_start += 1
    at += 1
    tok_end = np.take(seps, at)
    values = _decimal_tokens(buf, tok_start, tok_end, number_bytes=True)  # (bytes checked above)
    odd = np.flatnonzero(np.isnan(values))  # exponents and other rare forms
    if odd.size and not _by_float(data, values, zip(tok_start[odd].tolist(), tok_end[odd].tolist(), odd.tolist())):
        return None
    where = np.array([frame, slot, ids])  # (3, K)
    return num_frames, nmax, where, values.reshape(-1, len(cols))


def _compiled_scan():
    """The compiled reader's ``scan`` (numba, the ``[fast]`` extra), or ``None`` without numba."""
    module = kernels("skelssl.data.formats._ntu_compiled")
    return None if module is None else module.scan


def _read_compiled(data: bytes, cols: np.ndarray, max_bodies: int):
    """:func:`_read_regular`'s contract, by the compiled one-pass reader; ``None`` if it is absent."""
    scan = _compiled_scan()
    if scan is None:
        return None
    scanned = scan(data, cols, max_bodies)
    if scanned is None:
        return None
    num_frames, nmax, where, values, odd = scanned
    if odd.size and not _by_float(data, values.reshape(-1), odd.tolist()):  # exponents and other rare forms
        return None
    return num_frames, nmax, where, values


PARSERS = ("auto", "compiled", "numpy", "checked")


def read(
    path: str | Path, fields: Sequence[str] = ("x", "y", "z"), max_bodies: int = 4, parser: str = "auto",
    **opts: Any,
) -> list[RawSample]:
    """Read one ``.skeleton`` file.

    Args:
        path: the file.
        fields: joint columns to return, by name (:data:`JOINT_FIELDS`); ``C = len(fields)``.
        max_bodies: body slots kept per frame (the official reader keeps 4).
        parser: ``"auto"`` (the compiled reader where numba is installed, else the numpy one),
            ``"compiled"``, ``"numpy"`` or ``"checked"`` (the line-by-line reference alone). All give
            the same result; a file the fast ones do not take is read by the reference reader.
        **opts: other prepare options; ignored here.

    Returns:
        One :class:`RawSample`: name = file stem; label/setup/view/subject/repetition from an NTU
        name (``-1`` when the stem is not one); ``body_ids`` ``(T, B)`` int64, ``-1`` where absent.

    Shape:
        ``bodies``: ``(T, B, 25, C)`` float32, ``B = min(max_bodies, most bodies in any frame)`` (at
        least 1); a slot with no body in a frame is all zeros.

    Raises:
        SkeletonFormatError: the path is not a readable regular file (a FIFO, a device, a dangling
            symlink, ...), or the file is empty, truncated, has a wrong count, a garbled or
            non-finite number, or content past the declared frames; the message gives the line number.
    """
    cols = _field_columns(tuple(fields) if not isinstance(fields, str) else (fields,))
    if max_bodies < 1:
        raise ValueError(f"max_bodies must be >= 1, got {max_bodies}")
    if parser not in PARSERS:
        raise ValueError(f"parser must be one of {', '.join(PARSERS)}, got {parser!r}")
    compiled = parser in ("auto", "compiled") and _compiled_scan() is not None
    if parser == "compiled" and not compiled:
        raise ImportError("the compiled NTU reader needs numba: pip install 'skelssl[fast]'")
    path = Path(path)
    data = _read_file(path)
    if not data or data.isspace():
        raise SkeletonFormatError(path, "empty file")
    parsed = None
    if compiled:
        parsed = _read_compiled(data, cols, max_bodies)
    elif parser != "checked":
        _keep_freed_memory()
        parsed = _read_regular(data, cols, max_bodies)
    if parsed is None:
        parsed = _read_checked(data, path, cols, max_bodies)
    num_frames, nmax, where, values = parsed  # where: (3, K) frame, slot, body id; values (K * 25, C)

    num_slots = max(1, min(max_bodies, nmax))
    if where.shape[1] == num_frames * num_slots:  # every frame holds num_slots bodies: no empty slot
        bodies = values.astype(np.float32).reshape(num_frames, num_slots, NUM_JOINTS, len(cols))
        body_ids = where[2].reshape(num_frames, num_slots).copy()
    else:
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


def _read_file(path: Path) -> bytes:
    """The bytes of ``path``: a regular file only (a FIFO or a symlink to ``/dev/zero`` is refused
    before it is opened), at most :data:`~skelssl.data.formats._files.MAX_FILE_BYTES`, with one
    ``stat``, ``open``, ``fstat`` and ``read`` (no buffered layers: ~10 us less on a 200 KB file).

    Raises:
        SkeletonFormatError: the path cannot be read as a regular file (the reason in one line).
    """
    return read_bytes(path)


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


class NTUReader(Reader):
    """NTU RGB+D 60/120 ``.skeleton`` files; 60 or 120 class names by the labels seen."""

    NAME, LAYOUT, DATASET, CLASS_NAMES = NAME, LAYOUT, DATASET, CLASS_NAMES
    discover = staticmethod(discover)
    read = staticmethod(read)
    class_names_for = staticmethod(class_names_for)


READER = NTUReader()
