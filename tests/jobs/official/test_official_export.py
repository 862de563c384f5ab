"""``skelssl export-weights RUN --format official``: a converted run gives back the same file contents;
a run pre-trained here gives a file in the official layout that converts back to the same weights;
the output is never a file skelssl did not write (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _official_files import ISC_SMALL_OVERRIDES, assert_same_contents, write_official
from conftest import one_line_error, random_store
from skelssl.cli import main as cli_main
from skelssl.engine import checkpoint as ckpt
from skelssl.engine.config import load_config
from skelssl.jobs.official.load import load_official
from skelssl.jobs.pretrain import pretrain

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPES = Path(__file__).resolve().parents[3] / "configs"


def _one_line(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert cli_main(argv) == 2
    return one_line_error(capsys)


@pytest.mark.parametrize("method", ["hitrs", "mamp", "isc"])
def test_round_trip_gives_the_same_file_contents(tmp_path, shared_data, method):
    small = method == "isc"
    original = write_official(tmp_path / "official.pth", shared_data, method, small=small)
    run = tmp_path / "run"
    assert cli_main(["convert", method, str(tmp_path / "official.pth"), "--out", str(run),
                     *(ISC_SMALL_OVERRIDES if small else [])]) == 0
    assert cli_main(["export-weights", str(run), "--format", "official", "--out", str(tmp_path / "back.pth")]) == 0
    back = load_official(tmp_path / "back.pth")
    # Same container, keys in the same order, values bit for bit (the AGCN conv_d biases that our
    # module sums come back as the file had them), MAMP's optimiser, scaler, epoch and args included.
    assert_same_contents(original, back)
    if method != "mamp":  # what the official code loads: tensors and plain containers only
        torch.load(tmp_path / "back.pth", weights_only=True)


@pytest.fixture(scope="module")
def mamp_run(tmp_path_factory) -> Path:
    """A MAMP run pre-trained here for two steps at a tiny size on a random NTU-layout store."""
    folder = tmp_path_factory.mktemp("ours")
    store = random_store(folder / "store", n=8, layout="ntu25", persons=2, dataset="synthetic")
    cfg = load_config(RECIPES / "mamp" / "ntu60_xsub.yaml", [
        f"data.store={store.path}", "data.protocol=null", "data.global_batch=null", "data.batch_size=4",
        "encoder.kwargs.preset=tiny", "encoder.kwargs.frames=16", "method.kwargs.decoder_depth=1",
        "method.kwargs.min_frames=4", "trainer.epochs=1", "trainer.accelerator=cpu", "trainer.progress=false",
        "trainer.precision=32-true", "schedule.warmup_epochs=0"])
    pretrain(cfg, folder / "run")
    return folder / "run"


def test_our_run_exports_in_the_official_layout_and_converts_back(tmp_path, mamp_run):
    out = tmp_path / "mamp.pth"
    assert cli_main(["export-weights", str(mamp_run), "--out", str(out)]) == 0
    exported = load_official(out)
    assert list(exported) == ["model", "epoch"] and exported["epoch"] == 1
    model = exported["model"]
    assert {"blocks.0.norm1.weight", "blocks.0.mlp.fc2.bias", "decoder_blocks.0.norm2.weight", "mask_token",
            "decoder_pred.weight", "temp_embed", "joints_embed.proj.weight", "norm.bias"} <= set(model)
    assert not any(k.startswith("encoder.") or ".attn_norm." in k for k in model)
    # ... and it is a MAMP file again for convert, with the run's own recipe: the same weights.
    assert cli_main(["convert", "mamp", str(out), "--out", str(tmp_path / "again"),
                     "--recipe", str(mamp_run / "config.yaml")]) == 0
    trained = ckpt.load_checkpoint(mamp_run).model
    again, _ = ckpt.load_tensors(tmp_path / "again" / "method.safetensors")
    assert trained.keys() == again.keys()
    assert all(torch.equal(trained[k], again[k]) for k in trained if k != "step")


def test_an_encoder_alone_exports_its_own_tensors(tmp_path, mamp_run):
    out = tmp_path / "encoder.pth"
    assert cli_main(["export-weights", str(mamp_run / "encoder.safetensors"), "--out", str(out)]) == 0
    model = load_official(out)["model"]
    encoder, _ = ckpt.load_tensors(mamp_run / "encoder.safetensors")
    assert len(model) == len(encoder) and "blocks.0.norm1.weight" in model
    assert not any(k.startswith(("decoder", "mask_token")) for k in model)
    assert torch.equal(model["blocks.0.mlp.fc1.weight"], encoder["blocks.0.mlp.0.weight"])


def test_export_never_replaces_a_file_it_did_not_write(tmp_path, capsys, mamp_run):
    precious = tmp_path / "checkpoint-399.pth"
    precious.write_bytes(b"the released file")
    for extra in ([], ["--overwrite"]):
        line = _one_line(capsys, ["export-weights", str(mamp_run), "--out", str(precious), *extra])
        assert "is not a file skelssl exported" in line
    assert precious.read_bytes() == b"the released file"
    out = tmp_path / "ours.pth"
    assert cli_main(["export-weights", str(mamp_run), "--out", str(out)]) == 0
    assert "pass --overwrite" in _one_line(capsys, ["export-weights", str(mamp_run), "--out", str(out)])
    assert cli_main(["export-weights", str(mamp_run), "--out", str(out), "--overwrite"]) == 0
    assert "is a folder" in _one_line(capsys, ["export-weights", str(mamp_run), "--out", str(tmp_path)])
    assert "--format official only" in _one_line(capsys, ["export-weights", str(mamp_run), "--format", "onnx", "--out", str(out)])
    assert "no such run" in _one_line(capsys, ["export-weights", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.pth")])
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
