"""Hi-TRS pre-training step for ``benchmarks/train_throughput.py``: skelssl's batched implementation
against a re-enactment of the official code's data path.

    .venv/bin/python benchmarks/train_throughput.py --method hitrs --batch 64 [--frames 64] [--device cuda]

Both variants train the paper-size model (d 128, 8 heads of 64, 3 layers per level: 6.92 M encoder
parameters plus 0.13 M of pretext heads) with AdamW and gradient clipping on a fixed batch of
``args.batch`` single-person random-walk sequences of ``args.frames`` frames (64 by default).

- **fast**: :class:`skelssl.methods.hitrs.HiTRSPretraining` as the engine runs it: augmentation,
  masking, clip sampling and windowing batched on the training device, frame features gathered into
  windows by indexing, only real windows encoded, fused ``scaled_dot_product_attention``, bf16 autocast
  on CUDA.
- **naive**: what ``dataset/NTU_3D_pretrain.py`` + ``model/Hi_TRS.py`` do, step by step: per-sample
  NumPy augmentation, a Python loop over every (frame, joint) for the masking, the frame-flow scores and
  both ``slid_window`` loops per sample on the CPU, a per-sample collate, then on the device the
  Python loops over the batch that gather the order clips and the last clip, every window slot of the
  longest list encoded (padding included), a separate C-TRS pass for the future target and two V-TRS
  passes; fp32 and explicit softmax attention. The official loader runs this CPU work in 8 worker
  processes, so the naive time here (one process) is an upper bound on its cost per step.
"""

from __future__ import annotations

import random
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from skelssl.core.layouts import NTU25
from skelssl.methods.hitrs import HiTRSPretraining
from skelssl.methods.losses import future_clip_loss, masked_joint_loss, order_loss
from skelssl.models import build_encoder

