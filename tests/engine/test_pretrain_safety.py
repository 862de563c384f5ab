"""``skelssl pretrain``: a resume continues exactly the recorded run or refuses; one run per folder;
a checkpoint is only written from good weights; mistakes give one line (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from _toys import write_toy_recipe
from conftest import one_line_error
from skelssl.cli import main as cli_main
from skelssl.core.files import FolderLock
from skelssl.engine import checkpoint as ck

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    return write_toy_recipe(tmp_path_factory.mktemp("pretrain"), epochs=2, ckpt_every_steps=1)


def test_resume_never_rewrites_the_recorded_config(tmp_path, recipe, capsys):
    run = tmp_path / "run"
    assert cli_main(["pretrain", str(recipe), "--out", str(run), "trainer.max_steps=3", "optim.lr=0.02"]) == 0
    recorded = (run / "config.yaml").read_bytes()
    state = ck.load_checkpoint(run).state
    assert state["step"] == 3

    # Without the original overrides, and with a changed setting: refused, naming the key; nothing changes.
    for overrides in ([], ["trainer.max_steps=3"], ["trainer.max_steps=3", "optim.lr=0.03"]):
        assert cli_main(["pretrain", str(recipe), "--out", str(run), "--resume", *overrides]) == 2
        line = one_line_error(capsys)
        assert "cannot resume" in line and ("optim.lr" in line or "trainer.max_steps" in line)
        assert (run / "config.yaml").read_bytes() == recorded
        assert ck.load_checkpoint(run).state["step"] == 3

    # The recorded config as the recipe continues the run; only where it runs may change.
    assert cli_main(["pretrain", str(run / "config.yaml"), "--out", str(run), "--resume", "trainer.progress=false"]) == 0
    assert (run / "config.yaml").read_bytes() == recorded
    assert ck.load_checkpoint(run).state["step"] == 3  # max_steps 3 was already reached


def test_resume_needs_a_run(tmp_path, recipe, capsys):
    assert cli_main(["pretrain", str(recipe), "--out", str(tmp_path / "missing"), "--resume"]) == 2
    assert "no such run folder" in one_line_error(capsys)
    assert not (tmp_path / "missing").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("mine")
    assert cli_main(["pretrain", str(recipe), "--out", str(other), "--resume"]) == 2
    assert "not a skelssl run" in one_line_error(capsys)
    assert sorted(p.name for p in other.iterdir()) == ["x.txt"]


def test_a_finished_run_resumes_to_nothing_new(tmp_path, recipe, capsys):
    run = tmp_path / "run"
    assert cli_main(["pretrain", str(recipe), "--out", str(run)]) == 0
    weights = (run / "encoder.safetensors").read_bytes()
    capsys.readouterr()
    assert cli_main(["pretrain", str(run / "config.yaml"), "--out", str(run), "--resume"]) == 0
    assert (run / "encoder.safetensors").read_bytes() == weights


def test_one_process_per_run_folder(tmp_path, recipe, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with FolderLock(run / ".lock", f"run {run}"):
        assert cli_main(["pretrain", str(recipe), "--out", str(run)]) == 2
        assert "another skelssl process" in one_line_error(capsys)
    assert [p.name for p in run.iterdir()] == [".lock"]
    assert cli_main(["pretrain", str(recipe), "--out", str(run), "trainer.max_steps=1"]) == 0


def test_diverged_weights_are_never_saved_as_good(tmp_path, recipe, capsys):
    run = tmp_path / "run"
    # Call 3 multiplies a weight by 1e27; the loss stays finite (LayerNorm + cosine logits).
    assert cli_main(["pretrain", str(recipe), "--out", str(run), "method.kwargs.blowup_at_call=3"]) == 2
    line = one_line_error(capsys)
    assert "weights diverged" in line and "checkpoints/last" in line
    good = ck.load_checkpoint(run)
    assert good.state["step"] == 2
    assert max(float(v.abs().max()) for v in good.model.values() if v.is_floating_point()) < 1e3


@pytest.mark.parametrize("overrides, expect", [
    (["data.batch_size=0"], "batch_size"),
    (["encoder.name=stgnc"], "stgnc"),
    (["optim.lrr=0.1"], "optim.lrr"),
    (["data.store=/nope"], "/nope"),
])
def test_wrong_settings_give_one_line(tmp_path, recipe, capsys, overrides, expect):
    assert cli_main(["pretrain", str(recipe), "--out", str(tmp_path / "run"), *overrides]) == 2
    assert expect in one_line_error(capsys)
