"""Layouts as data: the built-in pose-estimator layouts, a user's layout file, recorded in the store and
the encoder file so that separate commands (processes) know it; bad layouts get one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skelssl.cli import main as cli_main
from skelssl.core.conventions import SkeletonFormatError
from skelssl.core.layouts import (
    BUILTIN_LAYOUTS, COCO17, H36M17, LAYOUTS, OPENPOSE18, get_layout, layout_from_dict, load_layout_file, register_layout,
)

STICK = """\
name: stick6
description: a six-joint stick figure
joints: [pelvis, chest, head, hand_left, hand_right, foot]
parents: {pelvis: null, chest: pelvis, head: chest, hand_left: chest, hand_right: chest, foot: pelvis}
left_right: [[hand_left, hand_right]]
center: pelvis
spine: chest
hip: pelvis
shoulders: [hand_right, hand_left]
"""


@pytest.fixture
def forget_user_layouts():
    """Leave the process's layout registry as it was (user layouts registered by a test are removed)."""
    before = dict(LAYOUTS)
    yield
    LAYOUTS.clear()
    LAYOUTS.update(before)


def test_builtin_pose_layouts_match_their_published_graphs():
    # PYSKL's coco graph (inward edges, centre 0) and ST-GCN's openpose graph (centre 1).
    coco = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8), (8, 6), (5, 0), (6, 0),
            (1, 0), (3, 1), (2, 0), (4, 2)]
    assert sorted(COCO17.bones) == sorted(coco) and COCO17.center == 0
    openpose = [(4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2), (5, 1), (2, 1),
                (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)]
    assert sorted(OPENPOSE18.bones) == sorted(openpose) and OPENPOSE18.center == 1
    # VideoPose3D's H36M parents: [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
    assert H36M17.parents[1:] == (0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
    for layout in BUILTIN_LAYOUTS.values():
        for left, right in layout.left_right:  # pairs are (left, right), by the joints' own names
            assert "left" in layout.joint_names[left] and "right" in layout.joint_names[right], layout.name
        right, left = layout.shoulders
        assert "right" in layout.joint_names[right] and "left" in layout.joint_names[left], layout.name
        assert layout_from_dict(layout.to_dict()) == layout


def test_a_layout_file_by_names_or_indices(tmp_path):
    (tmp_path / "stick.yaml").write_text(STICK)
    stick = load_layout_file(tmp_path / "stick.yaml")
    assert stick.num_joints == 6 and stick.center == 0 and stick.spine == 1 and stick.flip_index == (0, 1, 2, 4, 3, 5)
    assert sorted(stick.bones) == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 0)]
    as_json = {**stick.to_dict()}
    (tmp_path / "stick.json").write_text(json.dumps(as_json))
    assert load_layout_file(tmp_path / "stick.json") == stick
    a = stick.spatial_partition()  # what graph encoders are built from
    assert a.shape == (3, 6, 6) and a[1][3, 1] == pytest.approx(1 / 3) and a[1][1, 3] == 0.0  # chest has three children


@pytest.mark.parametrize("change, message", [
    ({"parents": {"pelvis": None, "chest": "head", "head": "chest", "hand_left": "chest", "hand_right": "chest", "foot": "pelvis"}},
     "cycle: chest -> head -> chest"),
    ({"parents": [None, 0, 1, 1, 1, None]}, "leads to root 'foot'"),
    ({"center": "tail"}, "center: 'tail' is not one of the joints"),
    ({"joints": ["a", "a", "b", "c", "d", "e"]}, "joint names repeat"),
    ({"colour": "red"}, "unknown key(s) colour"),
    ({"left_right": [["hand_left", "hand_right"], ["hand_left", "foot"]]}, "two pairs"),
])
def test_bad_layout_files_say_what_is_wrong(tmp_path, change, message):
    import yaml

    data = {**yaml.safe_load(STICK), **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SkeletonFormatError) as e:
        load_layout_file(path)
    assert message in str(e.value) and str(path) in str(e.value)


