"""Motion-Transformer pre-training step for ``benchmarks/train_throughput.py``.

    .venv/bin/python benchmarks/train_throughput.py --method motion_transformer --batch 32

One optimiser step of motion-direction pre-training of the **L8** encoder (8 post-LN BERT layers, width
2048) on ``args.batch`` synthetic two-person NTU sequences of 60-300 frames, sampled to 150 tokens.

- fast: the library path: batched pre-processing and masking on the device (``training_step``), fused
  ``scaled_dot_product_attention``, bf16 autocast and fused AdamW on CUDA.
- naive: the official code's style: masks and octant labels computed per sample in Python/NumPy on the
  CPU (``create_training_data_for_motion.py`` ``generate_masked_sample``), explicit-softmax attention,
  fp32 everywhere.
"""

from __future__ import annotations

import random
from typing import Callable

import numpy as np
import torch

from skelssl.engine import throughput
from skelssl.methods.losses import flow_direction_loss
from skelssl.methods.motion_transformer import MotionTransformerMethod
from skelssl.models import build_encoder

# Pre-training size of script/run_pretraining_L8.sh (config L8_2048.json; heads and FFN width are ours).
PAPER_SIZE = {"preset": "L8", "layers": 8, "hidden": 2048, "heads": 32, "intermediate": 8192,
              "frames": 150, "batch": 16, "steps": 200_000}


def synthetic_batch(n: int, device: torch.device, seed: int = 0, min_length: int = 60) -> dict[str, torch.Tensor]:
    """``n`` smooth two-person sequences, ``(n, 3, 300, 25, 2)`` zero-padded, lengths in ``[min_length, 300]``."""
    return throughput.synthetic_batch(n, device, seed, min_length=min_length)


def naive_masks_and_labels(tokens: torch.Tensor, ratio: float, rng: random.Random, joints: int):
    """Per sample, as the official data script: ``random.sample`` positions, NumPy flow and octant labels."""
    positions, labels = [], []
    for seq in tokens.detach().cpu().numpy():  # (L, J*3) one sample at a time
        length = seq.shape[0]
        chosen = rng.sample(range(length), max(1, int(length * ratio)))
        motion = np.zeros_like(seq)
        for t in range(1, length):
            motion[t - 1] = seq[t] - seq[t - 1]
        sample_labels = []
        for pos in chosen:
            flow = motion[pos].reshape(joints, 3)
            sample_labels.append(1 * (flow[:, 0] > 0) + 2 * (flow[:, 1] > 0) + 4 * (flow[:, 2] > 0))
        positions.append(chosen)
        labels.append(np.stack(sample_labels))
    return torch.tensor(positions), torch.tensor(np.stack(labels), dtype=torch.int64)  # (N, K), (N, K, J)


def fast_step(method, opt: torch.optim.Optimizer, batch: dict, device: torch.device) -> Callable[[], None]:
    """The skelssl step: ``method.training_step`` under bf16 autocast on CUDA, backward, optimiser step."""
    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss, _ = method.training_step(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def make_step(args, device: torch.device, naive: bool) -> Callable[[], None]:
    """A closure running one optimiser step (see the module docstring); ``args.frames`` overrides 150."""
    frames = args.frames or 150
    torch.manual_seed(0)  # parameter init only
    encoder = build_encoder("motion_transformer", layout="ntu25", num_persons=2,
                            preset=getattr(args, "preset", None) or "L8", frames=frames, unfused=naive)
    method = MotionTransformerMethod(encoder).to(device)
    cuda = device.type == "cuda"
    opt = torch.optim.AdamW(method.param_groups(0.01), lr=1e-4, eps=1e-6, fused=cuda and not naive)
    batch = synthetic_batch(args.batch, device)

    if not naive:
        return fast_step(method, opt, batch, device)

    rng = random.Random(0)

    def naive_step() -> None:
        tokens, token_lens = encoder.prepare(batch["x"], batch["lengths"])  # (N, L, 75); loop sampling: all real
        positions, labels = naive_masks_and_labels(tokens, method.mask_ratio, rng, encoder.num_joints)
        positions, labels = positions.to(device), labels.to(device)
        n, k = positions.shape
        seq = encoder.encode(tokens, token_lens)  # (N, L, H), explicit-softmax attention, fp32
        picked = seq.gather(1, positions[:, :, None].expand(n, k, seq.shape[2])).reshape(n * k, -1)
        logits = method.flow_head(picked)  # (N*K, J, 8J)
        valid = torch.ones(n * k, dtype=torch.bool, device=device)
        loss, _ = flow_direction_loss(logits, labels.reshape(n * k, -1), valid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return naive_step
