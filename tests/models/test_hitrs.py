"""Hi-TRS encoder: windowing against the official loop, the clip mask, shapes, padding, persons, streams,
position tables and the paper-size parameter count."""

from __future__ import annotations

import math

import pytest
import torch

from skelssl.core.layouts import NTU25
from skelssl.models import build_encoder
from skelssl.models.hitrs import PRESETS, HiTRS, clip_attention_mask
from skelssl.models.transformer_blocks import TransformerBlock, sinusoid_table, sinusoid_table_2d
from skelssl.models.windowing import gather_windows, num_windows, pad_frames, pad_size, window_indices
from skelssl.transforms import bone, motion

torch.set_num_threads(1)


# -- reference implementations, written plainly ---------------------------------------------------


def reference_windows(frame_num: int, w_size: int, stride: int, dilate: int) -> list[list[int]]:
    """The official ``slid_window`` loop on ``frame_num`` padded frames (pre-training version)."""
    begin, result, idx_list = 0, [], list(range(frame_num))
    while True:
        tmp = idx_list[begin : begin + w_size * dilate][::dilate]
        if len(tmp) < w_size:
            tmp = tmp + [idx_list[-1]] * (w_size - len(tmp))
        result.append(tmp)
        begin += stride
        if tmp[-1] >= frame_num - w_size // 2 * dilate - 1 and begin + (w_size - 1) * dilate > frame_num - 1:
            return result


def reference_pe_2d(d_model: int, height: int, width: int) -> torch.Tensor:
    """Official ``PE_2D`` (height = frames, width = joints), as (height, width, d)."""
    pe = torch.zeros(d_model, height, width)
    half = d_model // 2
    div = torch.exp(torch.arange(0.0, half, 2) * -(math.log(10000.0) / half))
    pos_w = torch.arange(0.0, width)[:, None]
    pos_h = torch.arange(0.0, height)[:, None]
    pe[0:half:2] = torch.sin(pos_w * div).T[:, None, :].repeat(1, height, 1)
    pe[1:half:2] = torch.cos(pos_w * div).T[:, None, :].repeat(1, height, 1)
    pe[half::2] = torch.sin(pos_h * div).T[:, :, None].repeat(1, 1, width)
    pe[half + 1 :: 2] = torch.cos(pos_h * div).T[:, :, None].repeat(1, 1, width)
    return pe.permute(1, 2, 0)


def tiny(**kwargs) -> HiTRS:
    torch.manual_seed(0)
    return build_encoder("hitrs", layout="ntu25", preset="tiny", **kwargs)


def batch(n: int, t: int, m: int, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, t, 25, m, generator=g).cumsum(dim=2) * 0.05
    lens = torch.tensor(lengths)
    return x * (torch.arange(t)[None, :] < lens[:, None])[:, None, :, None, None], lens


# -- windowing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("t,expected", [(19, 3), (64, 10), (150, 22), (300, 43)])
def test_window_counts_of_the_paper(t, expected):
    assert len(reference_windows(t + 12, 7, 7, 2)) == expected
    assert int(num_windows(torch.tensor([t]))[0]) == expected


@pytest.mark.parametrize("w,s,d", [(7, 7, 2), (7, 1, 2), (5, 5, 1), (5, 3, 3), (4, 2, 2), (3, 1, 1)])
def test_window_indices_equal_the_official_loop(w, s, d):
    lengths = list(range(1, 90)) + [150, 299, 300]
    pad = pad_size(w, d)
    index, valid = window_indices(torch.tensor(lengths), w, s, d)
    for row, t in enumerate(lengths):
        ref = reference_windows(t + 2 * pad, w, s, d)
        n = int(valid[row].sum())
        assert n == len(ref), (t, n, len(ref))
        assert valid[row, :n].all() and not valid[row, n:].any()
        assert index[row, :n].tolist() == ref, t
        assert int(index[row].max()) <= t + 2 * pad - 1  # padded slots stay gatherable


def test_gather_windows_equals_per_sample_indexing():
    x, lens = batch(4, 40, 1, [40, 19, 33, 7])
    seq = x[..., 0].permute(0, 2, 3, 1)  # (N, T, V, C)
    frames = pad_frames(seq, 6)
    assert frames.shape == (4, 52, 25, 3)
    index, valid = window_indices(lens)
    out = gather_windows(frames, index)
    for b in range(4):
        single = torch.nn.functional.pad(seq[b, : int(lens[b])], (0, 0, 0, 0, 6, 6))
        for k, win in enumerate(reference_windows(int(lens[b]) + 12, 7, 7, 2)):
            assert torch.equal(out[b, k], single[win])


