"""``skelssl demo``: the whole job on the embedded synthetic data, in minutes on a CPU.

1. Generate a store of procedural actions (no download) and animate one sample.
2. Pre-train small encoders with self-supervision (the methods in :data:`DEMO_METHODS`).
3. Evaluate each by kNN and a linear probe on ``synthetic-xsub``, beside the same encoder from
   random initialisation.
4. Print the report table (also ``report.md``) and write the pictures (t-SNE of the test features,
   the pre-training loss curve, the animation).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from skelssl.core.files import OutputError
from skelssl.engine.config import RunConfig, from_dict

__all__ = ["run_demo", "DEMO_METHODS", "demo_config"]

PROTOCOL = "synthetic-xsub"
PIPELINE = "ctrgcn"

# name -> (encoder section, method section, optimiser, epochs, eval section) of the small models the
# demo pre-trains. Motion-Transformer (reconstructed) at its CPU size learns well in a few minutes;
# the SimCLR baseline on a small ST-GCN is the simplest row of every comparison.
DEMO_METHODS: dict[str, dict[str, Any]] = {
    # The CPU recipes of configs/<method>/nucla_cpu.yaml, sized to about a minute each here.
    "isc": {
        "encoder": {"name": "gru", "kwargs": {"mode": "faithful", "preset": "small"}},
        "method": {"name": "isc", "kwargs": {"partner": {"name": "agcn", "kwargs": {"preset": "small"}}, "queue_size": 0,
                                             "momentum": 0.99, "shear": 0.5, "corrupt_joints": 0, "frames": 32}},
        # AdamW: at this budget SGD left the GRU where it started (benchmarks/RESULTS.md, "The demo on a centred store").
        "optim": {"name": "adamw", "lr": 2e-3, "weight_decay": 0.01},
        "schedule": {"name": "cosine", "warmup_epochs": 1, "min_lr": 0.0},
        "epochs": 10,
        "batch_size": 32,
        "eval": {"input": {"frames": 32, "min_frames": 16}},
    },
    "hitrs": {
        # One-person clips: the absent second body is not encoded (official: encoded and averaged in),
        # which halves the cost of evaluating most of the demo's clips.
        "encoder": {"name": "hitrs", "kwargs": {"preset": "small", "absent_persons": "ignore"}},
        "method": {"name": "hitrs", "kwargs": {}},
        "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
        "schedule": {"name": "linear", "warmup_steps": 20, "min_lr": 2e-6},
        "epochs": 2,
        "batch_size": 32,
        "max_frames": 48,
        "eval": {"input": {"frames": None, "max_frames": 48}},
    },
    "mamp": {
        "encoder": {"name": "mamp", "kwargs": {"preset": "small", "frames": 32}},
        "method": {"name": "mamp", "kwargs": {"tau": 0.8, "decoder_depth": 2, "min_frames": 16}},
        "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05, "betas": [0.9, 0.95]},
        "schedule": {"name": "cosine", "warmup_epochs": 1, "min_lr": 5e-4},
        "epochs": 4,
        "batch_size": 32,
        "eval": {"input": {"frames": 32, "min_frames": 16}},
    },
    "motion_transformer": {
        "encoder": {"name": "motion_transformer", "kwargs": {"layers": 4, "hidden": 128, "heads": 4, "intermediate": 512, "frames": 60}},
        "method": {"name": "motion_transformer", "kwargs": {"tasks": ["flow"]}},
        "optim": {"name": "adamw", "lr": 5e-4, "weight_decay": 0.01, "eps": 1e-6, "no_decay": ["bias", "norm"]},
        "schedule": {"name": "linear", "warmup_epochs": 2, "min_lr": 0.0},
        "epochs": 25,
        "batch_size": 32,
        "eval": {"input": {"frames": None, "max_frames": None}},
    },
    "simclr": {
        "encoder": {"name": "stgcn", "kwargs": {"channels": [32, 32, 64, 64], "strides": [1, 2, 1, 2], "temporal_kernel": 5}},
        "method": {"name": "simclr", "kwargs": {"frames": 24, "crop": [0.6, 1.0], "shear": 0.5, "rotate": 0.2,
                                                "temperature": 0.1, "hidden_dim": 128, "proj_dim": 64}},
        "optim": {"name": "adamw", "lr": 2e-3, "weight_decay": 1e-4},
        "schedule": {"name": "cosine", "warmup_epochs": 1, "min_lr": 1e-5},
        "epochs": 8,
        "batch_size": 64,
        "eval": {"input": {"frames": 24, "min_frames": 12}},
    },
}


def demo_config(store: Path, method: str, epochs: int | None = None) -> RunConfig:
    """The pre-training config of one demo method (also saved in its run folder)."""
    spec = DEMO_METHODS[method]
    # linear: the robust probe (the default), with its baselines; a shorter cross-validation grid
    # keeps the demo within minutes (the raw input is shared by methods with the same input).
    evaluation = {**spec["eval"], "probe": {"cs": [1e-2, 1e-1, 1.0, 10.0, 100.0], "folds": 3}}
    return from_dict(RunConfig, {
        "data": {"store": str(store), "protocol": PROTOCOL, "split": "train", "batch_size": spec["batch_size"],
                 "max_frames": spec.get("max_frames", 120)},
        "encoder": spec["encoder"],
        "method": spec["method"],
        "optim": spec["optim"],
        "schedule": spec["schedule"],
        "trainer": {"epochs": epochs or spec["epochs"], "seed": 0, "log_every": 5, "progress": True, "grad_clip": 1.0},
        "monitor": {"every_epochs": max(1, (epochs or spec["epochs"]) // 4)},
        "eval": evaluation,
    })


# Pre-trained by `skelssl demo` unless --methods says otherwise: the seeds' methods and the strongest.
DEFAULT_DEMO = ("isc", "hitrs", "mamp")

# What an interrupted demo pre-training run may hold (anything else means the folder is not ours).
DEMO_RUN_FILES = frozenset({"config.yaml", "metrics.jsonl", "tb", "checkpoints", ".lock", "loss.png"})


def run_demo(out: Path, quick: bool = False, log: Callable[[str], None] = print, methods: tuple[str, ...] | None = None) -> Path:
    """Run the demo into ``out``; returns the report file.

    Args:
        out: the demo folder (store, runs, pictures, ``report.md``).
        quick: a much smaller version (for tests).
        log: where progress lines go (the CLI passes ``print``).
        methods: which of :data:`DEMO_METHODS` to pre-train (default: :data:`DEFAULT_DEMO`).
    """
    from skelssl.data.store import atomic_write_text
    from skelssl.evaluation.report import collect, markdown_table

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    methods = tuple(methods or DEFAULT_DEMO)
    unknown = [m for m in methods if m not in DEMO_METHODS]
    if unknown:
        raise KeyError(f"unknown demo method(s) {unknown}; known: {', '.join(DEMO_METHODS)}")
    store = _demo_store(out, 160 if quick else 1200, log)
    verdicts = []
    for method in methods:
        run = out / "runs" / method
        _pretrain(store.path, method, run, 1 if quick else None, log)
        verdicts += _evaluate(run, method, log)

    table = markdown_table(collect([out / "runs"]))
    report = out / "report.md"
    atomic_write_text(report, f"# skelssl demo (synthetic data, {PROTOCOL})\n\n{table}\n")
    log("")
    log(table)
    log("")
    lost = [f"{m} {t}" for m, t, ok in verdicts if not ok]
    log(f"[demo] {len(verdicts) - len(lost)} of {len(verdicts)} pre-trained results beat both random init and raw input"
        + (f"; not: {', '.join(lost)}" if lost else ""))
    log(f"[demo] done in {time.perf_counter() - t0:.0f} s; report {report}, pictures under {out}")
    return report


def _demo_store(out: Path, samples: int, log: Callable[[str], None]):
    """The demo's synthetic store (made once, kept for later demos into the same folder) and one animated sample."""
    from skelssl.data import synthetic
    from skelssl.data.prepare import store_summary
    from skelssl.data.store import Store
    from skelssl.viz.animate import animate

    t = time.perf_counter()
    store_dir = out / "store"
    store = Store(store_dir) if (store_dir / "store.json").is_file() else None
    if store is None or len(store) != samples or store.pipeline != PIPELINE:
        log(f"[demo] generating {samples} synthetic action sequences ...")
        # Centred on the spine as the MAMP / CTR-GCN data are (orientation kept): in camera coordinates the
        # contrastive methods match two views of a clip by where it stands, not by how it moves.
        store = synthetic.write_store(store_dir, num_samples=samples, layout="ntu25", seed=0, overwrite=True,
                                      pipeline=PIPELINE)
    info = store_summary(store)
    log(f"[demo] store {store.path}: {info['samples']} samples, {info['classes']} classes, {info['frames']} frames; "
        f"{PROTOCOL}: {info['protocols'][PROTOCOL]['train']} train / {info['protocols'][PROTOCOL]['test']} test")
    two_person = next((i for i in range(len(store)) if store.meta["persons"][i] == 2), 0)
    gif = animate(store.frames(two_person), store.layout, out / "sample.gif",
                  title=f"{store.names[two_person]} ({store.class_names[store.labels[two_person]]})")
    log(f"[demo] animation of one sample: {gif} ({time.perf_counter() - t:.0f} s with the store)")
    return store


