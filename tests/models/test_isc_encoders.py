"""ISC's encoders: the GRU's faithful mode equals the official stepped bidirectional GRU, paper sizes match
the official modules, and AGCN / HCN specifics (adaptive graph, padding, persons, output size)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skelssl.core.layouts import NTU25
from skelssl.models import build_encoder
from skelssl.models.agcn import AGCN
from skelssl.models.gru import to_sequence

torch.set_num_threads(1)

TINY_AGCN = {"channels": (8, 16), "strides": (1, 2), "temporal_kernel": 3}


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def padded(x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    return x * (torch.arange(x.shape[2])[None, :] < torch.tensor(lengths)[:, None])[:, None, :, None, None]


def official_stepped_gru(gru: nn.GRU, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """ISC ``moco/GRU.py`` ``EncoderRNN.forward``: feed one frame per call, carry the hidden state,
    concatenate the per-step outputs and read each sample's output at ``len - 1``."""
    seq = x.permute(0, 2, 3, 1, 4).reshape(x.shape[0], x.shape[2], -1)  # feeder: transpose(1, 2, 0, 3)
    encoder_hidden = []
    hidden_tmp = None
    for it in range(int(lengths.max())):
        if it == 0:
            enout_tmp, hidden_tmp = gru(seq[:, it : it + 1, :])
        else:
            enout_tmp, hidden_tmp = gru(seq[:, it : it + 1, :], hidden_tmp)
        encoder_hidden.append(enout_tmp)
    encoder_hidden = torch.cat(encoder_hidden, 1)  # (N, T, 2H)
    return torch.stack([encoder_hidden[i, int(n) - 1] for i, n in enumerate(lengths)])


# -- GRU ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2])
def test_faithful_gru_equals_official_stepped_bidirectional_gru(m):
    torch.manual_seed(0)
    ref = nn.GRU(25 * 3 * m, 12, num_layers=3, bidirectional=True, batch_first=True).double()
    enc = build_encoder("gru", layout="ntu25", num_persons=m, mode="faithful", hidden_size=12, num_layers=3).double()
    enc.rnn.copy_from(ref)
    lengths = torch.tensor([17, 9, 1, 17])
    x = padded(randn(4, 3, 17, 25, m, dtype=torch.float64), lengths.tolist())
    expected = official_stepped_gru(ref, x, lengths)  # (N, 24)
    out = enc(x, lengths)
    assert out.shape == (4, 24)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    # The stepwise mode is the official loop itself, with the official parameter names.
    stepped = build_encoder("gru", layout="ntu25", num_persons=m, mode="stepwise", hidden_size=12, num_layers=3).double()
    stepped.rnn.gru.load_state_dict(ref.state_dict())
    torch.testing.assert_close(stepped(x, lengths), expected, rtol=1e-10, atol=1e-12)
    # A true bidirectional GRU over the clip is a different function.
    assert (ref(to_sequence(x))[0][:, -1] - expected).abs().max() > 1e-3


def test_faithful_gru_is_causal_and_float32_close_to_the_reference():
    torch.manual_seed(1)
    ref = nn.GRU(150, 16, num_layers=3, bidirectional=True, batch_first=True)
    enc = build_encoder("gru", layout="ntu25", num_persons=2, hidden_size=16, num_layers=3)
    enc.rnn.copy_from(ref)
    x = randn(3, 3, 20, 25, 2, seed=2)
    lengths = torch.tensor([20, 20, 20])
    torch.testing.assert_close(enc(x), official_stepped_gru(ref, x, lengths), rtol=1e-4, atol=1e-5)
    feats = enc.forward_features(x)  # (N, T, 2H)
    changed = x.clone()
    changed[:, :, 12:] = randn(3, 3, 8, 25, 2, seed=3)  # a different future
    torch.testing.assert_close(enc.forward_features(changed)[:, :12], feats[:, :12])


