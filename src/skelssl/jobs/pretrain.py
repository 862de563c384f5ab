"""Config-driven jobs on top of the loop: open the data, build the parts, train, export the encoder.

This is where the strings of a :class:`~skelssl.engine.config.RunConfig` become objects (the edge
of the library, STYLE.md 4): the store and protocol become a dataset, ``encoder``/``method`` names
become modules, ``optim``/``schedule`` become factories for :class:`~skelssl.engine.loop.Trainer`.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np

from skelssl.core.files import FolderLock, OutputError
from skelssl.data.dataset import SkeletonDataset
from skelssl.data.store import Store
from skelssl.engine import checkpoint as ckpt
from skelssl.engine import init_from
from skelssl.engine.config import (
    ConfigError,
    DataConfig,
    RunConfig,
    apply_overrides,
    build_encoder_from_config,
    build_method_from_config,
    from_dict,
    load_eval_config,
    resolve_batch,
    to_dict,
)
from skelssl.engine.eval_input import stream_view
from skelssl.engine.loop import Trainer
from skelssl.engine.monitor import make_monitor
from skelssl.engine.optim import optimizer_factory, scheduler_factory
from skelssl.engine.seed import seed_all

__all__ = ["select_indices", "open_store", "open_dataset", "build_method", "method_context", "pretrain", "export_encoder", "absolute_stores",
           "encoder_data", "test_input_of"]


def select_indices(store: Store, data: DataConfig, split: str | None = None) -> np.ndarray:
    """Store indices of ``data.split`` (or ``split``) of ``data.protocol``, with the label fraction.

    Args:
        store: the opened store.
        data: the ``data`` section.
        split: ``"train"``, ``"test"`` or ``"all"``; default ``data.split``.

    Returns:
        Sorted int64 indices. Without a protocol every sample is used (self-supervised pre-training
        on a whole store); a label fraction needs a protocol and applies to its training split.
    """
    from skelssl.data.protocols import split as protocol_split
    from skelssl.data.protocols import subset_indices

    which = split or data.split
    if data.protocol is None:
        if data.label_fraction is not None:
            raise ConfigError("data.label_fraction: needs data.protocol (the fraction is of its training split)")
        return np.arange(len(store), dtype=np.int64)
    try:
        train, test = protocol_split(store, data.protocol)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"data.protocol: {e.args[0] if e.args else e}") from None
    if which == "train" and data.label_fraction is not None:
        return np.asarray(subset_indices(store, data.protocol, data.label_fraction, data.subset_seed), np.int64)
    if which == "train":
        return train
    if which == "test":
        return test
    return np.union1d(train, test).astype(np.int64)


def open_store(data: DataConfig, path: str | None = None) -> Store:
    """The store of the ``data`` section (or ``path``) as the encoder reads it: without its ``score``
    channel when ``data.use_score`` is false, in the input stream ``data.stream``."""
    store = Store(path or data.store)
    return stream_view(store if data.use_score else store.without_score(), data.stream)


def open_dataset(data: DataConfig, split: str | None = None) -> SkeletonDataset:
    """The :class:`SkeletonDataset` the ``data`` section describes."""
    if not data.store:
        raise ConfigError("data.store: no store given (the folder written by `skelssl prepare`)")
    store = open_store(data)
    return SkeletonDataset(store, select_indices(store, data, split), max_frames=data.max_frames)


def build_method(cfg: RunConfig, store: Store | None = None):
    """Encoder then method from the config; the store fills ``in_channels``/``layout``/``num_persons``,
    ``trainer.seed`` the method's :attr:`~skelssl.methods.base.Method.run_seed`.

    Returns:
        ``(method, resolved_encoder_kwargs)``: the kwargs the encoder was built with (JSON), recorded
        in the saved config so that the method can be rebuilt from a checkpoint without the store.
    """
    context: dict[str, Any] = {}
    if cfg.data.stream != "joint" and cfg.encoder.kwargs.get("stream", "joint") != "joint":
        raise ConfigError(f"data.stream={cfg.data.stream} and encoder.kwargs.stream={cfg.encoder.kwargs['stream']}: "
                          "choose one (Hi-TRS's own stream follows the official code, derived after augmentation)")
    cfg = method_context(cfg, store)
    if store is not None:
        context = {"in_channels": store.channels, "layout": store.layout.name, "num_persons": store.num_persons}
        if getattr(store, "coords", store.channels) != store.channels:  # a score: encoders that derive
            context["coords"] = store.coords  # streams (Hi-TRS bone / motion) difference coordinates only
    encoder = build_encoder_from_config(cfg.encoder, **context)
    # trainer.seed seeds every random draw of the method (augmentations, masks, initial queues).
    method = build_method_from_config(cfg.method, run_seed=cfg.trainer.seed, encoder=encoder)
    return method, dict(encoder.spec["kwargs"])


def method_context(cfg: RunConfig, store: Any) -> RunConfig:
    """``method.kwargs.coords`` from a store whose channels are not all coordinates (``x, y, score``):
    the method's augmentations then move the coordinates only. Recorded in the run config, so that
    the method rebuilds from a checkpoint without the store; a store of coordinates only adds nothing."""
    import inspect

    from skelssl.methods import get_method

    coords = getattr(store, "coords", None)
    if store is None or coords is None or coords == store.channels:
        return cfg
    try:
        cls = get_method(cfg.method.name)
    except KeyError:
        return cfg  # build_method_from_config names the unknown method
    if "coords" not in inspect.signature(cls.__init__).parameters:
        return cfg
    given = cfg.method.kwargs.get("coords")
    if given is not None and int(given) != coords:
        raise ConfigError(f"method.kwargs.coords: config says {given} but the store has {coords} coordinate channels "
                          f"({', '.join(store.channel_names)})")
    return dataclasses.replace(cfg, method=dataclasses.replace(cfg.method, kwargs={**cfg.method.kwargs, "coords": coords}))


def pretrain(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, fabric: Any = None,
             warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Self-supervised pre-training: train the method, then write ``run_dir/encoder.safetensors``.

    With ``cfg.init_from.path`` set, a new run's method starts from those weights
    (:mod:`skelssl.engine.init_from`); the saved config records the file and its SHA-256.

    Args:
        cfg: the resolved run config.
        run_dir: the run folder.
        resume: continue from ``run_dir/checkpoints/last`` (``init_from`` is not read again).
        fabric: a launched Fabric (default: from ``cfg.trainer``; launching happens first, so the
            processes Fabric starts build the same data and modules).
        warn: called (on the main process, before training) with each warning, e.g. the tensors
            ``init_from`` left at their fresh initialisation for another layout.

    Returns:
        The trainer's summary plus ``encoder`` (the path written), ``batch_size`` (per device),
        ``global_batch`` and ``lr`` (the effective peak lr), as resolved for the launched world size,
        ``init_from`` (the file the run started from, or ``None``) and ``warnings``.
    """
    run_dir = Path(run_dir)
    if resume:
        check_resumable(run_dir)
    trainer = Trainer(cfg.trainer, run_dir, fabric=fabric)
    # The world size is known once Fabric has launched: resolve data.global_batch and optim.lr_scale_batch.
    cfg = resolve_batch(cfg, trainer.fabric.world_size)
    cfg = absolute_stores(cfg)
    dataset = open_dataset(cfg.data)
    source = None
    if cfg.init_from.path and resume:  # the run's own checkpoint holds its weights
        cfg = dataclasses.replace(cfg, init_from=init_from.recorded(cfg.init_from))
    elif cfg.init_from.path:
        source = init_from.read_source(cfg.init_from)
        cfg = dataclasses.replace(cfg, init_from=source.record)
    seed_all(cfg.trainer.seed)  # parameter initialisation draws from the global streams
    cfg = method_context(cfg, dataset.store)  # recorded: the method rebuilds without the store
    method, encoder_kwargs = build_method(cfg, dataset.store)
    warnings: list[str] = []
    if source is not None:
        reinit = init_from.apply(method, source, cfg, encoder_kwargs)
        if reinit:
            warnings.append(init_from.reinit_warning(reinit, source, encoder_kwargs))
        del source  # (its tensors: the method holds copies)
    if warn is not None and trainer.is_main:
        for message in warnings:
            warn(message)
    resolved = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, kwargs=encoder_kwargs))
    config_dict = to_dict(resolved)
    lock = None
    if trainer.is_main:
        # One process per run folder: a second pretrain into the same --out refuses at once.
        lock = FolderLock(run_dir / ".lock", f"run {run_dir}").acquire()
    try:
        if trainer.is_main:
            if resume:
                check_same_run(run_dir, config_dict)
            elif any(p.name != ".lock" for p in run_dir.iterdir()):
                raise OutputError(f"{run_dir} is not empty: pass --resume to continue that run, or choose another --out")
        summary = _fit(trainer, method, dataset, cfg, config_dict, resume, run_dir)
        return {**summary, "init_from": cfg.init_from.path, "warnings": warnings}
    finally:
        if lock is not None:
            lock.release()


