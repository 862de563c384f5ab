"""Typed run configuration: dataclasses, strict YAML recipes and checked dotted overrides.

A run is described by one :class:`RunConfig` with nine sections (``data``, ``encoder``, ``method``,
``init_from``, ``optim``, ``schedule``, ``trainer``, ``monitor``, ``eval``). Each default lives here and nowhere else. Recipes
under ``configs/`` are YAML files loaded strictly: an unknown key is an error that names the key and
the valid keys closest to it. A recipe may start with ``defaults: [base.yaml, ...]`` (paths relative
to the recipe) whose contents are merged under it. Command-line overrides are dotted assignments
(``optim.lr=1e-3``, ``trainer.devices=2``, ``encoder.kwargs.depth=4``): each value is parsed with
``yaml.safe_load`` and coerced to the field's declared type ("1e-3" becomes the float 0.001).

The free ``kwargs`` of the ``encoder`` and ``method`` sections are checked against the signature of
the class they are given to when that class is built (:func:`checked_kwargs`), since only then is
the class known. The ``eval`` section is :class:`~skelssl.engine.eval_config.EvalConfig`, read by the
same mechanism: a recipe's ``eval.linear.preset: hitrs`` fills the fields the recipe leaves out from
that method's preset (:func:`load_eval_config`), and a typo there is refused when the recipe loads.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from skelssl.core.canonical import config_hash
from skelssl.engine.eval_config import DetectTaskConfig, EvalConfig, PredictTaskConfig, presets
from skelssl.engine.optim_config import OptimConfig, ScheduleConfig

__all__ = [
    "ConfigError",
    "DataConfig",
    "ComponentConfig",
    "InitFromConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainerConfig",
    "RunConfig",
    "load_config",
    "load_eval_config",
    "apply_overrides",
    "deep_merge",
    "resolve_batch",
    "from_dict",
    "to_dict",
    "save_config",
    "config_hash",
    "config_keys",
    "checked_kwargs",
    "build_encoder_from_config",
    "build_method_from_config",
]


class ConfigError(ValueError):
    """A recipe or override that does not fit the config schema (unknown key, wrong type, bad value)."""


# -- the schema ------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    """Which samples to train on and how to batch them.

    Attributes:
        store: path of a packed store (``skelssl prepare`` output).
        protocol: named split (``ntu60-xsub``, ...); ``None`` uses every sample of the store.
        split: ``"train"``, ``"test"`` or ``"all"`` (the protocol's train, test or both).
        max_frames: longer sequences are evenly subsampled to this many frames.
        batch_size: samples **per device** per micro-batch; on ``W`` devices with ``trainer.accumulate``
            ``A`` one optimiser step sees ``batch_size * W * A`` samples.
        global_batch: samples per optimiser step over all devices and accumulated micro-batches (the
            batch papers report). When set, the per-device batch is ``global_batch // (W * A)``, found
            once the world size is known (:func:`resolve_batch`); it must divide exactly.
            Precedence: within one recipe file or one set of overrides, ``global_batch`` wins over
            ``batch_size``; a later layer (a recipe over its ``defaults``, a command-line override over
            the recipe) that sets only ``batch_size`` drops an inherited ``global_batch`` (a CPU recipe
            with ``batch_size: 32`` over a base with ``global_batch: 128`` runs 32 per device). The
            saved ``config.yaml`` records both values as resolved.
        num_workers: data-loader worker processes (the loader only slices the store).
        label_fraction: use a seeded class-stratified fraction of the training split (semi-supervised).
        subset_seed: which of the seeded label-fraction subsets.
        drop_last: drop the incomplete last batch of each epoch (pre-training does).
        use_score: feed a store's ``score`` channel (a pose estimator's confidence) to the encoder as
            an input channel; ``false`` drops it (the encoder then takes the coordinates only, and
            evaluation and ``embed`` read the same channels). Augmentations never move a score.
        stream: the input stream the encoder is trained on, derived from the joints of each sample as
            it is read (:func:`~skelssl.engine.eval_input.stream_view`): ``joint`` (the coordinates),
            ``bone``, ``motion`` or ``bone_motion``. Recorded in the encoder file, so evaluation,
            baselines and ``embed`` read every store through the same stream; one run per stream, then
            ``skelssl ensemble`` of their evaluations (the "3s" / "4s" numbers of the field).
    """

    store: str = ""
    protocol: str | None = None
    split: Literal["train", "test", "all"] = "train"
    max_frames: int | None = None
    batch_size: int = 64
    global_batch: int | None = None
    num_workers: int = 0
    label_fraction: float | None = None
    subset_seed: int = 0
    drop_last: bool = True
    use_score: bool = True
    stream: Literal["joint", "bone", "motion", "bone_motion"] = "joint"


@dataclass
class ComponentConfig:
    """A registered class by name plus the keyword arguments given to it (checked when it is built)."""

    name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class InitFromConfig:
    """The weights a pre-training run starts from (continued pre-training; :mod:`skelssl.engine.init_from`).

    The method (or, from an encoder file, its encoder) starts from these weights; the optimiser, the
    schedule and the step count start fresh. A ``--resume`` continues from the run's own checkpoint
    and never reads them again.

    Attributes:
        path: a run folder (a converted run's ``method.safetensors``, else a run's ``checkpoints/last``,
            else its ``encoder.safetensors``), a checkpoint folder, or one of those files. The saved
            config records the file read, as an absolute path.
        sha256: the SHA-256 of that file, recorded when the run starts; a config that gives it (the
            ``config.yaml`` of a run, to reproduce it) refuses a file whose contents have changed.
    """

    path: str | None = None
    sha256: str | None = None


@dataclass
class TrainerConfig:
    """How the one training loop runs (see :class:`skelssl.engine.loop.Trainer`).

    Attributes:
        epochs: passes over the training set.
        max_steps: stop after this many optimiser steps (``None``: after ``epochs``).
        accumulate: micro-batches per optimiser step (gradient accumulation).
        grad_clip: max gradient 2-norm (``None``: no clipping).
        precision: ``32-true``, ``bf16-mixed`` or ``16-mixed`` (forced to ``32-true`` on CPU).
        accelerator, devices, num_nodes, strategy: passed to Lightning Fabric.
        seed: the one seed every random stream of the run derives from.
        log_every: optimiser steps between two log lines.
        ckpt_every_steps: also checkpoint (``last/``) every this many steps.
        ckpt_every_epochs: checkpoint (``last/``) every this many epochs (and always at the end).
        keep_every_steps / keep_every_epochs: additionally keep ``step-0001000/`` / ``epoch-0010/`` copies (step and epoch numbers zero-padded).
        progress: show progress bars (rank 0 only).
        deterministic: ask torch for deterministic kernels.
    """

    epochs: int = 1
    max_steps: int | None = None
    accumulate: int = 1
    grad_clip: float | None = None
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    seed: int = 0
    log_every: int = 10
    ckpt_every_steps: int | None = None
    ckpt_every_epochs: int = 1
    keep_every_steps: int | None = None
    keep_every_epochs: int | None = None
    progress: bool = True
    deterministic: bool = False


@dataclass
class MonitorConfig:
    """The online kNN monitor of pre-training: is the representation learning, or collapsing?

    Before the first step (epoch ``-1``: the initialised weights, so a run that falls below its start
    shows it), every ``every_epochs`` epochs and after the last, the encoder's features of labelled *training*
    samples are split, class-stratified and always the same way, into a bank and held-out queries
    (``holdout``); the 1-NN cosine accuracy of the queries and the effective rank of the bank's
    features go to ``metrics.jsonl`` and TensorBoard (``monitor_knn``, ``monitor_rank``). No test
    sample is ever used.

    Attributes:
        every_epochs: how often; 0 turns the monitor off.
        store: the labelled store (default: ``data.store``; a union pre-training store has no labels,
            so name one of its parts here).
        protocol: whose training split is used (default: ``data.protocol``; without either the
            monitor is off).
        holdout: the share of those samples used as queries.
        max_samples: at most this many samples (a seeded stratified draw), to keep it cheap.
    """

    every_epochs: int = 5
    store: str | None = None
    protocol: str | None = None
    holdout: float = 0.2
    max_samples: int = 2000


@dataclass
class RunConfig:
    """The whole resolved configuration of a run (saved as ``config.yaml`` and in every checkpoint)."""

    data: DataConfig = field(default_factory=DataConfig)
    encoder: ComponentConfig = field(default_factory=ComponentConfig)
    method: ComponentConfig = field(default_factory=ComponentConfig)
    init_from: InitFromConfig = field(default_factory=InitFromConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    eval: EvalConfig = field(default_factory=lambda: load_eval_config())


# -- coercion --------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` converted to type ``tp``, or :class:`ConfigError` naming ``where``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if _is_union(tp):
        return _coerce_union(value, tp, where)
    if origin is Literal:
        return _coerce_literal(value, tp, where)
    if value is None and (dataclasses.is_dataclass(tp) or origin is dict or tp is dict):
        value = {}  # an empty YAML section (``eval:``) reads as null
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for section {tp.__name__}, got {value!r}")
        return from_dict(tp, value, _prefix=where)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        args = typing.get_args(tp)
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if tp in _SCALARS:
        return _SCALARS[tp](value, where)
    return value


def _coerce_union(value: Any, tp: Any, where: str) -> Any:
    members = typing.get_args(tp)
    if value is None:
        if type(None) in members:
            return None
        raise ConfigError(f"{where}: null is not allowed (expected {_type_name(tp)})")
    # Try exact type matches first, so that ``int | str`` keeps 2 an int and "auto" a string.
    ordered = sorted((m for m in members if m is not type(None)), key=lambda m: not _matches(value, m))
    for member in ordered:
        try:
            return _coerce(value, member, where)
        except ConfigError:
            pass
    raise ConfigError(f"{where}: {value!r} is not a {_type_name(tp)}")


def _coerce_literal(value: Any, tp: Any, where: str) -> Any:
    choices = typing.get_args(tp)
    for choice in choices:
        if value == choice and type(value) is type(choice):
            return choice
        if isinstance(choice, str) and not isinstance(value, bool) and str(value) == choice:
            return choice
    raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")


def _to_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _to_int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        number = float(value) if isinstance(value, (str, float)) else None
    except ValueError:
        number = None
    if number is not None and number.is_integer():
        return int(number)
    raise ConfigError(f"{where}: expected an integer, got {value!r}")


def _to_float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            # YAML 1.1 reads "1e-3" as a string (no dot); it is clearly meant as a number.
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected a number, got {value!r}")


def _to_str(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{where}: expected a string, got {value!r}")


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _matches(value: Any, tp: Any) -> bool:
    base = typing.get_origin(tp) or tp
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is float:
        return isinstance(value, float)
    if base in (list, tuple):
        return isinstance(value, (list, tuple))
    if base is dict:
        return isinstance(value, dict)
    return isinstance(base, type) and isinstance(value, base)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def config_keys(cls: type = RunConfig, _prefix: str = "") -> list[str]:
    """Every dotted key of a config dataclass (``["data", "data.store", ...]``)."""
    keys = []
    for name, tp in _hints(cls).items():
        key = f"{_prefix}{name}"
        keys.append(key)
        if dataclasses.is_dataclass(tp):
            keys.extend(config_keys(tp, key + "."))
    return keys


def _unknown(key: str, valid: list[str], where_keys: list[str] | None = None) -> ConfigError:
    pool = where_keys if where_keys is not None else valid
    close = difflib.get_close_matches(key, pool, n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint} (valid keys here: {', '.join(valid)})")


def from_dict(cls: type, data: dict[str, Any], _prefix: str = "") -> Any:
    """Build config dataclass ``cls`` from a plain mapping, strictly (unknown keys and bad types raise).

    Args:
        cls: a config dataclass (usually :class:`RunConfig`).
        data: nested mapping as read from YAML; missing keys take their defaults.

    Returns:
        An instance of ``cls``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{_prefix or 'config'}: expected a mapping, got {data!r}")
    if cls is EvalConfig:
        data = _with_presets(data, _prefix or "eval")
    hints = _hints(cls)
    kwargs = {}
    for key, value in data.items():
        dotted = f"{_prefix}.{key}" if _prefix else str(key)
        if key not in hints:
            valid = [f"{_prefix}.{k}" if _prefix else k for k in hints]
            raise _unknown(dotted, valid, list(dict.fromkeys(config_keys(RunConfig) + valid)))
        kwargs[key] = _coerce(value, hints[key], dotted)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (lists, not tuples) of a config dataclass; the YAML/JSON form."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


