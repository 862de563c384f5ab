"""Is Hi-TRS's clip-order task separable at its input? (docs/hitrs.md, "On small data")

    python benchmarks/hitrs_clip_order.py STORE [--sequences 512]

Draws sequences, augmentations, masks, order clips and swaps exactly as a training step does, then
measures, over the order clips, how often swapping the two frames raises the clip's total variation
(the summed absolute frame-to-frame change of the joint coordinates) and by how much, on the clean
and on the masked frames (the official task reads the masked ones); and how much a random-init C-TRS
clip embedding moves under the swap.
"""

from __future__ import annotations

import argparse

import torch

from skelssl.data.dataset import SkeletonDataset, collate
from skelssl.methods.hitrs import HiTRSPretraining
from skelssl.methods.hitrs_tasks import apply_swap, sample_order_clips, swap_pairs
from skelssl.methods.masking import mask_joints
from skelssl.models import build_encoder
from skelssl.models.windowing import gather_windows, pad_frames


def total_variation(frames: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(B,)`` summed absolute change between consecutive frames of each clip ``index`` ``(B, W)``."""
    clip = frames[torch.arange(frames.shape[0])[:, None], index]  # (B, W, V, C)
    return (clip[:, 1:] - clip[:, :-1]).abs().sum(dim=(1, 2, 3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store")
    p.add_argument("--sequences", type=int, default=512)
    args = p.parse_args()
    torch.set_num_threads(1)
    ds = SkeletonDataset(args.store, max_frames=120)
    torch.manual_seed(0)
    enc = build_encoder("hitrs", in_channels=ds.store.channels, layout=ds.store.layout, preset="small")
    method = HiTRSPretraining(enc)
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(ds), generator=g)[: args.sequences].tolist()
    seq, lengths = method.prepare(collate([ds[i] for i in pick]), g)  # (B, T, V, C)
    masked, _ = mask_joints(seq, lengths, g, method.mask_prob, method.mask_split, method.mask_token)
    clip, valid = sample_order_clips(seq, lengths, g, enc.window, enc.dilation)
    fi, fj, _ = swap_pairs(torch.full((seq.shape[0],), enc.window), g)
    swapped = apply_swap(clip, fi, fj)
    print(f"{seq.shape[0]} single-person sequences, mean length {lengths.float().mean():.1f} frames")
    for name, frames in (("clean", seq), ("masked", masked)):
        padded = pad_frames(frames, enc.pad)
        a, b = total_variation(padded, clip)[valid], total_variation(padded, swapped)[valid]
        print(f"{name:7s} frames: the swap raises the total variation in {100 * (b > a).float().mean():.1f} % of "
              f"clips, median change {100 * ((b - a) / a).median():+.1f} %")
    enc.eval()
    with torch.no_grad():
        s_x = enc.encode_frames(pad_frames(masked, enc.pad))
        both = enc.encode_clips(gather_windows(s_x, torch.stack([clip, swapped], dim=1)))  # (B, 2, 2d)
        change = (both[:, 0] - both[:, 1]).norm(dim=1) / both[:, 0].norm(dim=1)
    print(f"random-init C-TRS: the swap moves the clip embedding by {100 * change.median():.2f} % of its norm (median)")


if __name__ == "__main__":
    main()