def _pretrain(store: Path, method: str, run: Path, epochs: int | None, log: Callable[[str], None]) -> None:
    """Pre-train one demo method into ``run`` unless a finished run is there; an unfinished demo run of
    ours is started again, a folder of anything else is left alone."""
    from skelssl.jobs.pretrain import pretrain

    if (run / "encoder.safetensors").is_file():
        return
    cfg = demo_config(store, method, epochs)
    log(f"[demo] pre-training {method} ({cfg.encoder.name} encoder) for {cfg.trainer.epochs} epochs ...")
    if run.exists():
        if not _unfinished_demo_run(run, store, method):
            raise OutputError(f"{run} exists and is not an unfinished demo run; move it away or choose another --out")
        import shutil

        shutil.rmtree(run)
    summary = pretrain(cfg, run)
    log(f"[demo] {method}: {summary['step']} steps in {summary['elapsed_s']:.0f} s, final loss {summary['loss']:.3f}")


def _unfinished_demo_run(run: Path, store: Path, method: str) -> bool:
    """``run`` holds only what a demo pre-training writes, and its config is this demo's run of
    ``method`` on this demo's store (so a user's folder that merely looks alike is never removed)."""
    import yaml

    if not run.is_dir() or run.is_symlink() or any(p.name not in DEMO_RUN_FILES for p in run.iterdir()):
        return False
    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(cfg, dict):
        return False
    data, spec = cfg.get("data") or {}, cfg.get("method") or {}
    if not isinstance(data.get("store"), str) or spec.get("name") != DEMO_METHODS[method]["method"]["name"]:
        return False
    return Path(data["store"]).resolve() == Path(store).resolve()


