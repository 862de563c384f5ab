"""Checkpoints without pickle: tensors in safetensors files, everything else in JSON.

A training checkpoint is a folder, written into a ``.NAME.partial`` sibling, fsynced and renamed into
place, so an interrupted save never leaves a folder that looks whole::

    model.safetensors     the module's state dict (parameters and buffers: queues, counters)
    state.safetensors     the tensors of the training state (optimiser moments, ...)
    state.json            everything else (step, epoch, position in the epoch, sampler seed,
                          optimiser and scheduler structure, the resolved config); written last
    rank-R.safetensors    per-process tensors (random-number-generator states) of rank R
    rank-R.json

Nested states such as ``optimizer.state_dict()`` are split by :func:`flatten_state`: each tensor is
stored under a path-like key (``optimizer/state/0/exp_avg``) and replaced in the JSON structure by a
reference, so loading rebuilds them exactly and never unpickles anything. An encoder for evaluation is
one file, ``encoder.safetensors``, whose metadata holds the encoder's spec and the run config, so
:func:`load_encoder` rebuilds it without the method that trained it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from skelssl.data.store import atomic_write_bytes

__all__ = [
    "CheckpointError",
    "Checkpoint",
    "FORMAT",
    "VERSION",
    "flatten_state",
    "unflatten_state",
    "save_tensors",
    "load_tensors",
    "partial_path",
    "begin_checkpoint",
    "write_rank_state",
    "commit_checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "find_checkpoint",
    "copy_checkpoint",
    "save_encoder",
    "load_encoder",
    "encoder_metadata",
    "tensor_mismatch",
]

FORMAT = "skelssl-checkpoint"
VERSION = 1
_MARKERS = frozenset({"__tensor__", "__ndarray__", "__tuple__", "__dict__"})


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete, of another format, or unsafe to load."""


# -- nested state <-> (JSON, tensors) --------------------------------------------------------------


def flatten_state(obj: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state into a JSON-serialisable structure and a flat dict of tensors.

    Args:
        obj: dicts (any scalar keys), lists, tuples, tensors, NumPy arrays and JSON scalars.
        prefix: key prefix of the tensors (``"optimizer"``).

    Returns:
        ``(structure, tensors)``; :func:`unflatten_state` inverts it exactly (tuples stay tuples,
        integer dict keys stay integers).
    """
    tensors: dict[str, torch.Tensor] = {}

    def join(path: str, key: Any) -> str:
        return f"{path}/{key}" if path else str(key)

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, (torch.Tensor, np.ndarray)) and path in tensors:
            raise CheckpointError(f"two tensors of the state map to the same key {path!r}")
        if isinstance(x, torch.Tensor):
            tensors[path] = x.detach()
            return {"__tensor__": path}
        if isinstance(x, np.ndarray):
            tensors[path] = torch.from_numpy(np.ascontiguousarray(x))
            return {"__ndarray__": path}
        if isinstance(x, dict):
            plain = all(isinstance(k, str) for k in x) and not (_MARKERS & set(x))
            if plain:
                return {k: walk(v, join(path, k)) for k, v in x.items()}
            items = []
            for k, v in x.items():
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    raise CheckpointError(f"state key {k!r} at {path or '/'} is not a JSON scalar")
                items.append([k, walk(v, join(path, k))])
            return {"__dict__": items}
        if isinstance(x, tuple):
            return {"__tuple__": [walk(v, join(path, i)) for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [walk(v, join(path, i)) for i, v in enumerate(x)]
        if isinstance(x, (np.integer, np.floating, np.bool_)):
            return x.item()
        if x is None or isinstance(x, (str, int, float, bool)):
            return x
        raise CheckpointError(f"cannot store a {type(x).__name__} at {path or '/'} without pickle")

    return walk(obj, prefix), tensors


def unflatten_state(structure: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            if "__tensor__" in x:
                return tensors[x["__tensor__"]]
            if "__ndarray__" in x:
                return tensors[x["__ndarray__"]].numpy()
            if "__tuple__" in x:
                return tuple(walk(v) for v in x["__tuple__"])
            if "__dict__" in x:
                return {k: walk(v) for k, v in x["__dict__"]}
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    try:
        return walk(structure)
    except KeyError as e:
        raise CheckpointError(f"checkpoint refers to tensor {e.args[0]!r} that its safetensors file lacks") from None


# -- safetensors files -----------------------------------------------------------------------------


def _cpu_unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, cloned where two share storage (safetensors refuses shared memory)."""
    out, seen = {}, set()
    for key, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        if ptr is not None and ptr in seen:
            t = t.clone()
        elif ptr is not None:
            seen.add(ptr)
        out[key] = t
    return out


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None, atomic: bool = True) -> Path:
    """Write tensors as a safetensors file (atomically by default, always fsynced)."""
    data = safetensors.torch.save(_cpu_unshared(tensors), metadata=metadata)
    path = Path(path)
    if atomic:
        atomic_write_bytes(path, data)  # shared (0o644), like every output
    else:
        _fsync_write(path, data)
    return path


