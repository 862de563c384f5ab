"""The NTU ``.skeleton`` reader as one compiled pass (numba), used when numba is installed (``[fast]``).

:func:`scan` checks every byte against the file's character set in one vectorised loop, then walks
the layout (frame count, body counts, body lines, the ``25`` lines, 12 fields per joint line, single
spaces, one line ending throughout), converting the requested joint fields as it meets them and
counting the spaces of the rest of each line eight bytes at a time. It accepts a subset of what the
line-by-line reference (``ntu._read_checked``) accepts and gives the same values: a field of the
form ``-?d*.?d*`` with 1 to 15 digits is ``M / 10**f`` (``M`` its digits, ``f`` its decimals), one
correctly rounded division of two exact doubles, which is the double ``float()`` returns (Clinger's
fast path, the rule of the numpy reader too). Other fields (exponents, ``+``, more digits) are handed
back by position for ``float()`` in Python. Anything irregular (tabs, double spaces, mixed line
endings, a ``+`` in a count, ...) makes it give up, and the reference reader reads the file and
names the problem.

Importing this module imports numba; ``ntu`` imports it lazily and uses the numpy reader when numba
is not installed. Compiled code is cached on disk (``cache=True``): a new process loads it rather
than compiling it again (about 15 s, once per install).
"""

from __future__ import annotations

import functools

import numba
import numpy as np

__all__ = ["scan"]

NUM_JOINTS = 25
NUM_FIELDS = 12
BODY_FIELDS = 10
# Fewest bytes a body block can take (body line, "25" line, 25 joint lines, one-byte fields, LF):
# a bound on how many bodies a file of n bytes holds.
_MIN_BODY_BYTES = 2 * BODY_FIELDS + 3 + NUM_JOINTS * 2 * NUM_FIELDS

# 1 for a byte that may not appear in a regular file (anything but "0123456789.-+eE", space, CR, LF).
_BAD = np.ones(256, dtype=np.uint8)
_BAD[np.frombuffer(b"0123456789.-+eE \r\n", np.uint8)] = 0

_U = np.uint64
_ONES, _HIGHS = _U(0x0101010101010101), _U(0x8080808080808080)
_X20, _X21, _X30 = _U(0x2020202020202020), _U(0x2121212121212121), _U(0x3030303030303030)
# _KEEP[L]: the last L of 16 bytes (a field right-aligned in two little-endian words), as two words.
_KEEP = np.array([[0xFF if j >= 16 - L else 0 for j in range(16)] for L in range(17)],
                 dtype=np.uint8).view(np.uint64)
# A '.' in byte b of the first word has 15 - b decimals after it, in the second 7 - b: a word holding
# a single 0x01 at byte b, times these, has that count + 1 in its top byte.
_DOT_LO, _DOT_HI = _U(0x100F0E0D0C0B0A09), _U(0x0807060504030201)
_POW10 = 10.0 ** np.arange(16)  # exact doubles


@numba.njit(cache=True, nogil=True, inline="always")
def _bytes(flags):
    """How many bytes of a word have bit 7 set, given that no other bit is set."""
    return int(((flags >> _U(7)) * _ONES) >> _U(56))


@numba.njit(cache=True, nogil=True, inline="always")
def _full_bytes(below):
    """How many whole bytes a mask of the low bits (``(1 << 8k + 7) - 1``) covers: ``k``."""
    return int((((below >> _U(7)) & _ONES) * _ONES) >> _U(56))


@numba.njit(cache=True, nogil=True, inline="always")
def _bytes_under(flags):
    """How many bytes lie under the lowest byte with bit 7 set (``flags`` non-zero, bits 7 only)."""
    return _full_bytes((flags & (~flags + _U(1))) - _U(1))


@numba.njit(cache=True, nogil=True, inline="always")
def _eight_digits(w):
    """Eight digit values 0..9 (first digit in the low byte) -> their number (simdjson's SWAR steps)."""
    w = ((w * _U(2561)) >> _U(8)) & _U(0x00FF00FF00FF00FF)
    w = ((w * _U(6553601)) >> _U(16)) & _U(0x0000FFFF0000FFFF)
    return (w * _U(42949672960001)) >> _U(32)


