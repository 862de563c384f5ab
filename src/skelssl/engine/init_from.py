"""Continued pre-training: a new run whose method starts from the weights of another run or file.

``skelssl pretrain RECIPE --out NEW --init-from SOURCE`` (the ``init_from`` section of a config) builds
the recipe's method for the run's store, then loads SOURCE into it:

- a run folder: a converted run's ``method.safetensors`` (the whole method: MAMP's decoder, ISC's key
  encoders and queues, Hi-TRS's pretext heads), else the run's last checkpoint (``checkpoints/last``),
  else its ``encoder.safetensors``;
- a checkpoint folder (``run/checkpoints/epoch-0300``), or one of those files.

A method's weights load whole (its step count set back to 0); an encoder's load into the method's
encoder, and the momentum copies of it (ISC's key encoders) start as copies again, as they do when a
method is built. The optimiser, the schedule, the step and the random streams start fresh: it is a new
run of the recipe. ``--resume`` is the other thing: the same run continued exactly from its own
checkpoint; it never reads the source again (:func:`recorded`).

Every tensor must fit the recipe's method built for the data the weights were trained on; otherwise
the run is refused with one line naming the missing, unexpected and mis-shaped tensors. Where the run's
store has another layout, channel count or number of persons than the source, the tensors whose shapes
depend on it (joint position tables, a first layer over ``V x C`` inputs) keep their fresh
initialisation and are named in a warning, as evaluation does on another layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from skelssl.core.files import file_sha256
from skelssl.engine import checkpoint as ckpt
from skelssl.engine.checkpoint import CheckpointError
from skelssl.engine.config import (
    ComponentConfig, ConfigError, InitFromConfig, RunConfig, build_encoder_from_config, build_method_from_config,
)

__all__ = ["InitSource", "GEOMETRY", "weights_file", "read_source", "recorded", "apply", "reinit_warning"]

#: The encoder arguments a store fills: what makes a tensor's shape depend on the data.
GEOMETRY = ("in_channels", "layout", "num_persons")


@dataclass
class InitSource:
    """Weights read for a run to start from.

    Attributes:
        file: the safetensors file read (absolute).
        sha256: its SHA-256.
        kind: ``"method"`` (a whole method's state) or ``"encoder"`` (an encoder file).
        tensors: its tensors.
        config: the run config it records (``{}`` when none).
        encoder_name: the encoder it holds (from its config or spec; ``None`` when unrecorded).
        geometry: the ``in_channels``, ``layout``, ``num_persons`` it was built for (those recorded).
    """

    file: Path
    sha256: str
    kind: Literal["method", "encoder"]
    tensors: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    encoder_name: str | None = None
    geometry: dict[str, Any] = field(default_factory=dict)

    @property
    def record(self) -> InitFromConfig:
        """What the run's config records: the file and its hash."""
        return InitFromConfig(path=str(self.file), sha256=self.sha256)


def weights_file(path: str | Path) -> Path:
    """The file ``init_from.path`` names (absolute): see the module docstring for a folder's order."""
    path = Path(path).absolute()
    if path.is_dir():
        if (path / "method.safetensors").is_file():
            return path / "method.safetensors"
        found = ckpt.find_checkpoint(path)
        if found is not None:
            return found / "model.safetensors"
        if (path / "encoder.safetensors").is_file():
            return path / "encoder.safetensors"
        raise CheckpointError(f"init_from: {path} holds no weights to start from (a run folder has method.safetensors, "
                              "checkpoints/last or encoder.safetensors)")
    if not path.is_file():
        raise CheckpointError(f"init_from: {path}: no such run folder or weights file")
    return path


def read_source(init: InitFromConfig) -> InitSource:
    """Read the weights ``init`` names; a recorded ``sha256`` must match the file's.

    Raises:
        CheckpointError: no weights there, or a file that is not skelssl's (an official checkpoint is
            converted first), one line.
        ConfigError: the file's contents differ from the recorded ``init_from.sha256``.
    """
    file = weights_file(init.path or "")
    digest = file_sha256(file)
    if init.sha256 and init.sha256 != digest:
        raise ConfigError(f"init_from.sha256: {file} has changed since the run was recorded (sha256 {digest[:12]}..., "
                          f"recorded {init.sha256[:12]}...); give the weights it was started from, or drop init_from.sha256")
    try:
        tensors, meta = ckpt.load_tensors(file)
    except CheckpointError as e:
        hint = "" if file.suffix == ".safetensors" else (
            "; an official checkpoint is converted first (skelssl convert METHOD FILE --out RUN), then that run is given")
        raise CheckpointError(f"init_from: {e}{hint}") from None
    fmt = meta.get("format")
    config = json.loads(meta.get("config") or "{}")
    if fmt == "skelssl-encoder":
        spec = json.loads(meta.get("encoder_spec") or "{}")
        ckpt.register_recorded_layout({"data": json.loads(meta.get("data") or "{}")}, file)
        return InitSource(file, digest, "encoder", tensors, config, spec.get("name"), _geometry(spec.get("kwargs")))
    if fmt == "skelssl-method" or (fmt == ckpt.FORMAT and "config" in meta):
        encoder = config.get("encoder") or {}
        return InitSource(file, digest, "method", tensors, config, encoder.get("name"), _geometry(encoder.get("kwargs")))
    raise CheckpointError(f"init_from: {file} is no skelssl weights file (a method.safetensors, a checkpoint's "
                          "model.safetensors or an encoder.safetensors)")


def recorded(init: InitFromConfig) -> InitFromConfig:
    """``init_from`` of a resumed run, as its config records it, without loading the weights: a
    recorded hash is kept as it is (the file may have moved or changed since; a resume does not read
    it); a source given again without one (the recipe and ``--init-from`` of the first command) is
    hashed, so that it compares with the record."""
    if not init.path:
        return init
    if init.sha256:
        return InitFromConfig(path=str(Path(init.path).absolute()), sha256=init.sha256)
    file = weights_file(init.path)
    return InitFromConfig(path=str(file), sha256=file_sha256(file))


def _geometry(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    return {k: (kwargs or {})[k] for k in GEOMETRY if k in (kwargs or {})}


def _described(geometry: dict[str, Any]) -> str:
    names = {"in_channels": "channels", "layout": "layout", "num_persons": "persons"}
    return ", ".join(f"{names[k]} {geometry[k]}" for k in GEOMETRY if k in geometry)


def _probe(cfg: RunConfig, geometry: dict[str, Any]) -> nn.Module:
    """The recipe's method built for another data geometry (to learn its tensors' shapes there)."""
    kwargs = {**cfg.encoder.kwargs, **geometry}
    with torch.random.fork_rng(devices=[]):  # the run's own draws stay as they are
        try:
            encoder = build_encoder_from_config(ComponentConfig(cfg.encoder.name, kwargs))
            return build_method_from_config(cfg.method, run_seed=cfg.trainer.seed, encoder=encoder)
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"init_from: cannot build this recipe's method for the data of the weights "
                                  f"({_described(geometry)}): {str(e).strip(chr(39))}") from None


@torch.no_grad()
def _copy_momentum_targets(method: nn.Module) -> None:
    """Each momentum target becomes a copy of its online module again (as when the method was built)."""
    pairs = method.momentum_pairs() if hasattr(method, "momentum_pairs") else []
    for online, target in pairs:
        for p_o, p_t in zip(online.parameters(), target.parameters()):
            p_t.copy_(p_o)
        for b_o, b_t in zip(online.buffers(), target.buffers()):
            b_t.copy_(b_o)


def apply(method: nn.Module, source: InitSource, cfg: RunConfig, encoder_kwargs: dict[str, Any]) -> list[str]:
    """Load ``source`` into ``method`` (built from ``cfg`` for the run's store).

    Args:
        method: the recipe's method, freshly built.
        source: from :func:`read_source`.
        cfg: the run config (its ``method`` and ``encoder`` sections build a probe when the data differ).
        encoder_kwargs: the arguments the encoder was built with (the run's data geometry).

    Returns:
        The tensors (names in ``method``, or in its encoder for an encoder file) left at their fresh
        initialisation because their shapes depend on data the source was not trained on.

    Raises:
        CheckpointError: the weights do not fit the recipe's method (one line).
    """
    where = f"init_from: {source.file}"
    src_method = (source.config.get("method") or {}).get("name")
    if source.kind == "method" and src_method and src_method != cfg.method.name:
        raise CheckpointError(f"{where} holds a {src_method!r} method; this recipe builds {cfg.method.name!r}: "
                              f"give a {src_method} recipe, or an encoder file to start the encoder alone")
    if source.encoder_name and source.encoder_name != cfg.encoder.name:
        raise CheckpointError(f"{where} holds a {source.encoder_name!r} encoder; this recipe builds {cfg.encoder.name!r}")
    target = method if source.kind == "method" else method.export_encoder()
    ours = target.state_dict()
    run_geometry = _geometry(encoder_kwargs)
    differs = [k for k in GEOMETRY if k in source.geometry and k in run_geometry
               and str(source.geometry[k]) != str(run_geometry[k])]
    if differs:
        probe = _probe(cfg, {**run_geometry, **source.geometry})
        shapes = {k: tuple(v.shape) for k, v in (probe if source.kind == "method" else probe.export_encoder()).state_dict().items()}
        del probe
    else:
        shapes = {k: tuple(v.shape) for k, v in ours.items()}
    what = f"the {cfg.method.name} method" if source.kind == "method" else f"the {cfg.encoder.name} encoder"
    parts = ckpt.tensor_mismatch(source.tensors, shapes, {k: v.dtype for k, v in ours.items()})
    if parts:
        built = f" (built for the weights' data: {_described(source.geometry)})" if differs else ""
        raise CheckpointError(f"{where} does not fit {what} of this recipe{built}: {'; '.join(parts)}")
    # Every other tensor of ours is in the file with its shape (the check above): all of them load.
    reinit = sorted(k for k, v in ours.items() if shapes.get(k) != tuple(v.shape))
    target.load_state_dict({k: v for k, v in source.tensors.items() if k in ours and k not in reinit}, strict=False)
    if source.kind == "encoder":
        _copy_momentum_targets(method)
    step = getattr(method, "step", None)
    if isinstance(step, torch.Tensor):
        step.zero_()  # a new run: its step-seeded draws are those of step 0 on
    return reinit


def reinit_warning(reinit: list[str], source: InitSource, encoder_kwargs: dict[str, Any]) -> str:
    """``init_from: 1 tensor left at its fresh initialisation for layout kinect20 (the weights': ntu25): ...``"""
    run = _geometry(encoder_kwargs)
    changed = [k for k in GEOMETRY if k in source.geometry and k in run and str(source.geometry[k]) != str(run[k])]
    now = _described({k: run[k] for k in changed})
    was = _described({k: source.geometry[k] for k in changed})
    shown = ", ".join(reinit[:4]) + (f" and {len(reinit) - 4} more" if len(reinit) > 4 else "")
    n = f"{len(reinit)} tensor{'s' if len(reinit) != 1 else ''}"
    return f"init_from: {n} left at a fresh initialisation for {now} (the weights': {was}): {shown}; they are not pre-trained"

