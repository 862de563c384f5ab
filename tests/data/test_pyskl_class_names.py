"""``prepare pyskl -o class_names=FILE``: a label map (one name per line, PYSKL's label_map/*.txt) gives
the store its class names and class count; mistakes are one line."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from skelssl.cli import main as cli_main
from skelssl.data.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def pkl(tmp_path):
    rng = np.random.default_rng(0)
    anns = [{"frame_dir": f"v{i}", "label": i % 2, "img_shape": (480, 640), "total_frames": 6,
             "keypoint": rng.uniform(0, 400, size=(1, 6, 17, 2)).astype(np.float32),
             "keypoint_score": rng.uniform(0, 1, size=(1, 6, 17)).astype(np.float32)} for i in range(4)]
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps({"split": {}, "annotations": anns}))
    return path


def test_a_label_map_names_the_classes_and_sets_their_count(pkl, tmp_path):
    names = tmp_path / "label_map.txt"
    names.write_text("drink water\nwave\nclap\n\n")  # three classes, the last never used here
    assert cli_main(["prepare", "pyskl", str(pkl), "--out", str(tmp_path / "s"), "-o", f"class_names={names}"]) == 0
    store = Store(tmp_path / "s")
    assert store.class_names == ["drink water", "wave", "clap"] and store.num_classes == 3
    # and the names survive export + prepare without the option
    assert cli_main(["export", "pyskl", str(store.path), "--out", str(tmp_path / "b.pkl")]) == 0
    assert cli_main(["prepare", "pyskl", str(tmp_path / "b.pkl"), "--out", str(tmp_path / "s2")]) == 0
    assert Store(tmp_path / "s2").class_names == ["drink water", "wave", "clap"]


def test_label_map_mistakes_are_one_line(pkl, tmp_path, capsys):
    short = tmp_path / "one.txt"
    short.write_text("only\n")
    for path, words in ((short, "1 class names, but the labels go up to 1"), (tmp_path / "none.txt", "none.txt")):
        rc = cli_main(["prepare", "pyskl", str(pkl), "--out", str(tmp_path / "s"), "-o", f"class_names={path}"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and words in err and "\n" not in err and "Traceback" not in err, err
        assert not (tmp_path / "s").exists()