PAPER_SIZE = {"preset": "paper", "encoder_params_M": 6.92, "frames": 64, "sequences_per_update": 256}
W, STRIDE, DIL = 7, 7, 2
PAD = (W // 2) * DIL


def synthetic_batch(batch: int, frames: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Single-person random walks around a body-sized rest pose, in metres (Kinect-like)."""
    g = torch.Generator().manual_seed(seed)
    rest = torch.randn(1, 3, 1, 25, 1, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 3.0])[None, :, None, None, None]
    walk = torch.randn(batch, 3, frames, 25, 1, generator=g).cumsum(dim=2) * 0.01
    return {"x": rest + walk, "lengths": torch.full((batch,), frames, dtype=torch.int64)}


# -- the official data path, per sample (naive variant) ---------------------------------------------


def slid_window(frame_num: int, w_size: int, stride: int, dilate: int) -> list[list[int]]:
    """Official ``slid_window`` (pre-training version)."""
    begin, result, idx_list = 0, [], list(range(frame_num))
    while True:
        tmp = idx_list[begin : begin + w_size * dilate][::dilate]
        if len(tmp) < w_size:
            tmp += [idx_list[-1]] * (w_size - len(tmp))
        result.append(tmp)
        begin += stride
        if tmp[-1] >= frame_num - w_size // 2 * dilate - 1 and begin + (w_size - 1) * dilate > frame_num - 1:
            return result


def data_aug(seq: np.ndarray, rng: random.Random, nrng: np.random.Generator) -> np.ndarray:
    """Official ``data_aug``: one of scale / noise / shear, then one of interpolate / crop."""
    ops = [rng.randint(0, 2), rng.randint(3, 4)]
    for op in ops:
        if op == 0:
            seq = seq * nrng.uniform(0.8, 1.2)
        elif op == 1:
            for j in rng.sample(range(seq.shape[1]), 5):
                seq[:, j] += nrng.uniform(-0.2, 0.2, 3)
        elif op == 2:
            s = [rng.uniform(-0.5, 0.5) for _ in range(6)]
            r = np.array([[1, s[0], s[3]], [s[1], 1, s[4]], [s[2], s[5], 1]])
            seq = seq @ r.T
        elif op == 3:
            r = nrng.uniform(0, 1)
            seq = np.concatenate([seq[:-1] + r * (seq[1:] - seq[:-1]), seq[-1:]], axis=0)
        else:
            crop = int(np.round(len(seq) * nrng.uniform(0, 0.2)))
            if crop > 0:
                head = rng.randint(0, crop)
                seq = seq[head : len(seq) - (crop - head)]
    return seq


def official_sample(seq: np.ndarray, rng: random.Random, nrng: np.random.Generator) -> dict:
    """Official ``NTU_Pretrain.__getitem__`` after loading (joint stream)."""
    if rng.random() < 0.5:
        seq = data_aug(seq.copy(), rng, nrng)
    t, v, _ = seq.shape
    masked, mask = np.zeros_like(seq), np.zeros((t, v, 1))
    for f in range(t):  # the official per-(frame, joint) loop
        for j in range(v):
            if rng.random() < 0.15:
                mask[f, j] = 1
                p = rng.random()
                if p < 0.8:
                    masked[f, j] = 1.0
                elif p < 0.9:
                    masked[f, j] = seq[rng.choice([i for i in range(t) if i != f]), rng.choice([i for i in range(v) if i != j])]
                else:
                    masked[f, j] = seq[f, j]
            else:
                masked[f, j] = seq[f, j]
    flow = [0.0] + [float(np.abs(seq[i] - seq[i - 1]).sum()) for i in range(1, t)]
    pad3 = [(PAD, PAD), (0, 0), (0, 0)]
    seq_p, masked_p, mask_p = np.pad(seq, pad3), np.pad(masked, pad3), np.pad(mask, pad3)
    flow_p = np.pad(np.array(flow), (PAD, PAD))
    counted = np.ones(t + 2 * PAD)
    counted[: PAD + 1], counted[-PAD:] = 0, 0
    clips = slid_window(t + 2 * PAD, W, 1, DIL)
    scores = [flow_p[c].sum() / counted[c].sum() if counted[c].sum() > 0 else 0.0 for c in clips]
    cand = [k for k, s in enumerate(scores) if s > 0]
    target, valid = (rng.choice(cand), 1) if cand else (0, 0)
    while True:
        a, b = rng.randint(0, W - 1), rng.randint(0, W - 1)
        if abs(a - b) >= 2:
            break
    perm = list(range(W))
    perm[a], perm[b] = b, a
    clip = clips[target]
    windows = slid_window(t + 2 * PAD, W, STRIDE, DIL)
    last, windows = windows[-1], windows[:-1]
    n = len(windows)
    if n == 2:
        pv = [1, 0]
    else:
        while True:
            a, b = rng.randint(0, n - 1), rng.randint(0, n - 1)
            if abs(a - b) >= 2:
                break
        pv = list(range(n))
        pv[a], pv[b] = b, a
    return {"masked": masked_p, "seq": seq_p, "mask": mask_p, "clip": [clip, [clip[i] for i in perm]],
            "valid": valid, "windows": windows, "last": last, "perm": pv}


def official_collate(samples: list[dict]) -> dict:
    """Official ``my_collate``: pad sequences, take the longest window list, pad permutations."""
    t_max = max(s["seq"].shape[0] for s in samples)

    def pad(key: str) -> torch.Tensor:
        out = np.zeros((len(samples), t_max) + samples[0][key].shape[1:])
        for i, s in enumerate(samples):
            out[i, : s[key].shape[0]] = s[key]
        return torch.tensor(out, dtype=torch.float32)

    longest = max((s["windows"] for s in samples), key=len)
    k = len(longest)
    valid = torch.zeros(len(samples), k, dtype=torch.bool)
    perms = []
    for i, s in enumerate(samples):
        valid[i, : len(s["windows"])] = True
        perms.append(s["perm"] + list(range(len(s["perm"]), k)))
    return {"masked": pad("masked"), "seq": pad("seq"), "mask": pad("mask")[..., 0].bool(),
            "clip": torch.tensor([s["clip"] for s in samples]), "valid_c": torch.tensor([s["valid"] for s in samples]).bool(),
            "windows": torch.tensor(longest), "w_valid": valid, "last": torch.tensor([s["last"] for s in samples]),
            "perm": torch.tensor(perms)}


def official_loss(m: HiTRSPretraining, b: dict) -> torch.Tensor:
    """Official ``Hi_TRS.forward`` + ``cal_loss`` (loops over the batch as written there)."""
    enc = m.encoder
    s_x = enc.encode_frames(b["masked"])  # (B, F, V, d): every frame, batch padding included
    pose = masked_joint_loss(m.pose_head(s_x), b["seq"], b["mask"], m.pose_scale)
    n = s_x.shape[0]
    c_ord = torch.cat([s_x[i, b["clip"][i]][None] for i in range(n)])  # (B, 2, W, V, d)
    c_ord = enc.encode_clips(c_ord)
    clip, _ = order_loss(m.clip_order_head(torch.cat([c_ord[:, 0], c_ord[:, 1]])), b["valid_c"])
    c_x = enc.encode_clips(s_x[:, b["windows"]])  # (B, K, 2d): every slot of the longest list
    vx, _ = enc.encode_video(c_x, b["w_valid"])
    last = enc.encode_clips(torch.cat([s_x[i, b["last"][i]][None] for i in range(n)])).detach()  # (B, 2d)
    future, _ = future_clip_loss(m.future_head(vx), last, m.temperature)
    permuted = torch.cat([c_x[i, b["perm"][i]][None] for i in range(n)])
    vx_perm, _ = enc.encode_video(permuted, b["w_valid"])
    video, _ = order_loss(m.video_order_head(torch.cat([vx, vx_perm])), torch.ones(n, dtype=torch.bool, device=vx.device))
    return pose + clip + video + future


# -- the plug-in ---------------------------------------------------------------------------------------


def make_step(args, device: torch.device, naive: bool) -> Callable[[], None]:
    """One optimiser step of Hi-TRS pre-training on a fixed batch (see the module docstring)."""
    frames = args.frames or PAPER_SIZE["frames"]
    torch.manual_seed(0)
    preset = getattr(args, "preset", None) or "paper"
    enc = build_encoder("hitrs", layout=NTU25.name, preset=preset, fused_attention=not naive)
    method = HiTRSPretraining(enc).to(device)
    opt = torch.optim.AdamW(method.param_groups(0.01), lr=4e-4)
    data = synthetic_batch(args.batch, frames)
    autocast = device.type == "cuda" and not naive

    if not naive:
        batch = {k: v.to(device) for k, v in data.items()}

        def fast_step() -> None:
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss, _ = method.training_step(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(method.parameters(), 1.0)
            opt.step()

        return fast_step

    sequences = data["x"][..., 0].permute(0, 2, 3, 1).numpy().astype(np.float64)  # (B, T, V, C)
    rng, nrng = random.Random(0), np.random.default_rng(0)

    def naive_step() -> None:
        samples = [official_sample(s, rng, nrng) for s in sequences]
        b = {k: v.to(device) for k, v in official_collate(samples).items()}
        opt.zero_grad(set_to_none=True)
        loss = official_loss(method, b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(method.parameters(), 1.0)
        opt.step()

    return naive_step
