"""The packed on-disk store: every frame of every sample back to back in one memory-mapped array.

A store is a folder::

    frames.npy        (total_frames, M, V, C) float32, opened with mmap; any sample is one contiguous
                      range, read with one pread (so reading costs no more resident memory than the sample)
    index.npy         (N, 2) int64: offset and length of each sample in frames.npy
    meta.npz          per-sample columns: name (str), label, subject, view, setup, repetition,
                      persons, length, plus any extra integer columns a reader provides
    frame_labels.npy  optional, (total_frames,) int32 per-frame class (-1 background; untrimmed data)
    subsets.npz       optional, seeded label-fraction subsets of each protocol's training set
    store.json        layout, pipeline, source, format version, counts, class names, skipped files,
                      groups of samples with bit-identical frames, and a checksum of the arrays

The writer streams frames to disk (constant memory however large the dataset), writes into a
temporary sibling folder and renames it into place at the end, so an interrupted ``prepare`` never
leaves a half-written store that looks whole.
"""

from __future__ import annotations

import copy
import hashlib
import json
import operator
import os
import re
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from skelssl.core.conventions import StoreError, to_ctvm
from skelssl.core.files import FolderLock, OwnedFolder, atomic_write_bytes, atomic_write_text, check_replaceable
from skelssl.core.layouts import BUILTIN_LAYOUTS, Layout, get_layout, layout_from_dict, register_layout
from skelssl.data.sample import META_FIELDS

__all__ = ["Store", "StoreWriter", "FORMAT_VERSION", "MAX_CLASSES", "MAX_ABS_COORDINATE", "META_MIN", "META_MAX",
           "frames_problem", "STORE_FILES", "atomic_write_text", "atomic_write_bytes", "check_store_output", "is_store"]

FORMAT_VERSION = 1
_HEADER_BYTES = 256  # reserved .npy header; the shape is only known at the end of streaming
# Every file a store may hold: only a folder holding nothing else is ever replaced or cleaned up.
STORE_FILES = frozenset({"frames.npy", "index.npy", "meta.npz", "frame_labels.npy", "subsets.npz", "store.json", "skipped.tsv"})

# -- what a sample may hold ----------------------------------------------------------------------
# StoreWriter.add refuses a sample outside these bounds with a StoreError (which ``prepare`` reports
# as a skipped sample), so that one poisoned value in a source never aborts a long job or exhausts
# memory: a label of 2**40 would make store.json list 2**40 class names, one of 2**70 fits no int64.
#
# Labels: -1 (unknown) or 0..MAX_CLASSES-1. The largest skeleton benchmarks have some hundreds of
# classes (NTU-120: 120, Kinetics-skeleton: 400, PKU-MMD: 51); 100,000 leaves room for any real one.
MAX_CLASSES = 100_000
# Every other integer metadata value (subject, view, setup, repetition, split columns, ...) fits int32.
META_MIN, META_MAX = -(2**31), 2**31 - 1
# Coordinates: no sensor produces a magnitude above 1e5 in the units skeleton data comes in. Metres
# (Kinect depth range ~8 m), millimetres (1e5 mm = 100 m) and pixels (1e5 px is 13 times the width of
# an 8K frame) all stay far below it; the real datasets reach 5.2 (NTU, N-UCLA, MSR, UTKinect and
# PKU-MMD metres: max |x, y, z| 1.9/1.3/5.2, 2.4/1.5/5.1, 1.0/1.9/3.9, 1.5/1.5/4.0, 1.9/1.8/4.4) and
# 1,518 (NTU's colour-pixel column). A larger finite value (1e30) is a corrupted file, not a pose.
MAX_ABS_COORDINATE = 1e5