def _sniff(path: Path) -> str:
    """Why ``path`` is not a safetensors file, or ``""`` when its header looks right."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if len(head) == 9:
        header_len = int.from_bytes(head[:8], "little")
        if head[8:9] == b"{" and header_len + 8 <= size:
            return ""
    if head[:4] == b"PK\x03\x04":
        return "it is a zip archive, the format of torch.save, which loads through pickle"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"}", b"]"):
        return "it looks like a pickle, which can run arbitrary code when loaded"
    return "it has no safetensors header"


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file: ``(tensors, metadata)``. Anything else raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    problem = _sniff(path)
    if problem:
        raise CheckpointError(f"{path}: not a safetensors file ({problem}); skelssl never unpickles checkpoints")
    try:
        with safetensors.safe_open(str(path), framework="pt", device=str(device)) as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: damaged safetensors file ({e})") from None
    return tensors, metadata


def _write_json(path: Path, obj: Any, indent: int | None = 1) -> None:
    _fsync_write(path, (json.dumps(obj, indent=indent) + "\n").encode())


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (incomplete checkpoint?)")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a JSON file ({e}); skelssl never unpickles checkpoints") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _listed(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def tensor_mismatch(tensors: dict[str, Any], shapes: dict[str, tuple[int, ...]],
                    dtypes: dict[str, torch.dtype] | None = None) -> list[str]:
    """How a set of tensors differs from the names and shapes a module needs, for a one-line error.

    Args:
        tensors: what a file holds (values that are no tensors are listed as such).
        shapes: ``key -> shape`` the module needs.
        dtypes: ``key -> dtype``, where a float in place of an integer (or the reverse) is a mismatch.

    Returns:
        ``["2 missing (a, b)", "1 unexpected (c)", "1 mis-shaped (d (3, 4) (expected (3, 5)))", ...]``
        with the first few names of each kind; empty when everything fits.
    """
    non_tensors = sorted(k for k, v in tensors.items() if not isinstance(v, torch.Tensor))
    missing = sorted(k for k in shapes if k not in tensors)
    unexpected = sorted(k for k in tensors if k not in shapes and k not in non_tensors)
    wrong = []
    for key in sorted(k for k in shapes if k in tensors and k not in non_tensors):
        t = tensors[key]
        want = dtypes.get(key) if dtypes else None
        if tuple(t.shape) != tuple(shapes[key]):
            wrong.append(f"{key} {tuple(t.shape)} (expected {tuple(shapes[key])})")
        elif want is not None and t.dtype != want and not (t.is_floating_point() and want.is_floating_point):
            wrong.append(f"{key} {str(t.dtype).replace('torch.', '')} (expected {str(want).replace('torch.', '')})")
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({_listed(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_listed(unexpected)})")
    if wrong:
        parts.append(f"{len(wrong)} mis-shaped ({_listed(wrong, 3)})")
    if non_tensors:
        parts.append(f"{len(non_tensors)} not tensors ({_listed(non_tensors)})")
    return parts


# -- training checkpoints --------------------------------------------------------------------------


def partial_path(path: str | Path) -> Path:
    """The temporary folder a checkpoint at ``path`` is written into before its rename."""
    path = Path(path)
    return path.parent / f".{path.name}.partial"


def _old(path: Path) -> Path:
    return path.parent / f".{path.name}.old"


def begin_checkpoint(path: str | Path) -> Path:
    """Create (empty) the temporary folder a checkpoint at ``path`` is written into; returns it.

    In data-parallel runs rank 0 calls this, then every rank calls :func:`write_rank_state` into the
    returned folder (its name depends only on ``path``), then rank 0 calls :func:`commit_checkpoint`.
    """
    path = Path(path)
    tmp = partial_path(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def write_rank_state(tmp: str | Path, rank: int, state: Any) -> None:
    """Write one process's own state (its random streams) into a checkpoint being written."""
    structure, tensors = flatten_state(state)
    tmp = Path(tmp)
    save_tensors(tmp / f"rank-{rank}.safetensors", tensors, atomic=False)
    _write_json(tmp / f"rank-{rank}.json", structure, indent=None)


