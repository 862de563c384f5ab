"""Every head: the thin modules put on an encoder's ``(N, D)`` features (or its per-token outputs).

- **Pretext heads** that methods train and throw away: :class:`ProjectionHead` (the contrastive
  methods), :class:`FlowHead` and :class:`FrameHead` (Motion-Transformer). A method may re-initialise
  one the way its official code does (``methods/isc.py``, ``methods/motion_transformer.py``); Hi-TRS's
  heads are single ``nn.Linear`` layers built in ``methods/hitrs.py``.
- **Classifier heads** that evaluation trains on labels: :class:`LinearHead` (linear protocol) and
  :class:`MLPHead` (MAMP's fine-tune head); :class:`skelssl.evaluation.heads.Classifier` puts one
  on an encoder.

The loss decides whether to L2-normalise (the contrastive losses in :mod:`skelssl.methods.losses` do).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["ProjectionHead", "FlowHead", "FrameHead", "LinearHead", "MLPHead"]


class ProjectionHead(nn.Module):
    """MLP projection head.

    SimCLR (Chen et al. 2020): "we use a MLP with one hidden layer to obtain
    z_i = g(h_i) = W(2) sigma(W(1) h_i) where sigma is a ReLU non-linearity"; MoCo v2, SkeletonCLR and
    CrosSCLR use the same Linear-ReLU-Linear head. ``hidden_dim=None`` gives a single linear layer
    (MoCo v1 and ISC's default ``fc``; ISC's ``--mlp`` option is ``hidden_dim=in_dim``).

    Args:
        in_dim: encoder feature size ``D``.
        out_dim: embedding size (128 in SimCLR, MoCo and ISC).
        hidden_dim: width of the hidden layers; ``None`` for a linear head.
        num_layers: linear layers in total (2 = one hidden layer); ignored when ``hidden_dim`` is None.
        batch_norm: BatchNorm1d after each hidden linear layer (SimCLR v2 style).

    Shape:
        ``(N, in_dim)`` -> ``(N, out_dim)``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 128,
        hidden_dim: int | None = None,
        num_layers: int = 2,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if hidden_dim is None:
            self.net = nn.Linear(in_dim, out_dim)
        else:
            if num_layers < 2:
                raise ValueError(f"an MLP head with a hidden layer needs num_layers >= 2, got {num_layers}")
            layers: list[nn.Module] = []
            d = in_dim
            for _ in range(num_layers - 1):
                layers.append(nn.Linear(d, hidden_dim, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm1d(hidden_dim))
                layers.append(nn.ReLU(inplace=True))
                d = hidden_dim
            layers.append(nn.Linear(d, out_dim))
            self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, in_dim)`` -> ``(N, out_dim)``."""
        if features.ndim != 2 or features.shape[1] != self.in_dim:
            raise ValueError(f"expected features of shape (N, {self.in_dim}), got {tuple(features.shape)}")
        return self.net(features)


class FlowHead(nn.Module):
    """Motion-flow head of ``run_motion.py`` (``motion/predictions``).

    Dense(hidden -> J*u) + act + LN -> ``(J, u)`` -> Dense(u -> 4u) + act + LN -> per joint either
    ``J * 2^C`` logits (``target="direction"``; one shared output matrix ``flow_cls_weights``) or ``C``
    flow values (``target="vector"``, ours).

    Args:
        hidden: encoder width.
        joints: ``J`` joints per token.
        channels: ``C``.
        joint_units: ``u`` (``num_joint_units`` 16).
        target: ``"direction"`` or ``"vector"``.
        norm_eps: LayerNorm epsilon (TensorFlow 1e-12).

    Shape:
        ``(B, hidden)`` -> ``(B, J, J * 2^C)`` or ``(B, J, C)``.
    """

    def __init__(self, hidden: int, joints: int, channels: int, joint_units: int = 16,
                 target: Literal["direction", "vector"] = "direction", norm_eps: float = 1e-12) -> None:
        super().__init__()
        self.joints, self.joint_units = joints, joint_units
        self.body = nn.Linear(hidden, joints * joint_units)
        self.body_norm = nn.LayerNorm(joints * joint_units, eps=norm_eps)
        self.joint = nn.Linear(joint_units, 4 * joint_units)
        self.joint_norm = nn.LayerNorm(4 * joint_units, eps=norm_eps)
        out = joints * 2**channels if target == "direction" else channels
        self.out = nn.Linear(4 * joint_units, out)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.body_norm(self.act(self.body(h)))  # (B, J*u)
        z = z.view(h.shape[0], self.joints, self.joint_units)  # (B, J, u)
        z = self.joint_norm(self.act(self.joint(z)))  # (B, J, 4u)
        return self.out(z)  # (B, J, J*2^C) or (B, J, C)


class FrameHead(nn.Module):
    """Frame reconstruction head of ``run_inpainting.py``: Dense(h -> h) + act + LN -> Linear(h -> D).

    Shape:
        ``(B, hidden)`` -> ``(B, token_dim)``.
    """

    def __init__(self, hidden: int, token_dim: int, norm_eps: float = 1e-12) -> None:
        super().__init__()
        self.transform = nn.Linear(hidden, hidden)
        self.transform_norm = nn.LayerNorm(hidden, eps=norm_eps)
        self.out = nn.Linear(hidden, token_dim)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.transform_norm(self.act(self.transform(h))))


class LinearHead(nn.Module):
    """A linear classifier on pooled features, optionally after a non-affine BatchNorm.

    Args:
        in_dim: feature size ``D``.
        num_classes: output classes.
        batch_norm: put ``BatchNorm1d(D, affine=False, eps=1e-6)`` first (MAMP's linear probe); its
            statistics update while the head trains.

    Shape:
        ``(N, D)`` -> ``(N, num_classes)``.
    """

    def __init__(self, in_dim: int, num_classes: int, batch_norm: bool = False) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim, affine=False, eps=1e-6) if batch_norm else nn.Identity()
        self.fc = nn.Linear(in_dim, num_classes)
        # ISC (action_classification.py) and MAMP (main_linprobe.py): weight ~ N(0, 0.01), bias 0.
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(features))


class MLPHead(nn.Module):
    """Two-layer head ``Linear -> BatchNorm1d -> ReLU -> Linear`` (MAMP's fine-tune head).

    Args:
        in_dim: feature size ``D``.
        num_classes: output classes.
        hidden_dim: hidden width (MAMP: 2048).
        batch_norm: BatchNorm1d after the first layer (MAMP: yes, momentum 0.1).
        dropout: dropout on the input features.

    Shape:
        ``(N, D)`` -> ``(N, num_classes)``.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden_dim: int = 2048, batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim, momentum=0.1) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, num_classes),
        )
        # MAMP's model-wide init runs after the head is built: Xavier-uniform weights, zero bias.
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)
