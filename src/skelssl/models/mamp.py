"""MAMP encoder (Mao, Deng, Zhou, Fang, Ouyang, Li, "Masked Motion Predictors are Strong 3D Action
Representation Learners", ICCV 2023), written from a description of the
official code (docs/mamp.md; the code has no licence).

A plain spatio-temporal ViT over joint tokens (§8.2-8.3):

- **Persons are independent sequences**: ``(N, C, T, V, M)`` becomes ``N*M`` sequences; an absent
  (all-zero) person is encoded too, and its features enter the mean over persons, as in the
  official heads (§8.1.6, pitfall 3).
- **Tokens**: one token per joint per ``t_patch = 4`` consecutive frames (``T/4 * V`` tokens, 750 at
  120 frames x 25 joints), embedded by a ``(4, 1)``-strided convolution (a linear map of the token's
  ``4 * C`` numbers, PyTorch's default init) plus a learnable spatial ``pos_embed (1, 1, V, D)`` and
  temporal ``temp_embed (1, T/4, 1, D)`` (normal std 0.02), flattened time-major (token ``t*V + v``).
- **Blocks**: ``depth`` pre-LN :class:`~skelssl.models.transformer_blocks.TransformerBlock` s (qkv and
  projection biases, GELU MLP of ratio 4, LayerNorm eps 1e-5, no dropout), full attention over all
  tokens of one person, then a final LayerNorm. Linear layers start Xavier-uniform with zero bias.
  Drop path rises linearly from 0 to ``drop_path`` over the blocks (0.3 for fine-tuning; pre-training
  turns it off through :meth:`MAMPEncoder.set_drop_path`, the linear probe runs in eval mode).
- **Pooling** (§8.8): the mean over persons, time tokens and joints -> ``D`` (the linear probe's input);
  ``pool="joints"`` keeps the joints apart (mean over time tokens, joints concatenated, mean over
  persons -> ``V * D``), the input of MAMP's fine-tuning head.

The encoder works on exactly ``frames`` frames (the official 120, after ``valid_crop_resize``). Input
of another length, or with ``lengths``, is first resampled: the real frames of each sequence are
linearly resized to ``frames`` (MAMP's test-time resize without its 5 % centre crop; the identity when
the input already has ``frames`` real frames).

For pre-training, :meth:`MAMPEncoder.embed_visible` embeds only the visible tokens (their raw
``4 * C`` numbers are gathered first) and :meth:`MAMPEncoder.encode` runs the blocks on them: no
compute is spent on masked tokens.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from skelssl.core.batch import full_lengths
from skelssl.core.layouts import Layout, get_layout
from skelssl.models import register_encoder
from skelssl.models.base import Encoder
from skelssl.models.transformer_blocks import TransformerBlock, UnfusedSwitch, preset_sizes
from skelssl.transforms.temporal import resize_windows

__all__ = ["MAMPEncoder", "PRESETS", "JointEmbed", "embed_patches", "xavier_init"]

# §8.3: 8 blocks of width 256, 8 heads (32 wide), MLP 1024. "small" is our CPU size, "tiny" for tests.
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"depth": 8, "dim": 256, "heads": 8, "mlp_ratio": 4},
    "small": {"depth": 4, "dim": 128, "heads": 4, "mlp_ratio": 4},
    "tiny": {"depth": 2, "dim": 32, "heads": 4, "mlp_ratio": 2},
}


def xavier_init(module: nn.Module) -> None:
    """MAMP's model-wide init: every ``nn.Linear`` Xavier-uniform with zero bias, LayerNorm 1/0.

    Convolutions keep PyTorch's default init (the official init touches ``nn.Linear`` only).
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class JointEmbed(nn.Module):
    """Token embedding: ``Conv2d(C, D, kernel=stride=(t_patch, 1))`` over ``(C, T, V)``.

    The convolution is applied as a linear map of each token's gathered ``(C, t_patch)`` numbers, so
    the same weights embed all tokens or only the visible ones. The parameter is named and shaped as
    the official ``joints_embed.proj.weight (D, C, 4, 1)``.

    Args:
        in_channels: ``C``.
        dim: ``D``.
        t_patch: frames per token.

    Shape:
        ``(B, K, C * t_patch)`` (ordered ``(c, f)``, see :func:`embed_patches`) -> ``(B, K, D)``.
    """

    def __init__(self, in_channels: int, dim: int, t_patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=(t_patch, 1), stride=(t_patch, 1))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        w = self.proj.weight.flatten(1)  # (D, C*t_patch), (c, f) order
        return F.linear(patches, w, self.proj.bias)


