"""Shared fixtures and helpers: where the real data lives, small stores, tiny encoders, synthetic motions.

Test modules import the helpers by name (``from conftest import random_store``); this is the only
``conftest.py``, so that name always means this file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the numba kernels (or load them from numba's disk cache) once, before any test runs.

    On a fresh clone the first compilation takes some 15-30 s; done here, it counts against no
    test's timeout. Nothing happens without numba (the ``[fast]`` extra) or with ``SKELSSL_NUMBA=0``.
    """
    import tempfile

    from skelssl.data import _numba
    from skelssl.data.formats import ntu
    from skelssl.data.preprocess import apply_pipeline

    if ntu._compiled_scan() is None or _numba.kernels("skelssl.data._agcn_compiled") is None:
        return
    bodies = np.zeros((3, 2, 25, 3), dtype=np.float32)
    bodies[:, 0] = np.linspace(0.1, 1.0, 75, dtype=np.float32).reshape(1, 25, 3) + np.array([0, 0, 3], np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = ntu.write_skeleton_file(Path(tmp) / "S001C001P001R001A001.skeleton", bodies)
        apply_pipeline("agcn", ntu.read(path, parser="compiled")[0], "ntu25")


# A standing NTU-25 person facing a Kinect 3 m away (camera space: x = the person's right, y up; x-extent
# 0.58 m, y-extent 1.63 m). The shoulder line (joints 8, 4) is perpendicular to the hip->spine bone (0, 1).
_STANDING_NTU25 = (
    (0.00, 0.00, 3.00), (0.00, 0.30, 3.00), (0.00, 0.62, 3.00), (0.00, 0.75, 3.00),
    (-0.18, 0.52, 3.00), (-0.25, 0.28, 3.00), (-0.28, 0.05, 3.00), (-0.29, -0.02, 3.00),
    (0.18, 0.52, 3.00), (0.25, 0.28, 3.00), (0.28, 0.05, 3.00), (0.29, -0.02, 3.00),
    (-0.10, -0.02, 3.00), (-0.11, -0.45, 3.00), (-0.11, -0.85, 3.00), (-0.11, -0.88, 2.90),
    (0.10, -0.02, 3.00), (0.11, -0.45, 3.00), (0.11, -0.85, 3.00), (0.11, -0.88, 2.90),
    (0.00, 0.55, 3.00), (-0.30, -0.08, 3.00), (-0.26, -0.03, 2.97), (0.30, -0.08, 3.00), (0.26, -0.03, 2.97),
)


def standing_ntu25(dtype: type = np.float64) -> np.ndarray:
    """A fresh ``(25, 3)`` copy of the standing NTU-25 pose that the pipeline and drawing tests build on."""
    return np.array(_STANDING_NTU25, dtype=dtype)


@pytest.fixture
def one_thread():
    """Small tensors: one intra-op thread avoids the synchronisation cost of two on a busy machine.

    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` of the checkout; tests using it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (a fresh clone has no ../shared)")
    return SHARED_DATA


@pytest.fixture
def pku_part(shared_data, tmp_path) -> Path:
    """``tmp_path/pku``: four real untrimmed PKU-MMD v1 videos of ``../shared/data`` (linked) with their
    labels and splits; cross-subject, 0005 and 0065 train, 0299 and 0312 test."""
    import shutil

    src = shared_data / "pku_mmd_v1_subset"
    if not src.is_dir():
        pytest.skip(f"no PKU-MMD subset at {src}")
    part = tmp_path / "pku"
    (part / "PKU_Skeleton_Renew").mkdir(parents=True)
    for video in ("0005-L", "0065-M", "0299-L", "0312-R"):
        os.symlink(src / "PKU_Skeleton_Renew" / f"{video}.txt", part / "PKU_Skeleton_Renew" / f"{video}.txt")
    os.symlink(src / "Train_Label_PKU_final", part / "Train_Label_PKU_final")
    shutil.copytree(src / "Split", part / "Split")
    return part


def assert_results(results: dict, task: str) -> None:
    """``results`` of an evaluation hold every key ``results.json`` requires, and are of ``task``."""
    from skelssl.evaluation.results import REQUIRED_KEYS

    for key in REQUIRED_KEYS:
        assert key in results, key
    assert results["task"] == task


def one_line_error(capsys) -> str:
    """What a refused command wrote on stderr since the last read: exactly one line, no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def score_store(path: Path, clips, persons: int = 1):
    """A COCO-17 store of 2D poses with a confidence score (channels x, y, score), as ``prepare pyskl``
    makes of a pose estimator's pickle.

    Args:
        clips: ``(name, xy, score, meta)`` per clip: ``xy`` ``(T, P, 17, 2)`` and ``score`` ``(T, P, 17)``
            of its first ``P <= persons`` persons (the other slots stay zero).
    """
    from skelssl.data.store import write_store

    def samples():
        for name, xy, score, meta in clips:
            frames = np.zeros((len(xy), persons, 17, 3), np.float32)
            frames[:, : xy.shape[1], :, :2] = xy
            frames[:, : score.shape[1], :, 2] = score
            yield name, frames, meta

    return write_store(path, samples(), "coco17", persons, channels=3,
                       info={"dataset": "pyskl", "channel_names": ["x", "y", "score"]})


def random_store(path: Path, n: int = 24, layout: str = "kinect20", persons: int = 1, classes: int = 3, seed: int = 0, dataset: str = "nucla"):
    """A small store of random sequences with N-UCLA-like metadata (views 1..3)."""
    from skelssl.core.layouts import get_layout
    from skelssl.data.store import write_store

    rng = np.random.default_rng(seed)
    v = get_layout(layout).num_joints

    def samples():
        for i in range(n):
            t = int(rng.integers(5, 30))
            frames = rng.normal(size=(t, persons, v, 3)).astype(np.float32)
            yield f"s{i:04d}", frames, {"label": i % classes, "view": 1 + i % 3, "subject": 1 + i % 5}

    return write_store(path, samples(), layout, persons, info={"dataset": dataset})


# name -> size arguments of a tiny variant of every encoder (in_channels, layout and num_persons are
# the tests' own); a new encoder adds its entry here (tests/models/test_encoders_common.py fails until
# it does).
TINY_ENCODERS: dict[str, dict] = {
    "stgcn": {"channels": (8, 16), "strides": (1, 2), "temporal_kernel": 3},
    "motion_transformer": {"preset": "tiny", "frames": 24},
    "hitrs": {"preset": "tiny"},
    "gru": {"hidden_size": 8, "num_layers": 2},
    "agcn": {"channels": (8, 16), "strides": (1, 2), "temporal_kernel": 3},
    "hcn": {"channels": 4, "frames": 16},
    "mamp": {"preset": "tiny", "frames": 16},
}


def smooth_motions(
    n: int, t: int, seed: int = 0, *, min_length: int = 12, rate: float = 0.5, amplitude: float = 0.5,
    phase: bool = False, persons: int = 2, joints: int = 25,
) -> dict[str, torch.Tensor]:
    """A pre-training batch of distinct smooth synthetic motions ``base + a sin(w t [+ base])``.

    Lengths are drawn from ``[min_length, t]`` and the frames beyond them are zero; with two or more
    persons, odd samples have one actor. ``rate`` scales the random angular speeds ``w``.

    Returns:
        ``x`` ``(n, 3, t, joints, persons)``, ``lengths`` ``(n,)``, ``label`` (all -1) and ``index``.
    """
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_length, t + 1, (n,), generator=g)
    base = torch.randn(n, 3, 1, joints, persons, generator=g)
    w = torch.rand(n, 3, 1, joints, persons, generator=g) * rate
    angle = w * torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1)  # (n, 3, t, joints, persons)
    x = base + amplitude * torch.sin(angle + base if phase else angle)
    x = x * (torch.arange(t)[None, :] < lengths[:, None])[:, None, :, None, None]
    if persons > 1:
        x[1::2, ..., 1] = 0
    return {"x": x, "lengths": lengths, "label": torch.full((n,), -1), "index": torch.arange(n)}


def train_on_one_batch(method, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], steps: int) -> list[float]:
    """``steps`` optimiser steps of a method on one batch, taken as the engine takes them (backward,
    step, ``after_optimizer_step``); the loss of each step, for "training reduces the loss" tests."""
    losses = []
    for _ in range(steps):
        loss, _ = method.training_step(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.after_optimizer_step()
        losses.append(float(loss.detach()))
    return losses
