"""SimCLR on skeletons: the plain contrastive baseline (Chen et al., ICML 2020), i.e. the in-batch
counterpart of SkeletonCLR's MoCo-queue recipe.

Two augmented views of each sequence go through the same encoder and an MLP projection head; NT-Xent
pulls the two views of a sample together and pushes the other ``2N - 2`` embeddings of the batch away.
The views use the augmentations common to the skeleton methods here: a temporal crop-resize (ISC /
MAMP ``valid_crop_resize``) then a shear (SkeletonCLR, Hi-TRS) and optionally a rotation (MAMP).

Randomness: the views are drawn from a CPU ``torch.Generator`` re-seeded at every step from
``(run_seed, step, rank)`` (:meth:`~skelssl.methods.base.Method.generator`; ``run_seed`` is the run's
``trainer.seed``, ``step`` a registered buffer). The augmentation stream is therefore
saved and restored with the method's state dict (a resumed run draws the same views as an unbroken
one), is the same on CPU and GPU, and differs between data-parallel processes. Only the small
per-sample parameters are drawn on the CPU; the transforms themselves run on the batch's device.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from skelssl.methods import register_method
from skelssl.methods.base import Method, no_gather
from skelssl.methods.losses import contrastive_loss, gathered_offset, nt_xent_logits
from skelssl.models.base import Encoder
from skelssl.models.heads import ProjectionHead
from skelssl import transforms as T

__all__ = ["SimCLR"]


@register_method("simclr")
class SimCLR(Method):
    """SimCLR with an arbitrary skeleton encoder.

    Args:
        encoder: a built encoder (``(N, C, T, V, M)`` -> ``(N, D)``).
        proj_dim: embedding size of the projection head (SimCLR: 128).
        hidden_dim: hidden width of the head; ``None`` for a linear head.
        temperature: NT-Xent temperature.
        frames: length of every view after crop-resize (ISC: 64).
        crop: range of the kept fraction of the real frames (MAMP: ``(0.5, 1.0)``); crops are at least
            ``frames`` long or the whole sequence, as in ISC where the floor is the clip length.
        shear: off-diagonal bound of the shear (0 disables it).
        rotate: bound of each rotation angle in radians (0 disables it; MAMP uses 0.3).
        coords: leading input channels that are coordinates (2 or 3); later channels (a pose estimator's
            ``score``) are carried unchanged by the augmentations. Default: every channel (the job sets
            it from the store's channel names).

    Attributes:
        gather: ``Tensor -> Tensor`` that concatenates a tensor over data-parallel processes with
            gradients; identity by default, set by the engine for multi-process training so the
            negatives come from the global batch.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        proj_dim: int = 128,
        hidden_dim: int | None = 512,
        temperature: float = 0.1,
        frames: int = 64,
        crop: tuple[float, float] = (0.5, 1.0),
        shear: float = 0.5,
        rotate: float = 0.0,
        coords: int | None = None,
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.encoder = encoder
        self.head = ProjectionHead(encoder.out_dim, proj_dim, hidden_dim)
        self.temperature = float(temperature)
        steps: list[tuple] = [(T.crop_resize, {"out_frames": frames, "ratio": tuple(crop), "min_frames": frames})]
        if shear > 0:
            steps.append((T.shear, {"magnitude": shear, "coords": coords}))
        if rotate > 0:
            steps.append((T.rotate, {"max_angle": rotate, "coords": coords}))
        self.augment = T.Augment(steps)
        self.gather: Callable[[torch.Tensor], torch.Tensor] = no_gather

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Two views -> encoder -> head -> NT-Xent.

        Args:
            batch: ``x`` ``(N, C, T, V, M)``, ``lengths`` ``(N,)``.

        Returns:
            The loss and logs ``loss``, ``pos_sim`` (mean cosine similarity of the positive pairs) and
            ``top1`` (fraction of anchors whose nearest candidate is their positive).
        """
        g = self.generator()
        view1 = self.augment(batch, g)
        view2 = self.augment(batch, g)
        n = view1["x"].shape[0]
        x = torch.cat([view1["x"], view2["x"]], dim=0)  # (2N, C, frames, V, M): one encoder pass
        lengths = torch.cat([view1["lengths"], view2["lengths"]], dim=0)  # (2N,)
        z = self.head(self.encoder(x, lengths))  # (2N, proj_dim)
        z1, z2 = z[:n], z[n:]  # (N, proj_dim) each
        z1_all, z2_all = self.gather(z1), self.gather(z2)  # (B, proj_dim), B = N x processes
        offset = gathered_offset(n, z1_all.shape[0])
        logits, target = nt_xent_logits(z1, z2, self.temperature, z1_all=z1_all, z2_all=z2_all, offset=offset)
        loss, top1 = contrastive_loss(logits, target)
        with torch.no_grad():
            self.step += 1
            logs = {
                "loss": loss.detach(),
                "pos_sim": F.cosine_similarity(z1.float(), z2.float(), dim=1).mean(),
                "top1": top1,
            }
        return loss, logs
