"""results.json validation and writing, config hashes, published numbers, and the report table."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.protocols import PROTOCOLS
from skelssl.evaluation.published import all_published, method_key, published_for
from skelssl.evaluation.report import collect, markdown_table
from skelssl.evaluation.results import REQUIRED_KEYS, config_hash, read_results, write_results


def result(**over):
    base = {
        "task": "linear", "protocol": "ntu60-xsub", "metric": "top1", "final": 70.0,
        "best": {"epoch": 60, "value": 71.0}, "train_samples": 40091, "test_samples": 16487,
        "seed": 0, "config_hash": "abc123def456", "wall_seconds": 12.5,
    }
    base.update(over)
    return base


def test_write_read_round_trip_with_numpy_values(tmp_path):
    res = result(final=np.float32(70.25), train_samples=np.int64(40091), method="isc", curve=np.arange(3))
    path = write_results(tmp_path / "run", res)
    assert path == tmp_path / "run" / "results.json"
    back = read_results(tmp_path / "run")
    assert back["final"] == 70.25 and back["train_samples"] == 40091 and back["curve"] == [0, 1, 2]
    assert json.loads(path.read_text())["method"] == "isc"
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary file left


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_missing_key_raises(tmp_path, key):
    res = result()
    del res[key]
    with pytest.raises(SkeletonFormatError, match=key):
        write_results(tmp_path, res)
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize(
    "over, problem",
    [
        ({"task": "retrieval"}, "task"),
        ({"final": float("nan")}, "final"),
        ({"final": "70"}, "final"),
        ({"best": {"value": 3.0}}, "best"),
        ({"train_samples": -1}, "train_samples"),
        ({"seed": 1.5}, "seed"),
        ({"extra": float("inf")}, "JSON"),
    ],
)
def test_invalid_values_raise(tmp_path, over, problem):
    with pytest.raises(SkeletonFormatError, match=problem):
        write_results(tmp_path, result(**over))
    write_results(tmp_path, result(best=None))  # null best (kNN: no epochs) is fine


def test_read_bad_file_names_it(tmp_path):
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(SkeletonFormatError, match="results.json"):
        read_results(tmp_path / "results.json")
    with pytest.raises(SkeletonFormatError, match="no such"):
        read_results(tmp_path / "nothing")


def test_config_hash_is_canonical():
    @dataclasses.dataclass
    class Cfg:
        b: list
        a: int

    h = config_hash({"a": 1, "b": [1, 2]})
    assert h == hashlib.sha256(b'{"a":1,"b":[1,2]}').hexdigest()[:16]
    assert config_hash({"b": (1, 2), "a": 1}) == h == config_hash(Cfg(b=[1, 2], a=1))
    assert config_hash({"a": 2, "b": [1, 2]}) != h
    assert len(h) == 16 and int(h, 16) >= 0


def test_published_numbers_are_well_formed():
    known = set(PROTOCOLS) | {"pku2-xsub"}
    seen = set()
    published = all_published()
    for row in published:
        assert row["source"] in {"READ", "RECALL", "2nd-hand"}, row
        assert row["protocol"] in known, row
        assert row["task"] in {"linear", "knn", "finetune", "semi", "transfer"}, row
        assert 0 < row["value"] < 100 and row["ref"]
        key = (row["method"], row["task"], row["protocol"], row.get("label_fraction"), row.get("pretrained_on"), row.get("variant"), row["source"])
        assert key not in seen, key
        seen.add(key)
    spot = {(r["method"], r["task"], r["protocol"], r.get("variant")): r for r in published if "label_fraction" not in r}
    # Spot checks against METHODS.md §6 and §8.9.
    assert spot[("ISC", "linear", "ntu60-xsub", None)]["value"] == 76.3
    assert spot[("ISC", "knn", "ntu60-xview", None)]["value"] == 82.6
    assert spot[("Hi-TRS", "finetune", "ntu60-xview", None)]["value"] == 95.7
    assert spot[("MAMP", "linear", "ntu120-xset", "released checkpoint")]["value"] == 79.5
    assert spot[("MAMP", "linear", "pku2-xsub", "paper")]["source"] == "2nd-hand"
    semi = published_for("semi", "ntu60-xsub", label_fraction=0.2)
    assert [(r["method"], r["value"], r["source"]) for r in semi] == [("ISC", 70.8, "READ")]
    assert published_for("semi", "ntu60-xsub") == []  # a fraction is needed to compare semi numbers
    assert [r["value"] for r in published_for("transfer", "pku2-xsub", pretrained_on="ntu120-xsub")] == [73.2]
    assert method_key("Hi-TRS") == method_key("hi_trs") == "hitrs"


def test_report_table_puts_published_and_random_beside_ours(tmp_path):
    runs = tmp_path / "runs"
    write_results(runs / "isc-xsub" / "linear", result(method="isc", encoder="gru", final=70.0))
    write_results(runs / "isc-xsub" / "knn", result(method="isc", encoder="gru", task="knn", final=55.5, best=None))
    write_results(runs / "isc-random-xsub" / "linear", result(method="isc-random", encoder="gru", final=20.0, best={"epoch": 3, "value": 21.0}))
    for seed, final in enumerate((40.0, 42.0, 44.0)):
        write_results(
            runs / f"hitrs-s{seed}" / "semi",
            result(method="hitrs", encoder="hitrs", task="semi", protocol="ntu60-xview", label_fraction=0.01, seed=seed, final=final, best={"epoch": 50, "value": final + 1}),
        )
    # A run folder named "-random" marks a random-init baseline too.
    write_results(runs / "hitrs-random" / "semi", result(method="hitrs", encoder="hitrs", task="semi", protocol="ntu60-xview", label_fraction=0.01, final=12.0, best=None))
    write_results(runs / "mt" / "linear", result(method="motion_transformer", protocol="ntu120-xset", final=50.0, best=None))

    results = collect([runs])
    assert len(results) == 8
    assert {r["_run"] for r in results} >= {"runs/isc-xsub/linear", "runs/hitrs-s1/semi"}
    assert collect([runs / "mt" / "linear" / "results.json"])[0]["final"] == 50.0
    with pytest.raises(SkeletonFormatError):
        collect([tmp_path / "missing"])

    table = markdown_table(results)
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["method / encoder", "run", "task", "protocol", "metric", "ours", "random init", "raw input", "published"]
    rows = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        assert len(cells) == len(header), ln
        rows[(cells[0], cells[2], cells[3])] = dict(zip(header, cells))
    assert len(rows) == 4  # the random-init result sits beside ISC linear, the seeds are folded

    isc = rows[("isc / gru", "linear", "ntu60-xsub")]
    assert isc["ours"] == "70.00 [best 71.00]"
    assert isc["random init"] == "20.00 [best 21.00]"
    assert isc["published"].startswith("**ISC 76.3** [READ]")  # the method's own number first
    assert "MAMP (released checkpoint) 85.0 [READ]" in isc["published"] and "AimCLR 74.3 [READ]" in isc["published"]

    knn = rows[("isc / gru", "knn", "ntu60-xsub")]
    assert knn["ours"] == "55.50" and knn["published"] == "**ISC 62.5** [READ]"

    semi = rows[("hitrs", "semi 1%", "ntu60-xview")]
    assert semi["ours"] == "42.00 ± 2.00 [best 43.00] (n=3)"
    assert semi["run"] == "runs/hitrs-s0/semi (+2)"
    assert semi["random init"] == "12.00"
    assert "**Hi-TRS 42.9** [READ]" in semi["published"] and "MAMP (paper) 68.7 [RECALL]" in semi["published"]

    mt = rows[("motion_transformer", "linear", "ntu120-xset")]
    assert mt["published"].startswith("ISC 67.9 [READ]")  # no Motion-Transformer number exists
    assert "[RECALL] recalled and unverified" in table
    assert markdown_table([]).strip() == "_no results found_"


def test_prediction_rows_show_metres_and_the_zero_velocity_reference():
    from skelssl.evaluation.report import markdown_table

    common = {"task": "predict", "protocol": "nucla-xview", "metric": "mpjpe", "best": None, "train_samples": 10,
              "test_samples": 5, "seed": 0, "config_hash": "x", "wall_seconds": 1.0, "method": "hitrs"}
    ours = {**common, "final": 0.15971, "baseline": {"name": "zero-velocity", "final": 0.16723}}
    rand = {**common, "final": 0.17611, "random_init": True, "baseline": {"name": "zero-velocity", "final": 0.16723}}
    table = markdown_table([ours, rand], legend=False)
    row = [line for line in table.splitlines() if "predict" in line]
    assert len(row) == 1
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert cells[5] == "0.1597 (zero-velocity 0.1672)" and cells[6] == "0.1761"


def test_report_shows_the_baselines_each_result_carries():
    from skelssl.evaluation.report import markdown_table

    def res(seed, ours, rand, raw, task="knn"):
        key = "knn_top1" if task == "knn" else "probe_top1"
        return {"task": task, "protocol": "nucla-xview", "metric": "top1", "final": ours, "best": None, "train_samples": 10,
                "test_samples": 5, "seed": seed, "config_hash": "x", "wall_seconds": 1.0, "method": "isc", "encoder": "gru",
                "probe": "robust", "frozen": {key: ours, "not_copies": {key: ours - 5}},
                "baselines": {"random_init": {key: rand}, "raw_input": {key: raw, "not_copies": {key: raw - 10}}},
                "_run": f"isc-s{seed}/{task}"}

    table = markdown_table([res(0, 80.0, 50.0, 70.0), res(1, 82.0, 52.0, 70.0), res(0, 85.0, 60.0, 71.0, task="linear")], legend=False)
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {c[2]: dict(zip(header, c)) for c in ([x.strip() for x in ln.strip("|").split("|")] for ln in lines[2:])}
    assert rows["knn"]["ours"] == "81.00 ± 1.41 (n=2); no copies 76.00"
    assert rows["knn"]["random init"] == "51.00 ± 1.41 (n=2)"
    assert rows["knn"]["raw input"] == "70.00 ± 0.00 (n=2); no copies 60.00"
    assert rows["linear"]["ours"] == "85.00; no copies 80.00" and rows["linear"]["raw input"] == "71.00; no copies 61.00"


def test_report_keeps_input_streams_apart_and_gives_no_joint_paper_number_to_another_stream(tmp_path):
    runs = tmp_path / "runs"
    write_results(runs / "isc-joint" / "linear", result(method="isc", encoder="gru", final=70.0, best=None))
    write_results(runs / "isc-bone" / "linear", result(method="isc", encoder="gru", final=60.0, best=None, stream="bone"))
    rows = {}
    for ln in [ln for ln in markdown_table(collect([runs])).splitlines() if ln.startswith("|")][2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        rows[cells[0]] = cells
    assert set(rows) == {"isc / gru", "isc / gru (bone)"}  # not folded into one row of two seeds
    assert rows["isc / gru"][5] == "70.00" and rows["isc / gru (bone)"][5] == "60.00"
    assert rows["isc / gru"][8].startswith("**ISC 76.3**") and rows["isc / gru (bone)"][8] == ""
