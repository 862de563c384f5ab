"""Every loss of the methods, as pure functions of tensors (one place to read them all).

- **Contrastive** (SimCLR, ISC, Hi-TRS future clip): :func:`info_nce_logits` and :func:`nt_xent_logits`
  return the logits and the index of the positive; :func:`contrastive_loss` turns them into the loss
  and the top-1 accuracy that methods log (:func:`info_nce`, :func:`nt_xent`: the loss alone). They L2-normalise their embeddings (cosine
  similarity), check shapes, and compute in float32 whatever the input precision.
- **Hi-TRS** pretexts: :func:`masked_joint_loss`, :func:`order_loss`, :func:`future_clip_loss`.
- **Masked prediction** (MAMP, Motion-Transformer): :func:`masked_mse`, :func:`flow_direction_loss`,
  :func:`flow_vector_loss`.

Every weighted average here is :func:`weighted_mean` (``sum w x / max(sum w, 1)``): a batch whose
weights are all zero gives a loss of 0, not NaN. Each loss is checked against a naive loop in
``tests/methods/test_losses.py``.

Multi-process training: the engine gathers tensors across processes (with gradients); a method passes
the gathered tensors here together with the offset of its own rows in them (``rank * N`` for equal
per-process batches, the order ``all_gather`` produces). :func:`gathered_offset` finds that offset.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

__all__ = [
    "info_nce",
    "info_nce_logits",
    "nt_xent",
    "nt_xent_logits",
    "gathered_offset",
    "top1_accuracy",
    "contrastive_loss",
    "weighted_mean",
    "masked_joint_loss",
    "order_loss",
    "future_clip_loss",
    "masked_mse",
    "flow_direction_loss",
    "flow_vector_loss",
]


def _check_2d(name: str, t: torch.Tensor, dim: int | None = None) -> None:
    if t.ndim != 2:
        raise ValueError(f"{name} must be (N, D), got shape {tuple(t.shape)}")
    if dim is not None and t.shape[1] != dim:
        raise ValueError(f"{name} has D={t.shape[1]}, expected D={dim}")


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def gathered_offset(local_rows: int, gathered_rows: int) -> int:
    """Row offset of this process's block in a tensor gathered over processes.

    Equal to 0 when nothing was gathered (``gathered_rows == local_rows``), else ``rank * local_rows``
    (``torch.distributed`` must be initialised, as it is under the engine's data parallel strategies).
    """
    if gathered_rows == local_rows:
        return 0
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            f"gathered {gathered_rows} rows from {local_rows} local ones, but torch.distributed is not initialised"
        )
    if gathered_rows != local_rows * dist.get_world_size():
        raise ValueError(f"gathered {gathered_rows} rows; expected {local_rows} x world size {dist.get_world_size()}")
    return dist.get_rank() * local_rows


def info_nce_logits(
    query: torch.Tensor,
    key: torch.Tensor,
    temperature: float = 0.07,
    negatives: torch.Tensor | None = None,
    *,
    offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and positive index of InfoNCE (van den Oord et al. 2018; MoCo, He et al. 2020).

    Two forms:

    - **queue** (``negatives`` given, MoCo / ISC): ``key`` ``(N, D)`` holds each query's positive and
      ``negatives`` ``(K, D)`` the shared negatives; logits ``[q.k+, q.n_1, ..., q.n_K] / t``, positive 0.
    - **in-batch** (``negatives=None``, Hi-TRS future clip): every row of ``key`` ``(B, D)`` is a
      candidate; query ``i``'s positive is ``key[offset + i]``. ``B = N`` on one process, or the keys
      gathered over processes with ``offset = rank * N``.

    Args:
        query: ``(N, D)``.
        key: ``(N, D)`` (queue form) or ``(B, D)``, ``B >= N`` (in-batch form).
        temperature: softmax temperature (0.07 in MoCo, ISC and Hi-TRS).
        negatives: ``(K, D)`` queue, or ``None`` for in-batch negatives.
        offset: row of query 0's positive in ``key`` (in-batch form only).

    Returns:
        ``logits`` ``(N, 1 + K)`` or ``(N, B)``, float32, and ``target`` ``(N,)`` int64.
    """
    _check_temperature(temperature)
    _check_2d("query", query)
    _check_2d("key", key, query.shape[1])
    n = query.shape[0]
    q = F.normalize(query.float(), dim=1)  # (N, D)
    k = F.normalize(key.float(), dim=1)  # (N or B, D)
    if negatives is not None:
        _check_2d("negatives", negatives, query.shape[1])
        if key.shape[0] != n:
            raise ValueError(f"with a queue, key must pair with query: {key.shape[0]} keys for {n} queries")
        neg = F.normalize(negatives.float(), dim=1)  # (K, D)
        l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
        l_neg = q @ neg.T  # (N, K)
        logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (N, 1 + K)
        target = torch.zeros(n, dtype=torch.int64, device=query.device)
        return logits, target
    if not 0 <= offset <= key.shape[0] - n:
        raise ValueError(f"offset {offset} leaves no room for {n} positives among {key.shape[0]} keys")
    logits = q @ k.T / temperature  # (N, B)
    target = torch.arange(n, device=query.device) + offset
    return logits, target


def info_nce(*args: Any, **kwargs: Any) -> torch.Tensor:
    """InfoNCE loss, mean over queries: the arguments of :func:`info_nce_logits` (which see for the two forms).

    ``L = -1/N sum_i log( exp(q_i.k_i+ / t) / sum_j exp(q_i.c_j / t) )`` over the candidates ``c``.

    Returns:
        Scalar float32 loss.
    """
    return F.cross_entropy(*info_nce_logits(*args, **kwargs))


def nt_xent_logits(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.1,
    *,
    z1_all: torch.Tensor | None = None,
    z2_all: torch.Tensor | None = None,
    offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and positive index of NT-Xent (SimCLR, Chen et al. 2020).

    Each of the ``2N`` local embeddings is an anchor; its positive is the other view of the same
    sample and its negatives are the ``2B - 2`` other embeddings of the (gathered) batch of ``B``
    samples. Column layout: ``[other view's B rows | own view's B rows minus the anchor itself]``,
    so the positive of local anchor ``i`` is column ``offset + i``.

    Args:
        z1, z2: ``(N, D)`` the two views' embeddings.
        temperature: softmax temperature (SimCLR's tau).
        z1_all, z2_all: ``(B, D)`` the same gathered over processes (default: ``z1``, ``z2``).
        offset: row of this process's samples in ``z*_all`` (``rank * N``).

    Returns:
        ``logits`` ``(2N, 2B - 1)`` float32 and ``target`` ``(2N,)`` int64.
    """
    _check_temperature(temperature)
    _check_2d("z1", z1)
    _check_2d("z2", z2, z1.shape[1])
    if z1.shape[0] != z2.shape[0]:
        raise ValueError(f"z1 and z2 must pair up: {z1.shape[0]} vs {z2.shape[0]} rows")
    if (z1_all is None) != (z2_all is None):
        raise ValueError("give both z1_all and z2_all, or neither")
    z1_all = z1 if z1_all is None else z1_all
    z2_all = z2 if z2_all is None else z2_all
    _check_2d("z1_all", z1_all, z1.shape[1])
    _check_2d("z2_all", z2_all, z1.shape[1])
    n, b = z1.shape[0], z1_all.shape[0]
    if z2_all.shape[0] != b or not 0 <= offset <= b - n:
        raise ValueError(f"gathered batches {b}/{z2_all.shape[0]} rows do not hold {n} local rows at offset {offset}")
    if b < 2:
        raise ValueError("NT-Xent needs at least 2 samples (1 gives no negatives)")
    a1, a2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)  # (N, D) anchors
    c1, c2 = F.normalize(z1_all.float(), dim=1), F.normalize(z2_all.float(), dim=1)  # (B, D) candidates
    rows = torch.arange(n, device=z1.device)
    self_col = rows + offset  # each anchor's own column in its own view
    not_self = torch.ones(n, b, dtype=torch.bool, device=z1.device)
    not_self[rows, self_col] = False

    def view_logits(anchor: torch.Tensor, other: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        cross = anchor @ other.T  # (N, B): positive on column offset + i
        within = (anchor @ same.T)[not_self].view(n, b - 1)  # (N, B - 1): the anchor itself removed
        return torch.cat([cross, within], dim=1)  # (N, 2B - 1)

    logits = torch.cat([view_logits(a1, c2, c1), view_logits(a2, c1, c2)], dim=0) / temperature  # (2N, 2B-1)
    target = self_col.repeat(2)  # (2N,)
    return logits, target


def nt_xent(*args: Any, **kwargs: Any) -> torch.Tensor:
    """NT-Xent loss, mean over the ``2N`` anchors: the arguments of :func:`nt_xent_logits`.

    ``l(i, j) = -log( exp(sim(z_i, z_j)/t) / sum_{k != i} exp(sim(z_i, z_k)/t) )`` (SimCLR eq. 1),
    averaged over both orderings of every positive pair.

    Returns:
        Scalar float32 loss.
    """
    return F.cross_entropy(*nt_xent_logits(*args, **kwargs))


@torch.no_grad()
def top1_accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose largest logit is the positive: ``(R, K)``, ``(R,)`` -> 0-d tensor."""
    return (logits.argmax(dim=1) == target).float().mean()


def contrastive_loss(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of ``*_logits`` output and its top-1 accuracy (what every method logs).

    Args:
        logits: ``(R, K)`` from :func:`info_nce_logits` or :func:`nt_xent_logits`.
        target: ``(R,)`` the positive's column.

    Returns:
        The scalar float32 loss and the (detached) top-1 accuracy.
    """
    return F.cross_entropy(logits, target), top1_accuracy(logits, target)


def weighted_mean(per_item: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i x_i / max(sum_i w_i, 1)``: the mean over the items a 0/1 (or bool) weight keeps.

    Shape:
        ``per_item`` and ``weight`` the same shape (any); returns a 0-d tensor of ``per_item``'s dtype.
    """
    w = weight.to(per_item.dtype)
    return (per_item * w).sum() / w.sum().clamp(min=1.0)


# -- Hi-TRS (official ``loss/*``; docs/hitrs.md) ---------------------------------------------------


def masked_joint_loss(pred: torch.Tensor, target: torch.Tensor, selected: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    """Official ``MaskedL2`` (a Smooth-L1, beta 1): ``SmoothL1(scale * pred, scale * target)`` averaged
    over the coordinates of the selected joints; 0 when none is selected.

    Args:
        pred, target: ``(B, T, V, C)``.
        selected: ``(B, T, V)`` bool.
        scale: the official factor 10.

    Returns:
        Scalar float32.
    """
    p, t = pred[selected].float(), target[selected].float()  # (S, C)
    if p.numel() == 0:
        return pred.sum() * 0.0
    return F.smooth_l1_loss(scale * p, scale * t)


def order_loss(logits: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order validation: ``logits`` ``(2B, 2)`` for ``B`` originals then ``B`` permuted copies.

    Cross-entropy with labels 1 (original) and 0 (permuted), averaged over the valid pairs (official
    ``c_motion_loss``); 0 when none is valid.

    Returns:
        The loss and the accuracy over valid rows (0-d tensors).
    """
    b = logits.shape[0] // 2
    labels = torch.cat([torch.ones(b), torch.zeros(b)]).long().to(logits.device)  # (2B,)
    weight = torch.cat([valid, valid]).float()  # (2B,)
    per_row = F.cross_entropy(logits.float(), labels, reduction="none")  # (2B,)
    loss = weighted_mean(per_row, weight)
    with torch.no_grad():
        acc = weighted_mean((logits.argmax(dim=1) == labels).float(), weight)
    return loss, acc


def future_clip_loss(
    pred: torch.Tensor, keys: torch.Tensor, temperature: float = 0.07, offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Future-clip InfoNCE (official ``NCELoss``): L2-normalised predictions against every key,
    ``logits = pred . key^T / temperature``, cross-entropy with ``keys[offset + i]`` as row ``i``'s positive.

    Args:
        pred: ``(B, D)`` predictions of this process.
        keys: ``(B_all, D)`` detached targets gathered over processes (``B_all = B`` on one process).
        temperature: 0.07.
        offset: row of this process's first target in ``keys``.

    Returns:
        The loss and the top-1 accuracy (0-d tensors).
    """
    return contrastive_loss(*info_nce_logits(pred, keys, temperature, offset=offset))


# -- masked prediction: MAMP (docs/mamp.md §8.6) and Motion-Transformer (docs/motion_transformer.md) --


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_i mask_i mean_d (pred_i - target_i)^2 / sum_i mask_i`` over every token of the batch.

    MAMP's loss (predictions at visible tokens do not matter, §8.6) and Motion-Transformer's masked
    frame reconstruction (``run_inpainting.py``: per frame the mean over features, averaged over the
    chosen frames in use).

    Args:
        pred, target: ``(B, L, D)`` (or ``(B, D)`` with ``mask`` ``(B,)``).
        mask: ``(B, L)`` bool or 0/1, 1 on the tokens the loss is taken on.

    Returns:
        0-d float32.
    """
    per_token = (pred.float() - target.float()).square().mean(dim=-1)  # (B, L)
    return weighted_mean(per_token, mask)


def flow_direction_loss(
    logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor,
    softmax: Literal["all_joints", "per_joint"] = "all_joints",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Motion-Transformer: cross-entropy of the flow direction, averaged over the valid (frame, joint) pairs.

    Args:
        logits: ``(B, J, J*K)`` (``K = 2^C`` classes per joint).
        labels: ``(B, J)`` int64 in ``[0, K)``.
        valid: ``(B,)`` bool, the chosen frames in use.
        softmax: ``"all_joints"``: softmax over all ``J*K`` classes, target ``K j + label`` (official);
            ``"per_joint"``: over joint ``j``'s own ``K`` logits.

    Returns:
        The scalar float32 loss and the direction accuracy (0-d, over valid pairs).
    """
    b, j, jk = logits.shape
    k = jk // j
    logits = logits.float()
    if softmax == "all_joints":
        target = labels + k * torch.arange(j, device=labels.device)[None, :]  # (B, J)
        ce = F.cross_entropy(logits.reshape(b * j, jk), target.reshape(-1), reduction="none").view(b, j)
        pred = logits.argmax(dim=-1)
    elif softmax == "per_joint":
        own = logits.view(b, j, j, k).diagonal(dim1=1, dim2=2).permute(0, 2, 1)  # (B, J, K): joint j's block
        ce = F.cross_entropy(own.reshape(b * j, k), labels.reshape(-1), reduction="none").view(b, j)
        pred, target = own.argmax(dim=-1), labels
    else:
        raise ValueError(f"softmax must be 'all_joints' or 'per_joint', got {softmax!r}")
    pairs = valid[:, None].expand(b, j)
    acc = weighted_mean((pred == target).float(), pairs).detach()
    return weighted_mean(ce, pairs), acc


def flow_vector_loss(pred: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Smooth-L1 between predicted and true flow ``(B, J, C)``, mean over valid frames, joints and coordinates."""
    per = F.smooth_l1_loss(pred.float(), flow.float(), beta=beta, reduction="none").mean(dim=(1, 2))  # (B,)
    return weighted_mean(per, valid)
