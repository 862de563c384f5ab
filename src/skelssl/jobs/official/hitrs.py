"""Hi-TRS: the official pre-training checkpoint (yuxiaochen1103/Hi-TRS ``pretrain_on_NTU.py``).

The released file is ``torch.save(model.state_dict())`` of a ``DataParallel`` model: a bare state dict
whose keys start with ``module.``. Names (official -> ours, :class:`~skelssl.models.hitrs.HiTRS` inside
:class:`~skelssl.methods.hitrs.HiTRS`'s ``encoder.``), per level ``s`` (frame), ``c`` (clip), ``v``
(video):

- ``{s,c,v}_input_map`` -> ``frame_embed`` / ``clip_embed`` / ``video_embed``;
- ``{s,c,v}_pe.pe`` -> ``frame_pe`` / ``clip_pe`` / ``video_pe``;
- ``clip_fuse_token`` / ``video_fuse_token`` ``(1, 1, D)`` -> ``clip_token`` / ``video_token`` ``(D,)``;
- ``{s,c,v}_enc.layer_stack.i``: ``self_attn_norm`` -> ``attn_norm``, ``slf_attn.w_qs|w_ks|w_vs`` ->
  one ``attn.qkv`` (concatenated in that order along the output dimension), ``slf_attn.fc`` ->
  ``attn.proj``, ``pff_norm`` -> ``mlp_norm``, ``pos_ffn.w_1|w_2`` -> ``mlp.0|2``;
- the pretext heads ``s_pose_reg``, ``c_motion_cls``, ``v_motion_cls``, ``v_ft_reg`` -> the method's
  ``pose_head``, ``clip_order_head``, ``video_order_head``, ``future_head``.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from skelssl.jobs.official.mapping import Rule

NAME = "Hi-TRS"
CONTAINER = "a bare state dict (torch.save(model.state_dict()))"
PREFIX = "module."  # the released file is saved from a DataParallel model
ENCODER_PREFIX = "encoder."
FILES = "checkpoint/model/iter-30000_... (pretrain_on_NTU.py, NTU-60)"

_LEVEL = {"frame": "s", "clip": "c", "video": "v"}
_HEADS = {"pose_head": "s_pose_reg", "clip_order_head": "c_motion_cls", "video_order_head": "v_motion_cls",
          "future_head": "v_ft_reg"}
_BLOCK = {"attn_norm": "self_attn_norm", "attn.proj": "slf_attn.fc", "mlp_norm": "pff_norm",
          "mlp.0": "pos_ffn.w_1", "mlp.2": "pos_ffn.w_2"}


def rule(key: str, shape: tuple[int, ...]) -> Rule | None:
    """The rule for our method's ``key``; ``None`` for state the official model has not (``step``)."""
    if key == "step":
        return None
    head, _, param = key.partition(".")
    if head in _HEADS:
        return Rule(key, (f"{_HEADS[head]}.{param}",))
    if not key.startswith(ENCODER_PREFIX):
        raise KeyError(key)
    name = key[len(ENCODER_PREFIX):]
    if name in ("clip_token", "video_token"):
        return Rule(key, (f"{name.split('_')[0]}_fuse_token",), "reshape", (1, 1, *shape))
    m = re.fullmatch(r"(frame|clip|video)_pe", name)
    if m:
        return Rule(key, (f"{_LEVEL[m[1]]}_pe.pe",))
    m = re.fullmatch(r"(frame|clip|video)_embed\.(.+)", name)
    if m:
        return Rule(key, (f"{_LEVEL[m[1]]}_input_map.{m[2]}",))
    m = re.fullmatch(r"(frame|clip|video)_blocks\.(\d+)\.(.+)\.(weight|bias)", name)
    if m:
        stem = f"{_LEVEL[m[1]]}_enc.layer_stack.{m[2]}"
        if m[3] == "attn.qkv":
            return Rule(key, tuple(f"{stem}.slf_attn.{w}.{m[4]}" for w in ("w_qs", "w_ks", "w_vs")), "cat0")
        if m[3] in _BLOCK:
            return Rule(key, (f"{stem}.{_BLOCK[m[3]]}.{m[4]}",))
    raise KeyError(key)


def check(config: dict[str, Any]) -> str | None:
    """Why a run of this config has no official counterpart (``None``: it has one, size aside)."""
    return None


def unwrap(obj: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """``(state dict, everything else, top-level order)``: Hi-TRS saves the state dict itself."""
    if not isinstance(obj, dict):
        raise ValueError(f"a {type(obj).__name__}, where Hi-TRS saves {CONTAINER}")
    others = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if others:
        raise ValueError(f"a dict holding {', '.join(others[:5])} besides tensors, where Hi-TRS saves {CONTAINER}")
    return dict(obj), {}, []


def wrap(state: dict[str, torch.Tensor], extras: dict[str, Any], order: list[str]) -> Any:
    return state


def looks_like(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """``"a Hi-TRS checkpoint (frame width 128, 3 layers per level, 25 joints)"`` or ``None``."""
    w = shapes.get("s_input_map.0.weight")
    if w is None or len(w) != 2:
        return None
    layers = len({k.split(".")[2] for k in shapes if k.startswith("s_enc.layer_stack.")})
    joints = shapes.get("s_pe.pe", (None,))[0]
    return f"a Hi-TRS checkpoint (frame width {w[0]}, {layers} layers per level, {joints} joints, {w[1]} channels)"
