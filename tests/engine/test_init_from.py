"""``skelssl pretrain --init-from``: a new run whose method starts from another run's weights (issue 18).

On the engine's toy method: step 0 holds the source's weights value for value (a whole method, a
checkpoint folder, an encoder alone with its momentum copy), training moves them, the config records
the file and its SHA-256, a resume never reads the source again, weights that do not fit are refused in
one line, and on another layout only the layout-dependent tensors start fresh, with a warning."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from _toys import write_toy_recipe
from conftest import one_line_error
from skelssl.cli import main as cli_main
from skelssl.data.store import write_store
from skelssl.engine import checkpoint as ck
from skelssl.engine import init_from
from skelssl.engine.config import InitFromConfig, load_config
from skelssl.jobs.pretrain import build_method

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    return write_toy_recipe(tmp_path_factory.mktemp("init"), epochs=1, keep_every_steps=1)


@pytest.fixture(scope="module")
def source(recipe, tmp_path_factory) -> Path:
    """A run of ours: 3 steps of the toy (trainer.seed 5, so that a fresh build differs from it)."""
    run = tmp_path_factory.mktemp("source") / "run"
    assert cli_main(["pretrain", str(recipe), "--out", str(run), "trainer.max_steps=3", "trainer.seed=5"]) == 0
    return run


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return ck.load_tensors(path)[0]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys=None) -> bool:
    keys = a.keys() if keys is None else keys
    return all(torch.equal(a[k], b[k]) for k in keys)


def _built(recipe: Path, *overrides: str):
    from skelssl.data.store import Store

    cfg = load_config(recipe, list(overrides))
    return (cfg, *build_method(cfg, Store(cfg.data.store)))


def test_step_zero_is_the_source(recipe, source):
    """A run folder of ours gives its last checkpoint: every tensor of the method, value for value,
    with the step count back at 0; a fresh build differs."""
    src = init_from.read_source(InitFromConfig(path=str(source)))
    assert src.file == (source / "checkpoints" / "last" / "model.safetensors").absolute() and src.kind == "method"
    assert src.sha256 == hashlib.sha256(src.file.read_bytes()).hexdigest()
    saved = _tensors(src.file)
    src.tensors["step"] = torch.tensor(3)  # (the toy counts no steps; a real method's run has its count here)
    cfg, method, kwargs = _built(recipe)
    assert not torch.equal(method.state_dict()["encoder.net.0.weight"], saved["encoder.net.0.weight"])
    assert init_from.apply(method, src, cfg, kwargs) == []
    state = method.state_dict()
    assert state.keys() == saved.keys()
    assert _same(state, saved, [k for k in saved if k != "step"]) and int(state["step"]) == 0


def test_pretrain_starts_from_the_source_and_records_it(tmp_path, recipe, source, capsys):
    """Through the CLI: with lr 0 one step keeps the source's encoder exactly; with lr > 0 the steps move
    it; the config records the file and its hash; the optimiser and step start fresh."""
    file = source / "checkpoints" / "last" / "model.safetensors"
    want = {k.removeprefix("encoder."): v for k, v in _tensors(file).items() if k.startswith("encoder.")}
    still = tmp_path / "still"
    assert cli_main(["pretrain", str(recipe), "--out", str(still), "--init-from", str(source), "optim.lr=0",
                     "trainer.max_steps=1"]) == 0
    assert f"from {file.absolute()}" in capsys.readouterr().out
    assert _same(want, _tensors(still / "encoder.safetensors"))
    recorded = yaml.safe_load((still / "config.yaml").read_text())["init_from"]
    assert recorded == {"path": str(file.absolute()), "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}
    assert ck.encoder_metadata(still)["config"]["init_from"] == recorded

    moved = tmp_path / "moved"
    assert cli_main(["pretrain", str(recipe), "--out", str(moved), "--init-from", str(source), "trainer.max_steps=2"]) == 0
    got = _tensors(moved / "encoder.safetensors")
    assert got.keys() == want.keys() and not _same(want, got, ["net.0.weight"])
    state = ck.load_checkpoint(moved).state
    assert state["step"] == 2
    assert all(int(s["step"]) == 2 for s in state["optimizer"]["state"].values())  # fresh moments


def test_checkpoint_folder_and_encoder_alone(tmp_path, recipe, source):
    """A kept checkpoint folder gives that step's weights; an encoder file (or a run holding only one)
    starts the encoder alone, its momentum copy with it, the rest as a fresh build."""
    step1 = source / "checkpoints" / "step-0000001"
    src = init_from.read_source(InitFromConfig(path=str(step1)))
    cfg, method, kwargs = _built(recipe)
    init_from.apply(method, src, cfg, kwargs)
    assert _same(method.state_dict(), _tensors(step1 / "model.safetensors"), ["encoder.net.0.weight", "queue"])

    only = tmp_path / "only-encoder"
    only.mkdir()
    shutil.copy(source / "encoder.safetensors", only / "encoder.safetensors")
    for given in (source / "encoder.safetensors", only):
        src = init_from.read_source(InitFromConfig(path=str(given)))
        assert src.kind == "encoder"
        cfg, method, kwargs = _built(recipe)
        fresh = {k: v.clone() for k, v in method.state_dict().items()}
        init_from.apply(method, src, cfg, kwargs)
        state, encoder = method.state_dict(), _tensors(source / "encoder.safetensors")
        assert all(torch.equal(state[f"encoder.{k}"], v) and torch.equal(state[f"target.encoder.{k}"], v) for k, v in encoder.items())
        assert _same(state, fresh, ["proj.1.weight", "target.proj.weight", "queue"])


def test_resume_never_reads_the_source_again(tmp_path, recipe, source):
    """A run stopped at step 2 of 4 and resumed ends bit-exactly where the unbroken run ends, from its
    own checkpoint: with the source gone, or with the first command line (the source hashed again)."""
    private = tmp_path / "source"
    shutil.copytree(source, private)
    run = tmp_path / "run"
    first = ["pretrain", str(recipe), "--out", str(run), "--init-from", str(private), "trainer.max_steps=4"]
    assert cli_main(first) == 0
    final = ck.load_checkpoint(run).model
    # Stop it at step 2: the kept copy of step 2 becomes `last`, the encoder file is not yet written.
    shutil.rmtree(run / "checkpoints" / "last")
    shutil.copytree(run / "checkpoints" / "step-0000002", run / "checkpoints" / "last")
    (run / "encoder.safetensors").unlink()
    stopped = tmp_path / "stopped"
    shutil.copytree(run, stopped)

    assert cli_main([*first, "--resume"]) == 0
    assert _same(final, ck.load_checkpoint(run).model)

    shutil.rmtree(private)
    assert cli_main(["pretrain", str(stopped / "config.yaml"), "--out", str(stopped), "--resume"]) == 0
    assert _same(final, ck.load_checkpoint(stopped).model)


def test_refusals_are_one_line(tmp_path, recipe, source, capsys):
    # Another size: every mis-shaped tensor named, nothing written.
    out = tmp_path / "bigger"
    assert cli_main(["pretrain", str(recipe), "--out", str(out), "--init-from", str(source), "encoder.kwargs.hidden=24"]) == 2
    line = one_line_error(capsys)
    assert line.startswith("skelssl pretrain: error: init_from: ") and "does not fit the _engine_toy_method method" in line
    assert "mis-shaped (encoder.net.0.bias (16,) (expected (24,))" in line and "and " in line
    assert not out.exists() or not any(p.name != ".lock" for p in out.iterdir())

    # Another component size alone: the encoder file does not fit either.
    assert cli_main(["pretrain", str(recipe), "--out", str(tmp_path / "a"), "--init-from", str(source / "encoder.safetensors"),
                     "encoder.kwargs.out_dim=4"]) == 2
    assert "does not fit the _engine_toy_mlp encoder" in one_line_error(capsys)

    # Not weights: an official (pickle) file, a folder without weights, nothing at all.
    torch.save({"model": {}}, tmp_path / "official.pth")
    (tmp_path / "empty").mkdir()
    for given, says in ((tmp_path / "official.pth", "skelssl convert"), (tmp_path / "empty", "holds no weights"),
                        (tmp_path / "nothing", "no such run folder or weights file"),
                        (source / "checkpoints" / "last" / "state.safetensors", "no skelssl weights file")):
        assert cli_main(["pretrain", str(recipe), "--out", str(tmp_path / "b"), "--init-from", str(given)]) == 2
        assert says in one_line_error(capsys)

    # A recorded hash that the file no longer has (reproducing a run from its config.yaml).
    private = tmp_path / "private"
    shutil.copytree(source, private)
    run = tmp_path / "run"
    assert cli_main(["pretrain", str(recipe), "--out", str(run), "--init-from", str(private), "trainer.max_steps=1"]) == 0
    capsys.readouterr()
    shutil.copy(source / "checkpoints" / "step-0000001" / "model.safetensors", private / "checkpoints" / "last" / "model.safetensors")
    assert cli_main(["pretrain", str(run / "config.yaml"), "--out", str(tmp_path / "again")]) == 2
    assert "init_from.sha256: " in (line := one_line_error(capsys)) and "has changed since the run was recorded" in line


def test_another_layout_starts_the_joint_dependent_tensors_fresh(tmp_path, recipe, source, capsys):
    """On an ntu25 store the toy's first layer (over V x C inputs) cannot come from kinect20 weights: it
    and its momentum copy start fresh, named in one warning; everything else is the source's. A wrong
    size is still refused, built for the source's layout."""
    import numpy as np

    rng = np.random.default_rng(1)
    ntu = write_store(tmp_path / "ntu", ((f"n{i}", rng.normal(size=(8, 1, 25, 3)).astype(np.float32), {"label": i % 2})
                                         for i in range(8)), "ntu25", 1, info={"dataset": "toy"})
    run = tmp_path / "run"
    assert cli_main(["pretrain", str(recipe), "--out", str(run), "--init-from", str(source), f"data.store={ntu.path}",
                     "optim.lr=0", "trainer.max_steps=1"]) == 0
    line = one_line_error(capsys)
    assert line.startswith("skelssl pretrain: warning: init_from: 2 tensors left at a fresh initialisation for layout ntu25 "
                           "(the weights': layout kinect20): encoder.net.0.weight, target.encoder.net.0.weight"), line
    saved, got = _tensors(source / "checkpoints" / "last" / "model.safetensors"), ck.load_checkpoint(run).model
    assert got["encoder.net.0.weight"].shape == (16, 75) and saved["encoder.net.0.weight"].shape == (16, 60)
    assert _same(saved, got, ["encoder.net.0.bias", "encoder.net.1.weight", "encoder.net.3.weight", "proj.1.weight"])

    assert cli_main(["pretrain", str(recipe), "--out", str(tmp_path / "x"), "--init-from", str(source), f"data.store={ntu.path}",
                     "encoder.kwargs.hidden=24"]) == 2
    line = one_line_error(capsys)
    assert "(built for the weights' data: channels 3, layout kinect20, persons 1)" in line
    assert "encoder.net.0.weight (16, 60) (expected (24, 60))" in line
