"""Sequence encoder of ISC (Thoker, Doughty, Snoek, "Skeleton-Contrastive 3D Action Representation
Learning", ACM MM 2021; official code ``moco/GRU.py``): a 3-layer GRU over per-frame joint vectors.

Input representation (official ``feeder_pretraining_inter.py``): every frame is flattened in the memory
order ``(V, C, M)``, i.e. per joint ``[x_1, x_2, y_1, y_2, z_1, z_2]`` for persons 1 and 2, giving a
``(T, V*C*M)`` sequence (150 values per frame for NTU).

The official module is ``nn.GRU(150, 1024, num_layers=3, bidirectional=True)``, but it is **called one
frame at a time** with the hidden state carried between calls. On a length-1 input the reverse
direction of a bidirectional layer sees the same single frame as the forward direction and starts from
its own carried state, so across calls *both directions run forward in time*. Precisely, for layer
``l`` with input sequence ``u^l_t`` (``u^0_t`` = the frame vector):

    f^l_t = GRUCell_{l, dir 0}(u^l_t, f^l_{t-1}),   b^l_t = GRUCell_{l, dir 1}(u^l_t, b^l_{t-1}),
    u^{l+1}_t = [f^l_t, b^l_t],                      f^l_{-1} = b^l_{-1} = 0,

and the feature is ``u^L_{T-1}`` (the output at the last frame, 2048-d). Each layer is thus two forward
GRUs with separate weights reading the same input, and their outputs are concatenated before the next
layer (not two independent stacks: the layers couple the directions). ``mode="faithful"`` computes
exactly this with two whole-clip forward ``nn.GRU`` calls per layer (six cuDNN calls instead of the
official 64 stepped calls, and no per-step Python), ``mode="stepwise"`` runs the official stepped loop
itself (the reference, slow), and ``mode="bidirectional"`` is a true bidirectional GRU over the whole
clip (a *different* model, whose reverse direction sees the future; the fast choice when
reproducing ISC's numbers is not the goal).

Whole-sequence RNNs are not autocast by PyTorch, so under bf16 autocast the GRU runs in float32 (cuDNN
uses TF32 tensor cores where allowed).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from skelssl.core.layouts import Layout, get_layout
from skelssl.models import register_encoder
from skelssl.models.base import Encoder

__all__ = ["SequenceGRU", "CausalBiGRU", "SteppedBiGRU", "to_sequence", "PRESETS"]

Mode = Literal["faithful", "stepwise", "bidirectional"]

#: Named sizes: ``paper`` is ISC's (3 x 1024, 2048-d features, ~45.0 M parameters for NTU);
#: ``small`` is for CPU work (2 x 128, 256-d features).
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"hidden_size": 1024, "num_layers": 3},
    "small": {"hidden_size": 128, "num_layers": 2},
}


def to_sequence(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, T, V, M)`` -> ``(N, T, V*C*M)``: each frame flattened in ISC's ``(V, C, M)`` order."""
    n, c, t, v, m = x.shape
    return x.permute(0, 2, 3, 1, 4).reshape(n, t, v * c * m)  # (N, T, V*C*M)


def _xavier_2d(module: nn.Module) -> None:
    """Official ``weights_init_gru``: Xavier-uniform on every 2-D parameter, biases left as PyTorch's."""
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim == 2:
                nn.init.xavier_uniform_(p)


class CausalBiGRU(nn.Module):
    """What a bidirectional ``nn.GRU`` stepped one frame at a time computes, on whole clips.

    Layer ``l`` holds two forward-only single-layer GRUs (``layers[l][0]`` = the official direction 0,
    ``layers[l][1]`` = the official ``_reverse`` direction) that read the same input sequence; their
    outputs are concatenated into the next layer's input.

    Args:
        input_size: features per frame.
        hidden_size: hidden units per direction.
        num_layers: stacked layers.

    Shape:
        ``(B, T, input_size)`` -> ``(B, T, 2 * hidden_size)``; output ``t`` depends on frames ``<= t`` only.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.layers = nn.ModuleList()
        for layer in range(num_layers):
            d_in = input_size if layer == 0 else 2 * hidden_size
            pair = [nn.GRU(d_in, hidden_size, num_layers=1, batch_first=True) for _ in range(2)]
            self.layers.append(nn.ModuleList(pair))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """``(B, T, I)`` -> ``(B, T, 2H)``: two whole-clip forward GRU calls per layer."""
        h = seq
        for direction0, direction1 in self.layers:
            h = torch.cat([direction0(h)[0], direction1(h)[0]], dim=-1)  # (B, T, 2H)
        return h

    @torch.no_grad()
    def copy_from(self, gru: nn.GRU) -> None:
        """Take the weights of a bidirectional ``nn.GRU`` (e.g. the official ``encoder.gru``)."""
        if not gru.bidirectional or gru.num_layers != self.num_layers or gru.hidden_size != self.hidden_size:
            raise ValueError(
                f"need a bidirectional {self.num_layers}-layer GRU of hidden size {self.hidden_size}, got {gru}"
            )
        for layer, pair in enumerate(self.layers):
            for direction, suffix in enumerate(("", "_reverse")):
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(pair[direction], f"{kind}_l0").copy_(getattr(gru, f"{kind}_l{layer}{suffix}"))


class SteppedBiGRU(nn.Module):
    """The official computation itself: ``nn.GRU(bidirectional=True)`` called once per frame.

    Same function as :class:`CausalBiGRU` (and the official parameter names, ``gru.weight_ih_l0_reverse``
    ...), but ``T`` sequential calls: the reference and the benchmark's naive variant.

    Shape:
        ``(B, T, input_size)`` -> ``(B, T, 2 * hidden_size)``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.gru = nn.GRU(input_size, hidden_size, num_layers=num_layers, bidirectional=True, batch_first=True)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """``(B, T, I)`` -> ``(B, T, 2H)``, one frame per call with the hidden state carried."""
        outputs, hidden = [], None
        for t in range(seq.shape[1]):
            out, hidden = self.gru(seq[:, t : t + 1], hidden)  # (B, 1, 2H), (2L, B, H)
            outputs.append(out)
        return torch.cat(outputs, dim=1)  # (B, T, 2H)


