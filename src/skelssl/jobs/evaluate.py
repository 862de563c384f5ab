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

``detect`` (temporal action detection on an untrimmed store, :mod:`skelssl.jobs.evaluate_detect`)
and ``predict`` (motion prediction, :mod:`skelssl.jobs.evaluate_predict`) live in their own modules.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from skelssl.data.dataset import SkeletonDataset
from skelssl.data.protocols import sequence_split, identical_to_train_count
from skelssl.data.protocols import split as protocol_split
from skelssl.data.protocols import subset_indices
from skelssl.data.store import Store
from skelssl.engine.config import ConfigError, TrainerConfig, to_dict
from skelssl.engine.eval_config import ClassifierTaskConfig, EvalConfig, load_eval_config
from skelssl.engine.eval_input import test_transform as _test_transform
from skelssl.engine.eval_input import train_transform as _train_transform
from skelssl.engine.loop import Trainer
from skelssl.engine.optim import block_layer_id, build_optimizer, layer_decay_groups, scheduler_factory
from skelssl.engine.seed import seed_all
from skelssl.evaluation.features import CachedEncoder, FeatureSet, collate_features, extract_features
from skelssl.evaluation.heads import Classifier, LinearHead, MLPHead, evaluate_classifier
from skelssl.evaluation.knn import knn_accuracy
from skelssl.evaluation.logits import LOGITS_FILE, write_logits
from skelssl.evaluation.results import config_hash, write_results
from skelssl.jobs.eval_context import EncoderSource, EvalContext, load_encoder_source
from skelssl.jobs.evaluate_detect import run_detect
from skelssl.jobs.evaluate_frozen import baselines, copies_of, encoder_features, frozen_figures
from skelssl.jobs.evaluate_predict import run_predict

__all__ = ["TASKS", "EncoderSource", "load_encoder_source", "evaluate", "default_out_dir"]

TASKS = ("knn", "linear", "finetune", "semi", "tsne", "detect", "predict")
LOGIT_TASKS = ("linear", "finetune", "semi")  # the protocols with a classifier whose test logits can be saved


def default_out_dir(source: EncoderSource, task: str, protocol: str, random_init: bool, suffix: str = "") -> Path:
    if not source.weights:  # a recipe: runs/<recipe name>/eval/...
        base = Path("runs") / source.path.stem
    else:
        base = source.run_dir if source.run_dir is not None else source.path.parent
    return base / "eval" / f"{task}-{protocol}{suffix}{'-random' if random_init else ''}"


# -- protocols ---------------------------------------------------------------------------------------------
def _knn(ctx: EvalContext) -> dict[str, Any]:
    cfg = ctx.cfg
    train_f, train_y, test_f, test_y = encoder_features(ctx, ctx.encoder)
    copies = copies_of(ctx)
    figures = frozen_figures(cfg, train_f, train_y, test_f, test_y, copies)
    k0 = cfg.knn.ks[0]
    per_k = {f"k{k0}": figures["knn_top1"]}  # the headline k, as frozen_figures measured it
    for k in cfg.knn.ks[1:]:
        weighting = "uniform" if k == 1 else cfg.knn.weighting
        per_k[f"k{k}"] = knn_accuracy(train_f, train_y, test_f, test_y, k=k, metric="cosine", weighting=weighting, temperature=cfg.knn.temperature)
    return {"metric": f"top1 (k={k0}, cosine)", "final": per_k[f"k{k0}"], "best": None, "per_k": per_k,
            "feature_dim": int(train_f.shape[1]), **_frozen_fields(ctx, figures, copies)}


def _frozen_fields(ctx: EvalContext, figures: dict[str, Any], copies: np.ndarray | None) -> dict[str, Any]:
    """``frozen`` (kNN and robust probe of these features), ``diagnostics`` and ``baselines``."""
    figures = dict(figures)
    diagnostics = figures.pop("diagnostics", None)
    return {"frozen": figures, "diagnostics": diagnostics, "baselines": baselines(ctx, copies)}


def _linear(ctx: EvalContext) -> dict[str, Any]:
    """The robust probe (default) or the preset's SGD protocol, with the robust probe beside it."""
    cfg = ctx.cfg
    train_f, train_y, test_f, test_y = encoder_features(ctx, ctx.encoder)
    copies = copies_of(ctx)
    kept: dict[str, Any] = {}
    figures = frozen_figures(cfg, train_f, train_y, test_f, test_y, copies, keep=kept)
    if cfg.linear.probe == "robust":
        r = {"metric": "top1", "final": figures["probe_top1"], "best": None}
        if ctx.save_logits:
            r["logits"] = _save_logits(ctx, ctx.out, kept["probe"].test_logits(ctx.num_classes), test_y, "log_proba")
    else:
        r = _train_classifier(ctx, cfg.linear, freeze=True, out_dir=ctx.out, train_set=ctx.train_set)
    return {**r, "probe": cfg.linear.probe, "feature_dim": int(train_f.shape[1]), **_frozen_fields(ctx, figures, copies)}


