"""The ``skelssl`` command. Strings become objects here, and only the CLI prints.

    skelssl prepare FORMAT SOURCE --out STORE [--pipeline raw|agcn] [--workers N]
    skelssl synth --out STORE [--layout ntu25|kinect20] [--samples N] [--seed S]
    skelssl merge STORE[:PROTOCOL] ... --out STORE
    skelssl info STORE [--json]
    skelssl show STORE SAMPLE --out file.gif [--overwrite]
    skelssl export pyskl STORE --out file.pkl [--overwrite]
    skelssl export ctrgcn-npz STORE --protocol P --out file.npz [--overwrite]
    skelssl pretrain RECIPE.yaml --out RUN [--resume] [--init-from RUN_OR_FILE] [key=value ...]
    skelssl eval TASK RUN --store STORE --protocol P [--out DIR] [--random-init] [--save-logits] [key=value ...]
    skelssl ensemble EVAL_DIR_OR_LOGITS... [--weights W ...] [--logits] [--out results.json] [--overwrite]
    skelssl embed RUN --out feats.npy|feats.npz [--store S] [--protocol P --split train|test|all] [--overwrite]
    skelssl report PATH...
    skelssl convert {hitrs,isc,mamp} OFFICIAL_FILE --out RUN [--recipe R] [--overwrite] [key=value ...]
    skelssl export-weights RUN --format official --out FILE [--overwrite]
    skelssl bench RECIPE [key=value ...] [--device cpu|cuda] [--precision P] [--naive] [--json FILE]
    skelssl demo [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from pathlib import Path

__all__ = ["main"]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


# -- data commands -----------------------------------------------------------------------------------
def cmd_prepare(args: argparse.Namespace) -> int:
    from skelssl.core.conventions import SkeletonFormatError
    from skelssl.data.formats import FORMATS
    from skelssl.data.prepare import prepare

    if args.format not in FORMATS:
        raise CLIError(f"unknown format {args.format!r}; known: {', '.join(FORMATS)}")
    options = {}
    for item in args.option or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f"--option expects key=value, got {item!r}")
        import yaml

        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise CLIError(f"--option {key}: cannot read the value {value!r} (a plain number, word or true/false)") from None
    if args.untrimmed:
        options["untrimmed"] = True
    if args.workers < 1:
        raise CLIError(f"--workers must be at least 1, got {args.workers}")
    if args.persons is not None and args.persons < 1:
        raise CLIError(f"--persons must be at least 1, got {args.persons}")
    source = Path(args.source)
    if not source.exists():
        raise CLIError(f"{source}: no such file or folder")
    if source.is_dir() and not os.access(source, os.R_OK | os.X_OK):
        raise CLIError(f"{source}: folder is not readable")
    bar = None

    def update(done: int, total: int) -> None:
        # prepare() discovers the units itself; the bar starts at its first report.
        nonlocal bar
        if bar is None:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=f"prepare {args.format}", unit="file", dynamic_ncols=True, disable=None)
        bar.n = done
        bar.refresh()

    try:
        report = prepare(
            args.format, source, args.out, pipeline=args.pipeline, workers=args.workers,
            num_persons=args.persons, layout=args.layout, windows=_windows(args.windows), options=options, progress=update,
            overwrite=args.overwrite,
        )
    except (SkeletonFormatError, KeyError) as e:
        raise CLIError(str(e).strip("'\"")) from None
    finally:
        if bar is not None:
            bar.close()
    print(report.summary())
    return 0


def _windows(text: str | None) -> tuple[int, int] | None:
    """``--windows LEN[:STRIDE]`` -> ``(LEN, STRIDE)``."""
    if text is None:
        return None
    try:
        length, _, stride = text.partition(":")
        return int(length), int(stride or length)  # prepare refuses values under 1
    except ValueError:
        raise CLIError(f"--windows takes LEN or LEN:STRIDE in frames (e.g. 64:32), got {text!r}") from None


def cmd_synth(args: argparse.Namespace) -> int:
    from skelssl.data import synthetic

    if args.samples < 1:
        raise CLIError(f"--samples must be at least 1, got {args.samples}")
    store = synthetic.write_store(args.out, num_samples=args.samples, layout=args.layout, seed=args.seed,
                                  overwrite=args.overwrite)
    print(f"wrote {len(store)} synthetic samples ({store.num_classes} classes, layout {store.layout.name}) to {store.path}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from skelssl.data.merge import merge_stores

    parts = []
    for item in args.stores:
        path, _, protocol = item.partition(":")
        parts.append((path, protocol or None))
    try:
        store = merge_stores(parts, args.out, overwrite=args.overwrite)
    except KeyError as e:
        raise CLIError(str(e).strip("'\"")) from None
    counts = np.bincount(store.meta["part"], minlength=len(parts))
    print(f"wrote {len(store)} unlabelled samples to {store.path}: " + ", ".join(f"{n} from {p}" for (p, _), n in zip(parts, counts)))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from skelssl.core.conventions import StoreError
    from skelssl.data.prepare import store_summary
    from skelssl.data.store import Store

    try:
        summary = store_summary(Store(args.store))
    except StoreError as e:
        raise CLIError(str(e)) from None
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"store      {summary['path']}")
    print(f"dataset    {summary['dataset']}  layout {summary['layout']}  pipeline {summary['pipeline']}  persons {summary['num_persons']}")
    print(f"samples    {summary['samples']}   classes {summary['classes']}   frames {summary['frames']}   skipped {summary['skipped']}")
    if summary["duplicate_groups"]:
        print(f"duplicates {summary['duplicate_groups']} group(s) of samples with identical frames (store.json lists them)")
    ln = summary["length"]
    print(f"length     min {ln['min']}  mean {ln['mean']:.1f}  max {ln['max']}")
    width = max(ln["histogram"].values()) or 1
    for k, v in ln["histogram"].items():
        if v:
            print(f"  {k:>9} {v:7d} {'#' * max(1, round(40 * v / width))}")
    print("classes")
    for name, n in summary["class_counts"].items():
        print(f"  {n:7d}  {name}")
    print("protocols")
    if not summary["protocols"]:
        print("  (none for this dataset)")
    for name, sizes in summary["protocols"].items():
        leak = sizes.get("test_identical_to_train")
        note = f"   ({leak} test samples identical to a training sample)" if leak else ""
        print(f"  {name:18s} train {sizes['train']:7d}   test {sizes['test']:7d}{note}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from skelssl.core.conventions import StoreError
    from skelssl.data.store import Store
    from skelssl.viz.animate import FRONT, animate, drawable

    try:
        store = Store(args.store)
        i = store.index_of(args.sample)
    except (StoreError, KeyError) as e:
        raise CLIError(str(e).strip("'\"")) from None
    out = _check_out_file(args.out, args.overwrite)
    try:  # coordinates only (a score is no coordinate); 2D drawn flat, from the front, y up
        frames = drawable(store.frames(i), store.channel_names)
    except ValueError as e:
        raise CLIError(f"{store.path}: {e}") from None
    flat = "z" not in store.channel_names
    name = str(store.names[i])
    label = int(store.labels[i])
    title = name + (f" ({store.class_names[label]})" if 0 <= label < len(store.class_names) else "")
    # agcn rotates the spine onto +z; every other pipeline keeps the camera's y-up.
    up = "z" if store.pipeline == "agcn" else "y"
    out = animate(frames, store.layout, out, fps=args.fps, title=title, up="y" if flat else up, view=FRONT if flat else None)
    print(f"wrote {out} ({len(frames)} frames)")
    return 0


def _check_out_file(path: str | Path, overwrite: bool) -> Path:
    """``--out`` of a command writing one file: refuse an existing one without ``--overwrite``, and
    anything but a regular file (a folder, a link, a device) even with it."""
    import stat

    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    if stat.S_ISDIR(st.st_mode):
        raise CLIError(f"{path} is a folder; --out names the file to write")
    if not stat.S_ISREG(st.st_mode):
        raise CLIError(f"{path} exists and is not a regular file; skelssl will not replace it, choose another --out")
    if not overwrite:
        raise CLIError(f"{path} exists; pass --overwrite to replace it, or choose another --out")
    return path


def cmd_export(args: argparse.Namespace) -> int:
    from skelssl.data.store import Store

    if args.format not in ("pyskl", "ctrgcn-npz"):
        raise CLIError(f"export formats: pyskl, ctrgcn-npz; got {args.format!r}")
    if (args.format == "ctrgcn-npz") != (args.protocol is not None):
        raise CLIError("--protocol: ctrgcn-npz writes one protocol's train and test split, so it needs one; "
                       "pyskl writes every protocol of the store and takes none")
    store = Store(args.store)
    out = _check_out_file(args.out, args.overwrite)
    if args.format == "ctrgcn-npz":
        from skelssl.data.formats.arrays import write_ctrgcn_npz

        try:
            sizes = write_ctrgcn_npz(store, out, args.protocol)
        except (KeyError, ValueError) as e:
            raise CLIError(str(e.args[0] if e.args else e).strip("'\"")) from None
        print(f"wrote {sizes['train']} training and {sizes['test']} test samples of {args.protocol} to {out}")
        return 0
    from skelssl.data.formats.pyskl import write_pyskl_from_store

    try:
        split = write_pyskl_from_store(store, out)
    except ValueError as e:
        raise CLIError(str(e)) from None
    print(f"wrote {len(store)} annotations to {out} (splits: {', '.join(split) or 'none'})")
    return 0


# -- training and evaluation commands ----------------------------------------------------------------
def cmd_pretrain(args: argparse.Namespace) -> int:
    from skelssl.engine.config import ConfigError, load_config
    from skelssl.engine.dist import is_rank_zero
    from skelssl.jobs.pretrain import pretrain

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; a run needs a folder")
    # (checked again under the run's lock by pretrain(); a leftover lock file alone is no run)
    if out.is_dir() and not args.resume and any(p.name != ".lock" for p in out.iterdir()):
        raise CLIError(f"{out} is not empty: pass --resume to continue that run, or choose another --out")
    overrides = list(args.overrides)
    if args.devices is not None:
        overrides.append(f"trainer.devices={args.devices}")
    if args.nodes is not None:
        overrides.append(f"trainer.num_nodes={args.nodes}")
    if args.accelerator is not None:
        overrides.append(f"trainer.accelerator={args.accelerator}")
    try:
        cfg = load_config(args.recipe, overrides)
    except (ConfigError, FileNotFoundError) as e:
        raise CLIError(str(e)) from None
    if args.init_from is not None:  # replaces a recipe's init_from (and the hash it may record)
        import dataclasses

        from skelssl.engine.config import InitFromConfig

        cfg = dataclasses.replace(cfg, init_from=InitFromConfig(path=args.init_from))
    summary = pretrain(cfg, out, resume=args.resume,
                       warn=lambda message: print(f"skelssl pretrain: warning: {message}", file=sys.stderr))
    if not is_rank_zero():  # every process of a multi-device run returns here; one reports
        return 0
    if summary["loss"] is None:  # resumed at its end: no step was taken
        print(f"{out}: already complete at step {summary['step']} ({summary['epoch']} epochs); nothing to do; "
              f"encoder {summary['encoder']}")
        return 0
    start = f" from {summary['init_from']}" if summary.get("init_from") else ""
    print(f"pre-trained {summary['step']} steps ({summary['epoch']} epochs){start} in {summary['elapsed_s']:.0f} s; "
          f"final loss {summary['loss']:.4g}; encoder {summary['encoder']}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from skelssl.core.conventions import StoreError
    from skelssl.engine.checkpoint import CheckpointError
    from skelssl.engine.config import ConfigError
    from skelssl.jobs.evaluate import evaluate

    try:
        results = evaluate(
            args.task, args.run, store=args.store, protocol=args.protocol, out=args.out,
            overrides=args.overrides, random_init=args.random_init, devices=args.devices,
            accelerator=args.accelerator, progress=True, resume=args.resume, save_logits=args.save_logits,
        )
    except (ConfigError, CheckpointError, StoreError, KeyError, ValueError) as e:
        raise CLIError(str(e).strip("'\"")) from None
    for warning in results.get("warnings") or []:
        print(f"skelssl eval: warning: {warning}", file=sys.stderr)
    if results.get("logits"):
        print(f"test logits: {results['logits']} beside the evaluation's results.json")
    # Percentages (top-1, mAP) read well with 2 decimals; errors in metres (MPJPE) need significant digits.
    fmt = (lambda v: f"{v:.4g}") if results.get("lower_is_better") else (lambda v: f"{v:.2f}")
    best = results.get("best")
    best_txt = f" (best {fmt(best['value'])} at epoch {best['epoch']})" if best and best.get("epoch") is not None else ""
    extra = ""
    if results.get("lower_is_better"):
        extra = "; lower is better"
    base = results.get("baseline")
    if isinstance(base, dict) and isinstance(base.get("final"), (int, float)):
        extra += f"; {base.get('name', 'baseline')} {fmt(base['final'])}"
    extra += _baselines_text(results)
    print(f"{results['task']} {results['protocol']}: {results['metric']} {fmt(results['final'])}{best_txt}{extra}")
    return 0


def _baselines_text(results: dict) -> str:
    """``; robust probe 70.2 / kNN 68.1; random init ...; raw input ...`` for frozen-feature results."""
    frozen, bases = results.get("frozen"), results.get("baselines") or {}
    if not isinstance(frozen, dict):
        return ""
    parts = [f"kNN {frozen['knn_top1']:.2f} / robust probe {frozen['probe_top1']:.2f}"]
    for name, label in (("random_init", "random init"), ("raw_input", "raw input")):
        b = bases.get(name)
        if isinstance(b, dict):
            parts.append(f"{label} {b['knn_top1']:.2f} / {b['probe_top1']:.2f}")
    diag = results.get("diagnostics") or {}
    if "effective_rank" in diag:
        parts.append(f"effective rank {diag['effective_rank']:.1f} of {diag['dim']}")
    copies = frozen.get("not_copies")
    if copies:
        parts.append(f"without the {results['test_samples'] - copies['test_samples']} test copies of training "
                     f"samples: kNN {copies['knn_top1']:.2f} / probe {copies['probe_top1']:.2f}")
    return "\n  " + "; ".join(parts)


def cmd_embed(args: argparse.Namespace) -> int:
    import io

    from skelssl.core.files import atomic_write_bytes, atomic_write_text
    from skelssl.data.store import Store
    from skelssl.jobs.embed import load_encoder, store_indices

    out = Path(args.out)
    if out.suffix not in (".npy", ".npz"):
        raise CLIError(f"--out {out}: name a .npy file (features, with a .samples.tsv beside it) or a .npz file (all in one)")
    sidecar = out.with_suffix(".samples.tsv") if out.suffix == ".npy" else None
    for path in (out, sidecar):
        if path is None:
            continue
        if path.is_dir():
            raise CLIError(f"{path} is a folder; --out names the file to write")
        if path.exists() and not args.overwrite:
            raise CLIError(f"{path} exists; pass --overwrite to replace it, or choose another --out")
    embedder = load_encoder(args.run, overrides=args.overrides, device=args.device)
    store_path = args.store or embedder.data.get("store")
    if not store_path:
        raise CLIError("--store: the encoder names no training store; give the store whose samples to embed")
    store = Store(store_path)
    split = args.split or ("test" if args.protocol else "all")
    idx = store_indices(store, args.protocol, split)
    warning = embedder.pipeline_warning(store)
    if warning:
        print(f"skelssl embed: warning: {warning}", file=sys.stderr)
    feats, labels = embedder.embed_store(store, idx, progress=True)
    names = np.asarray([str(n) for n in store.names[idx]])
    if sidecar is None:
        buf = io.BytesIO()
        np.savez(buf, features=feats, labels=labels, names=names, indices=idx)
        atomic_write_bytes(out, buf.getvalue())
    else:
        buf = io.BytesIO()
        np.save(buf, feats)
        classes = store.class_names
        rows = ["index\tname\tlabel\tclass"] + [
            f"{i}\t{' '.join(n.split())}\t{y}\t{classes[y] if 0 <= y < len(classes) else ''}"
            for i, n, y in zip(idx.tolist(), names.tolist(), labels.tolist())
        ]
        atomic_write_text(sidecar, "\n".join(rows) + "\n")
        atomic_write_bytes(out, buf.getvalue())
    what = f"{split} split of {args.protocol}" if args.protocol else "all samples"
    also = f" and {sidecar}" if sidecar else ""
    print(f"wrote {feats.shape[0]} x {feats.shape[1]} features ({what} of {store.path}) to {out}{also}")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    import time

    from skelssl.core.files import atomic_write_text
    from skelssl.evaluation.ensemble import ensemble_record, ensemble_saved
    from skelssl.evaluation.logits import LogitsError
    from skelssl.evaluation.results import to_jsonable, validate_results

    t0 = time.perf_counter()
    out = _check_out_file(args.out, args.overwrite) if args.out else None
    for m in args.members if out is not None else ():
        given = Path(m) if Path(m).is_dir() else Path(m).parent
        if out.exists() and out.resolve() == (given / "results.json").resolve():
            raise CLIError(f"--out {out} is the results of member {m}; write the ensemble elsewhere")
    try:
        summary = ensemble_saved(args.members, args.weights, use_logits=args.logits)
    except LogitsError as e:
        raise CLIError(str(e)) from None
    width = max(len(m["path"]) for m in summary["members"])
    for m in summary["members"]:
        print(f"{m['path']:<{width}}  weight {m['weight']:g}  top1 {m['top1']:6.2f}  top5 {m['top5']:6.2f}")
    combine = "logits" if args.logits else "softmax probabilities"
    print(f"{'ensemble':<{width}}  ({combine})  top1 {summary['top1']:6.2f}  top5 {summary['top5']:6.2f}"
          f"  on {summary['test_samples']} test samples")
    for name, fig in summary["baselines"].items():  # the members' baselines, ensembled the same way
        print(f"{'  ' + name.replace('_', ' '):<{width}}  (the same ensemble of the members' baselines)  "
              f"top1 {fig['top1']:6.2f}  top5 {fig['top5']:6.2f}")
    if out is not None:
        record = to_jsonable(ensemble_record(summary, time.perf_counter() - t0))
        validate_results(record, out)
        atomic_write_text(out, json.dumps(record, indent=1, allow_nan=False) + "\n")
        print(f"wrote {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from skelssl.evaluation.report import collect, markdown_table

    results = collect([Path(p) for p in args.paths])
    if not results:
        raise CLIError(f"no results.json under {', '.join(args.paths)}")
    print(markdown_table(results))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from skelssl.jobs.official import convert

    r = convert(args.method, args.file, args.out, recipe=args.recipe, overrides=args.overrides, overwrite=args.overwrite)
    kept = f"; kept besides the weights: {', '.join(r['kept'])}" if r["kept"] else ""
    dropped = f"; left out (not storable without pickle): {', '.join(r['dropped'])}" if r["dropped"] else ""
    print(f"converted {r['tensors']} tensors of {r['looks_like']} into {r['run']}{kept}{dropped}")
    return 0


def cmd_export_weights(args: argparse.Namespace) -> int:
    from skelssl.jobs.official import export_weights

    if args.format != "official":
        raise CLIError(f"export-weights writes --format official only, got {args.format!r}")
    r = export_weights(args.run, args.out, overwrite=args.overwrite)
    print(f"wrote {r['tensors']} tensors of the official {r['method']} format (from {r['from']}) to {r['file']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from skelssl.jobs.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, methods=tuple(args.methods) if args.methods else None)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from skelssl.jobs.bench import BenchOptions, format_table, run_bench
    from skelssl.engine.config import ConfigError

    opts = BenchOptions(device=args.device, precision=args.precision, steps=args.steps, warmup=args.warmup,
                        batch=args.batch, frames=args.frames, layout=args.layout, persons=args.persons,
                        naive=args.naive, naive_steps=args.naive_steps)
    try:
        row = run_bench(args.recipe, args.overrides, opts)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        raise CLIError(str(e).strip("'\"")) from None
    print(format_table(row))
    line = json.dumps(row)
    print(line)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(line + "\n")
    return 0


# -- parser ------------------------------------------------------------------------------------------
_REPLACE_STORE = "replace the store at --out (only ever a skelssl store)"
_REPLACE_FILE = "replace an existing --out file"


def _add_overwrite(s: argparse.ArgumentParser, help: str) -> None:
    s.add_argument("--overwrite", action="store_true", help=help)


def _add_overrides(s: argparse.ArgumentParser, help: str | None = None) -> None:
    s.add_argument("overrides", nargs="*", metavar="key=value", help=help)


def _add_device_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--devices", default=None, help="devices per node (Fabric), e.g. 1, 8 or auto")
    s.add_argument("--accelerator", default=None, help="cpu, cuda or auto")


def _parser_prepare(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("prepare", help="read a dataset and write a packed store")
    s.add_argument("format", help="ntu, nucla, msr, utkinect, pku_mmd, pyskl, arrays")
    s.add_argument("source", help="the dataset folder (or file for pyskl/arrays)")
    s.add_argument("--out", required=True, help="store folder to write")
    s.add_argument("--pipeline", default="raw", help="raw (Hi-TRS), agcn (ISC / 2s-AGCN) or ctrgcn (MAMP)")
    s.add_argument("--workers", type=int, default=1, help="reader processes (default 1)")
    s.add_argument("--persons", type=int, default=None, help="person slots M (default: 1 for single-person datasets, else 2)")
    s.add_argument("--layout", default=None, help="layout for formats that do not imply one (pyskl, arrays); for NTU and PKU-MMD "
                   "kinect20 keeps the 20 Kinect v1 joints (pre-training data for N-UCLA, MSR, UTKinect)")
    s.add_argument("--untrimmed", action="store_true", help="PKU-MMD: keep whole sequences with per-frame labels (detection)")
    s.add_argument("--windows", default=None, metavar="LEN[:STRIDE]",
                   help="cut every sequence into windows of LEN frames every STRIDE (default LEN): long or untrimmed "
                        "recordings as unlabelled pre-training clips")
    s.add_argument("--option", "-o", action="append", metavar="KEY=VALUE", help="reader option (repeatable)")
    _add_overwrite(s, _REPLACE_STORE)
    s.set_defaults(func=cmd_prepare)


def _parser_synth(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("synth", help="write a store of procedurally generated actions")
    s.add_argument("--out", required=True)
    s.add_argument("--layout", default="ntu25", choices=("ntu25", "kinect20"))
    s.add_argument("--samples", type=int, default=2000)
    s.add_argument("--seed", type=int, default=0)
    _add_overwrite(s, _REPLACE_STORE)
    s.set_defaults(func=cmd_synth)


def _parser_merge(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("merge", help="one unlabelled pre-training store from the training splits of several stores")
    s.add_argument("stores", nargs="+", metavar="STORE[:PROTOCOL]", help="a store, with the protocol whose training split to take")
    s.add_argument("--out", required=True)
    _add_overwrite(s, _REPLACE_STORE)
    s.set_defaults(func=cmd_merge)


def _parser_info(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("info", help="summarise a store")
    s.add_argument("store")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_info)


def _parser_show(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("show", help="animate one sample as a GIF")
    s.add_argument("store")
    s.add_argument("sample", help="sample name (or index)")
    s.add_argument("--out", required=True, help="output .gif")
    s.add_argument("--fps", type=int, default=15)
    _add_overwrite(s, _REPLACE_FILE)
    s.set_defaults(func=cmd_show)


def _parser_export(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("export", help="write a store in another tool's format")
    s.add_argument("format", help="pyskl (every sample and protocol) or ctrgcn-npz (one protocol, CTR-GCN / MAMP .npz)")
    s.add_argument("store")
    s.add_argument("--out", required=True)
    _add_overwrite(s, _REPLACE_FILE)
    s.add_argument("--protocol", default=None, help="ctrgcn-npz: the protocol whose train and test splits to write")
    s.set_defaults(func=cmd_export)


def _parser_pretrain(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("pretrain", help="self-supervised pre-training from a recipe")
    s.add_argument("recipe")
    s.add_argument("--out", required=True, help="run folder")
    s.add_argument("--resume", action="store_true", help="continue the run in --out")
    s.add_argument("--init-from", default=None, metavar="RUN_OR_FILE",
                   help="start a new run from these weights (a run, converted or ours, or its weights file); "
                        "optimiser, schedule and step start fresh")
    s.add_argument("--nodes", type=int, default=None)
    _add_device_args(s)
    _add_overrides(s)
    s.set_defaults(func=cmd_pretrain)


def _parser_eval(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("eval", help="evaluate an encoder: knn, linear, finetune, semi, tsne, detect, predict")
    s.add_argument("task")
    s.add_argument("run", help="pre-training run folder or encoder checkpoint")
    s.add_argument("--store", default=None, help="store to evaluate on (default: the run's pre-training store)")
    s.add_argument("--protocol", required=True)
    s.add_argument("--out", default=None)
    s.add_argument("--random-init", action="store_true", help="same encoder architecture, random weights")
    s.add_argument("--resume", action="store_true", help="continue an interrupted linear/fine-tune evaluation")
    s.add_argument("--save-logits", action="store_true",
                   help="linear, finetune, semi: write the test split's logits.npz beside results.json (for skelssl ensemble)")
    _add_device_args(s)
    _add_overrides(s)
    s.set_defaults(func=cmd_eval)


def _parser_ensemble(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("ensemble", help="combine saved test logits (eval --save-logits) of several streams or models")
    s.add_argument("members", nargs="+", help="evaluation folders (results.json naming logits.npz) or logits.npz files")
    s.add_argument("--weights", nargs="+", type=float, default=None, help="one weight per member (default all 1)")
    s.add_argument("--logits", action="store_true", help="sum the logits instead of the softmax probabilities")
    s.add_argument("--out", default=None, help="write the ensemble's results.json here (task ensemble)")
    _add_overwrite(s, _REPLACE_FILE)
    s.set_defaults(func=cmd_ensemble)


def _parser_embed(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("embed", help="features of a store's samples from a trained encoder, as eval computes them")
    s.add_argument("run", help="pre-training run folder or encoder.safetensors")
    s.add_argument("--out", required=True, help="feats.npy (with feats.samples.tsv beside it) or feats.npz")
    s.add_argument("--store", default=None, help="store whose samples to embed (default: the run's training store)")
    s.add_argument("--protocol", default=None, help="a protocol of the store (default: every sample)")
    s.add_argument("--split", default=None, choices=("train", "test", "all"),
                   help="which split of --protocol (default: test with a protocol, else all)")
    s.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    _add_overwrite(s, _REPLACE_FILE)
    _add_overrides(s, "evaluation settings, e.g. input.frames=64")
    s.set_defaults(func=cmd_embed)


def _parser_bench(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("bench", help="training, inference and loading speed, FLOP/s and memory of a recipe")
    s.add_argument("recipe")
    s.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    s.add_argument("--precision", choices=("32-true", "bf16-mixed", "16-mixed"), default=None,
                   help="default: the recipe's trainer.precision (32-true on CPU)")
    s.add_argument("--steps", type=int, default=10, help="timed optimiser steps (default 10)")
    s.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    s.add_argument("--batch", type=int, default=None, help="samples per micro-batch (default: data.batch_size)")
    s.add_argument("--frames", type=int, default=None, help="synthetic batch length (default: data.max_frames or 300)")
    s.add_argument("--layout", default="ntu25", help="synthetic batch layout when the store is not here (default ntu25)")
    s.add_argument("--persons", type=int, default=2, help="synthetic batch persons when the store is not here (default 2)")
    s.add_argument("--naive", action="store_true", help="also time the method's naive plug-in step (benchmarks/)")
    s.add_argument("--naive-steps", type=int, default=3, help="timed steps of each plug-in variant (default 3)")
    s.add_argument("--json", default=None, metavar="FILE", help="also write the JSON row to FILE")
    _add_overrides(s)
    s.set_defaults(func=cmd_bench)


def _parser_report(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("report", help="one markdown table of results, with published numbers")
    s.add_argument("paths", nargs="+")
    s.set_defaults(func=cmd_report)


def _parser_convert(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("convert", help="official pre-trained weights (Hi-TRS, ISC, MAMP) -> a skelssl run")
    s.add_argument("method", help="hitrs, isc or mamp")
    s.add_argument("file", help="the official checkpoint (loaded without running code from it)")
    s.add_argument("--out", required=True, help="run folder to write")
    s.add_argument("--recipe", default=None, help="recipe of the official configuration (default configs/METHOD/ntu60_xsub.yaml)")
    _add_overwrite(s, "replace an earlier conversion at --out (only ever one)")
    _add_overrides(s, "changes to the recipe (method.kwargs.decoder_depth=5)")
    s.set_defaults(func=cmd_convert)


def _parser_export_weights(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("export-weights", help="a run's weights as the official code saves them")
    s.add_argument("run", help="run folder (converted or pre-trained) or encoder file")
    s.add_argument("--format", default="official", help="official (the method's own checkpoint format)")
    s.add_argument("--out", required=True, help="file to write")
    _add_overwrite(s, "replace a file skelssl exported earlier (only ever one)")
    s.set_defaults(func=cmd_export_weights)


def _parser_demo(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("demo", help="the whole job on synthetic data, in minutes on a CPU")
    s.add_argument("--out", default="demo_out")
    s.add_argument("--quick", action="store_true", help="a smaller demo (for tests)")
    s.add_argument("--methods", nargs="+", default=None, help="demo methods to run (default: all)")
    s.set_defaults(func=cmd_demo)


# The subcommands in the order `skelssl --help` lists them.
_SUBPARSERS = (_parser_prepare, _parser_synth, _parser_merge, _parser_info, _parser_show, _parser_export,
               _parser_pretrain, _parser_eval, _parser_ensemble, _parser_embed, _parser_bench, _parser_report,
               _parser_convert, _parser_export_weights, _parser_demo)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skelssl", description="Self-supervised learning on skeleton sequences.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBPARSERS:
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come anywhere after the command (argparse only takes positionals that
    # are contiguous), so collect the ones it leaves over.
    args, extra = parser.parse_known_args(argv)
    if extra:
        bad = [e for e in extra if "=" not in e or e.startswith("-") or not hasattr(args, "overrides")]
        if bad:
            parser.error(f"unrecognized arguments: {' '.join(bad)}")
        args.overrides = list(args.overrides) + extra
    try:
        return int(args.func(args) or 0)
    except CLIError as e:
        return _fail(args.command, str(e))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `skelssl info STORE | head`: the reader went away; nothing left to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        reason = _user_error(e)
        if reason is None:
            raise
        return _fail(args.command, reason)


def _fail(command: str, reason: str) -> int:
    print(f"skelssl {command}: error: {reason}", file=sys.stderr)
    return 2


def _user_error(e: Exception) -> str | None:
    """One line for the errors a user's input can cause (bad config, store, checkpoint, folder); ``None``
    for anything else, which is a bug and keeps its traceback."""
    from skelssl.core.conventions import SkeletonFormatError, StoreError
    from skelssl.core.files import OutputError
    from skelssl.engine.checkpoint import CheckpointError
    from skelssl.engine.config import ConfigError
    from skelssl.engine.loop import NonFiniteLossError

    if isinstance(e, (ConfigError, StoreError, OutputError, CheckpointError, NonFiniteLossError, SkeletonFormatError)):
        return " ".join(str(e).strip("'\"").split())
    if isinstance(e, OSError) and e.strerror:
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror}"
    return None


if __name__ == "__main__":
    sys.exit(main())
