"""Motion-Transformer encoder (Cheng, Chen, Zhang, Lin, "Motion-Transformer: Self-Supervised Pre-training
for Skeleton-Based Action Recognition", ACM MM Asia 2021), **reconstructed**.

No official code was published. What follows is rebuilt from the paper's abstract and from the same
authors' later public code, ``cszhangdy/Hierarchical-Transformer`` (ICME 2021, TensorFlow, BERT-style;
``modeling_action.py``, ``create_training_data_for_motion.py``), as docs/motion_transformer.md records. Every choice
is a keyword argument whose default is that reconstruction; ``docs/motion_transformer.md`` lists them.

- **Pre-processing** (inside the encoder, because evaluation rebuilds only the encoder from its spec):
  the first person's frame (``persons="first"``) or all persons' (``"all"``) is one token of
  ``V * C`` (``M * V * C``) numbers; each sequence is min-max scaled to ``[-1, 1]`` per coordinate
  over all its joints and real frames (``normalize="minmax"``), *then* ``frames=150`` frames are taken
  with a stride of ``floor(len / 150)`` (``sampling="stride"``); shorter sequences are looped to 150
  frames, as the 2s-AGCN padding the official arrays carry (``short="loop"``).
- **Model**: BERT post-LN encoder. Linear input embedding without bias, plus learned absolute
  position embeddings, plus token-type embeddings, then LayerNorm and dropout; ``layers`` blocks of
  multi-head attention (fused ``scaled_dot_product_attention`` with a key-padding mask) and a GELU
  feed-forward; truncated-normal(0.02) initialisation; LayerNorm epsilon 1e-12 (TensorFlow's).
- **Pooling**: the mean of the sequence output over real tokens (the official ``use_seq_mean``).
  BERT's tanh pooler on token 0 is not built: the downstream scripts never use it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from skelssl.core.batch import frame_mask, full_lengths, person_mask
from skelssl.core.layouts import Layout, get_layout
from skelssl.models import register_encoder
from skelssl.models.base import Encoder
from skelssl.models.transformer_blocks import TransformerBlock, UnfusedSwitch, key_padding_mask, preset_sizes

__all__ = ["MotionTransformer", "PRESETS", "minmax_normalize", "stride_indices", "truncated_normal_init"]

# Sizes. The official config JSONs are missing from the repo; the scripts run `L4_2048.json` /
# `L8_2048.json` ("final_size=2048, 4 layers") and a comment in run_motion.py reads
# "hidden_size==2048", so width 2048 is inferred; heads (64-wide) and the 4x feed-forward follow BERT's
# own ratios (ours). "tiny" is for tests.
PRESETS: dict[str, dict[str, int]] = {
    "L4": {"layers": 4, "hidden": 2048, "heads": 32, "intermediate": 8192},
    "L8": {"layers": 8, "hidden": 2048, "heads": 32, "intermediate": 8192},
    "tiny": {"layers": 2, "hidden": 32, "heads": 4, "intermediate": 64},
}


def truncated_normal_init(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialiser: Linear/embedding weights ~ N(0, std) truncated at 2 std, biases 0, LayerNorm 1/0.

    TensorFlow's ``truncated_normal_initializer(stddev)`` redraws values beyond two standard deviations.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def minmax_normalize(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sequence min-max scaling to ``[-1, 1]``, separately for each coordinate.

    ``create_training_data_for_motion.py`` ``normalize_video``: ``2 (x - min_c) / (max_c - min_c) - 1``
    with ``min_c``/``max_c`` taken over all joints and frames of coordinate ``c``. Here only real frames
    of present persons count (the official 300-frame arrays are loop-padded, so their min and max are
    those of the real frames). A coordinate with no range maps to 0 (the official code divides by
    zero); padded frames and absent persons stay 0.

    Args:
        x: ``(N, C, T, V, M)``, zero-padded along ``T``.
        lengths: ``(N,)`` real frames (default: all ``T``).

    Returns:
        ``(N, C, T, V, M)`` float32 in ``[-1, 1]`` on real frames of present persons, 0 elsewhere.
    """
    x = x.float()
    frames = frame_mask(full_lengths(x, lengths), x.shape[2])  # (N, T)
    valid = frames[:, None, :, None, None] & person_mask(x)[:, None, None, None, :]  # (N, 1, T, 1, M)
    inf = torch.tensor(float("inf"), device=x.device)
    lo = torch.where(valid, x, inf).amin(dim=(2, 3, 4))  # (N, C)
    hi = torch.where(valid, x, -inf).amax(dim=(2, 3, 4))  # (N, C)
    span = hi - lo
    ok = torch.isfinite(span) & (span > 0)  # (N, C)
    lo = torch.where(ok, lo, torch.zeros_like(lo))
    scale = torch.where(ok, 2.0 / torch.where(ok, span, torch.ones_like(span)), torch.zeros_like(span))
    y = (x - lo[:, :, None, None, None]) * scale[:, :, None, None, None] - ok[:, :, None, None, None].float()
    return torch.where(valid, y, torch.zeros_like(y))


