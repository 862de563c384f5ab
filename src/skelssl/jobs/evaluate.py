"""Evaluation protocols as jobs: kNN, linear, fine-tune, semi-supervised, transfer, t-SNE, detection,
motion prediction.

Every protocol loads an *encoder* (``RUN/encoder.safetensors`` or an encoder file), never the method
that trained it, and writes ``results.json`` into ``RUN/eval/<task>-<protocol>[-random]/`` (or
``--out``). Linear probing and fine-tuning run in the same :class:`~skelssl.engine.loop.Trainer` as
pre-training, with a :class:`~skelssl.evaluation.heads.Classifier` as the module and a test-set
evaluation after every epoch, so both the final-epoch and the best-epoch accuracy are reported (the
ISC and MAMP codes report the best epoch on the test split; docs/protocols.md asks for both).

``--random-init`` evaluates the same encoder architecture with random weights: the baseline every
self-supervised number is read against. Evaluating on a store other than the pre-training store is
transfer; where the layouts differ, parameters whose shapes depend on the joint count are
re-initialised and listed in the results.

This module resolves the command line into an :class:`~skelssl.jobs.eval_context.EvalContext` and
dispatches; each protocol's runner lives in its own module: ``knn`` and ``linear`` in
:mod:`skelssl.jobs.evaluate_frozen`, ``finetune`` and ``semi`` (and ``linear.probe=sgd``) in
:mod:`skelssl.jobs.evaluate_classifier`, ``tsne`` in :mod:`skelssl.jobs.evaluate_tsne`, ``detect``
(temporal action detection on an untrimmed store) in :mod:`skelssl.jobs.evaluate_detect` and
``predict`` (motion prediction) in :mod:`skelssl.jobs.evaluate_predict`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from skelssl.data.dataset import SkeletonDataset
from skelssl.data.protocols import sequence_split, identical_to_train_count
from skelssl.data.protocols import split as protocol_split
from skelssl.data.store import Store
from skelssl.engine.config import ConfigError, load_eval_config, to_dict
from skelssl.engine.eval_config import EvalConfig
from skelssl.evaluation.results import TASKS, config_hash, write_results
from skelssl.jobs.eval_context import EncoderSource, EvalContext, load_encoder_source
from skelssl.jobs.evaluate_classifier import run_finetune, run_semi
from skelssl.jobs.evaluate_detect import run_detect
from skelssl.jobs.evaluate_frozen import run_knn, run_linear
from skelssl.jobs.evaluate_predict import run_predict
from skelssl.jobs.evaluate_tsne import run_tsne, silhouette_cosine

__all__ = ["TASKS", "EncoderSource", "EvalContext", "load_encoder_source", "evaluate", "settings_hash", "default_out_dir", "silhouette_cosine"]

LOGIT_TASKS = ("linear", "finetune", "semi")  # the protocols with a classifier whose test logits can be saved


def default_out_dir(source: EncoderSource, task: str, protocol: str, random_init: bool, suffix: str = "") -> Path:
    if not source.weights:  # a recipe: runs/<recipe name>/eval/...
        base = Path("runs") / source.path.stem
    else:
        base = source.run_dir if source.run_dir is not None else source.path.parent
    return base / "eval" / f"{task}-{protocol}{suffix}{'-random' if random_init else ''}"


_RUNNERS = {  # semi writes one result per label fraction (its own branch in evaluate)
    "knn": run_knn, "linear": run_linear, "finetune": run_finetune, "tsne": run_tsne,
    "detect": run_detect, "predict": run_predict,
}
_SEED_SECTION = {"linear": "linear", "detect": "detect", "predict": "predict"}  # the others: finetune's


def _trains_on_fabric(task: str, cfg: EvalConfig) -> bool:
    """Whether this protocol trains a network through Fabric (and so honours ``--devices``)."""
    return task in ("finetune", "semi") or (task == "linear" and cfg.linear.probe != "robust")


def _input_warnings(source: EncoderSource, store: Store, reinit: list[str]) -> list[str]:
    """What the user should know about this evaluation's input (printed by the CLI, kept in results)."""
    out = []
    if reinit:
        out.append(f"{len(reinit)} encoder tensor(s) re-initialised for layout {store.layout.name} "
                   f"({', '.join(reinit[:3])}{', ...' if len(reinit) > 3 else ''}): they are not pre-trained")
    pre = source.pretrain_store
    if pre and (Path(pre) / "store.json").is_file():
        try:
            pretrain_pipeline = json.loads((Path(pre) / "store.json").read_text()).get("pipeline")
        except (OSError, ValueError):
            pretrain_pipeline = None
        if pretrain_pipeline and pretrain_pipeline != store.pipeline:
            out.append(f"pre-trained on the {pretrain_pipeline!r} pipeline ({pre}), evaluated on {store.pipeline!r} "
                       f"({store.path}): the coordinates differ (prepare the evaluation store with --pipeline {pretrain_pipeline})")
    return out


