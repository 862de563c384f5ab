"""Embeddings out: ``skelssl embed`` and ``skelssl.load_encoder(RUN).embed(clips)`` give exactly the
features ``skelssl eval knn`` computed, from any working folder; outputs never replace a user's file."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import skelssl
from _toys import TINY_SIMCLR_STGCN
from skelssl.cli import main as cli_main
from skelssl.data import synthetic
from skelssl.data.preprocess import apply_pipeline
from skelssl.data.protocols import split as protocol_split
from skelssl.data.sample import RawSample
from skelssl.jobs import evaluate_frozen as frozen_module
from skelssl.engine.checkpoint import encoder_metadata
from skelssl.engine.config import ConfigError, load_config
from skelssl.jobs.evaluate import evaluate
from skelssl.jobs.pretrain import pretrain

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = [
    *TINY_SIMCLR_STGCN, "monitor.every_epochs=0",
    # a test-time crop-resize, so that the transform matters (and max_frames below the longest clip)
    "eval.input.max_frames=40",
    "eval.probe.cs=[1.0]", "eval.probe.folds=2", "eval.baselines.raw_input=false", "eval.baselines.random_init=false",
    "eval.knn.batch_size=7",
]
PROTOCOL = "synthetic-xsub"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run pre-trained with a *relative* store path, and the features its kNN evaluation used."""
    root = tmp_path_factory.mktemp("embed")
    store = synthetic.write_store(root / "store", num_samples=40, layout="kinect20", seed=5, num_persons=1)
    before = os.getcwd()
    os.chdir(root)
    try:
        pretrain(load_config(None, ["data.store=store", *TINY]), Path("run"))
    finally:
        os.chdir(before)
    return root / "run", store


@pytest.fixture(scope="module")
def knn_features(run, tmp_path_factory):
    """``(train_f, train_y, test_f, test_y)`` exactly as ``eval knn`` computed them, from another folder."""
    run_dir, _ = run
    captured = []
    real = frozen_module.encoder_features

    def spy(ctx, encoder):
        out = real(ctx, encoder)
        captured.append(out)
        return out

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    before = os.getcwd()
    os.chdir(elsewhere)  # the run's config names its store relative to root: it must be absolute now
    frozen_module.encoder_features = spy
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tests below run (one_thread): bit-equality needs the same kernels
    try:
        r = evaluate("knn", run_dir, store=None, protocol=PROTOCOL, accelerator="cpu")
    finally:
        torch.set_num_threads(threads)
        frozen_module.encoder_features = real
        os.chdir(before)
    assert len(captured) == 1 and 0 <= r["final"] <= 100
    return captured[0]


def test_run_records_absolute_store_pipeline_and_test_input(run):
    run_dir, store = run
    meta = encoder_metadata(run_dir)
    assert Path(meta["config"]["data"]["store"]).is_absolute()
    assert Path(meta["config"]["data"]["store"]) == store.path.absolute()
    assert meta["data"] == {"store": str(store.path.absolute()), "dataset": store.dataset, "pipeline": store.pipeline,
                            "layout": "kinect20", "channels": 3, "num_persons": 1}
    assert meta["test_input"]["frames"] == 12 and meta["test_input"]["max_frames"] == 40
    assert f"store: {store.path.absolute()}" in (run_dir / "config.yaml").read_text()


def test_cli_embed_equals_the_features_eval_knn_used(run, knn_features, tmp_path, monkeypatch, capsys):
    run_dir, store = run
    train_f, train_y, test_f, test_y = knn_features
    train_idx, test_idx = protocol_split(store, PROTOCOL)
    monkeypatch.chdir(tmp_path)  # no store here: the encoder file names it
    assert cli_main(["embed", str(run_dir), "--protocol", PROTOCOL, "--split", "test", "--out", "feats.npy", "--device", "cpu"]) == 0
    assert "wrote" in capsys.readouterr().out
    feats = np.load(tmp_path / "feats.npy")
    np.testing.assert_array_equal(feats, test_f)
    rows = [line.split("\t") for line in (tmp_path / "feats.samples.tsv").read_text().splitlines()]
    assert rows[0] == ["index", "name", "label", "class"]
    assert [int(r[0]) for r in rows[1:]] == test_idx.tolist()
    assert [r[1] for r in rows[1:]] == [str(n) for n in store.names[test_idx]]
    assert [int(r[2]) for r in rows[1:]] == test_y.tolist()
    assert [r[3] for r in rows[1:]] == [store.class_names[y] for y in test_y]
    # the training split, all in one .npz
    assert cli_main(["embed", str(run_dir), "--protocol", PROTOCOL, "--split", "train", "--out", "train.npz", "--device", "cpu"]) == 0
    with np.load(tmp_path / "train.npz") as z:
        np.testing.assert_array_equal(z["features"], train_f)
        np.testing.assert_array_equal(z["labels"], train_y)
        np.testing.assert_array_equal(z["indices"], train_idx)
        assert z["names"].tolist() == [str(n) for n in store.names[train_idx]]


