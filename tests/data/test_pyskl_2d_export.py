"""export pyskl of a 2D store that came from pixels writes pixels back, with img_shape, as PYSKL's own
PreNormalize2D expects (y pointing down); prepare pyskl of that file still gives the store back bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from skelssl.cli import main as cli_main
from skelssl.data.formats.pyskl import safe_loads, to_pixels
from skelssl.data.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


def _pickle(path, seed: int = 0):
    """PYSKL's shipped format: float16 pixels, 1 or 2 persons, two image sizes, a split."""
    rng = np.random.default_rng(seed)
    anns = []
    for i in range(9):
        t, m = int(rng.integers(8, 16)), 1 + (i % 3 == 0)
        h, w = ((1080, 1920), (480, 640))[i % 2]
        kp = np.stack([rng.uniform(0, w, size=(m, t, 17)), rng.uniform(0, h, size=(m, t, 17))], -1)
        anns.append({"frame_dir": f"clip{i:03d}", "label": i % 3, "img_shape": (h, w), "original_shape": (h, w),
                     "total_frames": t, "keypoint": kp.astype(np.float16),
                     "keypoint_score": rng.uniform(0.2, 1.0, size=(m, t, 17)).astype(np.float16)})
    names = [a["frame_dir"] for a in anns]
    path.write_bytes(pickle.dumps({"split": {"xsub_train": names[:6], "xsub_val": names[6:]}, "annotations": anns}, protocol=4))
    return anns


def test_export_writes_pixels_with_img_shape_and_round_trips(tmp_path):
    original = _pickle(tmp_path / "in.pkl")
    assert cli_main(["prepare", "pyskl", str(tmp_path / "in.pkl"), "--out", str(tmp_path / "a")]) == 0
    a = Store(tmp_path / "a")
    assert a.num_persons == 2 and a.channel_names == ["x", "y", "score"]
    assert cli_main(["export", "pyskl", str(tmp_path / "a"), "--out", str(tmp_path / "out.pkl")]) == 0
    exported = {x["frame_dir"]: x for x in safe_loads((tmp_path / "out.pkl").read_bytes())["annotations"]}
    for ann in original:
        got = exported[ann["frame_dir"]]
        assert tuple(got["img_shape"]) == tuple(ann["img_shape"])
        assert got["keypoint"].shape == ann["keypoint"].shape  # the store's empty second slot is no person
        # the original pixels (y down), to the float16 rounding of the original file
        np.testing.assert_allclose(got["keypoint"], ann["keypoint"].astype(np.float32), rtol=1e-3, atol=1e-2)
        np.testing.assert_array_equal(got["keypoint"].astype(np.float16), ann["keypoint"])
        np.testing.assert_array_equal(got["keypoint_score"], ann["keypoint_score"].astype(np.float32))
    # PYSKL's PreNormalize2D on the export gives the store's coordinates (y turned up)
    i = a.index_of("clip001")
    got = exported["clip001"]
    h, w = got["img_shape"]
    norm = (got["keypoint"] - np.array([w / 2, h / 2], np.float32)) / np.array([w / 2, h / 2], np.float32)
    np.testing.assert_array_equal(norm.transpose(1, 0, 2, 3) * np.array([1, -1], np.float32), np.asarray(a.frames(i))[:, :1, :, :2])
    # and prepare pyskl of the export is the same store, bit for bit
    assert cli_main(["prepare", "pyskl", str(tmp_path / "out.pkl"), "--out", str(tmp_path / "b")]) == 0
    b = Store(tmp_path / "b")
    assert np.asarray(b.frames_array).tobytes() == np.asarray(a.frames_array).tobytes() or np.array_equal(
        np.asarray(b.frames_array), np.asarray(a.frames_array))
    np.testing.assert_array_equal(b.index, a.index)
    for col in ("img_height", "img_width", "label"):
        np.testing.assert_array_equal(b.meta[col], a.meta[col], err_msg=col)
    # a second export of the re-imported store is the same file content
    assert cli_main(["export", "pyskl", str(tmp_path / "b"), "--out", str(tmp_path / "again.pkl")]) == 0
    again = {x["frame_dir"]: x for x in safe_loads((tmp_path / "again.pkl").read_bytes())["annotations"]}
    for name, ann in exported.items():
        np.testing.assert_array_equal(again[name]["keypoint"], ann["keypoint"])


def test_to_pixels_inverts_the_readers_normalisation_exactly():
    rng = np.random.default_rng(3)
    for h, w in ((1080, 1920), (480, 640), (361, 997)):
        pixels = np.stack([rng.uniform(-50, w + 50, 20000), rng.uniform(-50, h + 50, 20000)], -1).astype(np.float32)
        half = np.array([w / 2, h / 2], np.float32)
        norm = (pixels - half) / half  # as the reader computes it
        back = to_pixels(norm, h, w)
        np.testing.assert_array_equal((back - half) / half, norm)
        np.testing.assert_allclose(back, pixels, rtol=1e-6, atol=1e-3)


def test_a_2d_store_without_image_size_keeps_normalised_coordinates(tmp_path):
    anns = _pickle(tmp_path / "in.pkl")
    assert cli_main(["prepare", "pyskl", str(tmp_path / "in.pkl"), "--out", str(tmp_path / "a"), "-o", "normalize=false"]) == 0
    # normalize=false keeps pixels (y up) and records no image size: the export only turns y down again
    assert "img_height" not in Store(tmp_path / "a").meta
    assert cli_main(["export", "pyskl", str(tmp_path / "a"), "--out", str(tmp_path / "out.pkl")]) == 0
    got = safe_loads((tmp_path / "out.pkl").read_bytes())["annotations"][1]
    assert "img_shape" not in got
    np.testing.assert_array_equal(got["keypoint"][:1], anns[1]["keypoint"].astype(np.float32))