def absolute_stores(cfg: RunConfig) -> RunConfig:
    """``data.store`` and ``monitor.store`` as absolute paths, so that the saved config (and the
    encoder file) still name the store when ``skelssl eval`` or ``embed`` runs from another folder."""
    data = dataclasses.replace(cfg.data, store=str(Path(cfg.data.store).absolute())) if cfg.data.store else cfg.data
    mon = cfg.monitor
    if mon.store:
        mon = dataclasses.replace(mon, store=str(Path(mon.store).absolute()))
    return dataclasses.replace(cfg, data=data, monitor=mon)


# Settings a resumed run may change: where and how visibly it runs, not what it computes (a changed
# device count is caught by the checkpoint's data geometry).
RESUME_MAY_CHANGE = ("trainer.progress", "trainer.accelerator", "trainer.devices", "trainer.num_nodes",
                     "trainer.strategy", "data.num_workers")


def check_resumable(run_dir: Path) -> None:
    """Refuse a ``--resume`` that has no run to continue (one line, before anything is built)."""
    if not run_dir.is_dir():
        raise OutputError(f"{run_dir}: no such run folder to resume (drop --resume to start a new run)")
    if not (run_dir / "config.yaml").is_file():
        raise OutputError(f"{run_dir}: not a skelssl run (no config.yaml), nothing to resume")
    if ckpt.find_checkpoint(run_dir) is None:
        raise OutputError(f"{run_dir}: no checkpoint to resume from (the run stopped before its first); "
                          "start it again in a new folder")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_same_run(run_dir: Path, config_dict: dict[str, Any]) -> None:
    """A resume continues exactly the recorded run: refuse, naming the first differences, when the
    given settings differ from ``run_dir/config.yaml`` (which is never rewritten)."""
    import yaml

    recorded_dict = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    # Runs recorded before the eval section was typed saved it as written (presets unapplied).
    try:
        recorded_dict["eval"] = to_dict(load_eval_config(recorded_dict.get("eval")))
    except ConfigError:
        pass
    recorded = _flat(recorded_dict)
    given = _flat(config_dict)
    # Runs recorded before store paths were made absolute name them relative to where they were started.
    for key in ("data.store", "monitor.store"):
        if isinstance(recorded.get(key), str) and isinstance(given.get(key), str) and recorded[key] and given[key] \
                and Path(recorded[key]).absolute() == Path(given[key]).absolute():
            recorded[key] = given[key]
    # Settings added to skelssl after the run was recorded are not differences (a run recorded without
    # data.global_batch resolves to the batch it had); a component argument given anew is one.
    new_kwargs = {g for g in given if g.startswith(("method.kwargs.", "encoder.kwargs."))}
    diff = [k for k in sorted(set(recorded) | new_kwargs)
            if k not in RESUME_MAY_CHANGE and recorded.get(k, "(unset)") != given.get(k, "(unset)")]
    if diff:
        shown = "; ".join(f"{k} recorded {recorded.get(k, '(unset)')!r}, given {given.get(k, '(unset)')!r}" for k in diff[:3])
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise ConfigError(f"cannot resume {run_dir} with other settings ({shown}{more}); to continue it as recorded: "
                          f"skelssl pretrain {run_dir / 'config.yaml'} --out {run_dir} --resume")