@numba.njit(cache=True, nogil=True, inline="always")
def _eol(buf, i, crlf):
    """Index after the line ending at ``i`` (the end of the buffer counts as one), or -1."""
    n = buf.size
    if i == n:
        return n
    if crlf:
        if buf[i] == 13 and i + 1 < n and buf[i + 1] == 10:
            return i + 2
        return -1
    if buf[i] == 10:
        return i + 1
    return -1


@numba.njit(cache=True, nogil=True, inline="always")
def _count_line(buf, i, crlf):
    """A line holding only a non-negative integer (1-9 digits): ``(value, index after it)``, or -1s."""
    n = buf.size
    v = 0
    j = i
    while j < n and 48 <= buf[j] <= 57 and j - i < 9:
        v = v * 10 + (buf[j] - 48)
        j += 1
    if j == i:
        return -1, -1
    return v, _eol(buf, j, crlf)


@numba.njit(cache=True, nogil=True)
def _bytes_ok(buf, bad_byte):
    """Every byte is a field byte, a space, a CR or an LF (one table loop with no exit)."""
    bad = np.uint8(0)
    for k in range(buf.size):
        bad |= bad_byte[buf[k]]
    return bad == 0


@numba.njit(cache=True, nogil=True, inline="always")
def _line_end(buf, at, i):
    """From ``i``, the first byte of a field: ``(index of the line's end, spaces before it)``.

    The end is the first byte below 32 (or the end of the buffer); the count is -1 where two spaces
    touch or ``i`` is a space (an empty field). Eight bytes at a time (``at[p]`` is bytes ``p..p+7``
    as a little-endian uint64): the bytes below 32 and the spaces are found with the borrow trick of
    "determine if a word has a zero byte" (bit 7 of each; exact for the lowest byte below 32, all
    that is used, and for the spaces under it, since no byte here is 0x21). A line costs one
    mispredicted branch, at its end.
    """
    n = buf.size
    num_spaces = 0
    touching = _U(0)
    prev = _U(0x80)  # bit 7: the byte before this word is a space (a field may not start with one)
    while i + 8 <= n:
        w = at[i]
        ctl = (w - _X20) & ~w & _HIGHS  # bytes < 0x20
        x = w ^ _X20
        sp = (x - _ONES) & ~x & _HIGHS  # spaces
        if ctl:
            below = (ctl & (~ctl + _U(1))) - _U(1)  # the bits under the line's end
            sp &= below
            touching |= sp & ((sp << _U(8)) | prev)
            return i + _full_bytes(below), -1 if touching else num_spaces + _bytes(sp)
        touching |= sp & ((sp << _U(8)) | prev)
        prev = sp >> _U(56)
        num_spaces += _bytes(sp)
        i += 8
    prev_space = prev != 0
    while i < n:  # the last few bytes
        c = buf[i]
        if c < 32:
            break
        if c == 32:
            if prev_space:
                touching = _U(1)
            num_spaces += 1
        prev_space = c == 32
        i += 1
    return i, -1 if touching else num_spaces


