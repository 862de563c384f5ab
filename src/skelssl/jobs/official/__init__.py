"""Released weights in and out: the official Hi-TRS, ISC and MAMP pre-training checkpoints as skelssl runs.

:func:`convert` reads an official file (never running code from it, :mod:`.load`), checks every tensor
name and shape against the method that the recipe of the official configuration builds, maps the
tensors through the documented structural differences (:mod:`.mapping` and one module per method), and
writes a run folder that every skelssl command takes like a run of its own::

    config.yaml            the recipe (default configs/<method>/ntu60_xsub.yaml, the official configuration)
    encoder.safetensors    the encoder, with its spec and the config (eval, fine-tuning)
    method.safetensors     the whole method in our names: the encoder plus what continued pre-training
                           needs (MAMP's decoder, ISC's key encoders, heads and queues, Hi-TRS's heads)
    official.json          where it came from (file name, size, SHA-256), the recipe, and what of the
                           file is kept besides the weights
    official.safetensors   the tensors of that rest (optimiser moments; AGCN conv_d biases, which ours sum)

:func:`export_weights` is the reverse: a converted run gives back the same file contents (same keys,
values and container); a run pre-trained by skelssl gives the official state dict of its method (from
its last checkpoint, else of its encoder alone) in the official container.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from skelssl.core.files import OwnedFolder, check_replaceable, file_sha256
from skelssl.engine import checkpoint as ckpt
from skelssl.engine.checkpoint import CheckpointError
from skelssl.engine.config import (
    ConfigError, InitFromConfig, build_encoder_from_config, build_method_from_config, load_config, save_config, to_dict,
)
from skelssl.jobs.official import hitrs, isc, mamp
from skelssl.jobs.official.load import (
    check_export_output, from_plain, load_official, save_official, strip_prefix, to_plain,
)
from skelssl.jobs.official.mapping import (
    Rule, check_tensors, folded_parts, official_dtypes, official_shapes, to_official, to_ours,
)

__all__ = ["METHODS", "convert", "export_weights", "default_recipe", "method_rules", "RUN_FILES", "FORMAT"]

METHODS: dict[str, ModuleType] = {"hitrs": hitrs, "isc": isc, "mamp": mamp}
FORMAT = "skelssl-converted-official"
#: Everything convert writes into a run folder (an --overwrite replaces a folder of these only).
RUN_FILES = frozenset({"config.yaml", "encoder.safetensors", "method.safetensors", "official.json", "official.safetensors"})
#: The data the official NTU checkpoints were trained on: 3-D coordinates, NTU's 25 joints, 2 persons.
OFFICIAL_DATA = {"in_channels": 3, "layout": "ntu25", "num_persons": 2}


def default_recipe(method: str) -> Path:
    """``configs/<method>/ntu60_xsub.yaml`` of the source tree: the official NTU-60 configuration."""
    return Path(__file__).resolve().parents[4] / "configs" / method / "ntu60_xsub.yaml"


def _module(method: str) -> ModuleType:
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}: official weights are read for {', '.join(METHODS)}")
    return METHODS[method]


def method_rules(method: str, state: dict[str, torch.Tensor], where: str) -> list[Rule]:
    """The map of every tensor of our ``state`` (a method's, or an encoder's under its method prefix)."""
    mod = _module(method)
    rules = []
    for key, t in state.items():
        try:
            r = mod.rule(key, tuple(t.shape))
        except KeyError:
            raise CheckpointError(f"{where}: tensor {key!r} has no counterpart in the official {mod.NAME} model "
                                  f"(the official one is {_official_model(method)})") from None
        if r is not None:
            rules.append(r)
    return rules


def _official_model(method: str) -> str:
    return {"hitrs": "the paper-size hierarchical transformer",
            "isc": "seq+graph with a faithful or stepwise GRU and an AGCN",
            "mamp": "the MAMP encoder and decoder"}[method]


def _looks_like(obj: Any) -> str | None:
    """What an unpickled file looks like: one of the three official checkpoints, and its size."""
    candidates = [obj] if isinstance(obj, dict) else []
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            candidates.append(obj[key])
    for state in candidates:
        plain, _ = strip_prefix(state)
        shapes = {k: tuple(v.shape) for k, v in plain.items() if isinstance(v, torch.Tensor)}
        for mod in METHODS.values():
            seen = mod.looks_like(shapes)
            if seen:
                return seen
    return None


def _build(method: str, recipe: Path, overrides: list[str] | tuple[str, ...]):
    cfg = load_config(recipe, overrides)
    if cfg.method.name != method:
        raise ConfigError(f"{recipe}: a {cfg.method.name!r} recipe; give a {method} recipe (--recipe)")
    why = _module(method).check(to_dict(cfg))
    if why:
        raise ConfigError(f"{recipe}: {why}")
    torch.manual_seed(cfg.trainer.seed)
    # The official data fills what the recipe leaves open (a run's own config.yaml names its data).
    context = {k: v for k, v in OFFICIAL_DATA.items() if k not in cfg.encoder.kwargs}
    try:
        encoder = build_encoder_from_config(cfg.encoder, **context)
        built = build_method_from_config(cfg.method, run_seed=cfg.trainer.seed, encoder=encoder)
    except ValueError as e:  # an argument the recipe or an override gives that the modules refuse
        raise ConfigError(f"{recipe}: {e}") from None
    # The weights come from the official file, not from a recipe's init_from (a run's config.yaml may name one).
    resolved = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, kwargs=dict(encoder.spec["kwargs"])),
                                   init_from=InitFromConfig())
    return built, to_dict(resolved)


# -- convert -------------------------------------------------------------------------------------------


def check_run_output(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that is not ours to write: only a new or empty folder, or (with ``overwrite``)
    a run folder that convert wrote and that holds nothing else."""
    check_replaceable(out, overwrite, OwnedFolder(
        noun="run", is_ours=_is_converted_run, files=RUN_FILES,
        not_ours="is not empty and is not a run skelssl converted",
        already="already holds converted weights; pass --overwrite to replace them",
        foreign="holds files convert did not write",
    ))


