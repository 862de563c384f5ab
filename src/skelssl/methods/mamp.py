"""MAMP pre-training: masked motion prediction (Mao et al., ICCV 2023), from docs/mamp.md.

Per step (§8.0): the batch is augmented as MAMP's feeder does (random crop of 50-100 % of the real
frames, at least 64, linearly resized to the encoder's 120 frames; a random rotation of up to 0.3 rad
about each axis), split into independent person sequences, and tokenised into ``L = T/4 * V`` joint
tokens. 90 % of the tokens are masked, drawn with probability increasing with the token's motion
(Gumbel-top-k, :func:`skelssl.methods.masking.draw_mask`); the encoder embeds and encodes only the ``K``
visible tokens (74 of 750); a light decoder sees the projected visible latents and a mask token at
every other position, each with its own spatial and temporal embeddings, and regresses for every
token the per-frame motion ``x[t+1] - x[t]`` of its ``4 x C`` numbers, normalised per token. The MSE
is averaged over masked tokens only.

``masking="uniform", target="position"`` is the MAE baseline of the paper's ablation (same network,
uniform masking, per-token normalised positions as the target).

Randomness: as every method here, one CPU ``torch.Generator`` re-seeded at each step from
``(run_seed, step, rank)`` (``step`` is a saved buffer) draws the crops, rotations and Gumbel noise; the
draws are moved to the batch's device and all the work is batched there. Drop path inside the
encoder is turned off for pre-training (official rate 0); the encoder's own ``drop_path`` (its spec)
is what fine-tuning uses.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

from skelssl.methods import published_rows, register_method
from skelssl.methods.base import Method, split_decay_groups
from skelssl.methods.losses import masked_mse
from skelssl.methods.masking import TokenMask, draw_mask, keep_count, patchify
from skelssl.models.mamp import MAMPEncoder, xavier_init
from skelssl.models.transformer_blocks import TransformerBlock
from skelssl.transforms.spatial import rotate
from skelssl.transforms.temporal import crop_resize

__all__ = ["MAMP", "motion_target", "normalize_tokens"]


def motion_target(seq: torch.Tensor, t_patch: int) -> torch.Tensor:
    """The regression target: per-frame motion ``D[t] = x[t+1] - x[t]``, ``D[T-1] = 0``, patchified.

    Args:
        seq: ``(B, C, T, V)`` positions.
        t_patch: frames per token.

    Returns:
        ``(B, L, p*C)`` signed motion, ordered ``(frame, coordinate)`` within a token.
    """
    d = torch.zeros_like(seq)
    d[:, :, :-1] = seq[:, :, 1:] - seq[:, :, :-1]  # (B, C, T, V); the last frame stays 0
    return patchify(d, t_patch)


def normalize_tokens(target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-token normalisation (``norm_skes_loss``): ``(x - mean) / sqrt(var + eps)``, unbiased var.

    An all-zero (or constant) token maps to 0.

    Shape:
        ``(..., D)`` -> ``(..., D)`` float32.
    """
    t = target.float()
    mean = t.mean(dim=-1, keepdim=True)
    var = t.var(dim=-1, keepdim=True, unbiased=True)
    return (t - mean) / torch.sqrt(var + eps)