def _save_logits(ctx: EvalContext, out_dir: Path, logits: np.ndarray, labels: np.ndarray, kind: str = "logits") -> str:
    """Write the test split's ``logits.npz`` into ``out_dir`` (the evaluation's own folder); its name,
    for ``results.json``. Rows are the test set's, in the protocol's order (``ctx.test_idx``)."""
    store = ctx.store
    idx = np.asarray(ctx.test_idx, np.int64)
    labels = np.asarray(labels, np.int64)
    if len(labels) != len(idx) or not np.array_equal(labels, np.asarray(store.labels)[idx]):
        raise RuntimeError("the test logits are not in the test split's order")  # a bug, not a user error
    write_logits(Path(out_dir) / LOGITS_FILE, logits, labels, idx, store.names[idx],
                 store=str(Path(store.path).absolute()), kind=kind)
    return LOGITS_FILE


def _make_head(task: ClassifierTaskConfig, in_dim: int, classes: int) -> nn.Module:
    if task.head == "mlp":
        return MLPHead(in_dim, classes)
    return LinearHead(in_dim, classes, batch_norm=task.head == "linear_bn")


def _train_classifier(ctx: EvalContext, task: ClassifierTaskConfig, freeze: bool, out_dir: Path, train_set: SkeletonDataset) -> dict[str, Any]:
    cfg = ctx.cfg
    encoder = ctx.encoder
    test_set, test_tf, train_tf, collate_fn = ctx.test_set, _test_transform(cfg.input), _train_transform(cfg.input, ctx.test_set.store.coords), None
    if freeze and task.cache_features:
        kw = dict(batch_size=128, device=ctx.device, batch_transform=test_tf, num_workers=cfg.num_workers, progress=ctx.progress)
        train_set = FeatureSet(*extract_features(encoder, train_set, **kw))
        test_set = FeatureSet(*extract_features(encoder, test_set, **kw))
        encoder, test_tf, train_tf, collate_fn = CachedEncoder(encoder.out_dim), None, None, collate_features
    seed_all(task.seed)
    classifier = Classifier(
        encoder, _make_head(task, encoder.out_dim, ctx.num_classes),
        freeze_encoder=freeze, label_smoothing=task.label_smoothing, dropout=task.dropout,
    )

    def make_optimizer(module: nn.Module) -> torch.optim.Optimizer:
        if task.layer_decay and not freeze and hasattr(encoder, "num_layers"):
            top = int(encoder.num_layers) + 1
            layer_of = block_layer_id(top, block_pattern=r"(?:^|\.)blocks\.(\d+)\.")

            def layer_id(name: str) -> int:
                return layer_of(name[len("encoder."):]) if name.startswith("encoder.") else top

            groups = layer_decay_groups(module.named_parameters(), top, task.layer_decay, layer_id, task.optim.weight_decay)
            return build_optimizer(task.optim, groups)
        from skelssl.engine.optim import param_groups_for

        return build_optimizer(task.optim, param_groups_for(module, task.optim))

    trainer_cfg = TrainerConfig(
        epochs=task.epochs, accumulate=task.accumulate, grad_clip=task.grad_clip, seed=task.seed,
        progress=ctx.progress, log_every=10, ckpt_every_epochs=1, accelerator=ctx.accelerator, devices=ctx.devices,
    )
    trainer = Trainer(trainer_cfg, out_dir)
    fabric = trainer.fabric
    last: dict[str, torch.Tensor] = {}  # the latest test evaluation's logits and labels

    def evaluate(module: nn.Module, epoch: int) -> dict[str, float]:
        r = evaluate_classifier(
            module, test_set, batch_size=max(task.batch_size, 64), device=fabric.device, batch_transform=test_tf,
            num_workers=cfg.num_workers, progress=False,
            gather=fabric.all_gather if fabric.world_size > 1 else None, rank=fabric.global_rank, world_size=fabric.world_size,
            collate_fn=collate_fn,
        )
        last.update(logits=r["logits"], labels=r["labels"])
        return {"top1": r["top1"], "top5": r["top5"], "test_loss": r["loss"]}

    summary = trainer.fit(
        classifier, train_set, batch_size=min(task.batch_size, len(train_set)), num_workers=cfg.num_workers,
        optimizer_factory=make_optimizer, scheduler_factory=scheduler_factory(task.schedule),
        batch_transform=train_tf, resume=ctx.resume, evaluate=evaluate,
        config_dict={"eval": to_dict(cfg), "task": to_dict(task)}, drop_last=False,
        **({"collate_fn": collate_fn} if collate_fn is not None else {}),
    )
    history = summary["eval_history"]
    best = max(history, key=lambda h: h["top1"])
    out = {
        "metric": "top1",
        "final": history[-1]["top1"],
        "final_top5": history[-1]["top5"],
        "best": {"epoch": int(best["epoch"]), "value": best["top1"]},
        "curve": [round(h["top1"], 3) for h in history],
    }
    if ctx.save_logits:
        if not last:  # a resumed evaluation that had already finished: test the trained head once more
            evaluate(classifier, int(history[-1]["epoch"]))
        if trainer.is_main:  # the final epoch's head, as "final" reports it
            out["logits"] = _save_logits(ctx, out_dir, last["logits"].numpy(), last["labels"].numpy())
        else:
            out["logits"] = LOGITS_FILE
    return out


