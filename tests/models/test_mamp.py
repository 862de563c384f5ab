"""MAMP encoder: token layout and embedding, visible-token path, pooling, resizing, fused attention,
drop path in the shared blocks, layer-wise lr decay scales and the paper's sizes (METHODS.md §8.2-8.8)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from skelssl.engine.optim import block_layer_id, layer_decay_groups
from skelssl.evaluation.heads import Classifier, LinearHead
from skelssl.models import build_encoder
from skelssl.models.mamp import PRESETS, MAMPEncoder, embed_patches
from skelssl.models.transformer_blocks import DropPath, TransformerBlock

torch.set_num_threads(1)


def tiny(**kwargs) -> MAMPEncoder:
    torch.manual_seed(0)  # parameter init only
    args = {"layout": "ntu25", "num_persons": 2, "preset": "tiny", "frames": 16}
    return build_encoder("mamp", **{**args, **kwargs})


def clip(n: int = 2, t: int = 16, m: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, t, 25, m, generator=g)


def test_paper_size_tokens_and_parameters():
    enc = build_encoder("mamp", layout="ntu25", num_persons=2)
    assert enc.num_tokens == 750 and enc.time_tokens == 30 and enc.out_dim == 256 and enc.num_layers == 8
    assert enc.joints_embed.proj.weight.shape == (256, 3, 4, 1)  # official joints_embed.proj.weight
    assert enc.pos_embed.shape == (1, 1, 25, 256) and enc.temp_embed.shape == (1, 30, 1, 256)
    assert enc.blocks[0].attn.qkv.weight.shape == (768, 256) and enc.blocks[0].mlp[0].weight.shape == (1024, 256)
    assert sum(p.numel() for p in enc.parameters()) == pytest.approx(6.34e6, rel=2e-3)  # §8.3: 6.34 M
    assert all(b.pre_norm and b.attn_norm.eps == 1e-5 for b in enc.blocks)
    assert PRESETS["paper"] == {"depth": 8, "dim": 256, "heads": 8, "mlp_ratio": 4}


def test_init_xavier_linears_and_small_embeddings():
    enc = build_encoder("mamp", layout="ntu25", num_persons=2)
    qkv = enc.blocks[3].attn.qkv
    bound = (6.0 / (qkv.in_features + qkv.out_features)) ** 0.5
    w = qkv.weight.detach()
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound
    assert all(float(b.attn.qkv.bias.detach().abs().max()) == 0 for b in enc.blocks)
    assert 0.015 < float(enc.pos_embed.detach().std()) < 0.025 and 0.015 < float(enc.temp_embed.detach().std()) < 0.025


def test_tokens_are_joint_by_four_frames_time_major():
    enc = tiny()
    seq = torch.randn(3, 3, 16, 25)  # (B, C, T, V)
    patches = embed_patches(seq, 4)  # (B, L, C*4)
    assert patches.shape == (3, 4 * 25, 12)
    t, v = 2, 7  # token t*V + v: frames 8..11 of joint 7, ordered (c, f)
    torch.testing.assert_close(patches[1, t * 25 + v], seq[1, :, 8:12, v].reshape(-1))
    # The linear path equals the official strided convolution, flattened time-major.
    conv = F.conv2d(seq, enc.joints_embed.proj.weight, enc.joints_embed.proj.bias, stride=(4, 1))  # (B, D, T/4, V)
    expected = conv.permute(0, 2, 3, 1).reshape(3, 100, enc.dim) + enc.position_table()[None]
    torch.testing.assert_close(enc.embed(seq), expected, rtol=1e-5, atol=1e-5)
    # Positions: the sum of the joint's spatial and the segment's temporal embedding.
    torch.testing.assert_close(enc.position_table()[t * 25 + v], enc.pos_embed[0, 0, v] + enc.temp_embed[0, t, 0])


def test_visible_path_embeds_only_the_kept_tokens():
    enc = tiny()
    seq = torch.randn(2, 3, 16, 25)
    ids = torch.stack([torch.randperm(100)[:9] for _ in range(2)])  # (B, K)
    full = enc.embed(seq)  # (B, L, D)
    vis = enc.embed_visible(seq, ids)  # (B, K, D)
    torch.testing.assert_close(vis, full.gather(1, ids[:, :, None].expand(2, 9, enc.dim)))
    # Attention is permutation-equivariant and there is no CLS token: encoding the kept tokens alone
    # equals a reference that runs the blocks on exactly those tokens, whatever their order.
    enc.eval()
    with torch.no_grad():
        out = enc.encode(vis)
        flipped = enc.encode(vis.flip(1)).flip(1)
    torch.testing.assert_close(out, flipped, rtol=1e-5, atol=1e-5)


def test_features_pool_and_persons():
    enc = tiny().eval()
    x = clip()
    x[1, ..., 1] = 0  # an absent second person is still encoded and enters the mean (official)
    with torch.no_grad():
        feats = enc.forward_features(x)
        pooled = enc(x)
    assert feats.shape == (2, 2, 4, 25, enc.dim)
    torch.testing.assert_close(pooled, feats.mean(dim=(1, 2, 3)))
    with torch.no_grad():
        alone = enc.forward_features(x[1:2, ..., :1])  # persons are independent sequences
    torch.testing.assert_close(feats[1, 0], alone[0, 0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(pooled[1], alone.mean(dim=(1, 2, 3))[0])  # the empty person counts
    joints = tiny(pool="joints").eval()
    with torch.no_grad():
        j = joints(x)
        f = joints.forward_features(x)
    assert joints.out_dim == 25 * joints.dim and j.shape == (2, 25 * joints.dim)
    torch.testing.assert_close(j[0, 7 * joints.dim:8 * joints.dim], f[0, :, :, 7].mean(dim=(0, 1)))


def test_inputs_are_resized_to_the_encoder_length():
    enc = tiny().eval()
    x = clip(t=16)
    with torch.no_grad():
        plain = enc(x)
        same = enc(x, torch.tensor([16, 16]))  # lengths equal to `frames`: the resize is the identity
        short = x[:, :, :11]
        padded = torch.cat([short, 5 * torch.randn(2, 3, 9, 25, 2)], dim=2)  # garbage past the end
        a = enc(short)
        b = enc(padded, torch.tensor([11, 11]))
        longer = enc(torch.randn(2, 3, 37, 25, 2))
    torch.testing.assert_close(plain, same)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert longer.shape == (2, enc.out_dim) and torch.isfinite(longer).all()


def test_fused_attention_equals_the_explicit_softmax():
    enc = tiny().eval()
    x = clip(seed=3)
    with torch.no_grad():
        fused = enc.forward_features(x)
        enc.unfused = True
        explicit = enc.forward_features(x)
    assert enc.unfused and all(b.attn.unfused for b in enc.blocks)
    torch.testing.assert_close(fused, explicit, rtol=1e-4, atol=1e-5)


def test_drop_path_in_the_shared_block():
    torch.manual_seed(0)
    plain = TransformerBlock(16, 2, 8, 32, 0.0, pre_norm=True, qkv_bias=True)
    torch.manual_seed(0)
    dropped = TransformerBlock(16, 2, 8, 32, 0.0, pre_norm=True, qkv_bias=True, drop_path=0.5)
    assert plain.state_dict().keys() == dropped.state_dict().keys()  # no new parameters or buffers
    x = torch.randn(64, 5, 16)
    torch.testing.assert_close(plain(x), dropped.eval()(x))  # eval: the identity
    torch.testing.assert_close(plain.train()(x), plain.eval()(x))  # rate 0 (the default): a no-op in training
    dropped.train()
    torch.manual_seed(1)
    y = dropped(x)
    untouched = (y - x).abs().amax(dim=(1, 2)) == 0  # both branches dropped for these samples
    assert 0 < int(untouched.sum()) < 64  # p(both dropped) = 0.25 per sample
    # A kept branch is scaled by 1 / (1 - p): averaged over many draws the block is unbiased.
    single = DropPath(0.5).train()
    ones = torch.ones(20000, 1)
    assert abs(float(single(ones).mean()) - 1.0) < 0.05 and set(single(ones).unique().tolist()) <= {0.0, 2.0}
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_encoder_drop_path_rises_linearly_and_is_in_the_spec():
    enc = build_encoder("mamp", layout="ntu25", num_persons=2, drop_path=0.3)
    rates = [b.drop_path.p for b in enc.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert rates == pytest.approx([0.3 * i / 7 for i in range(8)])
    assert enc.spec["kwargs"]["drop_path"] == 0.3
    enc.set_drop_path(0.0)
    assert all(b.drop_path.p == 0.0 for b in enc.blocks)


def test_layer_decay_scales_match_the_formula():
    """evaluate.py's rule on MAMP's encoder: scale 0.8^(9 - id), embeddings 0, blocks.i i + 1, top 9."""
    enc = build_encoder("mamp", layout="ntu25", num_persons=2)
    model = Classifier(enc, LinearHead(enc.out_dim, 60), freeze_encoder=False)
    top = enc.num_layers + 1
    layer_of = block_layer_id(top, block_pattern=r"(?:^|\.)blocks\.(\d+)\.")

    def layer_id(name: str) -> int:  # as jobs/evaluate.py wraps it
        return layer_of(name[len("encoder."):]) if name.startswith("encoder.") else top

    groups = layer_decay_groups(model.named_parameters(), top, 0.8, layer_id, 0.05)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    expected_id = {"encoder.joints_embed.proj.weight": 0, "encoder.pos_embed": 0, "encoder.temp_embed": 0,
                   "encoder.blocks.0.attn.qkv.weight": 1, "encoder.blocks.7.mlp.2.bias": 8,
                   "encoder.norm.weight": 9, "head.fc.weight": 9}
    for name, lid in expected_id.items():
        assert scale[id(named[name])] == pytest.approx(0.8 ** (9 - lid)), name
    # §8.7: embeddings 0.134, blocks 0.168 ... 0.800, norm and head 1.0.
    assert round(scale[id(named["encoder.pos_embed"])], 3) == 0.134
    assert [round(scale[id(named[f"encoder.blocks.{i}.attn.proj.weight"])], 3) for i in range(8)] == [
        0.168, 0.210, 0.262, 0.328, 0.410, 0.512, 0.640, 0.800]
    assert decay[id(named["encoder.pos_embed"])] == 0.05 and decay[id(named["encoder.blocks.0.attn.qkv.bias"])] == 0.0
    assert len(scale) == len(named)  # every parameter is in a group


def test_spec_rebuilds_the_same_encoder_and_other_layouts():
    enc = tiny(pool="joints", drop_path=0.1).eval()
    again = build_encoder(enc.spec["name"], **enc.spec["kwargs"]).eval()
    again.load_state_dict(enc.state_dict())
    x = clip()
    with torch.no_grad():
        torch.testing.assert_close(enc(x), again(x))
    k20 = build_encoder("mamp", layout="kinect20", num_persons=1, preset="tiny", frames=40)
    assert k20.num_tokens == 200 and k20(torch.randn(3, 3, 33, 20, 1), torch.tensor([33, 20, 7])).shape == (3, k20.out_dim)


def test_bad_arguments_and_inputs_raise():
    with pytest.raises(ValueError, match="preset"):
        tiny(preset="huge")
    with pytest.raises(ValueError, match="multiple of heads"):
        tiny(dim=30)
    with pytest.raises(ValueError, match="t_patch"):
        tiny(frames=18)
    with pytest.raises(ValueError, match="pool"):
        tiny(pool="max")
    with pytest.raises(ValueError, match="V=25"):
        tiny()(torch.randn(1, 3, 16, 20, 2))
