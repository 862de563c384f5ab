"""Generic numpy arrays with labels: the ST-GCN/CTR-GCN ``data.npy`` folders and the CTR-GCN/MAMP ``.npz``.

Two sources are understood:

1. A folder with ``data.npy`` and a label file::

       data.npy     (N, C, T, V, M) (``axes="NCTVM"``, the ST-GCN/CTR-GCN convention, default),
                    (N, T, V, C) (``axes="NTVC"``, one person) or (N, T, M, V, C) (``axes="NTMVC"``)
       labels.npy   (N,) int, or (N, K) one-hot        } one of the two; 0-based classes
       labels.txt   one int per line                   }
       names.txt    optional, one unique sample name per line
       lengths.npy  optional, (N,) real frames per sample; otherwise trailing all-zero frames are cut

2. One ``.npz`` with the keys CTR-GCN's ``seq_transformation.py`` (and MAMP, which reuses it) saves:
   ``x_train, y_train, x_test, y_test``, ``x`` being ``(N, T, M*V*C)`` (150 = 2 persons x 25
   joints x xyz, in that order, zero-padded to 300 frames) and ``y`` one-hot or int. Each sample gets
   the column ``split_train`` (1 train, 0 test).

Arrays are opened without pickle and memory-mapped (also inside an uncompressed ``.npz``, which is
what ``np.savez`` writes), so a 7 GB ``NTU60_XSub.npz`` is read one sample at a time.
"""

from __future__ import annotations

import functools
import os
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.formats import Discovery, Reader
from skelssl.data.formats._files import check_regular, file_problem, read_bytes
from skelssl.data.formats.pyskl import ntu_name_meta, resolve_layout
from skelssl.data.sample import RawSample
from skelssl.data.store import MAX_CLASSES

__all__ = ["READER", "NAME", "LAYOUT", "DATASET", "AXES", "discover", "read", "layout_for", "dataset_for", "write_ctrgcn_npz"]

NAME = "arrays"
LAYOUT = None  # from the ``layout=`` option, else inferred from V (25 -> ntu25, 20 -> kinect20)
DATASET = "arrays"  # the ``dataset=`` option overrides it

# Per-sample axes of data.npy -> transpose to (T, M, V, C); "NTVC" has no person axis (M = 1).
AXES = {"NCTVM": (1, 3, 2, 0), "NTMVC": (0, 1, 2, 3), "NTVC": None}


# Reader options beyond the keyword arguments of discover/read (``prepare`` checks the user's against them).
OPTIONS = ("axes", "persons", "channels", "layout", "dataset")


def dataset_for(**options: Any) -> str:
    """The store ``dataset`` key: the ``dataset=`` option, else ``"arrays"``."""
    return str(options.get("dataset") or DATASET)


# -- opening arrays without pickle -----------------------------------------------------------------
def _load_npy(path: Path) -> np.ndarray:
    check_regular(path, limit=None)  # memory-mapped, never read whole; a FIFO or device is refused unopened
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r")
    except Exception as e:  # bad magic, truncated header or data, object dtype
        raise SkeletonFormatError(path, f"not a readable .npy array ({type(e).__name__}: {e})") from None


