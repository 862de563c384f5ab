"""Vectorised helpers for parsing plain-text number files fast (used by the NTU reader).

A straightforward text reader spends nearly all its time in Python, one ``float()`` per value. The
helpers here work on the whole file as one ``uint8`` array instead:

- :func:`decimal_tokens` converts many decimal tokens at once with integer digit arithmetic and
  returns bit-for-bit the doubles ``float()`` returns (or NaN where a token needs ``float()``);
- :func:`keep_freed_memory` keeps the allocator from handing the per-file temporaries back to the
  OS between files.

The caller (``ntu._read_regular``) finds line and field boundaries with one ``flatnonzero`` and falls
back to a line-by-line reader whenever these helpers reject something, so they only ever need to be
right on what they accept.
"""

from __future__ import annotations

import functools
import sys

import numpy as np

__all__ = ["decimal_tokens", "keep_freed_memory"]

_U64 = np.uint64


def _every_byte(b: int) -> np.uint64:
    return _U64(int.from_bytes(bytes([b]) * 8, "little"))


_POW10 = 10.0 ** np.arange(16)  # exact doubles 1 .. 1e15
_POW10_INT = 10 ** np.arange(16, dtype=np.int64)
_X1E, _X30, _X76, _X7F, _X80 = (_every_byte(b) for b in (0x1E, 0x30, 0x76, 0x7F, 0x80))
_ONE_PER_BYTE = _every_byte(1)
# _KEEP[n]: the last n of 16 bytes (a token right-aligned in two little-endian words).
_KEEP = np.array([[0xFF if j >= 16 - n else 0 for j in range(16)] for n in range(17)], dtype=np.uint8)
_KEEP = _KEEP.view(np.uint64).reshape(17, 2)
# A '.' in byte b of word 0 (column b) has 15 - b columns after it, in word 1 (column 8 + b) 7 - b:
# times a word holding a single 0x01 at byte b, these put that count + 1 in the top byte (0: no '.').
_DOT_MAGIC = (_U64(0x100F0E0D0C0B0A09), _U64(0x0807060504030201))
# Indexed by that code i: _AFTER_DOT[i] keeps the i - 1 columns after the '.' (all 16 for i = 0),
# _BEFORE_DOT[i] the columns before it (none for i = 0); _SCALE[i] = 10 ** (i - 1) (1 for i = 0).
_AFTER_DOT = np.array([[0xFF] * 16] + [[0xFF if j > 16 - i else 0 for j in range(16)] for i in range(1, 17)],
                      dtype=np.uint8).view(np.uint64).reshape(17, 2)
_BEFORE_DOT = np.array([[0] * 16] + [[0xFF if j < 16 - i else 0 for j in range(16)] for i in range(1, 17)],
                       dtype=np.uint8).view(np.uint64).reshape(17, 2)
_SCALE = np.concatenate([[1.0], _POW10, [1e16]])  # (18,) (the last only for a rejected token)
# simdjson's parse_eight_digits_unrolled: 8 digit bytes (first in the low byte) -> their value.
_SWAR_STEPS = (
    (_U64(2561), _U64(8), _U64(0x00FF00FF00FF00FF)),
    (_U64(6553601), _U64(16), _U64(0x0000FFFF0000FFFF)),
    (_U64(42949672960001), _U64(32), None),
)