def _fit(trainer: Trainer, method, dataset, cfg: RunConfig, config_dict: dict[str, Any], resume: bool,
         run_dir: Path) -> dict[str, Any]:
    summary = trainer.fit(
        method,
        dataset,
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        optimizer_factory=optimizer_factory(cfg.optim),
        scheduler_factory=scheduler_factory(cfg.schedule),
        resume=resume,
        config_dict=config_dict,
        drop_last=cfg.data.drop_last,
        evaluate=make_monitor(cfg, cfg.trainer.epochs, device=trainer.fabric.device) if trainer.is_main else None,
    )
    path = run_dir / "encoder.safetensors"
    already_complete = summary["resumed_from"] == summary["step"] and path.is_file()
    if trainer.is_main and not already_complete:
        ckpt.save_encoder(path, method.export_encoder(), config_dict, data=encoder_data(dataset.store),
                          test_input=test_input_of(config_dict))
    trainer.fabric.barrier()
    return {**summary, "encoder": str(path), "batch_size": cfg.data.batch_size, "global_batch": cfg.data.global_batch,
            "lr": cfg.optim.lr}


def encoder_data(store: Store) -> dict[str, Any]:
    """What an encoder file records of its training store (the coordinates its inputs must be in)."""
    from skelssl.core.layouts import BUILTIN_LAYOUTS

    out = {"store": str(Path(store.path).absolute()), "dataset": store.dataset, "pipeline": store.pipeline,
           "layout": store.layout.name, "channels": store.channels, "num_persons": store.num_persons}
    if store.channel_names != ["x", "y", "z"]:  # 2D, a score, or the score dropped (data.use_score=false)
        out["channel_names"] = store.channel_names
    if store.stream != "joint":  # every store the encoder reads later is read through the same stream
        out["stream"] = store.stream
    if Path(store.path).is_dir() and (Path(store.path) / "store.json").is_file():
        full = Store(store.path).channel_names  # the store itself, not the view the encoder reads
        if full != store.channel_names:  # so embed() can read clips with the store's every channel
            out["store_channel_names"] = full
    if store.layout.name not in BUILTIN_LAYOUTS:  # a user's layout: the encoder file carries its definition
        out["layout_def"] = store.layout.to_dict()
    return out


