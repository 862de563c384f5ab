"""What an evaluation protocol runs on: the encoder under evaluation and the typed context.

:func:`skelssl.jobs.evaluate.evaluate` resolves the command line into one :class:`EvalContext` and
hands it to the protocol runner (``knn``, ``linear``, ``finetune``, ``semi``, ``tsne``, ``detect``,
``predict``); runners read it and never parse arguments themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from skelssl.data.dataset import SkeletonDataset
from skelssl.data.store import Store, channels_for_encoder
from skelssl.engine import checkpoint as ckpt
from skelssl.engine.config import ConfigError, TrainerConfig, to_dict
from skelssl.engine.eval_input import stream_view
from skelssl.engine.eval_config import EvalConfig
from skelssl.engine.loop import Trainer
from skelssl.engine.optim import optimizer_factory, scheduler_factory
from skelssl.engine.seed import seed_all
from skelssl.models import build_encoder

__all__ = ["EncoderSource", "load_encoder_source", "EvalContext", "check_epochs"]


# -- the encoder under evaluation ----------------------------------------------------------------------
class EncoderSource:
    """Where the encoder comes from: its file, spec, the run's config, and how to (re)build it."""

    def __init__(self, path: Path, spec: dict[str, Any], run_config: dict[str, Any], run_dir: Path | None, weights: bool = True,
                 data: dict[str, Any] | None = None) -> None:
        self.path, self.spec, self.run_config, self.run_dir, self.weights = path, spec, run_config, run_dir, weights
        self.data = dict(data or {})  # what the encoder file records of its training store

    def input_store(self, store: Store) -> Store:
        """``store`` read through the channels and the input stream the encoder takes (without the score
        for a run trained with ``data.use_score=false``; a recipe decides by its own ``data``)."""
        names = self.data.get("channel_names")
        if self.weights:
            stream = self.data.get("stream", "joint")
        else:
            recipe = self.run_config.get("data") or {}
            stream = recipe.get("stream", "joint")
            if names is None and not recipe.get("use_score", True):
                return stream_view(store.without_score(), stream)
        return stream_view(channels_for_encoder(store, names), stream)

    @property
    def pretrain_store(self) -> str | None:
        return (self.run_config.get("data") or {}).get("store") or None

    def build(self, store: Store, random_init: bool, seed: int, overrides: dict[str, Any] | None = None) -> tuple[nn.Module, list[str]]:
        """The encoder for ``store``, with the pre-trained weights unless ``random_init``.

        The encoder is rebuilt for the store's channels, layout and persons. On the pre-training
        layout every weight must fit (strict); on another layout (transfer, e.g. N-UCLA -> NTU joints)
        weights whose shapes depend on the joints are re-initialised and returned by name.
        ``overrides`` are encoder arguments the evaluation task sets (a task's ``encoder:`` section,
        e.g. MAMP's fine-tuning ``{pool: joints}``); they must not change any weight's shape.
        """
        overrides = dict(overrides or {})
        kwargs = dict(self.spec["kwargs"])
        kwargs.update(in_channels=store.channels, layout=store.layout.name, num_persons=store.num_persons)
        if "coords" in kwargs:  # recorded by pre-training on a store with a score: follow this store's
            kwargs["coords"] = store.coords if store.coords != store.channels else None
        geometry_kept = kwargs == self.spec["kwargs"]
        kwargs.update(overrides)
        seed_all(seed)
        encoder = build_encoder(self.spec["name"], **kwargs)
        if random_init:
            return encoder, []
        if not self.weights:
            raise ConfigError(f"{self.path} is a recipe without weights: evaluate it with --random-init (training from scratch)")
        tensors, _ = ckpt.load_tensors(self.path)
        target = encoder.state_dict()
        if geometry_kept:  # the pre-training geometry: every weight must fit
            try:
                encoder.load_state_dict(tensors, strict=True)
            except RuntimeError as e:
                raise ckpt.CheckpointError(f"{self.path}: weights do not fit encoder {self.spec['name']!r}: {e}") from None
            return encoder, []
        fitting = {k: v for k, v in tensors.items() if k in target and target[k].shape == v.shape}
        encoder.load_state_dict(fitting, strict=False)
        return encoder, sorted(k for k in target if k not in fitting)