def embed_patches(seq: torch.Tensor, t_patch: int) -> torch.Tensor:
    """``(B, C, T, V)`` -> ``(B, T/p * V, C * p)``: each token's numbers in the conv's ``(c, f)`` order.

    Token ``t * V + v`` holds frames ``[p t, p t + p)`` of joint ``v`` (time-major, as the official
    ``(N*M, T/4, V, D)`` layout flattened).
    """
    b, c, t, v = seq.shape
    tp = t // t_patch
    x = seq.reshape(b, c, tp, t_patch, v).permute(0, 2, 4, 1, 3)  # (B, T/p, V, C, p)
    return x.reshape(b, tp * v, c * t_patch)


@register_encoder("mamp")
class MAMPEncoder(UnfusedSwitch, Encoder):
    """MAMP's transformer encoder over joint tokens (see the module docstring).

    Args:
        in_channels: coordinates per joint ``C``.
        layout: skeleton layout (or its name); gives ``V``.
        num_persons: ``M`` of the data (persons are encoded independently, so any ``M`` works).
        preset: ``"paper"`` (8 x 256, 8 heads), ``"small"`` (4 x 128, 4 heads, CPU) or ``"tiny"``;
            ``depth``/``dim``/``heads``/``mlp_ratio`` override it.
        frames: frames per sequence the encoder works on (120); a multiple of ``t_patch``.
        t_patch: frames per token (4).
        drop_path: the deepest block's stochastic-depth rate; block ``i`` gets ``drop_path * i / (depth - 1)``.
        pool: ``"mean"`` (over persons, time and joints: ``D``) or ``"joints"`` (``V * D``, the fine-tune
            head's input).
        unfused: explicit softmax attention instead of the fused kernel (benchmark and checks only).

    Shape:
        ``forward``: ``(N, C, T, V, M)`` (+ ``lengths`` ``(N,)``) -> ``(N, out_dim)``;
        ``forward_features``: -> ``(N, M, frames / t_patch, V, D)`` after the final LayerNorm.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        layout: Layout | str,
        num_persons: int = 2,
        preset: Literal["paper", "small", "tiny"] = "paper",
        depth: int | None = None,
        dim: int | None = None,
        heads: int | None = None,
        mlp_ratio: int | None = None,
        frames: int = 120,
        t_patch: int = 4,
        drop_path: float = 0.0,
        pool: Literal["mean", "joints"] = "mean",
        unfused: bool = False,
    ) -> None:
        super().__init__()
        size = preset_sizes(PRESETS, preset, depth=depth, dim=dim, heads=heads, mlp_ratio=mlp_ratio)
        if size["dim"] % size["heads"]:
            raise ValueError(f"dim {size['dim']} is not a multiple of heads {size['heads']}")
        if t_patch < 1 or frames < t_patch or frames % t_patch:
            raise ValueError(f"frames ({frames}) must be a positive multiple of t_patch ({t_patch})")
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path}")
        if pool not in ("mean", "joints"):
            raise ValueError(f"pool must be 'mean' or 'joints', got {pool!r}")
        layout = get_layout(layout)
        self.layout, self.in_channels, self.num_persons = layout, in_channels, num_persons
        self.frames, self.t_patch, self.pool_mode = frames, t_patch, pool
        self.num_joints = layout.num_joints
        self.time_tokens = frames // t_patch
        self.num_tokens = self.time_tokens * self.num_joints
        d = size["dim"]
        self.dim = d
        self.out_dim = d * self.num_joints if pool == "joints" else d
        self.joints_embed = JointEmbed(in_channels, d, t_patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, 1, self.num_joints, d))  # spatial, per joint
        self.temp_embed = nn.Parameter(torch.zeros(1, self.time_tokens, 1, d))  # per 4-frame segment
        self.blocks = nn.ModuleList(
            TransformerBlock(d, size["heads"], d // size["heads"], d * size["mlp_ratio"], 0.0, pre_norm=True,
                             qkv_bias=True, proj_bias=True, norm_eps=1e-5, unfused=unfused)
            for _ in range(size["depth"])
        )
        self.norm = nn.LayerNorm(d, eps=1e-5)
        self.num_layers = len(self.blocks)  # layer-wise lr decay: embeddings 0, blocks.i -> i + 1, rest top
        self.set_drop_path(drop_path)
        xavier_init(self)
        # The official helper truncates at +-2 (absolute), i.e. effectively an untruncated N(0, 0.02).
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-2.0, b=2.0)
        nn.init.trunc_normal_(self.temp_embed, std=0.02, a=-2.0, b=2.0)
        kwargs = dict(in_channels=in_channels, layout=layout.name, num_persons=num_persons, preset=preset, **size,
                      frames=frames, t_patch=t_patch, drop_path=drop_path, pool=pool)
        self.spec = {"name": "mamp", "kwargs": kwargs}  # build_encoder replaces it

    # -- runtime switches --------------------------------------------------------------------------
    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth rising linearly from 0 (first block) to ``rate`` (last block)."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop path rate must be in [0, 1), got {rate}")
        rates = torch.linspace(0.0, float(rate), len(self.blocks)).tolist() if self.blocks else []
        for block, r in zip(self.blocks, rates):
            block.drop_path.p = float(r)

    # -- input ---------------------------------------------------------------------------------------
    def sequences(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The batch as ``N*M`` independent person sequences of exactly ``frames`` frames.

        Args:
            x: ``(N, C, T, V, M)``, zero-padded along ``T``.
            lengths: ``(N,)`` real frames; with lengths, or when ``T != frames``, each sequence's real
                frames are linearly resized to ``frames`` (the identity at ``frames`` real frames).

        Returns:
            ``(N*M, C, frames, V)`` float, person-major within a sample (row ``n*M + m``).
        """
        n, c, t, v, m = self.check_input(x)
        if t != self.frames or lengths is not None:
            lens = full_lengths(x, lengths).clamp(min=1)
            x = resize_windows(x, torch.zeros_like(lens), lens, self.frames)  # (N, C, frames, V, M)
        return x.permute(0, 4, 1, 2, 3).reshape(n * m, c, self.frames, v)  # (N*M, C, T, V)

    # -- tokens and blocks ---------------------------------------------------------------------------
    def position_table(self) -> torch.Tensor:
        """``(L, D)``: spatial + temporal embedding of every token, time-major."""
        return (self.temp_embed + self.pos_embed).reshape(self.num_tokens, self.dim)

    def embed(self, seq: torch.Tensor) -> torch.Tensor:
        """Embed every token: ``(B, C, frames, V)`` -> ``(B, L, D)`` with positions added."""
        tokens = self.joints_embed(embed_patches(seq, self.t_patch))  # (B, L, D)
        return tokens + self.position_table()[None]

    def embed_visible(self, seq: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Embed only the tokens ``ids_keep`` (positions added before masking, as the official code).

        Args:
            seq: ``(B, C, frames, V)`` person sequences.
            ids_keep: ``(B, K)`` int64 token indices in ``[0, L)``.

        Returns:
            ``(B, K, D)``.
        """
        patches = embed_patches(seq, self.t_patch)  # (B, L, C*p)
        b, k = ids_keep.shape
        picked = patches.gather(1, ids_keep[:, :, None].expand(b, k, patches.shape[2]))  # (B, K, C*p)
        return self.joints_embed(picked) + self.position_table()[ids_keep]  # (B, K, D)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """The blocks and the final LayerNorm: ``(B, K, D)`` -> ``(B, K, D)``."""
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    # -- the Encoder interface -------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> ``(N, M, frames / t_patch, V, D)``: every token of every person."""
        n, m = x.shape[0], x.shape[-1]
        h = self.encode(self.embed(self.sequences(x, lengths)))  # (N*M, L, D)
        return h.view(n, m, self.time_tokens, self.num_joints, self.dim)

    def pool(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, M, T', V, D)`` -> ``(N, D)`` (``pool="mean"``) or ``(N, V*D)`` (``pool="joints"``).

        Every token is real (the input was resized to ``frames``), so ``lengths`` is not needed.
        """
        if self.pool_mode == "mean":
            return features.mean(dim=(1, 2, 3))  # (N, D)
        per_joint = features.mean(dim=2).flatten(2)  # (N, M, V*D): official `(N, M, 6400)`
        return per_joint.mean(dim=1)  # (N, V*D)
