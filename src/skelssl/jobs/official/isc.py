"""ISC: the official seq+graph pre-training checkpoint (fmthoker/skeleton-contrast
``main_moco_inter_skeleton.py``, ``moco/builder_inter.py``).

The file is ``{'epoch', 'state_dict', 'optimizer'}``; ``state_dict`` keys start with ``module.``
(``DataParallel``). Official modules -> ours (:class:`~skelssl.methods.isc.ISC`):

- ``encoder_q`` / ``encoder_k``: the GRU query / momentum key -> ``queries.seq`` / ``key_encoders.seq``;
  their ``fc`` (the ``--mlp`` projection ``Linear-ReLU-Linear``) -> ``heads.seq`` / ``key_heads.seq``.
  ``encoder.gru.{w}_l{L}`` and ``{w}_l{L}_reverse`` of the stepped bidirectional GRU are our faithful
  mode's two forward GRUs of layer ``L``, ``rnn.layers.L.0`` and ``rnn.layers.L.1`` (``{w}_l0``);
- ``encoder_r`` / ``encoder_l``: the AGCN query / key -> ``queries.graph`` / ``key_encoders.graph``, their
  ``fc`` -> ``heads.graph`` / ``key_heads.graph``. Unit ``l{n}`` is our ``units.{n-1}``; ``gcn1`` ->
  ``gcn``, ``tcn1.conv|bn`` -> ``tcn.0|1``, ``residual.conv|bn`` -> ``residual.0|1``. The three
  ``conv_a.k`` / ``conv_b.k`` are one convolution (concatenated along the outputs), the three
  ``conv_d.k`` one convolution over the stacked inputs (weights concatenated along the inputs, biases
  summed). ``PA`` pairs by subset index: our fixed adjacency already has the official subset order
  (:func:`skelssl.models.agcn.agcn_adjacency`);
- ``Queue_S1`` ``(128, K)`` (keys of ``encoder_k``, the GRU) -> ``queues.seq.keys`` ``(K, 128)``,
  ``Queue_S2`` (AGCN keys) -> ``queues.graph.keys``; ``queue_ptr_S*`` ``(1,)`` -> 0-d ``ptr``.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from skelssl.jobs.official.mapping import Rule

NAME = "ISC"
CONTAINER = "{'epoch', 'state_dict', 'optimizer'}"
PREFIX = "module."
ENCODER_PREFIX = "queries.seq."
FILES = "checkpoint_0450.pth.tar (script_pretrain.sh, NTU-60 seq+graph)"
_STATE_KEY = "state_dict"

_MODULE = {("queries", "seq"): "encoder_q", ("key_encoders", "seq"): "encoder_k",
           ("queries", "graph"): "encoder_r", ("key_encoders", "graph"): "encoder_l",
           ("heads", "seq"): "encoder_q", ("key_heads", "seq"): "encoder_k",
           ("heads", "graph"): "encoder_r", ("key_heads", "graph"): "encoder_l"}
_QUEUE = {"seq": "S1", "graph": "S2"}
_CONV = {"tcn.0": "tcn1.conv", "tcn.1": "tcn1.bn", "residual.0": "residual.conv", "residual.1": "residual.bn"}


def _gru(stem: str, name: str) -> Rule | None:
    m = re.fullmatch(r"rnn\.layers\.(\d+)\.([01])\.(weight_ih|weight_hh|bias_ih|bias_hh)_l0", name)
    if m:  # faithful mode: direction 1 is the official `_reverse` one
        return Rule("", (f"{stem}.encoder.gru.{m[3]}_l{m[1]}{'_reverse' if m[2] == '1' else ''}",))
    m = re.fullmatch(r"rnn\.gru\.((?:weight|bias)_(?:ih|hh)_l\d+(?:_reverse)?)", name)
    if m:  # stepwise mode holds the official module itself
        return Rule("", (f"{stem}.encoder.gru.{m[1]}",))
    return None


def _agcn(stem: str, name: str) -> Rule | None:
    if name.startswith("data_bn."):
        return Rule("", (f"{stem}.{name}",))
    m = re.fullmatch(r"units\.(\d+)\.(.+)", name)
    if not m:
        return None
    unit, rest = f"{stem}.l{int(m[1]) + 1}", m[2]
    g = re.fullmatch(r"gcn\.(conv_[abd])\.(weight|bias)", rest)
    if g:
        parts = tuple(f"{unit}.gcn1.{g[1]}.{k}.{g[2]}" for k in range(3))
        kind = "cat0" if g[1] != "conv_d" else ("cat1" if g[2] == "weight" else "sum")
        return Rule("", parts, kind)
    if rest.startswith("gcn."):  # PA, bn.*, down.*
        return Rule("", (f"{unit}.gcn1.{rest[4:]}",))
    for ours, official in _CONV.items():
        if rest.startswith(ours + "."):
            return Rule("", (f"{unit}.{official}{rest[len(ours):]}",))
    return None


def rule(key: str, shape: tuple[int, ...]) -> Rule | None:
    """The rule for our method's ``key``; ``None`` for state the official model has not (``step``)."""
    if key == "step":
        return None
    top, rep, name = (key.split(".", 2) + ["", ""])[:3]
    found = None
    if top == "queues" and rep in _QUEUE:
        if name == "keys":
            found = Rule("", (f"Queue_{_QUEUE[rep]}",), "transpose")
        elif name == "ptr":
            found = Rule("", (f"queue_ptr_{_QUEUE[rep]}",), "reshape", (1,))
    elif (top, rep) in _MODULE:
        stem = _MODULE[(top, rep)]
        if top in ("heads", "key_heads"):
            m = re.fullmatch(r"net\.([02])\.(weight|bias)", name)
            found = Rule("", (f"{stem}.fc.{m[1]}.{m[2]}",)) if m else None
        else:
            found = _gru(stem, name) if rep == "seq" else _agcn(stem, name)
    if found is None:
        raise KeyError(key)
    return Rule(key, found.official, found.kind, found.shape)


