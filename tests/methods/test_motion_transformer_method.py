"""Motion-Transformer pre-training: octant labels of a hand-made motion, the whole step against a
per-sample reference, seeding, and the recipes (its masking is in test_masking.py, its losses in
test_losses.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import smooth_motions, train_on_one_batch
from skelssl.methods import Method, get_method
from skelssl.methods.masking import corrupt_frames, draw_frame_masks
from skelssl.methods.motion_transformer import flow_at, octant_labels
from skelssl.models import build_encoder

torch.set_num_threads(1)

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "motion_transformer"


def make_method(seed: int = 0, enc_kwargs: dict | None = None, **kwargs):
    torch.manual_seed(0)  # parameter init only
    enc = build_encoder("motion_transformer", layout="ntu25", num_persons=2, preset="tiny",
                        **{"frames": 20, **(enc_kwargs or {})})
    method = get_method("motion_transformer")(enc, **kwargs)
    method.run_seed = seed
    return method


def make_batch(n: int = 6, t: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    return smooth_motions(n, t, seed, rate=0.3, amplitude=1.0, phase=True)


def test_octant_labels_of_a_hand_made_motion():
    # 4 joints over 3 frames; frame 0 -> 1 moves: j0 (+,+,+), j1 (-,+,-), j2 still, j3 (+,-,+).
    f0 = torch.tensor([[0.0, 0, 0], [1, 1, 1], [2, 2, 2], [0, 0, 0]])
    f1 = f0 + torch.tensor([[0.1, 0.2, 0.3], [-0.1, 0.5, -0.2], [0, 0, 0], [0.3, -0.1, 0.2]])
    f2 = f1 + torch.tensor([[-0.1, -0.1, -0.1], [0.1, 0, 0], [0, 0, 0.4], [0, 0.1, 0]])
    tokens = torch.stack([f0, f1, f2]).reshape(1, 3, 12)  # (N, L, J*C)
    flow = flow_at(tokens, torch.tensor([3]), torch.tensor([[0, 1, 2]]), channels=3)  # (1, 3, 4, 3)
    labels = octant_labels(flow)
    assert labels[0, 0].tolist() == [7, 2, 0, 5]  # 1*x + 2*y + 4*z
    assert labels[0, 1].tolist() == [0, 1, 4, 2]
    assert labels[0, 2].tolist() == [0, 0, 0, 0]  # the last frame has no successor: zero flow
    # Min-max scaling is increasing per coordinate, so the encoder's tokens give the same labels.
    enc = build_encoder("motion_transformer", layout="ntu25", num_persons=1, preset="tiny", frames=3)
    x = torch.zeros(1, 3, 3, 25, 1)
    x[0, :, :, :4, 0] = torch.stack([f0, f1, f2]).permute(2, 0, 1)
    x[0, :, :, 4:, 0] = 0.5
    tok, _ = enc.prepare(x)
    from_tokens = octant_labels(flow_at(tok, torch.tensor([3]), torch.tensor([[0, 1]]), 3))
    assert from_tokens[0, :, :4].tolist() == [[7, 2, 0, 5], [0, 1, 4, 2]]


@pytest.mark.parametrize("tasks", [("flow",), ("reconstruct",), ("flow", "reconstruct")])
def test_step_loss_equals_a_per_sample_reference(tasks):
    no_dropout = {"short": "pad", "frames": 30, "dropout": 0.0, "attention_dropout": 0.0}
    method = make_method(tasks=tasks, enc_kwargs=no_dropout)
    batch = make_batch()
    loss, logs = method.training_step(batch)
    # Reference: the same draw, then per sample and per chosen frame in Python.
    method.step.zero_()
    tokens, lens = method.encoder.prepare(batch["x"], batch["lengths"])
    draw = draw_frame_masks(lens, tokens.shape[1], generator=method.generator())
    corrupted = corrupt_frames(tokens, draw) if "reconstruct" in tasks else tokens
    flow_terms, recon_terms = [], []
    for i in range(tokens.shape[0]):
        n = int(lens[i])
        seq = method.encoder.encode(corrupted[i: i + 1, :n])[0]  # one sample, no padding at all
        for k in range(draw.positions.shape[1]):
            if not draw.valid[i, k]:
                continue
            t = int(draw.positions[i, k])
            if "flow" in tasks:
                logits = method.flow_head(seq[t][None])[0]  # (J, J*8)
                nxt = tokens[i, t + 1] if t + 1 < n else tokens[i, t]
                d = (nxt - tokens[i, t]).view(25, 3)
                for jj in range(25):
                    label = int(d[jj, 0] > 0) + 2 * int(d[jj, 1] > 0) + 4 * int(d[jj, 2] > 0)
                    flow_terms.append(-torch.log_softmax(logits[jj], 0)[8 * jj + label])
            if "reconstruct" in tasks:
                recon_terms.append(((method.frame_head(seq[t][None])[0] - tokens[i, t]) ** 2).mean())
    expected = sum(float(torch.stack(terms).mean().detach()) for terms in (flow_terms, recon_terms) if terms)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-4)
    keys = {"loss"} | ({"flow_loss", "flow_acc"} if "flow" in tasks else set())
    assert set(logs) == keys | ({"recon_loss"} if "reconstruct" in tasks else set())


def test_one_step_gives_finite_loss_and_encoder_gradients():
    method = make_method(tasks=("flow", "reconstruct"))
    assert isinstance(method, Method) and method.export_encoder() is method.encoder
    batch = make_batch()
    x0 = batch["x"].clone()
    loss, logs = method.training_step(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = {n: p.grad for n, p in method.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert float(method.encoder.token_embed.weight.grad.abs().sum()) > 0
    assert torch.equal(batch["x"], x0) and int(method.step) == 1 and "step" in method.state_dict()


OPTIONS = [{"target": "vector"}, {"flow_softmax": "per_joint", "mask_input": True, "exclude_last": True}]


@pytest.mark.parametrize("kwargs", OPTIONS)
def test_options_train(kwargs):
    method = make_method(**kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = method.training_step(make_batch())
    assert torch.isfinite(loss)
    loss.backward()


def test_masking_stream_is_seeded_and_resumable():
    batch = make_batch()
    a, b, c = make_method(seed=0).eval(), make_method(seed=0).eval(), make_method(seed=1).eval()
    la, lb, lc = a.training_step(batch)[0], b.training_step(batch)[0], c.training_step(batch)[0]
    assert torch.equal(la, lb) and not torch.equal(la, lc)
    resumed = make_method(seed=0).eval()
    resumed.load_state_dict(a.state_dict())
    assert torch.equal(a.training_step(batch)[0], resumed.training_step(batch)[0])


def test_a_few_dozen_steps_reduce_the_flow_loss():
    method = make_method(seed=3)
    batch = make_batch(n=8, seed=4)
    losses = train_on_one_batch(method, torch.optim.AdamW(method.param_groups(0.01), lr=3e-3), batch, 30)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses


def test_bert_decay_groups():
    method = make_method(tasks=("flow", "reconstruct"))
    decay, skip = method.param_groups(0.01)
    names = {id(p): n for n, p in method.named_parameters()}
    skipped = {names[id(p)] for p in skip["params"]}
    decayed = {names[id(p)] for p in decay["params"]}
    assert skip["weight_decay"] == 0.0 and decay["weight_decay"] == 0.01
    assert all(("norm" in n or n.endswith("bias")) for n in skipped)
    assert "encoder.position_embeddings.weight" in decayed  # BERT decays the embedding tables


def test_wrong_encoder_and_bad_options_raise():
    stgcn = build_encoder("stgcn", layout="ntu25", num_persons=2, channels=(8,), strides=(1,))
    with pytest.raises(TypeError):
        get_method("motion_transformer")(stgcn)
    with pytest.raises(ValueError):
        make_method(tasks=("flow", "jigsaw"))
    with pytest.raises(ValueError):
        draw_frame_masks(torch.tensor([5]), 5, probs=(0.5, 0.5, 0.5), generator=torch.Generator())


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("[!_]*.yaml")), ids=lambda p: p.name)
def test_recipes_load_and_build(recipe):
    from skelssl.engine.config import build_encoder_from_config, build_method_from_config, load_config
    from skelssl.engine.config import load_eval_config

    cfg = load_config(recipe)
    assert cfg.optim.name == "adamw" and cfg.optim.weight_decay == 0.01 and cfg.optim.no_decay == ["bias", "norm"]
    assert cfg.schedule.name == "linear" and cfg.trainer.grad_clip == 1.0 and cfg.data.max_frames is None
    total = cfg.trainer.max_steps or cfg.trainer.epochs * 31  # N-UCLA CPU recipe: 31 steps per epoch
    assert cfg.schedule.warmup_steps == pytest.approx(0.1 * total, rel=0.01)  # BERT: 10 % warm-up
    ev = load_eval_config(cfg.eval)
    assert ev.input.frames is None and ev.input.max_frames is None  # the encoder samples frames itself
    for task in (ev.linear, ev.finetune):
        assert task.optim.name == "adamw" and task.schedule.name == "linear"
        assert task.schedule.warmup_epochs == pytest.approx(0.1 * task.epochs)
    assert ev.linear.optim.lr == 1e-3 and ev.finetune.optim.lr == 5e-5
    assert cfg.encoder.name == "motion_transformer" and cfg.method.name == "motion_transformer"
    small = {"preset": "tiny", "hidden": 32, "heads": 4, "intermediate": 64, "layers": 1}
    cfg.encoder.kwargs.update(small)
    layout, v, m = ("kinect20", 20, 1) if "nucla" in recipe.name else ("ntu25", 25, 2)
    enc = build_encoder_from_config(cfg.encoder, in_channels=3, layout=layout, num_persons=m)
    method = build_method_from_config(cfg.method, encoder=enc)
    batch = {"x": torch.randn(2, 3, 30, v, m), "lengths": torch.tensor([30, 17])}
    assert torch.isfinite(method.training_step(batch)[0])