# -- recipes and overrides -------------------------------------------------------------------------


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section (a mapping in both merges; anything else replaces).
    Neither argument changes; the result may share unmerged values with them."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_recipe(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: recipe includes itself through 'defaults'")
    if not path.is_file():
        raise ConfigError(f"{path}: no such recipe")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections")
    defaults = data.pop("defaults", [])
    if isinstance(defaults, str):
        defaults = [defaults]
    merged: dict[str, Any] = {}
    for base in defaults:
        merged = deep_merge(merged, _read_recipe(path.parent / str(base), seen + (path,)))
    section = data.get("data")
    if isinstance(section, dict) and "batch_size" in section and "global_batch" not in section:
        _drop_global_batch(merged)
    return deep_merge(merged, data)


def _drop_global_batch(data: dict[str, Any]) -> None:
    """A layer that sets ``data.batch_size`` alone overrides an inherited ``data.global_batch``."""
    section = data.get("data")
    if isinstance(section, dict) and section.get("global_batch") is not None:
        section["global_batch"] = None


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...], schema: type | None = None) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides to a raw config mapping, checking each key exists.

    Keys inside the free mappings (``encoder.kwargs``, ``method.kwargs``) may be new. A section takes
    a mapping (``eval.linear={epochs: 3}``), never a single value.

    Args:
        data: the raw mapping (a recipe, or a part of one).
        overrides: ``key.path=value`` strings.
        schema: the dataclass ``data`` describes (default :class:`RunConfig`; the evaluation
            settings pass :class:`~skelssl.engine.eval_config.EvalConfig`).

    Returns:
        A new mapping; values are parsed with ``yaml.safe_load`` (types are coerced later).
    """
    schema = RunConfig if schema is None else schema
    out = json.loads(json.dumps(data))  # deep copy of plain data
    all_keys = config_keys(schema)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. optim.lr=0.01)")
        key, text = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise ConfigError(f"override {item!r}: empty key component")
        cls: Any = schema
        node = out
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if cls is not None:
                hints = _hints(cls)
                if part not in hints:
                    prefix = ".".join(parts[:depth])
                    valid = [f"{prefix}.{k}" if prefix else k for k in hints]
                    raise _unknown(key, valid, all_keys)
                tp = hints[part]
                cls = tp if dataclasses.is_dataclass(tp) else None
                free = cls is None and (typing.get_origin(tp) is dict or tp is dict)
                if not last and cls is None and not free:
                    raise ConfigError(f"override {key!r}: {'.'.join(parts[: depth + 1])} is a value, not a section")
            if last:
                value = _parse_value(text)
                if cls is not None and value is not None and not isinstance(value, dict):
                    raise ConfigError(f"override {item!r}: {key} is a section; set its keys ({key}.{next(iter(_hints(cls)))}=...)")
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    keys = {item.split("=", 1)[0].strip() for item in overrides}
    if "data.batch_size" in keys and "data.global_batch" not in keys:
        _drop_global_batch(out)
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a recipe (with its ``defaults``), apply dotted overrides and validate strictly.

    Args:
        path: YAML recipe; ``None`` starts from the defaults.
        overrides: ``["optim.lr=0.01", "trainer.devices=2", ...]``.

    Returns:
        The resolved :class:`RunConfig`.

    Raises:
        ConfigError: unknown key (with the closest valid keys), wrong type or bad value.
    """
    data = _read_recipe(Path(path)) if path is not None else {}
    data = apply_overrides(data, overrides)
    try:
        return check_ranges(from_dict(RunConfig, data))
    except ConfigError as e:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{e}") from None


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """:func:`deep_merge` on copies: the result never shares a preset's values."""
    return deep_merge(copy.deepcopy(base), copy.deepcopy(top))