def _evaluate(run: Path, method: str, log: Callable[[str], None]) -> list[tuple[str, str, bool]]:
    """kNN and the robust probe of one run beside its baselines, its loss picture and its t-SNE;
    returns ``(method, task, beats both baselines)`` per task."""
    from skelssl.jobs.evaluate import evaluate
    from skelssl.viz.curves import plot_curves

    t = time.perf_counter()
    plot_curves(run / "metrics.jsonl", run / "loss.png", keys=("loss", "monitor_knn", "monitor_rank"),
                title=f"{method} pre-training: loss, held-out kNN and effective rank (training split)")
    verdicts = []
    for task in ("knn", "linear"):
        # Each result carries its random-init and raw-input baselines (same store, split, input); the
        # second task reuses the features' figures of the first.
        r = evaluate(task, run, store=None, protocol=PROTOCOL, accelerator="cpu")
        key = "knn_top1" if task == "knn" else "probe_top1"
        rand, raw = r["baselines"]["random_init"][key], r["baselines"]["raw_input"][key]
        ok = r["final"] > rand and r["final"] > raw
        verdicts.append((method, task, ok))
        log(f"[demo] {method:18s} {task:6s} {r['final']:6.2f}   random init {rand:6.2f}   raw input {raw:6.2f}   "
            f"{'beats both' if ok else 'does NOT beat both'}   (effective rank {r['diagnostics']['effective_rank']:.1f})")
    r = evaluate("tsne", run, store=None, protocol=PROTOCOL, accelerator="cpu")
    log(f"[demo] t-SNE of the test features: {Path(r['run']) / 'eval' / f'tsne-{PROTOCOL}' / 'embedding.png'} "
        f"({time.perf_counter() - t:.0f} s of evaluation)")
    return verdicts