def frames_problem(frames: np.ndarray) -> str | None:
    """Why ``frames`` hold values no sensor produces (NaN, inf, ``|v| > MAX_ABS_COORDINATE``); ``None`` if fine."""
    frames = np.asarray(frames)
    if frames.size == 0:
        return None
    if frames.dtype.kind not in "fiu":
        return f"frames of dtype {frames.dtype}, expected numbers"
    with np.errstate(invalid="ignore"):
        peak = np.abs(frames).max()
    if not np.isfinite(peak):
        return "frames contain NaN or infinite values"
    if peak > MAX_ABS_COORDINATE:
        first = np.unravel_index(int(np.argmax(np.abs(frames) > MAX_ABS_COORDINATE)), frames.shape)
        return (f"coordinate of magnitude {float(peak):.3g} (first at frame {int(first[0])}) is beyond "
                f"{MAX_ABS_COORDINATE:.0e}, which no sensor produces (metres, millimetres or pixels)")
    return None


def _int_value(name: str, key: str, value: Any, lo: int, hi: int, what: str) -> int:
    """``value`` as a Python int within ``lo..hi``, or a StoreError naming the sample and column."""
    try:
        if isinstance(value, (float, np.floating)):
            raise TypeError
        v = operator.index(value)
    except TypeError:
        text = repr(value)
        raise StoreError(f"{name}: {key} {text[:40]}{'...' if len(text) > 40 else ''} is not an integer") from None
    if not lo <= v <= hi:
        shown = str(v) if abs(v) < 10**18 else f"of {v.bit_length()} bits"
        raise StoreError(f"{name}: {key} {shown} outside {lo}..{hi} ({what})")
    return v


def is_store(path: str | Path) -> bool:
    """``True`` for a folder that holds a skelssl store manifest."""
    f = Path(path) / "store.json"
    if not f.is_file():
        return False
    try:
        return "format_version" in json.loads(f.read_text())
    except (OSError, ValueError):
        return False


_STORE_FOLDER = OwnedFolder(
    noun="store", is_ours=is_store, files=STORE_FILES,
    not_ours="is a folder of other files, not a skelssl store",
    already="already holds a store; pass --overwrite to replace it",
    foreign="holds files that are not part of a store",
)