def _with_presets(data: dict[str, Any], where: str = "eval") -> dict[str, Any]:
    """A raw ``eval`` mapping with the named presets of ``linear`` and ``finetune`` under its sections.

    Resolving a resolved mapping again changes nothing (every field is then the section's own).
    """
    out = copy.deepcopy(data)
    defaults = EvalConfig()
    for task in ("linear", "finetune"):
        section = out.get(task) or {}
        if not isinstance(section, dict):
            continue  # from_dict says: a section, not a value
        name = section.get("preset", getattr(defaults, task).preset)
        if name is not None:
            named = presets(task)
            if name not in named:
                raise ConfigError(f"{where}.{task}.preset: unknown preset {name!r}; known: {', '.join(named)}")
            section = _merge(named[name], section)
            section["preset"] = name
        out[task] = section
    # Nested defaults of the detect/predict sections (optim, schedule) hold when a recipe or an
    # override sets only one of their fields (``detect.optim.lr=0.01`` keeps AdamW and its decay).
    for task, cls in (("detect", DetectTaskConfig), ("predict", PredictTaskConfig)):
        if isinstance(out.get(task) or {}, dict):
            out[task] = _merge(to_dict(cls()), out.get(task) or {})
    return out


def _own_values(section: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``section`` that differ from ``base`` (nested mappings compared key by key)."""
    out = {}
    for key, value in section.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            value = _own_values(value, base[key])
            if value:
                out[key] = value
        elif key not in base or value != base[key]:
            out[key] = value
    return out


def _drop_preset_values(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Where an override picks another preset (``linear.preset=hitrs``), the section keeps only the
    values its own preset did not give it, so that the new preset's fill the rest (a run's saved
    ``eval`` holds its sections resolved)."""
    keys = {item.split("=", 1)[0].strip() for item in overrides}
    out = dict(data)
    for task in ("linear", "finetune"):
        section = out.get(task)
        if f"{task}.preset" not in keys or not isinstance(section, dict):
            continue
        old = section.get("preset", getattr(EvalConfig(), task).preset)
        if old is not None and old not in presets(task):
            continue  # the unknown preset is named when the section is read
        base = to_dict(getattr(from_dict(EvalConfig, {task: {"preset": old}}), task))
        out[task] = _own_values(section, base)
    return out


def load_eval_config(section: EvalConfig | dict[str, Any] | None = None, overrides: list[str] | tuple[str, ...] = ()) -> EvalConfig:
    """The evaluation settings: defaults <- presets <- ``section`` (a run's ``eval``) <- overrides.

    Overrides are ``section.key=value`` (``linear.epochs=30``, ``input.frames=64``,
    ``finetune.optim.lr=1e-3``), applied by :func:`apply_overrides` against :class:`EvalConfig`
    (each key must exist; values parsed with ``yaml.safe_load``), then checked strictly.
    """
    data = to_dict(section) if isinstance(section, EvalConfig) else (section or {})
    data = apply_overrides(_drop_preset_values(data, overrides), overrides, schema=EvalConfig)
    return from_dict(EvalConfig, data)


# (key, smallest allowed value): values a type check lets through but no run can use.
_MINIMUM = (
    ("data.batch_size", 1), ("data.global_batch", 1), ("optim.lr_scale_batch", 1), ("data.num_workers", 0),
    ("trainer.epochs", 1), ("trainer.accumulate", 1),
    ("trainer.max_steps", 1), ("trainer.log_every", 1), ("trainer.num_nodes", 1), ("optim.lr", 0.0),
    ("optim.weight_decay", 0.0), ("trainer.ckpt_every_steps", 1), ("trainer.ckpt_every_epochs", 0),
    ("monitor.every_epochs", 0), ("monitor.holdout", 0.01), ("monitor.max_samples", 10),
)


def check_ranges(cfg: RunConfig) -> RunConfig:
    """Reject values of the right type that cannot work (``data.batch_size=0``); returns ``cfg``."""
    for key, low in _MINIMUM:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value is not None and value < low:
            raise ConfigError(f"{key}: must be at least {low}, got {value}")
    if cfg.data.label_fraction is not None and not 0 < cfg.data.label_fraction <= 1:
        raise ConfigError(f"data.label_fraction: must be in (0, 1], got {cfg.data.label_fraction}")
    return cfg


def resolve_batch(cfg: RunConfig, world_size: int) -> RunConfig:
    """The config with its batch and learning rate resolved for ``world_size`` processes.

    ``data.batch_size`` becomes the per-device batch (``data.global_batch // (world_size *
    trainer.accumulate)`` when a global batch is set), ``data.global_batch`` the samples per optimiser
    step, and with ``optim.lr_scale_batch`` set, ``optim.lr`` the linearly scaled lr and
    ``optim.lr_scale_batch`` the actual global batch. Resolving a resolved config again (a resume, or a
    reproduction from ``config.yaml`` on the same number of devices) returns it unchanged.

    Raises:
        ConfigError: the global batch does not divide into ``world_size * trainer.accumulate``.
    """
    acc = cfg.trainer.accumulate
    parts = world_size * acc
    if cfg.data.global_batch is not None:
        per_device, rest = divmod(cfg.data.global_batch, parts)
        if rest or per_device < 1:
            raise ConfigError(f"data.global_batch: {cfg.data.global_batch} does not divide into {world_size} device(s) "
                              f"x trainer.accumulate {acc}; use a multiple of {parts}, or set data.batch_size (per device)")
        global_batch = cfg.data.global_batch
    else:
        per_device, global_batch = cfg.data.batch_size, cfg.data.batch_size * parts
    optim = cfg.optim
    if optim.lr_scale_batch is not None:
        optim = dataclasses.replace(optim, lr=optim.lr * global_batch / optim.lr_scale_batch, lr_scale_batch=global_batch)
    data = dataclasses.replace(cfg.data, batch_size=per_device, global_batch=global_batch)
    return dataclasses.replace(cfg, data=data, optim=optim)


class _Dumper(yaml.SafeDumper):
    """Block mappings, flow lists (``betas: [0.9, 0.999]``): the way recipes are written by hand."""


_Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def save_config(cfg: RunConfig | dict[str, Any], path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically); returns the path."""
    from skelssl.data.store import atomic_write_text

    data = cfg if isinstance(cfg, dict) else to_dict(cfg)
    atomic_write_text(path, yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False))
    return Path(path)


# -- building registered classes -------------------------------------------------------------------


def checked_kwargs(target: Any, kwargs: dict[str, Any], section: str, given: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check ``kwargs`` against the signature of ``target`` (a class or function) and coerce their types.

    Args:
        target: what the kwargs will be passed to.
        kwargs: the free keyword arguments from the config.
        section: dotted name for messages (``"encoder.kwargs"``).
        given: argument names the caller passes itself (not allowed in ``kwargs``).

    Returns:
        ``kwargs`` with values coerced to annotated parameter types (where annotations resolve).

    Raises:
        ConfigError: unknown or duplicate argument, or a value of the wrong type.
    """
    fn = target.__init__ if inspect.isclass(target) else target
    sig = inspect.signature(fn)
    params = {n: p for n, p in sig.parameters.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL,)}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if p.kind != p.VAR_KEYWORD}
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: skip coercion, keep the name check
        hints = {}
    label = getattr(target, "__name__", str(target))
    out = {}
    for key, value in kwargs.items():
        if key in given:
            raise ConfigError(f"{section}.{key}: set by skelssl itself for {label}, remove it from the config")
        if key not in named and not var_kw:
            valid = sorted(k for k in named if k not in given)
            close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{section}.{key}: {label} has no argument {key!r}{hint} (valid: {', '.join(valid)})")
        tp = hints.get(key)
        out[key] = _coerce(value, tp, f"{section}.{key}") if tp is not None else value
    return out