def stride_indices(
    lengths: torch.Tensor, frames: int, short: Literal["loop", "pad"] = "loop"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame indices of the reconstruction's temporal sampling, for a whole batch.

    ``len > frames``: stride ``s = floor(len / frames)``, indices ``0, s, 2s, ...`` (``seq[::s][:frames]``).
    ``len <= frames``: the first ``frames`` frames of the loop-padded array, i.e. ``t mod len``
    (``short="loop"``), or the ``len`` real frames followed by padding (``short="pad"``, ours).

    Args:
        lengths: ``(N,)`` real frames (values below 1 count as 1).
        frames: output length ``F``.
        short: what to do with sequences of at most ``F`` frames.

    Returns:
        ``idx`` ``(N, F)`` int64 source frame of each output frame, and the new lengths ``(N,)``.
    """
    lens = lengths.to(torch.int64).clamp(min=1)
    t = torch.arange(frames, device=lens.device)
    stride = (lens // frames).clamp(min=1)  # (N,)
    idx = t[None, :] * stride[:, None]  # (N, F); < len whenever len >= F
    if short == "loop":
        looped = t[None, :] % lens[:, None]
        idx = torch.where(lens[:, None] <= frames, looped, idx)
        return idx, torch.full_like(lens, frames)
    if short == "pad":
        return torch.minimum(idx, lens[:, None] - 1), lens.clamp(max=frames)
    raise ValueError(f"short must be 'loop' or 'pad', got {short!r}")


@register_encoder("motion_transformer")
class MotionTransformer(UnfusedSwitch, Encoder):
    """BERT-style temporal transformer over frame tokens (Motion-Transformer, reconstructed).

    Args:
        in_channels: coordinates per joint ``C``.
        layout: skeleton layout (or its name); gives ``V``.
        num_persons: ``M`` of the data; the token width depends on it only with ``persons="all"``.
        preset: ``"L4"``, ``"L8"`` or ``"tiny"``; ``layers``/``hidden``/``heads``/``intermediate`` override it.
        layers, hidden, heads, intermediate: BERT sizes (``num_hidden_layers``, ``hidden_size``,
            ``num_attention_heads``, ``intermediate_size``).
        persons: ``"first"`` (reconstruction: first body only) or ``"all"`` (persons side by side in a token).
        normalize: ``"minmax"`` (reconstruction) or ``"none"``.
        frames: tokens per sequence after sampling (150).
        sampling: ``"stride"`` (reconstruction) or ``"none"`` (every real frame is a token).
        short: sequences of at most ``frames`` frames are looped (``"loop"``, reconstruction) or padded.
        token_types: ``"halves"``: token type 0 for the first half of the real frames and 1 for the
            second, as the official ``segment_ids`` (written for two concatenated persons) do for a
            single person; ``"none"``: no token-type embedding (ours).
        max_positions: rows of the position table (BERT's ``max_position_embeddings``, 512).
        dropout: hidden dropout (embeddings, attention output, feed-forward output; BERT 0.1).
        attention_dropout: dropout on attention probabilities (BERT 0.1).
        act: feed-forward activation: ``"gelu_tanh"`` (BERT's tanh approximation) or ``"gelu"``.
        norm_eps: LayerNorm epsilon (TensorFlow's ``layer_norm``: 1e-12).
        init_std: truncated-normal initialiser std (0.02).
        unfused: explicit softmax attention instead of the fused kernel (benchmark and checks only).

    Shape:
        ``forward``: ``(N, C, T, V, M)`` (+ ``lengths`` ``(N,)``) -> ``(N, hidden)``;
        ``forward_features``: -> ``(N, T', hidden)``, ``T' = frames`` (or ``T`` with ``sampling="none"``).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        layout: Layout | str,
        num_persons: int = 2,
        preset: Literal["L4", "L8", "tiny"] = "L4",
        layers: int | None = None,
        hidden: int | None = None,
        heads: int | None = None,
        intermediate: int | None = None,
        persons: Literal["first", "all"] = "first",
        normalize: Literal["minmax", "none"] = "minmax",
        frames: int = 150,
        sampling: Literal["stride", "none"] = "stride",
        short: Literal["loop", "pad"] = "loop",
        token_types: Literal["halves", "none"] = "halves",
        max_positions: int = 512,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        act: Literal["gelu_tanh", "gelu"] = "gelu_tanh",
        norm_eps: float = 1e-12,
        init_std: float = 0.02,
        unfused: bool = False,
    ) -> None:
        super().__init__()
        size = preset_sizes(PRESETS, preset, layers=layers, hidden=hidden, heads=heads, intermediate=intermediate)
        for key, value, choices in (
            ("persons", persons, ("first", "all")), ("normalize", normalize, ("minmax", "none")),
            ("sampling", sampling, ("stride", "none")), ("short", short, ("loop", "pad")),
            ("token_types", token_types, ("halves", "none")), ("act", act, ("gelu_tanh", "gelu")),
        ):
            if value not in choices:
                raise ValueError(f"{key} must be one of {choices}, got {value!r}")
        if size["hidden"] % size["heads"]:
            raise ValueError(f"hidden {size['hidden']} is not a multiple of heads {size['heads']}")
        if sampling == "stride" and not 1 <= frames <= max_positions:
            raise ValueError(f"frames must be in [1, max_positions={max_positions}], got {frames}")
        layout = get_layout(layout)
        self.layout, self.in_channels, self.num_persons = layout, in_channels, num_persons
        self.persons, self.normalize, self.frames = persons, normalize, frames
        self.sampling, self.short = sampling, short
        self.max_positions, self.init_std = max_positions, init_std
        self.num_joints = layout.num_joints * (num_persons if persons == "all" else 1)  # joints per token
        self.token_dim = self.num_joints * in_channels
        hidden = size["hidden"]
        self.out_dim = hidden
        # BERT `embedding_lookup`: a (features x hidden) matrix, no bias; `embedding_postprocessor`.
        self.token_embed = nn.Linear(self.token_dim, hidden, bias=False)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden) if token_types == "halves" else None
        self.embed_norm = nn.LayerNorm(hidden, eps=norm_eps)
        self.embed_dropout = nn.Dropout(dropout)
        blocks = []
        for _ in range(size["layers"]):
            block = TransformerBlock(
                hidden, size["heads"], hidden // size["heads"], size["intermediate"], dropout,
                pre_norm=False, qkv_bias=True, proj_bias=True, attn_dropout=attention_dropout,
                norm_eps=norm_eps, unfused=unfused,
            )
            if act == "gelu_tanh":  # BERT's `gelu` is the tanh approximation
                block.mlp[1] = nn.GELU(approximate="tanh")
            blocks.append(block)
        self.blocks = nn.ModuleList(blocks)
        self.num_layers = len(blocks)  # for layer-wise lr decay (blocks.<i>.)
        truncated_normal_init(self, init_std)
        kwargs = dict(in_channels=in_channels, layout=layout.name, num_persons=num_persons, preset=preset, **size,
                      persons=persons, normalize=normalize, frames=frames, sampling=sampling, short=short,
                      token_types=token_types, max_positions=max_positions, dropout=dropout,
                      attention_dropout=attention_dropout, act=act, norm_eps=norm_eps, init_std=init_std)
        self.spec = {"name": "motion_transformer", "kwargs": kwargs}  # build_encoder replaces it

    # -- pre-processing ------------------------------------------------------------------------------
    def token_lengths(self, lengths: torch.Tensor | None) -> torch.Tensor | None:
        """Real tokens per sample after :meth:`prepare`, from the input lengths ``(N,)``.

        ``None`` means every token is real (always so with ``sampling="stride", short="loop"``). With
        ``short="pad"`` and no lengths the input's ``T`` would be needed; every token is then taken
        as real (:meth:`forward` itself uses the exact lengths from :meth:`prepare`).
        """
        if self.sampling == "none":
            return lengths
        if self.short == "loop" or lengths is None:
            return None
        return lengths.to(torch.int64).clamp(1, self.frames)

    def prepare(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch as the reconstruction feeds it to BERT: normalised, sampled frame tokens.

        Pure and batched: person selection, min-max scaling over the real frames, stride sampling, then
        one token per frame with features ordered ``(person, joint, coordinate)`` (the official
        ``(M, T, V, C)`` transpose).

        Args:
            x: ``(N, C, T, V, M)``, zero-padded along ``T``.
            lengths: ``(N,)`` real frames (default: all ``T``).

        Returns:
            ``tokens`` ``(N, T', token_dim)`` float32 (zero on padded tokens) and the real tokens per
            sample ``(N,)``, or ``None`` when every token is real.
        """
        n, c, t, v, m = self.check_input(x)
        if self.persons == "first":
            x = x[..., :1]  # (N, C, T, V, 1): the reconstruction uses the first body only
        elif m != self.num_persons:
            raise ValueError(f"persons='all' was built for M={self.num_persons} persons, got M={m}")
        lens = None if lengths is None else full_lengths(x, lengths)
        if self.normalize == "minmax":
            x = minmax_normalize(x, lens)  # normalise first, then downsample, as the official script
        else:
            x = x.float()
        tokens = x.permute(0, 2, 4, 3, 1).reshape(n, t, -1)  # (N, T, M'*V*C)
        if self.sampling == "none":
            if t > self.max_positions:
                raise ValueError(f"{t} frames exceed max_positions={self.max_positions}; use sampling='stride'")
            if lens is not None:
                tokens = tokens * frame_mask(lens, t)[:, :, None].to(tokens.dtype)
            return tokens, lens
        src = full_lengths(x, lens)  # (N,)
        idx, new_lens = stride_indices(src, self.frames, self.short)  # (N, F), (N,)
        tokens = tokens.gather(1, idx[:, :, None].expand(n, self.frames, tokens.shape[2]))  # (N, F, D_in)
        if self.short == "loop":
            return tokens, None
        tokens = tokens * frame_mask(new_lens, self.frames)[:, :, None].to(tokens.dtype)
        return tokens, new_lens

    # -- the transformer -----------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """BERT over prepared (possibly masked) frame tokens.

        Args:
            tokens: ``(N, L, token_dim)`` from :meth:`prepare`.
            lengths: ``(N,)`` real tokens, or ``None`` when all are real.

        Returns:
            The sequence output ``(N, L, hidden)``.
        """
        n, length, _ = tokens.shape
        if length > self.max_positions:
            raise ValueError(f"{length} tokens exceed max_positions={self.max_positions}")
        pos = torch.arange(length, device=tokens.device)
        h = self.token_embed(tokens) + self.position_embeddings(pos)[None]  # (N, L, H)
        lens = None if lengths is None else lengths.to(tokens.device, torch.int64).clamp(1, length)
        if self.token_type_embeddings is not None:
            half = (lens if lens is not None else torch.full((n,), length, device=tokens.device)) // 2
            types = (pos[None, :] >= half[:, None]).long()  # (N, L): segment ids 0 then 1
            h = h + self.token_type_embeddings(types)
        h = self.embed_dropout(self.embed_norm(h))
        mask = None if lens is None else key_padding_mask(frame_mask(lens, length))  # (N, 1, 1, L)
        for block in self.blocks:
            h = block(h, mask)  # (N, L, H)
        return h

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> sequence output ``(N, T', hidden)``."""
        tokens, token_lens = self.prepare(x, lengths)
        return self.encode(tokens, token_lens)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` (+ ``lengths`` ``(N,)``) -> ``(N, hidden)``: the mean of the sequence output."""
        tokens, token_lens = self.prepare(x, lengths)
        return self.mean_tokens(self.encode(tokens, token_lens), token_lens)

    @staticmethod
    def mean_tokens(features: torch.Tensor, token_lens: torch.Tensor | None) -> torch.Tensor:
        """``(N, L, hidden)`` and real tokens ``(N,)`` (``None``: all) -> ``(N, hidden)`` masked mean."""
        if token_lens is None:
            return features.mean(dim=1)
        tl = token_lens.to(features.device, torch.int64).clamp(1, features.shape[1])
        weights = frame_mask(tl, features.shape[1]).to(features.dtype)  # (N, L)
        return torch.einsum("nlh,nl->nh", features, weights) / tl[:, None].to(features.dtype)

    def pool(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, T', hidden)`` -> ``(N, hidden)``: mean over real tokens (official ``use_seq_mean``).

        ``lengths`` are the *input* lengths given to :meth:`forward_features`, mapped to token lengths
        by :meth:`token_lengths` (as ST-GCN maps them through its strides).
        """
        return self.mean_tokens(features, self.token_lengths(lengths))
