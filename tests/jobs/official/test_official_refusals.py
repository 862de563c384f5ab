"""``skelssl convert`` refuses, in one line and without running anything from the file: a pickle that
asks for code, a file that is no checkpoint, a checkpoint of another method or size, and an ``--out``
that is not ours to write (issue 18)."""

from __future__ import annotations

import shutil

import os
from pathlib import Path

import pytest
import torch

from _official_files import tensor_list, write_official
from conftest import one_line_error
from skelssl.cli import main as cli_main

pytestmark = pytest.mark.usefixtures("one_thread")


def _refused(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit status 2 and exactly one line on stderr, no traceback; return it."""
    capsys.readouterr()
    assert cli_main(argv) == 2
    return one_line_error(capsys)


class _Payload:
    """Unpickling this would run a shell command that creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Innocent:
    """A class of the test module: harmless, but not one the loader allows."""

    def __init__(self) -> None:
        self.x = 1


def test_a_pickle_asking_for_code_is_refused_and_nothing_runs(tmp_path, capsys, shared_data):
    marker = tmp_path / "pwned"
    obj = write_official(tmp_path / "mamp.pth", shared_data, "mamp")
    obj["args"] = _Payload(marker)
    torch.save(obj, tmp_path / "evil.pth")
    line = _refused(capsys, ["convert", "mamp", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "run")])
    assert "refused" in line and "system" in line and "never runs code" in line
    assert not marker.exists() and not (tmp_path / "run").exists()

    torch.save({"model": obj["model"], "args": Innocent()}, tmp_path / "class.pth")
    line = _refused(capsys, ["convert", "mamp", str(tmp_path / "class.pth"), "--out", str(tmp_path / "run")])
    assert "refused" in line and "Innocent" in line


def test_files_that_are_no_checkpoint(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    line = _refused(capsys, ["convert", "hitrs", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "run")])
    assert "notes.txt: not a PyTorch checkpoint" in line
    line = _refused(capsys, ["convert", "hitrs", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "run")])
    assert "missing.pth: no such file" in line
    line = _refused(capsys, ["convert", "stgcn", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "run")])
    assert "unknown method 'stgcn'" in line and "hitrs, isc, mamp" in line
    assert not (tmp_path / "run").exists()


def test_mismatched_names_and_shapes_are_listed(tmp_path, capsys, shared_data):
    obj = write_official(tmp_path / "mamp.pth", shared_data, "mamp")
    model = obj["model"]
    del model["decoder_pred.bias"]
    model["blocks.0.attn.qkv.weight"] = torch.zeros(3 * 128, 256)
    model["blocks.0.attn.q_bias"] = torch.zeros(256)
    torch.save(obj, tmp_path / "odd.pth")
    line = _refused(capsys, ["convert", "mamp", str(tmp_path / "odd.pth"), "--out", str(tmp_path / "run")])
    assert "1 missing (decoder_pred.bias)" in line
    assert "1 unexpected (blocks.0.attn.q_bias)" in line
    assert "1 mis-shaped (blocks.0.attn.qkv.weight (384, 256) (expected (768, 256)))" in line
    assert "looks like a MAMP checkpoint (8 blocks of width 256, decoder 3 blocks, 120 frames, 25 joints)" in line
    assert not (tmp_path / "run").exists()


def test_another_method_says_what_the_file_looks_like(tmp_path, capsys, shared_data):
    write_official(tmp_path / "hitrs.pth", shared_data, "hitrs")
    line = _refused(capsys, ["convert", "mamp", str(tmp_path / "hitrs.pth"), "--out", str(tmp_path / "run")])
    assert "does not match the official MAMP checkpoint" in line
    assert "looks like a Hi-TRS checkpoint (frame width 128, 3 layers per level, 25 joints, 3 channels)" in line
    write_official(tmp_path / "mamp.pth", shared_data, "mamp")
    line = _refused(capsys, ["convert", "isc", str(tmp_path / "mamp.pth"), "--out", str(tmp_path / "run")])
    assert "where ISC saves" in line and "looks like a MAMP checkpoint" in line


