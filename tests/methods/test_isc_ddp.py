"""ISC with two CPU processes (gloo): each process enqueues the keys of the global batch, rank 0's keys
then rank 1's, so the queues stay identical; the queue size is checked against the global batch."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from skelssl.engine.dist import all_gather_with_grad
from test_isc import make_batch, make_method

WORLD = 2
N = 4  # samples per process


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        method = make_method(queue_size=16)  # identical initial weights and queues on both ranks
        method.gather = all_gather_with_grad
        batch = make_batch(n=N, seed=10 + rank)  # each rank its own samples
        twin = copy.deepcopy(method)
        _, view_k = twin.views(batch)  # the key view this rank's step draws (seeded by rank and step)
        local = twin.encode_keys(view_k)
        loss, _ = method.training_step(batch)
        loss.backward()
        res = {
            "local": local,
            "queues": {rep: method.queues[rep].keys.clone() for rep in method.reps},
            "ptr": {rep: int(method.queues[rep].ptr) for rep in method.reps},
            "loss": float(loss),
        }
        # 12 keys hold 3 local batches of 4 but not a whole number of global batches of 8.
        bad = make_method(queue_size=12)
        bad.gather = all_gather_with_grad
        try:
            bad.training_step(batch)
        except ValueError as e:
            res["error"] = str(e)
        # In-batch keys (queue_size=0): this rank's queries score the keys of both ranks, positive at
        # row rank * N + i of the gathered keys.
        inb = make_method(queue_size=0)
        inb.gather = all_gather_with_grad
        twin = copy.deepcopy(inb)
        view_q, view_k = twin.views(batch)
        with torch.no_grad():
            keys = {rep: all_gather_with_grad(k) for rep, k in twin.encode_keys(view_k).items()}  # (8, D)
            q = {rep: F.normalize(twin.heads[rep](twin.queries[rep](view_q["x"], view_q["lengths"])), dim=1) for rep in twin.reps}
        target = torch.arange(N) + rank * N
        res["inbatch_expected"] = sum(F.cross_entropy(q[a] @ keys[b].T / 0.07, target) for a, b in (("seq", "graph"), ("graph", "seq"))).item()
        res["inbatch"] = float(inb.training_step(batch)[0])
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_queues_receive_both_ranks_keys_in_rank_order(tmp_path: Path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    res = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for rep in ("seq", "graph"):
        expected = torch.cat([res[0]["local"][rep], res[1]["local"][rep]])  # (8, D): rank 0 then rank 1
        assert not torch.allclose(res[0]["local"][rep], res[1]["local"][rep])  # the ranks saw different clips
        for r in range(WORLD):
            torch.testing.assert_close(res[r]["queues"][rep][: WORLD * N], expected)
            assert res[r]["ptr"][rep] == WORLD * N
        torch.testing.assert_close(res[0]["queues"][rep], res[1]["queues"][rep])  # identical queues
    for r in range(WORLD):
        assert "queue size 12 is not a multiple of the global batch 8" in res[r]["error"]
        assert abs(res[r]["inbatch"] - res[r]["inbatch_expected"]) < 1e-4
