"""MAMP pre-training (its masking is in test_masking.py, its loss in test_losses.py): the motion target
against a hand computation, the whole step against an official-style per-sequence reference (embed
all, gather, concatenate mask tokens, un-shuffle), seeding, the MAE variant, decay groups and the
recipes (METHODS.md §8.4-8.7, §8.13)."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import smooth_motions, train_on_one_batch
from skelssl.methods import Method, get_method
from skelssl.methods.losses import masked_mse
from skelssl.methods.mamp import MAMP, motion_target, normalize_tokens
from skelssl.methods.masking import draw_mask, keep_count, patchify
from skelssl.models import build_encoder

torch.set_num_threads(1)

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "mamp"


def make_method(seed: int = 0, enc_kwargs: dict | None = None, **kwargs) -> MAMP:
    torch.manual_seed(0)  # parameter init only
    enc = build_encoder("mamp", layout="ntu25", num_persons=2, **{"preset": "tiny", "frames": 16, **(enc_kwargs or {})})
    method = get_method("mamp")(enc, **{"min_frames": 8, "decoder_depth": 1, **kwargs})
    method.run_seed = seed
    return method


def make_batch(n: int = 4, t: int = 30, seed: int = 0) -> dict[str, torch.Tensor]:
    return smooth_motions(n, t, seed, rate=0.3, amplitude=1.0, phase=True)


# -- target and loss ----------------------------------------------------------------------------------------


def test_motion_target_equals_a_hand_computation():
    seq = torch.zeros(1, 3, 8, 2)
    seq[0, 0, :, 0] = torch.arange(8.0) ** 2  # x of joint 0: 0, 1, 4, ..., 49
    seq[0, 2, :, 1] = 5.0  # a still joint
    target = motion_target(seq, 4)  # (1, 2 x 2, 12), tokens t*V + v
    # D[t] = (t+1)^2 - t^2 = 2t + 1 for t < 7, D[7] = 0; token (t=1, v=0) covers frames 4..7, (f, c) order.
    assert target[0, 2].tolist() == [9, 0, 0, 11, 0, 0, 13, 0, 0, 0, 0, 0]
    assert target[0, 0].tolist() == [1, 0, 0, 3, 0, 0, 5, 0, 0, 7, 0, 0]
    assert float(target[0, 1].abs().max()) == 0 and float(target[0, 3].abs().max()) == 0  # still joint: 0
    tok = torch.tensor([9.0, 0, 0, 11, 0, 0, 13, 0, 0, 0, 0, 0])
    expected = (tok - tok.mean()) / math.sqrt(float(tok.var(unbiased=True)) + 1e-6)
    norm = normalize_tokens(target)
    torch.testing.assert_close(norm[0, 2], expected)
    assert abs(float(norm[0, 2].mean())) < 1e-6 and float(norm[0, 2].var(unbiased=True)) == pytest.approx(1.0, rel=1e-5)
    assert float(norm[0, 1].abs().max()) == 0  # an all-zero token stays zero
    static = torch.ones(2, 3, 8, 25) * 3.0
    assert float(motion_target(static, 4).abs().max()) == 0.0  # a static clip has no motion


# -- the whole step ------------------------------------------------------------------------------------------


def official_style_loss(method: MAMP, seq: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """Per sequence, as the official forward: conv-embed every token, gather the visible ones, encode,
    append mask tokens and un-shuffle with ``ids_restore``, decode; the target by a frame loop."""
    enc = method.encoder
    b, c, t, v = seq.shape
    length, p = enc.num_tokens, enc.t_patch
    emb = F.conv2d(seq, enc.joints_embed.proj.weight, enc.joints_embed.proj.bias, stride=(p, 1))  # (B, D, T/p, V)
    emb = emb.permute(0, 2, 3, 1) + enc.pos_embed + enc.temp_embed  # (B, T/p, V, D)
    emb = emb.reshape(b, length, -1)
    total, count = 0.0, 0
    for i in range(b):
        kept = ids_keep[i].tolist()
        masked = [j for j in range(length) if j not in set(kept)]
        ids_restore = torch.argsort(torch.tensor(kept + masked))
        h = emb[i, kept][None]
        for block in enc.blocks:
            h = block(h)
        h = method.decoder_embed(enc.norm(h))
        full = torch.cat([h, method.mask_token.expand(1, len(masked), -1)], dim=1)[:, ids_restore]
        full = full + (method.decoder_pos_embed + method.decoder_temp_embed).reshape(1, length, -1)
        for block in method.decoder_blocks:
            full = block(full)
        pred = method.decoder_pred(method.decoder_norm(full))[0]  # (L, p*C)
        x = seq[i]  # (C, T, V)
        motion = torch.zeros_like(x)
        for f in range(t - 1):
            motion[:, f] = x[:, f + 1] - x[:, f]
        for j in masked:
            tt, vv = divmod(j, v)
            tok = motion[:, p * tt:p * tt + p, vv].T.reshape(-1)  # (frame, coordinate)
            tok = (tok - tok.mean()) / torch.sqrt(tok.var() + 1e-6)
            total = total + ((pred[j] - tok) ** 2).mean()
            count += 1
    return total / count


def test_step_equals_an_official_style_reference():
    method = make_method(decoder_depth=2).eval()  # eval: no stochastic parts inside the networks
    batch = make_batch()
    g = method.generator()
    x = method.augment(batch["x"], batch["lengths"], g)
    seq = method.encoder.sequences(x)  # (N*M, C, T, V)
    draw = draw_mask(patchify(seq, 4), 25, method.keep, method.tau, g)
    loss, _ = method.pretext_loss(seq, draw)
    torch.testing.assert_close(loss, official_style_loss(method, seq, draw.ids_keep), rtol=1e-4, atol=1e-5)
    step_loss, logs = method.training_step(batch)  # the same generator stream at step 0
    torch.testing.assert_close(step_loss, loss)
    assert int(method.step) == 1 and set(logs) == {"loss"}


def test_the_encoder_sees_only_visible_tokens():
    method = make_method()
    seen = []
    method.encoder.blocks[0].register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape)))
    method.training_step(make_batch(n=3))
    assert seen == [(3 * 2, method.keep, method.encoder.dim)] and method.keep == keep_count(100, 0.9) == 9


def test_one_step_gives_a_finite_loss_and_gradients_everywhere():
    method = make_method()
    assert isinstance(method, Method) and method.export_encoder() is method.encoder
    loss, _ = method.training_step(make_batch())
    assert torch.isfinite(loss) and loss.ndim == 0
    loss.backward()
    for name, p in method.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if p.ndim > 1:
            assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kwargs", [{"masking": "uniform", "target": "position"}, {"tau": 0.0}, {"norm_target": False},
                                    {"crop": None, "rotate": 0.0}, {"decoder_dim": 16, "decoder_heads": 2}])
def test_options_train(kwargs):
    method = make_method(**kwargs)
    loss, _ = method.training_step(make_batch())
    loss.backward()
    assert torch.isfinite(loss)


def test_mae_variant_regresses_positions():
    method = make_method(masking="uniform", target="position").eval()
    batch = make_batch()
    g = method.generator()
    seq = method.encoder.sequences(method.augment(batch["x"], batch["lengths"], g))
    draw = draw_mask(patchify(seq, 4), 25, method.keep, method.tau, g, motion_aware=False)
    latent = method.encoder.encode(method.encoder.embed_visible(seq, draw.ids_keep))
    expected = masked_mse(method.decode(latent, draw.ids_keep), normalize_tokens(patchify(seq, 4)), draw.mask)
    torch.testing.assert_close(method.training_step(batch)[0], expected)


def test_masks_are_seeded_and_resumable():
    a, b = make_method(seed=3), make_method(seed=3)
    batch = make_batch()
    torch.testing.assert_close(a.training_step(batch)[0], b.training_step(batch)[0])
    first = a.training_step(batch)[0]
    b.step.fill_(5)
    assert not torch.allclose(first, b.training_step(batch)[0])  # another step, other crops and masks
    c = make_method(seed=3)
    c.load_state_dict(a.state_dict())  # step counter travels with the checkpoint
    assert int(c.step) == 2
    torch.testing.assert_close(c.training_step(batch)[0], a.training_step(batch)[0])


def test_a_few_dozen_steps_reduce_the_loss():
    method = make_method(rotate=0.0, crop=None)
    opt = torch.optim.AdamW(method.param_groups(0.05), lr=2e-3, betas=(0.9, 0.95))
    losses = train_on_one_batch(method, opt, make_batch(n=8), 40)
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])


def test_decay_groups_and_pretraining_drop_path():
    method = make_method(enc_kwargs={"drop_path": 0.3})
    groups = method.param_groups(0.05)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    named = dict(method.named_parameters())
    for name in ("mask_token", "decoder_pos_embed", "encoder.pos_embed", "encoder.temp_embed", "encoder.joints_embed.proj.weight"):
        assert id(named[name]) in decayed, name  # timm 0.3.2 add_weight_decay: decayed
    for name in ("encoder.blocks.0.attn.qkv.bias", "encoder.norm.weight", "decoder_norm.bias"):
        assert id(named[name]) not in decayed, name
    assert all(b.drop_path.p == 0.0 for b in method.encoder.blocks)  # official pre-training: none
    assert method.encoder.spec["kwargs"]["drop_path"] == 0.3  # fine-tuning rebuilds with it


def test_decoder_sizes_of_the_paper():
    enc = build_encoder("mamp", layout="ntu25", num_persons=2)
    for depth, millions in ((3, 2.45), (5, 4.03)):  # §8.4
        method = MAMP(enc, decoder_depth=depth)
        count = sum(p.numel() for n, p in method.named_parameters() if not n.startswith("encoder."))
        assert count == pytest.approx(millions * 1e6, rel=3e-3)
    assert method.decoder_pred.out_features == 12 and method.mask_token.shape == (1, 1, 256)


def test_wrong_encoder_and_bad_options_raise():
    stgcn = build_encoder("stgcn", layout="ntu25", num_persons=2, channels=(8,), strides=(1,))
    with pytest.raises(TypeError, match="mamp encoder"):
        MAMP(stgcn)
    with pytest.raises(ValueError):
        make_method(masking="random")
    with pytest.raises(ValueError):
        make_method(mask_ratio=1.0)
    with pytest.raises(ValueError):
        make_method(crop=(0.9, 0.5))


# -- recipes ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("[!_]*.yaml")), ids=lambda p: p.name)
def test_recipes_load_and_build(recipe):
    from skelssl.engine.config import build_encoder_from_config, build_method_from_config, load_config
    from skelssl.engine.config import load_eval_config

    cfg = load_config(recipe)
    assert cfg.optim.name == "adamw" and cfg.optim.lr == 1e-3 and cfg.optim.betas == [0.9, 0.95]
    assert cfg.optim.weight_decay == 0.05 and cfg.optim.no_decay is None
    assert cfg.schedule.name == "cosine" and cfg.schedule.min_lr == 5e-4
    from skelssl.methods import get_method

    defaults = {k: p.default for k, p in inspect.signature(get_method("mamp").__init__).parameters.items() if p.default is not p.empty}
    kw = {**defaults, **cfg.method.kwargs}  # recipes state only what differs from the defaults
    assert kw["mask_ratio"] == 0.9 and kw["masking"] == "motion" and kw["target"] == "motion"
    ntu120 = "ntu120" in recipe.name
    assert kw["tau"] == (0.75 if ntu120 else 0.8)
    if recipe.name.startswith(("ntu120", "pku")):
        assert kw["decoder_depth"] == 5
    elif recipe.name.startswith("ntu60"):
        assert kw["decoder_depth"] == 3
    ev = load_eval_config(cfg.eval)
    assert ev.linear.head == "linear_bn" and ev.linear.optim.name == "sgd" and ev.linear.optim.lr == 0.1
    assert ev.finetune.head == "mlp" and ev.finetune.layer_decay == 0.8 and ev.finetune.label_smoothing == 0.1
    from skelssl.models.mamp import MAMPEncoder

    frames = cfg.encoder.kwargs.get("frames", inspect.signature(MAMPEncoder.__init__).parameters["frames"].default)
    assert ev.input.frames == frames
    if recipe.name == "nucla_cpu.yaml":  # sized from the measured step time (see the recipe)
        assert cfg.trainer.epochs * (1020 // cfg.data.batch_size) * 0.75 < 25 * 60
    cfg.encoder.kwargs.update({"preset": "tiny", "depth": 1, "dim": 16, "heads": 2})
    cfg.method.kwargs.update({"decoder_depth": 1})
    layout, v, m = ("kinect20", 20, 1) if "nucla" in recipe.name else ("ntu25", 25, 2)
    enc = build_encoder_from_config(cfg.encoder, in_channels=3, layout=layout, num_persons=m)
    method = build_method_from_config(cfg.method, encoder=enc)
    batch = {"x": torch.randn(2, 3, 70, v, m), "lengths": torch.tensor([70, 41])}
    assert torch.isfinite(method.training_step(batch)[0])