# -- attention parts ------------------------------------------------------------------------------


def test_clip_mask_blocks_exactly_the_same_frame_pairs():
    w, v = 7, 25
    allowed = clip_attention_mask(w, v)
    assert allowed.shape == (w * v + 1, w * v + 1)
    for q in range(w * v + 1):
        for k in range(w * v + 1):
            same_frame_other_joint = q < w * v and k < w * v and q // v == k // v and q != k
            assert bool(allowed[q, k]) == (not same_frame_other_joint)


def test_clip_level_attention_ignores_blocked_keys():
    enc = tiny().eval()
    block = enc.clip_blocks[0]
    torch.manual_seed(1)
    h = torch.randn(2, 7 * 25 + 1, enc.clip_dim)
    out = block(h, enc.clip_mask)
    h2 = h.clone()
    h2[:, 3] = 5.0 * torch.randn(2, enc.clip_dim)  # frame 0, joint 3 (not a constant shift: LayerNorm removes those)
    out2 = block(h2, enc.clip_mask)
    assert torch.allclose(out[:, [0, 1, 2, 4, 24]], out2[:, [0, 1, 2, 4, 24]], atol=1e-5)  # same frame: blind
    assert not torch.allclose(out[:, 25], out2[:, 25])  # another frame sees it
    assert not torch.allclose(out[:, -1], out2[:, -1])  # the clip token sees everything


@pytest.mark.parametrize("pre_norm", [True, False])
def test_fused_and_unfused_attention_agree(pre_norm):
    torch.manual_seed(0)
    block = TransformerBlock(32, 4, 16, 24, 0.0, pre_norm=pre_norm).eval()
    x = torch.randn(3, 9, 32)
    valid = torch.tensor([[True] * 9, [True] * 5 + [False] * 4, [True] * 2 + [False] * 7])
    masks = [None, valid[:, None, None, :], torch.where(valid, 0.0, -1e4)[:, None, None, :]]
    for mask in masks:
        fused = block(x, mask)
        block.unfused = True
        explicit = block(x, mask)
        block.unfused = False
        assert torch.allclose(fused, explicit, atol=1e-5)


def test_unfused_encoder_gives_the_same_features():
    fused = tiny().eval()
    explicit = tiny(fused_attention=False).eval()
    explicit.load_state_dict(fused.state_dict())
    x, lens = batch(2, 30, 2, [30, 21])
    with torch.no_grad():
        assert torch.allclose(fused.forward_features(x, lens), explicit.forward_features(x, lens), atol=1e-5)


def test_position_tables_are_the_official_sinusoids():
    assert torch.allclose(sinusoid_table_2d(7, 25, 256), reference_pe_2d(256, 7, 25), atol=1e-6)
    pe = sinusoid_table(200, 512)
    p, i = 13, 10
    assert math.isclose(pe[p, 2 * i], math.sin(p / 10000 ** (2 * i / 512)), abs_tol=1e-6)
    assert math.isclose(pe[p, 2 * i + 1], math.cos(p / 10000 ** (2 * i / 512)), abs_tol=1e-6)
    enc = tiny()
    assert torch.equal(enc.clip_pe.data, sinusoid_table_2d(7, 25, enc.clip_dim))
    assert enc.video_pe.requires_grad and enc.video_pe.shape == (200, enc.video_dim)


# -- the encoder ----------------------------------------------------------------------------------


def test_paper_preset_has_the_official_parameter_count():
    enc = build_encoder("hitrs", layout="ntu25", preset="paper")
    levels = {lv: sum(p.numel() for n, p in enc.named_parameters() if n.startswith(lv)) for lv in ("frame", "clip", "video")}
    assert levels == {"frame": 891_008, "clip": 1_851_776, "video": 4_175_104}  # METHODS.md §2.2
    assert sum(p.numel() for p in enc.parameters()) == 6_917_888
    assert enc.out_dim == 512 and PRESETS["paper"] == {"dim": 128, "heads": 8, "head_dim": 64, "layers": 3}


def test_explicit_sizes_override_the_preset():
    enc = build_encoder("hitrs", layout="kinect20", preset="tiny", dim=8, layers=2)
    assert enc.out_dim == 32 and len(enc.clip_blocks) == 2 and enc.frame_pe.shape == (20, 8)
    assert enc.spec["kwargs"]["dim"] == 8
    with pytest.raises(ValueError):
        build_encoder("hitrs", layout="ntu25", preset="huge")


