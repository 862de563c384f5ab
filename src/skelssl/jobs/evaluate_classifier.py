"""The trained classifier protocols: ``finetune`` (``transfer`` on another store), ``semi``, and the
SGD ``linear`` protocol (``linear.probe=sgd``).

They run in the same :class:`~skelssl.engine.loop.Trainer` as pre-training, with a
:class:`~skelssl.evaluation.heads.Classifier` as the module and a test-set evaluation after every
epoch, so both the final-epoch and the best-epoch accuracy are reported (the ISC and MAMP codes
report the best epoch on the test split; docs/protocols.md asks for both).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from skelssl.data.dataset import SkeletonDataset
from skelssl.data.protocols import subset_indices
from skelssl.engine.config import TrainerConfig, to_dict
from skelssl.engine.eval_config import ClassifierTaskConfig
from skelssl.engine.eval_input import test_transform, train_transform
from skelssl.engine.loop import Trainer
from skelssl.engine.optim import block_layer_id, build_optimizer, layer_decay_groups, scheduler_factory
from skelssl.engine.seed import seed_all
from skelssl.evaluation.features import CachedEncoder, FeatureSet, collate_features, extract_features
from skelssl.evaluation.heads import Classifier, LinearHead, MLPHead, evaluate_classifier
from skelssl.evaluation.logits import LOGITS_FILE, write_logits
from skelssl.jobs.eval_context import EvalContext

__all__ = ["train_classifier", "save_logits", "run_finetune", "run_semi"]


def save_logits(ctx: EvalContext, out_dir: Path, logits: np.ndarray, labels: np.ndarray, kind: str = "logits",
                baselines: dict[str, np.ndarray] | None = None) -> str:
    """Write the test split's ``logits.npz`` into ``out_dir`` (the evaluation's own folder); its name,
    for ``results.json``. Rows are the test set's, in the protocol's order (``ctx.test_idx``);
    ``baselines`` are the same rows' scores of the baselines (robust probe: raw input, random init)."""
    store = ctx.store
    idx = np.asarray(ctx.test_idx, np.int64)
    labels = np.asarray(labels, np.int64)
    if len(labels) != len(idx) or not np.array_equal(labels, np.asarray(store.labels)[idx]):
        raise RuntimeError("the test logits are not in the test split's order")  # a bug, not a user error
    write_logits(Path(out_dir) / LOGITS_FILE, logits, labels, idx, store.names[idx],
                 store=str(Path(store.path).absolute()), kind=kind, baselines=baselines)
    return LOGITS_FILE


def _make_head(task: ClassifierTaskConfig, in_dim: int, classes: int) -> nn.Module:
    if task.head == "mlp":
        return MLPHead(in_dim, classes)
    return LinearHead(in_dim, classes, batch_norm=task.head == "linear_bn")


def train_classifier(ctx: EvalContext, task: ClassifierTaskConfig, freeze: bool, out_dir: Path, train_set: SkeletonDataset) -> dict[str, Any]:
    """Train ``ctx.encoder`` with a head under ``task``'s settings (``freeze``: the head alone) in
    ``out_dir``, testing after every epoch; the results' ``final``, ``best``, ``curve`` (and ``logits``)."""
    cfg = ctx.cfg
    encoder = ctx.encoder
    test_set, test_tf, train_tf, collate_fn = ctx.test_set, test_transform(cfg.input), train_transform(cfg.input, ctx.test_set.store.coords), None
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
            out["logits"] = save_logits(ctx, out_dir, last["logits"].numpy(), last["labels"].numpy())
        else:
            out["logits"] = LOGITS_FILE
    return out


def run_finetune(ctx: EvalContext) -> dict[str, Any]:
    """The ``finetune`` protocol (``transfer`` on another store): the whole network trained with a head."""
    return train_classifier(ctx, ctx.cfg.finetune, freeze=False, out_dir=ctx.out, train_set=ctx.train_set)


def run_semi(ctx: EvalContext) -> list[dict[str, Any]]:
    """The ``semi`` protocol: fine-tuning on label fractions, each over several subset seeds; one
    result per fraction."""
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
            r = train_classifier(ctx, task, freeze=False, out_dir=ctx.out / f"{fraction:g}" / f"seed{s}", train_set=train_set)
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