def _is_converted_run(path: Path) -> bool:
    try:
        return json.loads((path / "official.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def convert(method: str, source: str | Path, out: str | Path, *, recipe: str | Path | None = None,
            overrides: list[str] | tuple[str, ...] = (), overwrite: bool = False) -> dict[str, Any]:
    """Convert an official pre-training checkpoint into a skelssl run folder.

    Args:
        method: ``"hitrs"``, ``"isc"`` or ``"mamp"``.
        source: the official file.
        out: the run folder to write (new or empty; ``overwrite`` replaces an earlier conversion).
        recipe: the recipe whose method the file holds (default :func:`default_recipe`).
        overrides: dotted ``key=value`` changes to the recipe (e.g. ``method.kwargs.decoder_depth=5``).
        overwrite: replace a run folder that an earlier conversion wrote.

    Returns:
        ``{"run", "encoder", "tensors", "kept", "looks_like"}``.

    Raises:
        CheckpointError: an unsafe, unreadable or mismatched file (one line).
        ConfigError: a bad recipe or override.
        OutputError: an ``--out`` that is not ours to write.
    """
    mod = _module(method)
    source, out = Path(source), Path(out)
    check_run_output(out, overwrite)
    recipe = Path(recipe) if recipe is not None else default_recipe(method)
    if not recipe.is_file():
        raise ConfigError(f"{recipe}: no such recipe; give the recipe of the official configuration with --recipe "
                          f"(configs/{method}/ntu60_xsub.yaml in the skelssl source tree)")
    built, config_dict = _build(method, recipe, overrides)
    ours = built.state_dict()
    rules = method_rules(method, ours, str(recipe))

    obj = load_official(source)
    try:
        state, extras, order = mod.unwrap(obj)
    except ValueError as e:
        seen = _looks_like(obj)
        raise CheckpointError(f"{source}: {e}" + (f"; it looks like {seen}" if seen else "")) from None
    state, prefix = strip_prefix(state)
    what = f"the official {mod.NAME} checkpoint at the size of {recipe}" + (f" with {' '.join(overrides)}" if overrides else "")
    try:
        check_tensors(state, official_shapes(rules, ours), official_dtypes(rules, ours), what, _looks_like(obj))
    except CheckpointError as e:
        raise CheckpointError(f"{source}: {e}") from None
    mapped = to_ours(rules, state)
    full = {k: mapped.get(k, v) for k, v in ours.items()}  # ours-only state (the step counter) stays as built
    built.load_state_dict(full, strict=True)

    kept, dropped = {}, []
    for key, value in extras.items():
        try:
            ckpt.flatten_state(to_plain(value), str(key))
            kept[str(key)] = to_plain(value)
        except CheckpointError:
            dropped.append(str(key))
    structure, tensors = ckpt.flatten_state({"extras": kept, "folded": folded_parts(rules, state)})
    record = {
        "format": FORMAT, "version": 1, "method": method,
        "source": {"name": source.name, "bytes": source.stat().st_size, "sha256": file_sha256(source)},
        "recipe": str(recipe), "overrides": list(overrides),
        "container": [str(k) for k in order], "prefix": prefix, "keys": list(state),
        "kept": structure, "dropped": dropped,
    }
    _write_run(out, built, config_dict, record, tensors)
    return {"run": str(out), "encoder": str(out / "encoder.safetensors"), "tensors": len(state),
            "kept": sorted(kept), "dropped": dropped, "looks_like": _looks_like(obj)}


def _write_run(out: Path, built: torch.nn.Module, config_dict: dict[str, Any], record: dict[str, Any],
               tensors: dict[str, torch.Tensor]) -> None:
    """Write the run folder next to ``out`` and rename it into place (an old conversion is replaced last).

    The temporary and the replaced folders are fresh ``mkdtemp`` folders of this call, so nothing else
    beside ``out`` is ever removed; ``out`` is checked again just before it is replaced.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    old: Path | None = None
    try:
        save_config(config_dict, tmp / "config.yaml")
        ckpt.save_encoder(tmp / "encoder.safetensors", built.export_encoder(), config_dict)
        config_json = json.dumps(config_dict, sort_keys=True)
        ckpt.save_tensors(tmp / "method.safetensors", built.state_dict(), {"format": "skelssl-method", "config": config_json})
        ckpt.save_tensors(tmp / "official.safetensors", tensors, {"format": FORMAT})
        (tmp / "official.json").write_text(json.dumps(record, indent=1) + "\n")
        check_run_output(out, overwrite=True)  # still empty or our earlier conversion (refused earlier without --overwrite)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old)  # an empty folder, or an earlier conversion: onto our own empty folder
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            earlier, old = old, None  # never removed on failure: where it cannot go back, it stays beside out
            if not out.exists():
                try:
                    os.replace(earlier, out)  # put the earlier conversion back
                except OSError:
                    pass  # kept in `earlier`; the first error is the one to report
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# -- export ----------------------------------------------------------------------------------------------


def _run_state(run: Path) -> tuple[dict[str, torch.Tensor], str, dict[str, Any], int | None]:
    """``(our method's state, where it came from, the run config, epochs done)``; an encoder alone
    goes under its method's encoder prefix."""
    if run.is_dir() and (run / "method.safetensors").is_file():
        state, meta = ckpt.load_tensors(run / "method.safetensors")
        return state, "method.safetensors", json.loads(meta.get("config", "{}")), None
    found = ckpt.find_checkpoint(run) if run.is_dir() else None
    if found is not None:
        loaded = ckpt.load_checkpoint(found)
        epoch = loaded.state.get("epoch")
        return loaded.model, f"checkpoint {found.name}", dict(loaded.config or {}), int(epoch) if isinstance(epoch, int) else None
    meta = ckpt.encoder_metadata(run)
    tensors, _ = ckpt.load_tensors(run / "encoder.safetensors" if run.is_dir() else run)
    name = (meta["config"].get("method") or {}).get("name")
    prefix = METHODS[name].ENCODER_PREFIX if name in METHODS else ""
    return {prefix + k: v for k, v in tensors.items()}, "encoder.safetensors (the encoder alone)", meta["config"], None


def export_weights(run: str | Path, out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Write a run's weights as the official code of its method saves them.

    Args:
        run: a run folder (converted or pre-trained by skelssl) or an ``encoder.safetensors`` file.
        out: the file to write (``overwrite`` replaces only a file skelssl exported).

    Returns:
        ``{"file", "method", "tensors", "from"}``.
    """
    run, out = Path(run), Path(out)
    if not run.exists():
        raise CheckpointError(f"{run}: no such run folder or encoder file")
    check_export_output(out, overwrite)
    record = json.loads((run / "official.json").read_text()) if run.is_dir() and _is_converted_run(run) else None
    state, origin, config, epoch = _run_state(run)
    method = record["method"] if record else (config.get("method") or {}).get("name")
    if method not in METHODS:
        raise CheckpointError(f"{run}: a {method or 'unknown'!s} run; the official format exists for {', '.join(METHODS)} only")
    mod = METHODS[method]
    why = mod.check(config)
    if why:
        raise CheckpointError(f"{run}: no official {mod.NAME} format for this run: {why}")
    rules = method_rules(method, state, f"{run} ({origin})")
    kept_tensors: dict[str, torch.Tensor] = {}
    extras: dict[str, Any] = {}
    order: list[str] = []
    if record:
        tensors, _ = ckpt.load_tensors(run / "official.safetensors")
        kept = ckpt.unflatten_state(record["kept"], tensors)
        kept_tensors, extras, order = kept["folded"], from_plain(kept["extras"]), record["container"]
    elif epoch is not None:
        extras = {"epoch": epoch}
    official = to_official(rules, state, kept_tensors)
    if record and set(record["keys"]) == set(official):
        official = {k: official[k] for k in record["keys"]}  # the file's own order
    prefix = record["prefix"] if record else mod.PREFIX
    obj = mod.wrap({prefix + k: v for k, v in official.items()}, extras, order)
    note = json.dumps({"format": "skelssl-official-export", "method": method, "run": str(run), "from": origin})
    save_official(obj, out, note, overwrite)
    return {"file": str(out), "method": method, "tensors": len(official), "from": origin}
