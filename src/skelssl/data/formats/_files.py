"""Opening a user's source files safely: regular files only, a bounded number of bytes, one-line errors.

Every reader reads its files through :func:`read_bytes` (or checks them with :func:`check_regular`
before handing them to numpy), so that a bad entry in a dataset folder is a
:class:`~skelssl.core.conventions.SkeletonFormatError` for that entry alone, never a hang, an
unbounded read or a traceback:

- a FIFO, a socket or a device named like a data file (or a symlink to one, e.g. to ``/dev/zero``)
  is refused from its ``stat``, before it is opened: opening a FIFO with no writer blocks forever,
  reading ``/dev/zero`` never ends, and opening some devices has side effects;
- the file is then opened with ``O_NONBLOCK`` and ``fstat``-ed again, so one swapped in between the
  two checks cannot block the reader either;
- at most ``limit`` bytes are read (:data:`MAX_FILE_BYTES` unless the caller says otherwise): the
  size a regular file claims is checked first, and a file that grows while it is read is cut off
  at the limit;
- a dangling symlink, a symlink loop, a folder, a missing or unreadable file each get their own
  one-line reason.

Files are only ever opened for reading: nothing here can change a user's file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Callable

from skelssl.core.conventions import SkeletonFormatError

__all__ = ["MAX_FILE_BYTES", "MAX_PICKLE_BYTES", "check_regular", "dataset_folder", "file_problem", "list_folder", "read_bytes"]

# Per-sequence files (NTU .skeleton, N-UCLA .json, MSR/UTKinect/PKU-MMD .txt) and the label, split
# and protocol lists beside them. The largest real ones are 4.0 MB (a whole PKU-MMD recording),
# 0.9 MB (UTKinect), 0.7 MB (MSR), 0.4 MB (NTU) and 0.13 MB (N-UCLA): 256 MiB is some 60 times the
# largest, yet parsing it still fits in a few GB of memory.
MAX_FILE_BYTES = 256 << 20
# A PYSKL annotation pickle holds a whole dataset (ntu120_hrnet.pkl is a few GB) and is read at once.
MAX_PICKLE_BYTES = 32 << 30

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _os_problem(path: str | Path, e: OSError, what: str) -> str:
    """One line for an ``OSError`` from ``stat``/``open``/``read`` of ``path``."""
    if e.errno == errno.ENOENT and os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"dangling symlink (points to {target!r}, which does not exist)"
    if e.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"cannot read {what}: permission denied"
    if e.errno == errno.ENOENT:
        return f"cannot read {what}: no such file"
    if e.errno == errno.EISDIR:
        return f"cannot read {what}: it is a folder"
    return f"cannot read {what}: {e.strerror or e}"


def _what(what: str | None) -> str:
    return f"the {what}" if what else "file"


def _too_big(label: str, size: int, limit: int) -> str:
    return f"{label} is {size:,} bytes, over the {limit:,}-byte limit for this format"


def _stat(path: str | Path, what: str | None) -> tuple[os.stat_result | None, str | None]:
    """``(stat, None)`` for a regular file, else ``(None, why not)``. Follows symlinks; opens nothing."""
    try:
        st = os.stat(path)
    except OSError as e:
        return None, _os_problem(path, e, _what(what))
    except ValueError as e:  # a NUL byte in the name
        return None, f"unusable file name ({e})"
    if not stat.S_ISREG(st.st_mode):
        via = " (through a symlink)" if os.path.islink(path) else ""
        return None, f"cannot read {_what(what)}: {_kind(st.st_mode)}{via}, not a regular file"
    return st, None


def file_problem(path: str | Path, what: str | None = None) -> str | None:
    """Why ``path`` is not a readable regular file (``None`` when it is one). Never opens it."""
    return _stat(path, what)[1]


def check_regular(path: str | Path, what: str | None = None, limit: int | None = MAX_FILE_BYTES) -> os.stat_result:
    """``stat`` of ``path`` after checking it is a regular file of at most ``limit`` bytes.

    Raises:
        SkeletonFormatError: missing, dangling or looping symlink, not a regular file, unreadable,
            or larger than ``limit``.
    """
    st, problem = _stat(path, what)
    if problem is not None:
        raise SkeletonFormatError(path, problem)
    if limit is not None and st.st_size > limit:
        raise SkeletonFormatError(path, _too_big(_what(what), st.st_size, limit))
    return st


def read_bytes(path: str | Path, what: str | None = None, limit: int | None = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file, read with one ``open``, ``fstat`` and (usually) one ``read``.

    Args:
        path: the file.
        what: what the file is, for the messages (``"label file"``); ``None`` for a data file.
        limit: the most bytes to read (``None``: no limit beyond the file's own size).

    Raises:
        SkeletonFormatError: see :func:`check_regular`; also when the file grows past ``limit``
            while it is read, or a read fails.
    """
    check_regular(path, what, limit)  # from stat alone: a FIFO or device is never opened
    label = _what(what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise SkeletonFormatError(path, _os_problem(path, e, label)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped since the stat above
            raise SkeletonFormatError(path, f"cannot read {label}: {_kind(st.st_mode)}, not a regular file")
        if limit is not None and st.st_size > limit:
            raise SkeletonFormatError(path, _too_big(label, st.st_size, limit))
        cap = st.st_size + 1 if limit is None else min(st.st_size + 1, limit + 1)
        data = os.read(fd, cap)  # one byte more than the size: a file that grew shows it
        if len(data) != st.st_size:  # short read (a large file) or a file that changed: read on, bounded
            chunks, total = [data], len(data)
            while True:
                if limit is not None and total > limit:
                    raise SkeletonFormatError(path, f"{label} grew past the {limit:,}-byte limit while it was read")
                chunk = os.read(fd, 1 << 24)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            data = b"".join(chunks)
        return data
    except OSError as e:
        raise SkeletonFormatError(path, _os_problem(path, e, label)) from None
    finally:
        os.close(fd)


def list_folder(folder: Path, keep: Callable[[str], object], nothing: str | None = None) -> list[Path]:
    """The entries of ``folder`` whose name ``keep`` accepts, sorted by path.

    Raises:
        SkeletonFormatError: naming ``folder``, when it cannot be listed, or when ``nothing`` is
            given and no entry is kept (``nothing`` is then the reason).
    """
    try:
        found = sorted(p for p in folder.iterdir() if keep(p.name))
    except OSError as e:
        raise SkeletonFormatError(folder, f"cannot list folder: {e}") from None
    if not found and nothing is not None:
        raise SkeletonFormatError(folder, nothing)
    return found


def dataset_folder(source: str | Path, subfolder: str, expected: str) -> Path:
    """The folder holding a release's files: ``source/subfolder`` where it exists, else ``source``.

    Raises:
        SkeletonFormatError: ``source`` is missing or not a folder (``expected`` says what it should be).
    """
    source = Path(source)
    if not source.exists():
        raise SkeletonFormatError(source, "no such folder")
    if not source.is_dir():
        raise SkeletonFormatError(source, f"not a folder (expected {expected})")
    sub = source / subfolder
    return sub if sub.is_dir() else source