@numba.njit(cache=True, nogil=True, inline="always")
def _number(buf, at, i, keep, pow10):
    """The field starting at ``i``: ``(index after it, its value)``.

    The value is NaN unless the field is ``-?d*.?d*`` with 1 to 15 digits; then it is ``float()``'s,
    bit for bit: the field but its sign is right-aligned in 16 bytes (two little-endian words, its
    first byte the most significant digit), the bytes before it cleared; the '.' is found as the one
    non-digit, taken out, and the digits before it moved up one byte to close the gap; the 15 or fewer
    digits give the integer ``M < 10**15 < 2**53`` eight at a time (simdjson's SWAR steps), and
    ``M / 10**f`` (``f`` decimals) is one correctly rounded division of two exact doubles, the value
    ``float()`` returns (Clinger's fast path, as in ``_fastnum.decimal_tokens``). Relies on every
    byte being one of ``0123456789.-+eE`` or a separator (checked for the whole file first).
    """
    n = buf.size
    neg = buf[i] == 45
    s = i + 1 if neg else i
    e = s
    while True:  # the field's end: its first byte <= 32
        if e + 8 > n:
            while e < n and buf[e] > 32:
                e += 1
            break
        w = at[e]
        end = (w - _X21) & ~w & _HIGHS
        if end:
            e += _bytes_under(end)
            break
        e += 8
    length = e - s
    if length == 0 or length > 16 or e < 16:
        return e, np.nan
    lo = (at[e - 16] ^ _X30) & keep[length, 0]  # '0'..'9' -> 0..9, '.' 0x1E, '-' 0x1D, '+' 0x1B, e/E 0x55/0x75
    hi = (at[e - 8] ^ _X30) & keep[length, 1]
    dot_lo = (lo >> _U(4)) & _ONES  # 0x01 at each non-digit (bit 4 is set on exactly those)
    dot_hi = (hi >> _U(4)) & _ONES
    if (dot_lo & lo) | (dot_hi & hi):  # a non-digit with bit 0 set: '-', '+', 'e', 'E'
        return e, np.nan
    dots = int(((dot_lo + dot_hi) * _ONES) >> _U(56))
    if dots > 1 or length - dots > 15 or length == dots:
        return e, np.nan
    code = int((dot_lo * _DOT_LO + dot_hi * _DOT_HI) >> _U(56))  # decimals + 1, 0 without a '.'
    lo -= dot_lo * _U(0x1E)  # the '.' -> 0
    hi -= dot_hi * _U(0x1E)
    # Close the gap: the bytes under the '.' move up one byte (a 128-bit shift of that part).
    all_ones = ~_U(0)
    under_hi = dot_hi - _U(1) if dot_hi else _U(0)
    under_lo = all_ones if dot_hi else (dot_lo - _U(1) if dot_lo else _U(0))
    moved_lo = lo & under_lo
    lo = (lo & ~under_lo) | (moved_lo << _U(8))
    hi = (hi & ~under_hi) | ((hi & under_hi) << _U(8)) | (moved_lo >> _U(56))
    m = _eight_digits(lo) * _U(100000000) + _eight_digits(hi)  # the digits, < 10**15: exact in a double
    value = float(np.int64(m)) / pow10[code - 1 if code > 0 else 0]
    return e, -value if neg else value


@numba.njit(cache=True, nogil=True)
def _fail(code, num_cols):
    """The result of a file :func:`_scan` gives up on (the types of a success)."""
    e = np.zeros(0, dtype=np.int64)
    return code, 0, 0, 0, 0, np.zeros((3, 0), dtype=np.int64), np.zeros((0, num_cols), dtype=np.float64), e