def _classifier_task(name: str) -> Callable[[EvalContext], dict[str, Any]]:
    def run(ctx: EvalContext) -> dict[str, Any]:
        task = getattr(ctx.cfg, "linear" if name == "linear" else "finetune")
        return _train_classifier(ctx, task, freeze=name == "linear", out_dir=ctx.out, train_set=ctx.train_set)

    return run


def _semi(ctx: EvalContext) -> list[dict[str, Any]]:
    cfg = ctx.cfg
    store = ctx.store
    outputs = []
    for fraction in cfg.semi.fractions:
        runs = []
        for s in cfg.semi.seeds:
            idx = subset_indices(store, ctx.protocol, fraction, s)
            train_set = SkeletonDataset(store, idx, max_frames=cfg.input.max_frames)
            # A fresh encoder per run: fine-tuning changes its weights.
            ctx.encoder, _ = ctx.source.build(store, ctx.random_init, seed=s, overrides=dict(cfg.finetune.encoder))
            task = replace(cfg.finetune, seed=s)
            r = _train_classifier(ctx, task, freeze=False, out_dir=ctx.out / f"{fraction:g}" / f"seed{s}", train_set=train_set)
            if "logits" in r:  # named from the fraction's results.json
                r["logits"] = f"seed{s}/{r['logits']}"
            runs.append({"subset_seed": s, "train_samples": len(idx), **r})
        finals = np.array([r["final"] for r in runs])
        bests = np.array([r["best"]["value"] for r in runs])
        outputs.append({
            "label_fraction": fraction,
            "metric": "top1",
            "final": float(finals.mean()),
            "std": float(finals.std(ddof=1)) if len(finals) > 1 else 0.0,
            "best": {"epoch": None, "value": float(bests.mean())},
            "train_samples": int(np.mean([r["train_samples"] for r in runs])),
            "seeds": list(cfg.semi.seeds),
            "per_seed": runs,
        })
    return outputs


def _tsne(ctx: EvalContext) -> dict[str, Any]:
    from skelssl.viz.embedding import embedding_plot

    cfg = ctx.cfg
    feats, labels = extract_features(
        ctx.encoder, ctx.test_set, batch_size=cfg.tsne.batch_size, device=ctx.device,
        batch_transform=_test_transform(cfg.input), num_workers=cfg.num_workers, progress=ctx.progress,
    )
    store = ctx.store
    title = f"{ctx.label} on {ctx.protocol} (test)"
    png = embedding_plot(feats.numpy(), labels.numpy(), store.class_names, ctx.out / "embedding.png",
                         method=cfg.tsne.method, seed=0, title=title, max_points=cfg.tsne.max_points)
    score = silhouette_cosine(feats.numpy(), labels.numpy())
    return {"metric": "silhouette (cosine, test features)", "final": score, "best": None, "picture": png.name}


