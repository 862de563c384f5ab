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

from typing import Any

import torch

from skelssl.engine.config import ConfigError, TrainerConfig, to_dict
from skelssl.engine.eval_config import PredictTaskConfig
from skelssl.engine.loop import Trainer
from skelssl.engine.optim import optimizer_factory, scheduler_factory
from skelssl.engine.seed import seed_all
from skelssl.evaluation.features import extract_features
from skelssl.evaluation.prediction import (
    CachedPrediction,
    MotionDecoder,
    MotionPredictor,
    PredictionWindows,
    collate_prediction,
    mpjpe,
    predict_all,
    zero_velocity,
)
from skelssl.jobs.eval_context import EvalContext

__all__ = ["run_predict"]


def _cached(encoder: torch.nn.Module, windows: PredictionWindows, ctx: EvalContext) -> CachedPrediction:
    cfg = ctx.cfg
    features, _ = extract_features(encoder, windows, batch_size=128, device=ctx.device, num_workers=cfg.num_workers,
                                   progress=ctx.progress)
    return CachedPrediction(features, *windows.tensors())


def _horizon_table(per_frame: torch.Tensor, horizons: list[int]) -> dict[str, float]:
    return {str(h): float(per_frame[h - 1]) for h in horizons}


def run_predict(ctx: EvalContext) -> dict[str, Any]:
    """The ``predict`` protocol on ``ctx`` (built by :func:`skelssl.jobs.evaluate.evaluate`).

    Returns:
        The protocol's part of ``results.json``.
    """
    cfg = ctx.cfg
    task: PredictTaskConfig = cfg.predict
    store = ctx.store
    out_dir = ctx.out
    if task.epochs < 1:
        raise ConfigError(f"predict.epochs must be at least 1, got {task.epochs}")
    horizons = sorted({int(h) for h in task.horizons})
    if not horizons or horizons[0] < 1:
        raise ConfigError(f"predict.horizons must be positive frame counts, got {task.horizons}")
    future = horizons[-1]
    train_windows = PredictionWindows(store, ctx.train_idx, task.observe, future, task.stride)
    test_windows = PredictionWindows(store, ctx.test_idx, task.observe, future, task.stride)
    encoder = ctx.encoder.to(ctx.device)
    train_set, test_set = _cached(encoder, train_windows, ctx), _cached(encoder, test_windows, ctx)

    seed_all(task.seed)
    decoder = MotionDecoder(
        int(encoder.out_dim), store.layout.num_joints, store.num_persons, store.channels, future,
        hidden_dim=task.hidden_dim, layers=task.layers, centre_joint=store.layout.spine, dropout=task.dropout,
    )
    module = MotionPredictor(decoder, loss=task.loss)
    trainer_cfg = TrainerConfig(
        epochs=task.epochs, seed=task.seed, progress=ctx.progress, log_every=10, ckpt_every_epochs=1,
        accelerator=ctx.accelerator, devices=ctx.devices,
    )
    trainer = Trainer(trainer_cfg, out_dir)
    zv = mpjpe(zero_velocity(test_set.last[:, None], future), test_set.future, test_set.present)  # (T_pred,)

    def evaluate(mod: torch.nn.Module, epoch: int) -> dict[str, float]:
        pred = predict_all(mod, test_set, device=trainer.fabric.device)
        return {"mpjpe": float(mpjpe(pred, test_set.future, test_set.present).mean())}

    summary = trainer.fit(
        module, train_set, batch_size=min(task.batch_size, len(train_set)), num_workers=cfg.num_workers,
        optimizer_factory=optimizer_factory(task.optim), scheduler_factory=scheduler_factory(task.schedule),
        resume=ctx.resume, evaluate=evaluate, config_dict={"eval": to_dict(cfg), "task": "predict"},
        drop_last=False, collate_fn=collate_prediction,
    )
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
        from skelssl.viz.prediction_gif import prediction_gif

        # The test window where repeating the last pose errs most: the one with the most motion to predict.
        zv_per_window = (zero_velocity(test_set.last[:, None], future) - test_set.future).norm(dim=-1).flatten(1).mean(1)
        k = int(torch.argmax(zv_per_window))
        frames = test_windows.frames(k)  # (T_obs + T_pred, M, V, C)
        idx, start = (int(v) for v in test_windows.windows[k])
        gif = prediction_gif(
            frames[: task.observe], frames[task.observe :], pred[k].numpy(), store.layout, out_dir / "prediction.gif",
            up="z" if store.pipeline == "agcn" else "y",
            title=f"{store.names[idx]} frames {start}-{start + task.observe + future - 1}",
        )
        results["picture"] = gif.name
        results["picture_window"] = {"sequence": str(store.names[idx]), "start": start}
    return results
