"""Multi-stream ensembles of fine-tuned classifiers (joint / bone / motion).

The "3s" numbers of Hi-TRS (3s-Hi-TRS), 2s-AGCN, MS-G3D and PYSKL come from one model per input stream,
fused by adding their class scores. The official Hi-TRS code only saves each stream's test logits
(``test_on_NTU_AR.py`` writes ``test_result.npz``; docs/hitrs.md marks the fusion rule as inferred);
the convention of the 2s-AGCN family (``ensemble.py``: ``r = r11 + r22 * alpha``) is a weighted sum of
the raw scores, without a softmax, and that is what :func:`ensemble_logits` computes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["ensemble_logits"]


def ensemble_logits(
    logits: Sequence[torch.Tensor | np.ndarray],
    weights: Sequence[float] | None = None,
) -> torch.Tensor | np.ndarray:
    """Weighted sum of per-stream logits (no softmax).

    Args:
        logits: one ``(N, num_classes)`` array per stream, rows in the same sample order.
        weights: one weight per stream (default: all 1).

    Returns:
        ``(N, num_classes)``: ``sum_s weights[s] * logits[s]``, a NumPy array if every input is one,
        else a float tensor (float64 if any input is).

    Raises:
        ValueError: no streams, mismatched shapes, or a wrong number of weights.
    """
    if len(logits) == 0:
        raise ValueError("ensemble_logits needs at least one stream")
    if weights is None:
        weights = [1.0] * len(logits)
    if len(weights) != len(logits):
        raise ValueError(f"{len(weights)} weights for {len(logits)} streams")
    shape = tuple(logits[0].shape)
    if len(shape) != 2:
        raise ValueError(f"each stream's logits must be (N, num_classes), got shape {shape}")
    for i, item in enumerate(logits):
        if tuple(item.shape) != shape:
            raise ValueError(f"stream {i} has logits of shape {tuple(item.shape)}, stream 0 has {shape}")
    if all(isinstance(item, np.ndarray) for item in logits):
        return sum(float(w) * item for w, item in zip(weights, logits))
    tensors = [torch.as_tensor(item) for item in logits]
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    device = next((t.device for t in tensors if t.device.type != "cpu"), torch.device("cpu"))
    out = torch.zeros(shape, dtype=dtype, device=device)
    for w, t in zip(weights, tensors):
        out = out + float(w) * t.to(device, dtype)
    return out