def decimal_tokens(buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Values of the tokens ``buf[start:end]`` of the form ``-?d*.?d*``; NaN for any other token.

    A token of at most 15 characters is the integer ``M`` of its digits over ``10**f`` (``f``
    decimals); ``M < 10**15 < 2**53`` and ``10**f`` are exact doubles, so ``M / 10**f`` is the
    correctly rounded value, the double ``float()`` returns (Clinger's fast path). To get ``M``, each
    token but its sign is right-aligned in a 16-byte window (two little-endian uint64), the bytes
    before it are cleared, and the digits are combined eight at a time with the SWAR multiply-shift
    steps of simdjson's ``parse_eight_digits_unrolled``. All the work is on those two words per
    token (about 30 passes over ``(k, 2)`` uint64, reused in place: fresh pages cost more than the
    arithmetic on some virtual machines).

    Shape:
        ``start``, ``end``: ``(k,)`` byte offsets; returns ``(k,)`` float64.
    """
    k = end.size
    if k == 0 or buf.size < 16 or sys.byteorder != "little":  # (the byte tricks assume little-endian)
        return np.full(k, np.nan)
    neg = np.take(buf, start) == 45  # a leading '-', left out of the window
    length = end - start
    # The usual case, checked once for all: every token short enough, with a full window before it.
    short = bool(length.max() <= 15 and end.min() >= 16)
    digits_len = length - neg
    first = end - 16
    if not short:
        np.minimum(digits_len, 16, out=digits_len)
        np.maximum(first, 0, out=first)
    # items[i] = the 16 bytes buf[i:i+16] as one raw item (numpy copies unaligned items itself).
    items = np.ndarray((buf.size - 15,), dtype="V16", buffer=buf, strides=(1,))
    w = items[first].view(np.uint64).reshape(k, 2)  # bytes end-16 .. end-1
    w ^= _X30  # '0'..'9' -> 0..9; '.' -> 0x1E; '-' 0x1D, '+' 0x1B, 'e' 0x55, 'E' 0x75, others >= 0x10
    w &= np.take(_KEEP, digits_len, axis=0)  # bytes before the token (and its sign) -> 0
    # SWAR byte tests without carries between bytes (the low 7 bits first, the top bit apart):
    # 0x80 at each byte > 9 (a non-digit), and at each byte == 0x1E (a '.').
    non_digit = w & _X7F
    non_digit += _X76
    non_digit |= w
    non_digit &= _X80
    dot = w ^ _X1E
    zero = dot & _X7F
    zero += _X7F
    dot |= zero
    np.invert(dot, out=dot)
    dot &= _X80
    dot >>= _U64(7)  # 0x01 at each '.'
    has_dot = (dot[:, 0] | dot[:, 1]) != 0
    # Valid: every non-digit is a '.', at most one per token, at least one digit, at most 15
    # characters, a full window before the end. Counted over all tokens at once; token by token
    # only when that fails.
    num_dots = np.count_nonzero(dot.view(np.uint8))
    valid = (short and np.count_nonzero(non_digit.view(np.uint8)) == num_dots == np.count_nonzero(has_dot)
             and bool((digits_len > has_dot).all()))
    if not valid:
        same = (non_digit >> _U64(7)) == dot  # (k, 2): every non-digit of the word is a '.'
        ok = same[:, 0] & same[:, 1] & (_bytes_set(dot) <= 1)
        ok &= (length <= 15) & (end >= 16) & (digits_len > has_dot)
    code = dot[:, 0] * _DOT_MAGIC[0]  # (at most one word holds a '.', in a token kept)
    code += dot[:, 1] * _DOT_MAGIC[1]
    code >>= _U64(56)  # (k,) decimals + 1, 0 without a '.'
    # Close the gap of the '.': the digits before it move one column right (a byte up, across words).
    before = w & np.take(_BEFORE_DOT, code, axis=0, mode="clip")
    w &= np.take(_AFTER_DOT, code, axis=0, mode="clip")
    carry = before[:, 0] >> _U64(56)
    before <<= _U64(8)
    before[:, 1] |= carry
    w |= before
    for mult, shift, lane_mask in _SWAR_STEPS:
        w *= mult
        w >>= shift
        if lane_mask is not None:
            w &= lane_mask
    lanes = w.view(np.int64)
    mantissa = lanes[:, 0] * 100_000_000  # the integer of all the digits, < 10**15
    mantissa += lanes[:, 1]
    values = mantissa / np.take(_SCALE, code, mode="clip")
    np.negative(values, out=values, where=neg)
    if not valid:
        values[~ok] = np.nan
    return values


def _bytes_set(words: np.ndarray) -> np.ndarray:
    """Per row, how many bytes of the two words of ``words`` (``(k, 2)``, bytes 0 or 1) are 1."""
    return ((words[:, 0] * _ONE_PER_BYTE) >> _U64(56)) + ((words[:, 1] * _ONE_PER_BYTE) >> _U64(56))


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
