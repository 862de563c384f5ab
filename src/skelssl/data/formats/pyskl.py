"""The PYSKL / MMAction2 pickle annotation format: read it safely, and write it.

A PYSKL annotation file (``ntu60_3danno.pkl``, ``ntu120_hrnet.pkl``, ...) is one pickled dict::

    {"split": {"xsub_train": [frame_dir, ...], "xsub_val": [...], ...},
     "annotations": [{"frame_dir": str, "label": int (0-based), "total_frames": int,
                      "keypoint": (M, T, V, C) float array,
                      "keypoint_score": (M, T, V) float array (optional, 2D pose-estimator output)},
                     ...]}

PYSKL also accepts a bare list of annotations (no split); so do we.

Reading never calls plain ``pickle.load``: a pickle can name any importable callable and have it
called on load (``os.system`` via ``__reduce__``). :class:`SafeUnpickler` resolves only the handful of
numpy reconstruction helpers these files need and refuses everything else *before* it is called.

Each annotation is one unit, so a broken annotation is skipped by ``prepare`` while the others are
kept. Split membership becomes integer columns ``split_<name>`` (1 in the split, 0 not); a pair
``<p>_train`` / ``<p>_val`` (or ``_test``) is the store's own protocol ``<p>`` (``--protocol xsub``).

Channels come from the data: ``keypoint`` gives (x, y) or (x, y, z) and ``keypoint_score``, where
present, is kept as a named last channel ``score`` (``-o with_score=false`` drops it). 2D keypoints
are pose-estimator pixels: they are normalised by the annotation's ``img_shape`` ``(h, w)`` to
[-1, 1] as PYSKL's ``PreNormalize2D`` does, and y is turned to point up (image rows grow downwards;
skelssl's coordinates, like the Kinect's, have y up). ``-o normalize=false`` keeps the pixels (y is
still turned up).

``skelssl export pyskl`` writes a store so that ``skelssl prepare pyskl`` gives it back exactly, with
no flags. It adds keys that PYSKL ignores:

- top level ``skelssl``: ``{"format": 1, "dataset", "pipeline", "layout", "layout_def" (a user
  layout's definition), "num_persons", "channel_names", "class_names"}``. ``prepare`` takes the
  dataset, layout, person slots and class names (so the class count) from it, and records the
  pipeline without running it again (the frames are already processed; a ``--pipeline`` other than
  ``raw`` or that one is refused).
- per annotation: ``subject``/``view``/``setup``/``repetition`` (PYSKL-visible), ``skelssl_meta``
  (the store's other integer columns, e.g. PKU-MMD's ``pku_xsub_train``), and ``frame_labels``
  ``(T,)`` for untrimmed stores.

2D stores are written as ``keypoint (M, T, V, 2)`` with y pointing down as image rows do, plus
``keypoint_score (M, T, V)`` where the store has a score. A sample read from pixels with an
``img_shape`` (recorded as the store's ``img_height`` / ``img_width`` columns) is written back in
pixels with its ``img_shape``, as a pose estimator wrote it and as PYSKL's ``PreNormalize2D`` reads
it (the float32 pixels that normalise back to the store's values bit for bit; empty trailing person
slots of the store are left out); any other 2D sample keeps its normalised coordinates and gets no
``img_shape`` (so nothing is normalised again on reading). A protocol's splits are named as PYSKL
names them: ``ntu60-xsub`` gives ``xsub_train`` / ``xsub_val``.
"""

from __future__ import annotations

import functools
import importlib
import io
import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from skelssl.core.conventions import SkeletonFormatError
from skelssl.core.layouts import BUILTIN_LAYOUTS, LAYOUTS, Layout, get_layout, layout_from_dict, register_layout
from skelssl.data.formats import Discovery, Reader
from skelssl.data.formats._files import MAX_PICKLE_BYTES, check_regular, read_bytes
from skelssl.data.protocols import PROTOCOLS, available_protocols, sequence_split
from skelssl.data.protocols import split as protocol_split
from skelssl.data.sample import RawSample
from skelssl.data.store import MAX_CLASSES, META_MAX, META_MIN, Store, atomic_write_bytes

__all__ = [
    "READER",
    "NAME",
    "LAYOUT",
    "DATASET",
    "SafeUnpickler",
    "safe_loads",
    "load_annotations",
    "discover",
    "read",
    "layout_for",
    "dataset_for",
    "resolve_layout",
    "ntu_name_meta",
    "split_column",
    "write_pyskl",
    "write_pyskl_from_store",
    "read_class_names",
    "recorded_store",
    "RECORD_KEY",
]

RECORD_KEY = "skelssl"  # top-level key of what `export pyskl` records about the store (see the module doc)
# Store columns that are not written into skelssl_meta: the name, computed ones, and the label.
_NOT_EXPORTED = frozenset({"name", "source", "persons", "length", "label"})
# The image size of a 2D annotation whose pixels were normalised (its img_shape): export writes pixels back.
IMG_COLUMNS = ("img_height", "img_width")

