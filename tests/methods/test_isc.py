"""ISC: the cross InfoNCE equals a naive loop over the queue, queues fill and wrap, momentum encoders
follow the queries without gradients, every pairing runs, views are seeded and resumable, and the
recipes in configs/isc/ load and build."""

from __future__ import annotations

import copy
import inspect
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import smooth_motions
from skelssl.methods import Method, get_method
from skelssl.methods.isc import PAIRINGS
from skelssl.methods.moco_queue import KeyQueue
from skelssl.models import build_encoder

torch.set_num_threads(1)

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "isc"
TINY = {
    "gru": {"hidden_size": 8, "num_layers": 2},
    "agcn": {"channels": (8, 16), "strides": (1, 2), "temporal_kernel": 3},
    "hcn": {"channels": 4, "frames": 16},
}
NAMES = {"seq": "gru", "graph": "agcn", "image": "hcn"}


def make_method(pairing: str = "seq+graph", seed: int = 0, layout: str = "ntu25", persons: int = 2, **kwargs):
    torch.manual_seed(0)  # parameter init only
    reps = PAIRINGS[pairing]
    enc = build_encoder(NAMES[reps[0]], layout=layout, num_persons=persons, **TINY[NAMES[reps[0]]])
    args = {"queue_size": 16, "frames": 16, "proj_dim": 8, **kwargs}
    if len(reps) == 2:
        args.setdefault("partner", {"name": NAMES[reps[1]], "kwargs": dict(TINY[NAMES[reps[1]]])})
    method = get_method("isc")(enc, pairing=pairing, **args)
    method.run_seed = seed
    return method


def make_batch(n: int = 4, t: int = 40, seed: int = 0, persons: int = 2, joints: int = 25) -> dict[str, torch.Tensor]:
    return smooth_motions(n, t, seed, persons=persons, joints=joints)


def naive_info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, tau: float) -> torch.Tensor:
    """-1/N sum_i log(exp(q_i.k_i/t) / (exp(q_i.k_i/t) + sum_j exp(q_i.n_j/t))), one entry at a time."""
    total = 0.0
    for i in range(q.shape[0]):
        qi = q[i] / q[i].norm()
        ki = k[i] / k[i].norm()
        pos = math.exp(float(qi @ ki) / tau)
        neg = sum(math.exp(float(qi @ (n / n.norm())) / tau) for n in queue)
        total += -math.log(pos / (pos + neg))
    return torch.tensor(total / q.shape[0])


