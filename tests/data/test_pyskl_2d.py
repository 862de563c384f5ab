"""A COCO-17 2D + score pickle in PYSKL's own format, as pose estimators ship it: prepared without
flags (coco17, pixels to [-1, 1] by img_shape, y up, score a named channel), its own split dict as
protocols for eval and embed, and report never pairing it with a paper's number."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from skelssl.cli import main as cli_main
from skelssl.data.protocols import available_protocols, own_protocols, split
from skelssl.data.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 480, 640


def _coco_pickle(path, n: int = 24, seed: int = 0):
    """PYSKL's format (ntu60_2d.pkl): float16 keypoints in pixels, keypoint_score, img_shape, split."""
    rng = np.random.default_rng(seed)
    anns = []
    for i in range(n):
        t = int(rng.integers(10, 20))
        kp = np.stack([rng.uniform(100, 540, size=(1, t, 17)), rng.uniform(50, 430, size=(1, t, 17))], -1)
        anns.append({"frame_dir": f"clip{i:03d}", "label": i % 3, "img_shape": (H, W), "original_shape": (H, W),
                     "total_frames": t, "keypoint": kp.astype(np.float16),
                     "keypoint_score": rng.uniform(0.2, 1.0, size=(1, t, 17)).astype(np.float16)})
    names = [a["frame_dir"] for a in anns]
    split_dict = {"xsub_train": names[: 2 * n // 3], "xsub_val": names[2 * n // 3:]}
    path.write_bytes(pickle.dumps({"split": split_dict, "annotations": anns}, protocol=4))
    return anns, split_dict


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco2d")
    anns, split_dict = _coco_pickle(root / "coco_2d.pkl")
    assert cli_main(["prepare", "pyskl", str(root / "coco_2d.pkl"), "--out", str(root / "store")]) == 0
    return root, anns, split_dict, Store(root / "store")


def test_prepared_without_flags_as_coco17_2d_with_score(coco):
    _, anns, _, store = coco
    assert store.layout.name == "coco17" and store.channels == 3 and store.channel_names == ["x", "y", "score"]
    a = anns[5]
    frames = store.frames(store.index_of(a["frame_dir"]))  # (T, M, V, C); M = 2 slots, one person here
    assert store.num_persons == 2 and not frames[:, 1].any()
    frames = frames[:, :1]
    kp = a["keypoint"].astype(np.float32).transpose(1, 0, 2, 3)  # (T, M, V, 2) pixels
    np.testing.assert_allclose(frames[..., 0], (kp[..., 0] - W / 2) / (W / 2), rtol=1e-6)
    np.testing.assert_allclose(frames[..., 1], -(kp[..., 1] - H / 2) / (H / 2), rtol=1e-6)  # y up
    np.testing.assert_array_equal(frames[..., 2], a["keypoint_score"].astype(np.float32).transpose(1, 0, 2))
    assert np.abs(frames[..., :2]).max() <= 1.0


def test_the_pickles_own_split_is_a_protocol(coco, capsys):
    _, _, split_dict, store = coco
    assert own_protocols(store) == {"xsub": ("split_xsub_train", "split_xsub_val")}
    assert available_protocols(store) == ["xsub"]
    train, test = split(store, "xsub")
    assert [str(store.names[i]) for i in train] == split_dict["xsub_train"]
    assert [str(store.names[i]) for i in test] == split_dict["xsub_val"]
    assert cli_main(["info", str(store.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["protocols"] == {"xsub": {"train": 16, "test": 8}} and info["layout"] == "coco17"
    with pytest.raises(KeyError, match="this store's own splits: xsub"):
        split(store, "xview")


def test_pretrain_eval_and_embed_on_the_own_split_and_no_paper_number(coco, tmp_path, capsys):
    root, _, _, store = coco
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
data: {{store: {store.path}, protocol: xsub, batch_size: 8, max_frames: 30}}
encoder: {{name: stgcn, kwargs: {{channels: [8], strides: [1], temporal_kernel: 3}}}}
method: {{name: simclr, kwargs: {{frames: 8, hidden_dim: 8, proj_dim: 4}}}}
trainer: {{epochs: 1, accelerator: cpu, progress: false}}
monitor: {{every_epochs: 0}}
eval: {{knn: {{ks: [1, 5]}}, probe: {{cs: [1.0], folds: 2}}, baselines: {{raw_input: false, random_init: false}}}}
""")
    assert cli_main(["pretrain", str(recipe), "--out", str(tmp_path / "run")]) == 0
    assert cli_main(["eval", "knn", str(tmp_path / "run"), "--protocol", "xsub"]) == 0
    assert "knn xsub" in capsys.readouterr().out
    assert cli_main(["eval", "linear", str(tmp_path / "run"), "--protocol", "xsub"]) == 0
    assert "linear xsub" in capsys.readouterr().out
    assert cli_main(["embed", str(tmp_path / "run"), "--protocol", "xsub", "--out", str(tmp_path / "z.npz"), "--device", "cpu"]) == 0
    with np.load(tmp_path / "z.npz") as z:
        assert z["features"].shape[0] == 8 and z["names"].tolist() == [str(n) for n in store.names[split(store, "xsub")[1]]]
    results = json.loads((tmp_path / "run" / "eval" / "knn-xsub" / "results.json").read_text())
    assert results["store_dataset"] == "pyskl" and results["store_classes"] == 3
    capsys.readouterr()
    assert cli_main(["report", str(tmp_path / "run")]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("|") and "| xsub |" in line]
    assert rows and all(row.split("|")[-2].strip() == "" for row in rows), rows  # the published column is empty


def test_a_toy_read_as_ntu_gets_no_published_number():
    from skelssl.evaluation.published import is_papers_data

    assert not is_papers_data("ntu60-xsub", "ntu", 4, "pyskl")  # 4 classes are not NTU-60's 60
    assert is_papers_data("ntu60-xsub", "ntu", 60, "ntu")
    assert not is_papers_data("xsub", "pyskl", 60, "pyskl")  # a store's own split is no paper's protocol


def test_2d_mistakes_are_one_line(coco, tmp_path, capsys):
    root = coco[0]
    for extra, words in ((["--pipeline", "agcn"], "pipeline agcn works on 3D (x, y, z) skeletons"),
                         (["--layout", "ntu25"], "17 joints per body, but layout ntu25 has 25"),
                         (["--layout", "h36m17", "--pipeline", "ctrgcn"], "works on 3D")):
        rc = cli_main(["prepare", "pyskl", str(root / "coco_2d.pkl"), "--out", str(tmp_path / "s"), *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and words in err and "\n" not in err and "Traceback" not in err, err
    assert not (tmp_path / "s").exists()
