"""A pose estimator's score is a channel, never a coordinate: every spatial transform moves the leading
``coords`` channels only and returns the score bit for bit; on 2-D coordinates the shear and rotation
are the 2-D ones."""

from __future__ import annotations

import pytest
import torch

import skelssl.transforms as T
from skelssl.core.layouts import get_layout

COCO = get_layout("coco17")


def batch_2d_score(n: int = 6, t: int = 12, persons: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 3, T, 17, M)``: x, y in [-1, 1], score in (0, 1); padded frames and the second person of
    every other sample all zero."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, t, 17, persons, generator=g) * 2 - 1
    score = torch.rand(n, 1, t, 17, persons, generator=g) * 0.8 + 0.1
    x = torch.cat([xy, score], dim=1)
    lengths = torch.randint(t // 2, t + 1, (n,), generator=g)
    for i, length in enumerate(lengths.tolist()):
        x[i, :, length:] = 0
    x[1::2, ..., 1:] = 0
    return x, lengths


def gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


SPATIAL = {
    "shear": lambda x, lens, g: T.shear(x, 0.5, generator=g, coords=2),
    "rotate": lambda x, lens, g: T.rotate(x, 0.3, generator=g, coords=2),
    "scale": lambda x, lens, g: T.scale(x, 0.8, 1.2, generator=g, coords=2),
    "joint_offset_noise": lambda x, lens, g: T.joint_offset_noise(x, lens, num_joints=5, magnitude=0.2, generator=g, coords=2),
    "joint_corruption": lambda x, lens, g: T.joint_corruption(x, 10, generator=g, coords=2),
    "gaussian_noise": lambda x, lens, g: T.gaussian_noise(x, lens, std=0.05, generator=g, coords=2),
}


def test_a_shear_on_x_y_score_leaves_the_score_bit_identical_and_shears_x_y_in_2d():
    x, _ = batch_2d_score()
    before = x.clone()
    y = T.shear(x, 0.5, generator=gen(), coords=2)
    assert torch.equal(x, before)  # the input is not touched
    assert torch.equal(y[:, 2], x[:, 2])  # the score, bit for bit
    assert not torch.allclose(y[:, :2], x[:, :2])  # the coordinates did move
    # It is the 2 x 2 shear of (x, y) that the same draws give on a store without a score.
    assert torch.equal(y[:, :2], T.shear(x[:, :2].contiguous(), 0.5, generator=gen()))
    # and the score never leaked into the coordinates: changing it changes no coordinate
    x2 = x.clone()
    x2[:, 2] = torch.where(x[:, 2] != 0, 1.0 - x[:, 2], x[:, 2])
    assert torch.equal(T.shear(x2, 0.5, generator=gen(), coords=2)[:, :2], y[:, :2])


@pytest.mark.parametrize("name", sorted(SPATIAL))
def test_every_spatial_transform_carries_the_score_unchanged(name):
    x, lengths = batch_2d_score(seed=3)
    y = SPATIAL[name](x, lengths, gen(5))
    assert y.shape == x.shape
    assert torch.equal(y[:, 2], x[:, 2]), name
    assert not torch.equal(y[:, :2], x[:, :2]), f"{name} moved no coordinate"
    # padded frames and absent persons stay zero
    for i, length in enumerate(lengths.tolist()):
        assert not y[i, :, length:].any()
    assert not y[1::2, ..., 1:].any()


def test_flip_moves_a_joints_score_with_it_and_never_negates_it():
    x, _ = batch_2d_score()
    y = T.flip(x, COCO)
    perm = list(COCO.flip_index)
    assert torch.equal(y[:, 2], x[:, 2][:, :, perm])
    assert torch.equal(y[:, 0], -x[:, 0][:, :, perm]) and torch.equal(y[:, 1], x[:, 1][:, :, perm])
    assert torch.equal(T.flip(y, COCO), x)


def test_2d_rotation_keeps_distances_in_the_image_plane_and_3d_with_score_keeps_its_score():
    x, _ = batch_2d_score()
    y = T.rotate(x, 0.5, generator=gen(), coords=2)
    bone = lambda z: (z[:, :2, :, 5] - z[:, :2, :, 11]).norm(dim=1)  # a shoulder to a hip
    torch.testing.assert_close(bone(y), bone(x))
    # x, y, z, score: the 3-D rotation of the first three, the score untouched
    g = torch.Generator().manual_seed(0)
    xyzs = torch.cat([torch.randn(4, 3, 8, 17, 1, generator=g), torch.rand(4, 1, 8, 17, 1, generator=g)], 1)
    r = T.rotate(xyzs, 0.3, generator=gen(), coords=3)
    assert torch.equal(r[:, 3], xyzs[:, 3])
    assert torch.equal(r[:, :3], T.rotate(xyzs[:, :3].contiguous(), 0.3, generator=gen()))
    torch.testing.assert_close(r[:, :3].norm(dim=1), xyzs[:, :3].norm(dim=1))


def test_default_moves_every_channel_as_before_and_bad_coords_are_refused():
    x, lengths = batch_2d_score()
    # coords=None is every channel: the same as naming them all
    assert torch.equal(T.shear(x, 0.5, generator=gen()), T.shear(x, 0.5, generator=gen(), coords=3))
    assert torch.equal(T.scale(x, generator=gen()), T.scale(x, generator=gen(), coords=3))
    with pytest.raises(ValueError, match="coords must be between 1 and C = 3"):
        T.shear(x, 0.5, generator=gen(), coords=4)
    with pytest.raises(ValueError, match="rotate needs 2-D or 3-D coordinates"):
        T.rotate(x[:, :1].contiguous(), 0.3, generator=gen())


def test_hitrs_augment_and_isc_views_keep_the_score():
    from skelssl.methods.hitrs_tasks import hitrs_augment

    x, lengths = batch_2d_score(n=16, t=24, persons=1, seed=4)
    y, new_lengths = hitrs_augment(x, lengths, gen(2), p=1.0, coords=2)
    # The temporal half (interpolation, crop) resamples frames; resampling x alone with the same draws
    # gives the same frames, so the spatial half moved x, y only.
    assert y.shape == x.shape
    # the score of each output frame is a resampling of the input score: it stays within its range
    real = torch.arange(y.shape[2])[None] < new_lengths[:, None]  # (N, T)
    s = y[:, 2][real]  # (real frames, V, M)
    assert s.min() >= 0.1 - 1e-6 and s.max() <= 0.9 + 1e-6
    # with the temporal ops made identity-like (no crop), scale/shear/noise must leave the score exact
    y2, _ = T.random_choice(x, lengths, choices=[(T.scale, {"coords": 2}), (T.shear, {"magnitude": 0.5, "coords": 2}),
                                                (T.joint_offset_noise, {"coords": 2})], generator=gen(7))
    assert torch.equal(y2[:, 2], x[:, 2])