# -- the job -----------------------------------------------------------------------------------------------
def evaluate(
    task: str,
    run: str | Path,
    *,
    store: str | Path | None,
    protocol: str,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    random_init: bool = False,
    devices: int | str | None = None,
    accelerator: str | None = None,
    progress: bool = False,
    resume: bool = False,
    save_logits: bool = False,
) -> dict[str, Any]:
    """Run one evaluation protocol and write its ``results.json``.

    Args:
        task: ``knn``, ``linear``, ``finetune``, ``semi``, ``tsne``, ``detect`` (needs an untrimmed
            store) or ``predict``.
        run: a pre-training run folder or an encoder file.
        store: the store to evaluate on (default: the run's pre-training store).
        protocol: a named protocol of that store.
        out: output folder (default ``RUN/eval/<task>-<protocol>[-random]``).
        overrides: ``section.key=value`` settings of :class:`EvalConfig`.
        random_init: the same encoder architecture with random weights.
        devices, accelerator: for the training protocols (Fabric).
        progress: progress bars.
        resume: continue an interrupted linear/fine-tune evaluation in ``out``.
        save_logits: write the test split's ``logits.npz`` (:mod:`skelssl.evaluation.logits`) beside
            ``results.json`` (``semi``: in each fraction's ``seed<s>`` folder), named by the results'
            ``logits`` field; for ``linear``, ``finetune`` and ``semi`` only.

    Returns:
        The results dict (for ``semi``: the one of the first label fraction; all are written).
    """
    if task not in TASKS:
        raise ConfigError(f"unknown evaluation task {task!r}; known: {', '.join(TASKS)}")
    if save_logits and task not in LOGIT_TASKS:
        raise ConfigError(f"--save-logits: {task} has no classifier; it is for {', '.join(LOGIT_TASKS)}")
    t0 = time.perf_counter()
    source = load_encoder_source(run)
    store_path = store or source.pretrain_store
    if not store_path:
        raise ConfigError("--store: the run names no pre-training store; give the store to evaluate on")
    ctx, transfer = _context(task, source, Path(store_path), protocol, out, overrides, random_init, devices,
                             accelerator, progress, resume, save_logits)
    common = _common_fields(ctx, task, transfer)
    if task == "semi":
        results = []
        for r in run_semi(ctx):
            full = {"task": "semi", **common, **r, "seed": ctx.cfg.semi.seeds[0], "wall_seconds": time.perf_counter() - t0}
            write_results(ctx.out / f"{r['label_fraction']:g}", full)
            results.append(full)
        return results[0]
    r = _RUNNERS[task](ctx)
    results = {  # a protocol may count its own samples (detect: sequences, predict: those long enough)
        "task": "transfer" if transfer and task == "finetune" else task, **common,
        "train_samples": int(len(ctx.train_idx)), **r, "seed": ctx.seed, "wall_seconds": time.perf_counter() - t0,
    }
    write_results(ctx.out, results)
    return results


