"""eval --save-logits (linear robust / SGD, finetune, semi) and skelssl ensemble over the saved files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _toys import TINY_SIMCLR_STGCN
from skelssl.cli import main as cli_main
from skelssl.data import synthetic
from skelssl.data.protocols import split as protocol_split
from skelssl.engine.config import load_config
from skelssl.jobs.evaluate import evaluate
from skelssl.jobs.pretrain import pretrain
from skelssl.evaluation.ensemble import softmax
from skelssl.evaluation.logits import read_logits, write_logits
from skelssl.evaluation.results import read_results

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = [
    *TINY_SIMCLR_STGCN,
    "eval.probe.cs=[0.01, 1.0]", "eval.probe.folds=3",
    "eval.baselines.raw_input=false", "eval.baselines.random_init=false",
]
P = "synthetic-xsub"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("logits")
    store = synthetic.write_store(root / "store", num_samples=60, layout="kinect20", seed=5, num_persons=1)
    pretrain(load_config(None, [f"data.store={store.path}", *TINY]), root / "run")
    return root, store


def _top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean() * 100)


def _check_file(path, store, num_classes=None) -> dict:
    saved = read_logits(path)
    _, test_idx = protocol_split(store, P)
    assert saved["logits"].dtype == np.float32 and saved["logits"].shape == (len(test_idx), num_classes or store.num_classes)
    np.testing.assert_array_equal(saved["indices"], test_idx)
    np.testing.assert_array_equal(saved["labels"], store.labels[test_idx])
    assert saved["names"].tolist() == [str(n) for n in store.names[test_idx]]
    return saved


def test_linear_robust_and_sgd_save_logits_that_give_the_reported_accuracy(run):
    root, store = run
    r = evaluate("linear", root / "run", store=None, protocol=P, accelerator="cpu", save_logits=True, out=root / "lin")
    assert r["logits"] == "logits.npz" and read_results(root / "lin")["logits"] == "logits.npz"
    saved = _check_file(root / "lin" / "logits.npz", store)
    assert saved["kind"] == "log_proba"
    assert _top1(saved["logits"], saved["labels"]) == pytest.approx(r["final"])
    finite = np.isfinite(saved["logits"])
    assert np.allclose(np.exp(np.where(finite, saved["logits"], -np.inf)).sum(1), 1.0, atol=1e-4)  # log-probabilities

    r = evaluate("linear", root / "run", store=None, protocol=P, accelerator="cpu", save_logits=True, out=root / "sgd",
                 overrides=["linear.probe=sgd", "linear.epochs=2", "linear.batch_size=16"])
    saved = _check_file(root / "sgd" / "logits.npz", store)
    assert saved["kind"] == "logits" and r["logits"] == "logits.npz"
    assert _top1(saved["logits"], saved["labels"]) == pytest.approx(r["final"], abs=1e-6)  # the final epoch's head


def test_finetune_and_semi_save_logits_per_seed(run):
    root, store = run
    r = evaluate("finetune", root / "run", store=None, protocol=P, accelerator="cpu", save_logits=True, out=root / "ft",
                 overrides=["finetune.epochs=1", "finetune.batch_size=8"])
    saved = _check_file(root / "ft" / "logits.npz", store)
    assert _top1(saved["logits"], saved["labels"]) == pytest.approx(r["final"], abs=1e-6)

    evaluate("semi", root / "run", store=None, protocol=P, accelerator="cpu", save_logits=True, out=root / "semi",
             overrides=["semi.fractions=[0.3]", "semi.seeds=[0, 1]", "finetune.epochs=1", "finetune.batch_size=8"])
    res = read_results(root / "semi" / "0.3")
    for per in res["per_seed"]:
        assert per["logits"] == f"seed{per['subset_seed']}/logits.npz"
        saved = _check_file(root / "semi" / "0.3" / per["logits"], store)
        assert _top1(saved["logits"], saved["labels"]) == pytest.approx(per["final"], abs=1e-6)


def test_save_logits_of_a_task_without_classifier_is_one_line(run, capsys):
    root, _ = run
    rc = cli_main(["eval", "knn", str(root / "run"), "--protocol", P, "--save-logits", "--out", str(root / "knn")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--save-logits" in err and "knn" in err
    assert not (root / "knn").exists()


def test_ensemble_sums_softmax_probabilities_and_writes_results(run, capsys):
    root, store = run
    if not (root / "lin" / "logits.npz").is_file() or not (root / "ft" / "logits.npz").is_file():
        pytest.skip("needs the evaluations of the tests above")
    a, b = read_logits(root / "lin" / "logits.npz"), read_logits(root / "ft" / "logits.npz")
    out = root / "ens.json"
    rc = cli_main(["ensemble", str(root / "lin"), str(root / "ft" / "logits.npz"), "--weights", "1", "0.5", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    expected = _top1(softmax(a["logits"]) + 0.5 * softmax(b["logits"]), a["labels"])
    res = read_results(out)
    assert res["task"] == "ensemble" and res["final"] == pytest.approx(expected) and res["protocol"] == P
    assert [m["weight"] for m in res["members"]] == [1.0, 0.5] and res["test_samples"] == len(a["labels"])
    assert res["members"][0]["top1"] == pytest.approx(_top1(a["logits"], a["labels"]))
    assert f"{expected:6.2f}" in text and f"{_top1(b['logits'], b['labels']):6.2f}" in text
    # --logits sums the raw logits (a -inf of the probe, a class it never saw, stays -inf)
    rc = cli_main(["ensemble", str(root / "sgd"), str(root / "ft"), "--logits", "--out", str(root / "ens2.json")])
    c = read_logits(root / "sgd" / "logits.npz")
    assert rc == 0 and read_results(root / "ens2.json")["final"] == pytest.approx(_top1(c["logits"] + b["logits"], a["labels"]))
    # an existing --out is never replaced without --overwrite
    before = out.read_bytes()
    rc = cli_main(["ensemble", str(root / "lin"), str(root / "ft"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "--overwrite" in err and err.count("\n") == 1 and out.read_bytes() == before
    assert cli_main(["ensemble", str(root / "lin"), str(root / "ft"), "--out", str(out), "--overwrite"]) == 0
    assert read_results(out)["members"][1]["weight"] == 1.0


def test_ensemble_mismatches_are_one_line(run, capsys):
    root, store = run
    if not (root / "lin" / "logits.npz").is_file():
        pytest.skip("needs the evaluations of the tests above")
    a = read_logits(root / "lin" / "logits.npz")
    # other test samples (one row swapped for another store row)
    other = a["indices"].copy()
    other[3] = int(np.setdiff1d(np.arange(len(store)), a["indices"])[0])
    write_logits(root / "other.npz", a["logits"], a["labels"], other, a["names"])
    # same samples, other labels
    labels = a["labels"].copy()
    labels[0] = (labels[0] + 1) % store.num_classes
    write_logits(root / "relabelled.npz", a["logits"], labels, a["indices"], a["names"])
    write_logits(root / "short.npz", a["logits"][:-1], a["labels"][:-1], a["indices"][:-1], a["names"][:-1])
    cases = [
        ([str(root / "lin"), str(root / "other.npz")], f"store row {other[3]}"),
        ([str(root / "lin"), str(root / "relabelled.npz")], "different labels"),
        ([str(root / "lin"), str(root / "short.npz")], f"{len(a['labels']) - 1} test samples"),
        ([str(root / "lin")], "at least two"),
        ([str(root / "lin"), str(root / "lin"), "--weights", "1"], "1 weights for 2 members"),
        ([str(root / "lin"), str(root / "run")], "no results.json or logits.npz"),
        ([str(root / "lin"), str(root / "nowhere")], "no such evaluation folder"),
    ]
    evaluate("knn", root / "run", store=None, protocol=P, accelerator="cpu", out=root / "knn-saved")
    cases.append(([str(root / "lin"), str(root / "knn-saved")], "names no logits"))
    (root / "junk.npz").write_bytes(b"not a zip")
    cases.append(([str(root / "lin"), str(root / "junk.npz")], "not a logits file"))
    for argv, needle in cases:
        rc = cli_main(["ensemble", *argv])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and needle in err, (argv, err)
    json.loads((root / "lin" / "results.json").read_text())  # members are only read