def _same(a: Any, b: Any) -> bool:
    # A layout may be given as an object or by name.
    return a == b or str(getattr(a, "name", a)) == str(getattr(b, "name", b))


def _unknown_name(kind: str, name: str, known: set[str]) -> ConfigError:
    """``encoder.name: unknown encoder 'stgnc' (did you mean 'stgcn'?); known: ...`` (registered and lazily
    importable names alike; names starting with ``_`` are test helpers and not listed)."""
    import difflib

    public = sorted(k for k in known if not k.startswith("_"))
    close = difflib.get_close_matches(name, public, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{kind}.name: unknown {kind} {name!r}{hint}; known: {', '.join(public)}")


def build_encoder_from_config(section: ComponentConfig, **context: Any):
    """Build the configured encoder; ``context`` (``in_channels``, ``layout``, ``num_persons`` from the
    store) fills arguments the config leaves out, and a conflicting value is an error.

    Returns:
        The :class:`~skelssl.models.base.Encoder` (with its ``spec`` recorded).
    """
    from skelssl.models import ENCODERS, _ensure, build_encoder

    if not section.name:
        raise ConfigError("encoder.name: no encoder named in the config")
    _ensure(section.name)
    try:
        cls = ENCODERS.get(section.name)
    except KeyError:  # _ensure imported every encoder module: ENCODERS knows them all
        raise _unknown_name("encoder", section.name, set(ENCODERS.names())) from None
    kwargs = checked_kwargs(cls, dict(section.kwargs), "encoder.kwargs")
    params = inspect.signature(cls.__init__).parameters
    for key, value in context.items():
        if key in kwargs:
            if not _same(kwargs[key], value):
                raise ConfigError(f"encoder.kwargs.{key}: config says {kwargs[key]!r} but the data has {value!r}")
        elif key in params:
            kwargs[key] = value
    return build_encoder(section.name, **kwargs)


def build_method_from_config(section: ComponentConfig, *, run_seed: int | None = None, **given: Any):
    """Build the configured method with ``given`` arguments (``encoder=...``) plus its checked kwargs.

    Args:
        section: the ``method`` section.
        run_seed: the run's ``trainer.seed``, set as the method's
            :attr:`~skelssl.methods.base.Method.run_seed` (the seed of all its random draws); ``None``
            keeps the method's default (0).
        given: arguments skelssl passes itself.

    A ``method.kwargs.seed`` that the method no longer takes (configs recorded before the run seed
    came from ``trainer.seed``) is still read, with a ``FutureWarning``, and pins the run seed, so
    that such a recorded run rebuilds and resumes with the draws it started with.
    """
    import warnings

    from skelssl.methods import get_method

    if not section.name:
        raise ConfigError("method.name: no method named in the config")
    try:
        cls = get_method(section.name)
    except KeyError:
        from skelssl.methods import METHODS

        raise _unknown_name("method", section.name, set(METHODS.names())) from None
    kwargs = dict(section.kwargs)
    if "seed" in kwargs and "seed" not in inspect.signature(cls.__init__).parameters:
        legacy = _coerce(kwargs.pop("seed"), int, "method.kwargs.seed")
        warnings.warn(f"method.kwargs.seed is deprecated: a method's random draws follow trainer.seed; this config "
                      f"pins them to seed {legacy} (remove method.kwargs.seed to let trainer.seed decide)",
                      FutureWarning, stacklevel=2)
        run_seed = legacy
    kwargs = checked_kwargs(cls, kwargs, "method.kwargs", given=tuple(given))
    method = cls(**given, **kwargs)
    if run_seed is not None and hasattr(method, "run_seed"):
        method.run_seed = int(run_seed)
    return method
