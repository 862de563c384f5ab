"""AGCN against the official 2s-AGCN / ISC code: the fixed graph in the official subset order, the
per-branch ``conv_init`` of the attention embeddings, and one ``unit_gcn`` with weights copied by subset
index (what loading an official checkpoint does). ST-GCN keeps its own (official ST-GCN) order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from skelssl.core.layouts import KINECT20, NTU25, Layout
from skelssl.models import build_encoder
from skelssl.models.agcn import AGCN, AdaptiveGraphConv, agcn_adjacency

pytestmark = pytest.mark.usefixtures("one_thread")

# skeleton-contrast graph/ntu_rgb_d.py ``inward_ori_index`` (1-based (child, parent); METHODS.md §1).
NTU_INWARD_ORI_INDEX = [
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10), (12, 11),
    (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25),
    (25, 12),
]


# -- the official graph code, written plainly (2s-AGCN graph/tools.py) ---------------------------------


def edge2mat(link, num_node):
    a = np.zeros((num_node, num_node))
    for i, j in link:
        a[j, i] = 1
    return a


def normalize_digraph(a):
    dl = np.sum(a, 0)
    dn = np.zeros_like(a)
    for i in range(a.shape[0]):
        if dl[i] > 0:
            dn[i, i] = dl[i] ** (-1)
    return a @ dn


def get_spatial_graph(num_node, self_link, inward, outward):
    i = edge2mat(self_link, num_node)
    in_ = normalize_digraph(edge2mat(inward, num_node))
    out = normalize_digraph(edge2mat(outward, num_node))
    return np.stack((i, in_, out))


def official_graph(num_node: int, inward: list[tuple[int, int]]) -> torch.Tensor:
    """``graph.ntu_rgb_d.Graph(labeling_mode='spatial').A`` for a 0-based ``(child, parent)`` list."""
    self_link = [(i, i) for i in range(num_node)]
    outward = [(j, i) for (i, j) in inward]
    return torch.from_numpy(get_spatial_graph(num_node, self_link, inward, outward)).float()


# -- the fixed graph ---------------------------------------------------------------------------------


def test_agcn_adjacency_is_the_official_ntu_graph():
    inward = [(i - 1, j - 1) for (i, j) in NTU_INWARD_ORI_INDEX]
    expected = official_graph(25, inward)
    torch.testing.assert_close(agcn_adjacency(NTU25), expected)
    torch.testing.assert_close(agcn_adjacency("ntu25"), expected)
    enc = AGCN(layout=NTU25, num_persons=1, channels=(8, 16), strides=(1, 2), temporal_kernel=3)
    for unit in enc.units:
        torch.testing.assert_close(unit.gcn.A, expected)
    # Under x @ A, subset 1 (official "inward") brings a joint its parent's features: spine-base (0)
    # receives from spine-mid (1); subset 2 brings it its children's, averaged: the two hips (12, 16).
    assert expected[1, 1, 0] == 1 and expected[1, :, 0].sum() == 1
    assert expected[2, 12, 0] == expected[2, 16, 0] == 0.5 and expected[2, :, 0].sum() == 1


@pytest.mark.parametrize("layout", [NTU25, KINECT20], ids=["ntu25", "kinect20"])
def test_agcn_adjacency_follows_the_official_recipe_on_every_layout(layout: Layout):
    torch.testing.assert_close(agcn_adjacency(layout), official_graph(layout.num_joints, list(layout.bones)))


def test_stgcn_keeps_the_official_stgcn_subset_order():
    # ST-GCN's 'spatial' strategy (net/utils/graph.py): subset 1 = root + close, a_close[j, i] for a
    # neighbour j farther from the centre than i, i.e. [child, parent]; subset 2 = further, [parent, child].
    # Its normalisation differs (degree with self-loop); the supports must match.
    enc = build_encoder("stgcn", layout="ntu25", num_persons=1, channels=(8, 16), strides=(1, 2), temporal_kernel=3)
    a = enc.adjacency
    close = torch.zeros(25, 25)
    further = torch.zeros(25, 25)
    for c, p in NTU25.bones:
        close[c, p] = 1
        further[p, c] = 1
    assert torch.equal(a[0] != 0, torch.eye(25, dtype=torch.bool))
    assert torch.equal(a[1] != 0, close != 0) and torch.equal(a[2] != 0, further != 0)
    torch.testing.assert_close(a, torch.from_numpy(NTU25.spatial_partition()))


# -- initialisation ----------------------------------------------------------------------------------


def official_conv_init_std(out_channels: int, kernel: int = 1) -> float:
    """``conv_init``: ``kaiming_normal_(w, mode='fan_out')`` = N(0, 2 / (out_channels * kh * kw))."""
    return math.sqrt(2.0 / (out_channels * kernel))


def test_attention_embeddings_have_the_official_per_branch_std():
    torch.manual_seed(0)
    c_in, c_out = 256, 256
    gcn = AdaptiveGraphConv(c_in, c_out, agcn_adjacency(NTU25))  # C_e = 64: 64 x 256 weights per branch
    e, k = gcn.embed, gcn.num_subsets
    assert (e, k) == (64, 3)
    expected = official_conv_init_std(e)  # one branch conv_a[i] = Conv2d(C_in, C_e, 1): fan_out C_e
    fused = official_conv_init_std(k * e)  # what conv_init on the fused conv gives: sqrt(3) smaller
    assert expected / fused == pytest.approx(math.sqrt(3))
    for conv in (gcn.conv_a, gcn.conv_b):
        assert conv.weight.shape == (k * e, c_in, 1, 1)
        assert torch.all(conv.bias == 0)
        for branch in conv.weight.detach().chunk(k, dim=0):  # (C_e, C_in, 1, 1) = the official conv_a[i]
            std = branch.std().item()
            assert std == pytest.approx(expected, rel=0.03), (std, expected)  # SE of the estimate ~0.6 %
            assert abs(branch.mean().item()) < 4 * expected / math.sqrt(branch.numel())
        assert conv.weight.std().item() == pytest.approx(expected, rel=0.03)
    # conv_d: official conv_branch_init, N(0, 2 / (C_out * C_in * K)) per branch.
    d_std = gcn.conv_d.weight.std().item()
    assert d_std == pytest.approx(math.sqrt(2.0 / (c_out * c_in * k)), rel=0.03)
    assert torch.all(gcn.conv_d.bias == 0)


def test_paper_agcn_embeddings_match_the_official_std_in_every_unit():
    torch.manual_seed(0)
    enc = AGCN(layout=NTU25, num_persons=2)
    ratios = []
    for unit in enc.units:
        gcn = unit.gcn
        for conv in (gcn.conv_a, gcn.conv_b):
            ratios.append(conv.weight.detach().flatten() / official_conv_init_std(gcn.embed))
    pooled = torch.cat(ratios)  # N(0, 1) if every unit follows the official init
    assert pooled.std().item() == pytest.approx(1.0, rel=0.02)


# -- one unit_gcn with official weights ---------------------------------------------------------------


class OfficialUnitGCN(nn.Module):
    """2s-AGCN ``model/agcn.py`` ``unit_gcn`` (per-subset conv_a / conv_b / conv_d), its forward verbatim."""

    def __init__(self, in_channels: int, out_channels: int, a: torch.Tensor, coff_embedding: int = 4) -> None:
        super().__init__()
        inter_channels = out_channels // coff_embedding
        self.inter_c = inter_channels
        self.PA = nn.Parameter(torch.full_like(a, 1e-6))
        self.register_buffer("A", a.clone())
        self.num_subset = a.shape[0]
        self.conv_a = nn.ModuleList(nn.Conv2d(in_channels, inter_channels, 1) for _ in range(self.num_subset))
        self.conv_b = nn.ModuleList(nn.Conv2d(in_channels, inter_channels, 1) for _ in range(self.num_subset))
        self.conv_d = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(self.num_subset))
        self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        self.bn = nn.BatchNorm2d(out_channels)
        self.soft = nn.Softmax(-2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.size()
        a = self.A + self.PA
        y = None
        for i in range(self.num_subset):
            a1 = self.conv_a[i](x).permute(0, 3, 1, 2).contiguous().view(n, v, self.inter_c * t)
            a2 = self.conv_b[i](x).view(n, self.inter_c * t, v)
            a1 = self.soft(torch.matmul(a1, a2) / a1.size(-1))  # N V V
            a1 = a1 + a[i]
            a2 = x.view(n, c * t, v)
            z = self.conv_d[i](torch.matmul(a2, a1).view(n, c, t, v))
            y = z + y if y is not None else z
        y = self.bn(y)
        y += self.down(x)
        return self.relu(y)


def test_unit_gcn_with_official_weights_copied_by_subset_index():
    torch.manual_seed(0)
    c_in, c_out = 6, 16
    inward = [(i - 1, j - 1) for (i, j) in NTU_INWARD_ORI_INDEX]
    official = OfficialUnitGCN(c_in, c_out, official_graph(25, inward)).double().eval()
    with torch.no_grad():
        for p in official.parameters():
            p.copy_(torch.randn_like(p) * 0.5)  # PA differs per subset, so a subset mix-up shows
        for bn in (official.bn, official.down[1]):
            bn.running_mean.copy_(torch.randn_like(bn.running_mean) * 0.1)
            bn.running_var.copy_(torch.rand_like(bn.running_var) + 0.5)
    ours = AdaptiveGraphConv(c_in, c_out, agcn_adjacency(NTU25)).double().eval()
    k = ours.num_subsets
    # A converter's mapping: subset i of every per-subset tensor goes to index/slice i.
    state = {
        "PA": official.PA,
        "conv_a.weight": torch.cat([official.conv_a[i].weight for i in range(k)]),
        "conv_a.bias": torch.cat([official.conv_a[i].bias for i in range(k)]),
        "conv_b.weight": torch.cat([official.conv_b[i].weight for i in range(k)]),
        "conv_b.bias": torch.cat([official.conv_b[i].bias for i in range(k)]),
        "conv_d.weight": torch.cat([official.conv_d[i].weight for i in range(k)], dim=1),
        "conv_d.bias": sum(official.conv_d[i].bias for i in range(k)),
    }
    for name, value in official.state_dict().items():
        if name.startswith(("bn.", "down.")):
            state[name] = value
    missing, unexpected = ours.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    x = torch.randn(2, c_in, 5, 25, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), official(x), rtol=1e-10, atol=1e-10)
        # The same weights on the old (swapped) subset order give something else.
        swapped = AdaptiveGraphConv(c_in, c_out, agcn_adjacency(NTU25)[[0, 2, 1]]).double().eval()
        swapped.load_state_dict(state)
        assert not torch.allclose(swapped(x), official(x), atol=1e-3)