NAME = "pyskl"
LAYOUT = None  # from the ``layout=`` option, else inferred from V (resolve_layout)
DATASET = "pyskl"  # the ``dataset=`` option overrides it (e.g. ``ntu`` so named protocols apply)

# V -> layout when the user names none; anything else is ambiguous (17 could be COCO or anything).
_LAYOUT_BY_JOINTS = {25: "ntu25", 20: "kinect20", 18: "openpose18"}
_NTU_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
_META_KEYS = ("subject", "view", "setup", "repetition")  # optional skelssl extension of an annotation


# -- safe unpickling -------------------------------------------------------------------------------
def _numpy_module(suffix: str):
    """``numpy._core.<suffix>`` on numpy 2, ``numpy.core.<suffix>`` on numpy 1."""
    try:
        return importlib.import_module(f"numpy._core.{suffix}")
    except ImportError:  # numpy < 1.26 has no numpy._core
        return importlib.import_module(f"numpy.core.{suffix}")


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to what pickle's bytes encoding uses (no other codec is looked up)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode(..., {encoding!r})")
    return text.encode("latin1", errors)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import collections

    multiarray = _numpy_module("multiarray")
    numeric = _numpy_module("numeric")
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Protocol <= 2 pickles bytes (array buffers, scalar payloads) as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): _latin1_encode,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
    }
    # numpy 1.x writes ``numpy.core.*``, numpy 2 writes ``numpy._core.*``; both name the same helpers.
    for pkg in ("numpy.core", "numpy._core"):
        allowed[(f"{pkg}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{pkg}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{pkg}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol-5 arrays
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild dicts, lists, strings, numbers and numpy arrays, and nothing else.

    ``find_class`` is the only way a pickle reaches code; it answers from a fixed table and raises
    :class:`SkeletonFormatError` for any other global, so a crafted file fails before anything runs.

    Args:
        file: a binary file object.
        path: the file name used in error messages.
    """

    _ALLOWED: dict[tuple[str, str], Any] | None = None

    def __init__(self, file, path: str | Path = "<pickle>") -> None:
        super().__init__(file)
        self.path = str(path)
        if SafeUnpickler._ALLOWED is None:
            SafeUnpickler._ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        obj = self._ALLOWED.get((module, name))
        if obj is None:
            problem = f"pickle refers to {module}.{name}, which a skeleton annotation file never needs (refused)"
            raise SkeletonFormatError(self.path, problem)
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise SkeletonFormatError(self.path, "pickle uses persistent ids (refused)")


def safe_loads(data: bytes, path: str | Path = "<pickle>") -> Any:
    """Unpickle ``data`` with :class:`SafeUnpickler`; any failure is a :class:`SkeletonFormatError`."""
    if not data:
        raise SkeletonFormatError(path, "empty file")
    try:
        # BytesIO: a forged length field reads short and fails, it cannot block on a pipe.
        return SafeUnpickler(io.BytesIO(data), path).load()
    except SkeletonFormatError:
        raise
    except Exception as e:  # truncated, garbage, bad opcode, MemoryError from a forged length, ...
        raise SkeletonFormatError(path, f"not a readable pickle ({type(e).__name__}: {e})") from None


# -- loading and validation ------------------------------------------------------------------------
def split_column(split_name: str) -> str:
    """The metadata column for a PYSKL split name: ``"xsub_train"`` -> ``"split_xsub_train"``."""
    ident = re.sub(r"\W+", "_", str(split_name)).strip("_").lower()
    return f"split_{ident}" if ident else ""


class _Annotations:
    """A validated top level: the annotation list and each sample's split columns."""

    def __init__(self, obj: Any, path: str) -> None:
        self.path = path
        if isinstance(obj, list):  # PYSKL's split-less form
            obj = {"split": {}, "annotations": obj}
        if not isinstance(obj, dict):
            kind = type(obj).__name__
            raise SkeletonFormatError(path, f"top level is a {kind}, expected a dict with 'split' and 'annotations'")
        if "annotations" not in obj:
            raise SkeletonFormatError(path, f"no 'annotations' key (keys: {sorted(map(str, obj))[:8]})")
        self.annotations = obj["annotations"]
        if not isinstance(self.annotations, list):
            raise SkeletonFormatError(path, f"'annotations' is a {type(self.annotations).__name__}, expected a list")
        split = obj.get("split", {}) or {}
        if not isinstance(split, dict):
            kind = type(split).__name__
            raise SkeletonFormatError(path, f"'split' is a {kind}, expected a dict of name -> list of frame_dir")
        self.columns: list[str] = []
        # (where, reason) for split entries left out: a split that is no list, or a member that is
        # no frame_dir string. One bad entry does not void the file (prepare reports them as skipped).
        self.problems: list[tuple[str, str]] = []
        members: dict[str, set[str]] = {}
        for split_name, names in split.items():
            column = split_column(split_name)
            if not column:
                raise SkeletonFormatError(path, f"split name {str(split_name)[:60]!r} has no letters or digits")
            if column in members:
                raise SkeletonFormatError(path, f"split names collide as column {column!r}")
            if not isinstance(names, (list, tuple)):
                self.problems.append((f"{path}#split[{str(split_name)[:60]!r}]",
                                      f"split is a {type(names).__name__}, not a list of frame_dir strings (ignored)"))
                continue
            bad = [k for k, n in enumerate(names) if not isinstance(n, str)]
            if bad:
                k = bad[0]
                self.problems.append((f"{path}#split[{str(split_name)[:60]!r}]",
                                      f"{len(bad)} member(s) are not frame_dir strings, e.g. item {k}: "
                                      f"{type(names[k]).__name__} (those are ignored)"))
            self.columns.append(column)
            members[column] = {n for n in names if isinstance(n, str)}
        self._members = members
        record = obj.get(RECORD_KEY, {})
        if not isinstance(record, dict):
            raise SkeletonFormatError(path, f"{RECORD_KEY!r} is a {type(record).__name__}, expected the dict "
                                            "`skelssl export pyskl` writes")
        self.record: dict[str, Any] = record
        self._layout: Layout | None = None

    def recorded_layout(self) -> Layout | None:
        """The layout ``export pyskl`` recorded (a user layout built from its definition), else None."""
        if self._layout is None and self.record.get("layout") is not None:
            definition = self.record.get("layout_def")
            try:
                self._layout = (layout_from_dict(definition, f"{self.path}#{RECORD_KEY}") if definition is not None
                                else get_layout(self.record["layout"]))
            except (KeyError, ValueError) as e:
                raise SkeletonFormatError(self.path, f"{RECORD_KEY} layout: {e.args[0] if e.args else e}") from None
        return self._layout

    def split_extra(self, frame_dir: str) -> dict[str, int]:
        return {c: int(frame_dir in self._members[c]) for c in self.columns}


@functools.lru_cache(maxsize=1)
def _load_cached(path: str, mtime_ns: int, size: int) -> _Annotations:
    # Keyed on mtime and size too, so a rewritten file is reloaded; maxsize=1 keeps one file in RAM.
    # read_bytes: a regular file only (a FIFO or a symlink to /dev/zero is refused), bounded.
    return _Annotations(safe_loads(read_bytes(path, "annotation file", MAX_PICKLE_BYTES), path), path)


def load_annotations(path: str | Path) -> _Annotations:
    """Load and validate the top level of a PYSKL file (once per process; cached).

    Raises:
        SkeletonFormatError: not a readable regular file (missing, a FIFO, a device, a dangling
            symlink, over :data:`~skelssl.data.formats._files.MAX_PICKLE_BYTES`), not a safe
            pickle, or a top level that is not PYSKL's.
    """
    path = Path(path)
    st = check_regular(path, "annotation file", MAX_PICKLE_BYTES)
    return _load_cached(str(path), st.st_mtime_ns, st.st_size)


def _source_file(source: str | Path) -> Path:
    source = Path(source)
    if source.is_dir():
        try:
            found = sorted(source.glob("*.pkl"))
        except OSError as e:
            raise SkeletonFormatError(source, f"cannot list the folder: {e.strerror or e}") from None
        if len(found) != 1:
            raise SkeletonFormatError(source, f"expected exactly one .pkl file in the folder, found {len(found)}")
        return found[0]
    if not os.path.lexists(source):
        raise SkeletonFormatError(source, "no such file")
    return source  # not a regular file: load_annotations says why


# -- shared with the arrays reader -----------------------------------------------------------------
def resolve_layout(num_joints: int, layout: str | Layout | None = None, path: str | Path = "") -> Layout:
    """The layout named by the user, checked against ``V``; else the one ``V`` implies (25, 20).

    Raises:
        SkeletonFormatError: ``V`` does not match the named layout, or no layout is named and ``V``
            is not 25 or 20.
    """
    if layout is not None:
        try:
            out = get_layout(layout)
        except KeyError as e:
            raise SkeletonFormatError(path, str(e.args[0])) from None
        if out.num_joints != num_joints:
            raise SkeletonFormatError(path, f"{num_joints} joints per body, but layout {out.name} has {out.num_joints}")
        return out
    if num_joints not in _LAYOUT_BY_JOINTS:
        known = ", ".join(sorted(LAYOUTS))
        raise SkeletonFormatError(path, f"{num_joints} joints per body: cannot infer the layout; name one with --layout ({known})")
    return get_layout(_LAYOUT_BY_JOINTS[num_joints])


def ntu_name_meta(name: str) -> dict[str, int] | None:
    """``setup``/``view``/``subject``/``repetition`` from an NTU name ``SsssCcccPpppRrrrAaaa``, else None."""
    m = _NTU_NAME.search(name)
    if m is None:
        return None
    s, c, p, r, _ = (int(g) for g in m.groups())
    return {"setup": s, "view": c, "subject": p, "repetition": r}


# Reader options beyond the keyword arguments of discover/read (``prepare`` checks the user's against them).
OPTIONS = ("layout", "dataset", "class_names")

# V -> layout for 2D keypoints only: every PYSKL 2D release (HRNet, RTMPose) is COCO-17.
_LAYOUT_BY_JOINTS_2D = {17: "coco17"}


def dataset_for(**options: Any) -> str:
    """The store ``dataset`` key for this reader: the ``dataset=`` option, else ``"pyskl"``."""
    return str(options.get("dataset") or DATASET)


# -- the reader contract ---------------------------------------------------------------------------
def discover(source: str | Path, **options: Any) -> Discovery:
    """One unit ``(pkl_path, annotation_index)`` per annotation; later duplicates of a frame_dir are excluded.

    Args:
        source: a ``.pkl`` file, or a folder holding exactly one.

    Returns:
        The units, and ``("<file>#<index>", reason)`` for excluded annotations.
    """
    path = _source_file(source)
    ann = load_annotations(path)
    units, excluded, seen = [], [], set()
    for i, a in enumerate(ann.annotations):
        frame_dir = a.get("frame_dir") if isinstance(a, dict) else None
        if isinstance(frame_dir, str):  # anything else (a list, a number) is reported by read()
            if frame_dir in seen:
                excluded.append((f"{path}#{i}", f"duplicate frame_dir {frame_dir[:80]!r}"))
                continue
            seen.add(frame_dir)
        units.append((str(path), i))
    if not units:
        raise SkeletonFormatError(path, "no annotation in the file")
    return Discovery(units, excluded, skipped=list(ann.problems))


def layout_for(source: str | Path, **options: Any) -> str:
    """The layout ``prepare`` should give the store: ``layout=``, else the one implied by the joint
    count V that most annotations have (so one odd annotation is skipped by ``read``, not fatal)."""
    path = _source_file(source)
    ann = load_annotations(path)
    counts: dict[int, int] = {}
    dims: dict[int, int] = {}
    for a in ann.annotations:
        kp = a.get("keypoint") if isinstance(a, dict) else None
        if isinstance(kp, np.ndarray) and kp.ndim == 4:
            counts[kp.shape[2]] = counts.get(kp.shape[2], 0) + 1
            dims[kp.shape[3]] = dims.get(kp.shape[3], 0) + 1
    if options.get("layout") is None and ann.recorded_layout() is not None:
        recorded = ann.recorded_layout()
        if recorded.name not in BUILTIN_LAYOUTS:
            register_layout(recorded)  # a user layout: known by name to the rest of prepare
        return recorded.name
    if options.get("layout") is not None:
        name = _named_layout(options["layout"], path)
        if counts and get_layout(name).num_joints not in counts:  # not one annotation would fit: say so once
            v = max(counts, key=counts.get)
            raise SkeletonFormatError(path, f"{v} joints per body, but layout {name} has {get_layout(name).num_joints}")
        return name
    if not counts:
        raise SkeletonFormatError(path, "no annotation with a (M, T, V, C) keypoint array")
    by_joints = {**_LAYOUT_BY_JOINTS, **(_LAYOUT_BY_JOINTS_2D if max(dims, key=dims.get) == 2 else {})}
    known = [v for v in counts if v in by_joints]
    v = max(known or counts, key=lambda k: counts[k])  # a V that implies a layout wins over one that does not
    if v in by_joints:
        return by_joints[v]
    return resolve_layout(v, None, path).name


def channels_for(source: str | Path, with_score: bool | None = None, **options: Any) -> list[str]:
    """The store's channel names: ``x, y[, z][, score]`` from the C and scores most annotations have."""
    path = _source_file(source)
    ann = load_annotations(path)
    seen: dict[tuple[int, bool], int] = {}
    for a in ann.annotations:
        kp = a.get("keypoint") if isinstance(a, dict) else None
        if isinstance(kp, np.ndarray) and kp.ndim == 4:
            key = (kp.shape[3], isinstance(a.get("keypoint_score"), np.ndarray))
            seen[key] = seen.get(key, 0) + 1
    if not seen:
        raise SkeletonFormatError(path, "no annotation with a (M, T, V, C) keypoint array")
    c, scored = max(seen, key=seen.get)
    if c not in (2, 3):
        raise SkeletonFormatError(path, f"keypoint has {c} values per joint; expected 2 (x, y) or 3 (x, y, z)")
    return ["x", "y", "z"][:c] + (["score"] if scored and with_score is not False else [])


def _named_layout(layout: str | Layout, path: str | Path = "") -> str:
    """The name of a layout the user named; a one-line error for an unknown one."""
    try:
        return get_layout(layout).name
    except KeyError as e:
        raise SkeletonFormatError(path, str(e.args[0])) from None


def read(unit: tuple[str, int], with_score: bool | None = None, normalize: bool = True, **options: Any) -> list[RawSample]:
    """The sample of one annotation.

    Args:
        unit: ``(pkl_path, annotation_index)`` from :func:`discover`.
        with_score: append ``keypoint_score`` as a last channel; default: where the file has scores.
        normalize: 2D keypoints: divide pixels by the annotation's ``img_shape`` to [-1, 1] (PYSKL's
            ``PreNormalize2D``); y is turned to point up either way.
        **options: ``layout=`` (checked against V, else inferred from V); others are ignored.

    Returns:
        One :class:`RawSample`; ``bodies`` is ``(T, M, V, C)`` (PYSKL's ``(M, T, V, C)`` transposed).
    """
    path, i = unit
    ann = load_annotations(path)
    if not 0 <= i < len(ann.annotations):
        raise SkeletonFormatError(f"{path}#{i}", f"annotation {i} does not exist ({len(ann.annotations)} in the file)")
    a = ann.annotations[i]

    def bad(problem: str) -> SkeletonFormatError:
        what = a.get("frame_dir") if isinstance(a, dict) else None
        # Named "<file>#<index>", as prepare reports the annotation's other problems.
        named = f" ({_short(what)})" if isinstance(what, str) else ""
        return SkeletonFormatError(f"{path}#{i}", f"annotation {i}{named}: {problem}")

    frame_dir, label, kp = _checked_annotation(a, ann, options.get("layout"), bad)
    bodies, image = _bodies(a, kp, with_score, normalize, bad)
    meta, extra = _columns(a, ann, frame_dir, image, bad)
    return [
        RawSample(
            name=frame_dir,
            bodies=bodies,
            label=int(label),
            source=f"{path}#{i}",
            frame_labels=_frame_labels(a, kp.shape[1], bad),
            extra=extra,
            **meta,
        )
    ]


def _checked_annotation(a: Any, ann: _Annotations, layout: str | Layout | None,
                        bad: Callable[[str], SkeletonFormatError]) -> tuple[str, int, np.ndarray]:
    """``(frame_dir, label, keypoint)`` of an annotation whose keys, types and shapes fit the format
    (and its joint count the layout named or recorded); else ``bad(problem)`` is raised."""
    if not isinstance(a, dict):
        raise bad(f"is a {type(a).__name__}, expected a dict")
    for key in ("frame_dir", "label", "keypoint"):
        if key not in a:
            raise bad(f"no {key!r} key")
    frame_dir, label, kp = a["frame_dir"], a["label"], a["keypoint"]
    if not isinstance(frame_dir, str) or not frame_dir:
        raise bad(f"frame_dir is a {type(frame_dir).__name__}, not a non-empty string")
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise bad(f"label {_short(label)} is not an integer")
    if not -1 <= int(label) < MAX_CLASSES:
        raise bad(f"label {_short(label)} outside -1..{MAX_CLASSES - 1} (no dataset has that many classes)")
    if not isinstance(kp, np.ndarray) or kp.ndim != 4:
        raise bad(f"keypoint must be a (M, T, V, C) array, got {getattr(kp, 'shape', type(kp).__name__)}")
    if kp.dtype.kind not in "fiu":
        raise bad(f"keypoint has dtype {kp.dtype}, expected numbers")
    m, t, v, c = kp.shape
    if m < 1 or t < 1 or c < 1:
        raise bad(f"keypoint of shape {kp.shape} is empty")
    total = a.get("total_frames", t)
    if not isinstance(total, (int, np.integer)) or int(total) != t:
        raise bad(f"total_frames {_short(total)} but keypoint has {t} frames")
    named = layout if layout is not None else ann.recorded_layout()
    if named is not None or v in _LAYOUT_BY_JOINTS or not (c == 2 and v in _LAYOUT_BY_JOINTS_2D):
        try:
            resolve_layout(v, named, ann.path)  # only its problem is used: bad() names the annotation
        except SkeletonFormatError as e:
            raise bad(e.problem) from None
    if c not in (2, 3):
        raise bad(f"keypoint has {c} values per joint; expected 2 (x, y) or 3 (x, y, z)")
    return frame_dir, label, kp


def _bodies(a: dict[str, Any], kp: np.ndarray, with_score: bool | None, normalize: bool,
            bad: Callable[[str], SkeletonFormatError]) -> tuple[np.ndarray, dict[str, int]]:
    """``(T, M, V, C)`` float32 bodies from a checked ``(M, T, V, C)`` keypoint: 2D pixels normalised
    and y turned up, the score appended where asked; and the image size columns of a 2D annotation."""
    m, t, v, c = kp.shape
    bodies = np.ascontiguousarray(kp.transpose(1, 0, 2, 3), dtype=np.float32)  # (T, M, V, C)
    image: dict[str, int] = {}
    if c == 2:
        if normalize and "img_shape" in a:
            shape = a["img_shape"]
            if (not isinstance(shape, (tuple, list, np.ndarray)) or len(shape) != 2
                    or not all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d > 0 for d in shape)):
                raise bad(f"img_shape {_short(shape)} is not (height, width) in pixels")
            h, w = float(shape[0]), float(shape[1])
            image = {IMG_COLUMNS[0]: int(shape[0]), IMG_COLUMNS[1]: int(shape[1])}  # export writes pixels back
            bodies = (bodies - np.array([w / 2, h / 2], np.float32)) / np.array([w / 2, h / 2], np.float32)
        bodies = bodies * np.array([1.0, -1.0], np.float32)  # image y points down; ours points up
    score = a.get("keypoint_score")
    if with_score or (with_score is None and score is not None):
        if not isinstance(score, np.ndarray) or score.shape != (m, t, v):
            raise bad(f"keypoint_score must be ({m}, {t}, {v}), got {getattr(score, 'shape', None)}")
        score = np.ascontiguousarray(score.transpose(1, 0, 2), dtype=np.float32)[..., None]  # (T, M, V, 1)
        bodies = np.concatenate([bodies, score], axis=-1)  # (T, M, V, C+1)
    if not np.isfinite(bodies).all():
        raise bad("keypoint holds NaN or infinite values")
    return bodies, image


def _columns(a: dict[str, Any], ann: _Annotations, frame_dir: str, image: dict[str, int],
             bad: Callable[[str], SkeletonFormatError]) -> tuple[dict[str, int], dict[str, int]]:
    """The sample's metadata (an NTU name's, overridden by the annotation's own keys) and its extra
    columns: the file's split membership, the image size, then the annotation's ``skelssl_meta``."""
    meta = ntu_name_meta(frame_dir) or {}
    for key in _META_KEYS:  # written by write_pyskl_from_store; win over a name's meta
        value = a.get(key)
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            if not META_MIN <= int(value) <= META_MAX:
                raise bad(f"{key} {_short(value)} does not fit a 32-bit integer")
            meta[key] = int(value)
    more = a.get("skelssl_meta", {})
    if not isinstance(more, dict):
        raise bad(f"skelssl_meta is a {type(more).__name__}, expected a dict of integer columns")
    extra = {**ann.split_extra(frame_dir), **image}
    for key, value in more.items():
        if (not isinstance(key, str) or not key.isidentifier() or isinstance(value, (bool, np.bool_))
                or not isinstance(value, (int, np.integer)) or not META_MIN <= int(value) <= META_MAX):
            raise bad(f"skelssl_meta {_short(key)}: {_short(value)} is not a named 32-bit integer column")
        extra[key] = int(value)
    return meta, extra


def _frame_labels(a: dict[str, Any], t: int, bad: Callable[[str], SkeletonFormatError]) -> np.ndarray | None:
    """An untrimmed annotation's ``(T,)`` per-frame classes as int32; ``None`` where it has none."""
    frame_labels = a.get("frame_labels")
    if frame_labels is None:
        return None
    if not isinstance(frame_labels, np.ndarray) or frame_labels.shape != (t,) or frame_labels.dtype.kind not in "iu":
        raise bad(f"frame_labels must be ({t},) integers, got {getattr(frame_labels, 'shape', type(frame_labels).__name__)}")
    return frame_labels.astype(np.int32)


def read_class_names(path: str | Path) -> list[str]:
    """A label map: one class name per line, line ``k`` naming label ``k`` (blank lines at the end
    are ignored; PYSKL's ``label_map/*.txt`` files are this)."""
    try:
        text = read_bytes(Path(path), "class names file", 16 << 20).decode("utf-8")
    except UnicodeDecodeError:
        raise SkeletonFormatError(path, "class names file is not UTF-8 text") from None
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names or any(not n for n in names):
        raise SkeletonFormatError(path, "class names file needs one non-empty name per line (line k names label k)")
    return names


def recorded_store(source: str | Path, class_names: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """What ``export pyskl`` recorded of its store (``dataset``, ``pipeline``, ``num_persons``,
    ``class_names``); ``{}`` for a pickle from elsewhere. ``prepare`` restores these. A
    ``class_names`` file (``-o class_names=FILE``, one name per line) wins over recorded names."""
    if class_names is not None:
        out = recorded_store(source, **options)
        out["class_names"] = read_class_names(class_names)
        return out
    ann = load_annotations(_source_file(source))
    record, out = ann.record, {}
    path = ann.path
    if "dataset" in record:
        if not isinstance(record["dataset"], str) or not record["dataset"]:
            raise SkeletonFormatError(path, f"{RECORD_KEY} dataset {_short(record['dataset'])} is not a name")
        out["dataset"] = record["dataset"]
    if "pipeline" in record:
        if not isinstance(record["pipeline"], str):
            raise SkeletonFormatError(path, f"{RECORD_KEY} pipeline {_short(record['pipeline'])} is not a name")
        out["pipeline"] = record["pipeline"]
    if "num_persons" in record:
        m = record["num_persons"]
        if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or not 1 <= int(m) <= 64:
            raise SkeletonFormatError(path, f"{RECORD_KEY} num_persons {_short(m)} is not a person count")
        out["num_persons"] = int(m)
    if "class_names" in record:
        names = record["class_names"]
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names) or len(names) > MAX_CLASSES:
            raise SkeletonFormatError(path, f"{RECORD_KEY} class_names must be a list of strings")
        out["class_names"] = list(names)
    return out


def _short(value: Any) -> str:
    """``repr`` of a value from a file, cut to one short line (a label may be a 10 MB string)."""
    if isinstance(value, int) and abs(value) >= 10**30:  # repr of an int over 4300 digits raises
        return f"{type(value).__name__} of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- writing ---------------------------------------------------------------------------------------
def _annotation(name: str, frames: np.ndarray, label: int, meta: dict[str, int] | None = None) -> dict[str, Any]:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] < 1:
        raise ValueError(f"{name}: frames must be (T>=1, M, V, C), got shape {frames.shape}")
    if not np.isfinite(frames).all():
        raise ValueError(f"{name}: frames hold NaN or infinite values")
    keypoint = np.ascontiguousarray(frames.transpose(1, 0, 2, 3), dtype=np.float32)  # (M, T, V, C)
    ann = {"frame_dir": str(name), "label": int(label), "keypoint": keypoint, "total_frames": int(frames.shape[0])}
    for key, value in (meta or {}).items():
        if int(value) >= 0:
            ann[key] = int(value)
    return ann


