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


_X1E, _X30, _X76, _X7F, _X80 = (_every_byte(b) for b in (0x1E, 0x30, 0x76, 0x7F, 0x80))
_ONE_PER_BYTE = _every_byte(1)
# _KEEP[n]: the last n of 16 bytes (a token right-aligned in two little-endian words).
_KEEP = np.array([[0xFF if j >= 16 - n else 0 for j in range(16)] for n in range(17)], dtype=np.uint8)
_KEEP = _KEEP.view(np.uint64).reshape(17, 2)
# A '.' in byte b of word 0 (column b) has 15 - b columns after it, in word 1 (column 8 + b) 7 - b:
# times a word holding a single 0x01 at byte b, these put that count + 1 in the top byte (0: no '.').
_DOT_MAGIC = (_U64(0x100F0E0D0C0B0A09), _U64(0x0807060504030201))
# simdjson's parse_eight_digits_unrolled: 8 digit bytes (first in the low byte) -> their value.
_SWAR_STEPS = (
    (_U64(2561), _U64(8), _U64(0x00FF00FF00FF00FF)),
    (_U64(6553601), _U64(16), _U64(0x0000FFFF0000FFFF)),
    (_U64(42949672960001), _U64(32), None),
)
# Indexed by that code c (decimals + 1, 0 without a '.'; 17 for a rejected token): the divisor that
# leaves the integer part, 9 * 10**(c-1) and 10**(c-1) (below), all exact doubles. Rows 18.. of
# _DECIMALS hold -10**(c-1): the sign of a '-' token is folded into the last division.
_c = np.arange(18)
_INT_PART = np.where(_c > 0, 10.0 ** _c, 1e16)
_NINES = np.where(_c > 0, 9.0 * 10.0 ** np.maximum(_c - 1, 0), 0.0)
_DECIMALS = np.concatenate([10.0 ** np.maximum(_c - 1, 0), -(10.0 ** np.maximum(_c - 1, 0))])
del _c


