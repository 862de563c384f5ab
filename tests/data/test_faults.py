"""Fault suite: one bad item (a sample, a file, a label line) never stops a ``prepare``.

For each probe class, small damaged inputs are written next to good ones in every format the class
applies to, and ``prepare`` must:

- finish (no exception escapes; a source that is wholly unusable fails with one clear
  ``SkeletonFormatError`` naming the file instead),
- keep every good sample, and no bad one,
- report every bad item in ``report.skipped`` with a one-line reason (and in ``skipped.tsv``),
- leave the source unchanged (every entry's type, link target, mode and bytes compared).

The probes are built by :func:`build_case` from a list of damage kinds per format (``None`` = a good
item), so ``benchmarks/fault_probe.py`` runs the same classes with randomised damage. All inputs are
synthetic; nothing here needs ``../shared/data`` except the last test, which skips without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from skelssl.core.conventions import SkeletonFormatError, StoreError
from skelssl.data.formats import ntu, nucla, pyskl
from skelssl.data.prepare import prepare
from skelssl.data.store import MAX_ABS_COORDINATE, Store

pytestmark = pytest.mark.timeout(120)  # a FIFO that blocks a reader must fail the test, not hang it

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
T = 12  # frames of every synthetic sequence

# -- the damage kinds ----------------------------------------------------------------------------------
# Entries that are not regular files, put where a data file is expected.
SPECIAL = ("fifo", "devzero", "dangling", "loop", "folder", "chmod000")
COORDS = (1e30, -1e30, 3.0e38, 1e6, -2.5e5)  # finite, beyond MAX_ABS_COORDINATE: no sensor produces them


@dataclass
class Bad:
    """A damaged item that must be reported: a skipped entry with this path (and, if given, a reason
    starting with ``reason``) must appear in the report."""

    path: str
    kind: str
    reason: str = ""


@dataclass
class Case:
    fmt: str
    root: Path  # holds src/ (the source, snapshotted) and out/ (the store)
    source: Path
    options: dict[str, Any] = field(default_factory=dict)
    good: set[str] = field(default_factory=set)  # sample names the store must hold
    bad: list[Bad] = field(default_factory=list)
    fails: str | None = None  # a wholly unusable source: the file the one-line error must name
    kinds: list[str] = field(default_factory=list)

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def out(self) -> Path:
        return self.root / "out"


def _pose(rng: np.random.Generator, t: int, v: int) -> np.ndarray:
    """``(t, v, 3)`` plausible camera-space metres: within a metre of a point 3 m in front."""
    return (rng.uniform(-0.8, 0.8, size=(t, v, 3)) + np.array([0.0, 0.0, 3.0])).round(4)


def _special(path: Path, kind: str, content: bytes) -> None:
    """Put an entry of ``kind`` at ``path`` instead of a regular file with ``content``."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "devzero":
        os.symlink("/dev/zero", path)
    elif kind == "dangling":
        os.symlink(f"gone-{path.name}", path)
    elif kind == "loop":
        os.symlink(path.name, path)  # points to itself: ELOOP
    elif kind == "folder":
        path.mkdir()
        (path / "inside.txt").write_text("not a data file\n")
    elif kind == "chmod000":
        path.write_bytes(content)
        os.chmod(path, 0)
    else:
        raise ValueError(kind)


