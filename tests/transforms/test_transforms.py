"""Batched transforms: shapes, purity, determinism, physical invariants, and agreement with per-sample
references written the way the official code does it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from skelssl.core.layouts import KINECT20, NTU25
from skelssl import transforms as T

torch.set_num_threads(1)

N, C, TMAX, V, M = 6, 3, 40, 25, 2
LENGTHS = torch.tensor([40, 33, 20, 64 // 4, 7, 1])


def make_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch: sample 1 has an absent second person, sample 4 an absent first person."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, TMAX, V, M, generator=g)
    x = x * T.frame_mask(LENGTHS, TMAX)[:, None, :, None, None]
    x[1, ..., 1] = 0
    x[4, ..., 0] = 0
    return x, LENGTHS.clone()


def gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Every random transform, called the Augment way: name -> (fn, kwargs).
RANDOM = {
    "crop_resize": (T.crop_resize, {"out_frames": 24, "ratio": (0.3, 1.0), "min_frames": 4}),
    "uniform_sample": (T.uniform_sample, {"out_frames": 24}),
    "time_interpolate": (T.time_interpolate, {}),
    "time_crop": (T.time_crop, {"max_ratio": 0.5}),
    "shear": (T.shear, {"magnitude": 0.5}),
    "rotate": (T.rotate, {"max_angle": 0.5}),
    "scale": (T.scale, {}),
    "joint_offset_noise": (T.joint_offset_noise, {"num_joints": 5, "magnitude": 0.2}),
    "joint_corruption": (T.joint_corruption, {"num_joints": 15}),
    "gaussian_noise": (T.gaussian_noise, {"std": 0.1}),
}


def run(name: str, x: torch.Tensor, lengths: torch.Tensor, seed: int = 1):
    fn, kw = RANDOM[name]
    y, y_len, _ = T.call_transform(fn, x, lengths, gen(seed), kw)
    return y, y_len


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_shape_purity_determinism_and_padding(name):
    x, lengths = make_batch()
    x0, l0 = x.clone(), lengths.clone()
    y, y_len = run(name, x, lengths)
    assert torch.equal(x, x0) and torch.equal(lengths, l0), "input was mutated"
    out_t = 24 if name in ("crop_resize", "uniform_sample") else TMAX
    assert y.shape == (N, C, out_t, V, M) and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    # Same generator state -> same output; another seed -> another output.
    y2, y_len2 = run(name, x, lengths)
    assert torch.equal(y, y2) and torch.equal(y_len, y_len2)
    y3, _ = run(name, x, lengths, seed=2)
    assert not torch.equal(y, y3)
    # Padded frames and absent persons stay zero.
    pad = ~T.frame_mask(y_len, out_t)
    assert (y.permute(0, 2, 1, 3, 4)[pad] == 0).all()
    assert (y[1, ..., 1] == 0).all() and (y[4, ..., 0] == 0).all()
    assert ((y_len >= 1) & (y_len <= out_t)).all()


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_dtype_is_kept(name):
    x, lengths = make_batch()
    y, _ = run(name, x.double(), lengths)
    assert y.dtype == torch.float64
    y, _ = run(name, x.bfloat16(), lengths)
    assert y.dtype == torch.bfloat16


def test_fixed_length_resample_sets_every_length():
    x, lengths = make_batch()
    for fn, kw in ((T.crop_resize, {"out_frames": TMAX, "centre": 1.0}), (T.uniform_sample, {"out_frames": TMAX})):
        out = T.Augment([(fn, kw)])({"x": x, "lengths": lengths}, gen())
        assert out["x"].shape == x.shape and (out["lengths"] == TMAX).all()
        assert (out["x"][5] == x[5, :, :1]).all()  # a 1-frame sample is repeated over all frames


def test_generator_is_required_for_random_transforms():
    x, lengths = make_batch()
    with pytest.raises(TypeError):
        T.shear(x, 0.5, generator=None)
    with pytest.raises(TypeError):
        T.crop_resize(x, lengths, 16, ratio=(0.5, 1.0))
    with pytest.raises(ValueError):
        T.shear(x[0], 0.5, generator=gen())  # not a batch


# --------------------------------------------------------------------------------------- crop-resize


def official_valid_crop_resize(sample: torch.Tensor, start: int, crop_len: int, window: int) -> torch.Tensor:
    """CTR-GCN / MAMP ``valid_crop_resize`` resize step for one ``(C, T, V, M)`` sample."""
    c, _, v, m = sample.shape
    data = sample[:, start : start + crop_len].permute(0, 2, 3, 1).reshape(c * v * m, crop_len)
    data = F.interpolate(data[None, None], size=(c * v * m, window), mode="bilinear", align_corners=False)
    return data[0, 0].view(c, v, m, window).permute(0, 3, 1, 2)


def test_crop_resize_of_linear_ramp_is_exact():
    # x_t = t on every channel: the output must be start + clamp((i + 0.5) L / T' - 0.5, 0, L - 1).
    lengths = torch.tensor([40, 25, 9, 70])
    t = torch.arange(70, dtype=torch.float32)
    x = t.view(1, 1, 70, 1, 1).expand(4, 3, 70, 2, 1).clone() * T.frame_mask(lengths, 70)[:, None, :, None, None]
    out_frames = 16
    start, crop_len = T.crop_windows(lengths, ratio=(0.2, 1.0), min_frames=5, generator=gen(3))
    y = T.crop_resize(x, lengths, out_frames, ratio=(0.2, 1.0), min_frames=5, generator=gen(3))
    assert ((crop_len >= torch.minimum(torch.tensor(5), lengths)) & (crop_len <= lengths)).all()
    assert ((start >= 0) & (start + crop_len <= lengths)).all()
    i = torch.arange(out_frames, dtype=torch.float64)
    for n in range(4):
        L = int(crop_len[n])
        expect = int(start[n]) + ((i + 0.5) * L / out_frames - 0.5).clamp(0, L - 1)
        assert torch.allclose(y[n, 0, :, 0, 0].double(), expect, atol=1e-4), n


def test_crop_resize_equals_per_sample_official_reference():
    x, lengths = make_batch(5)
    for kw in ({"ratio": (0.1, 1.0), "min_frames": 8}, {"centre": 0.9}):
        start, crop_len = T.crop_windows(lengths, generator=gen(7) if "ratio" in kw else None, **kw)
        y = T.crop_resize(x, lengths, 32, generator=gen(7) if "ratio" in kw else None, **kw)
        for n in range(N):
            ref = official_valid_crop_resize(x[n], int(start[n]), int(crop_len[n]), 32)
            assert torch.allclose(y[n], ref, atol=1e-5), (kw, n)


def test_crop_windows_follow_official_rules():
    lengths = torch.tensor([300, 100, 50, 64, 10])
    start, crop_len = T.crop_windows(lengths, centre=0.95)
    bias = torch.tensor([int((1 - 0.95) * int(L) / 2) for L in lengths])
    assert torch.equal(start, bias) and torch.equal(crop_len, lengths - 2 * bias)
    starts, lens = [], []
    g = gen(0)
    for _ in range(200):
        s, c = T.crop_windows(lengths, ratio=(0.5, 1.0), min_frames=64, generator=g)
        starts.append(s)
        lens.append(c)
    s, c = torch.stack(starts), torch.stack(lens)  # (200, 5)
    # clamp(floor(len * p), 64, len): short sequences are taken whole.
    assert (c[:, 2:] == lengths[2:]).all()
    assert (c[:, 0] >= 150).all() and (c[:, 0] <= 300).all() and (c[:, 1] >= 64).all()
    assert (s + c <= lengths).all() and (s >= 0).all()
    assert s[:, 0].max() > 100 and s[:, 0].min() < 20  # the start spreads over the slack


def test_uniform_sample_picks_one_frame_per_segment():
    lengths = torch.tensor([40, 10])
    t = torch.arange(40, dtype=torch.float32)
    x = t.view(1, 1, 40, 1, 1).expand(2, 3, 40, 4, 1) * T.frame_mask(lengths, 40)[:, None, :, None, None]
    y = T.uniform_sample(x, lengths, 8)
    assert torch.equal(y[0, 0, :, 0, 0], torch.tensor([2.0, 7, 12, 17, 22, 27, 32, 37]))  # segment centres
    yr = T.uniform_sample(x, lengths, 8, generator=gen())
    idx = yr[0, 0, :, 0, 0]
    assert ((idx >= torch.arange(8) * 5) & (idx < torch.arange(1, 9) * 5)).all()
    assert (yr[1, 0, :, 0, 0] < 10).all()


# ------------------------------------------------------------------------------------ Hi-TRS temporal


def test_time_interpolate_matches_loop_reference():
    x, lengths = make_batch(2)
    y, y_len = T.time_interpolate(x, lengths, generator=gen(4))
    r = T.uniform((N,), gen(4), "cpu")
    assert torch.equal(y_len, lengths)
    for n in range(N):
        L = int(lengths[n])
        ref = x[n].clone()
        for t in range(L - 1):
            ref[:, t] = x[n, :, t] + r[n] * (x[n, :, t + 1] - x[n, :, t])
        assert torch.allclose(y[n], ref, atol=1e-6)


def test_time_crop_keeps_a_contiguous_window():
    x, lengths = make_batch(3)
    y, y_len = T.time_crop(x, lengths, max_ratio=0.4, generator=gen(5))
    assert (y_len <= lengths).all() and (y_len >= 1).all()
    assert (lengths - y_len <= torch.round(0.4 * lengths.double()).long()).all()
    for n in range(N):
        L, K = int(lengths[n]), int(y_len[n])
        heads = [h for h in range(L - K + 1) if torch.equal(y[n, :, :K], x[n, :, h : h + K])]
        assert heads, f"sample {n}: output is not a window of the input"
    assert (y_len < lengths).any()


# ------------------------------------------------------------------------------------------- spatial


def bone_lengths(x: torch.Tensor, layout=NTU25) -> torch.Tensor:
    return T.bone(x, layout).norm(dim=1)  # (N, T, V, M)


def test_rotation_keeps_bone_lengths_and_is_a_rotation():
    x, lengths = make_batch()
    y = T.rotate(x, 0.8, generator=gen())
    assert torch.allclose(bone_lengths(x), bone_lengths(y), atol=1e-5)
    assert not torch.allclose(x, y)
    r = T.rotation_matrix(T.uniform((16, 3), gen(), "cpu", -3.0, 3.0))
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(16, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(r), torch.ones(16), atol=1e-6)
    # Rz Ry Rx with CTR-GCN's element layout: a rotation about x alone.
    rx = T.rotation_matrix(torch.tensor([[0.3, 0.0, 0.0]]))[0]
    c, s = math.cos(0.3), math.sin(0.3)
    assert torch.allclose(rx, torch.tensor([[1, 0, 0], [0, c, s], [0, -s, c]], dtype=torch.float32), atol=1e-6)


def test_shear_is_unit_diagonal_linear_map_per_sample():
    x, lengths = make_batch()
    y = T.shear(x, 0.5, generator=gen())
    for n in range(N):
        pts = x[n].reshape(C, -1).T  # (P, 3)
        keep = pts.abs().sum(1) > 0
        s = torch.linalg.lstsq(pts[keep].double(), y[n].reshape(C, -1).T[keep].double()).solution.T  # y = S x
        assert torch.allclose(s.diagonal(), torch.ones(3, dtype=torch.float64), atol=1e-5)
        off = s[~torch.eye(3, dtype=torch.bool)]
        assert (off.abs() <= 0.5 + 1e-5).all() and (off.abs() > 0).all()


def test_scale_joint_noise_and_corruption_invariants():
    x, lengths = make_batch()
    y = T.scale(x, 0.8, 1.2, generator=gen())
    factor = T.uniform((N,), gen(), "cpu", 0.8, 1.2)  # the same draw
    assert ((factor > 0.8) & (factor < 1.2)).all()
    assert torch.allclose(y, x * factor.view(N, 1, 1, 1, 1), atol=1e-6)

    y = T.joint_offset_noise(x, lengths, num_joints=5, magnitude=0.2, generator=gen())
    d = y - x
    for n in range(N):
        L = int(lengths[n])
        for m in range(M):
            if x[n, ..., m].abs().sum() == 0:
                assert (d[n, ..., m] == 0).all()
                continue
            dm = d[n, :, :L, :, m]  # (C, L, V)
            assert torch.allclose(dm, dm[:, :1].expand_as(dm), atol=1e-5)  # constant over frames
            moved = dm[:, 0].abs().sum(0) > 0
            assert int(moved.sum()) == 5 and (dm.abs() <= 0.2 + 1e-5).all()

    y = T.joint_corruption(x, 15, generator=gen())
    chosen = T.choose_joints(N, V, 15, gen(), "cpu")  # the first draw of joint_corruption
    assert (chosen.sum(1) == 15).all()
    modes = set()
    for n in range(N):
        assert torch.equal(y[n][:, :, ~chosen[n]], x[n][:, :, ~chosen[n]])
        xc, yc = x[n][:, :, chosen[n]].reshape(C, -1), y[n][:, :, chosen[n]].reshape(C, -1)  # (C, P)
        if (yc == 0).all():
            modes.add("zero")
        else:  # one C x C matrix with entries in [-1, 1] for every frame, joint and person
            a = torch.linalg.lstsq(xc.T.double(), yc.T.double()).solution.T
            assert torch.allclose(a.float() @ xc, yc, atol=1e-4) and (a.abs() <= 1 + 1e-6).all()
            modes.add("matrix")
    assert modes == {"zero", "matrix"}


def test_flip_twice_is_identity_and_swaps_sides():
    x, _ = make_batch()
    y = T.flip(x, NTU25)
    assert torch.equal(T.flip(y, NTU25), x)
    left, right = NTU25.left_right[0]
    assert torch.equal(y[:, 0, :, right], -x[:, 0, :, left]) and torch.equal(y[:, 1:, :, right], x[:, 1:, :, left])
    assert torch.equal(y[:, :, :, NTU25.center], x[:, :, :, NTU25.center] * torch.tensor([-1.0, 1, 1]).view(1, 3, 1, 1))
    # Mirroring maps the bone of joint v to the bone of its mirror joint, with the same length.
    assert torch.allclose(bone_lengths(x)[:, :, list(NTU25.flip_index)], bone_lengths(y), atol=1e-6)
    with pytest.raises(ValueError):
        T.flip(x, KINECT20)


def test_gaussian_noise_respects_padding():
    x, lengths = make_batch()
    y = T.gaussian_noise(x, lengths, std=0.5, generator=gen())
    d = (y - x)[0, :, : int(lengths[0])]
    assert 0.4 < float(d.std()) < 0.6


# ------------------------------------------------------------------------------------------- streams


def test_streams():
    x, lengths = make_batch()
    b = T.bone(x, NTU25)
    assert (b[:, :, :, NTU25.center] == 0).all()
    assert torch.equal(b[:, :, :, 3], x[:, :, :, 3] - x[:, :, :, 2])  # head minus neck
    mo = T.motion(x, lengths)
    assert (mo[:, :, 0] == 0).all()
    for n in range(N):
        L = int(lengths[n])
        assert torch.allclose(x[n, :, :1] + mo[n, :, :L].cumsum(1), x[n, :, :L], atol=1e-5)
        assert (mo[n, :, L:] == 0).all()
    assert torch.equal(T.to_stream("joint", x, NTU25), x)
    assert torch.equal(T.to_stream("bone_motion", x, NTU25, lengths), T.motion(b, lengths))
    with pytest.raises(ValueError):
        T.to_stream("velocity", x, NTU25)


# ---------------------------------------------------------------------------------------- composition


def test_random_apply_selects_per_sample():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, 4, 5, 1, generator=g)
    assert torch.equal(T.random_apply(T.scale, 0.0, x, generator=gen()), x)
    x25 = torch.randn(200, 3, 4, 25, 1, generator=g)
    assert torch.equal(T.random_apply(T.flip, 1.0, x25, generator=gen(), layout=NTU25), T.flip(x25, NTU25))
    y = T.random_apply(T.scale, 0.3, x, generator=gen(), low=2.0, high=3.0)
    same = (y == x).flatten(1).all(1)
    assert 30 < int((~same).sum()) < 90  # about 60 of 200 scaled
    assert (((y / x).flatten(1)[~same] >= 2.0) & ((y / x).flatten(1)[~same] <= 3.0)).all()
    # A transform returning lengths keeps doing so, with per-sample selection of the lengths.
    xb, lengths = make_batch()
    yb, yl = T.random_apply(T.time_crop, 0.5, xb, lengths, generator=gen(), max_ratio=0.5)
    assert yb.shape == xb.shape and yl.shape == lengths.shape and (yl <= lengths).all()


def test_random_choice_and_augment():
    x, lengths = make_batch()
    choices = [(T.scale, {"low": 2.0, "high": 2.0}), (T.scale, {"low": -1.0, "high": -1.0})]
    y, yl = T.random_choice(x, lengths, choices=choices, generator=gen())
    factor = torch.stack([y[n][x[n] != 0][0] / x[n][x[n] != 0][0] for n in range(N)])
    assert set(torch.round(factor).tolist()) <= {2.0, -1.0} and torch.equal(yl, lengths)

    aug = T.Augment([
        (T.crop_resize, {"out_frames": 16, "ratio": (0.5, 1.0), "min_frames": 4}),
        (T.shear, {"magnitude": 0.5}),
        (T.time_crop, {"max_ratio": 0.3}, 0.5),
        (T.flip, {"layout": NTU25}, 0.5),
    ])
    batch = {"x": x, "lengths": lengths, "label": torch.arange(N)}
    v1 = aug(batch, gen(9))
    v2 = aug(batch, gen(9))
    assert v1["x"].shape == (N, C, 16, V, M) and torch.equal(v1["x"], v2["x"])
    assert torch.equal(v1["lengths"], v2["lengths"]) and (v1["lengths"] <= 16).all()
    assert v1["label"] is batch["label"] and batch["x"] is x and torch.equal(batch["lengths"], LENGTHS)
    assert not torch.equal(aug(batch, gen(10))["x"], v1["x"])
    with pytest.raises(ValueError):
        T.Augment([(T.shear, {}, 1.5)])
