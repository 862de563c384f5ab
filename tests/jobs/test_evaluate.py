"""Evaluation jobs end to end on a tiny synthetic store: kNN, linear, fine-tune, semi, t-SNE, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _toys import TINY_SIMCLR_STGCN
from conftest import assert_results
from skelssl.cli import main as cli_main
from skelssl.data import synthetic
from skelssl.engine.config import load_config
from skelssl.jobs.evaluate import evaluate, load_encoder_source, silhouette_cosine
from skelssl.jobs.pretrain import pretrain
from skelssl.evaluation.results import read_results

TINY = [
    *TINY_SIMCLR_STGCN,
    # A short cross-validation keeps the suite fast; the probe itself is tested in tests/evaluation.
    "eval.probe.cs=[0.01, 1.0]", "eval.probe.folds=3",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    store = synthetic.write_store(root / "store", num_samples=72, layout="kinect20", seed=3, num_persons=1)
    cfg = load_config(None, [f"data.store={store.path}", *TINY])
    pretrain(cfg, root / "run")
    return root / "run", store


def _check(results: dict, task: str) -> None:
    assert_results(results, task)
    assert 0 <= results["final"] <= 100


def test_knn_and_random_init(run):
    run_dir, store = run
    r = evaluate("knn", run_dir, store=None, protocol="synthetic-xsub", accelerator="cpu")
    _check(r, "knn")
    assert set(r["per_k"]) == {"k1", "k20"}
    assert r["train_samples"] + r["test_samples"] == len(store)
    saved = read_results(run_dir / "eval" / "knn-synthetic-xsub" / "results.json")
    assert saved["final"] == pytest.approx(r["final"])
    rr = evaluate("knn", run_dir, store=None, protocol="synthetic-xsub", random_init=True, accelerator="cpu")
    assert rr["random_init"] and (run_dir / "eval" / "knn-synthetic-xsub-random" / "results.json").is_file()


def test_linear_reports_final_and_best(run):
    run_dir, _ = run
    r = evaluate("linear", run_dir, store=None, protocol="synthetic-xsub", accelerator="cpu",
                 overrides=["linear.probe=sgd", "linear.epochs=3", "linear.batch_size=16"])
    _check(r, "linear")
    assert r["probe"] == "sgd" and 0 <= r["frozen"]["probe_top1"] <= 100  # the robust probe beside it
    assert len(r["curve"]) == 3 and r["best"]["value"] == max(r["curve"]) or r["best"]["value"] == pytest.approx(max(r["curve"]), abs=1e-3)
    assert r["final"] == pytest.approx(r["curve"][-1], abs=1e-3)
    cached = evaluate("linear", run_dir, store=None, protocol="synthetic-xsub", accelerator="cpu",
                      overrides=["linear.probe=sgd", "linear.epochs=2", "linear.cache_features=true", "linear.head=linear_bn"], out=run_dir / "lin-cached")
    _check(cached, "linear")


def test_linear_default_is_the_robust_probe_with_baselines_and_diagnostics(run):
    run_dir, store = run
    r = evaluate("linear", run_dir, store=None, protocol="synthetic-xsub", accelerator="cpu")
    _check(r, "linear")
    assert r["probe"] == "robust" and r["best"] is None and r["final"] == r["frozen"]["probe_top1"]
    assert r["frozen"]["probe"]["C"] in (0.01, 1.0) and set(r["frozen"]["probe"]["cv_top1"]) == {"0.01", "1"}
    for name in ("raw_input", "random_init"):
        base = r["baselines"][name]
        assert 0 <= base["knn_top1"] <= 100 and 0 <= base["probe_top1"] <= 100, name
    assert r["baselines"]["raw_input"]["dim"] == 12 * 20 * 3 * 1  # input.frames x V x C x M
    d = r["diagnostics"]
    assert 1 <= d["effective_rank"] <= d["dim"] and -1 <= d["mean_pairwise_cosine"] <= 1 and 0 <= d["dead_dims"] <= 1
    # The same raw input through kNN: the knn result carries the identical baseline.
    k = evaluate("knn", run_dir, store=None, protocol="synthetic-xsub", accelerator="cpu")
    assert k["baselines"]["raw_input"] == r["baselines"]["raw_input"]
    # A random-init evaluation has no random-init baseline of its own.
    rr = evaluate("linear", run_dir, store=None, protocol="synthetic-xsub", random_init=True, accelerator="cpu")
    assert "random_init" not in rr["baselines"] and rr["final"] == pytest.approx(r["baselines"]["random_init"]["probe_top1"])


def test_frozen_linear_probe_leaves_encoder_untouched(run):
    from skelssl.engine import checkpoint as ck

    run_dir, _ = run
    before = {k: v.clone() for k, v in ck.load_tensors(run_dir / "encoder.safetensors")[0].items()}
    evaluate("linear", run_dir, store=None, protocol="synthetic-xsub", accelerator="cpu", overrides=["linear.probe=sgd", "linear.epochs=1"], out=run_dir / "lin2")
    after, _ = ck.load_tensors(run_dir / "encoder.safetensors")
    assert all((before[k] == after[k]).all() for k in before)


def test_semi_and_finetune(run):
    run_dir, store = run
    r = evaluate("semi", run_dir, store=None, protocol="synthetic-xsub", accelerator="cpu",
                 overrides=["semi.fractions=[0.2]", "semi.seeds=[0, 1]", "finetune.epochs=1", "finetune.batch_size=8"])
    _check(r, "semi")
    assert r["label_fraction"] == 0.2 and len(r["per_seed"]) == 2
    assert r["final"] == pytest.approx(np.mean([p["final"] for p in r["per_seed"]]))
    # The subsets are the store's saved, class-stratified ones.
    assert r["train_samples"] < 0.5 * r["test_samples"] + 40


def test_tsne_picture_and_silhouette(run):
    run_dir, _ = run
    r = evaluate("tsne", run_dir, store=None, protocol="synthetic-xsub", accelerator="cpu", overrides=["tsne.method=pca"])
    png = run_dir / "eval" / "tsne-synthetic-xsub" / "embedding.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert -1 <= r["final"] <= 1
    # Silhouette of two well-separated clusters is near 1, of random labels near 0.
    rng = np.random.default_rng(0)
    f = np.concatenate([rng.normal(size=(50, 4)) * 0.05 + [1, 0, 0, 0], rng.normal(size=(50, 4)) * 0.05 + [0, 1, 0, 0]])
    y = np.repeat([0, 1], 50)
    assert silhouette_cosine(f, y) > 0.8
    assert abs(silhouette_cosine(f, rng.permutation(y))) < 0.2


def test_recipe_source_needs_random_init(run, tmp_path):
    from skelssl.engine.config import ConfigError

    run_dir, store = run
    recipe = tmp_path / "sup.yaml"
    recipe.write_text(
        f"data: {{store: {store.path}, protocol: synthetic-xsub}}\n"
        "encoder: {name: stgcn, kwargs: {channels: [8], strides: [1], temporal_kernel: 3}}\n"
        "eval: {input: {frames: 12, min_frames: 8}}\n"
    )
    src = load_encoder_source(recipe)
    assert not src.weights
    with pytest.raises(ConfigError, match="random-init"):
        evaluate("knn", recipe, store=None, protocol="synthetic-xsub", accelerator="cpu")
    r = evaluate("finetune", recipe, store=None, protocol="synthetic-xsub", random_init=True, accelerator="cpu",
                 overrides=["finetune.epochs=1"], out=tmp_path / "ft")
    assert r["method"] == "supervised" and r["random_init"]


def test_cli_eval_report_and_errors(run, tmp_path, capsys):
    run_dir, store = run
    assert cli_main(["eval", "knn", str(run_dir), "--protocol", "synthetic-xsub", "--out", str(tmp_path / "k"), "knn.ks=[1]"]) == 0
    assert "knn synthetic-xsub" in capsys.readouterr().out
    assert cli_main(["report", str(tmp_path / "k")]) == 0
    table = capsys.readouterr().out
    assert "| knn | synthetic-xsub |" in table
    # A one-line error and exit 2 for bad input, not a traceback.
    assert cli_main(["eval", "knn", str(tmp_path / "nope"), "--protocol", "synthetic-xsub"]) == 2
    assert cli_main(["eval", "knn", str(run_dir), "--protocol", "ntu60-xsub"]) == 2
    assert cli_main(["eval", "knn", str(run_dir), "--protocol", "synthetic-xsub", "knn.nonsense=1"]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err
    # pretrain refuses to overwrite a run without --resume.
    assert cli_main(["pretrain", "whatever.yaml", "--out", str(run_dir)]) == 2


def test_transfer_to_another_store_and_layout(run, tmp_path):
    run_dir, _ = run
    other = synthetic.write_store(tmp_path / "other", num_samples=40, layout="ntu25", seed=5, num_persons=1)
    r = evaluate("finetune", run_dir, store=other.path, protocol="synthetic-xview", accelerator="cpu",
                 overrides=["finetune.epochs=1", "finetune.batch_size=8"], out=tmp_path / "transfer")
    _check(r, "transfer")
    assert r["transfer_from"] and r["store"] == str(other.path)
    # Kinect v1 (20 joints) -> Kinect v2 (25 joints): only the joint-shaped weights start afresh.
    assert r["reinitialised"] and all("data_bn" in k or "importance" in k or "A" in k.split(".")[-1] for k in r["reinitialised"])
    assert any("re-initialised for layout ntu25" in w for w in r["warnings"])  # printed by the CLI
    # A store of another pipeline than the pre-training one is named in a warning too.
    from skelssl.data.store import write_store

    other_pipeline = write_store(tmp_path / "agcn", ((s, other.frames(i), {"label": int(other.labels[i]), "subject": int(other.meta["subject"][i]),
                                                    "view": int(other.meta["view"][i])}) for i, s in enumerate(other.names)),
                                 "ntu25", 1, pipeline="agcn", info={"dataset": "synthetic"})
    r = evaluate("knn", run_dir, store=other_pipeline.path, protocol="synthetic-xview", accelerator="cpu",
                 overrides=["baselines.raw_input=false", "baselines.random_init=false"], out=tmp_path / "knn-agcn")
    assert any("'synthetic' pipeline" in w and "'agcn'" in w for w in r["warnings"])


def test_task_encoder_overrides_keep_the_weights(run, tmp_path):
    # MAMP's fine-tuning preset reads per-joint features: the encoder is rebuilt with pool=joints
    # and the pre-trained weights still load strictly; an override that changes a shape is refused.
    import torch

    from skelssl.engine import checkpoint as ckpt
    from skelssl.engine.checkpoint import CheckpointError
    from skelssl.engine.config import load_eval_config
    from skelssl.models import build_encoder

    _, store = run
    torch.manual_seed(0)
    enc = build_encoder("mamp", in_channels=3, layout="kinect20", num_persons=1, preset="tiny", frames=12)
    path = ckpt.save_encoder(tmp_path / "mamp.safetensors", enc, {"eval": {"finetune": {"preset": "mamp"}}})
    source = load_encoder_source(path)
    cfg = load_eval_config(source.run_config.get("eval"), [])
    assert cfg.finetune.encoder == {"pool": "joints"} and cfg.linear.encoder == {}
    joints, reinit = source.build(store, random_init=False, seed=0, overrides=cfg.finetune.encoder)
    assert reinit == []
    assert joints.out_dim == 20 * enc.out_dim
    for k, v in enc.state_dict().items():
        assert torch.equal(joints.state_dict()[k], v), k
    with pytest.raises(CheckpointError, match="do not fit"):
        source.build(store, random_init=False, seed=0, overrides={"dim": enc.out_dim * 2, "heads": 2})


def test_devices_on_a_one_process_protocol_is_said(run, tmp_path):
    """`eval knn --devices 2` runs one process; it says so instead of quietly ignoring the flag."""
    run_dir, _ = run
    r = evaluate("knn", run_dir, store=None, protocol="synthetic-xsub", accelerator="cpu", devices=2, out=tmp_path / "k")
    assert any("--devices 2: knn runs in one process" in w for w in r["warnings"])
    r1 = evaluate("knn", run_dir, store=None, protocol="synthetic-xsub", accelerator="cpu", devices=1, out=tmp_path / "k1")
    assert not any("--devices" in w for w in r1["warnings"])
