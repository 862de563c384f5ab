"""Hi-TRS with two CPU processes (gloo): the future-clip InfoNCE of each rank uses the targets of both
ranks as candidates, its own at the right offset, even when the ranks hold different numbers of
single-person sequences (the person split makes that the usual case)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from skelssl.engine.dist import all_gather_with_grad
from skelssl.methods.losses import future_clip_loss
from test_hitrs_method import method, walking_batch

WORLD = 2
BATCHES = {0: ([40, 35, 28], 1), 1: ([33, 30], 1)}  # rank -> (lengths, persons): 3 and 2 sequences


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        lengths, persons = BATCHES[rank]
        batch = walking_batch(len(lengths), max(lengths), persons, lengths, seed=20 + rank)
        m = method()
        m.gather = all_gather_with_grad
        twin = copy.deepcopy(m)  # same weights and step: draws the same masks and swaps (seeded by rank)
        captured: dict[str, torch.Tensor] = {}
        twin.gather = lambda t: captured.setdefault("target", t) if "target" not in captured else t
        twin.future_head.register_forward_hook(lambda mod, inp, out: captured.setdefault("pred", out.detach()))
        twin.training_step(batch)
        loss, logs = m.training_step(batch)
        loss.backward()
        torch.save({"pred": captured["pred"], "target": captured["target"].detach(),
                    "future_loss": float(logs["future_loss"]), "sequences": int(logs["sequences"])},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_future_clip_negatives_span_both_ranks(tmp_path: Path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    res = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert [r["sequences"] for r in res] == [3, 2]
    keys = torch.cat([res[0]["target"], res[1]["target"]])  # (5, 2d): rank 0's rows, then rank 1's
    for r, offset in ((0, 0), (1, 3)):
        expected, _ = future_clip_loss(res[r]["pred"], keys, 0.07, offset)
        assert abs(expected.item() - res[r]["future_loss"]) < 1e-5
        alone, _ = future_clip_loss(res[r]["pred"], res[r]["target"], 0.07, 0)
        assert abs(alone.item() - res[r]["future_loss"]) > 1e-4  # the other rank's targets were used