def test_bidirectional_gru_reads_each_clip_whole_in_both_directions():
    torch.manual_seed(0)
    enc = build_encoder("gru", layout="ntu25", num_persons=1, mode="bidirectional", hidden_size=10, num_layers=2).double()
    gru = enc.rnn.gru
    lengths = torch.tensor([11, 6, 2])
    x = padded(randn(3, 3, 11, 25, 1, dtype=torch.float64), lengths.tolist())
    out = enc(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        _, h_n = gru(to_sequence(x[i : i + 1, :, :n]))  # (2L, 1, H): last layer's two directions at the end
        torch.testing.assert_close(out[i], torch.cat([h_n[-2, 0], h_n[-1, 0]]))


def test_sequence_order_is_joint_then_coordinate_then_person():
    x = torch.zeros(1, 3, 1, 25, 2)
    for c in range(3):
        for v in range(25):
            for m in range(2):
                x[0, c, 0, v, m] = 100 * v + 10 * c + m
    seq = to_sequence(x)[0, 0]  # (150,)
    # ISC feeder: per joint [x1, x2, y1, y2, z1, z2].
    assert seq[:6].tolist() == [0, 1, 10, 11, 20, 21] and seq[6:8].tolist() == [100, 101]


# -- paper sizes (built on the meta device: no memory, no init cost) ---------------------------------


def test_paper_sizes_match_the_official_modules():
    with torch.device("meta"):
        gru = build_encoder("gru", layout="ntu25")
        official_gru = nn.GRU(150, 1024, num_layers=3, bidirectional=True)
        agcn = build_encoder("agcn", layout="ntu25")
        hcn = build_encoder("hcn", layout="ntu25")
        hcn32 = build_encoder("hcn", layout="ntu25", frames=32)
    count = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    assert gru.out_dim == 2048 and count(gru) == count(official_gru) == 44_998_656

    # Official 2s-AGCN ``Model`` without its fc, from its layer definitions (V = 25, K = 3, C_e = C_out / 4).
    def official_agcn_params(channels, strides, v=25, k=3, m=2, c=3):
        total, c_in = 2 * m * v * c, c  # data_bn
        for i, (c_out, s) in enumerate(zip(channels, strides)):
            e = c_out // 4
            total += k * v * v + 2 * k * (c_in * e + e) + k * (c_in * c_out + c_out) + 2 * c_out  # PA, a, b, d, bn
            if c_in != c_out:
                total += c_in * c_out + c_out + 2 * c_out  # gcn down
            total += c_out * c_out * 9 + c_out + 2 * c_out  # tcn
            if i > 0 and (c_in != c_out or s != 1):
                total += c_in * c_out + c_out + 2 * c_out  # residual unit_tcn(kernel 1)
            c_in = c_out
        return total

    channels, strides = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256), (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    merged_biases = sum(2 * c for c in channels)  # conv_d holds one bias per unit instead of three
    assert agcn.out_dim == 256 and len(agcn.units) == 10 and agcn.strides == strides
    assert count(agcn) == official_agcn_params(channels, strides) - merged_biases == 3_451_274
    # Official HCN convs: conv1 3->64, conv2 64->64 (window), conv3 25->32, conv4 32->64, per stream;
    # conv5 128->128, conv6 128->256.
    stream = (3 * 64 + 64) + (64 * 64 * 3 + 64) + (25 * 32 * 9 + 32) + (32 * 64 * 9 + 64)
    assert count(hcn) == 2 * stream + (128 * 128 * 9 + 128) + (128 * 256 * 9 + 256)
    assert hcn.out_dim == 256 * 4 * 4 == 4096 and hcn32.out_dim == 256 * 2 * 2


def test_small_presets_and_bad_arguments():
    torch.manual_seed(0)
    for name, dim in (("gru", 256), ("agcn", 64), ("hcn", 64 * 16)):
        enc = build_encoder(name, layout="kinect20", num_persons=1, preset="small")
        assert enc.out_dim == dim
        assert enc(randn(2, 3, 64, 20, 1)).shape == (2, dim)
    for name in ("gru", "agcn", "hcn"):
        with pytest.raises(ValueError, match="preset"):
            build_encoder(name, layout="ntu25", preset="huge")
    with pytest.raises(ValueError, match="mode"):
        build_encoder("gru", layout="ntu25", mode="reverse")
    with pytest.raises(ValueError, match="frames"):
        build_encoder("hcn", layout="ntu25", frames=8)
    enc = build_encoder("gru", layout="ntu25", num_persons=2, preset="small")
    with pytest.raises(ValueError, match="M=2"):
        enc(randn(2, 3, 10, 25, 1))


# -- AGCN --------------------------------------------------------------------------------------------


def test_agcn_graph_is_partition_plus_learned_plus_column_softmax():
    torch.manual_seed(0)
    enc = AGCN(layout=NTU25, num_persons=1, **TINY_AGCN)
    gcn = enc.units[0].gcn
    # Official subset order (tests/models/test_agcn_official.py): the layout's partition with subsets 1, 2 swapped.
    torch.testing.assert_close(gcn.A, torch.from_numpy(NTU25.spatial_partition()[[0, 2, 1]]))
    assert torch.all(gcn.PA == 1e-6) and gcn.PA.requires_grad and gcn.embed == 2
    g = gcn.graphs(randn(2, 3, 9, 25, seed=1))  # (B, K, V, V)
    data_term = g - (gcn.A + gcn.PA)
    assert g.shape == (2, 3, 25, 25) and torch.all(data_term > 0)
    torch.testing.assert_close(data_term.sum(dim=-2), torch.ones(2, 3, 25))  # softmax over dim -2
    assert enc.units[0].residual is None and enc.units[1].residual is not None


@pytest.mark.parametrize("name, kwargs", [
    ("agcn", TINY_AGCN),
    ("gru", {"hidden_size": 8, "num_layers": 2}),
    ("gru", {"hidden_size": 8, "num_layers": 2, "mode": "bidirectional"}),
    ("hcn", {"channels": 4, "frames": 16}),
])
def test_padding_does_not_change_eval_features(name, kwargs):
    torch.manual_seed(0)
    enc = build_encoder(name, layout="ntu25", num_persons=2, **kwargs).eval()
    x = randn(3, 3, 14, 25, 2, seed=4)
    lengths = torch.tensor([14, 9, 5])
    x = padded(x, lengths.tolist())
    with torch.no_grad():
        ref = torch.stack([enc(x[i : i + 1, :, :n])[0] for i, n in enumerate(lengths.tolist())])
        longer = torch.cat([x, torch.zeros(3, 3, 7, 25, 2)], dim=2)  # 7 more padded frames
        torch.testing.assert_close(enc(x, lengths), ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(enc(longer, lengths), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, kwargs", [("agcn", TINY_AGCN), ("hcn", {"channels": 4, "frames": 16})])
def test_person_pooling_is_symmetric_and_absent_persons_optional(name, kwargs):
    torch.manual_seed(0)
    official = build_encoder(name, layout="ntu25", num_persons=2, **kwargs).eval()
    x = randn(2, 3, 16, 25, 2, seed=5)
    with torch.no_grad():
        for pname, p in official.named_parameters():
            if pname.endswith("bias") and "data_bn" not in pname:  # (the input BN is per person slot)
                # HCN's zero-initialised biases would map an empty slot to 0, hiding the difference.
                p.copy_(randn(*p.shape, seed=6))
        torch.testing.assert_close(official(x), official(x.flip(-1)), rtol=1e-5, atol=1e-6)
        one = x.clone()
        one[..., 1] = 0  # second person absent
        present_only = build_encoder(name, layout="ntu25", num_persons=2, ignore_absent=True, **kwargs).eval()
        present_only.load_state_dict(official.state_dict())
        alone = torch.cat([one[..., :1], one[..., :1]], dim=-1)  # the same person in both slots
        torch.testing.assert_close(present_only(one), official(alone), rtol=1e-5, atol=1e-6)
        assert (official(one) - present_only(one)).abs().max() > 1e-6  # official pools the empty slot too