def test_registering_never_shadows_a_builtin(tmp_path, forget_user_layouts):
    fake = layout_from_dict({**yaml_dict(), "name": "coco17"})
    with pytest.raises(ValueError, match="built-in"):
        register_layout(fake)
    (tmp_path / "coco17.yaml").write_text(json.dumps(fake.to_dict()))
    with pytest.raises(SkeletonFormatError, match="built-in"):
        get_layout(tmp_path / "coco17.yaml")
    assert get_layout("coco17") is COCO17


def yaml_dict():
    import yaml

    return yaml.safe_load(STICK)


def _arrays(folder: Path, v: int, n: int = 24, seed: int = 0) -> Path:
    """A CTR-GCN style data.npy (N, C, T, V, M) folder with labels."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    x = rng.normal(size=(n, 3, 16, v, 1)).astype(np.float32)
    np.save(folder / "data.npy", x)
    np.save(folder / "labels.npy", np.arange(n) % 3)
    return folder


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "skelssl", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_a_user_layout_works_across_separate_commands(tmp_path, forget_user_layouts):
    (tmp_path / "stick.yaml").write_text(STICK)
    _arrays(tmp_path / "src", v=6)
    p = _cli("prepare", "arrays", "src", "--out", "store", "--layout", "stick.yaml", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (tmp_path / "stick.yaml").unlink()  # from now on only the store knows the layout
    p = _cli("info", "store", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["layout"] == "stick6"
    assert "stick6" not in LAYOUTS
    from skelssl.data.store import Store
    from skelssl.engine.config import load_config
    from skelssl.jobs.pretrain import pretrain

    store = Store(tmp_path / "store")
    assert store.layout.name == "stick6" and sorted(store.layout.bones) == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 0)]
    overrides = [f"data.store={store.path}", "encoder.name=stgcn", "encoder.kwargs.channels=[8]", "encoder.kwargs.strides=[1]",
                 "encoder.kwargs.temporal_kernel=3", "method.name=simclr", "method.kwargs.frames=8", "method.kwargs.hidden_dim=8",
                 "method.kwargs.proj_dim=4", "data.batch_size=8", "trainer.epochs=1", "trainer.accelerator=cpu",
                 "trainer.progress=false", "monitor.every_epochs=0"]
    pretrain(load_config(None, overrides), tmp_path / "run")
    from skelssl.engine.checkpoint import load_encoder

    enc = load_encoder(tmp_path / "run")
    graph = [b for name, b in enc.named_buffers() if b.shape[-2:] == (6, 6)]
    assert graph and any(np.allclose(b.numpy(), store.layout.spatial_partition()) for b in graph)
    # a fresh process knows the layout from the encoder file alone (no store opened first)
    (tmp_path / "store").rename(tmp_path / "moved")
    p = _cli("embed", "run", "--store", "moved", "--out", "f.npy", "--device", "cpu", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "f.npy").shape[0] == len(store)
    code = ("import sys; from skelssl.engine.checkpoint import load_encoder; "
            "e = load_encoder(sys.argv[1]); print(e.spec['kwargs']['layout'])")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "stick6", p.stderr


def test_layout_mistakes_are_one_line(tmp_path, capsys, forget_user_layouts):
    _arrays(tmp_path / "src", v=6)
    for layout, words in (("nope17", "unknown layout 'nope17'"), (str(tmp_path / "missing.yaml"), "no such layout file"),
                          ("coco17", "6 joints per body, but layout coco17 has 17")):
        assert cli_main(["prepare", "arrays", str(tmp_path / "src"), "--out", str(tmp_path / "s"), "--layout", layout]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and "\n" not in err and "Traceback" not in err, err
    bad = yaml_dict()
    bad["parents"] = {**bad["parents"], "chest": "hand_left", "hand_left": "chest"}
    import yaml

    (tmp_path / "cycle.yaml").write_text(yaml.safe_dump(bad))
    assert cli_main(["prepare", "arrays", str(tmp_path / "src"), "--out", str(tmp_path / "s"), "--layout", str(tmp_path / "cycle.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cycle" in err and "\n" not in err, err
    assert not (tmp_path / "s").exists()
