"""The encoder + head module that linear evaluation and fine-tuning train (the heads themselves,
:class:`~skelssl.models.heads.LinearHead` and :class:`~skelssl.models.heads.MLPHead`, are with every
other head in :mod:`skelssl.models.heads`; they are imported here too).

:class:`Classifier` implements the engine's module interface (``training_step``, ``param_groups``,
``after_optimizer_step``) so that linear probing, fine-tuning and semi-supervised training run in the
same loop as pre-training.

- Linear protocol (docs/isc.md, docs/hitrs.md, docs/mamp.md): the encoder is frozen *and stays
  in eval mode* while the head trains: BatchNorm uses its running statistics, dropout is off.
- ISC initialises the new fc N(0, 0.01) with zero bias; MAMP's probe puts a non-affine
  ``BatchNorm1d(eps=1e-6)`` before that linear layer (``LinearHead(batch_norm=True)``).
- MAMP's fine-tune head is Linear -> BatchNorm1d -> ReLU -> Linear with Xavier-uniform weights
  (:class:`MLPHead`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from skelssl.evaluation.features import run_model
from skelssl.evaluation.metrics import topk_accuracy
from skelssl.models.heads import LinearHead, MLPHead
from skelssl.models.params import split_decay_groups

__all__ = ["LinearHead", "MLPHead", "Classifier", "evaluate_classifier", "decay_groups"]


def decay_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters in two optimiser groups: with decay, and without (biases, norms, 1-D, embeddings).

    The methods' rule (:func:`skelssl.models.params.split_decay_groups` with its default hints).
    """
    return split_decay_groups(module, weight_decay)


class Classifier(nn.Module):
    """An encoder and a head trained on labels.

    Args:
        encoder: an :class:`~skelssl.models.base.Encoder` (``forward(x, lengths) -> (N, D)``).
        head: ``(N, D) -> (N, num_classes)``.
        freeze_encoder: linear protocol: the encoder's parameters get ``requires_grad=False`` and the
            encoder stays in eval mode whatever ``.train()`` is called with.
        label_smoothing: of the training cross-entropy (MAMP fine-tune: 0.1).
        dropout: on the pooled features before the head (Hi-TRS fine-tune: 0.2).

    Shape:
        ``x`` ``(N, C, T, V, M)``, ``lengths`` ``(N,)`` -> logits ``(N, num_classes)``.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, *, freeze_encoder: bool, label_smoothing: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.freeze_encoder = bool(freeze_encoder)
        self.label_smoothing = float(label_smoothing)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if self.freeze_encoder:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> "Classifier":
        super().train(mode)
        if self.freeze_encoder:
            # ISC and Hi-TRS keep the frozen backbone in eval(): BN running stats fixed, no dropout.
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self.freeze_encoder:
            with torch.no_grad():  # no graph through a frozen encoder: less memory, same result
                features = self.encoder(x, lengths)  # (N, D)
        else:
            features = self.encoder(x, lengths)  # (N, D)
        return self.head(self.dropout(features))  # (N, num_classes)

    # -- the engine's module interface -------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        """Cross-entropy on ``batch["label"]``; logs ``loss`` and top-1 ``acc`` (percent)."""
        logits = self(batch["x"], batch.get("lengths"))
        labels = batch["label"]
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        acc = (logits.detach().argmax(1) == labels).float().mean() * 100.0
        return loss, {"loss": loss.detach(), "acc": acc}

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Only trainable parameters; no decay on biases and norms."""
        return decay_groups(self, weight_decay)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return []

    def after_optimizer_step(self) -> None:
        """Nothing to update after a step (no momentum targets)."""

    def export_encoder(self) -> nn.Module:
        """The (fine-tuned) encoder, for saving as an encoder checkpoint."""
        return self.encoder

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of a batch, without gradients (call ``.eval()`` first)."""
        return self(batch["x"], batch.get("lengths"))


def evaluate_classifier(classifier: nn.Module, dataset: Dataset, **options: Any) -> dict[str, Any]:
    """Test a classifier on a whole dataset (eval mode, no augmentation beyond ``batch_transform``).

    Args:
        classifier: a :class:`Classifier` (or any module ``(x, lengths) -> logits``) on its device.
        dataset: the test split.
        **options: the keywords of :func:`~skelssl.evaluation.features.run_model` (``batch_size``,
            ``device``, ``batch_transform``, ``num_workers``, ``progress``, ``gather``, ``rank``,
            ``world_size``, ``collate_fn``).

    Returns:
        ``{"top1": %, "top5": %, "loss": mean cross-entropy (no smoothing), "predictions": (N,) int64,
        "labels": (N,) int64, "logits": (N, num_classes) float32}``, rows in dataset order.
    """
    logits, labels = run_model(classifier, dataset, **{"desc": "evaluate", **options})
    acc = topk_accuracy(logits, labels, ks=(1, 5))
    return {
        "top1": acc[1],
        "top5": acc[5],
        "loss": float(F.cross_entropy(logits, labels).item()),
        "predictions": logits.argmax(1),
        "labels": labels,
        "logits": logits,
    }
