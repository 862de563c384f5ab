"""Motion-Transformer encoder: the reconstruction's pre-processing (min-max scaling, stride sampling,
token layout), post-LN BERT blocks, fused vs explicit attention, and padding invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skelssl.models import build_encoder
from skelssl.models.motion_transformer import PRESETS, MotionTransformer, minmax_normalize, stride_indices

torch.set_num_threads(1)


def tiny(**kwargs) -> MotionTransformer:
    torch.manual_seed(0)  # parameter init only
    args = {"layout": "ntu25", "num_persons": 2, "preset": "tiny", "frames": 24}
    return build_encoder("motion_transformer", **{**args, **kwargs})


def sequence(t: int, m: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, t, 25, m, generator=g) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1, 1) + 3.0


def official_normalize(video: np.ndarray) -> np.ndarray:
    """``normalize_video`` of create_training_data_for_motion.py, re-typed as a loop: video ``(T, V*3)``."""
    out = np.zeros_like(video)
    for c in range(3):
        cols = video[:, c::3]
        lo, hi = cols.min(), cols.max()
        out[:, c::3] = 2 * (cols - lo) / (hi - lo) - 1
    return out


def test_minmax_matches_the_official_formula_on_real_frames():
    x = sequence(40)
    lengths = torch.tensor([31])
    x[:, :, 31:] = 0  # padding
    y = minmax_normalize(x, lengths)
    video = x[0, :, :31, :, 0].permute(1, 2, 0).reshape(31, 75).numpy()  # (T, V*C) of person 0
    # Both persons are present, so the range spans both; compare on a one-person batch.
    y1 = minmax_normalize(x[..., :1], lengths)
    got = y1[0, :, :31, :, 0].permute(1, 2, 0).reshape(31, 75).numpy()
    np.testing.assert_allclose(got, official_normalize(video), atol=1e-5)
    for c in range(3):  # every coordinate spans exactly [-1, 1] over real frames
        real = y[0, c, :31]
        assert float(real.min()) == pytest.approx(-1.0, abs=1e-6) and float(real.max()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(y[:, :, 31:], torch.zeros_like(y[:, :, 31:]))  # padding stays zero


def test_minmax_degenerate_and_absent_inputs_give_zeros_not_nan():
    x = sequence(10)
    x[:, 2] = 5.0  # constant z: no range
    x[..., 1] = 0  # absent second person
    y = minmax_normalize(x)
    assert torch.isfinite(y).all()
    assert torch.equal(y[:, 2], torch.zeros_like(y[:, 2])) and torch.equal(y[..., 1], torch.zeros_like(y[..., 1]))
    assert torch.isfinite(minmax_normalize(torch.zeros(2, 3, 5, 25, 2))).all()


def test_stride_sampling_picks_the_official_frames():
    lengths = torch.tensor([300, 200, 450, 40, 150])
    idx, new = stride_indices(lengths, 150, "loop")
    assert idx.shape == (5, 150) and torch.equal(new, torch.full((5,), 150))
    np.testing.assert_array_equal(idx[0].numpy(), np.arange(300)[::2][:150])  # stride floor(300/150) = 2
    np.testing.assert_array_equal(idx[1].numpy(), np.arange(150))  # stride 1: the first 150 frames
    np.testing.assert_array_equal(idx[2].numpy(), np.arange(450)[::3][:150])
    np.testing.assert_array_equal(idx[3].numpy(), np.arange(150) % 40)  # looped, as the 2s-AGCN padding
    np.testing.assert_array_equal(idx[4].numpy(), np.arange(150))
    idx, new = stride_indices(lengths, 150, "pad")
    assert new.tolist() == [150, 150, 150, 40, 150]
    np.testing.assert_array_equal(idx[3, :40].numpy(), np.arange(40))


def test_prepare_token_layout_normalises_before_sampling():
    enc = tiny(frames=10, persons="all")
    x = sequence(25)
    tokens, lens = enc.prepare(x, torch.tensor([25]))
    assert tokens.shape == (1, 10, 2 * 25 * 3) and lens is None
    y = minmax_normalize(x)  # over all 25 frames, then stride 2
    expected = y[0, :, 2 * 4].permute(2, 1, 0).reshape(-1)  # frame 8 = token 4, (person, joint, coordinate)
    torch.testing.assert_close(tokens[0, 4], expected)
    first = tiny(frames=10).prepare(x, None)[0]
    assert first.shape == (1, 10, 75)
    torch.testing.assert_close(first[0, 4], minmax_normalize(x[..., :1])[0, :, 8, :, 0].T.reshape(-1))


@pytest.mark.parametrize("opts", [{}, {"short": "pad", "frames": 40}, {"sampling": "none"}, {"persons": "all"}])
def test_padded_frames_do_not_change_the_pooled_feature(opts):
    enc = tiny(**opts).eval()
    short = sequence(17, seed=1)
    padded = torch.cat([short, 7.0 * torch.randn(1, 3, 13, 25, 2)], dim=2)  # garbage beyond the end
    with torch.no_grad():
        a = enc(short, torch.tensor([17]))
        b = enc(padded, torch.tensor([17]))
        c = enc.pool(enc.forward_features(padded, torch.tensor([17])), torch.tensor([17]))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b, c)


def test_fused_attention_equals_the_explicit_softmax():
    enc = tiny(short="pad", frames=30).eval()
    x = torch.cat([sequence(30, seed=2), sequence(30, seed=3)])
    lengths = torch.tensor([30, 11])
    with torch.no_grad():
        fused = enc.forward_features(x, lengths)
        enc.unfused = True
        explicit = enc.forward_features(x, lengths)
    assert enc.unfused
    torch.testing.assert_close(fused[0], explicit[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused[1, :11], explicit[1, :11], rtol=1e-4, atol=1e-5)


def test_blocks_are_post_ln_and_outputs_are_layer_normalised():
    enc = tiny().eval()
    assert all(not block.pre_norm for block in enc.blocks)
    with torch.no_grad():
        h = enc.forward_features(sequence(30), None)  # (1, 24, hidden): last op is a LayerNorm (1/0 at init)
    torch.testing.assert_close(h.mean(-1), torch.zeros(1, 24), atol=1e-5, rtol=0)
    torch.testing.assert_close(h.var(-1, unbiased=False), torch.ones(1, 24), atol=1e-3, rtol=0)


def test_init_embedding_and_presets():
    enc = tiny()
    assert enc.token_embed.bias is None and enc.token_embed.weight.shape == (32, 75)
    w = torch.cat([p.detach().flatten() for n, p in enc.named_parameters() if p.ndim == 2])
    assert float(w.abs().max()) <= 0.04 + 1e-7 and 0.01 < float(w.std()) < 0.02  # truncated N(0, 0.02) at 2 std
    assert PRESETS["L4"]["layers"] == 4 and PRESETS["L8"]["layers"] == 8 and PRESETS["L8"]["hidden"] == 2048
    custom = tiny(layers=3, hidden=48, heads=6)
    assert len(custom.blocks) == 3 and custom.out_dim == 48
    assert custom.spec["kwargs"]["hidden"] == 48


def test_spec_rebuilds_the_same_encoder():
    enc = tiny(persons="all", short="pad").eval()
    again = build_encoder(enc.spec["name"], **enc.spec["kwargs"]).eval()
    again.load_state_dict(enc.state_dict())
    x = sequence(20)
    with torch.no_grad():
        torch.testing.assert_close(enc(x, torch.tensor([20])), again(x, torch.tensor([20])))


def test_bad_arguments_and_inputs_raise():
    with pytest.raises(ValueError, match="preset"):
        tiny(preset="L12")
    with pytest.raises(ValueError, match="multiple of heads"):
        tiny(hidden=30)
    with pytest.raises(ValueError, match="persons"):
        tiny(persons="both")
    with pytest.raises(ValueError, match="M=2"):
        tiny(persons="all")(sequence(10, m=1))
    with pytest.raises(ValueError, match="max_positions"):
        tiny(sampling="none", max_positions=16)(sequence(20))
    assert tiny()(sequence(10, m=1)).shape == (1, 32)  # persons="first" takes any M