def test_python_api_embeds_clips_as_eval_knn_did(run, knn_features):
    run_dir, store = run
    _, _, test_f, _ = knn_features
    _, test_idx = protocol_split(store, PROTOCOL)
    assert "load_encoder" in dir(skelssl)
    enc = skelssl.load_encoder(run_dir, device="cpu")
    assert enc.dim == test_f.shape[1] and enc.pipeline == store.pipeline and enc.layout.name == "kinect20"
    clips = [store.sample(int(i)) for i in test_idx]  # (C, T, V, M) each, own T (some above max_frames)
    assert max(c.shape[1] for c in clips) > 40
    z = enc.embed(clips)
    np.testing.assert_allclose(z, test_f, rtol=1e-5, atol=1e-6)
    # a zero-padded batch with lengths gives the same
    t = max(c.shape[1] for c in clips)
    batch = np.zeros((len(clips), *clips[0].shape[:1], t, *clips[0].shape[2:]), np.float32)
    for n, c in enumerate(clips):
        batch[n, :, : c.shape[1]] = c
    np.testing.assert_allclose(enc.embed(torch.from_numpy(batch), lengths=[c.shape[1] for c in clips]), z, rtol=1e-5, atol=1e-6)
    # the test-time input is really applied: without the crop-resize the features differ
    plain = skelssl.load_encoder(run_dir, overrides=["input.frames=null"], device="cpu").embed(clips)
    assert not np.allclose(plain, z, atol=1e-4)
    # the recorded pipeline brings raw bodies into the training store's coordinates
    with pytest.raises(ValueError, match="'synthetic' store"):
        enc.preprocess(store.frames(int(test_idx[0])))
    agcn = dataclasses.replace(enc, data={**enc.data, "pipeline": "agcn"})
    bodies = store.frames(int(test_idx[0])) + np.float32(0.5)  # (T, 1, V, C), off centre
    expected = apply_pipeline("agcn", RawSample("clip", bodies), "kinect20", 1).bodies  # (T, 1, V, C)
    got = agcn.preprocess(bodies)
    assert got.shape == clips[0].shape and np.abs(got).max() > 0
    np.testing.assert_array_equal(got, np.transpose(expected, (3, 0, 2, 1)))
    assert not np.allclose(got, np.transpose(bodies, (3, 0, 2, 1)))


def test_wrong_input_is_one_clear_refusal(run, tmp_path):
    run_dir, _ = run
    enc = skelssl.load_encoder(run_dir, device="cpu")
    with pytest.raises(ValueError, match="V=25 joints.*V=20"):
        enc.embed(np.zeros((3, 10, 25, 1), np.float32))
    with pytest.raises(ValueError, match="lengths"):
        enc.embed(np.zeros((2, 3, 10, 20, 1), np.float32), lengths=[10, 11])
    ntu = synthetic.write_store(tmp_path / "ntu", num_samples=6, layout="ntu25", seed=0, num_persons=1)
    with pytest.raises(ConfigError, match="V=25"):
        enc.embed_store(ntu)


def _refused(capsys, argv) -> str:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("skelssl embed: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_embed_never_replaces_a_file_it_did_not_make(run, tmp_path, capsys):
    run_dir, _ = run
    out = tmp_path / "mine.npy"
    out.write_bytes(b"precious")
    base = ["embed", str(run_dir), "--device", "cpu"]
    assert "exists" in _refused(capsys, [*base, "--out", str(out)])
    assert out.read_bytes() == b"precious"
    side = tmp_path / "other.samples.tsv"
    side.write_text("mine\n")
    assert "other.samples.tsv exists" in _refused(capsys, [*base, "--out", str(tmp_path / "other.npy")])
    assert side.read_text() == "mine\n" and not (tmp_path / "other.npy").exists()
    assert cli_main([*base, "--out", str(out), "--overwrite"]) == 0
    assert np.load(out).shape[1] > 0
    capsys.readouterr()
    assert ".npy" in _refused(capsys, [*base, "--out", str(tmp_path / "f.csv")])
    (tmp_path / "d.npy").mkdir()
    assert "folder" in _refused(capsys, [*base, "--out", str(tmp_path / "d.npy")])
    assert "needs a --protocol" in _refused(capsys, [*base, "--split", "test", "--out", str(tmp_path / "g.npy")])
    assert "unknown protocol" in _refused(capsys, [*base, "--protocol", "nope", "--out", str(tmp_path / "h.npy")])
    assert "no such" in _refused(capsys, ["embed", str(tmp_path / "norun"), "--out", str(tmp_path / "i.npy")])
    assert not any((tmp_path / n).exists() for n in ("f.csv", "g.npy", "h.npy", "i.npy"))
