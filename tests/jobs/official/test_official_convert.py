"""``skelssl convert``: every tensor of an official file lands where it should, value for value through
the documented fusions, and the run folder works like one of ours (issue 18).

The expected places are written out here from the README of the tensor lists, independently of the
converter's own rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from _official_files import ISC_SMALL_OVERRIDES, state_of, write_official
from skelssl.cli import main as cli_main
from skelssl.engine import checkpoint as ckpt
from skelssl.engine.config import RunConfig, from_dict
from skelssl.jobs.pretrain import build_method

pytestmark = pytest.mark.usefixtures("one_thread")


def _convert(tmp_path: Path, shared_data: Path, method: str, small: bool = False, seed: int = 0):
    src = tmp_path / f"{method}.pth"
    obj = write_official(src, shared_data, method, seed=seed, small=small)
    run = tmp_path / f"run-{method}"
    args = ["convert", method, str(src), "--out", str(run)] + (ISC_SMALL_OVERRIDES if small else [])
    assert cli_main(args) == 0
    return obj, run


# -- where each official tensor must land: (our key, the slice of it) ---------------------------------


def _hitrs_place(key: str, ours: dict[str, torch.Tensor]):
    level = {"s": "frame", "c": "clip", "v": "video"}
    if key in ("clip_fuse_token", "video_fuse_token"):
        return f"encoder.{key.split('_')[0]}_token", lambda t: t.reshape(1, 1, -1)
    heads = {"s_pose_reg": "pose_head", "c_motion_cls": "clip_order_head", "v_motion_cls": "video_order_head",
             "v_ft_reg": "future_head"}
    head, _, param = key.partition(".")
    if head in heads:
        return f"{heads[head]}.{param}", None
    m = re.fullmatch(r"([scv])_pe\.pe", key)
    if m:
        return f"encoder.{level[m[1]]}_pe", None
    m = re.fullmatch(r"([scv])_input_map\.(.+)", key)
    if m:
        return f"encoder.{level[m[1]]}_embed.{m[2]}", None
    m = re.fullmatch(r"([scv])_enc\.layer_stack\.(\d)\.(.+)", key)
    stem = f"encoder.{level[m[1]]}_blocks.{m[2]}"
    qkv = re.fullmatch(r"slf_attn\.w_([qkv])s\.weight", m[3])
    if qkv:  # q, k, v concatenated in that order along the output dimension
        i = "qkv".index(qkv[1])
        return f"{stem}.attn.qkv.weight", lambda t: t.chunk(3, dim=0)[i]
    names = {"self_attn_norm": "attn_norm", "slf_attn.fc": "attn.proj", "pff_norm": "mlp_norm",
             "pos_ffn.w_1": "mlp.0", "pos_ffn.w_2": "mlp.2"}
    module, _, param = m[3].rpartition(".")
    return f"{stem}.{names[module]}.{param}", None


def _mamp_place(key: str, ours: dict[str, torch.Tensor]):
    decoder = key.startswith(("decoder_", "mask_token"))
    name = key
    for old, new in (("norm1", "attn_norm"), ("norm2", "mlp_norm"), ("mlp.fc1", "mlp.0"), ("mlp.fc2", "mlp.2")):
        name = re.sub(rf"(blocks\.\d+)\.{re.escape(old)}\.", rf"\1.{new}.", name)
    return (name if decoder else f"encoder.{name}"), None


def _isc_place(key: str, ours: dict[str, torch.Tensor]):
    m = re.fullmatch(r"Queue_S([12])", key)
    if m:
        return f"queues.{'seq' if m[1] == '1' else 'graph'}.keys", lambda t: t.t()
    m = re.fullmatch(r"queue_ptr_S([12])", key)
    if m:
        return f"queues.{'seq' if m[1] == '1' else 'graph'}.ptr", lambda t: t.reshape(1)
    enc, _, rest = key.partition(".")
    top = {"encoder_q": ("queries", "heads", "seq"), "encoder_k": ("key_encoders", "key_heads", "seq"),
           "encoder_r": ("queries", "heads", "graph"), "encoder_l": ("key_encoders", "key_heads", "graph")}[enc]
    if rest.startswith("fc."):
        return f"{top[1]}.{top[2]}.net.{rest[3:]}", None
    m = re.fullmatch(r"encoder\.gru\.(\w+)_l(\d)(_reverse)?", rest)
    if m:
        return f"{top[0]}.seq.rnn.layers.{m[2]}.{1 if m[3] else 0}.{m[1]}_l0", None
    stem = f"{top[0]}.graph"
    if rest.startswith("data_bn."):
        return f"{stem}.{rest}", None
    m = re.fullmatch(r"l(\d+)\.(.+)", rest)
    unit, inner = f"{stem}.units.{int(m[1]) - 1}", m[2]
    g = re.fullmatch(r"gcn1\.conv_([abd])\.(\d)\.(weight|bias)", inner)
    if g:
        k = int(g[2])
        if g[1] in "ab":  # three convolutions -> one, concatenated along the outputs
            return f"{unit}.gcn.conv_{g[1]}.{g[3]}", lambda t: t.chunk(3, dim=0)[k]
        if g[3] == "weight":  # conv_d: one convolution over the three stacked inputs
            return f"{unit}.gcn.conv_d.weight", lambda t: t.chunk(3, dim=1)[k]
        return f"{unit}.gcn.conv_d.bias", "sum"
    for old, new in (("gcn1.", "gcn."), ("tcn1.conv.", "tcn.0."), ("tcn1.bn.", "tcn.1."),
                     ("residual.conv.", "residual.0."), ("residual.bn.", "residual.1.")):
        if inner.startswith(old):
            return f"{unit}.{new}{inner[len(old):]}", None
    raise AssertionError(key)


PLACES = {"hitrs": _hitrs_place, "mamp": _mamp_place, "isc": _isc_place}


@pytest.mark.parametrize("method", ["hitrs", "mamp", "isc"])
def test_every_tensor_lands_where_it_should(tmp_path, shared_data, method):
    small = method == "isc"
    obj, run = _convert(tmp_path, shared_data, method, small=small)
    official = {k.removeprefix("module."): v for k, v in state_of(method, obj).items()}
    ours, _ = ckpt.load_tensors(run / "method.safetensors")
    covered = {k: 0 for k in ours}
    sums: dict[str, list[torch.Tensor]] = {}
    for key, value in official.items():
        target, view = PLACES[method](key, ours)
        assert target in ours, f"{key} -> {target}: not a tensor of ours"
        if view == "sum":
            sums.setdefault(target, []).append(value)
            continue
        got = ours[target] if view is None else view(ours[target])
        assert got.dtype == value.dtype and torch.equal(got, value), f"{key} -> {target}"
        covered[target] += value.numel()
    for target, parts in sums.items():  # conv_d biases: ours is their sum, in the official order
        assert len(parts) == 3 and torch.equal(ours[target], parts[0] + parts[1] + parts[2]), target
        covered[target] += ours[target].numel()
    # Every number of ours came from the file, except the step counter the official models have not.
    assert {k for k, n in covered.items() if n != ours[k].numel()} == {"step"}
    assert int(ours["step"]) == 0
    # The encoder file holds exactly the method's exported encoder.
    encoder, _ = ckpt.load_tensors(run / "encoder.safetensors")
    prefix = {"hitrs": "encoder.", "mamp": "encoder.", "isc": "queries.seq."}[method]
    assert set(encoder) == {k[len(prefix):] for k in ours if k.startswith(prefix)}
    assert all(torch.equal(v, ours[prefix + k]) for k, v in encoder.items())


@pytest.mark.parametrize("method", ["hitrs", "mamp"])
def test_converted_run_works_like_ours(tmp_path, shared_data, method):
    """The encoder loads with its spec, the whole method loads strictly from the recorded config, and
    continued pre-training can take a step from it."""
    _, run = _convert(tmp_path, shared_data, method)
    meta = ckpt.encoder_metadata(run)
    assert meta["encoder_spec"]["name"] == method
    assert meta["encoder_spec"]["kwargs"]["preset"] == "paper" and meta["encoder_spec"]["kwargs"]["layout"] == "ntu25"
    encoder = ckpt.load_encoder(run).eval()
    frames = 120 if method == "mamp" else 30
    x = torch.randn(2, 3, frames, 25, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = encoder(x)
    assert z.shape == (2, encoder.out_dim) and torch.isfinite(z).all()

    cfg = from_dict(RunConfig, json.loads(ckpt.load_tensors(run / "method.safetensors")[1]["config"]))
    built, _ = build_method(cfg)
    state, _ = ckpt.load_tensors(run / "method.safetensors")
    built.load_state_dict(state, strict=True)
    built.train()
    loss, logs = built.training_step({"x": x, "lengths": torch.full((2,), frames)})
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in built.encoder.parameters())


def test_dataparallel_prefix_is_optional(tmp_path, shared_data):
    """A MAMP file saved from a DataParallel model (``module.`` keys) and a Hi-TRS file saved without it
    convert to the same weights as their usual form; export keeps the file's own form."""
    from skelssl.jobs.official import convert, export_weights
    from skelssl.jobs.official.load import load_official

    obj = write_official(tmp_path / "mamp.pth", shared_data, "mamp")
    obj["model"] = {f"module.{k}": v for k, v in obj["model"].items()}
    torch.save(obj, tmp_path / "mamp-dp.pth")
    convert("mamp", tmp_path / "mamp.pth", tmp_path / "a")
    convert("mamp", tmp_path / "mamp-dp.pth", tmp_path / "b")
    a, _ = ckpt.load_tensors(tmp_path / "a" / "method.safetensors")
    b, _ = ckpt.load_tensors(tmp_path / "b" / "method.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    export_weights(tmp_path / "b", tmp_path / "b.pth")
    assert all(k.startswith("module.") for k in load_official(tmp_path / "b.pth")["model"])

    hitrs = write_official(tmp_path / "hitrs.pth", shared_data, "hitrs")
    torch.save({k.removeprefix("module."): v for k, v in hitrs.items()}, tmp_path / "hitrs-bare.pth")
    convert("hitrs", tmp_path / "hitrs-bare.pth", tmp_path / "c")
    export_weights(tmp_path / "c", tmp_path / "c.pth")
    back = load_official(tmp_path / "c.pth")
    assert list(back) == [k.removeprefix("module.") for k in hitrs]


@pytest.mark.slow
def test_isc_at_paper_size(tmp_path, shared_data):
    """The full ISC file (two 3 x 1024 GRUs, two AGCNs, two queues: about 400 MB) converts and comes back."""
    from _official_files import assert_same_contents
    from skelssl.jobs.official.load import load_official

    obj, run = _convert(tmp_path, shared_data, "isc")
    kwargs = ckpt.encoder_metadata(run)["encoder_spec"]["kwargs"]
    assert kwargs["preset"] == "paper" and kwargs.get("hidden_size") is None  # 3 x 1024, the paper size
    assert cli_main(["export-weights", str(run), "--out", str(tmp_path / "back.pth")]) == 0
    assert_same_contents(obj, load_official(tmp_path / "back.pth"))