def check(config: dict[str, Any]) -> str | None:
    """Why a run of this config has no official counterpart (``None``: it has one, size aside)."""
    encoder = config.get("encoder") or {}
    method = (config.get("method") or {}).get("kwargs") or {}
    if encoder.get("name", "gru") != "gru" or (encoder.get("kwargs") or {}).get("mode", "faithful") == "bidirectional":
        return ("its sequence encoder is not the official stepped GRU (encoder gru with mode faithful or stepwise; "
                "mode bidirectional is another model)")
    if method.get("pairing", "seq+graph") != "seq+graph":
        return f"its pairing is {method['pairing']}; the official ISC checkpoint is seq+graph"
    if method.get("export", "seq") != "seq":
        return "it exports the graph encoder; the official evaluation uses the GRU (export: seq)"
    return None


def unwrap(obj: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """``(state dict, everything else, top-level order)`` of an ISC file (or of a bare state dict)."""
    if not isinstance(obj, dict):
        raise ValueError(f"a {type(obj).__name__}, where ISC saves {CONTAINER}")
    if _STATE_KEY in obj and isinstance(obj[_STATE_KEY], dict):
        return dict(obj[_STATE_KEY]), {k: v for k, v in obj.items() if k != _STATE_KEY}, list(obj)
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), {}, []
    raise ValueError(f"a dict with keys {sorted(map(str, obj))[:6]}, where ISC saves {CONTAINER}")


def wrap(state: dict[str, torch.Tensor], extras: dict[str, Any], order: list[str]) -> Any:
    """The official container: the kept top-level entries in their order, else ``{'epoch', 'state_dict'}``."""
    if not order:
        return {"epoch": extras.get("epoch", 0), _STATE_KEY: state}
    return {k: (state if k == _STATE_KEY else extras[k]) for k in order if k == _STATE_KEY or k in extras}


def looks_like(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """``"an ISC seq+graph checkpoint (GRU 3 x 1024 on 150 inputs, AGCN 10 units, queues of 16384)"``."""
    hh = shapes.get("encoder_q.encoder.gru.weight_hh_l0")
    ih = shapes.get("encoder_q.encoder.gru.weight_ih_l0")
    if hh is None or ih is None:
        return None
    layers = len({k.split(".")[3] for k in shapes if k.startswith("encoder_q.encoder.gru.weight_hh_l") and "reverse" not in k})
    units = len({k.split(".")[1] for k in shapes if re.match(r"encoder_r\.l\d+\.", k)})
    queue = shapes.get("Queue_S1", (0, 0))
    return (f"an ISC seq+graph checkpoint (GRU {layers} x {hh[1]} on {ih[1]} inputs, AGCN {units} units, "
            f"queues of {queue[1]})")
