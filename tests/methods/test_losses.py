"""Every loss of ``methods/losses.py`` against a deliberately naive loop implementation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from skelssl.methods.losses import (
    contrastive_loss,
    flow_direction_loss,
    flow_vector_loss,
    future_clip_loss,
    info_nce,
    info_nce_logits,
    masked_joint_loss,
    masked_mse,
    nt_xent,
    nt_xent_logits,
    order_loss,
    top1_accuracy,
)

torch.set_num_threads(1)


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def naive_info_nce_queue(q, k, queue, t):
    total = 0.0
    for i in range(q.shape[0]):
        qi = unit(q[i])
        pos = math.exp(float(qi @ unit(k[i])) / t)
        neg = sum(math.exp(float(qi @ unit(n)) / t) for n in queue)
        total += -math.log(pos / (pos + neg))
    return total / q.shape[0]


def naive_info_nce_batch(q, keys, t, offset):
    total = 0.0
    for i in range(q.shape[0]):
        qi = unit(q[i])
        scores = [math.exp(float(qi @ unit(k)) / t) for k in keys]
        total += -math.log(scores[offset + i] / sum(scores))
    return total / q.shape[0]


def naive_nt_xent(z1_all, z2_all, t, local_rows):
    """SimCLR eq. 1 over the 2B embeddings [z1_all; z2_all], averaged over the local anchors' pairs."""
    b = z1_all.shape[0]
    z = [unit(v) for v in torch.cat([z1_all, z2_all])]
    total, count = 0.0, 0
    for view in range(2):
        for i in local_rows:
            a = view * b + i
            p = (1 - view) * b + i
            denom = sum(math.exp(float(z[a] @ z[k]) / t) for k in range(2 * b) if k != a)
            total += -math.log(math.exp(float(z[a] @ z[p]) / t) / denom)
            count += 1
    return total / count


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float()


def test_info_nce_queue_matches_naive():
    q, k, queue = randn(5, 8, seed=0), randn(5, 8, seed=1), randn(12, 8, seed=2)
    got = info_nce(q, k, 0.07, negatives=queue)
    assert got.dtype == torch.float32
    assert abs(float(got) - naive_info_nce_queue(q, k, queue, 0.07)) < 1e-4
    logits, target = info_nce_logits(q, k, 0.07, negatives=queue)
    assert logits.shape == (5, 13) and (target == 0).all()


@pytest.mark.parametrize("offset", [0, 4])
def test_info_nce_in_batch_matches_naive(offset):
    q = randn(4, 6, seed=3)
    keys = randn(12, 6, seed=4)  # e.g. the keys of 3 processes gathered, this one at rows 4..7
    keys_local = keys if offset else keys[:4]
    got = info_nce(q, keys_local, 0.2, offset=offset)
    assert abs(float(got) - naive_info_nce_batch(q, keys_local, 0.2, offset)) < 1e-5


def test_nt_xent_matches_naive_single_and_gathered():
    z1, z2 = randn(6, 5, seed=5), randn(6, 5, seed=6)
    got = nt_xent(z1, z2, 0.5)
    assert abs(float(got) - naive_nt_xent(z1, z2, 0.5, range(6))) < 1e-5
    logits, target = nt_xent_logits(z1, z2, 0.5)
    assert logits.shape == (12, 11) and torch.equal(target, torch.arange(6).repeat(2))  # 2N - 2 negatives each
    # Gathered over 3 "processes": this process holds rows 4..5 of a global batch of 6.
    got = nt_xent(z1[4:], z2[4:], 0.5, z1_all=z1, z2_all=z2, offset=4)
    assert abs(float(got) - naive_nt_xent(z1, z2, 0.5, range(4, 6))) < 1e-5