def test_one_step_loss_logs_and_gradients_only_in_the_queries():
    method = make_method()
    assert isinstance(method, Method) and method.export_encoder() is method.encoder is method.queries["seq"]
    batch = make_batch()
    x0 = batch["x"].clone()
    loss, logs = method.training_step(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(logs) == {"loss", "loss_seq", "loss_graph", "top1_seq", "top1_graph"}
    torch.testing.assert_close(logs["loss"], logs["loss_seq"] + logs["loss_graph"])
    loss.backward()
    for part in (method.queries, method.heads):
        for name, p in part.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert sum(float(p.grad.abs().sum()) for p in part.parameters()) > 0
    for part in (method.key_encoders, method.key_heads):
        assert all(not p.requires_grad and p.grad is None for p in part.parameters())
    assert torch.equal(batch["x"], x0) and int(method.step) == 1
    assert {"queues.seq.keys", "queues.seq.ptr", "queues.graph.keys", "queues.graph.ptr", "step"} <= set(method.state_dict())


@pytest.mark.parametrize("pairing", ["seq+graph", "intra-graph"])
def test_loss_equals_naive_loop_over_the_queue_and_queue_receives_the_keys(pairing):
    method = make_method(pairing, queue_size=8)
    for _ in range(2):  # fill the queue with real keys, then check the next step
        method.training_step(make_batch(seed=1))
    batch = make_batch(seed=2)
    twin = copy.deepcopy(method)
    view_q, view_k = twin.views(batch)
    assert view_q["x"].shape == (4, 3, 16, 25, 2) and not torch.equal(view_q["x"], view_k["x"])
    queues = {rep: twin.queues[rep].keys.clone() for rep in twin.reps}
    with torch.no_grad():
        q = {rep: twin.heads[rep](twin.queries[rep](view_q["x"], view_q["lengths"])) for rep in twin.reps}
        k = {rep: twin.key_heads[rep](twin.key_encoders[rep](view_k["x"], view_k["lengths"])) for rep in twin.reps}
    other = {"seq": "graph", "graph": "seq"} if pairing == "seq+graph" else {"graph": "graph"}
    expected = {rep: naive_info_nce(q[rep], k[other[rep]], queues[other[rep]], 0.07) for rep in twin.reps}
    loss, logs = method.training_step(batch)
    for rep in method.reps:
        torch.testing.assert_close(logs[f"loss_{rep}"], expected[rep], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss.detach(), sum(expected.values()), rtol=1e-4, atol=1e-5)
    # Third batch of 4 in a queue of 8: rows 0..3 hold this step's normalised keys, rows 4..7 the last step's.
    for rep in method.reps:
        torch.testing.assert_close(method.queues[rep].keys[:4], F.normalize(k[rep], dim=1))
        torch.testing.assert_close(method.queues[rep].keys[4:], queues[rep][4:])
        assert int(method.queues[rep].ptr) == 4


def test_queue_enqueues_wraps_and_checks_the_batch():
    queue = KeyQueue(6, 3, seed=0)
    init = queue.keys.clone()
    torch.testing.assert_close(init.norm(dim=1), torch.ones(6))  # random unit keys
    assert torch.equal(KeyQueue(6, 3, seed=0).keys, init) and not torch.equal(KeyQueue(6, 3, seed=1).keys, init)
    a, b, c = (torch.full((2, 3), float(i)) for i in (1, 2, 3))
    queue.enqueue(a)
    queue.enqueue(b)
    assert int(queue.ptr) == 4 and torch.equal(queue.keys[:4], torch.cat([a, b])) and torch.equal(queue.keys[4:], init[4:])
    queue.enqueue(c)
    assert int(queue.ptr) == 0 and torch.equal(queue.keys, torch.cat([a, b, c]))
    d = torch.full((2, 3), 4.0)
    queue.enqueue(d)  # wraps: the oldest keys (a) go first
    assert int(queue.ptr) == 2 and torch.equal(queue.keys, torch.cat([d, b, c]))
    with pytest.raises(ValueError, match="not a multiple of the global batch 4"):
        queue.enqueue(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="queue size 10 is not a multiple of the global batch 4"):
        make_method(queue_size=10).training_step(make_batch())


def test_momentum_encoders_follow_the_queries_and_never_require_grad():
    method = make_method()
    for q, k in method.momentum_pairs():
        for pq, pk in zip(q.parameters(), k.parameters()):
            assert torch.equal(pq, pk) and not pk.requires_grad  # keys start as copies
    assert method.momentum() == 0.999
    opt = torch.optim.SGD(method.param_groups(1e-4), lr=0.5, momentum=0.9)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 1e-4  # official: decay everything
    before = [[pk.clone() for pk in k.parameters()] for _, k in method.momentum_pairs()]
    loss, _ = method.training_step(make_batch())
    loss.backward()
    opt.step()
    method.after_optimizer_step()
    moved = 0.0
    for (q, k), old in zip(method.momentum_pairs(), before):
        for pq, pk, pk_old in zip(q.parameters(), k.parameters(), old):
            torch.testing.assert_close(pk, 0.999 * pk_old + 0.001 * pq)
            assert not pk.requires_grad
            moved += float((pk - pk_old).abs().sum())
    assert moved > 0


@pytest.mark.parametrize("pairing", list(PAIRINGS))
def test_every_pairing_trains_and_exports_its_first_encoder(pairing):
    method = make_method(pairing)
    reps = PAIRINGS[pairing]
    assert list(method.queues) == list(reps) and method.export_encoder() is method.queries[reps[0]]
    loss, logs = method.training_step(make_batch())
    assert torch.isfinite(loss) and {f"loss_{r}" for r in reps} <= set(logs)
    loss.backward()
    assert all(p.grad is not None for p in method.queries.parameters())


def test_export_choice_partner_and_argument_errors():
    method = make_method(export="graph")
    assert method.export_encoder() is method.queries["graph"] and method.export_encoder().out_dim == 16
    # The partner inherits the first encoder's layout and persons.
    kinect = make_method("seq+image", layout="kinect20", persons=1)
    assert kinect.queries["image"].layout.name == "kinect20" and kinect.queries["image"].num_persons == 1
    enc = build_encoder("gru", layout="ntu25", num_persons=2, **TINY["gru"])
    isc = get_method("isc")
    with pytest.raises(ValueError, match="pairing"):
        isc(enc, pairing="seq+text")
    with pytest.raises(ValueError, match="export"):
        isc(enc, export="image", partner={"name": "agcn", "kwargs": dict(TINY["agcn"])})
    with pytest.raises(ValueError, match="one encoder"):
        isc(enc, pairing="intra-seq", partner={"name": "agcn"})
    with pytest.raises(ValueError, match="conflicts"):
        isc(enc, partner={"name": "agcn", "kwargs": {"layout": "kinect20", **TINY["agcn"]}})


def test_views_are_isc_augmentations_seeded_and_resumable():
    method = make_method(seed=0)
    assert method.augment.steps[1][1]["choices"][1][1]["num_joints"] == 15  # 15 of NTU's 25 joints
    assert make_method("intra-seq", layout="kinect20", persons=1).augment.steps[1][1]["choices"][1][1]["num_joints"] == 12
    batch = make_batch()
    a, b, c = make_method(seed=0), make_method(seed=0), make_method(seed=1)
    la, lb, lc = a.training_step(batch)[0], b.training_step(batch)[0], c.training_step(batch)[0]
    assert torch.equal(la, lb) and not torch.equal(la, lc)
    resumed = make_method(seed=0)
    resumed.load_state_dict(a.state_dict())  # queues, pointers, step and weights
    assert torch.equal(resumed.queues["seq"].keys, a.queues["seq"].keys)
    assert torch.equal(a.training_step(batch)[0], resumed.training_step(batch)[0])


def test_a_few_dozen_steps_reduce_the_loss():
    # Milder spatial augmentation than ISC's, so that tiny encoders learn within seconds; the batches
    # rotate so that the queue holds other samples' keys.
    method = make_method("seq+graph", seed=3, queue_size=8, momentum=0.9, shear=0.2, corrupt_joints=3)
    batches = [make_batch(n=4, seed=s) for s in range(4)]
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for i in range(40):
        loss, logs = method.training_step(batches[i % 4])
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_optimizer_step()
        losses.append(float(logs["loss"]))
    # Steps 0-3 score against the random initial queue; compare once it holds real keys.
    assert sum(losses[-8:]) / 8 < sum(losses[4:12]) / 8 - 0.5, losses


def _defaults(cls) -> dict:
    """The constructor defaults a recipe leaves out (recipes state only what differs from them)."""
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if p.default is not p.empty}