@numba.njit(cache=True, nogil=True)
def _scan(buf, at, want, num_cols, max_bodies, bad_byte, keep, pow10):
    """See :func:`scan`; ``want[f]`` is the output column of joint field ``f``, or -1."""
    n = buf.size
    if not _bytes_ok(buf, bad_byte):
        return _fail(1, num_cols)
    lf = 0
    while lf < n and buf[lf] != 10:
        lf += 1
    crlf = 0 < lf < n and buf[lf - 1] == 13
    last = NUM_FIELDS - 1
    while want[last] < 0:  # fields past the last one asked for are only counted
        last -= 1
    num_frames, i = _count_line(buf, 0, crlf)
    if num_frames <= 0 or i < 0:
        return _fail(2, num_cols)
    cap = n // _MIN_BODY_BYTES + 1
    where = np.empty((3, cap), dtype=np.int64)  # frame, slot, body id of each kept body
    values = np.empty((cap * NUM_JOINTS, num_cols), dtype=np.float64)
    odd = np.empty(3 * 64, dtype=np.int64)  # (start, end, flat index into values) of fields left to float()
    num_odd = 0
    kept = 0
    nmax = 0
    for t in range(num_frames):
        nb, i = _count_line(buf, i, crlf)
        if i < 0:
            return _fail(3, num_cols)
        nmax = max(nmax, nb)
        for m in range(nb):
            keeping = m < max_bodies
            if keeping and kept >= cap:
                return _fail(3, num_cols)
            # Body line: the id (optional '-', 1..18 digits: fits in int64), then 9 more fields.
            neg = i < n and buf[i] == 45
            j = i + 1 if neg else i
            body_id = 0
            while j < n and 48 <= buf[j] <= 57 and j - i - neg < 18:
                body_id = body_id * 10 + (buf[j] - 48)
                j += 1
            if j == i + neg or j >= n or buf[j] != 32:
                return _fail(4, num_cols)
            i, num_spaces = _line_end(buf, at, j + 1)
            i = _eol(buf, i, crlf) if num_spaces == BODY_FIELDS - 2 and buf[i - 1] != 32 else -1
            # The joint count line: "25".
            if i < 0 or i + 2 > n or buf[i] != 50 or buf[i + 1] != 53:
                return _fail(5, num_cols)
            i = _eol(buf, i + 2, crlf)
            if i < 0:
                return _fail(5, num_cols)
            if keeping:
                where[0, kept] = t
                where[1, kept] = m
                where[2, kept] = -body_id if neg else body_id
            upto = last if keeping else -1  # fields read one by one; the rest of each line is counted
            row = kept * NUM_JOINTS
            for _ in range(NUM_JOINTS):
                for f in range(upto + 1):
                    if f > 0:
                        if i >= n or buf[i] != 32:
                            return _fail(6, num_cols)
                        i += 1
                    col = want[f]
                    if col < 0:  # a field not asked for, before the last one that is
                        start = i
                        while i < n and buf[i] > 32:
                            i += 1
                        if i == start:
                            return _fail(6, num_cols)
                        continue
                    if i >= n:
                        return _fail(6, num_cols)
                    start = i
                    i, value = _number(buf, at, i, keep, pow10)
                    if value != value:  # an exponent, a '+', 16+ digits, stray '-': float() decides
                        if 3 * num_odd + 3 > odd.size:
                            grown = np.empty(2 * odd.size, dtype=np.int64)
                            grown[:odd.size] = odd
                            odd = grown
                        odd[3 * num_odd] = start
                        odd[3 * num_odd + 1] = i
                        odd[3 * num_odd + 2] = row * num_cols + col
                        num_odd += 1
                    values[row, col] = value
                if upto < NUM_FIELDS - 1:
                    if upto >= 0:
                        if i >= n or buf[i] != 32:
                            return _fail(6, num_cols)
                        i += 1
                    i, num_spaces = _line_end(buf, at, i)
                    if num_spaces != NUM_FIELDS - 2 - upto or buf[i - 1] == 32:
                        return _fail(6, num_cols)
                i = _eol(buf, i, crlf)
                if i < 0:
                    return _fail(6, num_cols)
                row += 1
            if keeping:
                kept += 1
    while i < n:  # past the declared frames: nothing but spaces and line breaks
        c = buf[i]
        if c != 32 and c != 13 and c != 10:
            return _fail(8, num_cols)
        i += 1
    return 0, num_frames, nmax, kept, num_odd, where, values, odd


@functools.lru_cache(maxsize=64)
def _wanted(cols: tuple[int, ...]) -> np.ndarray | None:
    """Output column of each of the 12 joint fields (-1: not asked for); ``None`` if one is asked twice."""
    want = np.full(NUM_FIELDS, -1, dtype=np.int64)
    want[list(cols)] = np.arange(len(cols))
    if np.count_nonzero(want >= 0) != len(cols):
        return None
    want.flags.writeable = False
    return want


def scan(data: bytes, cols: np.ndarray, max_bodies: int):
    """Read an NTU file's bytes in one compiled pass.

    Args:
        data: the file.
        cols: the joint fields to convert (indices into the 12 columns), in output order.
        max_bodies: body slots kept per frame; later bodies are checked, not converted.

    Returns:
        ``None`` where the file is not of the regular form this pass reads (the reference reader
        then reads it), else ``(num_frames, nmax, where, values, odd)``: ``where`` ``(3, K)`` the
        frame, slot and body id of each kept body; ``values`` ``(K * 25, C)`` float64, NaN where a
        field was left to ``float()``; ``odd`` ``(J, 3)``: byte start, end and flat index into
        ``values`` of those fields.
    """
    want = _wanted(tuple(int(c) for c in cols))
    if want is None or len(data) < 8:  # a column asked for twice, a tiny file: not this path
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    at = np.ndarray((buf.size - 7,), dtype=np.uint64, buffer=data, strides=(1,))  # at[p]: bytes p..p+7
    status, num_frames, nmax, kept, num_odd, where, values, odd = _scan(
        buf, at, want, len(cols), max_bodies, _BAD, _KEEP, _POW10)
    if status != 0:
        return None
    return num_frames, nmax, where[:, :kept], values[:kept * NUM_JOINTS], odd[:3 * num_odd].reshape(num_odd, 3)
