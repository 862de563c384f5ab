"""Plain transformer parts shared by the transformer encoders (Hi-TRS, MAMP, Motion-Transformer).

- :class:`MultiHeadAttention`: self-attention with a free per-head width (Hi-TRS uses 8 heads of 64
  whatever the model width), computed by PyTorch's fused ``scaled_dot_product_attention``; the
  ``unfused`` flag computes ``softmax(Q K^T / sqrt(d)) V`` explicitly, as the official codes do, for
  the naive benchmark variant and for checking the fused path.
- :class:`TransformerBlock`: attention + MLP with residuals, pre-LN (``x + Drop(Attn(LN(x)))``, then
  ``x + Drop(MLP(LN(x)))``; Hi-TRS ``TRS_submodel_pre_LN.py``, ViT/MAE/MAMP) or post-LN, with optional
  stochastic depth on both residual branches (:class:`DropPath`; MAMP fine-tuning).
- :func:`preset_sizes`: a named size (``"paper"``, ``"small"``, ``"tiny"``, ...) with per-argument overrides.
- Sinusoid tables (Vaswani et al. 2017) used to initialise learnable position encodings: 1-D, and
  Hi-TRS's 2-D form (half of the channels encode the column index, half the row index).

Masks follow ``scaled_dot_product_attention``: a boolean ``attn_mask`` is True where a query **may**
attend to a key; a float mask is added to the scores. Both broadcast to ``(B, heads, L, L)``.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "preset_sizes",
    "UnfusedSwitch",
    "DropPath",
    "MultiHeadAttention",
    "TransformerBlock",
    "key_padding_mask",
    "sinusoid_table",
    "sinusoid_table_2d",
]


def preset_sizes(presets: Mapping[str, Mapping[str, int]], preset: str, **overrides: int | None) -> dict[str, int]:
    """The sizes of ``presets[preset]``, each replaced by its override (as ``int``) where that is not ``None``.

    Example: ``preset_sizes(PRESETS, "small", depth=None, dim=64)`` is the small preset 64 wide.

    Raises:
        ValueError: for a preset that is not in ``presets`` (the message lists the known ones).
    """
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(presets)}")
    sizes = dict(presets[preset])
    sizes.update({key: int(value) for key, value in overrides.items() if value is not None})
    return sizes


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention.

    Args:
        dim: model width ``D``.
        heads: number of heads ``H``.
        head_dim: width of each head; the inner width is ``H * head_dim`` (may differ from ``D``).
        qkv_bias: biases on the query/key/value projections (Hi-TRS: none; MAMP: yes).
        proj_bias: bias on the output projection (Hi-TRS: none; MAMP: yes).
        attn_dropout: dropout on the attention probabilities (Hi-TRS: 0).
        unfused: compute the softmax explicitly instead of calling the fused kernel.

    Shape:
        ``(B, L, D)`` (+ ``attn_mask`` broadcastable to ``(B, H, L, L)``) -> ``(B, L, D)``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        head_dim: int,
        *,
        qkv_bias: bool = False,
        proj_bias: bool = False,
        attn_dropout: float = 0.0,
        unfused: bool = False,
    ) -> None:
        super().__init__()
        if dim < 1 or heads < 1 or head_dim < 1:
            raise ValueError(f"dim, heads and head_dim must be >= 1, got {dim}, {heads}, {head_dim}")
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        # One fused projection for q, k and v (the same parameters as three separate matrices).
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.proj = nn.Linear(inner, dim, bias=proj_bias)
        self.attn_dropout = float(attn_dropout)
        self.unfused = unfused

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L, D)`` -> ``(B, L, D)``; ``attn_mask``: bool (True = may attend) or additive float."""
        b, length, _ = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, head_dim)
        p = self.attn_dropout if self.training else 0.0
        if self.unfused:
            out = _explicit_attention(q, k, v, attn_mask, p)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        out = out.transpose(1, 2).reshape(b, length, self.heads * self.head_dim)  # (B, L, H*head_dim)
        return self.proj(out)


