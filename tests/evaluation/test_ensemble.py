"""Multi-stream logit ensemble (3s convention: weighted sum of raw scores, no softmax)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skelssl.evaluation.ensemble import ensemble_logits


def test_sum_of_raw_logits_with_weights():
    joint = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    bone = torch.tensor([[0.0, 3.0, 0.0], [0.5, 0.0, 0.0]])
    motion = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 4.0]])
    assert torch.equal(ensemble_logits([joint, bone, motion]), joint + bone + motion)
    weighted = ensemble_logits([joint, bone, motion], weights=[1.0, 0.5, 0.25])
    assert torch.allclose(weighted, joint + 0.5 * bone + 0.25 * motion)
    # Not a softmax average: a confident stream outweighs two mild ones.
    assert ensemble_logits([joint, bone, motion]).argmax(dim=1).tolist() == [1, 2]
    probs = sum(torch.softmax(t, dim=1) for t in (joint, bone, motion))
    assert not torch.allclose(probs, ensemble_logits([joint, bone, motion]))


def test_numpy_in_numpy_out_and_mixed_inputs():
    a, b = np.ones((4, 3)), np.arange(12.0).reshape(4, 3)
    out = ensemble_logits([a, b], weights=[2.0, 1.0])
    assert isinstance(out, np.ndarray) and np.allclose(out, 2 * a + b)
    mixed = ensemble_logits([torch.ones(4, 3), b])
    assert isinstance(mixed, torch.Tensor) and mixed.dtype == torch.float64 and torch.allclose(mixed, torch.from_numpy(a + b))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        ensemble_logits([])
    with pytest.raises(ValueError):
        ensemble_logits([torch.zeros(4, 3), torch.zeros(4, 5)])
    with pytest.raises(ValueError):
        ensemble_logits([torch.zeros(4, 3)], weights=[1.0, 2.0])
    with pytest.raises(ValueError):
        ensemble_logits([torch.zeros(4)])
