"""MAMP pre-training step for ``benchmarks/train_throughput.py``.

    .venv/bin/python benchmarks/train_throughput.py --method mamp --batch 128

One optimiser step of masked motion prediction with the paper's sizes (encoder 8 x 256 on 74 visible
tokens of 750 per person, 3-block decoder on all 750) on ``args.batch`` synthetic two-person NTU
sequences of 64-300 frames, cropped and resized to 120 frames.

- fast: the library path (``MAMP.training_step``): batched crop-resize and rotation on the device,
  batched Gumbel-top-k masking, only the visible tokens' raw numbers are gathered and embedded before
  the encoder, mask tokens scattered into place, fused ``scaled_dot_product_attention``, bf16
  autocast and fused AdamW on CUDA.
- naive: the official code's style: crop-resize and rotation per sample on the CPU (the feeder), the
  masking per person sequence in a Python/NumPy loop, every token embedded before the visible ones
  are gathered, mask tokens concatenated then un-shuffled by ``ids_restore``, explicit-softmax
  attention, fp32 everywhere.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from skelssl.methods.mamp import MAMP
from skelssl.methods.losses import masked_mse
from skelssl.methods.mamp import motion_target, normalize_tokens
from skelssl.methods.masking import patchify
from skelssl.models import build_encoder
from skelssl.transforms.spatial import rotate
from skelssl.transforms.temporal import crop_resize
from throughput_motion_transformer import fast_step, synthetic_batch as _mt_synthetic_batch  # benchmarks/ on sys.path

# config/ntu60_xsub_joint/pretrain_mamp_*.yaml + script_pretrain.sh (METHODS.md §8.3-8.7, §8.10).
PAPER_SIZE = {"preset": "paper", "depth": 8, "dim": 256, "heads": 8, "decoder_depth": 3, "frames": 120,
              "tokens_per_person": 750, "visible": 74, "batch": 128, "epochs": 400, "steps_ntu60_xsub": 125_200,
              "train_gflops_per_sample": 38}


def synthetic_batch(n: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """The Motion-Transformer benchmark's batch, lengths in ``[64, 300]`` (MAMP's crop floor)."""
    return _mt_synthetic_batch(n, device, seed, min_length=64)


def naive_masks(positions: torch.Tensor, keep: int, tau: float, rng: np.random.Generator, joints: int):
    """Per person sequence in NumPy: token motion, softmax, Gumbel noise, argsort (the official steps)."""
    ids_keep, ids_restore, masks = [], [], []
    for seq in positions.detach().cpu().numpy():  # (L, 12) one sequence at a time
        tokens = seq.reshape(-1, joints, seq.shape[-1])  # (T/4, V, 12)
        motion = np.zeros(tokens.shape[:2])
        for t in range(1, tokens.shape[0]):
            motion[t] = np.abs(tokens[t] - tokens[t - 1]).mean(axis=-1)
        motion[0] = motion[1]
        m = motion.reshape(-1)
        s = m / (tau * m.max() + 1e-10)
        p = np.exp(s) / np.exp(s).sum()
        u = rng.random(m.shape[0])
        shuffle = np.argsort(np.log(p) - np.log(-np.log(u + 1e-10) + 1e-10))
        mask = np.ones(m.shape[0])
        mask[shuffle[:keep]] = 0
        ids_keep.append(shuffle[:keep])
        ids_restore.append(np.argsort(shuffle))
        masks.append(mask)
    as_tensor = lambda a, dt: torch.tensor(np.stack(a), dtype=dt, device=positions.device)  # noqa: E731
    return as_tensor(ids_keep, torch.int64), as_tensor(ids_restore, torch.int64), as_tensor(masks, torch.float32)


def make_step(args, device: torch.device, naive: bool) -> Callable[[], None]:
    """A closure running one optimiser step (see the module docstring); ``args.frames`` overrides 120."""
    frames = args.frames or 120
    torch.manual_seed(0)  # parameter init only
    encoder = build_encoder("mamp", layout="ntu25", num_persons=2, preset=getattr(args, "preset", None) or "paper",
                            frames=frames, unfused=naive)
    method = MAMP(encoder, decoder_depth=3).to(device)
    cuda = device.type == "cuda"
    opt = torch.optim.AdamW(method.param_groups(0.05), lr=1e-3, betas=(0.9, 0.95), fused=cuda and not naive)
    batch = synthetic_batch(args.batch, device)

    if not naive:
        return fast_step(method, opt, batch, device)

    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    x_cpu, len_cpu = batch["x"].cpu(), batch["lengths"].cpu()

    def naive_step() -> None:
        clips = []
        for i in range(x_cpu.shape[0]):  # the feeder: one sample at a time on the CPU
            one = crop_resize(x_cpu[i:i + 1], len_cpu[i:i + 1], frames, ratio=(0.5, 1.0), min_frames=64, generator=gen)
            clips.append(rotate(one, 0.3, generator=gen))
        x = torch.cat(clips).to(device)  # (N, C, 120, V, M)
        n, c, t, v, m = x.shape
        seq = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)  # (B, C, T, V)
        positions = patchify(seq, encoder.t_patch)  # (B, L, 12)
        ids_keep, ids_restore, mask = naive_masks(positions, method.keep, method.tau, rng, v)
        emb = F.conv2d(seq, encoder.joints_embed.proj.weight, encoder.joints_embed.proj.bias, stride=(encoder.t_patch, 1))
        emb = (emb.permute(0, 2, 3, 1) + encoder.pos_embed + encoder.temp_embed).flatten(1, 2)  # (B, L, D): all tokens
        b, length, d = emb.shape
        vis = emb.gather(1, ids_keep[:, :, None].expand(b, method.keep, d))  # (B, K, D)
        latent = method.decoder_embed(encoder.encode(vis))
        full = torch.cat([latent, method.mask_token.expand(b, length - method.keep, -1)], dim=1)
        full = full.gather(1, ids_restore[:, :, None].expand(b, length, full.shape[2]))  # un-shuffle
        full = full + (method.decoder_pos_embed + method.decoder_temp_embed).flatten(1, 2)
        for block in method.decoder_blocks:
            full = block(full)
        pred = method.decoder_pred(method.decoder_norm(full))
        loss = masked_mse(pred, normalize_tokens(motion_target(seq, encoder.t_patch)), mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return naive_step