def silhouette_cosine(features: np.ndarray, labels: np.ndarray, max_points: int = 4000, seed: int = 0) -> float:
    """Mean silhouette coefficient under cosine distance (Rousseeuw 1987), on at most ``max_points``."""
    if len(features) > max_points:
        keep = np.random.default_rng(seed).choice(len(features), max_points, replace=False)
        features, labels = features[keep], labels[keep]
    classes = np.unique(labels)
    if len(classes) < 2:
        return 0.0
    f = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    dist = 1.0 - f @ f.T  # (n, n)
    onehot = (labels[:, None] == classes[None, :]).astype(np.float64)  # (n, K)
    sums = dist @ onehot  # (n, K) summed distance to each class
    counts = onehot.sum(0)  # (K,)
    own = onehot.argmax(1)
    n_own = counts[own] - 1
    a = np.where(n_own > 0, sums[np.arange(len(f)), own] / np.maximum(n_own, 1), 0.0)
    mean_other = sums / np.maximum(counts, 1)[None, :]
    mean_other[np.arange(len(f)), own] = np.inf
    b = mean_other.min(1)
    s = np.where(n_own > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


_RUNNERS = {
    "knn": _knn, "linear": _linear, "finetune": _classifier_task("finetune"), "tsne": _tsne,
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
    store_obj = source.input_store(Store(store_path))
    cfg = load_eval_config(source.run_config.get("eval"), overrides)
    # Detection runs on whole untrimmed sequences (label -1, per-frame labels), the rest on labelled samples.
    train_idx, test_idx = (sequence_split if task == "detect" else protocol_split)(store_obj, protocol)
    section = getattr(cfg, _SEED_SECTION.get(task, "finetune"))
    seed = section.seed
    task_encoder = dict(section.encoder) if task in ("linear", "finetune", "semi") else {}
    encoder, reinit = source.build(store_obj, random_init, seed=seed, overrides=task_encoder)
    device = torch.device("cuda" if (accelerator in (None, "auto", "cuda", "gpu") and torch.cuda.is_available()) else "cpu")
    transfer = source.pretrain_store is not None and Path(source.pretrain_store).resolve() != Path(store_path).resolve()
    out_dir = Path(out) if out else default_out_dir(source, task, protocol, random_init)
    warnings = _input_warnings(source, store_obj, reinit)
    if devices not in (None, 1, "1") and not _trains_on_fabric(task, cfg):
        warnings.append(f"--devices {devices}: {task} runs in one process on one device (only the trained protocols, "
                        "finetune, semi and linear with linear.probe=sgd, spread over devices)")
    label = source.spec["name"] + (" (random init)" if random_init else "")
    ctx = EvalContext(
        cfg=cfg, encoder=encoder, store=store_obj, protocol=protocol, source=source, random_init=random_init,
        train_set=SkeletonDataset(store_obj, train_idx, max_frames=cfg.input.max_frames),
        test_set=SkeletonDataset(store_obj, test_idx, max_frames=cfg.input.max_frames),
        train_idx=train_idx, test_idx=test_idx,
        num_classes=store_obj.num_classes, device=device, progress=progress, out=out_dir,
        devices=devices if devices is not None else 1, accelerator=accelerator or "auto", resume=resume, label=label,
        seed=seed, task_encoder=task_encoder, save_logits=save_logits,
    )
    common = {
        "protocol": protocol,
        "test_samples": int(len(test_idx)),
        "config_hash": config_hash({"eval": to_dict(cfg), "task": task, "encoder": source.spec}),
        "encoder": source.spec["name"],
        "run": str(source.run_dir or source.path),
        "method": ((source.run_config.get("method") or {}).get("name") or source.spec["name"]) if source.weights else "supervised",
        "store": str(Path(store_obj.path).absolute()),
        # what report needs to never put a paper's number beside a user's data
        "store_dataset": store_obj.dataset, "store_classes": store_obj.num_classes,
        "store_source_format": store_obj.info.get("source_format"),
        "random_init": random_init,
        "transfer_from": source.pretrain_store if transfer else None,
        "reinitialised": reinit,
        "warnings": warnings,
        # test samples bit-identical to a training sample (None: the store does not record it)
        "test_identical_to_train": identical_to_train_count(store_obj, train_idx, test_idx),
    }
    if task == "semi":
        results = []
        for r in _semi(ctx):
            sub = out_dir / f"{r['label_fraction']:g}"
            full = {"task": "semi", **common, **r, "seed": cfg.semi.seeds[0], "wall_seconds": time.perf_counter() - t0}
            write_results(sub, full)
            results.append(full)
        return results[0]
    r = _RUNNERS[task](ctx)
    task_name = "transfer" if transfer and task == "finetune" else task
    results = {  # a protocol may count its own samples (detect: sequences, predict: those long enough)
        "task": task_name, **common, "train_samples": int(len(train_idx)), **r, "seed": seed,
        "wall_seconds": time.perf_counter() - t0,
    }
    write_results(out_dir, results)
    return results