class _WholeClipBiGRU(nn.Module):
    """A true bidirectional GRU over the real frames of each clip (packed when lengths differ)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.gru = nn.GRU(input_size, hidden_size, num_layers=num_layers, bidirectional=True, batch_first=True)

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, I)`` -> ``(B, T, 2H)``; outputs on padded frames are zero."""
        t = seq.shape[1]
        if lengths is None or bool((lengths == t).all()):
            return self.gru(seq)[0]
        packed = pack_padded_sequence(seq, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=t)[0]


@register_encoder("gru")
class SequenceGRU(Encoder):
    """ISC's sequence-based encoder ("BIGRU").

    Args:
        in_channels: coordinates per joint ``C``.
        layout: skeleton layout (or its name); gives ``V``.
        num_persons: ``M``; the GRU input has ``V * C * M`` features per frame.
        mode: ``"faithful"`` (official function, fast), ``"stepwise"`` (official stepped loop, slow) or
            ``"bidirectional"`` (true bidirectional GRU over the clip; a different model).
        preset: ``"paper"`` (3 x 1024) or ``"small"`` (2 x 128); explicit sizes override it.
        hidden_size: units per direction (the feature is ``2 * hidden_size``).
        num_layers: stacked layers.

    Pooling: ``faithful``/``stepwise`` take the output at each sample's last real frame, as the official
    code does (its outputs are causal, so padding after it changes nothing). ``bidirectional`` takes
    the forward direction at the last real frame and the reverse direction at frame 0, i.e. each
    direction's final state.

    Shape:
        ``forward``: ``(N, C, T, V, M)`` (+ ``lengths`` ``(N,)``) -> ``(N, 2 * hidden_size)``;
        ``forward_features``: -> ``(N, T, 2 * hidden_size)`` per-frame outputs.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        layout: Layout | str,
        num_persons: int = 2,
        mode: Mode = "faithful",
        preset: str = "paper",
        hidden_size: int | None = None,
        num_layers: int | None = None,
    ) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown gru preset {preset!r}; choose from {sorted(PRESETS)}")
        if mode not in ("faithful", "stepwise", "bidirectional"):
            raise ValueError(f"mode must be 'faithful', 'stepwise' or 'bidirectional', got {mode!r}")
        layout = get_layout(layout)
        hidden_size = int(hidden_size or PRESETS[preset]["hidden_size"])
        num_layers = int(num_layers or PRESETS[preset]["num_layers"])
        self.layout, self.in_channels, self.num_persons, self.mode = layout, in_channels, num_persons, mode
        self.input_size = layout.num_joints * in_channels * num_persons
        rnn_cls = {"faithful": CausalBiGRU, "stepwise": SteppedBiGRU, "bidirectional": _WholeClipBiGRU}[mode]
        self.rnn = rnn_cls(self.input_size, hidden_size, num_layers)
        _xavier_2d(self.rnn)
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.out_dim = 2 * hidden_size
        self.spec = {"name": "gru", "kwargs": dict(in_channels=in_channels, layout=layout.name, num_persons=num_persons,
                                                   mode=mode, hidden_size=hidden_size, num_layers=num_layers)}

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> ``(N, T, 2H)`` per-frame GRU outputs."""
        n, c, t, v, m = self.check_input(x, persons=True)  # the GRU's input is V * C * M wide
        seq = to_sequence(x)  # (N, T, V*C*M)
        if self.mode == "bidirectional":
            lens = None if lengths is None else lengths.to(torch.int64).clamp(1, t)
            return self.rnn(seq, lens)
        return self.rnn(seq)  # (N, T, 2H)

    def pool(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, T, 2H)`` -> ``(N, 2H)``: the output at the last real frame (see the class docstring)."""
        n, t, _ = features.shape
        if lengths is None:
            last = torch.full((n,), t - 1, dtype=torch.int64, device=features.device)
        else:
            last = lengths.to(features.device, torch.int64).clamp(1, t) - 1  # (N,)
        rows = torch.arange(n, device=features.device)
        if self.mode == "bidirectional":
            h = self.hidden_size
            return torch.cat([features[rows, last, :h], features[:, 0, h:]], dim=1)  # (N, 2H)
        return features[rows, last]  # (N, 2H)