def test_ntu120_mamp_needs_its_recipe(tmp_path, capsys, shared_data):
    """MAMP's NTU-120 and PKU-MMD checkpoints have a 5-block decoder: the NTU-60 recipe refuses them,
    naming the extra blocks; their own recipe converts them."""
    entries = tensor_list(shared_data, "mamp")
    extra = [dict(e, key=e["key"].replace("decoder_blocks.2.", f"decoder_blocks.{i}."))
             for i in (3, 4) for e in entries if e["key"].startswith("decoder_blocks.2.")]
    g = torch.Generator().manual_seed(0)
    model = {e["key"]: torch.randn(e["shape"], generator=g) for e in entries + extra}
    torch.save({"model": model, "epoch": 399}, tmp_path / "ntu120.pth")
    line = _refused(capsys, ["convert", "mamp", str(tmp_path / "ntu120.pth"), "--out", str(tmp_path / "run")])
    assert "24 unexpected (decoder_blocks.3." in line and "decoder 5 blocks" in line
    recipe = Path(__file__).resolve().parents[3] / "configs" / "mamp" / "ntu120_xsub.yaml"
    assert cli_main(["convert", "mamp", str(tmp_path / "ntu120.pth"), "--out", str(tmp_path / "run"),
                     "--recipe", str(recipe)]) == 0


def test_out_is_never_a_folder_we_did_not_write(tmp_path, capsys, shared_data):
    src = tmp_path / "hitrs.pth"
    write_official(src, shared_data, "hitrs")
    mine = tmp_path / "my-results"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    for extra in ([], ["--overwrite"]):
        line = _refused(capsys, ["convert", "hitrs", str(src), "--out", str(mine), *extra])
        assert "not a run skelssl converted" in line
    assert (mine / "thesis.tex").read_text() == "precious" and len(list(mine.iterdir())) == 1
    line = _refused(capsys, ["convert", "hitrs", str(src), "--out", str(mine / "thesis.tex")])
    assert "is not a folder" in line

    run = tmp_path / "run"
    assert cli_main(["convert", "hitrs", str(src), "--out", str(run)]) == 0
    first = (run / "encoder.safetensors").read_bytes()
    line = _refused(capsys, ["convert", "hitrs", str(src), "--out", str(run)])
    assert "pass --overwrite" in line
    write_official(src, shared_data, "hitrs", seed=1)
    for name in (".run.old", ".run.partial"):  # a user's folders that only look like our temporary names
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text("mine")
    assert cli_main(["convert", "hitrs", str(src), "--out", str(run), "--overwrite"]) == 0
    assert (run / "encoder.safetensors").read_bytes() != first
    for name in (".run.old", ".run.partial"):
        assert (tmp_path / name / "notes.txt").read_text() == "mine"
        shutil.rmtree(tmp_path / name)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no partial or old folders left
    (run / "eval").mkdir()
    line = _refused(capsys, ["convert", "hitrs", str(src), "--out", str(run), "--overwrite"])
    assert "files convert did not write (eval)" in line


def test_an_earlier_conversion_survives_a_failed_replace_it_cannot_undo(tmp_path, capsys, shared_data, monkeypatch):
    """The new run cannot be renamed into place and the earlier one cannot be renamed back: the earlier
    conversion stays, whole, in its hidden folder beside --out (it was removed by the cleanup before)."""
    import skelssl.jobs.official as official

    src = tmp_path / "hitrs.pth"
    write_official(src, shared_data, "hitrs")
    run = tmp_path / "run"
    assert cli_main(["convert", "hitrs", str(src), "--out", str(run)]) == 0
    first = (run / "encoder.safetensors").read_bytes()
    real = os.replace

    def failing(a, b):
        a, b = Path(a), Path(b)
        if (b == run and a.name.endswith(".partial")) or a.name.endswith(".old"):
            raise OSError("simulated rename failure")
        return real(a, b)

    monkeypatch.setattr(official.os, "replace", failing)
    with pytest.raises(OSError, match="simulated"):
        official.convert("hitrs", src, run, overwrite=True)
    monkeypatch.undo()
    kept = [p for p in tmp_path.iterdir() if p.name.startswith(".run.") and p.name.endswith(".old")]
    assert len(kept) == 1 and (kept[0] / "encoder.safetensors").read_bytes() == first


@pytest.mark.parametrize("override, words", [("encoder.kwargs.mode=bidirectional", "not the official stepped GRU"),
                                             ("method.kwargs.pairing=intra-seq", "pairing is intra-seq"),
                                             ("method.kwargs.export=graph", "exports the graph encoder")])
def test_an_isc_recipe_without_official_counterpart(tmp_path, capsys, override, words):
    (tmp_path / "isc.pth").write_bytes(b"never read")
    line = _refused(capsys, ["convert", "isc", str(tmp_path / "isc.pth"), "--out", str(tmp_path / "run"),
                             "encoder.kwargs.hidden_size=8", override])
    assert words in line
