"""Every encoder takes every built-in layout (pose-estimator ones included) and 2 or 3 input channels
(2D, 2D + score): graph encoders build their adjacency from the layout, the others size by V."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_ENCODERS as TINY
from skelssl.core.layouts import BUILTIN_LAYOUTS
from skelssl.models import ENCODERS, build_encoder, import_encoders

import_encoders()

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_list_covers_every_encoder():
    assert sorted(n for n in ENCODERS.names() if not n.startswith("_")) == sorted(TINY)


@pytest.mark.parametrize("layout", ["coco17", "openpose18", "h36m17"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_encoder_on_pose_estimator_layouts(name, layout):
    v = BUILTIN_LAYOUTS[layout].num_joints
    channels = 3 if layout == "h36m17" else 2 + (name < "m")  # 2D, or 2D + score for some
    torch.manual_seed(0)
    enc = build_encoder(name, in_channels=channels, layout=layout, num_persons=2, **TINY[name])
    x = torch.randn(2, channels, 24, v, 2)
    out = enc(x, torch.tensor([24, 18]))  # (N, D)
    assert out.shape == (2, enc.out_dim) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    graphs = [b for b in enc.buffers() if b.ndim >= 2 and b.shape[-2:] == (v, v)]
    if name in ("stgcn", "agcn"):  # the graph is the layout's (its bones, whatever the normalisation)
        bones = torch.from_numpy(BUILTIN_LAYOUTS[layout].spatial_partition()) != 0  # (3, V, V)
        swapped = bones[[0, 2, 1]]  # AGCN keeps the official order of its two directed subsets
        assert graphs and any(b.shape == bones.shape and (torch.equal(b != 0, bones) or torch.equal(b != 0, swapped))
                              for b in graphs)
