"""Seeding, derived seeds, and capture/restore of every random stream a run touches.

skelssl's own code takes explicit generators, but PyTorch modules still draw from the global streams
(parameter initialisation, dropout, drop-path), so a run seeds them once from its config and a
checkpoint stores them together with the run's explicit generators. Restoring all of them is what
lets a killed run resume to the same weights as one never stopped.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "derive_seed",
    "seed_all",
    "set_deterministic",
    "module_generators",
    "capture_rng_state",
    "restore_rng_state",
]


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed derived from ``seed`` and ``keys`` (e.g. ``(seed, "epoch", 3)``), stable across runs.

    Independent streams (the per-epoch sample order, each rank's augmentation) get their own seed
    instead of ``seed + k`` sums, which collide (seed 1 epoch 0 == seed 0 epoch 1).
    """
    text = repr((int(seed),) + tuple(keys)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & ((1 << 63) - 1)


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and every CUDA device) global streams."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask PyTorch for deterministic kernels (warn, not fail, where none exists) and no cuDNN autotuning."""
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled


def module_generators(module: nn.Module) -> dict[str, torch.Generator]:
    """Every ``torch.Generator`` held as an attribute by ``module`` or its submodules, by dotted name.

    Methods that mask or augment with their own generator expose it this way, and the checkpoint
    saves its state next to the global streams.
    """
    found: dict[str, torch.Generator] = {}
    for mod_name, mod in module.named_modules():
        for attr, value in vars(mod).items():
            if isinstance(value, torch.Generator):
                found[f"{mod_name}.{attr}" if mod_name else attr] = value
    return found


def capture_rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Current state of the global streams and of ``generators``.

    Returns:
        A nested dict of JSON values and tensors (saved by :mod:`skelssl.engine.checkpoint` without
        pickle): ``python`` (list), ``numpy`` (dict with the key as a uint32 tensor), ``torch`` (uint8
        tensor), ``cuda`` (the current CUDA device's state, when CUDA is in use), ``generators``.
    """
    version, internal, gauss_next = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.array(np_state["state"]["key"], dtype=np.uint32)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        # Only the current device: each data-parallel process owns one GPU, and touching the others
        # would create a CUDA context on every GPU from every process.
        "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    return state


def restore_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`capture_rng_state` captured.

    Args:
        state: the captured state.
        generators: the run's generators, matched by name; a generator missing from ``state`` (or one
            in ``state`` that the run no longer has) is an error, since resuming would silently diverge.
    """
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))
    npst = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": npst["bit_generator"],
            "state": {"key": np.asarray(npst["key"].numpy(), dtype=np.uint32), "pos": int(npst["pos"])},
            "has_gauss": int(npst["has_gauss"]),
            "gauss": float(npst["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda[0].to(torch.uint8).cpu())
    saved = state.get("generators", {})
    gens = generators or {}
    if set(saved) != set(gens):
        raise KeyError(f"random generators differ from the checkpoint: saved {sorted(saved)}, run has {sorted(gens)}")
    for name, g in gens.items():
        g.set_state(saved[name].to(torch.uint8).cpu())