def test_losses_ignore_embedding_scale_and_validate_shapes():
    z1, z2 = randn(4, 3, seed=7), randn(4, 3, seed=8)
    assert torch.allclose(nt_xent(z1, z2, 0.1), nt_xent(3 * z1, 0.5 * z2, 0.1), atol=1e-6)
    with pytest.raises(ValueError):
        nt_xent(z1, z2[:3], 0.1)
    with pytest.raises(ValueError):
        nt_xent(z1, z2, 0.0)
    with pytest.raises(ValueError):
        info_nce(z1, z2, 0.1, negatives=randn(5, 4))  # D mismatch
    with pytest.raises(ValueError):
        info_nce(z1, z2[:2], 0.1, negatives=randn(5, 3))  # a queue needs paired keys
    with pytest.raises(ValueError):
        info_nce(z1, z2, 0.1, offset=1)  # no room for 4 positives
    with pytest.raises(ValueError):
        nt_xent(z1.view(-1), z2.view(-1), 0.1)


def test_perfect_alignment_gives_top1_of_one():
    z = torch.eye(8)
    logits, target = nt_xent_logits(z, z.clone(), 0.1)
    assert float(top1_accuracy(logits, target)) == 1.0
    logits, target = info_nce_logits(z, z.clone(), 0.1)
    assert float(top1_accuracy(logits, target)) == 1.0


@pytest.mark.parametrize("which", ["nt_xent", "info_nce_batch", "info_nce_queue"])
def test_loss_decreases_under_gradient_descent(which):
    z1 = randn(16, 8, seed=9).requires_grad_()
    z2 = randn(16, 8, seed=10).requires_grad_()
    queue = randn(32, 8, seed=11)

    def loss_fn():
        if which == "nt_xent":
            return nt_xent(z1, z2, 0.2)
        if which == "info_nce_batch":
            return info_nce(z1, z2, 0.2)
        return info_nce(z1, z2, 0.2, negatives=queue)

    first = float(loss_fn().detach())
    for _ in range(50):  # plain gradient descent on the free embeddings
        z1.grad = z2.grad = None
        loss_fn().backward()
        with torch.no_grad():
            z1 -= 0.5 * z1.grad
            z2 -= 0.5 * z2.grad
    assert float(loss_fn().detach()) < 0.5 * first


# -- Hi-TRS -------------------------------------------------------------------------------------------


def test_masked_joint_loss_is_the_official_smooth_l1():
    g = gen()
    pred, target = torch.randn(2, 6, 5, 3, generator=g) * 0.2, torch.randn(2, 6, 5, 3, generator=g) * 0.2
    selected = torch.rand(2, 6, 5, generator=g) < 0.3
    terms = []
    for b, t, v in selected.nonzero().tolist():
        for c in range(3):
            d = abs(10 * pred[b, t, v, c].item() - 10 * target[b, t, v, c].item())
            terms.append(0.5 * d * d if d < 1 else d - 0.5)
    assert math.isclose(masked_joint_loss(pred, target, selected).item(), sum(terms) / len(terms), rel_tol=1e-5)
    assert masked_joint_loss(pred, target, torch.zeros_like(selected)).item() == 0.0


def test_order_loss_is_masked_cross_entropy():
    g = gen(1)
    logits = torch.randn(8, 2, generator=g)  # 4 originals then 4 permuted
    valid = torch.tensor([True, False, True, True])
    terms, hits = [], []
    for r in range(8):
        if not valid[r % 4]:
            continue
        label = 1 if r < 4 else 0
        terms.append(-(logits[r, label] - torch.logsumexp(logits[r], 0)).item())
        hits.append(float(logits[r].argmax().item() == label))
    loss, acc = order_loss(logits, valid)
    assert math.isclose(loss.item(), sum(terms) / len(terms), rel_tol=1e-5)
    assert math.isclose(acc.item(), sum(hits) / len(hits), rel_tol=1e-6)
    assert order_loss(logits, torch.zeros(4, dtype=torch.bool))[0].item() == 0.0


