"""ST-GCN specifics: size of the standard model, padding invariance, person pooling, layouts."""

from __future__ import annotations

import pytest
import torch

from skelssl.core.layouts import KINECT20, NTU25
from skelssl.models import build_encoder
from skelssl.models.stgcn import STGCN

torch.set_num_threads(1)

TINY = {"channels": (8, 16, 16), "strides": (1, 2, 1), "temporal_kernel": 3}


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_standard_model_matches_official_parameter_count():
    enc = STGCN(layout=NTU25)
    n_params = sum(p.numel() for p in enc.parameters())
    # Official st-gcn (NTU, 60 classes) has 3,098,832 parameters: minus its fc (256*60 + 60), plus the
    # 75 extra input-BatchNorm channels of our per-person data BN (2 parameters each).
    assert n_params == 3_098_832 - (256 * 60 + 60) + 2 * 75
    assert enc.out_dim == 256 and len(enc.units) == 10
    assert [u.stride for u in enc.units] == [1, 1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert enc.units[0].residual is None and isinstance(enc.units[1].residual, torch.nn.Identity)
    half = STGCN(layout=NTU25, width=0.25)
    assert half.out_dim == 64


def test_forward_features_shape_and_lengths():
    torch.manual_seed(0)
    enc = build_encoder("stgcn", layout="ntu25", num_persons=2, **TINY)
    x = randn(2, 3, 21, 25, 2)
    f = enc.forward_features(x, torch.tensor([21, 10]))
    assert f.shape == (2, 2, 16, 11, 25)  # (N, M, D, ceil(21 / 2), V)
    assert torch.equal(enc.output_lengths(torch.tensor([21, 10, 1])), torch.tensor([11, 5, 1]))
    assert (f[1, :, :, 5:] == 0).all()  # padded frames stay zero after the strided unit
    with pytest.raises(ValueError):
        enc(randn(2, 3, 21, 25, 1))  # built for M=2
    with pytest.raises(ValueError):
        enc(randn(2, 3, 21, 20, 2))  # wrong V


def test_padding_does_not_change_features_in_eval_mode():
    torch.manual_seed(0)
    enc = build_encoder("stgcn", layout="ntu25", num_persons=2, **TINY)
    # Give the BatchNorms non-trivial statistics first, so eval mode is not an identity.
    enc.train()
    with torch.no_grad():
        for s in range(3):
            enc(randn(4, 3, 24, 25, 2, seed=s) * 2 + 1)
    enc.eval()
    short = randn(1, 3, 13, 25, 2, seed=7)
    padded = torch.zeros(1, 3, 30, 25, 2)
    padded[:, :, :13] = short
    other = randn(1, 3, 30, 25, 2, seed=8)
    with torch.no_grad():
        alone = enc(short, torch.tensor([13]))
        in_batch = enc(torch.cat([padded, other]), torch.tensor([13, 30]))[:1]
        no_lengths = enc(torch.cat([padded, other]))[:1]
    assert torch.allclose(alone, in_batch, atol=1e-5)
    assert not torch.allclose(alone, no_lengths, atol=1e-3)  # lengths matter


def test_pool_averages_present_persons_only():
    torch.manual_seed(0)
    enc = build_encoder("stgcn", layout="ntu25", num_persons=2, **TINY).eval()
    x = randn(3, 3, 16, 25, 2, seed=3)
    x[0, ..., 1] = 0  # second actor absent
    x[1, ..., 0] = 0  # first actor absent
    x[2] = 0  # nobody: every slot is averaged
    with torch.no_grad():
        f = enc.forward_features(x)  # (N, M, D, T', V)
        out = enc(x)
    assert (f[0, 1] == 0).all() and (f[1, 0] == 0).all() and (f[2] != 0).any()
    assert torch.allclose(out[0], f[0, 0].mean(dim=(1, 2)), atol=1e-6)
    assert torch.allclose(out[1], f[1, 1].mean(dim=(1, 2)), atol=1e-6)
    assert torch.allclose(out[2], f[2].mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(enc.pool(f), out)


def test_any_layout_and_no_optional_parts():
    torch.manual_seed(0)
    enc = STGCN(in_channels=2, layout=KINECT20, num_persons=1, data_bn=False, edge_importance=False, **TINY)
    assert not any(n.endswith("importance") for n, _ in enc.named_parameters())
    out = enc(randn(2, 2, 9, 20, 1), torch.tensor([9, 4]))
    assert out.shape == (2, 16) and torch.isfinite(out).all()
    # Without the input BatchNorm the number of persons is free.
    assert enc(randn(2, 2, 9, 20, 3)).shape == (2, 16)
    with pytest.raises(ValueError):
        STGCN(layout=NTU25, temporal_kernel=4)
    with pytest.raises(ValueError):
        STGCN(layout=NTU25, channels=(8, 8), strides=(1,))