def _npz_member(path: Path, zf: zipfile.ZipFile, key: str) -> np.ndarray:
    """Array ``key`` of an ``.npz``: memory-mapped when stored uncompressed, else read into memory."""
    try:
        info = zf.getinfo(f"{key}.npy")
    except KeyError:
        has = sorted(n.removesuffix(".npy") for n in zf.namelist())
        raise SkeletonFormatError(path, f"no {key!r} array (has: {has})") from None
    try:
        if info.compress_type != zipfile.ZIP_STORED:  # np.savez_compressed: no way around reading it
            with zf.open(info) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        with open(path, "rb") as f:
            # The member's bytes start after its local header (30 bytes + name + extra field).
            f.seek(info.header_offset)
            local = f.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError("bad local zip header")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(f)
            offset = f.tell()
        if dtype.hasobject:
            raise ValueError("object arrays need pickle (refused)")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offset + nbytes > path.stat().st_size or nbytes > info.file_size:
            raise ValueError(f"truncated: {shape} {dtype} does not fit in the member")
        if nbytes == 0:
            return np.zeros(shape, dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    except SkeletonFormatError:
        raise
    except Exception as e:
        raise SkeletonFormatError(path, f"array {key!r} unreadable ({type(e).__name__}: {e})") from None


_LABEL_RANGE = f"-1..{MAX_CLASSES - 1}"
_INT_RE = re.compile(r"^[+-]?[0-9]+$")


def _labels_from(y: np.ndarray, path: Path | str, what: str) -> tuple[np.ndarray, dict[int, str]]:
    """``(N,)`` int64 class indices from int labels or one-hot rows, and ``{sample: problem}`` for
    labels outside ``-1..MAX_CLASSES-1`` (those samples alone are skipped; their entry here is -1)."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise SkeletonFormatError(path, f"{what} has dtype {y.dtype}, expected numbers")
    if y.ndim == 2:  # one-hot, as CTR-GCN saves y_train / y_test
        if not (np.isin(y, (0, 1)).all() and (y.sum(1) == 1).all()):
            raise SkeletonFormatError(path, f"{what} is 2-D but not one-hot (each row one 1, the rest 0)")
        y = y.argmax(1)
    elif y.ndim != 1:
        raise SkeletonFormatError(path, f"{what} has shape {y.shape}, expected (N,) or one-hot (N, K)")
    elif not np.isfinite(y).all() or (y != np.round(y)).any():
        raise SkeletonFormatError(path, f"{what} holds values that are not integers")
    out_of_range = (y < -1) | (y >= MAX_CLASSES)  # compared in y's own dtype: no overflow
    bad = {int(i): f"{what}: label {y[i]} outside {_LABEL_RANGE}" for i in np.flatnonzero(out_of_range)}
    labels = np.where(out_of_range, -1, y).astype(np.int64)
    return labels, bad


def _read_label_txt(path: Path) -> tuple[np.ndarray, dict[int, str]]:
    """Labels of ``labels.txt`` (one integer per non-blank line) and ``{sample: problem}`` for
    integers outside ``-1..MAX_CLASSES-1``.

    Raises:
        SkeletonFormatError: the file cannot be read, or a line is not an integer at all.
    """
    labels, bad = [], {}
    text = read_bytes(path, "label file").decode("utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        word = line.strip()
        if not word:
            continue
        if not _INT_RE.match(word):
            raise SkeletonFormatError(path, f"line {lineno}: {word[:40]!r} is not an integer label")
        digits = word.lstrip("+-").lstrip("0")
        value = int(word) if len(digits) <= 18 else None  # int() of >4300 digits raises: never try it
        if value is None or not -1 <= value < MAX_CLASSES:
            shown = word if len(word) <= 24 else f"{word[:12]}...({len(digits)} digits)"
            bad[len(labels)] = f"labels.txt line {lineno}: label {shown} outside {_LABEL_RANGE}"
            value = -1
        labels.append(value)
    return np.asarray(labels, np.int64), bad


# -- the opened source -----------------------------------------------------------------------------
@dataclass
class _Part:
    """One array of samples with its labels: the folder's data.npy, or one half of an .npz."""

    x: np.ndarray  # (N, ...) per ``axes``
    labels: np.ndarray  # (N,)
    names: list[str]
    lengths: np.ndarray | None  # (N,) or None: trim trailing zero frames
    extra: dict[str, int]
    bad: dict[int, str] = field(default_factory=dict)  # sample -> why it is skipped (a label out of range)


@dataclass
class _Source:
    path: Path
    axes: str
    persons: int
    channels: int
    parts: dict[str, _Part]

    def sample(self, part: str, i: int) -> np.ndarray:
        """``(T, M, V, C)`` float32 copy of sample ``i`` of ``part``."""
        x = np.asarray(self.parts[part].x[i], dtype=np.float32)
        if x.ndim == 2:  # flat (T, M*V*C), person-major then joint then xyz (CTR-GCN's 150 columns)
            t, d = x.shape
            return x.reshape(t, self.persons, d // (self.persons * self.channels), self.channels).copy()
        order = AXES[self.axes]
        return np.ascontiguousarray(x[:, None] if order is None else x.transpose(order))

    def num_joints(self) -> int:
        x = next(iter(self.parts.values())).x
        if x.ndim == 3:
            return x.shape[2] // (self.persons * self.channels)
        return x.shape[1 + self.axes[1:].index("V")]


def _check_x(x: np.ndarray, path: Path, what: str, axes: str, persons: int, channels: int) -> None:
    if x.dtype.kind not in "iuf":
        raise SkeletonFormatError(path, f"{what} has dtype {x.dtype}, expected numbers")
    if x.ndim == 3:  # (N, T, M*V*C)
        if x.shape[2] == 0 or x.shape[2] % (persons * channels):
            problem = f"{what} of shape {x.shape}: last axis is not persons={persons} x V x channels={channels}"
            raise SkeletonFormatError(path, problem)
    elif x.ndim != len(axes):
        raise SkeletonFormatError(path, f"{what} of shape {x.shape} does not match axes={axes!r} ({len(axes)} axes)")
    if x.shape[0] == 0 or x.shape[1 if x.ndim == 3 else 1 + axes[1:].index("T")] == 0:
        raise SkeletonFormatError(path, f"{what} of shape {x.shape} holds no frame")


def _open_folder(path: Path, axes: str, persons: int, channels: int) -> _Source:
    # A file of the layout that exists but cannot be read (a dangling symlink, a FIFO, a symlink
    # loop) fails the source with its reason: guessing names or labels without it would be wrong.
    # Other files in the folder are never looked at.
    data = path / "data.npy"
    if not os.path.lexists(data):
        raise SkeletonFormatError(path, "no data.npy in the folder")
    x = _load_npy(data)
    _check_x(x, data, "data.npy", axes, persons, channels)
    n = x.shape[0]
    if os.path.lexists(path / "labels.npy"):
        labels, bad = _labels_from(_load_npy(path / "labels.npy"), path / "labels.npy", "labels.npy")
    elif os.path.lexists(path / "labels.txt"):
        labels, bad = _read_label_txt(path / "labels.txt")
    else:
        raise SkeletonFormatError(path, "no label file (labels.txt or labels.npy)")
    if len(labels) != n:
        raise SkeletonFormatError(path, f"{len(labels)} labels for {n} samples in data.npy")
    names = [f"sample_{i:06d}" for i in range(n)]
    if os.path.lexists(path / "names.txt"):
        text = read_bytes(path / "names.txt", "names file").decode("utf-8", errors="replace")
        names = [s.strip() for s in text.splitlines() if s.strip()]
        if len(names) != n:
            raise SkeletonFormatError(path / "names.txt", f"{len(names)} names for {n} samples in data.npy")
        if len(set(names)) != n:
            raise SkeletonFormatError(path / "names.txt", "sample names are not unique")
    lengths = None
    if os.path.lexists(path / "lengths.npy"):
        lengths = np.asarray(_load_npy(path / "lengths.npy"))
        t = x.shape[1 if x.ndim == 3 else 1 + axes[1:].index("T")]
        if lengths.shape != (n,) or lengths.dtype.kind not in "iu" or (lengths < 1).any() or (lengths > t).any():
            problem = f"expected ({n},) integers in 1..{t}, got {lengths.shape} {lengths.dtype}"
            raise SkeletonFormatError(path / "lengths.npy", problem)
    return _Source(path, axes, persons, channels, {"": _Part(x, labels, names, lengths, {}, bad)})


def _open_npz(path: Path, axes: str, persons: int, channels: int) -> _Source:
    check_regular(path, limit=None)  # members are memory-mapped; a FIFO or device is refused unopened
    try:
        zf = zipfile.ZipFile(path)
    except Exception as e:
        raise SkeletonFormatError(path, f"not a readable .npz ({type(e).__name__}: {e})") from None
    parts = {}
    with zf:
        for part in ("train", "test"):
            x = _npz_member(path, zf, f"x_{part}")
            _check_x(x, path, f"x_{part}", axes, persons, channels)
            y = _npz_member(path, zf, f"y_{part}")
            labels, bad = _labels_from(y, path, f"y_{part}")
            if len(labels) != x.shape[0]:
                raise SkeletonFormatError(path, f"{len(labels)} labels in y_{part} for {x.shape[0]} samples in x_{part}")
            width = max(6, len(str(x.shape[0])))
            names = [f"{part}_{i:0{width}d}" for i in range(x.shape[0])]
            parts[part] = _Part(x, labels, names, None, {"split_train": int(part == "train")}, bad)
    shapes = {p.x.shape[1:] for p in parts.values()}
    if len(shapes) != 1:
        raise SkeletonFormatError(path, f"x_train and x_test differ in per-sample shape: {sorted(shapes)}")
    return _Source(path, axes, persons, channels, parts)


@functools.lru_cache(maxsize=2)
def _open_cached(path: str, mtime_ns: int, axes: str, persons: int, channels: int) -> _Source:
    p = Path(path)
    return _open_folder(p, axes, persons, channels) if p.is_dir() else _open_npz(p, axes, persons, channels)


# The files of a folder source; the cache key is their newest modification time.
_FOLDER_FILES = ("data.npy", "labels.npy", "labels.txt", "names.txt", "lengths.npy")


def _open(source: str | Path, options: dict[str, Any]) -> _Source:
    source = Path(source)
    if not source.exists():
        if os.path.lexists(source):
            raise SkeletonFormatError(source, file_problem(source) or "no such file or folder")
        raise SkeletonFormatError(source, "no such file or folder")
    if not source.is_dir() and source.suffix != ".npz":
        raise SkeletonFormatError(source, "expected a folder with data.npy, or an .npz file")
    axes = str(options.get("axes") or "NCTVM").upper()
    if axes not in AXES:
        raise SkeletonFormatError(source, f"unknown axes={axes!r}; known: {', '.join(AXES)}")
    persons, channels = int(options.get("persons") or 2), int(options.get("channels") or 3)
    # The cache key carries modification times, so a rewritten source is opened afresh. Only the
    # source's own files count (a dangling symlink or a FIFO elsewhere in the folder is no concern);
    # one that cannot be stat'ed is reported when it is opened.
    files = [source / f for f in _FOLDER_FILES] if source.is_dir() else [source]
    stamps = []
    for f in files:
        try:
            stamps.append(f.stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return _open_cached(str(source), max(stamps), axes, persons, channels)


# -- the reader contract ---------------------------------------------------------------------------
def discover(source: str | Path, **options: Any) -> Discovery:
    """One unit ``(source, part, index)`` per sample (``part`` is ``""``, ``"train"`` or ``"test"``).

    Args:
        source: a folder with ``data.npy`` and labels, or an ``.npz``.
        **options: ``axes=`` (``NCTVM``, ``NTVC``, ``NTMVC``), ``persons=`` and ``channels=`` (how a
            flat ``(N, T, M*V*C)`` array splits, default 2 and 3), ``layout=``.
    """
    src = _open(source, options)
    resolve_layout(src.num_joints(), options.get("layout"), src.path)
    return Discovery([(str(src.path), part, i) for part, p in src.parts.items() for i in range(len(p.labels))])


def layout_for(source: str | Path, **options: Any) -> str:
    """The layout ``prepare`` should give the store: ``layout=`` or the one V implies."""
    src = _open(source, options)
    return resolve_layout(src.num_joints(), options.get("layout"), src.path).name


def read(unit: tuple[str, str, int], **options: Any) -> list[RawSample]:
    """The sample of one unit, its trailing padding cut.

    Returns:
        One :class:`RawSample` with ``bodies`` ``(T, M, V, C)`` float32.
    """
    path, part, i = unit
    src = _open(path, options)
    if part not in src.parts or not 0 <= i < len(src.parts[part].labels):
        raise SkeletonFormatError(path, f"no sample {part or 'data'}[{i}]")
    p = src.parts[part]
    where = f"{part or 'data'}[{i}]"
    if i in p.bad:
        raise SkeletonFormatError(f"{path}#{where}", f"{where}: {p.bad[i]}")
    bodies = src.sample(part, i)  # (T, M, V, C)
    if not np.isfinite(bodies).all():
        raise SkeletonFormatError(f"{path}#{where}", f"{where} holds NaN or infinite values")
    if p.lengths is not None:
        bodies = bodies[: int(p.lengths[i])]
    else:
        # CTR-GCN pads every sequence with zero frames to 300; the real ones end at the last non-zero frame.
        live = np.flatnonzero(np.abs(bodies).reshape(bodies.shape[0], -1).max(1) > 0)
        if live.size == 0:
            raise SkeletonFormatError(f"{path}#{where}", f"{where} is all zeros")
        bodies = bodies[: live[-1] + 1]
    name = p.names[i]
    return [
        RawSample(
            name=name,
            bodies=np.ascontiguousarray(bodies),
            label=int(p.labels[i]),
            source=f"{path}#{where}",
            extra=dict(p.extra),
            **(ntu_name_meta(name) or {}),
        )
    ]


def write_ctrgcn_npz(store: Any, path: str | Path, protocol: str, frames: int = 300) -> dict[str, int]:
    """Write a store's protocol as CTR-GCN's ``.npz`` (``NTU60_CS.npz``; MAMP reads the same).

    ``x_train`` / ``x_test`` are ``(N, T, M*V*C)`` float32 (persons outer, then joints, then channels),
    zero-padded to ``max(frames, longest sample)``; ``y_train`` / ``y_test`` are one-hot ``(N, K)`` over
    the store's ``K`` classes. Sample names are not part of the format (``prepare arrays`` names them
    ``train_00000``, ...); the whole file is built in memory, then written atomically.

    Args:
        store: a :class:`~skelssl.data.store.Store`.
        path: the ``.npz`` to write.
        protocol: whose train and test splits to write.
        frames: the padded length (CTR-GCN: 300).

    Returns:
        ``{"train": N_train, "test": N_test}``.

    Raises:
        KeyError, ValueError: an unknown protocol or one not for this store; an unlabelled sample.
    """
    import io

    from skelssl.data.protocols import split as protocol_split
    from skelssl.data.store import atomic_write_bytes

    train, test = protocol_split(store, protocol)
    t = max(int(frames), int(store.lengths.max()) if len(store) else 0)
    width = store.num_persons * store.layout.num_joints * store.channels
    arrays: dict[str, np.ndarray] = {}
    for part, idx in (("train", train), ("test", test)):
        x = np.zeros((len(idx), t, width), np.float32)  # (N, T, M*V*C)
        y = np.zeros((len(idx), store.num_classes), np.float32)  # one-hot, as seq_transformation.py saves
        for row, i in enumerate(idx):
            label = int(store.labels[i])
            if label < 0:
                raise ValueError(f"{store.path}: sample {store.names[i]} has no label; CTR-GCN's .npz needs one")
            sample = store.frames(int(i))  # (T, M, V, C)
            x[row, : len(sample)] = sample.reshape(len(sample), -1)
            y[row, label] = 1.0
        arrays[f"x_{part}"], arrays[f"y_{part}"] = x, y
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return {"train": len(train), "test": len(test)}


class ArraysReader(Reader):
    """Generic ``.npy`` / ``.npz`` arrays: the layout and dataset key come from options or V."""

    NAME, LAYOUT, DATASET, OPTIONS = NAME, LAYOUT, DATASET, OPTIONS
    discover = staticmethod(discover)
    read = staticmethod(read)
    layout_for = staticmethod(layout_for)
    dataset_for = staticmethod(dataset_for)


READER = ArraysReader()