@pytest.mark.parametrize("m", [1, 2])
def test_shapes_for_persons_and_variable_lengths(m):
    enc = tiny().eval()
    x, lens = batch(3, 45, m, [45, 19, 8])
    feats = enc.forward_features(x, lens)
    assert feats.shape == (3, m, 7 + 1, enc.out_dim)  # ceil(45 / 7) = 7 clips, then the video token
    assert torch.all(feats[1, :, 3:7] == 0) and torch.all(feats[2, :, 2:7] == 0)  # padded clips
    assert enc(x, lens).shape == (3, enc.out_dim)
    clips, valid = enc.clip_features(x, lens)
    assert clips.shape == (3, 7, enc.out_dim)
    assert valid.sum(dim=1).tolist() == [7, 3, 2]


def test_padding_does_not_change_a_sample():
    enc = tiny().eval()
    x, lens = batch(3, 60, 2, [60, 23, 40])
    with torch.no_grad():
        together = enc(x, lens)
        alone = enc(x[1:2, :, :23], lens[1:2])
    assert torch.allclose(together[1], alone[0], atol=1e-5)


def test_batched_forward_equals_a_per_window_reference():
    """The official downstream model encodes the gathered frames of each window separately."""
    enc = tiny().eval()
    x, lens = batch(2, 30, 1, [30, 16])
    with torch.no_grad():
        out = enc(x, lens)
        for b in range(2):
            t = int(lens[b])
            seq = torch.nn.functional.pad(x[b, :, :t, :, 0].permute(1, 2, 0), (0, 0, 0, 0, 6, 6))  # (T+12, V, C)
            windows = torch.stack([seq[w] for w in reference_windows(t + 12, 7, 7, 2)])  # (K, 7, V, C)
            s_x = enc.encode_frames(windows)  # (K, 7, V, d)
            clips = enc.encode_clips(s_x)[None]  # (1, K, 2d)
            vx, _ = enc.encode_video(clips, torch.ones(1, clips.shape[1], dtype=torch.bool))
            assert torch.allclose(out[b], vx[0], atol=1e-5)


def test_absent_persons_ignored_or_averaged():
    x, lens = batch(2, 30, 2, [30, 30])
    x[0, ..., 1] = 0  # sample 0 has one actor
    ignore = tiny(absent_persons="ignore").eval()
    average = tiny().eval()  # the default is the official behaviour
    assert average.absent_persons == "average"
    with torch.no_grad():
        feats = ignore.forward_features(x, lens)
        assert torch.all(feats[0, 1] == 0) and feats[0, 0].abs().sum() > 0
        alone = ignore(x[:1, ..., :1], lens[:1])
        assert torch.allclose(ignore(x, lens)[0], alone[0], atol=1e-5)
        seq = x[:1, ..., 1].permute(0, 2, 3, 1)  # the all-zero body, encoded as the official code does
        _, zero_vx, _ = average.encode_sequences(seq, lens[:1])
        assert torch.allclose(average(x, lens)[0], (alone[0] + zero_vx[0]) / 2, atol=1e-5)
        assert torch.allclose(average(x, lens)[1], ignore(x, lens)[1], atol=1e-5)  # two actors: no difference
        assert torch.all(average.forward_features(x, lens)[0, 1, -1] != 0)  # the absent body is encoded


def test_absent_persons_option_is_checked():
    assert HiTRS(layout="ntu25", preset="tiny").absent_persons == "average"
    with pytest.raises(ValueError, match="absent_persons"):
        tiny(absent_persons="skip")


@pytest.mark.parametrize("stream", ["bone", "motion"])
def test_stream_is_applied_inside_forward(stream):
    x, lens = batch(2, 25, 2, [25, 20])
    joint_enc = tiny().eval()
    stream_enc = tiny(stream=stream).eval()
    converted = bone(x, NTU25) if stream == "bone" else motion(x, lens)
    with torch.no_grad():
        assert torch.allclose(stream_enc(x, lens), joint_enc(converted, lens), atol=1e-5)
    assert stream_enc.spec["kwargs"]["stream"] == stream


def test_bad_input_is_refused():
    enc = tiny()
    with pytest.raises(ValueError):
        enc(torch.zeros(2, 3, 10, 20, 1))  # V = 20 for an ntu25 encoder
    with pytest.raises(ValueError, match="max_clips"):
        build_encoder("hitrs", layout="ntu25", preset="tiny", max_clips=3)(torch.randn(1, 3, 30, 25, 1))