def _context(task: str, source: EncoderSource, store_path: Path, protocol: str, out: str | Path | None,
             overrides: list[str] | tuple[str, ...], random_init: bool, devices: int | str | None,
             accelerator: str | None, progress: bool, resume: bool, save_logits: bool) -> tuple[EvalContext, bool]:
    """The typed context of one evaluation (settings, encoder, splits, device, output) and whether it
    evaluates on another store than the pre-training one (a transfer)."""
    store_obj = source.input_store(Store(store_path))
    if task in ("detect", "predict") and store_obj.stream != "joint":  # before any feature is computed
        raise ConfigError(f"{task} reads whole sequences of joint coordinates; this encoder was trained on the "
                          f"{store_obj.stream} stream (data.stream)")
    cfg = load_eval_config(source.run_config.get("eval"), overrides)
    # Detection runs on whole untrimmed sequences (label -1, per-frame labels), the rest on labelled samples.
    train_idx, test_idx = (sequence_split if task == "detect" else protocol_split)(store_obj, protocol)
    section = getattr(cfg, _SEED_SECTION.get(task, "finetune"))  # semi trains with the finetune settings
    seed = section.seed
    task_encoder = dict(section.encoder) if task in ("linear", "finetune", "semi") else {}
    encoder, reinit = source.build(store_obj, random_init, seed=seed, overrides=task_encoder)
    device = torch.device("cuda" if (accelerator in (None, "auto", "cuda", "gpu") and torch.cuda.is_available()) else "cpu")
    transfer = source.pretrain_store is not None and Path(source.pretrain_store).resolve() != store_path.resolve()
    warnings = _input_warnings(source, store_obj, reinit)
    if devices not in (None, 1, "1") and not _trains_on_fabric(task, cfg):
        warnings.append(f"--devices {devices}: {task} runs in one process on one device (only the trained protocols, "
                        "finetune, semi and linear with linear.probe=sgd, spread over devices)")
    ctx = EvalContext(
        cfg=cfg, encoder=encoder, store=store_obj, protocol=protocol, source=source, random_init=random_init,
        train_set=SkeletonDataset(store_obj, train_idx, max_frames=cfg.input.max_frames),
        test_set=SkeletonDataset(store_obj, test_idx, max_frames=cfg.input.max_frames),
        train_idx=train_idx, test_idx=test_idx,
        num_classes=store_obj.num_classes, device=device, progress=progress,
        out=Path(out) if out else default_out_dir(source, task, protocol, random_init),
        devices=devices if devices is not None else 1, accelerator=accelerator or "auto", resume=resume,
        label=source.spec["name"] + (" (random init)" if random_init else ""),
        seed=seed, task_encoder=task_encoder, save_logits=save_logits, warnings=warnings, reinitialised=reinit,
    )
    return ctx, transfer


def _settings_hash(task: str, cfg: EvalConfig, source: EncoderSource) -> str:
    return config_hash({"eval": to_dict(cfg), "task": task, "encoder": source.spec})


def settings_hash(task: str, run: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """The ``config_hash`` that evaluating ``run`` with ``overrides`` records in its results: a result
    whose hash differs was computed with other settings (a changed preset, another override)."""
    source = load_encoder_source(run)
    return _settings_hash(task, load_eval_config(source.run_config.get("eval"), list(overrides)), source)


def _common_fields(ctx: EvalContext, task: str, transfer: bool) -> dict[str, Any]:
    """The results fields every protocol shares: what was evaluated, on what, and what to beware of."""
    source, store = ctx.source, ctx.store
    return {
        "protocol": ctx.protocol,
        "test_samples": int(len(ctx.test_idx)),
        "config_hash": _settings_hash(task, ctx.cfg, source),
        "encoder": source.spec["name"],
        "run": str(source.run_dir or source.path),
        "method": ((source.run_config.get("method") or {}).get("name") or source.spec["name"]) if source.weights else "supervised",
        "store": str(Path(store.path).absolute()),
        "stream": store.stream,  # the input stream the encoder and both baselines read (data.stream of the run)
        # what report needs to never put a paper's number beside a user's data
        "store_dataset": store.dataset, "store_classes": store.num_classes,
        "store_source_format": store.info.get("source_format"),
        "random_init": ctx.random_init,
        "transfer_from": source.pretrain_store if transfer else None,
        "reinitialised": ctx.reinitialised,
        "warnings": ctx.warnings,
        # test samples bit-identical to a training sample (None: the store does not record it)
        "test_identical_to_train": identical_to_train_count(store, ctx.train_idx, ctx.test_idx),
    }