def _dump(path: str | Path, annotations: list[dict[str, Any]], split: dict[str, list[str]] | None,
          record: dict[str, Any] | None = None) -> None:
    names = [a["frame_dir"] for a in annotations]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate sample names")
    known = set(names)
    split = {str(k): [str(n) for n in v] for k, v in (split or {}).items()}
    for key, members in split.items():
        missing = [n for n in members if n not in known]
        if missing:
            raise ValueError(f"{path}: split {key!r} names samples that are not written, e.g. {missing[:3]}")
    # Protocol 4 (Python >= 3.4, the default PYSKL/mmcv use); arrays pickle through _reconstruct.
    top: dict[str, Any] = {"split": split, "annotations": annotations}
    if record:
        top[RECORD_KEY] = record
    atomic_write_bytes(path, pickle.dumps(top, protocol=4))


def write_pyskl(
    path: str | Path,
    samples: Iterable[tuple[str, np.ndarray, int]],
    split: dict[str, list[str]] | None = None,
) -> None:
    """Write samples as a PYSKL annotation file (atomically).

    Args:
        path: the ``.pkl`` to write.
        samples: ``(name, frames, label)``; ``frames`` is ``(T, M, V, C)`` (the store layout) and is
            written as PYSKL's ``(M, T, V, C)`` float32 ``keypoint``.
        split: split name -> sample names (e.g. ``{"xsub_train": [...], "xsub_val": [...]}``).

    Raises:
        ValueError: bad frames, duplicate names, or a split naming an unwritten sample.
    """
    _dump(path, [_annotation(n, f, lab) for n, f, lab in samples], split)


