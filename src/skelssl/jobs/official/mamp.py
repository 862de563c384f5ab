"""MAMP: the official pre-training checkpoint (maoyunyao/MAMP ``main_pretrain.py``, ``util/misc.py``).

The file is ``{'model', 'optimizer', 'epoch', 'scaler', 'args'}`` with ``args`` an
``argparse.Namespace`` (the one class besides tensors and plain containers that loading allows).
Names (official -> ours): the encoder's ``joints_embed``, ``pos_embed``, ``temp_embed``, ``blocks``
and ``norm`` sit under our method's ``encoder.``; the decoder (``mask_token``, ``decoder_*``) keeps
its names. In every block ``norm1`` / ``norm2`` are our ``attn_norm`` / ``mlp_norm`` and
``mlp.fc1`` / ``mlp.fc2`` our ``mlp.0`` / ``mlp.2``; ``attn.qkv`` and ``attn.proj`` are the same.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from skelssl.jobs.official.mapping import Rule

NAME = "MAMP"
CONTAINER = "{'model', 'optimizer', 'epoch', 'scaler', 'args'}"
PREFIX = ""
ENCODER_PREFIX = "encoder."
FILES = "the NTU-60 / NTU-120 / PKU-MMD checkpoints linked from the MAMP README (checkpoint-399.pth, ...)"
_STATE_KEY = "model"

_BLOCK = {"attn_norm": "norm1", "mlp_norm": "norm2", "mlp.0": "mlp.fc1", "mlp.2": "mlp.fc2",
          "attn.qkv": "attn.qkv", "attn.proj": "attn.proj"}


def rule(key: str, shape: tuple[int, ...]) -> Rule | None:
    """The rule for our method's ``key``; ``None`` for state the official model has not (``step``)."""
    if key == "step":
        return None
    name = key[len(ENCODER_PREFIX):] if key.startswith(ENCODER_PREFIX) else key
    m = re.fullmatch(r"((?:decoder_)?blocks\.\d+)\.(.+)\.(weight|bias)", name)
    if m:
        if m[2] not in _BLOCK:
            raise KeyError(key)
        return Rule(key, (f"{m[1]}.{_BLOCK[m[2]]}.{m[3]}",))
    return Rule(key, (name,))


def check(config: dict[str, Any]) -> str | None:
    """Why a run of this config has no official counterpart (``None``: it has one, size aside)."""
    return None


def unwrap(obj: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """``(state dict, everything else, top-level order)`` of a MAMP file (or of a bare state dict)."""
    if not isinstance(obj, dict):
        raise ValueError(f"a {type(obj).__name__}, where MAMP saves {CONTAINER}")
    if _STATE_KEY in obj and isinstance(obj[_STATE_KEY], dict):
        return dict(obj[_STATE_KEY]), {k: v for k, v in obj.items() if k != _STATE_KEY}, list(obj)
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), {}, []
    raise ValueError(f"a dict with keys {sorted(map(str, obj))[:6]}, where MAMP saves {CONTAINER}")


def wrap(state: dict[str, torch.Tensor], extras: dict[str, Any], order: list[str]) -> Any:
    """The official container: the kept top-level entries in their order, else ``{'model', 'epoch'}``."""
    if not order:
        return {_STATE_KEY: state, "epoch": extras.get("epoch", 0)}
    return {k: (state if k == _STATE_KEY else extras[k]) for k in order if k == _STATE_KEY or k in extras}


def looks_like(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """``"a MAMP checkpoint (8 blocks of width 256, decoder 3 blocks, 120 frames, 25 joints)"`` or ``None``."""
    proj = shapes.get("joints_embed.proj.weight")
    if proj is None or len(proj) != 4:
        return None
    depth = len({k.split(".")[1] for k in shapes if k.startswith("blocks.")})
    dec = len({k.split(".")[1] for k in shapes if k.startswith("decoder_blocks.")})
    temp, pos = shapes.get("temp_embed", (0, 0, 0, 0)), shapes.get("pos_embed", (0, 0, 0, 0))
    return (f"a MAMP checkpoint ({depth} blocks of width {proj[0]}, decoder {dec} blocks, "
            f"{temp[1] * proj[2]} frames, {pos[2]} joints)")
