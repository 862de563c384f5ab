"""Hi-TRS encoder: hierarchical frame / clip / video transformers (Chen et al., "Hierarchically
Self-Supervised Transformer for Human Skeleton Representation Learning", ECCV 2022; official code
``model/Hi_TRS.py``, ``model/Hi_TRS_AR.py``, ``model/TRS_submodel_pre_LN.py``, docs/hitrs.md).

- **Frame level (F-TRS)**: the ``V`` joints of one frame are tokens; ``Linear(C, d) -> GELU -> LayerNorm``,
  plus a learnable 1-D position encoding over joints, then pre-LN transformer layers.
- **Clip level (C-TRS)**: a clip is 7 frames taken with dilation 2 (:mod:`skelssl.models.windowing`);
  its ``7 x V`` frame-level joint features go through ``Linear(d, 2d)``, a learnable 2-D position
  encoding (frame x joint), and a clip token appended last. A joint token may not attend to the
  *other* joints of its own frame (official ``get_c_mask``); it sees itself, the other 6 frames and the
  clip token, which sees everything. The clip embedding is the clip token's output.
- **Video level (V-TRS)**: the clip embeddings go through ``Linear(2d, 4d)``, a learnable 1-D position
  encoding over clips (at most ``max_clips``) and a video token appended last, with a key-padding
  mask for padded clips. The video embedding ``vx`` is the video token's output; the other outputs are
  the per-clip features ``v_cx``.

Every layer has 8 heads of 64 whatever its width, q/k/v/o without bias, FFN widths ``d, d, 2d``, no
final LayerNorm, dropout 0.2 on the attention and FFN outputs. Position encodings are parameters
initialised with sinusoids; the fusion tokens start from ``U[0, 1)`` as in the official code. With
``d = 128`` the encoder has 6.92 M parameters (frame 0.891 M, clip 1.852 M, video 4.175 M).

Inputs are ``(N, C, T, V, M)``; every person is encoded on its own and the video embeddings are averaged
over persons. Like the official downstream model, the default (``absent_persons="average"``) encodes
the all-zero second body of one-person actions and averages it in (docs/hitrs.md);
``absent_persons="ignore"`` skips absent persons and averages over the present ones. The input stream
(joint, bone, motion; Hi-TRS's ``view``) is applied inside :meth:`HiTRS.forward`, so it is part of the
encoder's spec.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from skelssl.core.batch import frame_mask, full_lengths, person_mask
from skelssl.core.layouts import Layout, get_layout
from skelssl.models import register_encoder
from skelssl.models.base import Encoder
from skelssl.models.transformer_blocks import TransformerBlock, key_padding_mask, preset_sizes, sinusoid_table, sinusoid_table_2d
from skelssl.models.windowing import gather_windows, num_windows, pad_frames, pad_size, window_indices
from skelssl.transforms.streams import to_stream

__all__ = ["HiTRS", "PRESETS", "clip_attention_mask"]

#: Model sizes: ``dim`` is the frame-level width ``d`` (clip ``2d``, video ``4d``), ``layers`` per level.
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"dim": 128, "heads": 8, "head_dim": 64, "layers": 3},  # cfg/NTU/pretrain/cfg.yaml
    "small": {"dim": 32, "heads": 4, "head_dim": 16, "layers": 2},  # CPU pre-training (configs/hitrs/nucla_cpu.yaml)
    "tiny": {"dim": 16, "heads": 2, "head_dim": 8, "layers": 1},  # tests
}


def clip_attention_mask(window: int, num_joints: int) -> torch.Tensor:
    """The C-TRS attention mask over ``window * V`` joint tokens (frame-major) plus the clip token.

    Returns:
        ``(L, L)`` bool with ``L = window * V + 1``, True where a query may attend to a key: everything
        except the other joints of the query's own frame (official ``get_c_mask``: block-diagonal ones
        minus the identity are blocked).
    """
    frame = torch.arange(window).repeat_interleave(num_joints)  # (W*V,) frame of each joint token
    same_frame = frame[:, None] == frame[None, :]  # (W*V, W*V)
    blocked = same_frame & ~torch.eye(window * num_joints, dtype=torch.bool)
    allowed = torch.ones(window * num_joints + 1, window * num_joints + 1, dtype=torch.bool)
    allowed[:-1, :-1] = ~blocked
    return allowed


@register_encoder("hitrs")
class HiTRS(Encoder):
    """Hi-TRS encoder.

    Args:
        in_channels: coordinates per joint ``C``.
        layout: skeleton layout (or its name): ``V`` and, for the bone stream, the parents.
        num_persons: accepted for the common encoder interface; any ``M`` works.
        preset: ``"paper"`` (d 128, 8 heads of 64, 3 layers per level), ``"small"`` or ``"tiny"``.
        dim, heads, head_dim, layers: explicit sizes overriding the preset.
        window, stride, dilation: clip windowing (7, 7, 2).
        max_clips: length of the video-level position encoding (200 in the official code).
        dropout: dropout on attention and FFN outputs (0.2).
        stream: ``"joint"``, ``"bone"`` or ``"motion"`` input (Hi-TRS's ``view``).
        coords: leading input channels that are coordinates (default all); the bone and motion
            streams difference those only and keep a later ``score`` channel (see
            :mod:`skelssl.transforms.streams`).
        absent_persons: ``"average"`` (official): encode every person slot, all-zero ones included,
            and average their video embeddings; ``"ignore"``: skip all-zero persons and average over
            the present ones (every slot when none is present).
        fused_attention: use ``scaled_dot_product_attention``; False computes the softmax explicitly
            (same result, slower; for the naive benchmark).

    Shape:
        ``forward``: ``(N, C, T, V, M)`` (+ ``lengths`` ``(N,)``) -> ``(N, 4d)``;
        ``forward_features``: -> ``(N, M, K + 1, 4d)``: the per-clip outputs of the ``K`` windows (zero
        for padded clips and skipped persons) followed by the video token's output.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        layout: Layout | str,
        num_persons: int | None = None,
        preset: Literal["paper", "small", "tiny"] = "paper",
        dim: int | None = None,
        heads: int | None = None,
        head_dim: int | None = None,
        layers: int | None = None,
        window: int = 7,
        stride: int = 7,
        dilation: int = 2,
        max_clips: int = 200,
        dropout: float = 0.2,
        stream: Literal["joint", "bone", "motion"] = "joint",
        absent_persons: Literal["ignore", "average"] = "average",
        fused_attention: bool = True,
        coords: int | None = None,
    ) -> None:
        super().__init__()
        if stream not in ("joint", "bone", "motion"):
            raise ValueError(f"stream must be 'joint', 'bone' or 'motion', got {stream!r}")
        if absent_persons not in ("ignore", "average"):
            raise ValueError(f"absent_persons must be 'ignore' or 'average', got {absent_persons!r}")
        sizes = preset_sizes(PRESETS, preset, dim=dim, heads=heads, head_dim=head_dim, layers=layers)
        d, h, hd, n_layers = sizes["dim"], sizes["heads"], sizes["head_dim"], sizes["layers"]
        if d < 2 or d % 2:
            raise ValueError(f"dim must be even (the 2-D clip position table splits 2*dim in four), got {d}")
        layout = get_layout(layout)
        self.layout, self.in_channels, self.num_persons = layout, in_channels, num_persons
        self.window, self.stride, self.dilation, self.max_clips = window, stride, dilation, max_clips
        self.stream, self.absent_persons = stream, absent_persons
        if coords is not None and not 1 <= int(coords) <= in_channels:
            raise ValueError(f"coords must be between 1 and in_channels = {in_channels}, got {coords}")
        self.coords = None if coords is None or int(coords) == in_channels else int(coords)
        self.frame_dim, self.clip_dim, self.video_dim = d, 2 * d, 4 * d
        self.out_dim = 4 * d
        v = layout.num_joints

        def blocks(width: int, hidden: int) -> nn.ModuleList:
            return nn.ModuleList(
                TransformerBlock(width, h, hd, hidden, dropout, pre_norm=True, qkv_bias=False, unfused=not fused_attention)
                for _ in range(n_layers)
            )

        # Frame level: joints of one frame.
        self.frame_embed = nn.Sequential(nn.Linear(in_channels, d), nn.GELU(), nn.LayerNorm(d))
        self.frame_pe = nn.Parameter(sinusoid_table(v, d))  # (V, d)
        self.frame_blocks = blocks(d, d)
        # Clip level: window x V joint tokens + the clip token (appended last, as in the official code).
        self.clip_embed = nn.Linear(d, 2 * d)
        self.clip_pe = nn.Parameter(sinusoid_table_2d(window, v, 2 * d))  # (W, V, 2d)
        self.clip_token = nn.Parameter(torch.rand(2 * d))  # official: torch.rand, U[0, 1)
        self.clip_blocks = blocks(2 * d, d)
        self.register_buffer("clip_mask", clip_attention_mask(window, v), persistent=False)
        # Video level: clip embeddings + the video token.
        self.video_embed = nn.Linear(2 * d, 4 * d)
        self.video_pe = nn.Parameter(sinusoid_table(max_clips, 4 * d))  # (max_clips, 4d)
        self.video_token = nn.Parameter(torch.rand(4 * d))
        self.video_blocks = blocks(4 * d, 2 * d)
        kwargs = dict(in_channels=in_channels, layout=layout.name, num_persons=num_persons, preset=preset, dim=dim,
                      heads=heads, head_dim=head_dim, layers=layers, window=window, stride=stride, dilation=dilation,
                      max_clips=max_clips, dropout=dropout, stream=stream, absent_persons=absent_persons,
                      fused_attention=fused_attention, coords=coords)
        self.spec = {"name": "hitrs", "kwargs": kwargs}  # build_encoder replaces it with the given kwargs

    # -- the three levels ------------------------------------------------------------------------------

    @property
    def pad(self) -> int:
        """Zero frames added at each end of a sequence before windowing (6)."""
        return pad_size(self.window, self.dilation)

    def input_stream(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The configured input stream of ``x`` ``(N, C, T, V, M)`` (same shape; zeros stay zeros)."""
        if self.stream == "joint":
            return x
        return to_stream(self.stream, x, self.layout, lengths, self.coords)

    def encode_frames(self, frames: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """F-TRS on every frame.

        Args:
            frames: ``(B, F, V, C)`` joint coordinates (of the input stream).
            valid: optional ``(B, F)`` bool; only these frames are encoded, the others get zero features.

        Returns:
            ``(B, F, V, d)`` per-joint features ``s_x``.
        """
        b, f, v, c = frames.shape
        tokens = frames[valid] if valid is not None else frames.reshape(b * f, v, c)  # (B', V, C)
        h = self.frame_embed(tokens) + self.frame_pe  # (B', V, d)
        for block in self.frame_blocks:
            h = block(h)
        if valid is None:
            return h.view(b, f, v, self.frame_dim)
        out = h.new_zeros(b, f, v, self.frame_dim)
        out[valid] = h
        return out

    def encode_clips(self, window_features: torch.Tensor) -> torch.Tensor:
        """C-TRS: ``(..., W, V, d)`` frame features of clips -> ``(..., 2d)`` clip embeddings."""
        lead = window_features.shape[:-3]
        w, v, d = window_features.shape[-3:]
        h = self.clip_embed(window_features.reshape(-1, w, v, d)) + self.clip_pe  # (B', W, V, 2d)
        h = h.reshape(h.shape[0], w * v, self.clip_dim)  # (B', W*V, 2d), frame-major
        token = self.clip_token.to(h.dtype).expand(h.shape[0], 1, self.clip_dim)
        h = torch.cat([h, token], dim=1)  # (B', W*V + 1, 2d)
        for block in self.clip_blocks:
            h = block(h, self.clip_mask)
        return h[:, -1].reshape(*lead, self.clip_dim)

    def encode_video(self, clips: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """V-TRS over clip embeddings.

        Args:
            clips: ``(B, K, 2d)`` clip embeddings.
            valid: ``(B, K)`` bool, False on padded clips (masked out as keys).

        Returns:
            ``vx`` ``(B, 4d)`` (video token) and ``v_cx`` ``(B, K, 4d)`` (per-clip outputs).
        """
        b, k, _ = clips.shape
        if k > self.max_clips:
            raise ValueError(f"{k} clips exceed the video position table of {self.max_clips} (max_clips)")
        h = self.video_embed(clips) + self.video_pe[:k]  # (B, K, 4d)
        token = self.video_token.to(h.dtype).expand(b, 1, self.video_dim)
        h = torch.cat([h, token], dim=1)  # (B, K+1, 4d)
        keys = torch.cat([valid, valid.new_ones(b, 1)], dim=1)  # the video token is always a key
        mask = key_padding_mask(keys)  # (B, 1, 1, K+1)
        for block in self.video_blocks:
            h = block(h, mask)
        return h[:, -1], h[:, :-1]

    def encode_sequences(
        self, seq: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All three levels on single-person sequences.

        Args:
            seq: ``(B, T, V, C)`` zero-padded sequences (already in the input stream).
            lengths: ``(B,)`` real frames.

        Returns:
            ``v_cx`` ``(B, K, 4d)`` (zero on padded clips), ``vx`` ``(B, 4d)`` and ``valid`` ``(B, K)``.
        """
        b, t = seq.shape[:2]
        lengths = lengths.to(seq.device, torch.int64).clamp(0, t)
        index, valid = window_indices(lengths, self.window, self.stride, self.dilation)  # (B, K, W), (B, K)
        frames = pad_frames(seq, self.pad)  # (B, T + 2 pad, V, C)
        used = frame_mask(lengths + 2 * self.pad, frames.shape[1])  # frames of the padded sequence itself
        s_x = self.encode_frames(frames, used)  # (B, T + 2 pad, V, d)
        windows = gather_windows(s_x, index)[valid]  # (B_valid, W, V, d): only real clips are encoded
        clips = s_x.new_zeros(b, index.shape[1], self.clip_dim)
        clips[valid] = self.encode_clips(windows).to(clips.dtype)
        vx, v_cx = self.encode_video(clips, valid)
        return v_cx * valid[:, :, None].to(v_cx.dtype), vx, valid

    # -- the encoder interface ------------------------------------------------------------------------

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> ``(N, M, K + 1, 4d)``: per-clip outputs, then the video embedding.

        With ``absent_persons="ignore"`` an all-zero person is not encoded and its features are zero
        (unless no person of the sample is present; then every slot is encoded).
        """
        n, c, t, v, m = self.check_input(x)
        lens = full_lengths(x, lengths)  # (N,)
        if self.absent_persons == "ignore":
            present = person_mask(x)  # (N, M)
            encode = present | ~present.any(dim=1, keepdim=True)
        else:  # official: every slot, the all-zero second body included
            encode = torch.ones(n, m, dtype=torch.bool, device=x.device)
        stream = self.input_stream(x, lens)
        seq = stream.permute(0, 4, 2, 3, 1).reshape(n * m, t, v, c)  # (N*M, T, V, C): one sequence per person
        sel = encode.reshape(n * m)
        v_cx, vx, _ = self.encode_sequences(seq[sel], lens.repeat_interleave(m)[sel])
        per_person = torch.cat([v_cx, vx[:, None]], dim=1)  # (N_sel, K+1, 4d)
        out = per_person.new_zeros(n * m, *per_person.shape[1:])
        out[sel] = per_person
        return out.view(n, m, *per_person.shape[1:])

    def pool(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, M, K + 1, 4d)`` -> ``(N, 4d)``: the video embedding averaged over the encoded persons."""
        video = features[:, :, -1]  # (N, M, 4d)
        encoded = features.detach().abs().amax(dim=(2, 3)) > 0  # (N, M): skipped persons are all zero
        encoded = (encoded | ~encoded.any(dim=1, keepdim=True)).to(video.dtype)
        return (video * encoded[:, :, None]).sum(dim=1) / encoded.sum(dim=1, keepdim=True)

    def clip_features(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-clip video-level features ``v_cx`` averaged over persons (for detection heads).

        Returns:
            ``(N, K, 4d)`` features (zero on padded clips) and ``(N, K)`` bool, True on real clips.
            Clip ``k`` covers the real frames ``7k - 6 .. 7k + 6`` (every other frame).
        """
        features = self.forward_features(x, lengths)  # (N, M, K+1, 4d)
        lens = full_lengths(x, lengths)
        valid = torch.arange(features.shape[2] - 1, device=x.device)[None, :] < num_windows(
            lens, self.window, self.stride, self.dilation
        )[:, None]  # (N, K)
        encoded = features.detach().abs().amax(dim=(2, 3)) > 0  # (N, M)
        encoded = (encoded | ~encoded.any(dim=1, keepdim=True)).to(features.dtype)
        clips = (features[:, :, :-1] * encoded[:, :, None, None]).sum(dim=1) / encoded.sum(dim=1)[:, None, None]
        return clips, valid
