"""Checks every registered encoder must pass (timm's ``test_models.py`` pattern).

A new encoder joins by adding one entry to ``TINY_ENCODERS`` in ``tests/conftest.py``: keyword
arguments for a version small enough to run on a CPU in well under a second. A registered encoder
without an entry fails ``test_every_registered_encoder_has_a_tiny_config``.
"""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_ENCODERS as TINY
from skelssl.models import ENCODERS, build_encoder, import_encoders

torch.set_num_threads(1)

import_encoders()  # every encoder module registers itself as it is imported

LAYOUT = "ntu25"
V, C = 25, 3


def tiny(name: str, num_persons: int):
    torch.manual_seed(0)  # parameter init only; the library itself never touches the global RNG
    return build_encoder(name, in_channels=C, layout=LAYOUT, num_persons=num_persons, **TINY[name])


def batch(n: int, t: int, m: int, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, C, t, V, m, generator=g)
    lens = torch.tensor(lengths)
    x = x * (torch.arange(t)[None, :] < lens[:, None])[:, None, :, None, None]
    return x, lens


def test_every_registered_encoder_has_a_tiny_config():
    # Names starting with "_" are test-only encoders other test files register.
    missing = [name for name in ENCODERS.names() if name not in TINY and not name.startswith("_")]
    assert not missing, f"add a tiny config to TINY_ENCODERS in tests/conftest.py for: {missing}"
    assert all(ENCODERS.get(name).__module__ == f"skelssl.models.{name}" for name in TINY), "a file's name is its key"


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("m", [1, 2])
def test_output_shape_variable_t_and_gradients(name, m):
    enc = tiny(name, m)
    assert isinstance(enc.out_dim, int) and enc.out_dim > 0
    assert enc.spec["name"] == name and enc.spec["kwargs"]["layout"] == LAYOUT
    for t, lengths in ((20, [20, 13, 5]), (33, [33, 33, 1])):
        x, lens = batch(3, t, m, lengths)
        out = enc(x, lens)
        assert out.shape == (3, enc.out_dim) and torch.isfinite(out).all()
        assert enc(x).shape == (3, enc.out_dim)  # lengths are optional
    enc.zero_grad()
    x, lens = batch(4, 16, m, [16, 12, 9, 16], seed=1)
    out = enc(x, lens)
    (out.square().mean() + out.mean()).backward()
    for pname, p in enc.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
        if p.ndim > 1:  # weights (biases right before a BatchNorm legitimately get ~0)
            assert p.grad.abs().sum() > 0, f"{name}: {pname} got a zero gradient"


@pytest.mark.parametrize("name", sorted(TINY))
def test_absent_persons_are_handled(name):
    enc = tiny(name, 2).eval()
    x, lens = batch(3, 12, 2, [12, 12, 12])
    x[0, ..., 1] = 0  # one actor
    x[1] = 0  # an all-zero sample
    with torch.no_grad():
        out = enc(x, lens)
    assert torch.isfinite(out).all()