def check_store_output(path: str | Path, overwrite: bool = False) -> None:
    """Refuse an output path that is not ours to replace; return quietly when writing there is safe.

    Safe: a path that does not exist, an empty folder, or (with ``overwrite``) a folder that is a
    skelssl store and holds nothing but store files. Anything else (a regular file, a user's folder,
    a store with other files in it) raises :class:`~skelssl.core.files.OutputError` naming the reason.
    """
    check_replaceable(path, overwrite, _STORE_FOLDER)


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version-1 .npy header padded to exactly ``_HEADER_BYTES``."""
    desc = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    text = repr(desc).encode("latin1")
    prefix = b"\x93NUMPY\x01\x00"
    pad = _HEADER_BYTES - len(prefix) - 2 - len(text) - 1
    if pad < 0:
        raise StoreError(f"shape {shape} does not fit the reserved .npy header")
    body = text + b" " * pad + b"\n"
    return prefix + struct.pack("<H", len(body)) + body


class StoreWriter:
    """Streams samples into a new store folder, published atomically by :meth:`close`.

    Args:
        path: the store folder to create. An existing store there is replaced only when the new one
            is complete.
        layout: skeleton layout of the frames.
        num_persons: ``M``, person slots per frame.
        channels: ``C``, coordinates per joint (3 for x, y, z).
        pipeline: name of the preprocessing pipeline that produced the frames.
        info: extra fields for ``store.json`` (source, format, dataset, class names, ...).
        overwrite: replace an existing store at ``path`` (never a folder that is not a store, nor a
            store holding other files: :func:`check_store_output`).

    Raises:
        OutputError: ``path`` is not ours to replace, or another process is writing it.

    Use as a context manager; an exception inside the block discards the temporary folder.
    """

    def _remove_stale_partials(self) -> None:
        """Delete temporary folders of earlier writers of this store that were killed (under the lock,
        no live writer of this store exists; a folder is removed only when it holds store files alone)."""
        # Names: ".NAME.PID.RANDOM.partial" (and ".NAME.RANDOM.partial" from skelssl <= 0.3).
        pattern = re.compile(rf"^\.{re.escape(self.path.name)}\.(\d+\.)?[a-z0-9_]+\.partial$")
        for p in self.path.parent.iterdir():
            if not pattern.match(p.name):
                continue
            try:
                if p.is_dir() and not p.is_symlink() and {c.name for c in p.iterdir()} <= STORE_FILES:
                    shutil.rmtree(p)
            except OSError:
                pass

    def __init__(
        self,
        path: str | Path,
        layout: Layout | str,
        num_persons: int,
        channels: int = 3,
        pipeline: str = "raw",
        info: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.layout = get_layout(layout)
        self.num_persons = int(num_persons)
        self.channels = int(channels)
        self.pipeline = pipeline
        self.info = dict(info or {})
        self.overwrite = bool(overwrite)
        check_store_output(self.path, self.overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One writer per store folder: a second prepare into the same --out refuses at once.
        self._lock = FolderLock(self.path.parent / f".{self.path.name}.lock", f"store {self.path}").acquire()
        try:
            self._remove_stale_partials()
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.{os.getpid()}.", suffix=".partial", dir=self.path.parent))
        except BaseException:
            self._lock.release()
            raise
        os.chmod(self._tmp, 0o755)
        self._frames_file = open(self._tmp / "frames.npy", "wb")
        self._frames_file.write(b"\0" * _HEADER_BYTES)
        self._hash = hashlib.blake2b(digest_size=16)
        self._digests: list[bytes] = []  # per sample, to find identical sequences
        self._offsets: list[int] = []
        self._lengths: list[int] = []
        self._names: list[str] = []
        self._name_set: set[str] = set()
        self._sources: list[str] = []
        self._meta: dict[str, list[int]] = {k: [] for k in META_FIELDS}
        self._persons: list[int] = []
        self._frame_labels: list[np.ndarray] | None = None
        self._total = 0
        self._closed = False
        self.skipped: list[dict[str, str]] = []

    # -- writing -----------------------------------------------------------------------------------
    def add(
        self,
        name: str,
        frames: np.ndarray,
        meta: dict[str, int] | None = None,
        source: str = "",
        frame_labels: np.ndarray | None = None,
    ) -> int:
        """Append one sample; returns its index.

        Args:
            name: unique sample name.
            frames: ``(T, M, V, C)`` array (converted to float32), ``T >= 1``.
            meta: integer metadata (``label``, ``subject``, ...; missing keys are ``-1``). Extra keys
                become extra columns; every sample must then provide them (missing -> ``-1``).
            source: the file it came from.
            frame_labels: ``(T,)`` per-frame class for untrimmed sequences.

        Raises:
            StoreError: the sample is refused and nothing of it is recorded: a name that is empty,
                not a string or already in the store; frames of the wrong shape, with NaN/inf or a
                coordinate beyond :data:`MAX_ABS_COORDINATE`; a label outside ``-1..MAX_CLASSES-1``
                or other metadata outside int32 (:data:`META_MIN`..:data:`META_MAX`), or not an
                integer; frame labels of the wrong shape or range.
        """
        if self._closed:
            raise StoreError("store writer already closed")
        # Everything is checked before anything is recorded: a refused sample leaves no trace.
        if not isinstance(name, str) or not name or "\x00" in name:
            raise StoreError(f"{name!r:.60}: a sample name must be a non-empty string without NUL characters")
        if name in self._name_set:
            raise StoreError(f"{name}: duplicate sample name (a sample of that name is already in the store)")
        frames = np.asarray(frames)
        expect = (self.num_persons, self.layout.num_joints, self.channels)
        if frames.ndim != 4 or frames.shape[1:] != expect or frames.shape[0] < 1:
            raise StoreError(f"{name}: frames of shape {frames.shape}, expected (T>=1, {', '.join(map(str, expect))})")
        problem = frames_problem(frames)  # NaN/inf, or a magnitude no sensor produces (checked before float32)
        if problem is not None:
            raise StoreError(f"{name}: {problem}")
        frames = np.ascontiguousarray(frames, dtype=np.float32)  # |v| <= 1e5: no overflow
        values = {}
        for key, value in dict(meta or {}).items():
            if not isinstance(key, str) or not key.isidentifier():
                raise StoreError(f"{name}: metadata column {key!r:.40} is not an identifier")
            if key == "label":
                values[key] = _int_value(name, key, value, -1, MAX_CLASSES - 1, "-1 unknown, else a class index")
            else:
                values[key] = _int_value(name, key, value, META_MIN, META_MAX, "a 32-bit integer")
        if frame_labels is not None:
            fl = np.asarray(frame_labels)
            if fl.shape != (frames.shape[0],):
                raise StoreError(f"{name}: frame_labels of shape {fl.shape}, expected ({frames.shape[0]},)")
            if fl.size and (fl.dtype.kind not in "iu" or int(fl.min()) < -1 or int(fl.max()) >= MAX_CLASSES):
                raise StoreError(f"{name}: frame_labels must be integers in -1..{MAX_CLASSES - 1}")
            frame_labels = fl.astype(np.int32)
        for key in values:
            if key not in self._meta:
                self._meta[key] = [-1] * len(self._names)
        for key, col in self._meta.items():
            col.append(values.get(key, -1))
        if frame_labels is not None and self._frame_labels is None:
            self._frame_labels = [np.full(n, -1, np.int32) for n in self._lengths]
        if self._frame_labels is not None:
            self._frame_labels.append(frame_labels if frame_labels is not None else np.full(frames.shape[0], -1, np.int32))
        buf = frames.tobytes()
        self._frames_file.write(buf)
        self._hash.update(buf)
        self._digests.append(hashlib.blake2b(buf, digest_size=16).digest())
        self._offsets.append(self._total)
        self._lengths.append(frames.shape[0])
        self._total += frames.shape[0]
        self._names.append(name)
        self._name_set.add(name)
        self._sources.append(source)
        self._persons.append(int((np.abs(frames).reshape(frames.shape[0], self.num_persons, -1).sum((0, 2)) > 0).sum()))
        return len(self._names) - 1

    def _duplicate_groups(self) -> list[list[str]]:
        """Names of samples whose frames are bit-identical, one list per group (first name first)."""
        groups: dict[bytes, list[str]] = {}
        for name, digest in zip(self._names, self._digests):
            groups.setdefault(digest, []).append(name)
        return [names for names in groups.values() if len(names) > 1]

    def skip(self, source: str, reason: str) -> None:
        """Record a source file that was skipped, with its reason (goes into store.json)."""
        self.skipped.append({"file": str(source), "reason": reason})

    def __len__(self) -> int:
        return len(self._names)

    @property
    def max_label(self) -> int:
        """The largest label of the samples added so far (-1 before the first, or when all are unknown)."""
        return max(self._meta["label"], default=-1)

    # -- publishing --------------------------------------------------------------------------------
    def close(
        self,
        subsets: dict[str, np.ndarray] | None = None,
        finalize: Callable[["Store"], dict[str, bytes]] | None = None,
    ) -> "Store":
        """Finish the arrays, write ``store.json`` and publish the folder atomically.

        Args:
            subsets: label-fraction subsets to save as ``subsets.npz``.
            finalize: ``store -> {file name: bytes}``, called on the finished but unpublished store
                (e.g. to compute subsets from its protocols, or write ``skipped.tsv``): its files
                are written, and covered by the checksum, before the folder is renamed into place,
                so a crash never leaves a store that looks whole without them.
        """
        if self._closed:
            raise StoreError("store writer already closed")
        if not self._names:  # (a duplicate name cannot get here: add() refuses it)
            self.abort()
            raise StoreError(f"{self.path}: no sample to write (every source file was skipped)")
        self._finish_frames()
        meta = self._write_arrays(subsets)
        manifest = self._manifest(meta["label"])
        atomic_write_text(self._tmp / "store.json", json.dumps(manifest, indent=1) + "\n")
        if finalize is not None:
            for name, data in finalize(Store(self._tmp)).items():
                if name not in STORE_FILES or name == "store.json":
                    raise StoreError(f"finalize may not write {name!r} into a store")
                atomic_write_bytes(self._tmp / name, data)
        # The checksum covers every file: arrays by the running hash, the others by their bytes.
        manifest["files"] = {p.name: _file_digest(p) for p in sorted(self._tmp.iterdir())
                             if p.name not in ("store.json", "frames.npy", "index.npy", "meta.npz", "frame_labels.npy")}
        atomic_write_text(self._tmp / "store.json", json.dumps(manifest, indent=1) + "\n")
        self._publish()
        self._closed = True
        return Store(self.path)

    def _finish_frames(self) -> None:
        """Write the real shape into frames.npy's reserved header and close it."""
        shape = (self._total, self.num_persons, self.layout.num_joints, self.channels)
        self._frames_file.seek(0)
        self._frames_file.write(_npy_header(shape, np.float32))
        self._frames_file.flush()
        os.fsync(self._frames_file.fileno())
        self._frames_file.close()

    def _write_arrays(self, subsets: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """Write index.npy, meta.npz, frame_labels.npy and subsets.npz; the first three go into the
        running checksum (after the frames), in that order. Returns the metadata columns."""
        index = np.stack([np.asarray(self._offsets, np.int64), np.asarray(self._lengths, np.int64)], 1)  # (N, 2)
        np.save(self._tmp / "index.npy", index)
        self._hash.update(index.tobytes())
        meta = {k: np.asarray(v, np.int64) for k, v in self._meta.items()}
        meta["persons"] = np.asarray(self._persons, np.int64)
        meta["length"] = index[:, 1].copy()
        meta["name"] = np.asarray(self._names, dtype=str)
        meta["source"] = np.asarray(self._sources, dtype=str)
        np.savez(self._tmp / "meta.npz", **meta)
        for key in sorted(meta):
            self._hash.update(key.encode() + np.ascontiguousarray(meta[key]).tobytes())
        if self._frame_labels is not None:
            fl = np.concatenate(self._frame_labels)  # (total_frames,)
            np.save(self._tmp / "frame_labels.npy", fl)
            self._hash.update(fl.tobytes())
        if subsets:
            np.savez(self._tmp / "subsets.npz", **{k: np.asarray(v, np.int64) for k, v in subsets.items()})
        return meta

    def _manifest(self, labels: np.ndarray) -> dict[str, Any]:
        """The ``store.json`` fields (but ``files``): counts, class names, skipped files, duplicates,
        checksum, then the writer's ``info``."""
        known = labels[labels >= 0]
        class_names = self.info.pop("class_names", None)
        num_classes = int(known.max()) + 1 if known.size else 0
        if class_names is not None:
            num_classes = max(num_classes, len(class_names))
        return {
            "format_version": FORMAT_VERSION,
            "layout": self.layout.name,
            # A layout that is not built in travels with the store, so every later command knows it.
            **({"layout_def": self.layout.to_dict()} if self.layout.name not in BUILTIN_LAYOUTS else {}),
            "pipeline": self.pipeline,
            "num_persons": self.num_persons,
            "channels": self.channels,
            "samples": len(self._names),
            "frames": int(self._total),
            "classes": num_classes,
            "class_names": list(class_names) if class_names is not None else [str(i) for i in range(num_classes)],
            "frame_labels": self._frame_labels is not None,
            "skipped": self.skipped,
            "duplicates": self._duplicate_groups(),
            "checksum": "blake2b:" + self._hash.hexdigest(),
            **self.info,
        }

    def _publish(self) -> None:
        """Move any old store aside, rename the new one in, then delete the old one (ours: checked again
        here, since the folder may have changed while we were writing)."""
        try:
            check_store_output(self.path, self.overwrite)
            old = None
            if self.path.exists() and any(self.path.iterdir()):
                old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
                os.replace(self.path, old)
            elif self.path.exists():
                self.path.rmdir()  # an empty folder the user made for us
            os.replace(self._tmp, self.path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            self.abort()
            raise
        finally:
            self._lock.release()

    def abort(self) -> None:
        """Discard everything written so far."""
        if not self._frames_file.closed:
            self._frames_file.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._closed = True
        self._lock.release()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self._closed:
            self.abort()


class Store:
    """Read access to a packed store; frames are memory-mapped, so opening costs almost no RAM.

    Args:
        path: the store folder.

    Attributes:
        layout: the skeleton :class:`~skelssl.core.layouts.Layout`.
        info: the parsed ``store.json``.
        meta: per-sample metadata columns (``name``, ``label``, ``subject``, ``view``, ...).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest = self.path / "store.json"
        if not self.path.is_dir():
            raise StoreError(f"{self.path}: no such store folder")
        if not manifest.is_file():
            raise StoreError(f"{self.path}: not a skelssl store (no store.json)")
        try:
            self.info: dict[str, Any] = json.loads(manifest.read_text())
        except json.JSONDecodeError as e:
            raise StoreError(f"{manifest}: unreadable manifest ({e})") from None
        if self.info.get("format_version") != FORMAT_VERSION:
            raise StoreError(f"{self.path}: store format {self.info.get('format_version')}, this skelssl reads {FORMAT_VERSION}")
        try:
            self._frames = np.load(self.path / "frames.npy", mmap_mode="r")
            self.index = np.load(self.path / "index.npy")
            with np.load(self.path / "meta.npz", allow_pickle=False) as z:
                self.meta: dict[str, np.ndarray] = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise StoreError(f"{self.path}: damaged store ({e})") from None
        fl = self.path / "frame_labels.npy"
        self._frame_labels = np.load(fl, mmap_mode="r") if fl.is_file() else None
        if len(self.index) != self.info["samples"] or self._frames.shape[0] != self.info["frames"]:
            raise StoreError(f"{self.path}: arrays do not match store.json counts")
        if self._frames.dtype != np.float32 or self._frames.ndim != 4:
            raise StoreError(f"{self.path}/frames.npy: expected 4-D float32 frames, got {self._frames.dtype} {self._frames.shape}")
        self._data_offset = int(self._frames.offset)
        self._frame_bytes = int(np.prod(self._frames.shape[1:])) * 4
        self._fd: int | None = None
        self._fd_pid: int | None = None
        self.layout = _store_layout(self.path, self.info)
        self._name_to_index: dict[str, int] | None = None
        self._channel_index: list[int] | None = None  # a channel view (select_channels) reads these only
        self.stream = "joint"  # a stream view (with_stream) derives this from the coordinates of each sample
        self._derive: Callable[[np.ndarray], np.ndarray] | None = None

    # -- basic facts -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.info["samples"])

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, samples={len(self)}, layout={self.layout.name}, pipeline={self.pipeline})"

    @property
    def pipeline(self) -> str:
        return self.info["pipeline"]

    @property
    def num_persons(self) -> int:
        return int(self.info["num_persons"])

    @property
    def channels(self) -> int:
        return int(self.info["channels"])

    @property
    def channel_names(self) -> list[str]:
        """What each channel holds: ``x, y, z`` (default), ``x, y`` (2D), ``x, y, score``, ``x, y, z, score``.
        A ``score`` (pose-estimator confidence) is a channel, never a coordinate."""
        names = self.info.get("channel_names")
        if names is not None:
            return list(names)
        return ["x", "y", "z"][: self.channels] if self.channels <= 3 else [f"c{i}" for i in range(self.channels)]

    def select_channels(self, names: Sequence[str]) -> "Store":
        """This store read through only the named channels, in that order (``["x", "y"]`` of an
        ``x, y, score`` store: the score dropped for an encoder that ignores it). The store on disk
        is unchanged; the view reports the selected ``channels`` and ``channel_names``.

        Raises:
            StoreError: a name that is not a channel of this store.
        """
        names = [str(n) for n in names]
        own = self.channel_names
        missing = [n for n in names if n not in own]
        if missing or not names:
            raise StoreError(f"{self.path}: no channel {missing[0] if missing else '(none given)'!r}; "
                             f"its channels are {', '.join(own)}")
        if names == own:
            return self
        view = copy.copy(self)
        view.info = {**self.info, "channels": len(names), "channel_names": names}
        base = self._channel_index or list(range(len(own)))
        view._channel_index = [base[own.index(n)] for n in names]
        return view

    def with_stream(self, name: str, derive: Callable[[np.ndarray], np.ndarray]) -> "Store":
        """This store read as the input stream ``name``: ``derive`` maps the ``(T, M, V, C)`` frames of
        each sample, as it is read, to the same shape (bone or motion vectors of the joints; see
        :func:`skelssl.engine.eval_input.stream_view`). Every dataset, baseline and cache built on the
        view sees the stream; the store on disk is unchanged.

        Raises:
            StoreError: the store is already a view of another stream.
        """
        if self.stream != "joint":
            raise StoreError(f"{self.path}: already read as the {self.stream} stream")
        view = copy.copy(self)
        view.stream, view._derive = name, derive
        return view

    def without_score(self) -> "Store":
        """This store without its ``score`` channel (itself when it has none)."""
        return self.select_channels([n for n in self.channel_names if n != "score"])

    @property
    def coords(self) -> int:
        """How many leading channels are coordinates (``x, y`` or ``x, y, z``); the channels after them
        (a ``score``) are not moved by augmentations. Unnamed channels all count as coordinates."""
        names = self.channel_names
        k = 0
        while k < len(names) and names[k] in ("x", "y", "z"):
            k += 1
        return k or len(names)

    @property
    def num_classes(self) -> int:
        return int(self.info["classes"])

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def dataset(self) -> str:
        return str(self.info.get("dataset", "unknown"))

    @property
    def labels(self) -> np.ndarray:
        return self.meta["label"]

    @property
    def lengths(self) -> np.ndarray:
        return self.index[:, 1]

    @property
    def names(self) -> np.ndarray:
        return self.meta["name"]

    @property
    def has_frame_labels(self) -> bool:
        return self._frame_labels is not None

    @property
    def duplicate_groups(self) -> list[np.ndarray] | None:
        """Indices of samples with bit-identical frames, one array per group; ``None`` for a store
        written before duplicates were recorded (``store.json`` without ``duplicates``)."""
        groups = self.info.get("duplicates")
        if groups is None:
            return None
        return [np.asarray([self.index_of(n) for n in names], dtype=np.int64) for names in groups]

    def index_of(self, name: str) -> int:
        """Sample index for a sample name (or a decimal index given as a string)."""
        if self._name_to_index is None:
            self._name_to_index = {str(n): i for i, n in enumerate(self.names)}
        if name in self._name_to_index:
            return self._name_to_index[name]
        if name.isdigit() and int(name) < len(self):
            return int(name)
        raise KeyError(f"{self.path}: no sample named {name!r}")

    # -- sample access -----------------------------------------------------------------------------
    @property
    def frames_array(self) -> np.ndarray:
        """All frames, ``(total_frames, M, V, C)``, as a read-only memory map (for bulk access).

        Raises:
            StoreError: on a stream view (a stream is derived per sample).
        """
        if self.stream != "joint":
            raise StoreError(f"{self.path}: the {self.stream} stream is derived sample by sample; "
                             "this task reads frames in bulk and takes joint coordinates")
        idx = self._channel_index
        if idx is None:
            return self._frames
        if idx == list(range(len(idx))):  # leading channels (x, y of x, y, score): still a memory map
            return self._frames[..., : len(idx)]
        return self._frames[..., idx]

    def _descriptor(self) -> int:
        # One descriptor per process (DataLoader workers fork or spawn): pread needs no shared offset.
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self.path / "frames.npy", os.O_RDONLY)
            self._fd_pid = os.getpid()
        return self._fd

    def frames(self, i: int) -> np.ndarray:
        """``(T, M, V, C)`` float32 copy of sample ``i``.

        Read with one ``pread`` straight into a new array rather than sliced out of the memory map:
        pages touched through a map stay in the process's resident set, so reading a large store at
        random would grow it without bound; read this way, only the sample itself is resident.
        """
        off, length = (int(v) for v in self.index[i])
        out = np.empty((length, *self._frames.shape[1:]), dtype=np.float32)
        nbytes = out.nbytes
        got = os.preadv(self._descriptor(), [memoryview(out).cast("B")], self._data_offset + off * self._frame_bytes)
        if got != nbytes:
            raise StoreError(f"{self.path}/frames.npy: short read for sample {i} ({got} of {nbytes} bytes)")
        if self._channel_index is not None:
            out = np.ascontiguousarray(out[..., self._channel_index])
        if self._derive is not None:
            out = self._derive(out)
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fd"], state["_fd_pid"] = None, None
        return state

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None and getattr(self, "_fd_pid", None) == os.getpid():
            try:
                os.close(fd)
            except OSError:
                pass

    def sample(self, i: int) -> np.ndarray:
        """``(C, T, V, M)`` float32 copy of sample ``i``."""
        return np.ascontiguousarray(to_ctvm(np.asarray(self.frames(i))), dtype=np.float32)

    def frame_labels(self, i: int) -> np.ndarray:
        """``(T,)`` per-frame class of sample ``i`` (-1 background); needs an untrimmed store."""
        if self._frame_labels is None:
            raise StoreError(f"{self.path}: this store has no per-frame labels")
        off, length = self.index[i]
        return np.asarray(self._frame_labels[off : off + length])

    # -- protocols and subsets ---------------------------------------------------------------------
    def saved_subsets(self) -> dict[str, np.ndarray]:
        f = self.path / "subsets.npz"
        if not f.is_file():
            return {}
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    # -- integrity ---------------------------------------------------------------------------------
    def verify(self) -> bool:
        """Recompute the checksum of all arrays; ``True`` when it matches ``store.json``."""
        h = hashlib.blake2b(digest_size=16)
        frames = self._frames
        step = 1 << 16
        for start in range(0, frames.shape[0], step):
            h.update(np.ascontiguousarray(frames[start : start + step]).tobytes())
        h.update(self.index.tobytes())
        meta = dict(self.meta)
        for key in sorted(meta):
            h.update(key.encode() + np.ascontiguousarray(meta[key]).tobytes())
        if self._frame_labels is not None:
            h.update(np.asarray(self._frame_labels).tobytes())
        if "blake2b:" + h.hexdigest() != self.info.get("checksum"):
            return False
        # Stores written since the checksum covers every file list the others with their digests.
        for name, digest in self.info.get("files", {}).items():
            f = self.path / name
            if not f.is_file() or _file_digest(f) != digest:
                return False
        return True


def channels_for_encoder(store: Store, names: Sequence[str] | None) -> Store:
    """``store`` read through the channels an encoder records (``names``), where the store has them
    all (an encoder trained without the score, on an ``x, y, score`` store); otherwise the store as it
    is, and the encoder's channel check says what does not fit."""
    if not names or list(names) == store.channel_names or not set(names) <= set(store.channel_names):
        return store
    return store.select_channels(names)


def _store_layout(path: Path, info: dict[str, Any]) -> Layout:
    """The store's layout: built in, or defined in ``store.json`` (``layout_def``) and registered by name."""
    definition = info.get("layout_def")
    if definition is None:
        try:
            return get_layout(info["layout"])
        except KeyError as e:
            raise StoreError(f"{path}: {e.args[0]}") from None
    try:
        layout = layout_from_dict(definition, path / "store.json")
        return register_layout(layout)
    except ValueError as e:  # SkeletonFormatError is one
        raise StoreError(f"{path}: store.json layout: {e}") from None


def write_store(
    path: str | Path,
    samples: Iterable[tuple[str, np.ndarray, dict[str, int]]],
    layout: Layout | str,
    num_persons: int,
    pipeline: str = "raw",
    info: dict[str, Any] | None = None,
    subsets: dict[str, np.ndarray] | None = None,
    channels: int = 3,
    overwrite: bool = False,
) -> Store:
    """Convenience: write ``(name, frames (T, M, V, C), meta)`` triples into a new store."""
    with StoreWriter(path, layout, num_persons, channels=channels, pipeline=pipeline, info=info, overwrite=overwrite) as w:
        for name, frames, meta in samples:
            w.add(name, frames, meta)
        return w.close(subsets=subsets)
