"""Spatial (coordinate and joint) transforms on padded batches.

Every function takes ``x`` of shape ``(N, C, T, V, M)`` (zero-padded frames, all-zero absent persons),
never modifies it, and returns a new ``(N, C, T, V, M)`` tensor. Random parameters are drawn per sample
from an explicit ``torch.Generator``; the same matrix or offset is used for all frames of a sample (as in
the official code of each method). Linear maps (shear, rotation, scale, corruption, flip) send zeros to
zeros, so padding stays zero by construction; additive ones (offsets, noise) are masked to the real
frames of present persons.

Coordinates only: a batch may carry channels after its coordinates (a pose estimator's confidence
``score``: ``x, y, score`` or ``x, y, z, score``). ``coords`` (default: every channel) is how many
leading channels are coordinates; every transform moves those only and returns the others bit for bit
(:func:`flip` permutes a joint's score with the joint, and never negates it). With ``coords = 2`` the
shear and rotation are the 2-D ones (a ``2 x 2`` shear, a rotation in the image plane).
"""

from __future__ import annotations

from typing import Sequence

import torch

from skelssl.core.layouts import Layout
from skelssl.transforms.temporal import check_batch, uniform, valid_mask

__all__ = [
    "apply_matrix",
    "shear_matrix",
    "rotation_matrix",
    "shear",
    "rotate",
    "scale",
    "joint_offset_noise",
    "joint_corruption",
    "flip",
    "gaussian_noise",
    "choose_joints",
    "num_coords",
    "on_coords",
]


def num_coords(x: torch.Tensor, coords: int | None) -> int:
    """How many leading channels of ``x`` ``(N, C, T, V, M)`` are coordinates (``None``: all ``C``)."""
    c = x.shape[1]
    if coords is None:
        return c
    if not 1 <= int(coords) <= c:
        raise ValueError(f"coords must be between 1 and C = {c}, got {coords}")
    return int(coords)


def on_coords(x: torch.Tensor, coords: int | None, fn) -> torch.Tensor:
    """``fn`` applied to the coordinate channels of ``x`` ``(N, C, T, V, M)``; the channels after them
    (a score) are returned unchanged, bit for bit."""
    k = num_coords(x, coords)
    if k == x.shape[1]:
        return fn(x)
    return torch.cat([fn(x[:, :k]), x[:, k:]], dim=1)  # (N, k, T, V, M) + (N, C - k, T, V, M)