def _explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None, dropout: float
) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) + mask) v``, materialising the ``(B, H, L, L)`` scores.

    A blocked position gets the dtype's most negative finite value (the official Hi-TRS code fills
    with -1e9), so a fully blocked row gives uniform weights instead of NaN.
    """
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, H, L, L)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attn_mask.to(scores.dtype)
    probs = F.softmax(scores, dim=-1)
    if dropout > 0:
        probs = F.dropout(probs, dropout)
    return torch.matmul(probs, v)  # (B, H, L, head_dim)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016) on a residual branch, per sample.

    In training, each sample's branch output is zeroed with probability ``p`` and the kept ones are
    scaled by ``1 / (1 - p)`` (timm's ``drop_path``, used by MAE and MAMP); identity in eval mode or
    when ``p == 0``. The draw uses the global torch RNG like ``nn.Dropout`` (it is regularisation
    noise of the same kind, seeded by the engine).

    Args:
        p: drop probability in ``[0, 1)``; the attribute may be changed after construction.

    Shape:
        ``(B, ...)`` -> ``(B, ...)``.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)  # (B, 1, ...)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class TransformerBlock(nn.Module):
    """One transformer encoder layer.

    Pre-LN (``pre_norm=True``, Hi-TRS and ViT-style models)::

        x = x + Drop(Attn(LN(x)));  x = x + Drop(MLP(LN(x)))

    Post-LN (``pre_norm=False``, the original Transformer / BERT)::

        x = LN(x + Drop(Attn(x)));  x = LN(x + Drop(MLP(x)))

    The MLP is ``Linear -> GELU -> Linear`` with biases. Hi-TRS applies dropout on the attention output
    projection and on the MLP output only (``dp_rate`` 0.2), never on the attention probabilities.
    ``drop_path`` wraps both residual branches in :class:`DropPath` (pre-LN:
    ``x + DropPath(Drop(Attn(LN(x))))``; MAMP fine-tunes with rates rising linearly to 0.3 over the
    depth); the default 0 leaves the block exactly as without it.

    Args:
        dim: model width ``D``.
        heads: attention heads.
        head_dim: width of each head.
        mlp_hidden: hidden width of the MLP.
        dropout: dropout on the attention and MLP outputs.
        pre_norm: pre-LN (True) or post-LN (False).
        qkv_bias: biases on q/k/v.
        proj_bias: bias on the attention output projection (defaults to ``qkv_bias``).
        attn_dropout: dropout on the attention probabilities.
        norm_eps: LayerNorm epsilon.
        unfused: explicit softmax attention instead of the fused kernel.
        drop_path: stochastic-depth probability of both residual branches (``self.drop_path.p``).

    Shape:
        ``(B, L, D)`` -> ``(B, L, D)``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        head_dim: int,
        mlp_hidden: int,
        dropout: float = 0.0,
        pre_norm: bool = True,
        qkv_bias: bool = False,
        *,
        proj_bias: bool | None = None,
        attn_dropout: float = 0.0,
        norm_eps: float = 1e-5,
        unfused: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.attn_norm = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiHeadAttention(
            dim, heads, head_dim, qkv_bias=qkv_bias, proj_bias=qkv_bias if proj_bias is None else proj_bias,
            attn_dropout=attn_dropout, unfused=unfused,
        )
        self.mlp_norm = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_hidden), nn.GELU(), nn.Linear(mlp_hidden, dim))
        self.dropout = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)  # no parameters: state dicts are unchanged

    @property
    def unfused(self) -> bool:
        return self.attn.unfused

    @unfused.setter
    def unfused(self, value: bool) -> None:
        self.attn.unfused = bool(value)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L, D)`` -> ``(B, L, D)``."""
        if self.pre_norm:
            x = x + self.drop_path(self.dropout(self.attn(self.attn_norm(x), attn_mask)))
            return x + self.drop_path(self.dropout(self.mlp(self.mlp_norm(x))))
        x = self.attn_norm(x + self.drop_path(self.dropout(self.attn(x, attn_mask))))
        return self.mlp_norm(x + self.drop_path(self.dropout(self.mlp(x))))


def key_padding_mask(valid: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` bool, True on real tokens -> ``(B, 1, 1, L)`` attention mask (True = may attend)."""
    return valid[:, None, None, :]


def sinusoid_table(length: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The 1-D sin/cos table: ``pe[p, 2i] = sin(p / base^(2i/D))``, ``pe[p, 2i+1] = cos(...)``.

    Returns:
        ``(length, dim)`` float32.
    """
    if dim % 2:
        raise ValueError(f"a sin/cos position table needs an even width, got {dim}")
    position = torch.arange(length, dtype=torch.float64)[:, None]  # (L, 1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(base) / dim))  # (D/2,)
    pe = torch.zeros(length, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)
    return pe.float()


def sinusoid_table_2d(rows: int, cols: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Hi-TRS's 2-D table (``model/PE_learnable.py`` ``PE_2D``): channels ``[0, D/2)`` hold the 1-D
    table of the column index, channels ``[D/2, D)`` that of the row index.

    For the clip level, rows are the frames of a clip and columns the joints.

    Returns:
        ``(rows, cols, dim)`` float32.
    """
    if dim % 4:
        raise ValueError(f"a 2-D sin/cos position table needs a width divisible by 4, got {dim}")
    half = dim // 2
    col = sinusoid_table(cols, half, base)  # (cols, D/2)
    row = sinusoid_table(rows, half, base)  # (rows, D/2)
    return torch.cat([col[None, :, :].expand(rows, cols, half), row[:, None, :].expand(rows, cols, half)], dim=-1)


class UnfusedSwitch:
    """Mixin for encoders whose transformer blocks are ``self.blocks``: one ``unfused`` switch for all
    (explicit attention instead of fused SDPA; for the naive benchmark variants and equality checks)."""

    blocks: nn.ModuleList

    @property
    def unfused(self) -> bool:
        return bool(self.blocks) and self.blocks[0].unfused

    @unfused.setter
    def unfused(self, value: bool) -> None:
        for block in self.blocks:
            block.unfused = bool(value)