def commit_checkpoint(
    tmp: str | Path,
    path: str | Path,
    model_state: dict[str, torch.Tensor],
    state: dict[str, Any],
    config: dict[str, Any] | None = None,
) -> Path:
    """Write the shared parts into ``tmp`` and publish it as ``path`` (replacing an older checkpoint).

    Args:
        tmp: folder from :func:`begin_checkpoint`.
        path: final checkpoint folder (e.g. ``run/checkpoints/last``).
        model_state: the module's ``state_dict()``.
        state: the training state (JSON scalars, nested dicts/lists and tensors).
        config: the resolved run config (stored in ``state.json`` and the model file's metadata).

    Returns:
        ``path``.
    """
    tmp, path = Path(tmp), Path(path)
    config_json = json.dumps(config if config is not None else {}, sort_keys=True)
    save_tensors(tmp / "model.safetensors", model_state, {"format": FORMAT, "config": config_json}, atomic=False)
    structure, tensors = flatten_state(state)
    save_tensors(tmp / "state.safetensors", tensors, {"format": FORMAT}, atomic=False)
    ranks = sorted(int(p.stem.split("-")[1]) for p in tmp.glob("rank-*.json"))
    manifest = {"format": FORMAT, "version": VERSION, "ranks": ranks, "state": structure, "config": config}
    _write_json(tmp / "state.json", manifest)  # written last: its presence marks a whole checkpoint
    _fsync_dir(tmp)
    old = _old(path)
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)  # a directory cannot replace a non-empty one; keep it until the new one is in
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if old.exists():
        shutil.rmtree(old)
    return path


def save_checkpoint(
    path: str | Path,
    model_state: dict[str, torch.Tensor],
    state: dict[str, Any],
    config: dict[str, Any] | None = None,
    rank_state: Any = None,
) -> Path:
    """Single-process convenience: :func:`begin_checkpoint`, rank 0's state, :func:`commit_checkpoint`."""
    tmp = begin_checkpoint(path)
    if rank_state is not None:
        write_rank_state(tmp, 0, rank_state)
    return commit_checkpoint(tmp, path, model_state, state, config)


def find_checkpoint(path: str | Path, name: str = "last") -> Path | None:
    """The checkpoint folder for ``path``: the folder itself, or ``path/checkpoints/<name>``.

    A save interrupted between moving the old folder aside and renaming the new one in leaves only
    ``.<name>.old``; it is whole, so it is returned then.
    """
    path = Path(path)
    for candidate in (path, path / "checkpoints" / name):
        if (candidate / "state.json").is_file():
            return candidate
        if (_old(candidate) / "state.json").is_file() and not candidate.exists():
            return _old(candidate)
    return None


@dataclass
class Checkpoint:
    """A loaded training checkpoint.

    Attributes:
        path: its folder.
        model: the module state dict.
        state: the training state (tensors rebuilt, tuples and integer keys restored).
        config: the resolved run config it was saved with.
        ranks: the ranks that saved a per-process state.
    """

    path: Path
    model: dict[str, torch.Tensor]
    state: dict[str, Any]
    config: dict[str, Any] | None
    ranks: list[int] = field(default_factory=list)

    def rank_state(self, rank: int) -> Any:
        """The per-process state saved by ``rank`` (``None`` when that rank saved none)."""
        if rank not in self.ranks:
            return None
        tensors, _ = load_tensors(self.path / f"rank-{rank}.safetensors")
        return unflatten_state(_read_json(self.path / f"rank-{rank}.json"), tensors)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a training checkpoint folder (or a run folder's ``checkpoints/last``).

    Raises:
        CheckpointError: nothing there, an incomplete or foreign checkpoint, or a file that is not
            safetensors/JSON (a ``torch.save`` or pickle file is refused, never unpickled).
    """
    path = Path(path)
    if path.is_file():
        problem = _sniff(path)
        raise CheckpointError(
            f"{path}: a skelssl checkpoint is a folder with model.safetensors and state.json"
            + (f"; this file is not one ({problem}), and skelssl never unpickles" if problem else "")
        )
    found = find_checkpoint(path)
    if found is None:
        raise CheckpointError(f"{path}: no checkpoint (expected state.json there or in checkpoints/last)")
    manifest = _read_json(found / "state.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{found}: not a {FORMAT} folder")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"{found}: checkpoint version {manifest.get('version')}, this skelssl reads {VERSION}")
    model, _ = load_tensors(found / "model.safetensors", map_location)
    tensors, _ = load_tensors(found / "state.safetensors", map_location)
    state = unflatten_state(manifest["state"], tensors)
    return Checkpoint(found, model, state, manifest.get("config"), list(manifest.get("ranks", [])))


def copy_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a whole checkpoint folder to ``dst`` atomically (periodic snapshots such as ``step-0001000/``)."""
    src, dst = Path(src), Path(dst)
    tmp = partial_path(dst)
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)
    _fsync_dir(dst.parent)
    return dst


