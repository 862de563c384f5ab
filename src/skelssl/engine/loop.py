"""The one training loop: self-supervised pre-training, linear evaluation and fine-tuning.

:class:`Trainer` runs on Lightning Fabric (CPU, one or several GPUs, several nodes; ``torchrun`` or
Fabric's own launcher; bf16/fp16 mixed precision). What differs between jobs goes through the module
(``training_step``, ``param_groups``, ``after_optimizer_step``) and two callbacks (``batch_transform``
for batched augmentation on the device, ``evaluate`` after each epoch).

Reproducibility: the sample order of epoch ``e`` is a permutation seeded by ``(seed, e)`` and sharded
like ``DistributedSampler``; augmentation draws from a per-rank generator; checkpoints are taken at
optimiser-step boundaries and hold the step, the position in the epoch and every random stream, so a
run killed at any moment and resumed ends with the same weights as one never stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from skelssl.data.dataset import collate
from skelssl.engine import checkpoint as ckpt
from skelssl.engine.config import ConfigError, TrainerConfig, config_hash, save_config
from skelssl.engine.dist import all_gather_with_grad, make_fabric
from skelssl.engine.logging import RunLogger, progress_bar, scalar
from skelssl.engine.seed import capture_rng_state, derive_seed, module_generators, restore_rng_state, seed_all, set_deterministic

__all__ = ["Trainer", "NonFiniteLossError", "DivergedWeightsError", "weights_problem", "TrainState", "epoch_batches", "num_batches"]

_AUGMENT_KEY = "__trainer__.augment"
_RESERVED = frozenset({"kind", "step", "epoch", "lr", "loss", "grad_norm"})


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stops and its last good checkpoint is kept.

    Attributes:
        step: the optimiser step being computed (0-based: the number of steps completed before it).
        epoch: the epoch (0-based).
        batch: the micro-batch index within the epoch.
        value: the offending loss value.
    """

    def __init__(self, step: int, epoch: int, batch: int, value: float, checkpoint: Path | None) -> None:
        self.step, self.epoch, self.batch, self.value = step, epoch, batch, value
        kept = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written yet"
        super().__init__(f"non-finite loss ({value}) at step {step} (epoch {epoch}, batch {batch}); training stopped, {kept}")


class DivergedWeightsError(NonFiniteLossError):
    """The weights became non-finite or absurdly large after a step whose loss was still finite; the
    checkpoint that would have held them is not written, so ``--resume`` starts from good weights."""

    def __init__(self, step: int, epoch: int, problem: str, checkpoint: Path | None) -> None:
        self.step, self.epoch, self.batch, self.value = step, epoch, -1, float("nan")
        kept = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written yet"
        RuntimeError.__init__(self, f"weights diverged after step {step} (epoch {epoch}): {problem}; training stopped, "
                                    f"not saved, {kept}")


# A parameter beyond this magnitude means the run has diverged even if no NaN appeared yet (skeleton
# models' weights are O(1); the official checkpoints' largest is below 1e2).
MAX_ABS_WEIGHT = 1e6