def test_recipes_load_and_name_valid_arguments():
    from skelssl.engine.config import build_encoder_from_config, build_method_from_config, checked_kwargs, load_config
    from skelssl.engine.config import load_eval_config
    from skelssl.models import ENCODERS, _ensure

    recipes = {p.stem: p for p in RECIPES.glob("*.yaml") if not p.stem.startswith("_")}
    assert set(recipes) >= {"ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset", "pku1_xsub", "nucla_xview", "nucla_cpu"}
    isc = get_method("isc")
    for name, path in recipes.items():
        cfg = load_config(path)
        assert cfg.method.name == "isc" and cfg.optim.name == "sgd" and cfg.data.store, name
        _ensure(cfg.encoder.name)
        checked_kwargs(ENCODERS.get(cfg.encoder.name), cfg.encoder.kwargs, "encoder.kwargs")
        kwargs = {**_defaults(isc), **checked_kwargs(isc, cfg.method.kwargs, "method.kwargs", given=("encoder",))}
        assert kwargs["queue_size"] % (cfg.data.batch_size * int(cfg.trainer.devices)) == 0, name
        ev = load_eval_config(cfg.eval)
        assert ev.knn.ks[0] == 1 and ev.linear.optim.lr == 0.1 and ev.linear.epochs in (40, 80), name
    ntu = load_config(recipes["ntu60_xsub"])
    assert (ntu.trainer.epochs, ntu.schedule.milestones, ntu.optim.lr, ntu.optim.weight_decay) == (451, [351], 0.01, 1e-4)
    assert {**_defaults(isc), **ntu.method.kwargs}["queue_size"] == 16384 and ntu.data.batch_size == 64
    assert load_config(recipes["ntu120_xset"]).trainer.epochs == 351
    # The CPU recipe builds for real (small presets; N-UCLA: one person, 20 joints) and trains a step.
    cfg = load_config(recipes["nucla_cpu"])
    enc = build_encoder_from_config(cfg.encoder, in_channels=3, layout="kinect20", num_persons=1)
    method = build_method_from_config(cfg.method, encoder=enc)
    assert method.pairing == "seq+graph" and method.export_encoder().out_dim == 256
    loss, _ = method.training_step(make_batch(n=cfg.data.batch_size, t=50, persons=1, joints=20))
    assert torch.isfinite(loss)


def test_queue_size_zero_uses_the_batch_keys_as_the_only_candidates():
    # queue_size=0 (the N-UCLA CPU recipe): query i's positive is key i of the other representation,
    # its negatives the other keys of the same step (MoCo v3), so recency cannot give the positive away.
    method = make_method("seq+graph", queue_size=0)
    assert len(method.queues) == 0
    batch = make_batch(seed=3)
    twin = copy.deepcopy(method)
    view_q, view_k = twin.views(batch)
    with torch.no_grad():
        q = {rep: F.normalize(twin.heads[rep](twin.queries[rep](view_q["x"], view_q["lengths"])), dim=1) for rep in twin.reps}
        k = {rep: F.normalize(twin.key_heads[rep](twin.key_encoders[rep](view_k["x"], view_k["lengths"])), dim=1) for rep in twin.reps}
    expected = {}
    for rep, src in (("seq", "graph"), ("graph", "seq")):
        terms = []
        for i in range(q[rep].shape[0]):  # naive: -log softmax over the batch's keys, one query at a time
            logits = torch.stack([q[rep][i] @ k[src][j] for j in range(k[src].shape[0])]) / 0.07
            terms.append(torch.logsumexp(logits, 0) - logits[i])
        expected[rep] = torch.stack(terms).mean()
    loss, logs = method.training_step(batch)
    for rep in method.reps:
        torch.testing.assert_close(logs[f"loss_{rep}"], expected[rep], rtol=1e-4, atol=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in method.queries.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="queue_size"):
        make_method("seq+graph", queue_size=-1)
