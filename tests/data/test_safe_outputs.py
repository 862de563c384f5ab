"""Never lose a user's data: what ``prepare`` / ``synth`` may replace, locks, and what a store's
checksum covers (issue 16, data loss)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from skelssl.cli import main as cli_main
from skelssl.core.files import FolderLock, OutputError
from skelssl.data.prepare import prepare
from skelssl.data.store import Store, StoreWriter
from skelssl.data import synthetic


def _nucla_source(folder: Path, n: int = 6, seed: int = 0) -> Path:
    """``n`` small N-UCLA-style JSON files (views 1-3, two classes)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        name = f"a0{1 + i % 2}_s01_e0{i}_v0{1 + i % 3}"
        frames = (rng.normal(size=(5 + i, 20, 3)) * 0.1 + [0, 0, 3]).round(4).tolist()
        (folder / f"{name}.json").write_text(json.dumps({"file_name": name, "label": 1 + i % 2, "skeletons": frames}))
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


@pytest.mark.parametrize("where", ["source", "parent", "grandparent"])
def test_prepare_never_writes_over_its_source(tmp_path, capsys, where):
    src = _nucla_source(tmp_path / "data" / "ds")
    out = {"source": src, "parent": src.parent, "grandparent": tmp_path}[where]
    before = _snapshot(tmp_path)
    assert cli_main(["prepare", "nucla", str(src), "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "source" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _snapshot(tmp_path) == before


def test_prepare_refuses_a_folder_of_user_files_and_a_file(tmp_path, capsys):
    src = _nucla_source(tmp_path / "ds")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    for out in (mine, afile):
        for extra in ([], ["--overwrite"]):
            assert cli_main(["prepare", "nucla", str(src), "--out", str(out), *extra]) == 2
            assert "Traceback" not in capsys.readouterr().err
    assert (mine / "thesis.tex").read_text() == "years of work" and afile.read_text() == "keep me"
    assert _hidden(tmp_path) == []  # no '.notes.txt.old-PID', no partial folder left behind


def test_a_store_is_replaced_only_with_overwrite(tmp_path, capsys):
    src = _nucla_source(tmp_path / "ds")
    out = tmp_path / "store"
    assert cli_main(["prepare", "nucla", str(src), "--out", str(out)]) == 0
    first = Store(out).info["checksum"]
    assert cli_main(["prepare", "nucla", str(src), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    _nucla_source(src, n=8, seed=1)  # the source changed
    assert cli_main(["prepare", "nucla", str(src), "--out", str(out), "--overwrite"]) == 0
    assert Store(out).info["checksum"] != first and len(Store(out)) == 8 and Store(out).verify()
    # A store someone put their own file into is not ours to delete.
    (out / "my_results.csv").write_text("a,b\n")
    assert cli_main(["prepare", "nucla", str(src), "--out", str(out), "--overwrite"]) == 2
    assert "my_results.csv" in capsys.readouterr().err and (out / "my_results.csv").is_file()
    assert _hidden(tmp_path) == []


def test_an_empty_folder_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    store = synthetic.write_store(out, num_samples=12)
    assert store.path == out and len(Store(out)) == 12


def test_synth_follows_the_same_rules(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.txt").write_text("x")
    assert cli_main(["synth", "--out", str(mine), "--samples", "12"]) == 2
    assert (mine / "a.txt").read_text() == "x"
    out = tmp_path / "synth"
    assert cli_main(["synth", "--out", str(out), "--samples", "12"]) == 0
    assert cli_main(["synth", "--out", str(out), "--samples", "12"]) == 2
    assert cli_main(["synth", "--out", str(out), "--samples", "14", "--overwrite"]) == 0
    assert len(Store(out)) == 14
    assert cli_main(["synth", "--out", str(tmp_path / "s0"), "--samples", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_a_second_writer_of_one_store_refuses(tmp_path):
    out = tmp_path / "store"
    with FolderLock(tmp_path / ".store.lock", "store"):
        with pytest.raises(OutputError, match="another skelssl process"):
            synthetic.write_store(out, num_samples=12)
    assert not out.exists() and _hidden(tmp_path) == []
    synthetic.write_store(out, num_samples=12)  # the lock is free again


def test_a_killed_writers_partial_folder_is_removed_by_the_next(tmp_path):
    stale = tmp_path / ".store.999999.abc123.partial"  # a writer killed before it published
    stale.mkdir()
    (stale / "frames.npy").write_bytes(b"\0" * 1024)
    other = tmp_path / ".store.999999.zz.partial"  # not a store's files: not ours, kept
    other.mkdir()
    (other / "keep.txt").write_text("x")
    neighbour = tmp_path / ".store.v2.999999.abc.partial"  # a partial of store 'store.v2': kept
    neighbour.mkdir()
    (neighbour / "frames.npy").write_bytes(b"\0")
    synthetic.write_store(tmp_path / "store", num_samples=12)
    assert not stale.exists() and other.is_dir() and neighbour.is_dir()


def test_every_file_is_written_before_publication_and_checksummed(tmp_path):
    out = tmp_path / "store"

    def failing(unpublished: Store) -> dict[str, bytes]:
        assert len(unpublished) == 3
        raise RuntimeError("crash while computing subsets")

    with pytest.raises(RuntimeError):
        with StoreWriter(out, "kinect20", 1) as w:
            for i in range(3):
                w.add(f"s{i}", np.ones((4, 1, 20, 3), np.float32) * i, {"label": i})
            w.close(finalize=failing)
    assert not out.exists() and _hidden(tmp_path) == []

    store = synthetic.write_store(out, num_samples=24)
    assert set(store.info["files"]) == {"subsets.npz"} and store.saved_subsets() and store.verify()
    # A subsets.npz from another run (the race the lock now prevents) no longer passes verify().
    other = synthetic.write_store(tmp_path / "other", num_samples=30)
    os.replace(other.path / "subsets.npz", out / "subsets.npz")
    assert not Store(out).verify()


def test_prepare_writes_skipped_tsv_with_undecodable_names(tmp_path):
    src = _nucla_source(tmp_path / "ds")
    bad = os.fsencode(src) + b"/a01_s01_e09_v01\xff.json"
    with open(bad, "wb") as f:
        f.write(b"not json")
    (src / "a01_s01_e08_v01.json").write_text("{")
    report = prepare("nucla", src, tmp_path / "store")
    store = Store(report.store)
    assert report.samples == 6 and store.verify()
    tsv = (report.store / "skipped.tsv").read_text("utf-8")
    assert "a01_s01_e08_v01.json" in tsv
    assert set(store.info["files"]) == {"subsets.npz", "skipped.tsv"}


@pytest.mark.parametrize("extra, expect", [
    (["-o", "protocol_lst=false"], "unknown nucla reader option"),
    (["--persons", "0"], "--persons"),
    (["--workers", "0"], "--workers"),
    (["-o", "x=!!python/object/apply:os.system [echo]"], "cannot read the value"),
])
def test_prepare_mistakes_give_one_line(tmp_path, capsys, extra, expect):
    src = _nucla_source(tmp_path / "ds")
    assert cli_main(["prepare", "nucla", str(src), "--out", str(tmp_path / "store"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert expect in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "store").exists()
