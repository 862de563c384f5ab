"""Motion-Transformer pre-training (Cheng et al., ACM MM Asia 2021), **reconstructed**: predict the motion
flow of chosen frames (pretext A) and/or reconstruct masked frames (pretext B).

No official code exists; the tasks are rebuilt from the same authors' ``cszhangdy/Hierarchical-Transformer``
(``docs/motion_transformer.md``):

- **A, motion flow** (``run_motion.py``, ``create_training_data_for_motion.py``): 15 % of the frames
  (``floor(0.15 len)``, at least 1; 22 of 150) are chosen; for a chosen frame ``t`` and joint ``j`` the
  target is the octant of ``d = x_{t+1} - x_t`` (``1[dx>0] + 2 1[dy>0] + 4 1[dz>0]``; the last frame has
  no successor, ``d = 0``). The head maps the frame's output through Dense(hidden -> J*16) + act + LN,
  reshapes to ``(J, 16)``, Dense(16 -> 64) + act + LN, then one Dense(64 -> 8J) for every joint: the
  softmax runs over all ``8J`` classes with target ``8j + octant`` (``flow_softmax="all_joints"``);
  ``"per_joint"`` keeps only the joint's own 8 logits (ours). The chosen frames are *not* masked in
  the input (``mask_input=False``; the masking code is commented out there). ``target="vector"``
  regresses ``d`` itself with Smooth-L1 (ours).
- **B, masked-frame reconstruction** (``run_inpainting.py``): the chosen frames are replaced 80 % by a
  zero vector, 10 % by a random frame of the same sequence, 10 % kept; Dense(h -> h) + act + LN ->
  Linear(h -> token width) regresses the original frame, MSE averaged over features and chosen frames.

With both tasks one set of chosen frames serves both, so the flow is then predicted at masked frames.

Randomness: as :class:`~skelssl.methods.simclr.SimCLR`, a CPU ``torch.Generator`` re-seeded at every
step from ``(run_seed, step, rank)`` (``step`` is a saved buffer); draws are small ``(N, L)`` tensors moved
to the batch's device, and everything else is batched tensor work on that device. The official code
drew two static masks per sequence offline (``dupe_factor``); we draw new ones every step.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch

from skelssl.methods import register_method
from skelssl.methods.base import Method, split_decay_groups
from skelssl.methods.losses import flow_direction_loss, flow_vector_loss, masked_mse
from skelssl.methods.masking import FrameMask, corrupt_frames, draw_frame_masks
from skelssl.models.heads import FlowHead, FrameHead
from skelssl.models.motion_transformer import MotionTransformer, truncated_normal_init

__all__ = [
    "MotionTransformerMethod",
    "flow_at",
    "octant_labels",
]

def flow_at(tokens: torch.Tensor, lengths: torch.Tensor, positions: torch.Tensor, channels: int) -> torch.Tensor:
    """Motion flow ``x_{t+1} - x_t`` per joint at the given frames (0 where ``t + 1`` is not real).

    Args:
        tokens: ``(N, L, J*C)`` uncorrupted frame tokens.
        lengths: ``(N,)`` real tokens.
        positions: ``(N, K)`` frames ``t``.
        channels: ``C``.

    Returns:
        ``(N, K, J, C)``.
    """
    n, length, d = tokens.shape
    k = positions.shape[1]
    nxt = (positions + 1).clamp(max=length - 1)
    here = tokens.gather(1, positions[:, :, None].expand(n, k, d))  # (N, K, J*C)
    there = tokens.gather(1, nxt[:, :, None].expand(n, k, d))
    has_next = (positions + 1) < lengths.to(positions.device)[:, None]  # (N, K)
    flow = (there - here) * has_next[:, :, None].to(tokens.dtype)
    return flow.view(n, k, d // channels, channels)


def octant_labels(flow: torch.Tensor) -> torch.Tensor:
    """``(..., C)`` flow -> ``(...)`` int64 direction class ``sum_c 2^c 1[d_c > 0]`` (8 octants for C = 3)."""
    weights = 2 ** torch.arange(flow.shape[-1], device=flow.device)
    return ((flow > 0).long() * weights).sum(dim=-1)


@register_method("motion_transformer")
class MotionTransformerMethod(Method):
    """Motion-Transformer pre-training on a :class:`~skelssl.models.motion_transformer.MotionTransformer`.

    Args:
        encoder: the Motion-Transformer encoder (its :meth:`prepare` and :meth:`encode` are used).
        tasks: ``("flow",)`` (reconstruction), ``("reconstruct",)`` or both.
        mask_ratio: fraction of real frames chosen per sequence (0.15).
        mask_probs: ``(zero, random, keep)`` corruption probabilities of chosen frames (0.8, 0.1, 0.1).
        mask_input: corrupt the chosen frames in the input for the flow task too (official: no).
        target: flow ``"direction"`` classification (reconstruction) or ``"vector"`` regression.
        flow_softmax: ``"all_joints"`` (official ``J*8``-way softmax) or ``"per_joint"`` (8-way).
        exclude_last: choose only frames with a successor (ours; official: any frame).
        joint_units: ``num_joint_units`` of the flow head (16).
        vector_beta: Smooth-L1 ``beta`` of ``target="vector"``.
        flow_weight, reconstruct_weight: loss weights of the two tasks.
        coords: leading input channels that are coordinates; the motion flow is of those only (a
            pose estimator's ``score`` has no direction of motion). Default: every channel (the job sets
            it from the store's channel names).
    """

    def __init__(
        self,
        encoder: MotionTransformer,
        *,
        tasks: Sequence[Literal["flow", "reconstruct"]] = ("flow",),
        mask_ratio: float = 0.15,
        mask_probs: Sequence[float] = (0.8, 0.1, 0.1),
        mask_input: bool = False,
        target: Literal["direction", "vector"] = "direction",
        flow_softmax: Literal["all_joints", "per_joint"] = "all_joints",
        exclude_last: bool = False,
        joint_units: int = 16,
        vector_beta: float = 1.0,
        flow_weight: float = 1.0,
        reconstruct_weight: float = 1.0,
        coords: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, MotionTransformer):
            raise TypeError(f"needs the motion_transformer encoder, got {type(encoder).__name__}")
        tasks = tuple(tasks)
        if not tasks or any(t not in ("flow", "reconstruct") for t in tasks) or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be a non-empty subset of ('flow', 'reconstruct'), got {tasks}")
        if target not in ("direction", "vector") or flow_softmax not in ("all_joints", "per_joint"):
            raise ValueError(f"bad target {target!r} or flow_softmax {flow_softmax!r}")
        self.encoder = encoder
        self.tasks, self.target, self.flow_softmax = tasks, target, flow_softmax
        self.mask_ratio, self.mask_probs = float(mask_ratio), tuple(float(p) for p in mask_probs)
        self.corrupt_input = bool(mask_input) or "reconstruct" in tasks
        self.exclude_last = bool(exclude_last)
        self.vector_beta = float(vector_beta)
        self.flow_weight, self.reconstruct_weight = float(flow_weight), float(reconstruct_weight)
        c, hidden = encoder.in_channels, encoder.out_dim
        if coords is not None and not 1 <= int(coords) <= c:
            raise ValueError(f"coords must be between 1 and the input's {c} channels, got {coords}")
        c = self.coords = c if coords is None else int(coords)
        self.flow_head = FlowHead(hidden, encoder.num_joints, c, joint_units, target) if "flow" in tasks else None
        self.frame_head = FrameHead(hidden, encoder.token_dim) if "reconstruct" in tasks else None
        for head in (self.flow_head, self.frame_head):
            if head is not None:
                truncated_normal_init(head, encoder.init_std)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """BERT's ``AdamWeightDecay`` groups: no decay on LayerNorm parameters and biases only."""
        return split_decay_groups(self, weight_decay, no_decay=("bias", "norm"))

    def pretext_loss(
        self, tokens: torch.Tensor, token_lens: torch.Tensor | None, draw: FrameMask
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of the configured tasks for prepared tokens and a mask draw.

        Args:
            tokens: ``(N, L, token_dim)`` from the encoder's ``prepare``.
            token_lens: ``(N,)`` real tokens or ``None`` (all real).
            draw: the chosen frames.

        Returns:
            The weighted loss and logs (``flow_loss``, ``flow_acc``, ``recon_loss`` as configured).
        """
        n, length, d = tokens.shape
        lens = token_lens if token_lens is not None else torch.full((n,), length, device=tokens.device)
        inputs = corrupt_frames(tokens, draw) if self.corrupt_input else tokens
        seq = self.encoder.encode(inputs, token_lens)  # (N, L, H)
        k, hidden = draw.positions.shape[1], seq.shape[2]
        picked = seq.gather(1, draw.positions[:, :, None].expand(n, k, hidden)).reshape(n * k, hidden)  # (N*K, H)
        valid = draw.valid.reshape(-1)  # (N*K,)
        total = seq.new_zeros((), dtype=torch.float32)
        logs: dict[str, torch.Tensor] = {}
        if self.flow_head is not None:
            flow = flow_at(tokens, lens, draw.positions, self.encoder.in_channels)[..., : self.coords]  # (N, K, J, c)
            flow = flow.reshape(n * k, *flow.shape[2:])
            out = self.flow_head(picked)  # (N*K, J, J*2^C) or (N*K, J, C)
            if self.target == "direction":
                loss, acc = flow_direction_loss(out, octant_labels(flow), valid, self.flow_softmax)
                logs["flow_acc"] = acc
            else:
                loss = flow_vector_loss(out, flow, valid, self.vector_beta)
            logs["flow_loss"] = loss.detach()
            total = total + self.flow_weight * loss
        if self.frame_head is not None:
            target = tokens.gather(1, draw.positions[:, :, None].expand(n, k, d)).reshape(n * k, d)
            loss = masked_mse(self.frame_head(picked), target, valid)
            logs["recon_loss"] = loss.detach()
            total = total + self.reconstruct_weight * loss
        return total, logs

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Prepare tokens, choose frames, run the pretext tasks.

        Args:
            batch: ``x`` ``(N, C, T, V, M)``, ``lengths`` ``(N,)``.

        Returns:
            The loss and logs ``loss`` plus the per-task entries of :meth:`pretext_loss`.
        """
        g = self.generator()
        tokens, token_lens = self.encoder.prepare(batch["x"], batch.get("lengths"))  # (N, L, D)
        n, length, _ = tokens.shape
        lens = token_lens if token_lens is not None else torch.full((n,), length, device=tokens.device)
        draw = draw_frame_masks(lens, length, ratio=self.mask_ratio, probs=self.mask_probs, generator=g,
                                exclude_last=self.exclude_last)
        loss, logs = self.pretext_loss(tokens, token_lens, draw)
        with torch.no_grad():
            self.step += 1
        logs = {"loss": loss.detach(), **logs}
        return loss, logs
