"""Official checkpoint files for the converter tests, built from the tensor lists in
``../shared/data/official_checkpoints/*.json``: the exact names (``DataParallel`` prefixes included),
shapes and dtypes, random values, and each method's container as its official code saves it."""

from __future__ import annotations

import argparse
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch

LISTS = {"hitrs": "hitrs_pretrain_ntu60.json", "isc": "isc_seq_graph_ntu60.json", "mamp": "mamp_pretrain_ntu60.json"}

#: ISC at a CPU-friendly size for the default suite: the GRU's hidden size 1024 -> 16 in the query and
#: key sequence encoders (3H, H, 2H, and the 2H-wide projection); everything else at paper size.
ISC_SMALL_GRU = {3072: 48, 1024: 16, 2048: 32}
ISC_SMALL_OVERRIDES = ["encoder.kwargs.hidden_size=16"]


def tensor_list(shared_data: Path, method: str) -> list[dict[str, Any]]:
    path = shared_data / "official_checkpoints" / LISTS[method]
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return json.loads(path.read_text())["tensors"]


def _shape(method: str, key: str, shape: list[int], small: bool) -> tuple[int, ...]:
    if small and method == "isc" and (".encoder_q." in key or ".encoder_k." in key):
        return tuple(ISC_SMALL_GRU.get(s, s) for s in shape)
    return tuple(shape)


def state_dict(entries: list[dict[str, Any]], method: str, seed: int = 0, small: bool = False) -> "OrderedDict[str, torch.Tensor]":
    """Random tensors with the listed names, shapes and dtypes (in the listed order)."""
    g = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for e in entries:
        shape = _shape(method, e["key"], e["shape"], small)
        if e["dtype"] == "int64":
            out[e["key"]] = torch.randint(0, 1000, shape, generator=g, dtype=torch.int64)
        else:
            assert e["dtype"] == "float32", e
            out[e["key"]] = torch.randn(shape, generator=g, dtype=torch.float32)
    return out


def container(method: str, state: "OrderedDict[str, torch.Tensor]", seed: int = 0) -> Any:
    """What ``torch.load`` returns for the official file (README of the tensor lists)."""
    g = torch.Generator().manual_seed(seed + 1)
    if method == "hitrs":  # torch.save(model.state_dict()) of a DataParallel model
        return state
    if method == "isc":  # main_moco_inter_skeleton.py: epoch, state_dict, optimizer (SGD, momentum)
        sgd = {"state": {0: {"momentum_buffer": torch.randn(7, generator=g)}, 3: {"momentum_buffer": torch.randn(2, 3, generator=g)}},
               "param_groups": [{"lr": 0.001, "momentum": 0.9, "dampening": 0, "weight_decay": 1e-4, "nesterov": False,
                                 "maximize": False, "foreach": None, "differentiable": False, "fused": None,
                                 "params": list(range(6))}]}
        return {"epoch": 451, "state_dict": state, "optimizer": sgd}
    # MAMP util/misc.py save_model: model, optimizer (AdamW), epoch, scaler, args
    adamw = {"state": {1: {"step": torch.tensor(125200.0), "exp_avg": torch.randn(4, generator=g),
                           "exp_avg_sq": torch.rand(4, generator=g)}},
             "param_groups": [{"lr": 5e-4, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.05, "amsgrad": False,
                               "params": [0, 1]},
                              {"lr": 5e-4, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
                               "params": [2]}]}
    args = argparse.Namespace(config="./config/ntu60_xsub_joint/pretrain_mamp_t120_layer8+3_mask90.yaml",
                              batch_size=32, epochs=400, accum_iter=1, mask_ratio=0.9, motion_aware_tau=0.8,
                              lr=None, blr=1e-3, min_lr=5e-4, warmup_epochs=20, device="cuda", seed=0,
                              output_dir="./output_dir/ntu60_xsub_joint/pretrain_mamp_t120_layer8+3_mask90_tau0.80_ep400_noamp",
                              model_args={"dim_in": 3, "dim_feat": 256, "depth": 8, "decoder_depth": 3, "num_heads": 8},
                              world_size=4, distributed=True)
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 0}
    return {"model": state, "optimizer": adamw, "epoch": 399, "scaler": scaler, "args": args}


def write_official(path: Path, shared_data: Path, method: str, seed: int = 0, small: bool = False) -> Any:
    """Write the file with ``torch.save``; returns what was saved."""
    obj = container(method, state_dict(tensor_list(shared_data, method), method, seed, small), seed)
    torch.save(obj, path)
    return obj


def state_of(method: str, obj: Any) -> dict[str, torch.Tensor]:
    return obj if method == "hitrs" else obj["state_dict" if method == "isc" else "model"]


def assert_same_contents(a: Any, b: Any, where: str = "") -> None:
    """Same container, keys (in order), types and values, tensors bit for bit (same dtype and shape)."""
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys differ"
        for k in a:
            assert_same_contents(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, argparse.Namespace):
        assert_same_contents(vars(a), vars(b), f"{where}.args")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_contents(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"