# -- encoder checkpoints ---------------------------------------------------------------------------


def save_encoder(path: str | Path, encoder: nn.Module, config_dict: dict[str, Any] | None = None,
                 data: dict[str, Any] | None = None, test_input: dict[str, Any] | None = None) -> Path:
    """Save an encoder as ``encoder.safetensors`` with its spec and the run config in the metadata.

    Args:
        path: the file to write (a folder gets ``encoder.safetensors`` inside it).
        encoder: an encoder built by :func:`skelssl.models.build_encoder` (it has ``spec``).
        config_dict: the resolved run config.
        data: what the encoder was trained on (``pipeline``, ``layout``, ``channels``,
            ``num_persons``, ``dataset``, ``store``), so clips can be brought into the same coordinates.
        test_input: the resolved test-time input settings (``eval.input``: crop, frames, max_frames)
            that ``skelssl eval`` and ``skelssl embed`` apply before the encoder.

    Returns:
        The file written.
    """
    path = Path(path)
    if path.is_dir() or path.suffix != ".safetensors":
        path = path / "encoder.safetensors"
    spec = getattr(encoder, "spec", None)
    if not isinstance(spec, dict) or "name" not in spec:
        raise CheckpointError(f"{type(encoder).__name__} has no spec; build encoders with skelssl.models.build_encoder")
    metadata = {
        "format": "skelssl-encoder",
        "encoder_spec": json.dumps(spec, sort_keys=True),
        "config": json.dumps(config_dict if config_dict is not None else {}, sort_keys=True),
    }
    if data is not None:
        metadata["data"] = json.dumps(data, sort_keys=True)
    if test_input is not None:
        metadata["test_input"] = json.dumps(test_input, sort_keys=True)
    return save_tensors(path, encoder.state_dict(), metadata)


def _encoder_file(path: str | Path) -> Path:
    path = Path(path)
    return path / "encoder.safetensors" if path.is_dir() else path


def encoder_metadata(path: str | Path) -> dict[str, Any]:
    """``{"encoder_spec": ..., "config": ...}`` of an encoder file (or of ``run/encoder.safetensors``),
    plus ``data`` and ``test_input`` where the file records them (encoders saved since skelssl records them)."""
    path = _encoder_file(path)
    problem = _sniff(path) if path.is_file() else "missing"
    if problem:
        raise CheckpointError(f"{path}: not a skelssl encoder file ({problem}); skelssl never unpickles checkpoints")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as e:
        raise CheckpointError(f"{path}: damaged safetensors file ({e})") from None
    if meta.get("format") != "skelssl-encoder" or "encoder_spec" not in meta:
        raise CheckpointError(f"{path}: safetensors file without a skelssl encoder spec")
    out = {"encoder_spec": json.loads(meta["encoder_spec"]), "config": json.loads(meta.get("config", "{}"))}
    for key in ("data", "test_input"):
        if key in meta:
            out[key] = json.loads(meta[key])
    return out


def register_recorded_layout(meta: dict[str, Any], path: str | Path) -> None:
    """Make a user layout recorded in an encoder file's metadata known by name (built-in ones need nothing)."""
    from skelssl.core.layouts import layout_from_dict, register_layout

    definition = (meta.get("data") or {}).get("layout_def")
    if definition is not None:
        try:
            register_layout(layout_from_dict(definition, path))
        except ValueError as e:
            raise CheckpointError(f"{path}: its layout: {e}") from None


def load_encoder(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild an encoder from ``encoder.safetensors`` (its spec) and load its weights strictly.

    Args:
        path: the file, or a run folder containing it.
        map_location: device of the returned encoder.

    Returns:
        The :class:`~skelssl.models.base.Encoder`, on ``map_location``.
    """
    from skelssl.models import build_encoder

    path = _encoder_file(path)
    meta = encoder_metadata(path)
    spec = meta["encoder_spec"]
    register_recorded_layout(meta, path)
    tensors, _ = load_tensors(path, map_location)
    try:
        encoder = build_encoder(spec["name"], **spec.get("kwargs", {}))
    except KeyError as e:
        raise CheckpointError(f"{path}: cannot rebuild encoder {spec.get('name')!r} ({e.args[0]})") from None
    try:
        encoder.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit encoder {spec['name']!r}: {e}") from None
    return encoder.to(map_location)
