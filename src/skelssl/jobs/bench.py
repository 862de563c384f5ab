"""``skelssl bench``: what one pre-training recipe costs, measured on this machine.

For any recipe, without its store: the encoder and method are built from the recipe (the store, when
it exists, gives the layout, persons and channels; otherwise ``BenchOptions.layout``/``persons`` and
3 channels) and trained on one fixed in-memory batch, as the engine's loop runs a step
(Lightning Fabric precision, autocast, gradient accumulation and clipping, the optimiser of the
recipe, the method's ``after_optimizer_step``). :func:`run_bench` returns one flat row:

- training samples/s (optimiser steps, warm-up excluded) and, from the FLOPs of one step
  (``FlopCounterMode``), the achieved FLOP/s and the share of the chip's dense bf16 peak;
- inference samples/s: the exported encoder in ``eval()`` under ``no_grad`` on the evaluation input;
- data-loader samples/s alone (a ``DataLoader`` over the recipe's split, only when the store exists);
- peak memory: host RSS (``getrusage``) and, on a GPU, ``max_memory_allocated`` per phase;
- with ``naive=True`` and a ``benchmarks/throughput_<method>.py`` plug-in, its naive and fast steps
  timed one after the other, and the speed-up.

Every figure that cannot be measured is ``None`` and ``row["notes"]`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from skelssl.engine import throughput as tp
from skelssl.engine.config import RunConfig, load_config, resolve_batch

__all__ = ["BenchError", "BenchOptions", "SMOKE_OVERRIDES", "run_bench", "format_table", "PRECISIONS"]

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")

# Overrides that shrink each method's paper-size recipe to a CPU smoke test (tests, gpu_check --tiny).
SMOKE_OVERRIDES: dict[str, list[str]] = {
    "hitrs": ["encoder.kwargs.preset=tiny", "trainer.accumulate=1"],
    "isc": ["encoder.kwargs.preset=small", "encoder.kwargs.hidden_size=32", "encoder.kwargs.num_layers=1",
            "method.kwargs.partner.kwargs.preset=small", "method.kwargs.queue_size=32", "method.kwargs.frames=16"],
    "mamp": ["encoder.kwargs.preset=tiny", "encoder.kwargs.frames=40", "method.kwargs.decoder_depth=1",
             "method.kwargs.min_frames=20"],
    "motion_transformer": ["encoder.kwargs.preset=tiny", "encoder.kwargs.frames=30"],
}


class BenchError(ValueError):
    """A bench that cannot run as asked (no CUDA device, a bad option)."""


@dataclass
class BenchOptions:
    """How to measure.

    Attributes:
        device: ``cpu`` or ``cuda`` (``None``: cuda when available).
        precision: ``32-true``, ``bf16-mixed`` or ``16-mixed``; ``None`` keeps ``trainer.precision``
            (mixed precision is forced to ``32-true`` on CPU, as in training).
        steps, warmup: timed and untimed optimiser steps (and inference batches).
        batch: samples per micro-batch (``None``: ``data.batch_size``).
        frames: padded length of the synthetic batch (``None``: ``data.max_frames``, else 300); its
            lengths are uniform in ``[frames // 5, frames]`` and every other clip has one person.
        layout, persons: the synthetic input's geometry when the recipe's store is not here (with the
            store, a fixed random batch of its split is used, and these three are ignored).
        naive: also time the method's naive plug-in step against its fast one.
        naive_steps: timed steps of each plug-in variant (after one warm-up step).
    """

    device: str | None = None
    precision: str | None = None
    steps: int = 10
    warmup: int = 2
    batch: int | None = None
    frames: int | None = None
    layout: str = "ntu25"
    persons: int = 2
    naive: bool = False
    naive_steps: int = 3


def _resolve(recipe: str | Path, overrides: list[str], opts: BenchOptions) -> tuple[RunConfig, torch.device]:
    """The recipe with the bench's own settings, and the device to run on."""
    device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise BenchError(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda: no CUDA device is available here (use --device cpu)")
    if opts.precision is not None and opts.precision not in PRECISIONS:
        raise BenchError(f"--precision must be one of {', '.join(PRECISIONS)}, got {opts.precision!r}")
    if opts.steps < 1 or opts.warmup < 0 or opts.naive_steps < 1:
        raise BenchError("--steps and --naive-steps must be at least 1, --warmup at least 0")
    extra = [f"trainer.accelerator={device}", "trainer.devices=1", "trainer.num_nodes=1", "trainer.strategy=auto"]
    if opts.precision is not None:
        extra.append(f"trainer.precision={opts.precision}")
    if opts.batch is not None:
        extra.append(f"data.batch_size={opts.batch}")
    # One device: a recipe's global batch is the batch of the benchmarked step (as `pretrain` resolves it).
    return resolve_batch(load_config(recipe, list(overrides) + extra), 1), torch.device(device)


def _open_store(cfg: RunConfig) -> tuple[Any, str | None]:
    """The recipe's store when it is here, else ``(None, why not)``."""
    from skelssl.data.store import is_store
    from skelssl.jobs.pretrain import open_store

    if not cfg.data.store:
        return None, "the recipe names no data.store"
    if not is_store(cfg.data.store):
        return None, f"data.store {cfg.data.store} is not a store here (benched on a synthetic batch)"
    return open_store(cfg.data), None


def _training_batch(cfg: RunConfig, store: Any, opts: BenchOptions) -> tuple[dict[str, torch.Tensor], Any, int]:
    """The fixed micro-batch: drawn from the store's split when it is here, else synthetic.

    Returns:
        ``(batch, dataset or None, padded frames)``.
    """
    from skelssl.data.dataset import SkeletonDataset, collate
    from skelssl.jobs.pretrain import select_indices

    n = cfg.data.batch_size
    if store is not None:
        dataset = SkeletonDataset(store, select_indices(store, cfg.data), max_frames=cfg.data.max_frames)
        picks = np.random.default_rng(cfg.trainer.seed).choice(len(dataset), n, replace=len(dataset) < n)
        batch = collate([dataset[int(i)] for i in picks])
        return batch, dataset, int(batch["x"].shape[2])
    frames = opts.frames or cfg.data.max_frames or 300
    joints = _layout(opts.layout).num_joints
    batch = tp.synthetic_batch(n, seed=cfg.trainer.seed, min_length=max(1, frames // 5), frames=frames,
                               joints=joints, persons=opts.persons)
    if opts.persons > 1:
        batch["x"][1::2, ..., 1:] = 0  # every other clip has one actor, as most NTU clips
    return batch, None, frames


def _layout(name: str):
    from skelssl.core.layouts import get_layout

    try:
        return get_layout(name)
    except KeyError as e:
        raise BenchError(str(e).strip("'\"")) from None


def _loader_rate(dataset: Any, cfg: RunConfig, device: torch.device, batches: int, warmup: int) -> float:
    """Samples/s of a DataLoader alone over the split (random batches, the recipe's workers)."""
    from torch.utils.data import DataLoader

    from skelssl.data.dataset import collate

    rng, n, b = np.random.default_rng(0), len(dataset), cfg.data.batch_size
    order = [rng.choice(n, b, replace=n < b).tolist() for _ in range(batches + warmup)]
    loader = iter(DataLoader(dataset, batch_sampler=order, num_workers=cfg.data.num_workers, collate_fn=collate,
                             pin_memory=device.type == "cuda"))
    for _ in range(warmup):
        next(loader)
    return b / tp.time_steps(lambda: next(loader), torch.device("cpu"), batches, 0)


@dataclass
class _TrainTiming:
    """What :func:`_time_training` measured."""

    seconds: float  # per optimiser step, warm-up excluded
    peak_gpu_mb: float | None
    flops: float | None  # of one optimiser step; None when the counter failed
    peak_tflops: float | None  # the chip's dense bf16 peak; None when unknown
    loss: float  # of the last micro-batch


def _time_training(fabric: Any, method: Any, batch: dict[str, torch.Tensor], cfg: RunConfig,
                   device: torch.device, opts: BenchOptions, notes: dict[str, str]) -> _TrainTiming:
    """One optimiser step as ``Trainer.fit`` takes it, timed, and its FLOPs counted."""
    from skelssl.engine.optim import optimizer_factory

    acc = max(1, cfg.trainer.accumulate)
    wrapped = fabric.setup_module(method)
    optimizer = fabric.setup_optimizers(optimizer_factory(cfg.optim)(method))
    method.train()
    losses: list[float] = []

    def train_step() -> None:
        for _ in range(acc):
            with fabric.autocast():
                loss, _ = method.training_step(batch)
            losses.append(float(loss.detach()))  # the loop reads every micro-batch's loss
            fabric.backward(loss / acc)
        if cfg.trainer.grad_clip:
            fabric.clip_gradients(wrapped, optimizer, max_norm=cfg.trainer.grad_clip, error_if_nonfinite=False)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if hasattr(method, "after_optimizer_step"):
            method.after_optimizer_step()

    tp.reset_peak_memory(device)
    train_s = tp.time_steps(train_step, device, opts.steps, opts.warmup)
    peak_train = tp.peak_memory_mb(device)
    flops = tp.count_flops(train_step)
    peak = tp.peak_tflops(device)
    if flops is None:
        notes["train_tflop_per_step"] = "the FLOP counter failed or counted nothing"
    if peak is None:
        notes["train_share_of_bf16_peak"] = f"no dense bf16 peak known for {tp.device_name(device)}"
    return _TrainTiming(train_s, peak_train, flops, peak, losses[-1])


def _time_inference(fabric: Any, encoder: Any, batch: dict[str, torch.Tensor], cfg: RunConfig,
                    device: torch.device, opts: BenchOptions) -> tuple[float, float | None]:
    """The exported encoder on the evaluation input; returns ``(seconds per batch, peak GPU MiB)``."""
    from skelssl.engine.eval_input import test_transform

    transform = test_transform(cfg.eval.input)
    inputs = transform(batch) if transform is not None else batch
    encoder.eval()

    def infer() -> None:
        with torch.no_grad(), fabric.autocast():
            encoder(inputs["x"], inputs["lengths"])

    tp.reset_peak_memory(device)
    infer_s = tp.time_steps(infer, device, opts.steps, opts.warmup)
    return infer_s, tp.peak_memory_mb(device)


def _params_m(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def run_bench(recipe: str | Path, overrides: list[str] | tuple[str, ...] = (),
              opts: BenchOptions | None = None) -> dict[str, Any]:
    """Measure the recipe (see the module docstring); returns the JSON row."""
    from skelssl.engine.dist import make_fabric
    from skelssl.engine.seed import seed_all
    from skelssl.jobs.pretrain import build_method

    opts = opts or BenchOptions()
    cfg, device = _resolve(recipe, list(overrides), opts)
    store, store_note = _open_store(cfg)
    notes: dict[str, str] = {}
    geometry = store if store is not None else SimpleNamespace(channels=3, layout=_layout(opts.layout), num_persons=opts.persons)
    fabric = make_fabric(cfg.trainer)
    precision = cfg.trainer.precision if device.type == "cuda" else "32-true"
    seed_all(cfg.trainer.seed)
    method, encoder_kwargs = build_method(cfg, geometry)
    batch, dataset, frames = _training_batch(cfg, store, opts)
    n, acc = int(batch["x"].shape[0]), max(1, cfg.trainer.accumulate)
    batch = fabric.to_device(batch)

    train = _time_training(fabric, method, batch, cfg, device, opts, notes)
    encoder = method.export_encoder()
    infer_s, peak_infer = _time_inference(fabric, encoder, batch, cfg, device, opts)

    loader_sps = None
    if dataset is not None:
        loader_sps = _loader_rate(dataset, cfg, device, max(opts.steps, 10), 1)
    else:
        notes["loader_samples_per_s"] = store_note or "no store"
    host_rss = tp.host_peak_rss_mb()  # before the plug-in's models are built

    flops, train_s, peak = train.flops, train.seconds, train.peak_tflops
    row: dict[str, Any] = {
        "recipe": str(recipe), "overrides": list(overrides), "method": cfg.method.name, "encoder": cfg.encoder.name,
        "preset": encoder_kwargs.get("preset"), "encoder_params_m": _params_m(encoder), "method_params_m": _params_m(method),
        "device": tp.device_name(device), "torch": torch.__version__, "precision": precision,
        "precision_requested": cfg.trainer.precision, "input": "store" if store is not None else "synthetic",
        "layout": geometry.layout.name, "persons": geometry.num_persons, "frames": frames, "batch": n,
        "accumulate": acc, "samples_per_step": n * acc, "steps": opts.steps, "warmup": opts.warmup,
        "loss": train.loss,
        "train_samples_per_s": n * acc / train_s, "train_s_per_step": train_s,
        "train_tflop_per_step": flops / 1e12 if flops else None,
        "train_achieved_tflops": flops / train_s / 1e12 if flops else None,
        "train_share_of_bf16_peak": flops / train_s / 1e12 / peak if flops and peak else None,
        "infer_samples_per_s": n / infer_s, "infer_s_per_batch": infer_s,
        "loader_samples_per_s": loader_sps, "loader_workers": cfg.data.num_workers,
        "peak_host_rss_mb": host_rss, "peak_gpu_train_mb": train.peak_gpu_mb, "peak_gpu_infer_mb": peak_infer,
    }
    if device.type != "cuda":
        notes["peak_gpu_train_mb"] = notes["peak_gpu_infer_mb"] = "not on a GPU"

    del method, encoder, batch  # free the GPU before the plug-in builds its models
    if device.type == "cuda":
        torch.cuda.empty_cache()
    row.update(_naive_figures(cfg, opts, device, n, notes))
    row["notes"] = notes
    return row


def _naive_figures(cfg: RunConfig, opts: BenchOptions, device: torch.device, batch: int, notes: dict[str, str]) -> dict[str, Any]:
    """The plug-in's naive/fast comparison at the recipe's encoder preset, or ``None`` figures with a note."""
    empty = dict.fromkeys(("naive_samples_per_s", "naive_fast_samples_per_s", "naive_speedup", "naive_batch", "naive_preset"))
    if not opts.naive:
        notes["naive_samples_per_s"] = "not run (pass --naive)"
        return empty
    kwargs = {**cfg.method.kwargs, **cfg.encoder.kwargs}  # frames: the encoder's (MAMP, MT) or the method's (ISC)
    figures, why = tp.naive_comparison(cfg.method.name, device, batch, opts.naive_steps, 1,
                                       preset=kwargs.get("preset"), frames=kwargs.get("frames"))
    if figures is None:
        notes["naive_samples_per_s"] = str(why)
        return empty
    return figures


def _fmt(value: Any, unit: str = "", digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}{unit}"


def format_table(row: dict[str, Any]) -> str:
    """The row as a few readable lines (figures, then the reasons for those missing)."""
    gflop = row["train_tflop_per_step"] * 1e3 if row["train_tflop_per_step"] else None
    asked = "" if row["precision"] == row["precision_requested"] else \
        f" (asked {row['precision_requested']}: mixed precision is a GPU feature)"
    lines = [
        f"{row['recipe']}: {row['method']} / {row['encoder']} (preset {row['preset']}, {row['encoder_params_m']:.2f} M "
        f"encoder parameters); {row['device']}, {row['precision']}{asked}",
        f"input: {row['input']} batch of {row['batch']} x {row['frames']} frames, {row['layout']}, {row['persons']} "
        f"person(s); {row['samples_per_step']} samples per step; {row['steps']} timed steps after {row['warmup']}",
        "",
        f"{'figure':28s} {'value':>14s}  detail",
        f"{'training':28s} {_fmt(row['train_samples_per_s'], ' /s'):>14s}  {_fmt(row['train_s_per_step'], ' s')} per step, "
        f"loss {_fmt(row['loss'])}",
        f"{'  FLOPs per step':28s} {_fmt(gflop, ' GFLOP'):>14s}  achieved "
        f"{_fmt(row['train_achieved_tflops'], ' TFLOP/s')}, share of bf16 peak {_fmt(row['train_share_of_bf16_peak'])}",
        f"{'inference (eval, no_grad)':28s} {_fmt(row['infer_samples_per_s'], ' /s'):>14s}  "
        f"{_fmt(row['infer_s_per_batch'], ' s')} per batch",
        f"{'data loader alone':28s} {_fmt(row['loader_samples_per_s'], ' /s'):>14s}  {row['loader_workers']} worker(s)",
        f"{'peak host RSS':28s} {_fmt(row['peak_host_rss_mb'], ' MiB'):>14s}",
        f"{'peak GPU memory':28s} {_fmt(row['peak_gpu_train_mb'], ' MiB'):>14s}  training; inference "
        f"{_fmt(row['peak_gpu_infer_mb'], ' MiB')}",
        f"{'naive step':28s} {_fmt(row['naive_samples_per_s'], ' /s'):>14s}  fast {_fmt(row['naive_fast_samples_per_s'], ' /s')}"
        f", speed-up {_fmt(row['naive_speedup'], 'x', 3)} (plug-in preset {row['naive_preset'] or '-'})",
    ]
    if row["notes"]:
        lines += ["", "missing figures:"] + [f"  {k}: {v}" for k, v in row["notes"].items()]
    return "\n".join(lines)
