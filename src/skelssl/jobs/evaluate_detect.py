"""``skelssl eval detect``: temporal action detection on untrimmed sequences (PKU-MMD protocol).

1. The training and test sequences of the protocol (``pku1-xsub``, ``pku1-xview``; ``synthetic-*`` on
   synthetic untrimmed stores) are cut into overlapping windows
   (:class:`~skelssl.evaluation.untrimmed.WindowDataset`), each labelled from the per-frame labels
   with one of the store's classes or background.
2. A head classifies windows. Frozen (default): the encoder encodes every window once, in eval mode,
   and the head trains on the cached features; ``detect.finetune=true``: encoder and head train
   together on the windows. Either way through the engine's one loop, with the test mAP@0.5 measured
   after every epoch (final and best epoch are reported, as for the other protocols).
3. Test windows' class probabilities are averaged per frame, frames whose action probability
   reaches ``detect.action_threshold`` take their most probable action, runs of the same action
   become segments with its mean probability as confidence, and interval-level mAP is measured at tIoU
   0.1 / 0.3 / 0.5 / 0.7 (:mod:`skelssl.evaluation.detection`). The official PKU-MMD script's variant
   of mAP@0.5 is reported beside it.

Outputs in the evaluation folder: ``results.json`` (``metric: map@0.5``, percent), ``detections.tsv``
(every detected segment) and ``timeline.png`` (predicted against true segments of one test sequence).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelssl.data.dataset import collate
from skelssl.data.store import Store, atomic_write_text
from skelssl.engine.eval_config import DetectTaskConfig
from skelssl.engine.seed import seed_all
from skelssl.evaluation.detection import (
    Segment,
    mean_average_precision,
    pku_mmd_official_map,
    segments_from_labels,
    segments_from_scores,
)
from skelssl.evaluation.features import CachedEncoder, FeatureSet, collate_features, extract_features, run_model
from skelssl.evaluation.heads import Classifier, LinearHead, MLPHead
from skelssl.evaluation.untrimmed import WindowDataset, frame_scores
from skelssl.jobs.eval_context import EvalContext, check_epochs

__all__ = ["run_detect", "detect_segments"]


def detect_segments(
    probs: np.ndarray, windows: WindowDataset, indices: np.ndarray, min_length: int, action_threshold: float | None
) -> tuple[list[Segment], list[Segment], dict[int, np.ndarray]]:
    """Detections and ground truth of the sequences ``indices`` from their windows' probabilities.

    Args:
        probs: ``(N_windows, C + 1)`` class probabilities of every window of ``windows``.
        windows: the windows (their spans and store).
        indices: store indices of the sequences.
        min_length: shortest detection kept, in frames.
        action_threshold: the frame rule of :func:`~skelssl.evaluation.detection.segments_from_scores`.

    Returns:
        ``detections``, ``ground_truth`` (segments with ``video`` = store index) and the per-frame
        scores ``(T, C + 1)`` of each sequence.
    """
    store, bg = windows.store, windows.background_index
    dets: list[Segment] = []
    gts: list[Segment] = []
    scores: dict[int, np.ndarray] = {}
    for i in np.asarray(indices, dtype=np.int64):
        rows, spans = windows.spans_of(int(i))
        per_frame = frame_scores(probs[rows], spans, int(store.lengths[i]))  # (T, C + 1)
        scores[int(i)] = per_frame
        dets += segments_from_scores(per_frame, bg, video=int(i), min_length=min_length, action_threshold=action_threshold)
        gts += segments_from_labels(store.frame_labels(int(i)), video=int(i))
    return dets, gts, scores


def _head(task: DetectTaskConfig, in_dim: int, classes: int) -> torch.nn.Module:
    if task.head == "mlp":
        return MLPHead(in_dim, classes, hidden_dim=task.hidden_dim)
    return LinearHead(in_dim, classes, batch_norm=True)


def _write_detections(path: Path, dets: list[Segment], store: Store) -> None:
    names = store.class_names
    lines = ["sequence\tlabel\tclass\tstart\tend\tconfidence"]
    for d in sorted(dets, key=lambda s: (s.video, s.start)):
        cls = names[d.label] if d.label < len(names) else str(d.label)
        lines.append(f"{store.names[d.video]}\t{d.label}\t{cls}\t{d.start}\t{d.end}\t{d.score:.6f}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def _window_inputs(ctx: EvalContext, encoder: torch.nn.Module, train_windows: WindowDataset,
                   test_windows: WindowDataset) -> tuple[torch.nn.Module, Any, Any, Callable]:
    """What the classifier trains and is tested on: the encoder and the windows themselves
    (``detect.finetune``), or a cache of the frozen encoder's features of every window.

    Returns:
        ``(body, train_set, test_set, collate_fn)``.
    """
    if ctx.cfg.detect.finetune:
        return encoder, train_windows, test_windows, collate
    kw = dict(batch_size=128, device=ctx.device, num_workers=ctx.cfg.num_workers, progress=ctx.progress)
    train_set = FeatureSet(*extract_features(encoder, train_windows, **kw))
    test_set = FeatureSet(*extract_features(encoder, test_windows, **kw))
    return CachedEncoder(encoder.out_dim), train_set, test_set, collate_features


def _detect_results(task: DetectTaskConfig, store: Store, probs: np.ndarray, dets: list[Segment], gts: list[Segment],
                    history: list[dict[str, float]], sizes: dict[str, int], feature_dim: int,
                    test_labels: np.ndarray) -> dict[str, Any]:
    """The protocol's figures: mAP at every tIoU of ``detect.iou_thresholds``, the official script's
    mAP@0.5, per-class AP, window accuracy and the counts (``sizes``: samples and windows)."""
    best = max(history, key=lambda h: h["map@0.5"])
    thresholds = [float(t) for t in task.iou_thresholds]
    scored = mean_average_precision(dets, gts, sorted(set(thresholds) | {0.5}))
    names = store.class_names
    return {
        "metric": "map@0.5",
        "final": 100.0 * scored["map"][0.5],
        "best": {"epoch": int(best["epoch"]), "value": float(best["map@0.5"])},
        "curve": [round(h["map@0.5"], 3) for h in history],
        "map": {f"{t:g}": 100.0 * scored["map"][t] for t in thresholds},
        "map_official_script@0.5": 100.0 * pku_mmd_official_map(dets, gts, 0.5, num_labels=store.num_classes + 1),
        "ap@0.5": {names[c] if c < len(names) else str(c): 100.0 * ap for c, ap in scored["ap"][0.5].items()},
        "window_accuracy": 100.0 * float((probs.argmax(1) == test_labels).mean()),
        **sizes,
        "classes_with_ground_truth": len(scored["classes"]),
        "detections": len(dets),
        "ground_truth_segments": len(gts),
        "mode": "finetune" if task.finetune else "frozen",
        "feature_dim": feature_dim,
        "detections_file": "detections.tsv",
    }


def _timeline_picture(ctx: EvalContext, test_idx: np.ndarray, dets: list[Segment], gts: list[Segment],
                      scores: dict[int, np.ndarray]) -> Path:
    """``timeline.png`` of the test sequence with the most ground-truth segments (the first such one)."""
    from skelssl.viz.timeline import detection_timeline

    store = ctx.store
    counts = [sum(g.video == int(i) for g in gts) for i in test_idx]
    show = int(test_idx[int(np.argmax(counts))])
    return detection_timeline(
        [g for g in gts if g.video == show], [d for d in dets if d.video == show], int(store.lengths[show]),
        ctx.out / "timeline.png", class_names=store.class_names, frame_scores=scores[show],
        background_index=store.num_classes, title=f"{ctx.label}: {store.names[show]} ({ctx.protocol} test)",
    )


def run_detect(ctx: EvalContext) -> dict[str, Any]:
    """The ``detect`` protocol on ``ctx`` (built by :func:`skelssl.jobs.evaluate.evaluate`).

    Returns:
        The protocol's part of ``results.json``.
    """
    task: DetectTaskConfig = ctx.cfg.detect
    store, train_idx, test_idx = ctx.store, ctx.train_idx, ctx.test_idx
    check_epochs("detect", task)
    train_windows = WindowDataset(store, train_idx, task.window, task.train_stride or task.stride, task.label_rule)
    test_windows = WindowDataset(store, test_idx, task.window, task.stride, task.label_rule)
    classes = store.num_classes + 1  # the store's classes and background (the last index)
    encoder = ctx.encoder.to(ctx.device)
    body, train_set, test_set, collate_fn = _window_inputs(ctx, encoder, train_windows, test_windows)
    seed_all(task.seed)
    classifier = Classifier(body, _head(task, encoder.out_dim, classes), freeze_encoder=not task.finetune)
    trainer = ctx.task_trainer(task, grad_clip=task.grad_clip)

    def test_probs(module: torch.nn.Module) -> np.ndarray:
        logits, _ = run_model(module, test_set, batch_size=256, device=trainer.fabric.device, collate_fn=collate_fn,
                              num_workers=ctx.cfg.num_workers)
        return torch.softmax(logits, dim=1).numpy()  # (N_windows, C + 1)

    def evaluate(module: torch.nn.Module, epoch: int) -> dict[str, float]:
        probs = test_probs(module)
        dets, gts, _ = detect_segments(probs, test_windows, test_idx, task.min_length, task.action_threshold)
        m = mean_average_precision(dets, gts, [0.5])["map"][0.5]
        acc = float((probs.argmax(1) == test_windows.labels).mean())
        return {"map@0.5": 100.0 * m, "window_acc": 100.0 * acc}

    # BatchNorm in the MLP head needs two samples in every training batch.
    summary = ctx.fit_task(trainer, "detect", task, classifier, train_set, evaluate,
                           drop_last=len(train_set) > task.batch_size, collate_fn=collate_fn)

    probs = test_probs(classifier)
    dets, gts, scores = detect_segments(probs, test_windows, test_idx, task.min_length, task.action_threshold)
    _write_detections(ctx.out / "detections.tsv", dets, store)
    sizes = {"train_samples": int(len(train_idx)), "test_samples": int(len(test_idx)),
             "train_windows": len(train_windows), "test_windows": len(test_windows)}
    results = _detect_results(task, store, probs, dets, gts, summary["eval_history"], sizes, int(encoder.out_dim),
                              test_windows.labels)
    if task.picture and len(test_idx):
        results["picture"] = _timeline_picture(ctx, test_idx, dets, gts, scores).name
    return results
