"""``skelssl eval detect`` end to end: a toy with a known answer, synthetic untrimmed data, real PKU-MMD."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _toys import save_toy_encoder
from conftest import assert_results
from skelssl.cli import main as cli_main
from skelssl.data import synthetic
from skelssl.data.prepare import store_summary
from skelssl.data.protocols import sequence_split
from skelssl.data.store import Store, StoreWriter
from skelssl.engine import checkpoint as ckpt
from skelssl.jobs.evaluate import evaluate
from skelssl.evaluation.results import read_results
from skelssl.models import build_encoder


pytestmark = pytest.mark.usefixtures("one_thread")


def _toy_untrimmed(path: Path, sequences: int = 8, seed: int = 0) -> Store:
    """Untrimmed toy sequences: a still pose, and 3 classes that each hold a distinct, far-away pose.

    Each sequence: gap, action, gap, action, gap, action, gap (48-frame actions, 20-frame gaps), the
    three classes in a seeded order. Odd subjects train under ``synthetic-xsub``.
    """
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(20, 3)).astype(np.float32) * 0.3 + np.array([0, 0, 3], np.float32)
    poses = [base + rng.normal(size=(20, 3)).astype(np.float32) * 0.6 for _ in range(3)]
    with StoreWriter(path, "kinect20", 1, pipeline="raw", info={"dataset": "synthetic_untrimmed", "class_names": ["a", "b", "c"]}) as w:
        for i in range(sequences):
            frames, labels = [], []
            for k in rng.permutation(3):
                frames += [base] * 20 + [poses[k]] * 48
                labels += [-1] * 20 + [int(k)] * 48
            frames += [base] * 20
            labels += [-1] * 20
            x = np.stack(frames)[:, None] + rng.normal(size=(len(frames), 1, 20, 3)).astype(np.float32) * 0.02
            w.add(f"toy{i}", x, {"label": -1, "subject": 1 + i, "view": 1}, frame_labels=np.array(labels))
        return w.close()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("detect_toy")
    store = _toy_untrimmed(root / "store")
    return root, store, save_toy_encoder(root / "encoder.safetensors", hidden=32, out_dim=16)


def test_sequence_split_of_untrimmed_stores(toy):
    _, store, _ = toy
    train, test = sequence_split(store, "synthetic-xsub")
    assert train.tolist() == [0, 2, 4, 6] and test.tolist() == [1, 3, 5, 7]  # subjects 1, 3, 5, 7 train
    with pytest.raises(ValueError, match="pku1"):
        sequence_split(store, "pku1-xsub")
    # `skelssl info` lists the protocols of an untrimmed store in sequences.
    assert store_summary(store)["protocols"]["synthetic-xsub"] == {"train": 4, "test": 4}


def test_detect_finds_the_toy_actions(toy):
    root, store, enc = toy
    out = root / "frozen"
    r = evaluate("detect", enc, store=store.path, protocol="synthetic-xsub", accelerator="cpu", out=out,
                 overrides=["detect.window=16", "detect.stride=4", "detect.epochs=15", "detect.optim.lr=0.01"])
    assert_results(r, "detect")
    assert r["metric"] == "map@0.5" and r["mode"] == "frozen"
    assert r["train_samples"] == 4 and r["test_samples"] == 4
    assert r["ground_truth_segments"] == 12 and r["classes_with_ground_truth"] == 3
    # Three far-apart poses: the windows are easy, so most segments are found with good boundaries.
    assert r["final"] > 90.0, r
    assert r["map"]["0.1"] >= r["map"]["0.5"] >= r["map"]["0.7"]
    assert len(r["curve"]) == 15 and r["best"]["value"] == pytest.approx(max(r["curve"]), abs=1e-3)
    saved = read_results(out)
    assert saved["final"] == pytest.approx(r["final"])
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "detections.tsv").read_text().splitlines()
    assert rows[0].startswith("sequence\tlabel") and len(rows) - 1 == r["detections"]


def test_detect_finetune_changes_the_encoder(toy):
    root, store, enc = toy
    r = evaluate("detect", enc, store=store.path, protocol="synthetic-xsub", accelerator="cpu", out=root / "ft",
                 overrides=["detect.window=16", "detect.stride=8", "detect.epochs=2", "detect.finetune=true", "detect.head=linear",
                            "detect.picture=false"])
    assert r["mode"] == "finetune" and "picture" not in r and 0.0 <= r["final"] <= 100.0
    tensors, _ = ckpt.load_tensors(root / "ft" / "checkpoints" / "last" / "model.safetensors")
    before, _ = ckpt.load_tensors(enc)
    changed = [k for k in before if not torch.equal(before[k], tensors["encoder." + k])]
    assert changed  # fine-tuning trained the encoder too


def test_detect_needs_an_untrimmed_store(toy, tmp_path):
    root, _, enc = toy
    trimmed = synthetic.write_store(tmp_path / "trimmed", num_samples=18, layout="kinect20", seed=1, num_persons=1)
    with pytest.raises(ValueError, match="per-frame labels"):
        evaluate("detect", enc, store=trimmed.path, protocol="synthetic-xsub", accelerator="cpu", out=tmp_path / "x")


def test_detect_on_synthetic_untrimmed_through_the_cli(tmp_path, capsys):
    store = synthetic.write_untrimmed_store(tmp_path / "u", num_sequences=6, seed=2, num_actions=(2, 3))
    torch.manual_seed(0)
    enc = ckpt.save_encoder(tmp_path / "hitrs.safetensors",
                            build_encoder("hitrs", in_channels=3, layout="ntu25", num_persons=2, preset="tiny"), {})
    out = tmp_path / "det"
    code = cli_main(["eval", "detect", str(enc), "--store", str(store.path), "--protocol", "synthetic-xview", "--out", str(out),
                     "--random-init", "detect.epochs=1", "detect.window=32", "detect.stride=16", "detect.head=linear"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "detect synthetic-xview: map@0.5" in printed
    r = json.loads((out / "results.json").read_text())
    assert r["random_init"] and r["test_samples"] == int((store.meta["view"] == 3).sum())


@pytest.mark.realdata
def test_detect_on_real_pku_mmd(pku_part, tmp_path):
    """Four real untrimmed PKU-MMD videos (two cross-subject training, two test), tiny Hi-TRS, one epoch."""
    assert cli_main(["prepare", "pku_mmd", str(pku_part), "--out", str(tmp_path / "store"), "--untrimmed"]) == 0
    store = Store(tmp_path / "store")
    assert store.dataset == "pku1_untrimmed" and store.has_frame_labels and len(store) == 4
    torch.manual_seed(0)
    enc = ckpt.save_encoder(tmp_path / "hitrs.safetensors",
                            build_encoder("hitrs", in_channels=3, layout="ntu25", num_persons=2, preset="tiny"), {})
    r = evaluate("detect", enc, store=store.path, protocol="pku1-xsub", accelerator="cpu", out=tmp_path / "det",
                 random_init=True, overrides=["detect.epochs=1", "detect.window=64", "detect.stride=32"])
    assert r["train_samples"] == 2 and r["test_samples"] == 2
    assert r["ground_truth_segments"] > 10 and r["test_windows"] > 2 * 1000 // 32
    assert 0.0 <= r["final"] <= 100.0 and set(r["map"]) == {"0.1", "0.3", "0.5", "0.7"}
    assert (tmp_path / "det" / "timeline.png").is_file()