# -- evaluation (docs/mamp.md) ------------------------------------------------------------------------
LINEAR_PRESET = {
    # SGD 0.1, batch 256, 100 epochs, cosine to 0, non-affine BatchNorm before the linear layer.
    "epochs": 100, "batch_size": 256, "head": "linear_bn",
    "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0},
    "schedule": {"name": "cosine", "min_lr": 0.0},
}
FINETUNE_PRESET = {
    # The official head reads the 25 per-joint features (mean over time and persons, V x 256 = 6400).
    "epochs": 100, "batch_size": 48, "head": "mlp", "label_smoothing": 0.1, "dropout": 0.3, "layer_decay": 0.8,
    "encoder": {"pool": "joints"},
    "optim": {"name": "adamw", "lr": 3e-4, "weight_decay": 0.05, "no_decay": []},
    "schedule": {"name": "cosine", "warmup_epochs": 5, "min_lr": 1e-5},
}
_README = "maoyunyao/MAMP README.md (released checkpoints)"
_AWESOME_REF = "Yingfei-Wu/Awesome-Self-supervised-Skeleton-based-Action-Recognition README"
_PAPER = "MAMP paper (unverified)"
PUBLISHED = [
    *published_rows("MAMP", "linear", {"ntu60-xsub": 85.0, "ntu60-xview": 89.0, "ntu120-xsub": 78.1, "ntu120-xset": 79.5}, "READ", _README,
                    variant="released checkpoint"),
    *published_rows("MAMP", "finetune", {"ntu60-xsub": 93.0, "ntu60-xview": 97.5, "ntu120-xsub": 89.8, "ntu120-xset": 91.5}, "READ", _README,
                    variant="released checkpoint"),
    *published_rows(
        "MAMP", "linear",
        {"ntu60-xsub": 84.9, "ntu60-xview": 89.1, "ntu120-xsub": 78.6, "ntu120-xset": 79.1, "pku2-xsub": 53.8},
        "2nd-hand", _AWESOME_REF, variant="paper",
    ),
    *published_rows("MAMP", "finetune", {"ntu60-xsub": 93.1, "ntu60-xview": 97.5, "ntu120-xsub": 90.0, "ntu120-xset": 91.3}, "RECALL", _PAPER,
                    variant="paper"),
    *published_rows("MAMP", "semi", {"ntu60-xsub": 66.0, "ntu60-xview": 68.7}, "RECALL", _PAPER, label_fraction=0.01, variant="paper"),
    # The notes give X-sub 10 % as "≈ 88.0-88.5" recalled, with a 2nd-hand note of 88.0.
    *published_rows("MAMP", "semi", {"ntu60-xsub": 88.0}, "2nd-hand", "note quoting the MAMP paper (recalled as 88.0-88.5)",
                    label_fraction=0.1, variant="paper"),
    *published_rows("MAMP", "semi", {"ntu60-xview": 91.5}, "RECALL", _PAPER, label_fraction=0.1, variant="paper"),
    *published_rows("MAMP", "transfer", {"pku2-xsub": 70.6}, "RECALL", _PAPER, pretrained_on="ntu60", variant="paper"),
    *published_rows("MAMP", "transfer", {"pku2-xsub": 73.2}, "RECALL", _PAPER, pretrained_on="ntu120", variant="paper"),
    *published_rows("MAMP", "transfer", {"pku2-xsub": 70.1}, "RECALL", _PAPER, pretrained_on="pku1", variant="paper"),
    # "Linear PKU-I" in the notes; cross-subject is the usual PKU-MMD I split (our mapping).
    *published_rows("MAMP", "linear", {"pku1-xsub": 92.9}, "RECALL", "MAMP paper (unverified; split assumed xsub)", variant="paper"),
    *published_rows(
        "Transformer (scratch)", "finetune", {"ntu60-xsub": 83.1}, "2nd-hand",
        "note quoting the MAMP paper (MAMP's transformer trained from random init)", random_init=True,
    ),
]


