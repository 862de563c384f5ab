"""Image encoder of ISC: HCN, the hierarchical co-occurrence network (Li, Zhong, Xie, Pu, "Co-occurrence
Feature Learning from Skeleton Data for Action Recognition and Detection with Hierarchical
Aggregation", IJCAI 2018), as copied into ISC's ``moco/HCN.py``.

The clip is treated as a ``T x V`` image with ``C`` channels. Two streams, position and motion (frame
differences, bilinearly resized back to ``T`` frames), each run point-level convolutions (1x1, then
3x1 along time), then **transpose joints into channels** so that the next 3x3 convolutions mix all
joints (the "co-occurrence" step), with max pooling. The streams are concatenated and two more 3x3
convolutions with pooling follow; the result is the element-wise **max over persons**, flattened.

Output size: the second convolution has ``frames`` output channels (official ``window_size``), which
become the image's width after the transpose; four 2x2 max pools then leave a
``(frames // 16) x (frames // 16)`` map of ``4 * channels`` channels, so
``out_dim = 4 * channels * (frames // 16) ** 2``: 4096 with ISC's 64-frame clips and 64 channels, 1024
with 32 frames. Every input is therefore resampled to ``frames`` frames first (linear interpolation
over its real frames, as ISC's crop-resize does; a no-op for the 64-frame clips ISC feeds).

Differences from the official code: persons run as one batch (``N*M``) rather than a Python loop, any
``M`` is supported (official: exactly 2), and ``ignore_absent=True`` takes the max over present persons
only (official: every person slot, absent all-zero ones included, which is the default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from skelssl.core.batch import person_mask
from skelssl.core.layouts import Layout, get_layout
from skelssl.models import register_encoder
from skelssl.models.base import Encoder
from skelssl.transforms.temporal import resize_windows

__all__ = ["HCN", "PRESETS"]

#: Named sizes: ``paper`` is HCN's (``out_channel=64``; 4096-d at 64 frames, 0.52 M parameters for
#: NTU); ``small`` is for CPU work (16 channels; 1024-d at 64 frames).
PRESETS: dict[str, dict[str, int]] = {"paper": {"channels": 64}, "small": {"channels": 16}}


def _init(module: nn.Module) -> None:
    """Official ``weights_init``: uniform(+-sqrt(6 / (fan_in + fan_out))) for conv and linear, zero bias."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _Stream(nn.Module):
    """One HCN input stream: point-level convs, joints-to-channels transpose, co-occurrence convs.

    Shape:
        ``(B, C, T, V)`` -> ``(B, channels, T // 4, frames // 4)``.
    """

    def __init__(self, in_channels: int, num_joints: int, channels: int, frames: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.ReLU())
        self.conv2 = nn.Conv2d(channels, frames, (3, 1), padding=(1, 0))  # official: window_size outputs
        self.conv3 = nn.Sequential(nn.Conv2d(num_joints, channels // 2, 3, padding=1), nn.MaxPool2d(2))
        self.conv4 = nn.Sequential(nn.Conv2d(channels // 2, channels, 3, padding=1), nn.Dropout2d(dropout), nn.MaxPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(self.conv1(x))  # (B, frames, T, V)
        h = h.permute(0, 3, 2, 1).contiguous()  # (B, V, T, frames): joints become channels
        return self.conv4(self.conv3(h))  # (B, channels, T/4, frames/4)


@register_encoder("hcn")
class HCN(Encoder):
    """HCN (ISC's image-based encoder).

    Args:
        in_channels: coordinates per joint ``C``.
        layout: skeleton layout (or its name); gives ``V`` (the co-occurrence convs' input channels).
        num_persons: ``M`` (kept for the common encoder interface; any ``M`` works).
        preset: ``"paper"`` (64 channels) or ``"small"`` (16); ``channels`` overrides it.
        channels: HCN's ``out_channel`` (the widths are ``channels``, ``channels/2``, ``2 channels``,
            ``4 channels``).
        frames: clip length the network is built for (official ``window_size``, 64); inputs are
            resampled to it, and ``out_dim`` follows it (see the module docstring).
        dropout: ``Dropout2d`` probability after conv4, conv5 and conv6 (0.5 officially).
        ignore_absent: max over present persons only (official: every slot).

    Shape:
        ``forward``: ``(N, C, T, V, M)`` (+ ``lengths`` ``(N,)``) -> ``(N, 4 * channels * (frames // 16) ** 2)``;
        ``forward_features``: -> ``(N, 4 * channels, frames // 16, frames // 16)``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        layout: Layout | str,
        num_persons: int = 2,
        preset: str = "paper",
        channels: int | None = None,
        frames: int = 64,
        dropout: float = 0.5,
        ignore_absent: bool = False,
    ) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown hcn preset {preset!r}; choose from {sorted(PRESETS)}")
        if frames < 16:
            raise ValueError(f"HCN pools four times by 2 along time: frames must be >= 16, got {frames}")
        channels = int(channels or PRESETS[preset]["channels"])
        if channels < 2:
            raise ValueError(f"channels must be >= 2, got {channels}")
        layout = get_layout(layout)
        self.layout, self.in_channels, self.num_persons = layout, in_channels, num_persons
        self.frames, self.ignore_absent = frames, ignore_absent
        v = layout.num_joints
        self.position = _Stream(in_channels, v, channels, frames, dropout)
        self.motion = _Stream(in_channels, v, channels, frames, dropout)
        self.conv5 = nn.Sequential(
            nn.Conv2d(2 * channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.Dropout2d(dropout), nn.MaxPool2d(2)
        )
        self.conv6 = nn.Sequential(
            nn.Conv2d(2 * channels, 4 * channels, 3, padding=1), nn.ReLU(), nn.Dropout2d(dropout), nn.MaxPool2d(2)
        )
        _init(self)
        side = frames // 2 // 2 // 2 // 2
        self.out_dim = 4 * channels * side * side
        self.spec = {"name": "hcn", "kwargs": dict(in_channels=in_channels, layout=layout.name, num_persons=num_persons,
                                                   channels=channels, frames=frames, dropout=dropout,
                                                   ignore_absent=ignore_absent)}

    def _resample(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Linearly resize each sample's real frames to ``frames`` (skipped when already so)."""
        n, t = x.shape[0], x.shape[2]
        if lengths is None:
            if t == self.frames:
                return x
            lengths = torch.full((n,), t, dtype=torch.int64, device=x.device)
        lengths = lengths.to(x.device, torch.int64).clamp(1, t)
        if t == self.frames and bool((lengths == t).all()):
            return x
        return resize_windows(x, torch.zeros_like(lengths), lengths, self.frames)  # (N, C, frames, V, M)

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> ``(N, 4 * channels, frames // 16, frames // 16)``."""
        n, c, _, v, m = self.check_input(x)
        x = self._resample(x, lengths)  # (N, C, F, V, M)
        f = self.frames
        # Official motion: frame differences, bilinearly resized from F - 1 back to F frames.
        motion = (x[:, :, 1:] - x[:, :, :-1]).permute(0, 1, 4, 2, 3).reshape(n, c * m, f - 1, v)  # (N, C*M, F-1, V)
        motion = F.interpolate(motion, size=(f, v), mode="bilinear", align_corners=False)
        motion = motion.view(n, c, m, f, v).permute(0, 2, 1, 3, 4).reshape(n * m, c, f, v)  # (N*M, C, F, V)
        pos = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, f, v)  # (N*M, C, F, V): persons as a batch
        h = torch.cat([self.position(pos), self.motion(motion)], dim=1)  # (N*M, 2ch, F/4, F/4)
        h = self.conv6(self.conv5(h))  # (N*M, 4ch, F/16, F/16)
        h = h.view(n, m, *h.shape[1:])  # (N, M, 4ch, F/16, F/16)
        if self.ignore_absent:
            present = person_mask(x)  # (N, M)
            present = present | ~present.any(dim=1, keepdim=True)  # nobody present: every slot
            h = h.masked_fill(~present[:, :, None, None, None], float("-inf"))
        return h.amax(dim=1)  # official torch.max(logits[0], logits[1])

    def pool(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, 4ch, F/16, F/16)`` -> ``(N, out_dim)`` (flattened, as the official ``view``)."""
        return features.flatten(1)