def decimal_tokens(buf: np.ndarray, start: np.ndarray, end: np.ndarray, number_bytes: bool = False) -> np.ndarray:
    """Values of the tokens ``buf[start:end]`` of the form ``-?d*.?d*``; NaN for any other token.

    A token of at most 15 digits (and a '.') is the integer ``M`` of its digits over ``10**f`` (``f``
    decimals); ``M < 10**15 < 2**53`` and ``10**f`` are exact doubles, so ``M / 10**f`` is the
    correctly rounded value, the double ``float()`` returns (Clinger's fast path). To get ``M``, each
    token but its sign is right-aligned in a 16-byte window (two little-endian uint64), the bytes
    before it are cleared, the '.' is read as a 0 digit, and the digits are combined eight at a time
    with the SWAR multiply-shift steps of simdjson's ``parse_eight_digits_unrolled``. That gives
    ``A = I * 10**(f+1) + F`` (integer part ``I``, fraction ``F < 10**f``), exact in a double, and
    then, in exact double arithmetic, ``I = floor(A / 10**(f+1))`` (the quotient is ``I`` plus less
    than 0.1, and rounds by far less than 0.9 while ``A < 2**53``) and ``M = A - 9 * 10**f * I``.
    About 25 passes over ``(k, 2)`` uint64 or ``(k,)`` arrays, reused in place, and no per-token
    Python.

    Args:
        buf: the text, ``uint8``.
        start, end: byte offsets of the tokens (``end`` exclusive).
        number_bytes: the caller guarantees every token byte is one of ``0123456789.-+eE`` (the NTU
            reader checks the whole file first); then fewer passes tell a '.' from the other non-digits.

    Returns:
        ``float()`` of each token of the accepted form (bit for bit, ``-0.0`` included), NaN for any
        other token (exponents, a '+', more than 15 digits, garbage): the caller converts those.

    Shape:
        ``start``, ``end``: ``(k,)``; returns ``(k,)`` float64.
    """
    k = end.size
    if k == 0 or buf.size < 16 or sys.byteorder != "little":  # (the byte tricks assume little-endian)
        return np.full(k, np.nan)
    neg = buf[start] == 45  # a leading '-', left out of the window
    digits_len = end - start
    digits_len -= neg
    first = end - 16
    # The usual case, checked once for all: every token short enough, with a full window before it.
    short = bool(digits_len.max() <= 15 and first.min() >= 0)
    if not short:
        too_long = digits_len > 15
        np.minimum(digits_len, 16, out=digits_len)
        np.maximum(first, 0, out=first)
    # items[i] = the 16 bytes buf[i:i+16] as one raw item (numpy copies unaligned items itself).
    items = np.ndarray((buf.size - 15,), dtype="V16", buffer=buf, strides=(1,))
    w = items[first].view(np.uint64).reshape(k, 2)  # bytes end-16 .. end-1
    w ^= _X30  # '0'..'9' -> 0..9; '.' -> 0x1E; every other byte -> 10..255
    w &= np.take(_KEEP, digits_len, axis=0)  # bytes before the token (and its sign) -> 0
    if number_bytes:
        # Only "0123456789.-+eE" -> 0..9, 0x1E, 0x1D, 0x1B, 0x55, 0x75: bit 4 set on every non-digit,
        # and bit 0 on every non-digit but '.'.
        dot = w >> _U64(4)
        dot &= _ONE_PER_BYTE  # 0x01 at each non-digit; in a token of the accepted form that is its '.'
        not_dot = dot & w  # non-zero where a non-digit is not a '.'
    else:
        # SWAR byte test without carries between bytes (the low 7 bits first, the top bit apart):
        # 0x01 at each byte > 9, a non-digit; in a token of the accepted form that is its '.'.
        dot = w & _X7F
        dot += _X76
        dot |= w
        dot &= _X80
        dot >>= _U64(7)
        not_dot = w ^ _X1E
        not_dot &= dot * _U64(0xFF)  # non-zero where a non-digit is not a '.'
    code = dot[:, 0] * _DOT_MAGIC[0]  # (a '.' in either word: one product is 0)
    code += dot[:, 1] * _DOT_MAGIC[1]
    code >>= _U64(56)  # (k,) decimals + 1, 0 without a '.'
    # Valid: every non-digit is a '.', at most one per token (each token with any counts once in
    # ``code``), at least one digit, at most 15 characters, a full window before the end. Checked
    # over all tokens at once; token by token only when that fails.
    valid = (short and not not_dot.any() and np.count_nonzero(dot.view(np.uint8)) == np.count_nonzero(code)
             and (digits_len.min() > 1 or bool((digits_len > (code > 0)).all())))
    if not valid:
        ok = (not_dot[:, 0] == 0) & (not_dot[:, 1] == 0) & (_bytes_set(dot) <= 1) & (digits_len > (code > 0))
        if not short:
            ok &= ~too_long & (end >= 16)
        np.minimum(code, 17, out=code)
    w -= dot * _U64(0x1E)  # the '.' -> a 0 digit
    for mult, shift, lane_mask in _SWAR_STEPS:
        w *= mult
        w >>= shift
        if lane_mask is not None:
            w &= lane_mask
    lanes = w.view(np.int64)
    values = lanes[:, 0] * 1e8
    values += lanes[:, 1]  # A = I * 10**c + F, exact (< 10**15)
    c = code.view(np.int64)
    int_part = values / np.take(_INT_PART, c)
    np.floor(int_part, out=int_part)  # I
    int_part *= np.take(_NINES, c)
    values -= int_part  # M = I * 10**(c-1) + F: the digits without the '.'
    c += 18 * neg
    values /= np.take(_DECIMALS, c)  # M / ±10**(c-1), rounded once
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
    ~1 MB of temporaries of every file is faulted in afresh for the next one: some hundreds of page
    faults per file, which on some virtual machines cost more than the arithmetic (the CPU time per
    file with and without this: benchmarks/RESULTS.md, section "NTU reading + `agcn` preprocessing
    throughput, numpy reader"). Freeing one large block raises glibc's mmap and trim thresholds (to 16 and
    32 MiB), after which the temporaries are reused. Any process that once frees a large array ends
    up the same way; with other allocators this changes nothing.

    The effect stays inside the calling process: it only changes this process's allocator state
    (no ``mallopt``, no ``MALLOC_*`` environment variable, nothing a spawned process inherits; a
    forked child starts with a copy, like the rest of its memory). It runs on the first read, never
    at import; ``functools.cache`` makes it once per process, so each worker that reads files does
    it on its own first read.
    """
    np.empty(16 << 20, dtype=np.uint8)  # freed at once; never touched, so it costs no page faults