def load_encoder_source(run: str | Path) -> EncoderSource:
    """A pre-training run folder (its ``encoder.safetensors``), an encoder file, or a recipe.

    A recipe (``.yaml``) names an encoder architecture without weights: it can only be evaluated with
    ``random_init`` (supervised training from scratch, the baseline beside every method).
    """
    run = Path(run)
    if run.suffix in (".yaml", ".yml") and run.is_file():
        from skelssl.engine.config import load_config

        cfg = load_config(run)
        spec = {"name": cfg.encoder.name, "kwargs": dict(cfg.encoder.kwargs)}
        return EncoderSource(run, spec, to_dict(cfg), None, weights=False)
    if run.is_dir():
        path = run / "encoder.safetensors"
        if not path.is_file():
            raise ckpt.CheckpointError(f"{run}: no encoder.safetensors (is the pre-training finished?)")
        run_dir = run
    elif run.is_file():
        path, run_dir = run, None
    else:
        raise ckpt.CheckpointError(f"{run}: no such run folder or encoder file")
    meta = ckpt.encoder_metadata(path)
    ckpt.register_recorded_layout(meta, path)
    return EncoderSource(path, meta["encoder_spec"], meta["config"] or {}, run_dir, data=meta.get("data"))


# -- the context a protocol runs in ------------------------------------------------------------------------
@dataclass
class EvalContext:
    """Everything a protocol runner needs, resolved once by :func:`skelssl.jobs.evaluate.evaluate`."""

    cfg: EvalConfig
    """The evaluation settings (the run's ``eval:`` section with the command line's overrides)."""
    encoder: nn.Module
    """The encoder under evaluation (``semi`` replaces it with a fresh one per run)."""
    store: Store
    """The evaluation store, read through the channels the encoder takes."""
    protocol: str
    """The store's named protocol (split) evaluated on."""
    source: EncoderSource
    """Where the encoder comes from; rebuilds it (``semi``, the random-init baseline)."""
    random_init: bool
    """Whether ``encoder`` has random weights (the baseline, or training from scratch)."""
    train_set: SkeletonDataset
    """The protocol's training samples."""
    test_set: SkeletonDataset
    """The protocol's test samples."""
    train_idx: np.ndarray
    """Store indices of the training samples (sequences for ``detect``)."""
    test_idx: np.ndarray
    """Store indices of the test samples, in the order logits are written."""
    num_classes: int
    """The store's class count."""
    device: torch.device
    """Where feature extraction runs (the trained protocols go through Fabric instead)."""
    progress: bool
    """Whether to show progress bars."""
    out: Path
    """The evaluation's output folder (``results.json`` and the protocol's files)."""
    devices: int | str
    """Fabric's ``devices`` for the trained protocols."""
    accelerator: str
    """Fabric's ``accelerator`` for the trained protocols."""
    resume: bool
    """Continue an interrupted trained evaluation in ``out``."""
    label: str
    """The encoder's name for figure titles (``" (random init)"`` appended where it applies)."""
    seed: int = 0
    """The seed the encoder was built with (the task section's)."""
    task_encoder: dict[str, Any] = field(default_factory=dict)
    """Encoder arguments the task sets (its ``encoder:`` section), also for the random-init baseline."""
    save_logits: bool = False
    """Write the test split's ``logits.npz`` (``linear``, ``finetune``, ``semi``)."""
    warnings: list[str] = field(default_factory=list)
    """What the results should warn of (input mismatches, ignored ``--devices``)."""
    reinitialised: list[str] = field(default_factory=list)
    """Parameters built afresh rather than loaded (e.g. a classifier head the run did not train)."""

    # -- for the protocols that train a head or decoder through the engine's loop (detect, predict) --
    def task_trainer(self, task: Any, **settings: Any) -> Trainer:
        """The engine's loop for a trained protocol's ``task`` section: its epochs and seed, a log line
        every 10 steps and a checkpoint every epoch in ``out``; ``settings`` are further
        :class:`~skelssl.engine.config.TrainerConfig` fields (``grad_clip``)."""
        trainer_cfg = TrainerConfig(
            epochs=task.epochs, seed=task.seed, progress=self.progress, log_every=10, ckpt_every_epochs=1,
            accelerator=self.accelerator, devices=self.devices, **settings,
        )
        return Trainer(trainer_cfg, self.out)

    def fit_task(self, trainer: Trainer, task_name: str, task: Any, module: nn.Module, train_set: Any,
                 evaluate: Callable[[nn.Module, int], dict[str, float]], *, drop_last: bool,
                 collate_fn: Callable) -> dict[str, Any]:
        """``trainer.fit`` with the task section's batch size (at most the training set), optimiser and
        schedule, resuming when asked, and the evaluation config recorded in the checkpoints."""
        return trainer.fit(
            module, train_set, batch_size=min(task.batch_size, len(train_set)), num_workers=self.cfg.num_workers,
            optimizer_factory=optimizer_factory(task.optim), scheduler_factory=scheduler_factory(task.schedule),
            resume=self.resume, evaluate=evaluate, config_dict={"eval": to_dict(self.cfg), "task": task_name},
            drop_last=drop_last, collate_fn=collate_fn,
        )


def check_epochs(task_name: str, task: Any) -> None:
    """A trained protocol's ``epochs`` must be at least 1."""
    if task.epochs < 1:
        raise ConfigError(f"{task_name}.epochs must be at least 1, got {task.epochs}")