def weights_problem(module: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> str | None:
    """Why the weights (and optimiser state) are not fit to be saved as a good checkpoint, or ``None``."""
    worst = 0.0
    for name, p in module.named_parameters():
        if not torch.isfinite(p).all():
            return f"parameter {name} is not finite"
        if p.numel():
            worst = max(worst, float(p.detach().abs().max()))
    if worst > MAX_ABS_WEIGHT:
        return f"max |w| = {worst:.3g} > {MAX_ABS_WEIGHT:.0e}"
    for name, b in module.named_buffers():
        if b.is_floating_point() and not torch.isfinite(b).all():
            return f"buffer {name} is not finite"
    if optimizer is not None:
        for state in optimizer.state.values():
            for key, v in state.items():
                if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all():
                    return f"optimizer state {key!r} is not finite"
    return None


@dataclass
class TrainState:
    """Where a run is: optimiser steps taken, epoch, micro-batches of that epoch already consumed."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


def num_batches(n: int, batch_size: int, world: int = 1, drop_last: bool = True) -> int:
    """Micro-batches per epoch on each rank for ``n`` samples (see :func:`epoch_batches`)."""
    per_rank = n // world if drop_last else math.ceil(n / world)
    if drop_last:
        return per_rank // batch_size
    batches = math.ceil(per_rank / batch_size)
    return batches - 1 if batches > 1 and per_rank % batch_size == 1 else batches  # a lone last sample joins the one before


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1, drop_last: bool = True) -> list[list[int]]:
    """This rank's batches of sample indices for one epoch.

    The order is a permutation seeded by ``(seed, epoch)`` only, identical on every rank; like
    ``torch.utils.data.DistributedSampler`` it is cut (``drop_last``) or padded by wrapping around to a
    multiple of ``world`` and rank ``r`` takes every ``world``-th index from ``r``. So the ranks' batch
    ``k`` together hold the same samples as batch ``k`` of one process with ``world`` times the batch.

    Without ``drop_last`` a last batch of one sample joins the batch before it.

    Returns:
        ``num_batches(n, batch_size, world, drop_last)`` lists of indices.
    """
    g = torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch))
    order = torch.randperm(n, generator=g).tolist()
    if world > 1:
        if drop_last:
            order = order[: (n // world) * world]
        else:
            pad = (-n) % world
            order = order + (order * math.ceil(pad / max(n, 1)))[:pad]
        order = order[rank::world]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    elif len(batches) > 1 and len(batches[-1]) == 1:
        # Kept, but never alone: a batch of one breaks BatchNorm in training ("Expected more than 1 value
        # per channel"), which the heads of the MAMP and ISC protocols have.
        batches[-2].extend(batches.pop())
    return batches


@dataclass
class _Fit:
    """The moving parts of one :meth:`Trainer.fit` call, shared by its steps."""

    raw: nn.Module  # the module as given (its state_dict is what checkpoints hold)
    wrapped: Any  # the module on Fabric (DDP where distributed)
    distributed: bool
    optimizer: torch.optim.Optimizer
    opt: Any  # the optimiser on Fabric
    scheduler: Any
    augment: torch.Generator  # this rank's augmentation stream
    generators: dict[str, torch.Generator]  # every stream a checkpoint saves
    dataset: Dataset
    batch_size: int
    num_workers: int
    collate_fn: Callable[[list[Any]], Any]
    drop_last: bool
    batch_transform: Callable[..., dict[str, torch.Tensor]] | None
    evaluate: Callable[[nn.Module, int], dict[str, float]] | None
    config_dict: dict[str, Any] | None
    n: int  # samples
    nb: int  # micro-batches per epoch on each rank
    acc: int  # micro-batches per optimiser step
    steps_per_epoch: int
    geometry: dict[str, Any]  # must match on resume
    state: TrainState = field(default_factory=TrainState)
    eval_history: list[dict[str, Any]] = field(default_factory=list)
    elapsed_before: float = 0.0  # training seconds of the sessions before a resume
    resumed_from: int | None = None
    saved_step: int = -1  # the step of the latest checkpoint
    logger: Any = None
    epoch_bar: Any = None
    step_bar: Any = None
    started: float = 0.0
    last_loss: float | None = None
    last_eval: dict[str, Any] = field(default_factory=dict)
    window: dict[str, Any] = field(default_factory=dict)  # sums over the current log interval
    logged_steps: int = 0
    grad_norm: Any = None


class Trainer:
    """Runs ``fit`` for any module with ``training_step``/``param_groups``/``after_optimizer_step``.

    Args:
        cfg: the ``trainer`` section of the run config.
        run_dir: the run folder: ``config.yaml``, ``metrics.jsonl``, ``tb/``, ``checkpoints/``.
        fabric: a launched ``lightning_fabric.Fabric``; default: built and launched from ``cfg``.
    """

    def __init__(self, cfg: TrainerConfig, run_dir: str | Path, fabric: Any = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.fabric = fabric if fabric is not None else make_fabric(cfg)

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def is_main(self) -> bool:
        return self.fabric.global_rank == 0

    # -- checkpoints -------------------------------------------------------------------------------
    def _save(self, name: str, raw: nn.Module, training_state: dict[str, Any], generators, config_dict) -> Path:
        """Write checkpoint ``checkpoints/<name>`` from every rank (each adds its random streams)."""
        fabric, path = self.fabric, self.ckpt_dir / name
        if self.is_main:
            ckpt.begin_checkpoint(path)
        fabric.barrier()
        ckpt.write_rank_state(ckpt.partial_path(path), fabric.global_rank, {"rng": capture_rng_state(generators)})
        fabric.barrier()
        if self.is_main:
            ckpt.commit_checkpoint(ckpt.partial_path(path), path, raw.state_dict(), training_state, config_dict)
        fabric.barrier()
        return path

    def _keep(self, name: str) -> None:
        if self.is_main:
            ckpt.copy_checkpoint(self.ckpt_dir / "last", self.ckpt_dir / name)
        self.fabric.barrier()

    # -- the loop ----------------------------------------------------------------------------------
    def fit(
        self,
        module: nn.Module,
        train_dataset: Dataset,
        *,
        batch_size: int,
        num_workers: int = 0,
        optimizer_factory: Callable[[nn.Module], torch.optim.Optimizer],
        scheduler_factory: Callable[[torch.optim.Optimizer, int, int], Any] | None = None,
        batch_transform: Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]] | None = None,
        resume: bool = False,
        evaluate: Callable[[nn.Module, int], dict[str, float]] | None = None,
        config_dict: dict[str, Any] | None = None,
        drop_last: bool = True,
        collate_fn: Callable[[list[Any]], Any] = collate,
    ) -> dict[str, Any]:
        """Train ``module`` on ``train_dataset``; returns a summary.

        Args:
            module: has ``training_step(batch) -> (loss, logs)``; optionally ``after_optimizer_step()``
                and a ``gather`` attribute, which is set to :func:`~skelssl.engine.dist.all_gather_with_grad`.
            train_dataset: map-style dataset (e.g. :class:`~skelssl.data.dataset.SkeletonDataset`).
            batch_size: samples per device per micro-batch.
            num_workers: loader worker processes.
            optimizer_factory: ``module -> optimizer`` (:func:`skelssl.engine.optim.optimizer_factory`).
            scheduler_factory: ``(optimizer, steps_per_epoch, total_steps) -> scheduler`` with ``step``,
                ``state_dict``, ``load_state_dict`` (:func:`skelssl.engine.optim.scheduler_factory`).
            batch_transform: ``(batch, generator) -> batch``, batched augmentation on the device.
            resume: continue from ``run_dir/checkpoints/last`` when it exists.
            evaluate: ``(module, epoch) -> metrics`` after each epoch (to ``metrics.jsonl`` as ``eval``);
                one with a true ``at_start`` attribute is also called once before the first step of a
                new run, with epoch ``-1`` (the pre-training monitor: its reading at initialisation).
            config_dict: the resolved run config, saved as ``config.yaml`` and in every checkpoint.
            drop_last: drop each epoch's incomplete last batch (pre-training does).
            collate_fn: the batch collation (default :func:`skelssl.data.dataset.collate`).

        Returns:
            ``step``, ``epoch`` (epochs completed), ``loss`` (mean of the last log interval), ``eval``
            (last metrics, with their ``epoch`` and ``step``), ``eval_history``, ``elapsed_s`` (over all resumptions), ``resumed_from``
            (step or ``None``), ``checkpoint`` (path of ``last``).

        Raises:
            NonFiniteLossError: the loss became NaN or infinite (the last good checkpoint is kept).
        """
        self._prepare_run_dir(config_dict, resume)
        run = self._setup(
            module, train_dataset, batch_size=batch_size, num_workers=num_workers, optimizer_factory=optimizer_factory,
            scheduler_factory=scheduler_factory, batch_transform=batch_transform, evaluate=evaluate,
            config_dict=config_dict, drop_last=drop_last, collate_fn=collate_fn,
        )
        if resume:
            self._restore(run)
        self._open_outputs(run)
        try:
            if getattr(run.evaluate, "at_start", False) and run.state.step == 0:
                self._evaluate(run, -1)  # the initialised weights: a run falling below its start shows it
            while run.state.epoch < self.cfg.epochs and not self._done(run):
                epoch = run.state.epoch
                self._train_epoch(run, epoch)
                if run.state.batch_in_epoch >= run.nb:  # the epoch is complete
                    self._end_epoch(run, epoch)
            if run.saved_step != run.state.step:
                self._checkpoint(run)
        finally:
            run.step_bar.close()
            run.epoch_bar.close()
            run.logger.close()
        return {
            "step": run.state.step,
            "epoch": run.state.epoch,
            "loss": run.last_loss,
            "eval": run.last_eval,
            "eval_history": list(run.eval_history),
            "elapsed_s": run.elapsed_before + time.perf_counter() - run.started,
            "resumed_from": run.resumed_from,
            "checkpoint": str(self.ckpt_dir / "last"),
        }

    # -- before the first step ---------------------------------------------------------------------
    def _prepare_run_dir(self, config_dict: dict[str, Any] | None, resume: bool) -> None:
        if self.cfg.deterministic:
            set_deterministic(True)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # The recorded config describes the run as it started; a resume never rewrites it.
            if config_dict is not None and not (resume and (self.run_dir / "config.yaml").is_file()):
                save_config(config_dict, self.run_dir / "config.yaml")

    def _setup(self, module: nn.Module, train_dataset: Dataset, *, batch_size: int, num_workers: int,
               optimizer_factory: Callable[[nn.Module], torch.optim.Optimizer], scheduler_factory: Callable[..., Any] | None,
               batch_transform: Callable[..., dict[str, torch.Tensor]] | None, evaluate: Callable[[nn.Module, int], dict[str, float]] | None,
               config_dict: dict[str, Any] | None, drop_last: bool, collate_fn: Callable[[list[Any]], Any]) -> _Fit:
        """The module on Fabric, its optimiser and scheduler, the batch geometry and the random streams."""
        cfg, fabric = self.cfg, self.fabric
        rank, world = fabric.global_rank, fabric.world_size
        raw = module
        if hasattr(raw, "gather"):
            raw.gather = all_gather_with_grad
        wrapped = fabric.setup_module(raw)
        distributed = wrapped._forward_module is not raw
        if distributed:
            # Calls to training_step must pass through DDP's forward to synchronise gradients.
            wrapped.mark_forward_method("training_step")
        optimizer = optimizer_factory(raw)
        opt = fabric.setup_optimizers(optimizer)

        n = len(train_dataset)
        nb = num_batches(n, batch_size, world, drop_last)
        if nb == 0:
            raise ConfigError(f"data.batch_size: {n} samples give no full batch of {batch_size} on each of {world} process(es)")
        acc = max(1, int(cfg.accumulate))
        steps_per_epoch = math.ceil(nb / acc)
        total_steps = cfg.epochs * steps_per_epoch
        if cfg.max_steps is not None:
            total_steps = min(total_steps, int(cfg.max_steps))
        scheduler = scheduler_factory(optimizer, steps_per_epoch, total_steps) if scheduler_factory else None

        augment = torch.Generator(device=fabric.device)
        augment.manual_seed(derive_seed(cfg.seed, "augment", rank))
        generators = module_generators(raw)
        generators[_AUGMENT_KEY] = augment
        # Dropout and friends draw from the global streams; give each rank its own.
        seed_all(derive_seed(cfg.seed, "global", rank))
        return _Fit(
            raw=raw, wrapped=wrapped, distributed=distributed, optimizer=optimizer, opt=opt, scheduler=scheduler,
            augment=augment, generators=generators, dataset=train_dataset, batch_size=batch_size, num_workers=num_workers,
            collate_fn=collate_fn, drop_last=drop_last, batch_transform=batch_transform, evaluate=evaluate,
            config_dict=config_dict, n=n, nb=nb, acc=acc, steps_per_epoch=steps_per_epoch,
            geometry={"samples": n, "batch_size": batch_size, "world_size": world, "accumulate": acc, "drop_last": drop_last},
        )

    def _restore(self, run: _Fit) -> None:
        """Continue from ``checkpoints/last`` when it exists: weights, optimiser, scheduler, random
        streams, position and evaluation history. The data geometry must be the saved one."""
        found = ckpt.find_checkpoint(self.run_dir)
        if found is None:
            return
        loaded = ckpt.load_checkpoint(found)
        saved = loaded.state
        mismatch = {k: (saved.get("geometry", {}).get(k), v) for k, v in run.geometry.items() if saved.get("geometry", {}).get(k) != v}
        if mismatch:
            raise ckpt.CheckpointError(f"{found}: cannot resume exactly, the data geometry changed (saved, now): {mismatch}")
        run.raw.load_state_dict(loaded.model, strict=True)
        run.optimizer.load_state_dict(saved["optimizer"])
        if run.scheduler is not None and saved.get("scheduler") is not None:
            run.scheduler.load_state_dict(saved["scheduler"])
        rank = self.fabric.global_rank
        rank_state = loaded.rank_state(rank)
        if rank_state is None:
            raise ckpt.CheckpointError(f"{found}: no saved random state for rank {rank}")
        restore_rng_state(rank_state["rng"], run.generators)
        run.state = TrainState(int(saved["step"]), int(saved["epoch"]), int(saved["batch_in_epoch"]))
        run.eval_history = list(saved.get("eval_history", []))
        run.elapsed_before = float(saved.get("elapsed_s", 0.0))
        run.resumed_from = run.saved_step = run.state.step

    def _open_outputs(self, run: _Fit) -> None:
        """The metrics logger and progress bars; the clock starts."""
        cfg = self.cfg
        run.logger = RunLogger(self.run_dir, enabled=self.is_main, resume_step=run.resumed_from)
        show = bool(cfg.progress) and self.is_main
        run.epoch_bar = progress_bar(cfg.epochs, "epochs", show, position=0, initial=run.state.epoch)
        run.step_bar = progress_bar(run.steps_per_epoch, "steps", show, position=1, leave=False)
        run.started = time.perf_counter()
        run.last_eval = dict(run.eval_history[-1]) if run.eval_history else {}

    # -- one epoch ---------------------------------------------------------------------------------
    def _done(self, run: _Fit) -> bool:
        return self.cfg.max_steps is not None and run.state.step >= self.cfg.max_steps

    def _train_epoch(self, run: _Fit, epoch: int) -> None:
        """The epoch's remaining micro-batches (from ``state.batch_in_epoch``), an optimiser step at the
        end of each accumulation window; stops early at ``max_steps``."""
        cfg, fabric, start = self.cfg, self.fabric, run.state.batch_in_epoch
        batches = epoch_batches(run.n, run.batch_size, cfg.seed, epoch, fabric.global_rank, fabric.world_size, run.drop_last)
        loader = DataLoader(
            run.dataset,
            batch_sampler=batches[start:],
            num_workers=run.num_workers,
            collate_fn=run.collate_fn,
            pin_memory=fabric.device.type == "cuda",
            # An explicit generator keeps the loader from drawing on the global stream.
            generator=torch.Generator().manual_seed(derive_seed(cfg.seed, "loader", epoch)),
        )
        run.wrapped.train()
        run.step_bar.reset(total=run.steps_per_epoch)
        run.step_bar.update(start // run.acc)
        for i, batch in enumerate(loader, start):
            if not self._accumulate(run, epoch, i, batch):
                continue
            self._optimizer_step(run, epoch, i)
            if self._done(run):
                break

    def _accumulate(self, run: _Fit, epoch: int, i: int, batch: Any) -> bool:
        """Forward and backward of micro-batch ``i``, its loss and logs added to the log window;
        whether it ends its accumulation window (an optimiser step is due)."""
        fabric = self.fabric
        win_start = (i // run.acc) * run.acc
        win_len = min(run.acc, run.nb - win_start)
        last_micro = i + 1 == win_start + win_len
        batch = fabric.to_device(batch)
        if run.batch_transform is not None:
            batch = run.batch_transform(batch, run.augment)
        with fabric.no_backward_sync(run.wrapped, enabled=not last_micro):
            with fabric.autocast():
                loss, logs = (run.wrapped if run.distributed else run.raw).training_step(batch)
            # Mean over ranks: every rank sees the same value, so all stop together.
            value = float(fabric.all_reduce(loss.detach().float(), reduce_op="mean"))
            if not math.isfinite(value):
                last = ckpt.find_checkpoint(self.ckpt_dir / "last")
                raise NonFiniteLossError(run.state.step, epoch, i, value, last)
            fabric.backward(loss / win_len)
        window = run.window
        window["loss"] = window.get("loss", 0.0) + value / win_len
        for key, v in (logs or {}).items():
            if key in _RESERVED:  # the engine's own (rank-averaged) values win
                continue
            v = v.detach().float() if isinstance(v, torch.Tensor) else float(v)
            window[key] = window.get(key, 0.0) + v / win_len
        return last_micro

    def _optimizer_step(self, run: _Fit, epoch: int, i: int) -> None:
        """The optimiser step closing at micro-batch ``i``, then its log line and step checkpoints."""
        cfg, state = self.cfg, run.state
        if cfg.grad_clip:
            run.grad_norm = self.fabric.clip_gradients(run.wrapped, run.opt, max_norm=cfg.grad_clip, error_if_nonfinite=False)
        lr = run.optimizer.param_groups[0]["lr"]
        run.opt.step()
        run.opt.zero_grad(set_to_none=True)
        if hasattr(run.raw, "after_optimizer_step"):
            run.raw.after_optimizer_step()
        if run.scheduler is not None:
            run.scheduler.step()
        state.step += 1
        state.batch_in_epoch = i + 1
        run.logged_steps += 1
        run.step_bar.update(1)

        if state.step % max(1, cfg.log_every) == 0 or state.batch_in_epoch == run.nb or self._done(run):
            record = {k: scalar(v) / run.logged_steps for k, v in run.window.items()}
            run.last_loss = record["loss"]
            if run.grad_norm is not None:
                record["grad_norm"] = scalar(run.grad_norm)
            run.logger.log({"step": state.step, "epoch": epoch, "lr": lr, **record})
            run.step_bar.set_postfix(loss=f"{run.last_loss:.4g}", lr=f"{lr:.3g}")
            run.window, run.logged_steps = {}, 0
        if cfg.ckpt_every_steps and state.step % cfg.ckpt_every_steps == 0:
            self._checkpoint(run)
        if cfg.keep_every_steps and state.step % cfg.keep_every_steps == 0:
            if run.saved_step != state.step:
                self._checkpoint(run)
            self._keep(f"step-{state.step:07d}")

    def _evaluate(self, run: _Fit, epoch: int) -> None:
        """``run.evaluate`` after ``epoch`` (``-1``: before the first step), logged when it measured
        something (an evaluation may run only every few epochs)."""
        metrics = {k: scalar(v) for k, v in run.evaluate(run.raw, epoch).items()}
        if metrics:
            run.wrapped.train()
            run.last_eval = {"epoch": epoch, "step": run.state.step, **metrics}
            run.eval_history.append(run.last_eval)
            run.logger.log({"step": run.state.step, "epoch": epoch, **metrics}, kind="eval")

    def _end_epoch(self, run: _Fit, epoch: int) -> None:
        """After a complete epoch: evaluate, log, checkpoint and keep as the config asks."""
        cfg, state = self.cfg, run.state
        state.epoch, state.batch_in_epoch = epoch + 1, 0
        if run.evaluate is not None:
            self._evaluate(run, epoch)
        final = state.epoch >= cfg.epochs or self._done(run)
        if final or (cfg.ckpt_every_epochs and state.epoch % cfg.ckpt_every_epochs == 0):
            self._checkpoint(run)
        if cfg.keep_every_epochs and (state.epoch % cfg.keep_every_epochs == 0 or final):
            if run.saved_step != state.step:
                self._checkpoint(run)
            self._keep(f"epoch-{epoch:04d}")
        run.epoch_bar.update(1)

    # -- saving ------------------------------------------------------------------------------------
    def _checkpoint(self, run: _Fit, name: str = "last") -> None:
        """Save ``checkpoints/<name>`` unless the weights have diverged (then raise, keeping the last good one)."""
        problem = weights_problem(run.raw, run.optimizer)
        if problem is not None:
            raise DivergedWeightsError(run.state.step, run.state.epoch, problem, ckpt.find_checkpoint(self.ckpt_dir / "last"))
        self._save(name, run.raw, self._training_state(run), run.generators, run.config_dict)
        run.saved_step = run.state.step

    def _training_state(self, run: _Fit) -> dict[str, Any]:
        cfg = self.cfg
        return {
            **asdict(run.state),
            "sampler_seed": derive_seed(cfg.seed, "epoch", run.state.epoch),
            "seed": cfg.seed,
            "geometry": run.geometry,
            "batches_per_epoch": run.nb,
            "steps_per_epoch": run.steps_per_epoch,
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
            "eval_history": run.eval_history,
            "elapsed_s": run.elapsed_before + time.perf_counter() - run.started,
            "config_hash": config_hash(run.config_dict) if run.config_dict is not None else None,
        }
