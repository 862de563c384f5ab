"""Vectorised helpers for parsing plain-text number files fast (used by the NTU reader).

A straightforward text reader spends nearly all its time in Python, one ``float()`` per value. The
helpers here work on the whole file as one ``uint8`` array instead:

- :func:`decimal_tokens` converts many decimal tokens at once with integer digit arithmetic and
  returns bit-for-bit the doubles ``float()`` returns (or NaN where a token needs ``float()``);
- :func:`fields_ok` checks, from the sorted positions of every space, that each line has exactly
  the expected number of single-space-separated fields;
- :func:`keep_freed_memory` keeps the allocator from handing the per-file temporaries back to the
  OS between files.

The caller (``ntu._read_regular``) finds line and field boundaries with ``flatnonzero`` and falls
back to a line-by-line reader whenever these helpers reject something, so they only ever need to be
right on what they accept.
"""

from __future__ import annotations

import functools
import sys

import numpy as np

__all__ = ["decimal_tokens", "fields_ok", "keep_freed_memory"]

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


def decimal_tokens(buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
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


def fields_ok(spaces: np.ndarray, first: np.ndarray, start: np.ndarray, end: np.ndarray, num_spaces: int) -> bool:
    """Whether each line ``[start, end)`` holds exactly the ``num_spaces`` spaces from ``spaces[first]``
    on, none at either end (``spaces``: sorted positions of every space, no two adjacent)."""
    last = first + (num_spaces - 1)
    if last.max() >= spaces.size or not ((spaces[first] > start).all() and (spaces[last] < end - 1).all()):
        return False
    after = np.minimum(last + 1, spaces.size - 1)
    return bool(((last + 1 >= spaces.size) | (spaces[after] > end)).all())


@functools.cache
def keep_freed_memory() -> None:
    """Once per process: allocate and free one 16 MiB block.

    glibc hands freed memory above an adaptive threshold back to the OS, so in a fresh process the
    ~1 MB of temporaries of every file is faulted in afresh for the next one: ~450 page faults per
    file, which on some virtual machines cost more than the arithmetic (measured here: 3.7 -> 2.2 ms
    of CPU per file). Freeing one large block raises glibc's mmap and trim thresholds (to 16 and
    32 MiB), after which the temporaries are reused. Any process that once frees a large array ends
    up the same way; with other allocators this changes nothing.

    The effect stays inside the calling process: it only changes this process's allocator state
    (no ``mallopt``, no ``MALLOC_*`` environment variable, nothing a spawned process inherits; a
    forked child starts with a copy, like the rest of its memory). It runs on the first read, never
    at import; ``functools.cache`` makes it once per process, so each worker that reads files does
    it on its own first read.
    """
    np.empty(16 << 20, dtype=np.uint8)  # freed at once; never touched, so it costs no page faults