def test_input_of(config_dict: dict[str, Any]) -> dict[str, Any] | None:
    """The resolved test-time input (``eval.input`` with presets) of a run config; ``None`` when its
    ``eval`` section does not load (``skelssl eval`` says why; saving the encoder must not fail on it)."""
    try:
        return to_dict(load_eval_config(config_dict.get("eval")).input)
    except ConfigError:
        return None


def export_encoder(checkpoint: str | Path, out: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Write the encoder of a training checkpoint (e.g. MAMP's epoch 300 for PKU-MMD) as an encoder file.

    Args:
        checkpoint: a checkpoint folder (``run/checkpoints/epoch-0300``) or a run folder (``last``).
        out: the ``.safetensors`` file (or folder) to write.
        overrides: ``key=value`` changes to the run config that leave the weights' shapes alone, e.g.
            ``method.kwargs.export=graph`` for ISC's other representation.

    Returns:
        The file written.
    """
    loaded = ckpt.load_checkpoint(checkpoint)
    if not loaded.config:
        raise ckpt.CheckpointError(f"{loaded.path}: no run config inside, cannot rebuild the method")
    config = apply_overrides(copy.deepcopy(loaded.config), overrides, RunConfig) if overrides else loaded.config
    cfg = from_dict(RunConfig, config)
    method, _ = build_method(cfg)
    try:
        method.load_state_dict(loaded.model, strict=True)
    except RuntimeError as e:
        raise ckpt.CheckpointError(f"{loaded.path}: weights do not fit the configured method: {e}") from None
    data = None
    store = (config.get("data") or {}).get("store")
    if store and (Path(store) / "store.json").is_file():
        data = encoder_data(open_store(cfg.data, store))
    return ckpt.save_encoder(out, method.export_encoder(), config, data=data, test_input=test_input_of(config))