@pytest.mark.parametrize("offset,extra", [(0, 0), (0, 3), (3, 3)])
def test_future_clip_loss_is_in_batch_info_nce(offset, extra):
    g = gen(2)
    pred, own = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    others = torch.randn(extra, 6, generator=g)
    keys = torch.cat([others, own]) if offset else torch.cat([own, others])
    total = 0.0
    for i in range(4):
        q = pred[i] / pred[i].norm()
        sims = [(q @ (k / k.norm())).item() / 0.07 for k in keys]
        total += -(sims[offset + i] - math.log(sum(math.exp(s) for s in sims)))
    loss, _ = future_clip_loss(pred, keys, 0.07, offset)
    assert math.isclose(loss.item(), total / 4, rel_tol=1e-5)


# -- masked prediction (MAMP, Motion-Transformer) --------------------------------------------------


def test_masked_mse_counts_masked_tokens_only():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 50, 12, generator=g), torch.randn(3, 50, 12, generator=g)
    mask = torch.rand(3, 50, generator=g) < 0.8
    loss = masked_mse(pred, target, mask)
    naive = [((pred[b, i] - target[b, i]) ** 2).mean() for b in range(3) for i in range(50) if mask[b, i]]
    torch.testing.assert_close(loss, torch.stack(naive).mean())
    changed = torch.where(mask[:, :, None], pred, torch.randn(3, 50, 12, generator=g) * 100)  # visible tokens only
    torch.testing.assert_close(masked_mse(changed, target, mask), loss)


def test_flow_losses_and_frame_mse_equal_naive_loops():
    g = torch.Generator().manual_seed(2)
    b, j, k = 5, 4, 8
    logits = torch.randn(b, j, j * k, generator=g)
    labels = torch.randint(0, k, (b, j), generator=g)
    valid = torch.tensor([True, True, False, True, False])
    total, count, own_total = 0.0, 0, 0.0
    for i in range(b):
        if not valid[i]:
            continue
        for jj in range(j):
            row = logits[i, jj]
            total += float(-torch.log_softmax(row, 0)[k * jj + labels[i, jj]])
            own_total += float(-torch.log_softmax(row[k * jj: k * jj + k], 0)[labels[i, jj]])
            count += 1
    loss, acc = flow_direction_loss(logits, labels, valid, "all_joints")
    assert float(loss) == pytest.approx(total / count, rel=1e-5)
    assert 0.0 <= float(acc) <= 1.0
    own, _ = flow_direction_loss(logits, labels, valid, "per_joint")
    assert float(own) == pytest.approx(own_total / count, rel=1e-5)
    pred, flow = torch.randn(b, j, 3, generator=g) * 2, torch.randn(b, j, 3, generator=g)
    per = [float(F.smooth_l1_loss(pred[i], flow[i], beta=0.5)) for i in range(b) if valid[i]]
    assert float(flow_vector_loss(pred, flow, valid, beta=0.5)) == pytest.approx(sum(per) / len(per), rel=1e-5)
    p, t = torch.randn(b, 75, generator=g), torch.randn(b, 75, generator=g)
    per = [float(((p[i] - t[i]) ** 2).mean()) for i in range(b) if valid[i]]
    assert float(masked_mse(p, t, valid)) == pytest.approx(sum(per) / len(per), rel=1e-5)


def test_contrastive_loss_is_the_cross_entropy_and_top1_of_the_logits():
    q, keys = randn(4, 8, seed=3), randn(6, 8, seed=4)
    loss, top1 = contrastive_loss(*info_nce_logits(q, keys, 0.1, offset=2))
    assert abs(float(loss) - naive_info_nce_batch(q, keys, 0.1, 2)) < 1e-5
    hits = [int((unit(q[i]) @ torch.stack([unit(k) for k in keys]).T).argmax()) == 2 + i for i in range(4)]
    assert float(top1) == sum(hits) / 4 and not top1.requires_grad
