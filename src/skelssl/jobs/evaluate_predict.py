"""``skelssl eval predict``: motion prediction from frozen encoder features, against zero-velocity.

1. Every sequence of the protocol's training and test splits long enough for ``observe +
   max(horizons)`` frames gives windows every ``stride`` frames
   (:class:`~skelssl.evaluation.prediction.PredictionWindows`).
2. The frozen encoder (eval mode) encodes the observed part of every window once.
3. A residual MLP decoder (:class:`~skelssl.evaluation.prediction.MotionDecoder`) learns the future
   poses from the feature and the last observed pose, in the engine's one loop, with the test MPJPE
   measured after every epoch.
4. MPJPE (data units; lower is better) at each horizon for the decoder and for the zero-velocity
   baseline on the test windows; ``final`` is the decoder's MPJPE averaged over all predicted frames,
   ``baseline`` the same for zero-velocity, and ``best`` the lowest test value over epochs.

Outputs: ``results.json`` and ``prediction.gif`` (observed, true and predicted motion side by side for
the test window where the zero-velocity baseline errs most).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from skelssl.engine.config import ConfigError
from skelssl.engine.eval_config import PredictTaskConfig
from skelssl.engine.seed import seed_all
from skelssl.evaluation.features import extract_features
from skelssl.evaluation.prediction import CachedPrediction, MotionDecoder, MotionPredictor, PredictionWindows
from skelssl.evaluation.prediction import collate_prediction, mpjpe, predict_all, zero_velocity
from skelssl.jobs.eval_context import EvalContext, check_epochs

__all__ = ["run_predict"]


def _cached(encoder: torch.nn.Module, windows: PredictionWindows, ctx: EvalContext) -> CachedPrediction:
    cfg = ctx.cfg
    features, _ = extract_features(encoder, windows, batch_size=128, device=ctx.device, num_workers=cfg.num_workers,
                                   progress=ctx.progress)
    return CachedPrediction(features, *windows.tensors())


def _horizon_table(per_frame: torch.Tensor, horizons: list[int]) -> dict[str, float]:
    return {str(h): float(per_frame[h - 1]) for h in horizons}


def _horizons(task: PredictTaskConfig) -> list[int]:
    """``predict.horizons`` sorted, without repeats; each a positive frame count."""
    horizons = sorted({int(h) for h in task.horizons})
    if not horizons or horizons[0] < 1:
        raise ConfigError(f"predict.horizons must be positive frame counts, got {task.horizons}")
    return horizons


def _decoder(task: PredictTaskConfig, store: Any, feature_dim: int, future: int) -> MotionPredictor:
    """The residual MLP decoder of ``future`` poses of the store's geometry, with its loss."""
    decoder = MotionDecoder(
        feature_dim, store.layout.num_joints, store.num_persons, store.channels, future,
        hidden_dim=task.hidden_dim, layers=task.layers, centre_joint=store.layout.spine, dropout=task.dropout,
    )
    return MotionPredictor(decoder, loss=task.loss)


def _prediction_picture(ctx: EvalContext, test_set: CachedPrediction, test_windows: PredictionWindows,
                        pred: torch.Tensor, future: int) -> tuple[Path, dict[str, Any]]:
    """``prediction.gif`` of the test window where repeating the last pose errs most: the one with the
    most motion to predict. Returns the file and the window (``sequence``, ``start``)."""
    from skelssl.viz.prediction_gif import prediction_gif

    store, observe = ctx.store, ctx.cfg.predict.observe
    zv_per_window = (zero_velocity(test_set.last[:, None], future) - test_set.future).norm(dim=-1).flatten(1).mean(1)
    k = int(torch.argmax(zv_per_window))
    frames = test_windows.frames(k)  # (T_obs + T_pred, M, V, C)
    idx, start = (int(v) for v in test_windows.windows[k])
    gif = prediction_gif(
        frames[:observe], frames[observe:], pred[k].numpy(), store.layout, ctx.out / "prediction.gif",
        up="z" if store.pipeline == "agcn" else "y",
        title=f"{store.names[idx]} frames {start}-{start + observe + future - 1}",
    )
    return gif, {"sequence": str(store.names[idx]), "start": start}


def run_predict(ctx: EvalContext) -> dict[str, Any]:
    """The ``predict`` protocol on ``ctx`` (built by :func:`skelssl.jobs.evaluate.evaluate`).

    Returns:
        The protocol's part of ``results.json``.
    """
    task: PredictTaskConfig = ctx.cfg.predict
    store = ctx.store
    check_epochs("predict", task)
    horizons = _horizons(task)
    future = horizons[-1]
    train_windows = PredictionWindows(store, ctx.train_idx, task.observe, future, task.stride)
    test_windows = PredictionWindows(store, ctx.test_idx, task.observe, future, task.stride)
    encoder = ctx.encoder.to(ctx.device)
    train_set, test_set = _cached(encoder, train_windows, ctx), _cached(encoder, test_windows, ctx)

    seed_all(task.seed)
    module = _decoder(task, store, int(encoder.out_dim), future)
    trainer = ctx.task_trainer(task)
    zv = mpjpe(zero_velocity(test_set.last[:, None], future), test_set.future, test_set.present)  # (T_pred,)

    def evaluate(mod: torch.nn.Module, epoch: int) -> dict[str, float]:
        pred = predict_all(mod, test_set, device=trainer.fabric.device)
        return {"mpjpe": float(mpjpe(pred, test_set.future, test_set.present).mean())}

    summary = ctx.fit_task(trainer, "predict", task, module, train_set, evaluate, drop_last=False,
                           collate_fn=collate_prediction)
    history = summary["eval_history"]
    best = min(history, key=lambda h: h["mpjpe"])
    pred = predict_all(module, test_set, device=trainer.fabric.device)  # (N, T_pred, M, V, C)
    ours = mpjpe(pred, test_set.future, test_set.present)  # (T_pred,)
    results: dict[str, Any] = {
        "metric": "mpjpe",
        "lower_is_better": True,
        "unit": "store coordinates (metres for Kinect camera space)",
        "final": float(ours.mean()),
        "best": {"epoch": int(best["epoch"]), "value": float(best["mpjpe"])},
        "curve": [round(h["mpjpe"], 6) for h in history],
        "per_horizon": _horizon_table(ours, horizons),
        "baseline": {"name": "zero-velocity", "final": float(zv.mean()), "per_horizon": _horizon_table(zv, horizons)},
        "beats_baseline": bool(ours.mean() < zv.mean()),
        "observe": task.observe,
        "horizons": horizons,
        "train_samples": train_windows.sequences,
        "test_samples": test_windows.sequences,
        "train_windows": len(train_windows),
        "test_windows": len(test_windows),
        "feature_dim": int(encoder.out_dim),
    }
    if task.gif:
        gif, window = _prediction_picture(ctx, test_set, test_windows, pred, future)
        results["picture"] = gif.name
        results["picture_window"] = window
    return results