def apply_matrix(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``x'[n, :, t, v, m] = matrix[n] @ x[n, :, t, v, m]``.

    Args:
        x: ``(N, C, T, V, M)``.
        matrix: ``(N, C, C)``, one matrix per sample.

    Returns:
        ``(N, C, T, V, M)``.
    """
    return torch.einsum("nij,njtvm->nitvm", matrix.to(x.dtype), x)


def shear_matrix(n: int, channels: int, magnitude: float, generator: torch.Generator, device) -> torch.Tensor:
    """``(N, C, C)`` unit-diagonal matrices with off-diagonal entries ``U(-magnitude, magnitude)``."""
    s = uniform((n, channels, channels), generator, device, -magnitude, magnitude)
    eye = torch.eye(channels, device=device, dtype=torch.bool)
    return torch.where(eye, torch.ones_like(s), s)


def rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` angles (rad, about x, y, z) -> ``(N, 3, 3)`` rotations ``Rz @ Ry @ Rx``.

    The element layout is CTR-GCN's ``feeder/tools.py::_rot`` (used by MAMP), e.g.
    ``Rx = [[1, 0, 0], [0, cos, sin], [0, -sin, cos]]``.
    """
    c, s = angles.cos(), angles.sin()  # (N, 3)
    one, zero = torch.ones_like(c[:, 0]), torch.zeros_like(c[:, 0])

    def mat(rows: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        return torch.stack([torch.stack(list(r), dim=-1) for r in rows], dim=-2)  # (N, 3, 3)

    rx = mat([[one, zero, zero], [zero, c[:, 0], s[:, 0]], [zero, -s[:, 0], c[:, 0]]])
    ry = mat([[c[:, 1], zero, -s[:, 1]], [zero, one, zero], [s[:, 1], zero, c[:, 1]]])
    rz = mat([[c[:, 2], s[:, 2], zero], [-s[:, 2], c[:, 2], zero], [zero, zero, one]])
    return rz @ ry @ rx


def shear(x: torch.Tensor, magnitude: float = 0.5, *, generator: torch.Generator, coords: int | None = None) -> torch.Tensor:
    """Random shear ``x' = S x`` (pose augmentation).

    SkeletonCLR / CrosSCLR / Hi-TRS ``shear`` and ISC's pose augmentation: ``S`` has a unit diagonal and
    off-diagonal entries ``U(-magnitude, magnitude)`` (Hi-TRS and CrosSCLR use 0.5, ISC uses 1), one
    matrix per sample shared by all frames and persons.

    Args:
        x: ``(N, C, T, V, M)``.
        magnitude: bound of the off-diagonal entries.
        generator: source of ``S``.
        coords: leading channels that are coordinates (``S`` is ``coords x coords``); default all.

    Returns:
        ``(N, C, T, V, M)``.
    """
    check_batch(x)
    k = num_coords(x, coords)
    matrix = shear_matrix(x.shape[0], k, magnitude, generator, x.device)  # (N, k, k)
    return on_coords(x, k, lambda xyz: apply_matrix(xyz, matrix))


def rotate(x: torch.Tensor, max_angle: float = 0.3, *, generator: torch.Generator, coords: int | None = None) -> torch.Tensor:
    """Random rotation about the origin: 3-D, or in the image plane for 2-D coordinates.

    MAMP (Mao et al. 2023) / CTR-GCN ``random_rot``: three angles i.i.d. ``U(-max_angle, max_angle)``
    rad (0.3 in MAMP), ``R = Rz Ry Rx``, the same for all frames and persons of a sample. On 2-D
    coordinates (``x, y``) only the rotation about the viewing axis exists: one angle, the ``x, y``
    block of ``Rz``.

    Args:
        x: ``(N, C, T, V, M)`` whose first ``coords`` channels are 2-D or 3-D coordinates.
        max_angle: bound of each angle in radians.
        generator: source of the angles.
        coords: leading channels that are coordinates (2 or 3); default all ``C``.

    Returns:
        ``(N, C, T, V, M)``.
    """
    check_batch(x)
    k = num_coords(x, coords)
    if k == 3:
        angles = uniform((x.shape[0], 3), generator, x.device, -max_angle, max_angle)  # (N, 3)
        matrix = rotation_matrix(angles)  # (N, 3, 3)
    elif k == 2:
        angle = uniform((x.shape[0],), generator, x.device, -max_angle, max_angle)  # (N,)
        c, s = angle.cos(), angle.sin()
        matrix = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)  # (N, 2, 2), Rz's x, y block
    else:
        raise ValueError(f"rotate needs 2-D or 3-D coordinates, got {k} coordinate channels")
    return on_coords(x, k, lambda xyz: apply_matrix(xyz, matrix))


def scale(
    x: torch.Tensor, low: float = 0.8, high: float = 1.2, *, generator: torch.Generator, coords: int | None = None
) -> torch.Tensor:
    """Hi-TRS ``scale``: multiply each sample by one factor ``s ~ U(low, high)``.

    Args:
        x: ``(N, C, T, V, M)``.
        low, high: range of ``s`` (Hi-TRS: 0.8, 1.2).
        generator: source of ``s``.
        coords: leading channels that are coordinates; default all.

    Returns:
        ``(N, C, T, V, M)``.
    """
    check_batch(x)
    s = uniform((x.shape[0],), generator, x.device, low, high).to(x.dtype)
    return on_coords(x, coords, lambda xyz: xyz * s[:, None, None, None, None])


def choose_joints(n: int, num_joints: int, k: int, generator: torch.Generator, device) -> torch.Tensor:
    """``(N, V)`` bool with exactly ``k`` distinct joints chosen uniformly at random per row."""
    if not 0 <= k <= num_joints:
        raise ValueError(f"cannot choose {k} distinct joints out of {num_joints}")
    order = uniform((n, num_joints), generator, device).argsort(dim=1)  # a random permutation per row
    rank = order.argsort(dim=1)  # rank[n, v] = position of joint v in the permutation
    return rank < k


def joint_offset_noise(
    x: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    num_joints: int = 5,
    magnitude: float = 0.2,
    generator: torch.Generator,
    coords: int | None = None,
) -> torch.Tensor:
    """Hi-TRS ``noise``: a constant random offset on a few joints.

    ``num_joints`` distinct joints are chosen and each gets an offset ``~ U(-magnitude, magnitude)^C``,
    constant over all frames. Hi-TRS pre-trains on single persons and applies its augmentations to each
    non-zero body downstream, so here every present person gets its own joints and offsets; padded
    frames and absent persons stay zero.

    Args:
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames (default: all ``T``).
        num_joints: joints offset per person (Hi-TRS: 5).
        magnitude: bound of each offset coordinate (Hi-TRS: 0.2).
        generator: source of the joints and offsets.
        coords: leading channels that are coordinates (the ones offset); default all.

    Returns:
        ``(N, C, T, V, M)``.
    """
    check_batch(x, lengths)
    n, _, _, v, m = x.shape
    c = num_coords(x, coords)
    chosen = choose_joints(n * m, v, num_joints, generator, x.device).view(n, m, v)  # (N, M, V)
    offset = uniform((n, m, c, v), generator, x.device, -magnitude, magnitude).to(x.dtype)  # (N, M, c, V)
    offset = offset * chosen[:, :, None, :]
    offset = offset.permute(0, 2, 3, 1)[:, :, None]  # (N, c, 1, V, M)
    return on_coords(x, c, lambda xyz: xyz + offset * valid_mask(xyz, lengths))


def joint_corruption(
    x: torch.Tensor, num_joints: int = 15, *, generator: torch.Generator, coords: int | None = None
) -> torch.Tensor:
    """ISC ``joint_courruption`` (Thoker et al. 2021, ``feeder/augmentations.py``).

    Per sample, ``num_joints`` distinct joints are chosen, then with probability 0.5 they are zeroed in
    all frames and persons, otherwise their coordinates are multiplied by one random ``C x C`` matrix
    with entries ``U(-1, 1)``, the same for all frames and persons.

    Args:
        x: ``(N, C, T, V, M)``.
        num_joints: joints corrupted per sample (ISC: 15 of 25).
        generator: source of the joints, the mode and the matrix.
        coords: leading channels that are coordinates (the matrix is ``coords x coords``; a score is
            kept, also on a zeroed joint); default all.

    Returns:
        ``(N, C, T, V, M)``.
    """
    check_batch(x)
    n, _, _, v, _ = x.shape
    c = num_coords(x, coords)
    chosen = choose_joints(n, v, num_joints, generator, x.device)  # (N, V)
    zero_mode = uniform((n,), generator, x.device) < 0.5  # (N,)
    matrix = uniform((n, c, c), generator, x.device, -1.0, 1.0)  # (N, c, c)
    # Zeroing is the matrix 0; one einsum then serves both modes.
    matrix = matrix * (~zero_mode).to(matrix.dtype)[:, None, None]

    def corrupt(xyz: torch.Tensor) -> torch.Tensor:
        return torch.where(chosen[:, None, None, :, None], apply_matrix(xyz, matrix), xyz)

    return on_coords(x, c, corrupt)


def flip(x: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Left/right mirror: negate the x coordinate and swap the left and right joints.

    Only channel 0 (``x``) is negated, so a score channel moves with its joint and keeps its value. The
    joint permutation is ``layout.flip_index`` (an involution), so ``flip(flip(x)) == x``. Use
    :func:`skelssl.transforms.random_apply` for a random flip.

    Args:
        x: ``(N, C, T, V, M)`` with ``V == layout.num_joints``.
        layout: the skeleton layout.

    Returns:
        ``(N, C, T, V, M)``.
    """
    check_batch(x, layout=layout)
    perm = torch.tensor(layout.flip_index, device=x.device)
    out = x.index_select(3, perm)
    sign = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    sign[0] = -1.0
    return out * sign[None, :, None, None, None]


def gaussian_noise(
    x: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    std: float = 0.01,
    generator: torch.Generator,
    coords: int | None = None,
) -> torch.Tensor:
    """Independent ``N(0, std^2)`` jitter on every coordinate of real frames of present persons.

    Args:
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames (default: all ``T``).
        std: standard deviation, in the data's units.
        generator: source of the noise.
        coords: leading channels that are coordinates (the ones jittered); default all.

    Returns:
        ``(N, C, T, V, M)``.
    """
    check_batch(x, lengths)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"an explicit torch.Generator is required, got {type(generator).__name__}")
    shape = (x.shape[0], num_coords(x, coords), *x.shape[2:])
    noise = torch.randn(shape, generator=generator, device=generator.device).to(x.device, x.dtype)
    return on_coords(x, coords, lambda xyz: xyz + std * noise * valid_mask(xyz, lengths))
