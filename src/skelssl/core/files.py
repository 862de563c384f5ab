"""Safe file operations: atomic writes, exclusive locks, and the rules for replacing an output folder.

skelssl runs on people's only copies of datasets and results, so everything it writes goes through
here: a file is written to a temporary sibling and renamed into place (a crash never leaves half a
file), and a folder that two processes might write is taken under an exclusive lock first. Which
folders may be replaced is decided by their owners (``data.store.check_store_output`` for stores,
``jobs.official.check_run_output`` for converted runs, both through :func:`check_replaceable`;
``jobs.pretrain.pretrain`` for runs): only ever one that skelssl itself wrote.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = [
    "OutputError",
    "atomic_write_with",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
    "FolderLock",
    "OwnedFolder",
    "check_replaceable",
    "is_inside",
]


class OutputError(RuntimeError):
    """An output path that skelssl must not write to (a user's folder, a file, a busy run)."""


def atomic_write_with(path: str | Path, write: Callable[[str], None], keep_suffix: bool = False) -> Path:
    """``write(tmp)`` fills a temporary sibling of ``path``, which is then synced, made readable by all
    and renamed into place; on any error the temporary file is removed and ``path`` is untouched.

    Args:
        path: the file to write.
        write: writes the whole file at the temporary path it is given.
        keep_suffix: end the temporary name with ``path``'s suffix (for writers that pick the file
            format from the name: Pillow, ffmpeg).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep_suffix:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results and stores are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@dataclass(frozen=True)
class OwnedFolder:
    """A kind of output folder skelssl writes, for :func:`check_replaceable`: how to recognise one
    and the words of each refusal (each follows ``"{path} "``).

    Attributes:
        noun: what the folder is for, as in "choose a new folder for the store".
        is_ours: ``True`` for a folder this kind of writer made (its manifest says so).
        files: every file name such a folder may hold.
        not_ours: a non-empty folder that is not ours ("is a folder of other files, not a skelssl store").
        already: ours, without ``overwrite`` ("already holds a store; pass --overwrite to replace it").
        foreign: ours, with other files in it ("holds files that are not part of a store").
    """

    noun: str
    is_ours: Callable[[Path], bool]
    files: frozenset[str]
    not_ours: str
    already: str
    foreign: str


def check_replaceable(path: str | Path, overwrite: bool, kind: OwnedFolder) -> None:
    """Refuse an output path that is not ours to replace; return quietly when writing there is safe.

    Safe: a path that does not exist, an empty folder, or (with ``overwrite``) a folder that
    ``kind.is_ours`` and that holds nothing but ``kind.files``: we replace only what we wrote.

    Raises:
        OutputError: one line naming the path and the reason (a file or a link, a user's folder,
            ours without ``overwrite``, ours with other files in it, a folder we cannot list).
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise OutputError(f"{path} exists and is not a folder; choose a new folder for the {kind.noun}")
    try:
        names = {p.name for p in path.iterdir()}
    except OSError as e:
        raise OutputError(f"{path}: cannot list the folder ({e.strerror})") from None
    if not names:
        return
    if not kind.is_ours(path):
        raise OutputError(f"{path} {kind.not_ours}; choose a new or empty folder")
    if not overwrite:
        raise OutputError(f"{path} {kind.already}, or choose another folder")
    foreign = sorted(names - kind.files)
    if foreign:
        raise OutputError(f"{path} {kind.foreign} ({', '.join(foreign[:3])}); move them away or choose another folder")


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """``True`` when ``path`` is ``folder`` or lies under it (symbolic links resolved)."""
    p, f = Path(path).resolve(), Path(folder).resolve()
    return p == f or f in p.parents


class FolderLock:
    """An exclusive, non-blocking ``flock`` on a lock file; refuses at once when another process holds it.

    The lock file stays in place (removing it would let a waiting process lock an unlinked inode
    while a third one locks a new file); after taking the lock we check that the path still names
    the file we locked, and retry when it does not.

    Args:
        lock_file: the lock file (created when missing).
        what: how to name the locked thing in the error (``"store stores/ntu60"``).
    """

    def __init__(self, lock_file: str | Path, what: str) -> None:
        self.path = Path(lock_file)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(8):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(f"{self.what} is being written by another skelssl process (lock {self.path})") from None
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return self
            os.close(fd)
        raise OutputError(f"{self.what}: could not take the lock {self.path}")

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
