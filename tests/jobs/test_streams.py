"""Input streams for every method (``data.stream``): a store read as bone / motion vectors, recorded in
the encoder file, so evaluation, both baselines and ``embed`` read every store through the same stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skelssl
from conftest import one_line_error
from skelssl.cli import main as cli_main
from skelssl.core.conventions import StoreError
from skelssl.data.dataset import SkeletonDataset
from skelssl.data.store import Store
from skelssl.data.protocols import split
from skelssl.engine.checkpoint import encoder_metadata
from skelssl.engine.config import ConfigError, load_eval_config
from skelssl.engine.eval_input import stream_view
from skelssl.engine.eval_input import test_transform as eval_view
from skelssl.evaluation.baselines import raw_input_features
from skelssl.evaluation.ensemble import softmax
from skelssl.evaluation.features import extract_features
from skelssl.evaluation.knn import knn_accuracy
from skelssl.evaluation.logits import read_logits
from skelssl.evaluation.results import read_results
from skelssl.jobs.eval_context import load_encoder_source
from skelssl.jobs.evaluate import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from skelssl.data import synthetic

    return synthetic.write_store(tmp_path_factory.mktemp("streams") / "store", num_samples=72, layout="kinect20", seed=0)


def test_bone_and_motion_views_derive_each_sample_from_its_joints(store):
    parents = np.asarray(store.layout.parents)
    bone, motion = stream_view(store, "bone"), stream_view(store, "motion")
    for i in (0, 5):
        x = store.frames(i)  # (T, M, V, C)
        np.testing.assert_allclose(bone.frames(i), x - x[:, :, parents], atol=1e-6)
        m = motion.frames(i)
        np.testing.assert_array_equal(m[0], 0)
        np.testing.assert_allclose(m[1:], x[1:] - x[:-1], atol=1e-6)
    both = stream_view(store, "bone_motion").frames(3)
    b = bone.frames(3)
    np.testing.assert_allclose(both[1:], b[1:] - b[:-1], atol=1e-6)
    assert stream_view(store, "joint") is store and store.stream == "joint" and bone.stream == "bone"
    np.testing.assert_array_equal(store.frames(0), Store(store.path).frames(0))  # the store itself is untouched


def test_unknown_streams_and_bulk_reads_of_a_view_are_refused(store):
    with pytest.raises(ConfigError, match="unknown input stream 'bones'; known: joint, bone, motion, bone_motion"):
        stream_view(store, "bones")
    with pytest.raises(StoreError, match="derived sample by sample"):
        stream_view(store, "motion").frames_array
    with pytest.raises(StoreError, match="already read as the bone stream"):
        stream_view(stream_view(store, "bone"), "motion")


@pytest.fixture(scope="module")
def bone_run(store, tmp_path_factory):
    return _pretrain(store, tmp_path_factory.mktemp("bone-run") / "run", "bone")


def test_the_encoder_file_records_the_stream_and_embed_reads_through_it(store, bone_run):
    meta = encoder_metadata(bone_run / "encoder.safetensors")
    assert meta["data"]["stream"] == "bone"
    enc = skelssl.load_encoder(bone_run, device="cpu")
    clips = [np.ascontiguousarray(store.sample(i)) for i in range(len(store))]  # joints, as a user has them
    feats, _ = enc.embed_store(store)
    np.testing.assert_allclose(enc.embed(clips), feats, rtol=1e-5, atol=1e-6)
    # the same encoder on the joints themselves gives other features: the stream is applied, not ignored
    joint_feats, _ = extract_features(enc.encoder, SkeletonDataset(store, max_frames=enc.input.max_frames),
                                      batch_transform=eval_view(enc.input))
    assert not np.allclose(joint_feats.numpy(), feats, atol=1e-3)


def test_evaluation_and_its_raw_baseline_read_the_runs_stream(store, bone_run, tmp_path):
    r = evaluate("knn", bone_run, store=str(store.path), protocol="synthetic-xsub", accelerator="cpu",
                 out=tmp_path / "knn")
    assert r["stream"] == "bone"
    cfg = load_eval_config(load_encoder_source(bone_run).run_config.get("eval"), [])
    train, test = split(store, "synthetic-xsub")
    kw = dict(centre=cfg.input.test_centre, min_frames=cfg.input.min_frames, batch_transform=eval_view(cfg.input))
    frames = r["baselines"]["raw_input"]["frames"]
    raw = {}
    for name, view in (("bone", stream_view(store, "bone")), ("joint", store)):
        tr_f, tr_y = raw_input_features(SkeletonDataset(view, train, max_frames=cfg.input.max_frames), frames, **kw)
        te_f, te_y = raw_input_features(SkeletonDataset(view, test, max_frames=cfg.input.max_frames), frames, **kw)
        raw[name] = knn_accuracy(tr_f, tr_y, te_f, te_y, k=1)
    assert r["baselines"]["raw_input"]["knn_top1"] == pytest.approx(raw["bone"])
    assert raw["bone"] != pytest.approx(raw["joint"])  # else the test could not tell the streams apart


def test_a_stream_in_the_data_and_in_hitrs_encoder_is_refused_in_one_line(store, tmp_path, capsys):
    rc = cli_main(["pretrain", str(ROOT / "configs/hitrs/nucla_cpu.yaml"), "--out", str(tmp_path / "run"),
                   f"data.store={store.path}", "data.protocol=null", "data.stream=bone", "encoder.kwargs.stream=motion",
                   "trainer.max_steps=1", "trainer.progress=false", "monitor.every_epochs=0"])
    assert rc != 0
    line = one_line_error(capsys)
    assert "data.stream=bone and encoder.kwargs.stream=motion" in line and not (tmp_path / "run" / "encoder.safetensors").exists()


def _pretrain(store, out, stream):
    rc = cli_main(["pretrain", str(ROOT / "configs/baselines/simclr_stgcn_nucla_cpu.yaml"), "--out", str(out),
                   f"data.store={store.path}", "data.protocol=null", f"data.stream={stream}", "data.batch_size=8",
                   "data.num_workers=0", "trainer.max_steps=2", "trainer.epochs=1", "trainer.accelerator=cpu",
                   "trainer.progress=false", "trainer.devices=1", "monitor.every_epochs=0",
                   "encoder.kwargs.channels=[8]", "encoder.kwargs.strides=[1]", "method.kwargs.frames=16",
                   "method.kwargs.hidden_dim=8", "method.kwargs.proj_dim=4"])
    assert rc == 0
    return out


def test_a_two_stream_ensemble_stands_beside_the_same_ensemble_of_its_baselines(store, bone_run, tmp_path, capsys):
    joint_run = _pretrain(store, tmp_path / "joint", "joint")
    members, saved = [], []
    for run in (joint_run, bone_run):
        out = tmp_path / f"lin-{run.name}"
        r = evaluate("linear", run, store=str(store.path), protocol="synthetic-xsub", accelerator="cpu", out=out,
                     save_logits=True)
        s = read_logits(out / "logits.npz")
        assert set(s["baselines"]) == {"raw_input", "random_init"}
        for name, scores in s["baselines"].items():  # the saved scores give the reported baseline figures
            top1 = float((scores.argmax(1) == s["labels"]).mean() * 100)
            assert top1 == pytest.approx(r["baselines"][name]["probe_top1"])
        members.append(str(out))
        saved.append(s)
    assert not np.allclose(saved[0]["baselines"]["raw_input"], saved[1]["baselines"]["raw_input"])  # joint vs bone
    rc = cli_main(["ensemble", *members, "--out", str(tmp_path / "ens.json")])
    assert rc == 0
    printed = capsys.readouterr().out
    res = read_results(tmp_path / "ens.json")
    labels = saved[0]["labels"]
    for name in ("raw_input", "random_init"):
        probs = sum(softmax(s["baselines"][name]) for s in saved)
        expected = float((probs.argmax(1) == labels).mean() * 100)
        assert res["baselines"][name]["probe_top1"] == pytest.approx(expected)
        assert f"{name.replace('_', ' ')}" in printed


def test_detection_and_prediction_refuse_a_stream_encoder_before_any_work(store, bone_run, tmp_path, capsys):
    rc = cli_main(["eval", "predict", str(bone_run), "--store", str(store.path), "--protocol", "synthetic-xsub",
                   "--out", str(tmp_path / "pred")])
    line = one_line_error(capsys)
    assert rc != 0 and "predict reads whole sequences of joint coordinates" in line and "bone stream" in line
    assert not (tmp_path / "pred").exists()
