"""methods/masking.py: every method's masking against its statistics, hand computations or a naive loop."""

from __future__ import annotations

import numpy as np
import torch

from skelssl.methods import get_method
from skelssl.methods.masking import (
    KEEP,
    RANDOM,
    ZERO,
    corrupt_frames,
    draw_frame_masks,
    draw_mask,
    keep_count,
    mask_joints,
    motion_aware_masking,
    patchify,
    token_motion,
    uniform_masking,
)
from skelssl.models import build_encoder

torch.set_num_threads(1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- Hi-TRS: single joints -------------------------------------------------------------------------


def test_masking_statistics_match_bert():
    b, t, v = 64, 50, 25
    seq = torch.randn(b, t, v, 3, generator=gen(3))  # continuous values: every coordinate is unique
    lengths = torch.randint(20, t + 1, (b,), generator=gen(4))
    seq = seq * (torch.arange(t)[None, :] < lengths[:, None])[:, :, None, None]
    masked, selected = mask_joints(seq, lengths, gen(5))
    real = torch.arange(t)[None, :] < lengths[:, None]
    assert not selected[~real].any()  # padded frames are never selected
    assert torch.equal(masked[~selected], seq[~selected])
    share = selected.sum().item() / (real.sum().item() * v)
    assert abs(share - 0.15) < 0.006
    sel_masked, sel_seq = masked[selected], seq[selected]  # (S, 3)
    token = (sel_masked == 1.0).all(dim=1)
    kept = (sel_masked == sel_seq).all(dim=1)
    other = ~token & ~kept
    n = selected.sum().item()
    assert abs(token.sum().item() / n - 0.8) < 0.015
    assert abs(other.sum().item() / n - 0.1) < 0.012
    assert abs(kept.sum().item() / n - 0.1) < 0.012
    # A replaced joint holds the coordinates of another joint of another real frame of its own sequence.
    for (bi, ti, vi), value in list(zip(selected.nonzero()[other].tolist(), sel_masked[other]))[:200]:
        source = (seq[bi] == value).all(dim=-1).nonzero().tolist()
        assert len(source) == 1
        ts, vs = source[0]
        assert ts != ti and vs != vi and ts < lengths[bi]


# -- Motion-Transformer: whole frames --------------------------------------------------------------


def test_masking_chooses_15_percent_of_real_frames_uniformly():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([150, 40, 7, 1, 150])
    counts = torch.zeros(150)
    for _ in range(200):
        d = draw_frame_masks(lengths, 150, generator=g)
        assert d.positions.shape == (5, 22)
        assert d.valid.sum(1).tolist() == [22, 6, 1, 1, 22]  # floor(0.15 len), at least 1
        for i, n in enumerate(lengths.tolist()):
            chosen = d.positions[i][d.valid[i]]
            assert len(set(chosen.tolist())) == len(chosen) and int(chosen.max()) < n
            assert int(d.source[i][d.valid[i]].max()) < n
        counts += torch.bincount(d.positions[0], minlength=150).float()
    assert counts.min() > 0.5 * counts.mean() and counts.max() < 1.6 * counts.mean()  # ~29 each
    last = draw_frame_masks(torch.tensor([10, 2]), 10, generator=g, exclude_last=True)
    assert all(p < 9 for p in last.positions[0][last.valid[0]].tolist()) and last.positions[1, 0] == 0


def test_80_10_10_corruption_over_many_draws():
    g = torch.Generator().manual_seed(1)
    d = draw_frame_masks(torch.full((4000,), 150), 150, generator=g)
    frac = torch.bincount(d.action.flatten(), minlength=3).float() / d.action.numel()
    assert abs(float(frac[ZERO]) - 0.8) < 0.01 and abs(float(frac[RANDOM]) - 0.1) < 0.01
    assert abs(float(frac[KEEP]) - 0.1) < 0.01
    tokens = torch.randn(3, 12, 5)
    d = draw_frame_masks(torch.tensor([12, 12, 6]), 12, ratio=0.5, generator=g)
    out = corrupt_frames(tokens, d)
    touched = torch.zeros(3, 12, dtype=torch.bool)
    for i in range(3):
        for k in range(d.positions.shape[1]):
            p = int(d.positions[i, k])
            if not d.valid[i, k]:
                continue
            touched[i, p] = True
            choices = {ZERO: torch.zeros(5), RANDOM: tokens[i, int(d.source[i, k])], KEEP: tokens[i, p]}
            expected = choices[int(d.action[i, k])]
            assert torch.equal(out[i, p], expected)
    assert torch.equal(out[~touched], tokens[~touched])  # everything else untouched


# -- MAMP: motion-aware token masking --------------------------------------------------------------


def test_74_of_750_tokens_stay_visible_at_90_percent():
    assert 750 * (1 - 0.9) < 75 and keep_count(750, 0.9) == 74  # int(74.99999999999999)
    g = torch.Generator().manual_seed(0)
    motion = torch.rand(6, 750)
    for draw in (motion_aware_masking(motion, 74, 0.8, g), uniform_masking(6, 750, 74, g, "cpu")):
        assert draw.ids_keep.shape == (6, 74) and draw.mask.shape == (6, 750)
        assert draw.mask.sum(1).tolist() == [676] * 6  # exactly 676 masked per sequence
        assert not draw.mask.gather(1, draw.ids_keep).any()  # the kept ones are the unmasked ones
        assert all(len(set(row.tolist())) == 74 for row in draw.ids_keep)
    enc = build_encoder("mamp", layout="ntu25", num_persons=2)
    assert get_method("mamp")(enc).keep == 74


def test_token_motion_of_a_linear_drift():
    seq = torch.zeros(1, 3, 16, 25)
    seq[0, 0, :, 3] = 0.5 * torch.arange(16.0)  # joint 3 drifts along x by 0.5 per frame
    m = token_motion(patchify(seq, 4), 25).view(4, 25)
    # Adjacent 4-frame tokens differ by 4 x 0.5 = 2 in each of the 4 x entries: mean over 12 = 8/12.
    torch.testing.assert_close(m[:, 3], torch.full((4,), 2.0 / 3.0))  # t = 0 copies t = 1
    assert float(m[:, [0, 1, 2, 4]].abs().max()) == 0.0


def naive_motion_masking(motion: np.ndarray, keep: int, tau: float, u: np.ndarray) -> list[set[int]]:
    """§8.5 steps 3-6 row by row in NumPy float64, from the same uniform draws ``u``."""
    out = []
    for m, row_u in zip(motion.astype(np.float64), u.astype(np.float64)):
        s = m / (tau * m.max() + 1e-10)
        p = np.exp(s - s.max())
        p /= p.sum()
        score = np.log(p) - np.log(-np.log(row_u + 1e-10) + 1e-10)
        out.append(set(np.argsort(score, kind="stable")[:keep].tolist()))
    return out


def test_motion_aware_masking_equals_a_row_loop():
    motion = torch.rand(5, 200) ** 3
    draw = motion_aware_masking(motion, 20, 0.8, torch.Generator().manual_seed(7))
    u = torch.rand(5, 200, generator=torch.Generator().manual_seed(7)).numpy()
    assert [set(r.tolist()) for r in draw.ids_keep] == naive_motion_masking(motion.numpy(), 20, 0.8, u)


def test_masking_favours_high_motion_tokens_over_many_draws():
    seq = torch.zeros(1, 3, 16, 25)
    seq[0, :, :, 3] = torch.sin(0.7 * torch.arange(16.0))[None, :]  # only joint 3 moves
    patches = patchify(seq, 4).expand(400, -1, -1)  # 400 draws at once
    moving = torch.zeros(100, dtype=torch.bool)
    moving[3::25] = True
    g = torch.Generator().manual_seed(0)
    keep = keep_count(100, 0.9)

    def masked_rates(tau: float, p: torch.Tensor = patches) -> tuple[float, float]:
        mask = draw_mask(p, 25, keep, tau, g).mask.float().mean(0)  # (L,) masking frequency
        return float(mask[moving].mean()), float(mask[~moving].mean())

    hi, lo = masked_rates(0.8)
    assert hi > lo + 0.04  # moving tokens are masked more often (~0.97 vs ~0.90)
    flat_hi, flat_lo = masked_rates(1e6)  # tau -> infinity: uniform
    assert abs(flat_hi - flat_lo) < 0.03
    still_hi, still_lo = masked_rates(0.8, torch.zeros_like(patches))  # an absent person: uniform
    assert abs(still_hi - still_lo) < 0.03
