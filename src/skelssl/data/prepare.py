"""``prepare``: read a source dataset with its format reader, run a preprocessing pipeline, write a store.

A bad source file or sample never stops a prepare: it is skipped and listed with its reason (in the
store's ``store.json``, in ``skipped.tsv`` beside it, and in the returned report's ``skipped``). That
covers a file the reader refuses (garbled, a FIFO, a symlink to ``/dev/zero``, a dangling symlink),
a broken entry met while listing the source (``Discovery.skipped``: a garbled label line), a sample
whose values no sensor produces (NaN, or beyond ``store.MAX_ABS_COORDINATE``), and a sample the store
refuses (a label of 2**40, a duplicate name); good samples among them are all kept, and the source is
only ever read. Files a reader excludes on purpose (the official NTU missing-skeleton list, MSR's
557-file protocol list) are listed likewise. Only a source that is unusable as a whole fails, with one
:class:`~skelssl.core.conventions.SkeletonFormatError` line.
Reading and preprocessing run in ``workers`` processes; results are written in source order, so the
same source gives the same store whatever the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
import os
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from skelssl.core.conventions import SkeletonFormatError, StoreError
from skelssl.core.files import OutputError, is_inside
from skelssl.core.layouts import CONVERSIONS, Layout, conversion, get_layout
from skelssl.data.formats import Discovery, Reader, get_format, unit_path
from skelssl.data.sample import RawSample
from skelssl.data.store import Store, StoreWriter, check_store_output, frames_problem

__all__ = ["PrepareReport", "prepare", "cut_windows"]


@dataclass
class PrepareReport:
    """What a prepare did: counts, skipped files with reasons, files excluded on purpose, time."""

    store: Path
    samples: int
    classes: int
    frames: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    units: int = 0
    duplicate_groups: list[list[str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"store      {self.store}",
            f"samples    {self.samples}",
            f"classes    {self.classes}",
            f"frames     {self.frames}",
            f"skipped    {len(self.skipped)} file(s)" + (f" (listed in {self.store / 'skipped.tsv'})" if self.skipped else ""),
            f"excluded   {len(self.excluded)} file(s) by the reader's protocol lists",
            *([f"duplicates {len(self.duplicate_groups)} group(s) of samples with identical frames, e.g. "
               f"{' = '.join(self.duplicate_groups[0])} (all listed in {self.store / 'store.json'})"] if self.duplicate_groups else []),
            f"time       {self.seconds:.1f} s ({self.units / max(self.seconds, 1e-9):.0f} files/s)",
        ]
        for path, reason in self.skipped[:10]:
            lines.append(f"  skipped  {path}: {reason}")
        if len(self.skipped) > 10:
            lines.append(f"  ... and {len(self.skipped) - 10} more")
        return "\n".join(lines)


# -- worker side -------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(fmt: str, pipeline: str, layout: Any, num_persons: int, options: dict[str, Any],
                 joints: tuple[int, ...] | None = None, windows: tuple[int, int] | None = None) -> None:
    from skelssl.data.preprocess import apply_pipeline  # imported here: workers may be spawned

    _WORKER.update(
        reader=get_format(fmt), apply=apply_pipeline, pipeline=pipeline,
        layout=get_layout(layout), num_persons=num_persons, options=options, joints=joints,
        windows=windows,
    )


def _process(unit: Any) -> tuple[list[tuple], list[tuple[str, str]]]:
    """Read one unit and preprocess its samples -> (samples, errors); never raises.

    Values no sensor produces (:func:`~skelssl.data.store.frames_problem`: NaN/inf, or a magnitude
    beyond ``MAX_ABS_COORDINATE``) are refused on the reader's output, before a pipeline could
    centre or rotate them into plausible-looking numbers; the store checks its input again.
    """
    w = _WORKER
    out, errors = [], []
    try:
        raws = list(w["reader"].read(unit, **w["options"]))
    except SkeletonFormatError as e:
        return [], [(e.path, e.problem)]
    except Exception as e:  # a reader bug must not stop a long prepare either: report it loudly
        return [], [(unit_path(unit), _unexpected(e))]
    for raw in raws:
        where = unit_path(unit)
        try:
            where = raw.source or raw.name or where
            problem = frames_problem(raw.bodies)
            if problem is not None:
                raise SkeletonFormatError(where, problem)
            if w.get("joints") is not None:  # another layout: keep its joints before the pipeline runs
                raw = replace(raw, bodies=np.ascontiguousarray(raw.bodies[:, :, list(w["joints"])]))
            pieces = cut_windows(raw, *w["windows"]) if w.get("windows") else [raw]
            done = [w["apply"](w["pipeline"], piece, w["layout"], num_persons=w["num_persons"]) for piece in pieces]
        except SkeletonFormatError as e:
            errors.append((e.path, e.problem))
            continue
        except Exception as e:
            errors.append((where, _unexpected(e, f" in pipeline {w['pipeline']}")))
            continue
        out.extend((d.name, d.bodies, d.meta(), d.source or unit_path(unit), d.frame_labels) for d in done)
    return out, errors


def cut_windows(raw: RawSample, length: int, stride: int) -> list[RawSample]:
    """``raw`` cut into windows of ``length`` frames every ``stride`` (long unlabelled recordings as
    pre-training clips); each is named ``NAME@START`` and keeps the sample's label and metadata. A
    sequence shorter than ``length`` stays whole; a window in which no frame holds a body is left out."""
    t = raw.num_frames
    starts = range(0, t - length + 1, stride) if t > length else [0]
    pieces = []
    for start in starts:
        cut = slice(start, start + length)
        bodies = raw.bodies[cut]
        if not bodies.any():
            continue
        pieces.append(replace(
            raw, name=f"{raw.name}@{start}", bodies=np.ascontiguousarray(bodies),
            body_ids=None if raw.body_ids is None else raw.body_ids[cut],
            frame_labels=None if raw.frame_labels is None else raw.frame_labels[cut],
        ))
    return pieces


def _unexpected(e: BaseException, context: str = "") -> str:
    """One line for an exception no reader should raise (a bug): its type, message and place."""
    text = " ".join(str(e).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"unexpected {type(e).__name__}{context}: {text} [{_where(e)}]"


def _where(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    return f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"


def _results(units: list[Any], workers: int, init_args: tuple) -> Iterator[tuple[list[tuple], list[tuple[str, str]]]]:
    if workers <= 1:
        _init_worker(*init_args)
        for u in units:
            yield _process(u)
        return
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    chunk = max(1, min(64, len(units) // (workers * 8) or 1))
    # An executor, not a Pool: a worker killed from outside (out of memory) breaks the executor and
    # raises here, where a Pool would wait for the lost result forever.
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init_args) as pool:
        try:
            yield from pool.map(_process, units, chunksize=chunk)
        except BrokenProcessPool:
            raise StoreError(f"a --workers process died while reading (killed, e.g. out of memory); nothing was "
                             f"published: run again with fewer --workers") from None


# -- driver ------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    """What a prepare writes, decided from the reader and the source before any sample is read."""

    layout: Layout
    persons: int
    pipeline: str  # the pipeline to run on each sample
    store_pipeline: str  # the one the store records (an exported store's frames are already processed)
    channel_names: list[str]
    info: dict[str, Any]  # store.json fields: dataset, source, reader options, channels, class names
    joints: tuple[int, ...] | None = None  # joints kept from the reader's layout when converting to another


def prepare(
    fmt: str,
    source: str | Path,
    out: str | Path,
    *,
    pipeline: str = "raw",
    workers: int = 1,
    num_persons: int | None = None,
    layout: str | None = None,
    windows: tuple[int, int] | None = None,
    options: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> PrepareReport:
    """Prepare a store from a source dataset.

    Args:
        fmt: format key (``ntu``, ``nucla``, ``msr``, ``utkinect``, ``pku_mmd``, ``pyskl``, ``arrays``).
        source: the dataset folder (or file, for ``pyskl``/``arrays``).
        out: the store folder to write (replaced atomically when complete).
        pipeline: ``raw`` or ``agcn`` (and ``ctrgcn`` where available).
        workers: reader processes.
        num_persons: person slots ``M`` (default: the reader's ``NUM_PERSONS``: 1 for single-person
            datasets, else 2).
        layout: skeleton layout name, for formats whose files do not imply one; for a format of a fixed
            layout another one it converts to (``ntu25`` -> ``kinect20``, :data:`~skelssl.core.layouts.CONVERSIONS`).
        windows: ``(length, stride)``: cut every sequence into windows of ``length`` frames every
            ``stride`` before the pipeline (:func:`cut_windows`; e.g. untrimmed recordings as
            unlabelled pre-training clips).
        options: reader options (e.g. ``{"untrimmed": True}`` for PKU-MMD detection stores).
        progress: ``progress(done_units, total_units)`` callback.
        overwrite: replace an existing store at ``out`` (never a folder that is not a store).

    Raises:
        KeyError: unknown format or pipeline.
        SkeletonFormatError: the source itself is unusable (missing, empty, wrong kind).
        StoreError: nothing could be read at all.
        OutputError: ``out`` is not ours to write: the source or a folder holding it, a file, a folder
            of other files, a store without ``overwrite``, or a store another process is writing.
    """
    t0 = time.perf_counter()
    reader = get_format(fmt)
    options = _checked_options(reader, pipeline, options, layout)
    if windows is not None and min(windows) < 1:
        raise KeyError(f"windows must be at least 1 frame long and 1 frame apart, got {windows[0]}:{windows[1]}")
    source = Path(source)
    if not source.exists():
        raise SkeletonFormatError(source, "no such file or folder")
    if is_inside(source, out):
        raise OutputError(f"--out {out} is the source or a folder holding it; the store needs a folder of its own")
    check_store_output(out, overwrite)  # before the (possibly long) read; checked again at publication
    discovery = _discover(reader, source, options)
    units = list(discovery.units)
    plan = _plan(reader, source, units, options, pipeline=pipeline, layout=layout, num_persons=num_persons)

    if windows is not None:
        plan.info["windows"] = {"length": int(windows[0]), "stride": int(windows[1])}
    init = (fmt, plan.pipeline, plan.layout, plan.persons, options, plan.joints, windows)  # the object: a user layout is not registered in workers
    with StoreWriter(out, plan.layout, plan.persons, channels=len(plan.channel_names), pipeline=plan.store_pipeline,
                     info=plan.info, overwrite=overwrite) as writer:
        skipped = _write_samples(writer, discovery, _results(units, workers, init), len(units), progress)
        for path, reason in discovery.excluded:
            writer.skip(path, f"excluded: {reason}")
        _set_class_names(reader, writer, options, plan.info.get("class_names"))
        store = writer.close(finalize=_finalizer(skipped, discovery.excluded))
    return PrepareReport(
        store=store.path, samples=len(store), classes=store.num_classes, frames=int(store.info["frames"]),
        skipped=skipped, excluded=list(discovery.excluded), seconds=time.perf_counter() - t0, units=len(units),
        duplicate_groups=list(store.info.get("duplicates", [])),
    )


def _checked_options(reader: Reader, pipeline: str, options: dict[str, Any] | None, layout: str | None) -> dict[str, Any]:
    """The reader options, refused when the pipeline or an option is unknown; a layout named for a reader
    whose files do not imply one becomes its ``layout`` option."""
    from skelssl.data.preprocess import PIPELINES

    if pipeline not in PIPELINES:
        raise KeyError(f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")
    options = dict(options or {})
    known = reader_options(reader)
    unknown = sorted(set(options) - known)
    if unknown:
        raise KeyError(f"unknown {reader.NAME} reader option(s) {', '.join(unknown)}; known: {', '.join(sorted(known)) or 'none'}")
    if layout is not None and reader.LAYOUT is None:
        options.setdefault("layout", layout)
    return options


def _discover(reader: Reader, source: Path, options: dict[str, Any]) -> Discovery:
    try:
        return reader.discover(source, **options)
    except OSError as e:  # a reader that let one through: still one line, naming the file
        raise SkeletonFormatError(getattr(e, "filename", None) or source, f"cannot read: {e.strerror or e}") from None


def _plan(reader: Reader, source: Path, units: list[Any], options: dict[str, Any], *, pipeline: str,
          layout: str | None, num_persons: int | None) -> _Plan:
    """Layout, person slots, pipelines, channels and ``store.json`` fields of the store to write."""
    # A layout the user named wins for a reader with a fixed one; the others check it against the data's V.
    layout_name = layout if layout is not None and reader.LAYOUT is not None else reader.layout_for(source, **options)
    if layout_name is None:
        layout_name = _infer_layout(reader, units, options)
    layout_obj = get_layout(layout_name)
    joints = _conversion(reader, source, layout_obj)
    # A file `skelssl export` wrote records its store (pyskl: dataset, pipeline, persons, class names).
    recorded = reader.recorded_store(source, **options)
    persons = num_persons or recorded.get("num_persons") or reader.NUM_PERSONS
    store_pipeline = pipeline
    if recorded.get("pipeline", "raw") != "raw":
        # Its frames are already processed: record the pipeline, do not run it twice.
        if pipeline not in ("raw", recorded["pipeline"]):
            raise SkeletonFormatError(source, f"exported from a store of pipeline {recorded['pipeline']} (its frames are already "
                                              f"processed): prepare it without --pipeline")
        store_pipeline, pipeline = recorded["pipeline"], "raw"
    info = {
        "dataset": options.get("dataset") or recorded.get("dataset") or reader.dataset_for(**options),
        "source": str(source.resolve()),
        "source_format": reader.NAME,
        "reader_options": {k: v for k, v in options.items() if isinstance(v, (str, int, float, bool))},
    }
    # Channels from the data (pyskl: x, y[, z][, score]); every other reader gives x, y, z.
    channel_names = list(reader.channels_for(source, **options))
    if pipeline != "raw" and channel_names != ["x", "y", "z"]:
        raise SkeletonFormatError(source, f"pipeline {pipeline} works on 3D (x, y, z) skeletons, this source has "
                                          f"({', '.join(channel_names)}): prepare it with --pipeline raw")
    if channel_names != ["x", "y", "z"]:
        info["channel_names"] = channel_names
    class_names = recorded.get("class_names") or reader.CLASS_NAMES
    if class_names is not None:
        info["class_names"] = list(class_names)
    if joints is not None:
        info["converted_from"] = {"layout": reader.LAYOUT, "joints": list(joints)}
    return _Plan(layout_obj, persons, pipeline, store_pipeline, channel_names, info, joints)


def _conversion(reader: Reader, source: Path, target: Layout) -> tuple[int, ...] | None:
    """For a reader of a fixed layout asked for another one: the joints to keep (``None``: the same
    joints); refused in one line when the joint counts differ and no conversion is known."""
    if reader.LAYOUT is None or reader.LAYOUT == target.name:
        return None
    fixed = get_layout(reader.LAYOUT)
    if fixed.num_joints == target.num_joints:
        return None  # the same joints under another name (a layout file of the user's)
    joints = conversion(fixed, target)
    if joints is None:
        known = ", ".join(f"{a} -> {b}" for a, b in CONVERSIONS)
        raise SkeletonFormatError(source, f"{reader.NAME} files hold {fixed.name} skeletons ({fixed.num_joints} joints); "
                                          f"--layout {target.name} ({target.num_joints}) is no conversion skelssl knows "
                                          f"(known: {known})")
    return joints


def _write_samples(writer: StoreWriter, discovery: Discovery, results: Iterator[tuple[list[tuple], list[tuple[str, str]]]],
                   total: int, progress: Callable[[int, int], None] | None) -> list[tuple[str, str]]:
    """Add every sample the workers return, in source order; returns the skipped ``(path, reason)``s."""
    skipped: list[tuple[str, str]] = []
    # Broken entries the reader met while listing (a FIFO, a garbled label line): skipped like a bad unit.
    for path, reason in discovery.skipped:
        writer.skip(path, reason)
        skipped.append((path, reason))
    for n, (samples, errors) in enumerate(results, 1):
        for name, frames, meta, src, frame_labels in samples:
            if frames.shape[-1] != writer.channels:
                frames = frames[..., : writer.channels]
            try:
                writer.add(name, frames, meta, source=src, frame_labels=frame_labels)
            except StoreError as e:  # a value the store refuses (a label of 2**40, 1e30 coordinates)
                errors.append((src, str(e)))
            except (TypeError, ValueError, OverflowError) as e:  # add() checks before it records: nothing half-written
                errors.append((src, _unexpected(e, " in the store writer")))
        for path, reason in errors:
            writer.skip(path, reason)
            skipped.append((path, reason))
        if progress is not None:
            progress(n, total)
    return skipped


def _set_class_names(reader: Reader, writer: StoreWriter, options: dict[str, Any], class_names: list[str] | None) -> None:
    """Check a user's class names file against the labels read; let the reader name the classes
    once every label is known (NTU: 60 or 120)."""
    if not len(writer):
        return  # close() refuses an empty store
    if options.get("class_names") is not None and writer.max_label >= len(class_names):
        raise SkeletonFormatError(options["class_names"], f"{len(class_names)} class names, but the labels go up "
                                                          f"to {writer.max_label}")
    names = reader.class_names_for(writer.max_label)
    if names is not None:
        writer.info["class_names"] = list(names)


def _finalizer(skipped: list[tuple[str, str]], excluded: list[tuple[str, str]]) -> Callable[[Store], dict[str, bytes]]:
    """The files written into the store before it is published: its subsets and ``skipped.tsv``."""
    from skelssl.data.protocols import compute_subsets, subsets_bytes

    lines = ["file\treason"] + [f"{_printable(p)}\t{_printable(r)}" for p, r in skipped]
    lines += [f"{_printable(p)}\texcluded: {_printable(r)}" for p, r in excluded]

    def finalize(unpublished: Store) -> dict[str, bytes]:
        return {"subsets.npz": subsets_bytes(compute_subsets(unpublished)),
                "skipped.tsv": ("\n".join(lines) + "\n").encode("utf-8")}

    return finalize


def reader_options(reader: Reader) -> set[str]:
    """The ``-o KEY=VALUE`` options a reader takes: its keyword arguments and its declared ``OPTIONS``."""
    import inspect

    names = set(reader.OPTIONS)
    for fn in (reader.read, reader.discover):
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("source", "unit", "path"):
                names.add(p.name)
    return names


def _printable(text: str) -> str:
    """A file name or reason as one line of valid UTF-8 (names on disk need not be)."""
    text = os.fsdecode(text) if isinstance(text, bytes) else str(text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\t", " ").replace("\n", " ").replace("\r", " ")


def _infer_layout(reader: Reader, units: list[Any], options: dict[str, Any]) -> str:
    """For formats without a fixed layout: read the first unit and go by its joint count."""
    if not units:
        raise SkeletonFormatError("source", "no samples found")
    for unit in units[:8]:
        try:
            raws = reader.read(unit, **options)
        except Exception:  # a bad unit: try the next (its read reports it during the prepare)
            continue
        if raws:
            v = raws[0].bodies.shape[2]
            from skelssl.core.layouts import BUILTIN_LAYOUTS

            fits = [name for name, lay in BUILTIN_LAYOUTS.items() if lay.num_joints == v]
            if len(fits) == 1:
                return fits[0]
            if fits:
                raise SkeletonFormatError(unit_path(unit), f"{v} joints per frame fits {' and '.join(fits)}; name one with --layout")
            raise SkeletonFormatError(unit_path(unit), f"{v} joints per frame matches no known layout; pass --layout "
                                                       "(a name, or a layout file .yaml/.json)")
    raise SkeletonFormatError(unit_path(units[0]), "could not read any sample to infer the layout; pass --layout")


def store_summary(store: Store) -> dict[str, Any]:
    """The facts ``skelssl info`` prints: counts, classes, lengths, protocols with their sizes."""
    from skelssl.data.protocols import PROTOCOLS, available_protocols, sequence_split, split, identical_to_train_count

    lengths = store.lengths
    edges = [1, 16, 32, 64, 128, 256, 512, 1024, 1 << 30]
    hist = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        k = f"{lo}-{hi - 1}" if hi < (1 << 30) else f">={lo}"
        hist[k] = int(((lengths >= lo) & (lengths < hi)).sum())
    protocols = {}
    for name in available_protocols(store):
        tr, te = split(store, name)
        protocols[name] = {"train": int(len(tr)), "test": int(len(te))}
        leaked = identical_to_train_count(store, tr, te)
        if leaked:
            protocols[name]["test_identical_to_train"] = leaked
    if store.has_frame_labels and store.dataset.endswith("_untrimmed"):  # detection stores: whole sequences
        for name, p in PROTOCOLS.items():
            if f"{p.dataset}_untrimmed" == store.dataset:
                try:
                    tr, te = sequence_split(store, name)
                except KeyError:  # a split column this store lacks
                    continue
                protocols[name] = {"train": int(len(tr)), "test": int(len(te))}
    labels = store.labels
    per_class = np.bincount(labels[labels >= 0], minlength=store.num_classes) if store.num_classes else np.zeros(0, int)
    return {
        "path": str(store.path),
        "dataset": store.dataset,
        "samples": len(store),
        "classes": store.num_classes,
        "frames": int(store.info["frames"]),
        "layout": store.layout.name,
        "pipeline": store.pipeline,
        "num_persons": store.num_persons,
        "skipped": len(store.info.get("skipped", [])),
        # groups of samples with bit-identical frames (None: not recorded by the skelssl that wrote it)
        "duplicate_groups": None if store.duplicate_groups is None else len(store.duplicate_groups),
        "length": {"min": int(lengths.min()), "mean": float(lengths.mean()), "max": int(lengths.max()), "histogram": hist},
        "class_counts": {store.class_names[c] if c < len(store.class_names) else str(c): int(n) for c, n in enumerate(per_class)},
        "protocols": protocols,
        "subsets": sorted(store.saved_subsets()),
    }