def _text_damage(content: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """Damage a text file's content (``truncated``, ``garbage``, ``empty``, ``binary``)."""
    if kind == "truncated":  # cut inside the first line: a later cut can leave a shorter, valid recording
        first = content.find(b"\n")
        return content[: int(rng.integers(1, max(2, min(len(content) // 2, first if first > 0 else len(content)))))]
    if kind == "garbage":
        return rng.integers(0, 256, int(rng.integers(1, 400))).astype(np.uint8).tobytes()
    if kind == "empty":
        return b""
    if kind == "binary":
        cut = int(rng.integers(0, len(content)))
        return content[:cut] + b"\xff\xfe\x00\x13" + content[cut:]
    raise ValueError(kind)


def _coord(rng: np.random.Generator) -> float:
    return float(COORDS[int(rng.integers(len(COORDS)))])


# -- per-format kits: write items in order, each good (None) or damaged (a kind) -----------------------
def _place(case: Case, path: Path, name: str, kind: str | None, content: bytes, rng: np.random.Generator,
           damages: dict[str, Any]) -> None:
    """Write one item: ``content`` as is when good; else a special file, the format's own damage for
    ``kind`` (a callable in ``damages``), or generic text damage."""
    if kind is None:
        path.write_bytes(content)
        case.good.add(name)
        return
    _damage(case, path, kind, content, rng, damages)


def _damage(case: Case, path: Path, kind: str, content: bytes, rng: np.random.Generator, damages: dict[str, Any]) -> None:
    """Write a damaged item, expected among the bad: a special file, the format's own damage for
    ``kind`` (a callable in ``damages``), or generic text damage."""
    case.bad.append(Bad(str(path), kind))
    if kind in SPECIAL:
        _special(path, kind, content)
    elif kind in damages:
        damages[kind]()
    else:
        path.write_bytes(_text_damage(content, kind, rng))


def _kit_nucla(case: Case, kinds: list[str | None], rng: np.random.Generator) -> None:
    case.source = case.src
    for k, kind in enumerate(kinds):
        label = k % 10 + 1
        name = f"a{nucla.ACTION_IDS[label - 1]:02d}_s{k // 10 + 1:02d}_e{k % 100:02d}_v01"
        path = case.src / f"{name}.json"
        skel = _pose(rng, T, 20)
        doc: dict[str, Any] = {"file_name": name, "label": label, "skeletons": skel.tolist()}
        content = json.dumps(doc).encode()

        def coord() -> None:
            skel[int(rng.integers(T)), int(rng.integers(20)), int(rng.integers(3))] = _coord(rng)
            path.write_text(json.dumps({**doc, "skeletons": skel.tolist()}))

        first = str(doc["skeletons"][0][0][0])
        _place(case, path, name, kind, content, rng, {
            "coord": coord,
            "nan": lambda: path.write_text(json.dumps(doc).replace(first, "NaN", 1)),
            # an integer of 5,000 digits: more than Python converts from text
            "bigint": lambda: path.write_text(json.dumps(doc).replace(first, "1" + "0" * 5000, 1)),
            "deep": lambda: path.write_text('{"label": 1, "skeletons": ' + "[" * 200_000 + "]" * 200_000 + "}"),
            **{k: (lambda v=v: path.write_text(json.dumps({**doc, "label": v})))
               for k, v in (("label_huge", 2**70), ("label_float", float(label)), ("label_str", "walk"))},
        })


def _ntu_name(k: int) -> str:
    return f"S001C001P{k + 1:03d}R001A{k % 60 + 1:03d}"


def _kit_ntu(case: Case, kinds: list[str | None], rng: np.random.Generator) -> None:
    case.source = case.src
    for k, kind in enumerate(kinds):
        name = _ntu_name(k)
        if kind in ("good_nonutf8", "bad_nonutf8"):  # file names that are not UTF-8 (Linux allows any bytes)
            name = os.fsdecode(os.fsencode(name) + (b"\xff" if kind == "good_nonutf8" else b"\xfe\x80"))
        path = case.src / f"{name}.skeleton"
        bodies = _pose(rng, T, 25)[:, None].astype(np.float32)  # (T, 1, 25, 3)
        if kind in (None, "good_nonutf8"):
            ntu.write_skeleton_file(path, bodies, crlf=bool(k % 2))
            case.good.add(name)
            continue
        case.bad.append(Bad(str(path), kind))
        if kind == "coord":
            bodies[int(rng.integers(T)), 0, int(rng.integers(25)), int(rng.integers(3))] = _coord(rng)
            ntu.write_skeleton_file(path, bodies)
            continue
        tmp = case.root / "tmp.skeleton"
        ntu.write_skeleton_file(tmp, bodies)
        content = tmp.read_bytes()
        tmp.unlink()
        if kind in SPECIAL:
            _special(path, kind, content)
        elif kind == "bad_nonutf8":
            path.write_bytes(_text_damage(content, "garbage", rng))
        elif kind == "frames_huge":  # a first line declaring 10**12 frames
            path.write_bytes(b"1000000000000" + content[content.index(b"\n"):])
        else:
            path.write_bytes(_text_damage(content, kind, rng))


def _msr_text(rng: np.random.Generator, coord: float | None = None) -> str:
    rows = np.concatenate([_pose(rng, T * 20, 1)[:, 0], np.ones((T * 20, 1))], 1)
    if coord is not None:
        rows[int(rng.integers(T * 20)), int(rng.integers(3))] = coord
    return "\n".join(" ".join(f"{v:.9g}" for v in row) for row in rows) + "\n"


def _kit_msr(case: Case, kinds: list[str | None], rng: np.random.Generator) -> None:
    case.source, case.options = case.src, {"protocol_list": False}
    for k, kind in enumerate(kinds):
        name = f"a{k % 20 + 1:02d}_s{k // 20 + 1:02d}_e01"
        path = case.src / f"{name}_skeleton3D.txt"
        content = _msr_text(rng).encode()

        def nan() -> None:
            lines = content.decode().splitlines()
            row = int(rng.integers(len(lines)))
            lines[row] = " ".join(["nan"] + lines[row].split()[1:])
            path.write_text("\n".join(lines) + "\n")

        _place(case, path, name, kind, content, rng, {"coord": lambda: path.write_text(_msr_text(rng, _coord(rng))), "nan": nan})


def _utk_rows(rng: np.random.Generator, coord: float | None = None) -> str:
    joints = _pose(rng, T, 20).reshape(T, 60)
    if coord is not None:  # in both segments (frames 1-6 and 7-12)
        joints[int(rng.integers(0, 6)), int(rng.integers(60))] = coord
        joints[int(rng.integers(6, T)), int(rng.integers(60))] = coord
    return "\n".join(f"{i + 1}  " + "  ".join(f"{v:.9g}" for v in row) for i, row in enumerate(joints)) + "\n"


_UTK_SEGMENTS = ("walk: 1 6", "sitDown: 7 12")


def _kit_utkinect(case: Case, kinds: list[str | None], rng: np.random.Generator) -> None:
    """One recording per item, two labelled segments each; ``label_*`` kinds damage label-file lines."""
    folder = case.src / "joints"
    folder.mkdir()
    case.source = case.src
    label_path = folder / "actionLabel.txt"
    lines: list[str] = []
    for k, kind in enumerate(kinds):
        rec = f"s{k + 1:02d}_e01"
        path = folder / f"joints_{rec}.txt"
        content = _utk_rows(rng).encode()
        names = [f"{rec}_walk", f"{rec}_sitDown"]
        if kind is None or kind.startswith("label_"):
            path.write_bytes(content)
        if kind is None:
            lines += [rec, *_UTK_SEGMENTS]
            case.good.update(names)
            continue
        if kind == "label_header":  # a garbled header: its two segments have no recording
            lines.append(f"s{k + 1:02d}_eXX")
            n = len(lines)
            lines += list(_UTK_SEGMENTS)
            case.bad += [Bad(str(label_path), kind, f"line {n}:"), Bad(str(label_path), kind, f"line {n + 1}:"),
                         Bad(str(label_path), kind, f"line {n + 2}:")]
            continue
        if kind == "label_duplicate":  # a second walk segment: the first is kept
            lines += [rec, _UTK_SEGMENTS[0], "walk: 7 12", _UTK_SEGMENTS[1]]
            case.good.update(names)
            case.bad.append(Bad(str(label_path), kind, f"line {len(lines) - 1}:"))
            continue
        if kind == "label_garbled":  # a segment line without its colon: the other segment is kept
            lines += [rec, _UTK_SEGMENTS[0].replace(":", ""), _UTK_SEGMENTS[1]]
            case.good.add(names[1])
            case.bad.append(Bad(str(label_path), kind, f"line {len(lines) - 1}:"))
            continue
        lines += [rec, *_UTK_SEGMENTS]
        _damage(case, path, kind, content, rng, {"coord": lambda: path.write_text(_utk_rows(rng, _coord(rng)))})
    label_path.write_text("\n".join(lines) + "\n")


def _pku_rows(rng: np.random.Generator, coord: float | None = None) -> str:
    rows = np.zeros((20, 150))
    rows[:, :75] = _pose(rng, 20, 25).reshape(20, 75)  # the second body absent (zeros), as in the release
    if coord is not None:
        rows[int(rng.integers(0, 8)), int(rng.integers(75))] = coord  # in instance 1
        rows[int(rng.integers(10, 18)), int(rng.integers(75))] = coord  # and in instance 2
    return "\n".join(" ".join(f"{v:.9g}" for v in row) for row in rows) + "\n"


def _kit_pku(case: Case, kinds: list[str | None], rng: np.random.Generator) -> None:
    """One video per item, two labelled instances each; ``label_*`` kinds damage the label file."""
    skel_dir, label_dir, split_dir = (case.src / d for d in ("PKU_Skeleton_Renew", "Train_Label_PKU_final", "Split"))
    for d in (skel_dir, label_dir, split_dir):
        d.mkdir()
    case.source = case.src
    videos = []
    for k, kind in enumerate(kinds):
        video = f"{k + 1:04d}-M"
        videos.append(video)
        path, label_path = skel_dir / f"{video}.txt", label_dir / f"{video}.txt"
        content, labels = _pku_rows(rng).encode(), b"3,0,8,1\n5,10,18,1\n"
        names = [f"{video}_00", f"{video}_01"]
        if kind is None:
            path.write_bytes(content)
            label_path.write_bytes(labels)
            case.good.update(names)
        elif kind.startswith("label_"):
            path.write_bytes(content)
            kind_ = kind.removeprefix("label_")
            if kind_ == "garbled_line":  # the second row garbled: the first instance is kept
                label_path.write_bytes(b"3,0,8,1\nfive,10,eighteen\n")
                case.good.add(names[0])
                case.bad.append(Bad(str(label_path), kind, "line 2:"))
            else:
                _special(label_path, kind_, labels)
                case.bad.append(Bad(str(label_path), kind))
        else:
            label_path.write_bytes(labels)
            _damage(case, path, kind, content, rng, {"coord": lambda: path.write_text(_pku_rows(rng, _coord(rng)))})
    half = max(1, len(videos) // 2)
    for name in ("cross-subject.txt", "cross-view.txt"):
        (split_dir / name).write_text("Training videos: \n" + ", ".join(videos[:half] + ["9999-L"]) + "\n"
                                      "Validataion videos: \n" + ", ".join(videos[half:] + ["9999-R"]) + "\n")


# PYSKL annotations poisoned one key at a time: kind -> (key, value) (value None: the key is removed).
def _poison(kind: str, kp: np.ndarray) -> tuple[str, Any]:
    return {
        "label_2^40": ("label", 2**40),
        "label_2^70": ("label", 2**70),
        "label_10^5000": ("label", 10**5000),
        "label_neg": ("label", -5),
        "label_float": ("label", 1.5),
        "label_npfloat": ("label", np.float64(3.0)),
        "label_str": ("label", "walk"),
        "label_none": ("label", None),
        "frame_dir_list": ("frame_dir", ["S001C001P001R001A001", "x"]),
        "frame_dir_dict": ("frame_dir", {"a": 1}),
        "frame_dir_int": ("frame_dir", 7),
        "frame_dir_empty": ("frame_dir", ""),
        "kp_3d": ("keypoint", kp[0]),
        "kp_object": ("keypoint", kp.astype(object)),
        "kp_list": ("keypoint", kp.tolist()),
        "kp_str": ("keypoint", "abc"),
        "kp_v17": ("keypoint", kp[:, :, :17]),
        "kp_empty": ("keypoint", kp[:, :0]),
        "kp_complex": ("keypoint", kp.astype(np.complex64)),
        "total_2^70": ("total_frames", 2**70),
        "subject_2^40": ("subject", 2**40),
        "view_-2^63": ("view", -(2**63)),
    }[kind]


PYSKL_POISON = ("label_2^40", "label_2^70", "label_10^5000", "label_neg", "label_float", "label_npfloat", "label_str",
                "label_none")
PYSKL_TYPES = ("frame_dir_list", "frame_dir_dict", "frame_dir_int", "frame_dir_empty", "kp_3d", "kp_object", "kp_list",
               "kp_str", "kp_v17", "kp_empty", "kp_complex", "total_2^70", "subject_2^40", "view_-2^63", "not_dict",
               "split_member")


def _kit_pyskl(case: Case, kinds: list[str | None], rng: np.random.Generator) -> None:
    path = case.src / "annotations.pkl"
    case.source = path
    annotations: list[Any] = []
    split: dict[str, list[Any]] = {"xsub_train": [], "xsub_val": []}
    for k, kind in enumerate(kinds):
        name = _ntu_name(k)
        kp = _pose(rng, T, 25)[None].astype(np.float32)  # (M=1, T, 25, 3)
        ann: Any = {"frame_dir": name, "label": k % 60, "keypoint": kp, "total_frames": T}
        split["xsub_train" if k % 2 else "xsub_val"].append(name)
        if kind is None:
            case.good.add(name)
        elif kind == "split_member":  # a split listing something that is no frame_dir: ignored, reported
            case.good.add(name)
            split["xsub_train"].append(int(rng.integers(1, 99)))
            case.bad.append(Bad(f"{path}#split['xsub_train']", kind))
        else:
            case.bad.append(Bad(f"{path}#{k}", kind))
            if kind == "coord":
                kp[0, int(rng.integers(T)), int(rng.integers(25)), int(rng.integers(3))] = _coord(rng)
            elif kind == "nan":
                kp[0, int(rng.integers(T)), 0, 0] = np.nan
            elif kind == "not_dict":
                ann = [name, k]
            else:
                key, value = _poison(kind, kp)
                ann[key] = value
        annotations.append(ann)
    path.write_bytes(pickle.dumps({"split": split, "annotations": annotations}, protocol=4))


def _kit_arrays(case: Case, kinds: list[str | None], rng: np.random.Generator) -> None:
    """One ``data.npy`` folder, a sample per item; ``label_*`` kinds poison its labels.txt line,
    ``junk_*`` kinds put an unreadable entry beside the source's files (not an item: nothing to report)."""
    case.source = case.src
    items = [k for k in kinds if not (k or "").startswith("junk_")]
    x = np.stack([_pose(rng, T, 25).transpose(2, 0, 1)[..., None].repeat(2, axis=3) for _ in items])  # (N, 3, T, 25, 2)
    x = x.astype(np.float32)
    x[..., 1] = 0  # one person
    labels, names = [], []
    for i, kind in enumerate(items):
        name = f"clip{i:03d}"
        names.append(name)
        labels.append(str(i % 5))
        if kind is None:
            case.good.add(name)
            continue
        case.bad.append(Bad(f"{case.src}#data[{i}]", kind))
        if kind == "coord":
            x[i, int(rng.integers(3)), int(rng.integers(T)), int(rng.integers(25)), 0] = _coord(rng)
        elif kind == "nan":
            x[i, 0, int(rng.integers(T)), 0, 0] = np.nan
        else:
            labels[i] = {"label_2^40": str(2**40), "label_2^70": str(2**70), "label_-7": "-7",
                         "label_10^5000": "1" + "0" * 5000}[kind]
    np.save(case.src / "data.npy", x)
    (case.src / "labels.txt").write_text("\n".join(labels) + "\n")
    (case.src / "names.txt").write_text("\n".join(names) + "\n")
    for n, kind in enumerate(k for k in kinds if (k or "").startswith("junk_")):
        _special(case.src / f"junk{n}.txt", kind.removeprefix("junk_"), b"junk\n")


KITS = {"nucla": _kit_nucla, "ntu": _kit_ntu, "msr": _kit_msr, "utkinect": _kit_utkinect, "pku_mmd": _kit_pku,
        "pyskl": _kit_pyskl, "arrays": _kit_arrays}


# Wholly unusable sources: one clear SkeletonFormatError naming the file, no store, no traceback.
def _unusable(case: Case, kind: str, rng: np.random.Generator) -> None:
    fmt, what = kind.split(":")
    case.fmt = fmt
    KITS[fmt](case, [None, None, None], rng)
    case.good.clear()
    if fmt == "pyskl":
        path = case.source
        content = path.read_bytes()
        path.unlink()
        case.fails = path.name
        if what in SPECIAL:
            _special(path, what, content)
        elif what == "evil":  # a pickle that would run a command: refused before anything runs
            marker = case.root / "pwned"
            path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
        elif what == "stack":  # 100,000 lists pushed, the last one returned: a file of no annotation
            path.write_bytes(b"\x80\x04" + b"]" * 100_000 + b".")
        elif what == "toplevel":
            path.write_bytes(pickle.dumps({"annotations": "not a list"}))
        else:
            path.write_bytes(_text_damage(content, what, rng))
    else:  # arrays: a file the source needs is damaged
        fname, _, how = what.partition("/")
        path = case.src / fname
        content = path.read_bytes()
        path.unlink()
        case.fails = fname
        if how in SPECIAL:
            _special(path, how, content)
        elif how == "pickle":  # an object array: only pickle could read it (refused)
            np.save(path, np.array([{"a": 1}, None, 3], dtype=object), allow_pickle=True)
        else:
            path.write_bytes(_text_damage(content, how, rng))


UNUSABLE = tuple(f"pyskl:{w}" for w in ("fifo", "devzero", "dangling", "loop", "folder", "truncated", "garbage", "empty",
                                        "evil", "stack", "toplevel")) + \
    tuple(f"arrays:{f}/{w}" for f in ("data.npy", "labels.txt", "names.txt")
          for w in ("fifo", "devzero", "dangling", "loop", "folder")) + ("arrays:data.npy/pickle", "arrays:data.npy/garbage")


def build_case(root: Path, fmt: str, kinds: list[str | None], rng: np.random.Generator) -> Case:
    """Write a source of ``fmt`` with one item per entry of ``kinds`` (``None``: good) under ``root/src``."""
    (root / "src").mkdir(parents=True)
    case = Case(fmt, root, root / "src", kinds=[k for k in kinds if k])
    if fmt == "unusable":
        (kind,) = [k for k in kinds if k]
        _unusable(case, kind, rng)
    else:
        KITS[fmt](case, kinds, rng)
    return case


# -- probe classes: (format, damage kinds) per class ------------------------------------------------
_FILE_FORMATS = ("ntu", "nucla", "msr", "utkinect", "pku_mmd")
_READABLE_SPECIAL = ("folder",) + (() if ROOT else ("chmod000",))  # root reads a mode-000 file anyway

PROBES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "poisoned label": [("pyskl", PYSKL_POISON), ("arrays", ("label_2^40", "label_2^70", "label_-7", "label_10^5000")),
                       ("nucla", ("label_huge", "label_float", "label_str"))],
    "wrong-typed annotation": [("pyskl", PYSKL_TYPES)],
    "absurd coordinates": [(f, ("coord",)) for f in (*_FILE_FORMATS, "pyskl", "arrays")],
    "FIFO as data file": [(f, ("fifo",)) for f in _FILE_FORMATS] + [("pku_mmd", ("label_fifo",))],
    "symlink to /dev/zero": [(f, ("devzero",)) for f in _FILE_FORMATS] + [("pku_mmd", ("label_devzero",))],
    "dangling symlink / loop": [(f, ("dangling", "loop")) for f in _FILE_FORMATS]
    + [("pku_mmd", ("label_dangling", "label_loop")), ("arrays", ("junk_dangling", "junk_loop", "junk_fifo", "junk_devzero"))],
    "unreadable entry": [(f, _READABLE_SPECIAL) for f in _FILE_FORMATS] + [("pku_mmd", ("label_folder",))],
    "unusable source": [("unusable", (k,)) for k in UNUSABLE],
    "non-UTF-8 file names": [("ntu", ("good_nonutf8", "bad_nonutf8"))],
    "garbled label lines": [("utkinect", ("label_header", "label_duplicate", "label_garbled")),
                            ("pku_mmd", ("label_garbled_line",))],
    "damaged content": [("nucla", ("truncated", "garbage", "empty", "nan", "bigint", "deep")),
                        ("ntu", ("truncated", "garbage", "empty", "binary", "frames_huge")),
                        ("msr", ("truncated", "garbage", "nan", "binary")),
                        ("utkinect", ("truncated", "garbage")),
                        ("pku_mmd", ("truncated", "garbage", "binary")),
                        ("pyskl", ("nan",)), ("arrays", ("nan",))],
}


# -- running a case and judging the outcome -------------------------------------------------------
def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder``: type, mode, link target, and the bytes' digest of regular files.
    Never follows a symlink and never opens anything but a regular file (a FIFO would block)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, folder)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                try:
                    with open(p, "rb") as f:
                        digest = hashlib.sha256(f.read()).hexdigest()
                except PermissionError:
                    digest = "unreadable"
                out[rel] = ("file", st.st_mode, st.st_size, digest)
            else:
                out[rel] = ("other", st.st_mode)
    return out


@dataclass
class Outcome:
    kept: int  # good samples in the store
    expected: int  # good samples
    reported: int  # bad items found in report.skipped with a one-line reason
    bad: int
    tracebacks: int  # exceptions that escaped prepare, or skips a reader bug caused ("unexpected ...")
    data_lost: int  # 1 when the source changed
    extra: list[str]  # samples in the store that are not good ones (a bad one slipped through)
    problems: list[str]  # what went wrong, for messages

    @property
    def ok(self) -> bool:
        return not self.problems


def run_case(case: Case, workers: int = 1) -> Outcome:
    before = snapshot(case.src)
    problems: list[str] = []
    report, error = None, None
    try:
        report = prepare(case.fmt, case.source, case.out, workers=workers, options=dict(case.options))
    except (SkeletonFormatError, StoreError) as e:
        error = e
    except Exception as e:  # noqa: BLE001 - any other exception is the failure we look for
        import traceback

        error = e
        problems.append("traceback: " + "".join(traceback.format_exception(e))[-2000:])
    lost = int(snapshot(case.src) != before)
    if lost:
        problems.append("the source changed")
    tracebacks = int(error is not None and not isinstance(error, (SkeletonFormatError, StoreError)))
    if case.fails is not None:  # a wholly unusable source: one clean line naming the file
        clean = isinstance(error, SkeletonFormatError) and case.fails in str(error) and "\n" not in str(error)
        if report is not None:
            problems.append(f"prepare of an unusable source ({case.kinds}) succeeded with {report.samples} samples")
        elif not clean and not tracebacks:
            problems.append(f"unusable source ({case.kinds}): error does not name {case.fails!r} on one line: {error}")
        if (case.root / "pwned").exists():
            problems.append("a pickle ran a command")
        return Outcome(0, 0, int(clean), 1, tracebacks, lost, [], problems)
    if report is None:
        if not tracebacks:
            problems.append(f"prepare failed ({case.kinds}): {error}")
        return Outcome(0, len(case.good), 0, len(case.bad), tracebacks, lost, [], problems)
    names = {str(n) for n in Store(report.store).names}
    kept = len(names & case.good)
    extra = sorted(names - case.good)
    if kept != len(case.good):
        problems.append(f"good samples lost: {sorted(case.good - names)}")
    if extra:
        problems.append(f"bad samples kept: {extra}")
    reported = 0
    for bad in case.bad:
        hits = [r for p, r in report.skipped if p == bad.path and r.startswith(bad.reason)]
        if hits and all(r.strip() and "\n" not in r for r in hits):
            reported += 1
        else:
            problems.append(f"{bad.kind} not reported: {bad.path} {bad.reason}")
    unexpected = [(p, r) for p, r in report.skipped if r.startswith("unexpected")]
    tracebacks += len(unexpected)
    problems += [f"reader bug: {p}: {r}" for p, r in unexpected]
    tsv = (report.store / "skipped.tsv").read_text("utf-8").splitlines()
    if len(tsv) != 1 + len(report.skipped) + len(report.excluded):
        problems.append(f"skipped.tsv has {len(tsv) - 1} rows for {len(report.skipped) + len(report.excluded)} entries")
    return Outcome(kept, len(case.good), reported, len(case.bad), tracebacks, lost, extra, problems)


def _interleave(kinds: tuple[str, ...], goods: int) -> list[str | None]:
    """``goods >= 1`` good items (``None``) with the damaged ones between them, a good one first."""
    out: list[str | None] = [None]
    left = goods - 1
    for kind in kinds:
        out.append(kind)
        if left:
            out.append(None)
            left -= 1
    return out + [None] * left


# -- the tests -------------------------------------------------------------------------------------
@pytest.mark.parametrize("probe", list(PROBES))
def test_probe_class(tmp_path, probe):
    failures = []
    for n, (fmt, kinds) in enumerate(PROBES[probe]):
        case = build_case(tmp_path / f"{n}", fmt, _interleave(kinds, 3), np.random.default_rng(n))
        outcome = run_case(case)
        failures += [f"{fmt} {kinds}: {p}" for p in outcome.problems]
        if case.fails is None:
            assert outcome.expected >= 3 and outcome.bad >= 1 or fmt == "arrays" and outcome.bad == 0
    assert not failures, "\n".join(failures)


def test_bad_samples_among_good_ones_with_two_workers(tmp_path):
    # The pool path: results come back from worker processes, bad ones as skips, in source order.
    for n, (fmt, kinds) in enumerate([("pyskl", ("label_2^70", "frame_dir_list", "coord", "kp_object")),
                                      ("nucla", ("coord", "fifo", "devzero", "label_huge")),
                                      ("ntu", ("coord", "loop", "garbage"))]):
        outcome = run_case(build_case(tmp_path / str(n), fmt, _interleave(kinds, 4), np.random.default_rng(n)), workers=2)
        assert outcome.ok, outcome.problems


def test_store_refuses_values_no_sensor_produces(tmp_path):
    from skelssl.data.store import StoreWriter

    good = np.full((3, 1, 20, 3), 0.5, np.float32)
    with StoreWriter(tmp_path / "s", "kinect20", 1) as w:
        for meta, frames, problem in [
            ({"label": 2**40}, good, "outside -1..99999"),
            ({"label": 2**70}, good, "outside -1..99999"),
            ({"label": -2}, good, "outside -1..99999"),
            ({"label": 1.5}, good, "not an integer"),
            ({"label": "3"}, good, "not an integer"),
            ({"label": 1, "subject": 2**31}, good, "32-bit"),
            ({"label": 1, "split_x": -(2**70)}, good, "32-bit"),
            ({"label": 1}, good * 1e30, "no sensor produces"),
            ({"label": 1}, np.full_like(good, -MAX_ABS_COORDINATE * 1.01), "no sensor produces"),
            ({"label": 1}, np.full((3, 1, 20, 3), 1e300), "no sensor produces"),  # float64: would be inf in float32
            ({"label": 1}, good * np.nan, "NaN"),
        ]:
            with pytest.raises(StoreError, match=problem):
                w.add("x", frames, meta)
        w.add("x", good * (MAX_ABS_COORDINATE / 0.5), {"label": 99_999, "subject": 2**31 - 1})  # the bounds themselves
        with pytest.raises(StoreError, match="duplicate sample name"):
            w.add("x", good, {"label": 1})
        with pytest.raises(StoreError, match="frame_labels"):
            w.add("y", good, {"label": 1}, frame_labels=np.array([0, 2**40, 1]))
        w.add("y", good, {"label": 0})  # a refused sample left nothing behind: columns stay aligned
        store = w.close()
    assert list(store.names) == ["x", "y"] and list(store.labels) == [99_999, 0]
    assert list(store.meta["subject"]) == [2**31 - 1, -1] and "split_x" not in store.meta
    assert store.num_classes == 100_000 and store.verify()


def test_reading_refuses_special_files_without_opening_them(tmp_path):
    from skelssl.data.formats._files import MAX_FILE_BYTES, read_bytes

    for kind, problem in [("fifo", "FIFO"), ("devzero", "character device"), ("dangling", "dangling symlink"),
                          ("loop", "symlink loop"), ("folder", "a folder")]:
        path = tmp_path / f"{kind}.json"
        _special(path, kind, b"{}")
        with pytest.raises(SkeletonFormatError, match=problem) as err:
            read_bytes(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    big = tmp_path / "big.skeleton"
    with open(big, "wb") as f:  # sparse: a file that claims more bytes than any sequence has
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(SkeletonFormatError, match="over the"):
        read_bytes(big)
    (tmp_path / "ok.txt").write_bytes(b"12 3\n")
    assert read_bytes(tmp_path / "ok.txt") == b"12 3\n"


def test_pyskl_layout_follows_most_annotations(tmp_path):
    # One odd annotation (17 joints) first in the file no longer decides, and fails, the whole prepare.
    rng = np.random.default_rng(5)
    odd = {"frame_dir": "odd", "label": 0, "keypoint": rng.normal(size=(1, T, 17, 2)).astype(np.float32), "total_frames": T}
    anns = [odd] + [pyskl._annotation(f"s{k}", _pose(rng, T, 20)[:, None], k) for k in range(3)]
    path = tmp_path / "src" / "a.pkl"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(anns))
    report = prepare("pyskl", path, tmp_path / "out")
    assert report.samples == 3 and Store(report.store).layout.name == "kinect20"
    assert [p for p, _ in report.skipped] == [f"{path}#0"]


@pytest.mark.realdata
def test_real_coordinates_are_far_inside_the_bound(shared_data, tmp_path):
    """The real files of every reader stay orders of magnitude inside MAX_ABS_COORDINATE (they peak at
    5.2 m; NTU's pixel columns at 1,518), and a damaged copy among them is reported."""
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    real = sorted((shared_data / "nw_ucla" / "all_sqe").glob("a0*_v01.json"))[:6]
    for f in real:
        shutil.copy(f, src / f.name)
    doc = json.loads(real[0].read_bytes())
    doc["skeletons"][3][5][1] = 1e30
    (src / "a01_s99_e00_v01.json").write_text(json.dumps(doc))
    report = prepare("nucla", src, tmp_path / "out")
    assert report.samples == 6 and [Path(p).name for p, _ in report.skipped] == ["a01_s99_e00_v01.json"]
    assert "no sensor produces" in report.skipped[0][1]
    store = Store(report.store)
    assert float(np.abs(store.frames_array).max()) < MAX_ABS_COORDINATE / 1000
    for f in sorted((shared_data / "ntu_rgbd_samples").glob("*.skeleton"))[:3]:
        s = ntu.read(f, fields=ntu.JOINT_FIELDS)[0]
        assert float(np.abs(s.bodies).max()) < MAX_ABS_COORDINATE / 10