def _split_names(protocols: list[str], sizes: dict[str, int] | None = None) -> dict[str, str]:
    # PYSKL names NTU splits "xsub_train", "xset_val", ...: the protocol without its dataset prefix.
    # Where two protocols share a short name (ntu60-xsub and ntu120-xsub both apply to NTU-60 data),
    # the one covering the most samples (``sizes``; the first listed on a tie) keeps it and the other
    # keeps its whole name.
    sizes = sizes or {}
    short = {p: p.split("-", 1)[-1] for p in protocols}
    owner: dict[str, str] = {}
    for p in protocols:
        s = short[p]
        if s not in owner or sizes.get(p, 0) > sizes.get(owner[s], 0):
            owner[s] = p
    return {p: (s if owner[s] == p else p) for p, s in short.items()}


def to_pixels(normalised: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels ``(..., 2)`` float32 that :func:`read` normalises back to exactly ``normalised`` (x, y in
    [-1, 1], y pointing down): the nearest float32 pixel whose float32 normalisation, done as the reader
    does it, gives each value bit for bit (searched a few ulps around ``x * w/2 + w/2``)."""
    half = np.array([width / 2, height / 2], np.float32)
    target = np.asarray(normalised, np.float32)
    pixels = (target.astype(np.float64) * half + half).astype(np.float32)
    for _ in range(8):
        back = (pixels - half) / half
        wrong = back != target
        if not wrong.any():
            break
        towards = np.where(back < target, np.float32(np.inf), np.float32(-np.inf))
        pixels = np.where(wrong, np.nextafter(pixels, towards), pixels)
    return pixels


def write_pyskl_from_store(store: Store, path: str | Path, protocols: list[str] | None = None) -> dict[str, list[str]]:
    """Write every sample of a store as a PYSKL file that ``prepare pyskl`` reads back exactly.

    Args:
        store: the packed store.
        path: the ``.pkl`` to write.
        protocols: protocol names (default: every protocol available on the store). Protocol
            ``ntu60-xsub`` gives splits ``xsub_train`` and ``xsub_val`` (PYSKL names the test split
            ``val``); the full protocol name is kept where two protocols share a short name.

    Returns:
        The split dict written.

    Raises:
        ValueError: channels without a PYSKL form (anything but ``x, y[, z][, score]``).

    Besides PYSKL's keys, each annotation carries the sample's ``subject``/``view``/``setup``/
    ``repetition``, its other integer columns (``skelssl_meta``) and, for an untrimmed store, its
    ``frame_labels``; the top-level ``skelssl`` dict records the dataset, pipeline, layout, person
    slots, channels and class names (the module doc lists them).
    """
    channels, coords = store.channel_names, store.coords
    if channels[:coords] not in (["x", "y"], ["x", "y", "z"]) or channels[coords:] not in ([], ["score"]):
        raise ValueError(f"{store.path}: channels ({', '.join(channels)}) have no PYSKL form "
                         "(keypoint x, y or x, y, z, and keypoint_score)")
    untrimmed = store.has_frame_labels  # whole sequences: the protocols split them as detection does
    if protocols is None:
        protocols = ([p for p, spec in PROTOCOLS.items() if f"{spec.dataset}_untrimmed" == store.dataset] if untrimmed
                     else available_protocols(store))
    names = [str(n) for n in store.names]
    splits = {p: (sequence_split if untrimmed else protocol_split)(store, p) for p in protocols}
    split: dict[str, list[str]] = {}
    for protocol, key in _split_names(list(protocols), {p: len(tr) + len(te) for p, (tr, te) in splits.items()}).items():
        train, test = splits[protocol]
        split[f"{key}_train"] = [names[i] for i in train]
        split[f"{key}_val"] = [names[i] for i in test]
    images = coords == 2 and all(k in store.meta for k in IMG_COLUMNS)
    columns = [k for k in sorted(store.meta) if k not in _NOT_EXPORTED and k not in _META_KEYS
               and store.meta[k].dtype.kind in "iu" and not (images and k in IMG_COLUMNS)]
    # Image rows grow downwards: 2D y is written pointing down, as the reader expects (it turns it up).
    flip_y = np.array([1.0, -1.0], np.float32) if coords == 2 else None
    annotations = []
    for i in range(len(store)):
        frames = np.asarray(store.frames(i))  # (T, M, V, C)
        keypoint = frames[..., :coords] * flip_y if flip_y is not None else frames[..., :coords]
        h, w = (int(store.meta[k][i]) for k in IMG_COLUMNS) if images else (0, 0)
        if h > 0 and w > 0:
            # Pixels with the image size, as a pose estimator wrote them (PYSKL's PreNormalize2D reads
            # img_shape); the store's empty trailing person slots are not persons in the picture.
            present = np.flatnonzero(np.abs(frames).reshape(frames.shape[0], frames.shape[1], -1).max(axis=(0, 2)) > 0)
            frames = frames[:, : max(int(present[-1]) + 1 if len(present) else 1, 1)]
            keypoint = to_pixels(keypoint[:, : frames.shape[1]], h, w)
        meta = {k: int(store.meta[k][i]) for k in _META_KEYS}
        ann = _annotation(names[i], keypoint, int(store.labels[i]), meta)
        if h > 0 and w > 0:
            ann["img_shape"] = (h, w)
        if coords < len(channels):
            ann["keypoint_score"] = np.ascontiguousarray(frames[..., coords].transpose(1, 0, 2), dtype=np.float32)  # (M, T, V)
        if columns:
            ann["skelssl_meta"] = {k: int(store.meta[k][i]) for k in columns}
        if store.has_frame_labels:
            ann["frame_labels"] = np.asarray(store.frame_labels(i), dtype=np.int32)
        annotations.append(ann)
    record: dict[str, Any] = {"format": 1, "dataset": store.dataset, "pipeline": store.pipeline,
                              "layout": store.layout.name, "num_persons": store.num_persons,
                              "channel_names": channels, "class_names": store.class_names}
    if store.layout.name not in BUILTIN_LAYOUTS:
        record["layout_def"] = store.layout.to_dict()
    _dump(path, annotations, split, record)
    return split


class PYSKLReader(Reader):
    """PYSKL / MMAction2 pickles, 2D or 3D; a file ``skelssl export`` wrote restores its store."""

    NAME, LAYOUT, DATASET, OPTIONS = NAME, LAYOUT, DATASET, OPTIONS
    discover = staticmethod(discover)
    read = staticmethod(read)
    layout_for = staticmethod(layout_for)
    dataset_for = staticmethod(dataset_for)
    channels_for = staticmethod(channels_for)
    recorded_store = staticmethod(recorded_store)


READER = PYSKLReader()
