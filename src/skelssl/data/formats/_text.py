"""Plain-text files of the MSR, UTKinect and PKU-MMD releases: reading, numeric tables, cache keys.

Those three releases store one row of numbers per line (a joint, a frame, or a frame of two bodies).
:func:`float_table` converts the whole file in one ``np.array(tokens, dtype)`` call, so no Python
loop runs per value; only when that bulk path finds a problem does a per-line scan run, to name the
first bad line in the :class:`~skelssl.core.conventions.SkeletonFormatError`. :func:`read_text`
reads a text file (labels, splits) with the same error messages, and :func:`file_stamp` gives the
readers' per-process parse caches a key that changes when a file is rewritten.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.formats._files import file_problem, read_bytes

__all__ = ["file_stamp", "float_table", "read_text"]


def read_text(path: str | Path, what: str | None = None) -> str:
    """The UTF-8 text of a file.

    Args:
        path: the file.
        what: what the file is, for the messages (``"label file"``); ``None`` for a data file.

    Raises:
        SkeletonFormatError: the file is not a regular file (a FIFO, a device, a dangling symlink),
            cannot be read, is over :data:`~skelssl.data.formats._files.MAX_FILE_BYTES`, or is not
            valid UTF-8.
    """
    data = read_bytes(path, what)  # regular files only, bounded: a FIFO or /dev/zero is refused
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        problem = f"{what} is not text (invalid UTF-8)" if what else "not a text file (invalid UTF-8)"
        raise SkeletonFormatError(path, problem) from None


def file_stamp(path: str | Path) -> tuple[int, int]:
    """``(mtime_ns, size)`` of a file: part of the parse-cache keys, so a rewritten file is parsed again.

    Raises:
        SkeletonFormatError: the file is not a regular file, or cannot be stat'ed (missing, no
            permission, a dangling symlink or a symlink loop).
    """
    problem = file_problem(path)
    if problem is not None:
        raise SkeletonFormatError(path, problem)
    try:
        st = Path(path).stat()
    except OSError as e:  # gone since the check
        raise SkeletonFormatError(path, f"cannot read file: {e.strerror or e}") from None
    return st.st_mtime_ns, st.st_size


def float_table(path: str | Path, ncols: int, dtype: type = np.float32, row_hint: str = "") -> np.ndarray:
    """Parse a file of ``ncols`` whitespace-separated numbers per non-blank line.

    Blank lines are skipped; line numbers in messages are the file's own (1-based, blank lines
    counted), so a user can open the file at the line named.

    Args:
        path: the text file.
        ncols: numbers expected on every non-blank line.
        dtype: ``np.float32`` for coordinates, ``np.float64`` where a column must stay exact (frame
            ids beyond 2**24).
        row_hint: appended in parentheses to the wrong-field-count message to say what a row holds
            (``"a row is 2 bodies x 25 joints x xyz"``); empty for none.

    Returns:
        ``(R, ncols)`` array of ``dtype``, ``R`` the number of non-blank lines; every value finite.

    Raises:
        SkeletonFormatError: unreadable file, invalid UTF-8, no non-blank line, a line with another
            number of fields, a token that is not a number, or a non-finite value (NaN, inf, or an
            overflow of ``dtype``); the message names the line.
    """
    text = read_text(path)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise SkeletonFormatError(path, "empty file")
    tokens = text.split()
    if len(tokens) != ncols * len(lines):  # some line has another count: find the first one
        hint = f" ({row_hint})" if row_hint else ""
        for n, line in lines:
            got = len(line.split())
            if got != ncols:
                raise SkeletonFormatError(path, f"line {n}: expected {ncols} values, got {got}{hint}")
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf, reported below
            values = np.array(tokens, dtype=dtype)  # bulk conversion, no per-value Python loop
    except ValueError:  # locate the token numpy refused; float() accepts exactly what numpy does
        for n, line in lines:
            for tok in line.split():
                try:
                    float(tok)
                except ValueError:
                    raise SkeletonFormatError(path, f"line {n}: {tok[:40]!r} is not a number") from None
        raise SkeletonFormatError(path, "unparseable numbers") from None  # not reached: float() agrees
    rows = values.reshape(len(lines), ncols)  # (R, ncols)
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        n = lines[int(np.flatnonzero(~finite)[0])][0]
        raise SkeletonFormatError(path, f"line {n}: non-finite value (NaN or inf)")
    return rows