@register_method("mamp", linear=LINEAR_PRESET, finetune=FINETUNE_PRESET, published=PUBLISHED)
class MAMP(Method):
    """Masked motion prediction on a :class:`~skelssl.models.mamp.MAMPEncoder`.

    Args:
        encoder: the MAMP encoder.
        mask_ratio: fraction of tokens masked (0.9; ``int(L (1 - ratio))`` stay visible: 74 of 750).
        masking: ``"motion"`` (MAMP's motion-aware Gumbel-top-k) or ``"uniform"`` (MAE).
        tau: motion-aware temperature (0.80 NTU-60 and PKU-MMD, 0.75 NTU-120); ``<= 0`` is uniform.
        target: ``"motion"`` (per-frame motion, MAMP) or ``"position"`` (MAE).
        norm_target: per-token normalisation of the target (``norm_skes_loss``, on in every config).
        decoder_depth: decoder blocks (3 for NTU-60, 5 for NTU-120 and PKU-MMD).
        decoder_dim, decoder_heads: decoder width and heads (default: the encoder's, 256 and 8).
        crop: ``(lo, hi)`` kept fraction of the real frames of the random temporal crop (``p_interval``
            0.5-1); ``None`` resizes the whole sequence.
        min_frames: floor of the crop length (64).
        rotate: bound of each random rotation angle in radians (0.3; 0 disables it).
        drop_path: the encoder's drop-path rate during pre-training (official 0).
        coords: leading input channels that are coordinates (2 or 3); later channels (a pose estimator's
            ``score``) are left unrotated. Default: every channel (the job sets
            it from the store's channel names).
    """

    def __init__(
        self,
        encoder: MAMPEncoder,
        *,
        mask_ratio: float = 0.9,
        masking: Literal["motion", "uniform"] = "motion",
        tau: float = 0.8,
        target: Literal["motion", "position"] = "motion",
        norm_target: bool = True,
        decoder_depth: int = 3,
        decoder_dim: int | None = None,
        decoder_heads: int | None = None,
        crop: Sequence[float] | None = (0.5, 1.0),
        min_frames: int = 64,
        rotate: float = 0.3,
        drop_path: float = 0.0,
        coords: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, MAMPEncoder):
            raise TypeError(f"needs the mamp encoder, got {type(encoder).__name__}")
        if masking not in ("motion", "uniform") or target not in ("motion", "position"):
            raise ValueError(f"masking must be 'motion'|'uniform' and target 'motion'|'position', got {masking!r}, {target!r}")
        if decoder_depth < 1:
            raise ValueError(f"decoder_depth must be >= 1, got {decoder_depth}")
        coords = encoder.in_channels if coords is None else int(coords)
        if rotate and coords not in (2, 3):
            raise ValueError(f"rotation needs 2-D or 3-D coordinates, the input has {coords} coordinate channels "
                             f"(method.kwargs.rotate=0 turns it off)")
        if crop is not None and (len(crop) != 2 or not 0.0 < crop[0] <= crop[1]):
            raise ValueError(f"crop must be (lo, hi) with 0 < lo <= hi, or None; got {crop}")
        self.encoder = encoder
        self.keep = keep_count(encoder.num_tokens, mask_ratio)  # checks the ratio too
        self.mask_ratio, self.masking, self.tau = float(mask_ratio), masking, float(tau)
        self.target, self.norm_target = target, bool(norm_target)
        self.crop = None if crop is None else (float(crop[0]), float(crop[1]))
        self.min_frames, self.rotate = int(min_frames), float(rotate)
        self.coords = None if coords == encoder.in_channels else coords
        encoder.set_drop_path(drop_path)  # pre-training rate; the spec keeps the fine-tuning one

        d_enc = encoder.dim
        d = int(decoder_dim or d_enc)
        heads = int(decoder_heads or encoder.blocks[0].attn.heads)
        if d % heads:
            raise ValueError(f"decoder_dim {d} is not a multiple of decoder_heads {heads}")
        # The target is of the coordinates only: a score is an input, never something to reconstruct.
        self.target_channels = coords
        out = encoder.t_patch * coords  # 12 numbers per token (3D)
        # Parameter names follow the official checkpoint (§8.12).
        self.decoder_embed = nn.Linear(d_enc, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, 1, encoder.num_joints, d))
        self.decoder_temp_embed = nn.Parameter(torch.zeros(1, encoder.time_tokens, 1, d))
        self.decoder_blocks = nn.ModuleList(
            TransformerBlock(d, heads, d // heads, 4 * d, 0.0, pre_norm=True, qkv_bias=True, proj_bias=True,
                             norm_eps=1e-5, unfused=encoder.unfused)
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(d, eps=1e-5)
        self.decoder_pred = nn.Linear(d, out)
        for part in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            xavier_init(part)
        for p in (self.mask_token, self.decoder_pos_embed, self.decoder_temp_embed):
            nn.init.trunc_normal_(p, std=0.02, a=-2.0, b=2.0)

    # -- engine hooks ------------------------------------------------------------------------------
    def param_groups(self, weight_decay: float) -> list[dict]:
        """timm 0.3.2 ``add_weight_decay`` (§8.7): only 1-D tensors (biases, norm scales) skip decay;
        positional/temporal embeddings, the mask token and the patch convolution are decayed."""
        return split_decay_groups(self, weight_decay, no_decay=())

    # -- the pretext ---------------------------------------------------------------------------------
    def augment(self, x: torch.Tensor, lengths: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        """MAMP's training feeder, batched: random crop-resize to ``frames``, then a random rotation.

        Shape:
            ``(N, C, T, V, M)`` -> ``(N, C, frames, V, M)``.
        """
        frames = self.encoder.frames
        if self.crop is not None:
            x = crop_resize(x, lengths, frames, ratio=self.crop, min_frames=self.min_frames, generator=generator)
        else:  # the whole real sequence, resized
            x = crop_resize(x, lengths, frames, centre=1.0)
        if self.rotate > 0:
            x = rotate(x, self.rotate, generator=generator, coords=self.coords)
        return x

    def decode(self, latent: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Decoder: visible latents + mask tokens at every position -> per-token predictions.

        Equivalent to the official "append mask tokens, then un-shuffle": each projected latent is
        scattered to its token position, every other position holds the mask token.

        Args:
            latent: ``(B, K, D_enc)`` encoder output (after its final LayerNorm).
            ids_keep: ``(B, K)`` positions of the latents.

        Returns:
            ``(B, L, t_patch * C)``.
        """
        h = self.decoder_embed(latent)  # (B, K, D)
        b, k, d = h.shape
        length = self.encoder.num_tokens
        full = self.mask_token.to(h.dtype).expand(b, length, d)
        full = full.scatter(1, ids_keep[:, :, None].expand(b, k, d), h)  # (B, L, D)
        pos = (self.decoder_temp_embed + self.decoder_pos_embed).reshape(length, d)  # (L, D) time-major
        full = full + pos[None].to(full.dtype)
        for block in self.decoder_blocks:
            full = block(full)
        return self.decoder_pred(self.decoder_norm(full))  # (B, L, p*C)

    def pretext_loss(self, seq: torch.Tensor, draw: TokenMask) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss for person sequences and a mask draw.

        Args:
            seq: ``(B, C, frames, V)`` augmented person sequences.
            draw: the visible/masked tokens.

        Returns:
            The masked MSE and logs.
        """
        p = self.encoder.t_patch
        latent = self.encoder.encode(self.encoder.embed_visible(seq, draw.ids_keep))  # (B, K, D): visible only
        pred = self.decode(latent, draw.ids_keep)  # (B, L, p*coords)
        with torch.no_grad():
            xyz = seq[:, : self.target_channels]  # (B, coords, frames, V)
            target = motion_target(xyz, p) if self.target == "motion" else patchify(xyz, p)  # (B, L, p*coords)
            if self.norm_target:
                target = normalize_tokens(target)
        loss = masked_mse(pred, target, draw.mask)
        return loss, {"loss": loss.detach()}

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Augment, split persons, mask, encode the visible tokens, decode, regress.

        Args:
            batch: ``x`` ``(N, C, T, V, M)``, ``lengths`` ``(N,)``.

        Returns:
            The loss and ``{"loss"}``.
        """
        g = self.generator()
        x = self.augment(batch["x"].float(), batch.get("lengths"), g)  # (N, C, frames, V, M)
        seq = self.encoder.sequences(x)  # (N*M, C, frames, V): persons are independent sequences
        with torch.no_grad():
            # the motion that guides masking is of the coordinates (a score's changes are not motion)
            patches = patchify(seq[:, : self.target_channels], self.encoder.t_patch)  # (B, L, p*coords) positions
            draw = draw_mask(patches, self.encoder.num_joints, self.keep, self.tau, g, self.masking == "motion")
        loss, logs = self.pretext_loss(seq, draw)
        with torch.no_grad():
            self.step += 1
        return loss, logs
