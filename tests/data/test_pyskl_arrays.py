"""The interchange formats: PYSKL pickles (safe reading, writing, store export) and generic arrays."""

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.formats import arrays, get_format, pyskl, unit_path
from skelssl.data.protocols import split as protocol_split
from skelssl.data.store import write_store

from conftest import random_store


def _read_all(module, source, **opts):
    disc = module.discover(source, **opts)
    return [s for u in disc.units for s in module.read(u, **opts)]


# -- PYSKL: round trips ----------------------------------------------------------------------------
def test_pyskl_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"S{1 + i:03d}C00{1 + i % 3}P0{10 + i}R002A0{20 + i}" for i in range(5)]
    samples = [(n, rng.normal(size=(int(rng.integers(1, 40)), 2, 25, 3)).astype(np.float32), 19 + i)
               for i, n in enumerate(names)]
    split = {"xsub_train": names[:3], "xsub_val": names[3:], "Weird split-name!": [names[1]]}
    path = tmp_path / "ann.pkl"
    pyskl.write_pyskl(path, samples, split)

    assert get_format("pyskl") is pyskl.READER and pyskl.LAYOUT is None and pyskl.DATASET == "pyskl"
    assert pyskl.dataset_for(dataset="ntu") == "ntu" and pyskl.dataset_for() == "pyskl"
    disc = pyskl.discover(path)
    assert len(disc.units) == 5 and disc.excluded == [] and unit_path(disc.units[0]) == str(path)
    assert pyskl.layout_for(path) == "ntu25"
    got = _read_all(pyskl, tmp_path)  # the folder holding exactly one .pkl works too
    for (name, frames, label), s, i in zip(samples, got, range(5)):
        assert s.name == name and s.label == label and s.bodies.dtype == np.float32
        assert np.array_equal(s.bodies, frames)
        # NTU meta comes from the frame_dir name, so ntu protocols apply with dataset=ntu.
        assert (s.setup, s.view, s.subject, s.repetition) == (1 + i, 1 + i % 3, 10 + i, 2)
        assert s.extra == {
            "split_xsub_train": int(i < 3),
            "split_xsub_val": int(i >= 3),
            "split_weird_split_name": int(i == 1),
        }
    # The file is what PYSKL expects: keypoint (M, T, V, C), total_frames, 0-based label.
    raw = pyskl.safe_loads(path.read_bytes(), path)
    ann = raw["annotations"][0]
    assert ann["keypoint"].shape == (2, len(samples[0][1]), 25, 3) and ann["total_frames"] == len(samples[0][1])
    assert raw["split"]["xsub_train"] == names[:3]


def test_pyskl_store_export_round_trip(tmp_path):
    store = random_store(tmp_path / "store", n=18, persons=2)  # kinect20, N-UCLA-like views 1..3
    path = tmp_path / "out" / "nucla.pkl"
    split = pyskl.write_pyskl_from_store(store, path, ["nucla-xview"])
    train, test = protocol_split(store, "nucla-xview")
    assert set(split) == {"xview_train", "xview_val"}
    assert split["xview_train"] == [str(store.names[i]) for i in train]
    assert split["xview_val"] == [str(store.names[i]) for i in test]

    got = _read_all(pyskl, path, dataset="nucla")
    assert pyskl.layout_for(path) == "kinect20"
    assert len(got) == len(store)
    for i, s in enumerate(got):
        assert s.name == store.names[i] and s.label == store.labels[i]
        assert np.array_equal(s.bodies, store.frames(i))
        assert s.view == store.meta["view"][i] and s.subject == store.meta["subject"][i]
        assert s.extra["split_xview_train"] == int(i in set(train.tolist()))
    # Re-packing what we read gives a store on which the named protocol splits the same way.
    again = write_store(
        tmp_path / "again",
        ((s.name, s.bodies, s.meta()) for s in got),
        "kinect20",
        2,
        info={"dataset": pyskl.dataset_for(dataset="nucla")},
    )
    for a, b in zip(protocol_split(again, "nucla-xview"), (train, test)):
        assert np.array_equal(a, b)
    # Default protocols = every protocol available on the store.
    assert set(pyskl.write_pyskl_from_store(store, tmp_path / "all.pkl")) == {"xview_train", "xview_val"}


def test_pyskl_reads_other_pickle_flavours(tmp_path):
    rng = np.random.default_rng(1)
    kp = rng.normal(size=(1, 6, 20, 3)).astype(np.float32)
    ann = {"frame_dir": "a", "label": np.int64(4), "keypoint": kp, "total_frames": 6,
           "keypoint_score": np.ones((1, 6, 20), np.float16)}
    # numpy 1.x pickles name numpy.core.multiarray; protocol 2 writes the module as plain text.
    legacy = pickle.dumps({"split": {}, "annotations": [ann]}, protocol=2).replace(b"numpy._core.", b"numpy.core.")
    assert b"numpy.core.multiarray" in legacy
    (tmp_path / "legacy.pkl").write_bytes(legacy)
    # Protocol 5 rebuilds arrays through numeric._frombuffer; a bare list is PYSKL's split-less form.
    (tmp_path / "p5.pkl").write_bytes(pickle.dumps([ann], protocol=5))
    for name in ("legacy.pkl", "p5.pkl"):
        (s,) = _read_all(pyskl, tmp_path / name, with_score=True)
        assert s.label == 4 and s.extra == {} and s.bodies.shape == (6, 1, 20, 4)
        assert np.array_equal(s.bodies[..., :3], kp.transpose(1, 0, 2, 3)) and (s.bodies[..., 3] == 1).all()


def test_pyskl_layout_inference_and_duplicates(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "coco.pkl"
    pyskl.write_pyskl(path, [("a", rng.normal(size=(4, 1, 17, 2)), 0)])
    assert pyskl.layout_for(path) == "coco17"  # 17 joints in 2D: every PYSKL 2D release is COCO-17
    pyskl.write_pyskl(tmp_path / "h36m.pkl", [("a", rng.normal(size=(4, 1, 17, 3)), 0)])
    with pytest.raises(SkeletonFormatError, match="--layout"):  # in 3D, 17 joints may be H36M or COCO
        pyskl.layout_for(tmp_path / "h36m.pkl")
    with pytest.raises(SkeletonFormatError, match="coco.pkl.*17 joints.*has 25"):
        _read_all(pyskl, path, layout="ntu25")
    # Duplicate frame_dir: the later annotation is excluded with its reason, not silently merged.
    (tmp_path / "dup.pkl").write_bytes(pickle.dumps([pyskl._annotation("x", rng.normal(size=(3, 1, 25, 3)), 0)] * 2))
    disc = pyskl.discover(tmp_path / "dup.pkl")
    assert len(disc.units) == 1 and "duplicate frame_dir 'x'" in disc.excluded[0][1]
    with pytest.raises(ValueError, match="not written"):
        pyskl.write_pyskl(tmp_path / "bad.pkl", [("a", rng.normal(size=(3, 1, 25, 3)), 0)], {"train": ["zz"]})
    (tmp_path / "two").mkdir()
    for n in ("a.pkl", "b.pkl"):
        (tmp_path / "two" / n).write_bytes(path.read_bytes())
    with pytest.raises(SkeletonFormatError, match="exactly one .pkl.*found 2"):
        pyskl.discover(tmp_path / "two")


# -- PYSKL: safety ---------------------------------------------------------------------------------
class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("how", ["os.system", "builtins.exec", "nested"])
def test_pyskl_refuses_code_in_pickle(tmp_path, how):
    marker = tmp_path / "pwned"
    if how == "os.system":
        payload = _Evil(os.system, f"touch {marker}")
    elif how == "builtins.exec":
        payload = _Evil(exec, f"open({str(marker)!r}, 'w').close()")
    else:  # hidden inside an otherwise valid annotation file
        payload = {"split": {}, "annotations": [{"frame_dir": "a", "label": 0, "keypoint": np.zeros((1, 2, 25, 3)),
                                                "total_frames": 2, "extra": _Evil(os.system, f"touch {marker}")}]}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(SkeletonFormatError, match=r"evil\.pkl.*refused"):
        pyskl.discover(path)
    assert not marker.exists()
    # The unpickler itself, with the old text-GLOBAL opcode too.
    with pytest.raises(SkeletonFormatError, match="refused"):
        pyskl.safe_loads(pickle.dumps(payload, protocol=0), path)
    assert not marker.exists()


def test_pyskl_refuses_codecs_other_than_latin1(tmp_path):
    # _codecs.encode is allowed only for the latin1 bytes encoding protocol 2 uses.
    data = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x05\x00\x00\x00rot13q\x02\x86q\x03Rq\x04."
    with pytest.raises(SkeletonFormatError, match="rot13"):
        pyskl.safe_loads(data, tmp_path / "c.pkl")


# -- PYSKL: malformed input ------------------------------------------------------------------------
def _good_bytes(rng):
    frames = rng.normal(size=(5, 2, 25, 3)).astype(np.float32)
    ann = pyskl._annotation("S001C001P001R001A001", frames, 0)
    return pickle.dumps({"split": {"xsub_train": ["S001C001P001R001A001"]}, "annotations": [ann]}, protocol=4)


def test_pyskl_fuzzed_files_raise_format_error(tmp_path):
    rng = np.random.default_rng(3)
    good = _good_bytes(rng)
    cases = {"empty.pkl": b"", "trunc_a.pkl": good[:1], "trunc_b.pkl": good[: len(good) // 2], "trunc_c.pkl": good[:-1]}
    for k in range(12):
        cases[f"garbage{k}.pkl"] = rng.integers(0, 256, int(rng.integers(1, 300))).astype(np.uint8).tobytes()
    cases["int.pkl"] = pickle.dumps(7)
    cases["nokey.pkl"] = pickle.dumps({"split": {}})
    cases["annstr.pkl"] = pickle.dumps({"annotations": "x"})
    cases["splitbad.pkl"] = pickle.dumps({"split": {"a": [1, 2]}, "annotations": []})
    cases["emptyann.pkl"] = pickle.dumps({"split": {}, "annotations": []})
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SkeletonFormatError) as err:
            _read_all(pyskl, tmp_path / name)
        assert name in str(err.value), (name, str(err.value))


def test_pyskl_bad_annotation_fails_alone(tmp_path):
    kp = np.random.default_rng(4).normal(size=(1, 4, 25, 3)).astype(np.float32)
    nan = kp.copy()
    nan[0, 2, 3, 1] = np.nan
    good = {"frame_dir": "ok", "label": 1, "keypoint": kp, "total_frames": 4}
    bad = [
        ({**good, "frame_dir": "nan", "keypoint": nan}, "NaN"),
        ({**good, "frame_dir": "ndim", "keypoint": kp[0]}, r"\(M, T, V, C\)"),
        ({**good, "frame_dir": "tf", "total_frames": 9}, "total_frames 9"),
        ({**good, "frame_dir": "lab", "label": "walk"}, "not an integer"),
        ({k: v for k, v in good.items() if k != "keypoint"} | {"frame_dir": "nokp"}, "no 'keypoint'"),
        ({**good, "frame_dir": "empty", "keypoint": np.zeros((1, 0, 25, 3))}, "empty"),
        ({**good, "frame_dir": "v", "keypoint": np.zeros((1, 4, 13, 3))}, "--layout"),
        ("not a dict", "expected a dict"),
    ]
    path = tmp_path / "mixed.pkl"
    path.write_bytes(pickle.dumps({"split": {}, "annotations": [good] + [b for b, _ in bad]}))
    units = pyskl.discover(path).units
    assert len(units) == len(bad) + 1
    (s,) = pyskl.read(units[0])
    assert s.name == "ok" and np.array_equal(s.bodies, kp.transpose(1, 0, 2, 3))
    for unit, (_, problem) in zip(units[1:], bad):
        with pytest.raises(SkeletonFormatError, match=rf"mixed\.pkl.*annotation {unit[1]}.*{problem}"):
            pyskl.read(unit)
    with pytest.raises(SkeletonFormatError, match="does not exist"):
        pyskl.read((str(path), 99))
    with pytest.raises(SkeletonFormatError, match="no such file"):
        pyskl.discover(tmp_path / "missing.pkl")


# -- arrays ----------------------------------------------------------------------------------------
def _padded(rng, lengths, m, v, t_max=30):
    x = np.zeros((len(lengths), t_max, m, v, 3), np.float32)  # (N, T, M, V, C)
    for i, t in enumerate(lengths):
        x[i, :t] = rng.normal(size=(t, m, v, 3))
    x[0, : lengths[0] - 1, 1:] = 0  # a 2nd person who appears only in the last frame
    if len(lengths) > 2:
        x[2, 3] = 0  # an all-zero frame inside a sequence is kept; only trailing padding is cut
    return x


def test_arrays_folder_nctvm(tmp_path):
    rng = np.random.default_rng(5)
    lengths = [7, 30, 12, 1]
    x = _padded(rng, lengths, 2, 25)
    np.save(tmp_path / "data.npy", x.transpose(0, 4, 1, 3, 2))  # (N, C, T, V, M), the ST-GCN layout
    (tmp_path / "labels.txt").write_text("3\n0\n59\n2\n\n")
    (tmp_path / "names.txt").write_text("\n".join(f"S001C002P003R001A{i + 1:03d}" for i in range(4)) + "\n")
    assert get_format("arrays") is arrays.READER and arrays.LAYOUT is None and arrays.DATASET == "arrays"
    assert arrays.layout_for(tmp_path) == "ntu25"
    got = _read_all(arrays, tmp_path)
    assert [s.label for s in got] == [3, 0, 59, 2]
    for i, s in enumerate(got):
        assert s.name == f"S001C002P003R001A{i + 1:03d}" and (s.setup, s.view, s.subject) == (1, 2, 3)
        assert np.array_equal(s.bodies, x[i, : lengths[i]]) and s.bodies.dtype == np.float32


def test_arrays_folder_ntvc_and_ntmvc(tmp_path):
    rng = np.random.default_rng(6)
    x = _padded(rng, [5, 9, 6], 2, 20)
    lengths = np.array([3, 9, 6])  # lengths.npy wins over zero trimming (sample 0 ends early)
    for axes, data in (("NTVC", x[:, :, 0]), ("NTMVC", x)):
        d = tmp_path / axes
        d.mkdir()
        np.save(d / "data.npy", data)
        np.save(d / "labels.npy", np.eye(4, dtype=np.float32)[[1, 3, 0]])  # one-hot
        np.save(d / "lengths.npy", lengths)
        got = _read_all(arrays, d, axes=axes.lower())
        assert [s.label for s in got] == [1, 3, 0]
        assert [s.name for s in got] == ["sample_000000", "sample_000001", "sample_000002"]
        for i, s in enumerate(got):
            want = x[i, : lengths[i]] if axes == "NTMVC" else x[i, : lengths[i], :1]
            assert np.array_equal(s.bodies, want)
        assert arrays.layout_for(d, axes=axes) == "kinect20"


@pytest.mark.parametrize("compressed", [False, True])
def test_arrays_npz_ctrgcn(tmp_path, compressed):
    rng = np.random.default_rng(7)
    xtr, xte = _padded(rng, [4, 30, 8], 2, 25), _padded(rng, [10, 2, 5], 2, 25)
    flat = lambda x: x.reshape(len(x), x.shape[1], -1)  # (N, T, M*V*C): person, joint, xyz = 150
    path = tmp_path / "NTU60_XSub.npz"
    (np.savez_compressed if compressed else np.savez)(
        path, x_train=flat(xtr), y_train=np.eye(60)[[5, 0, 59]], x_test=flat(xte), y_test=np.array([1, 2, 3])
    )
    src = arrays._open(path, {})
    assert isinstance(src.parts["train"].x, np.memmap) != compressed  # np.savez output is memory-mapped
    got = _read_all(arrays, path, dataset="ntu")
    assert [s.label for s in got] == [5, 0, 59, 1, 2, 3]
    assert [s.extra["split_train"] for s in got] == [1, 1, 1, 0, 0, 0]
    assert [s.name for s in got[:1] + got[3:4]] == ["train_000000", "test_000000"]
    for s, want, t in zip(got, list(xtr) + list(xte), [4, 30, 8, 10, 2, 5]):
        assert np.array_equal(s.bodies, want[:t])


def test_arrays_bad_inputs(tmp_path):
    rng = np.random.default_rng(8)
    x = _padded(rng, [4, 5], 1, 25).transpose(0, 4, 1, 3, 2)  # (N, C, T, V, M)

    def folder(name, data=x, labels="1\n2\n", **files):
        d = tmp_path / name
        d.mkdir()
        if data is not None:
            np.save(d / "data.npy", data, allow_pickle=True)
        if labels is not None:
            (d / "labels.txt").write_text(labels)
        for fname, content in files.items():
            fname = fname.replace("_", ".", 1)
            np.save(d / fname, content) if fname.endswith(".npy") else (d / fname).write_text(content)
        return d

    nan = x.copy()
    nan[1, 0, 2, 3, 0] = np.nan
    cases = [
        (folder("count", labels="1\n"), "1 labels for 2 samples"),
        (folder("nolabel", labels=None), "no label file"),
        (folder("textlabel", labels="1\nwalk\n"), "line 2"),
        (folder("shape", data=x[:, 0]), "does not match axes"),
        (folder("names", names_txt="a\nb\nc\n"), "3 names for 2"),
        (folder("dupnames", names_txt="a\na\n"), "not unique"),
        (folder("lengths", lengths_npy=np.array([4, 99])), "1..30"),
        (folder("nodata", data=None), "no data.npy"),
        (folder("object", data=np.array([{"a": 1}, None], dtype=object)), "not a readable .npy"),
        (folder("onehot", labels=None, labels_npy=np.array([[1, 1], [0, 1]])), "not one-hot"),
        (folder("v17", data=np.ones((2, 3, 4, 17, 1))), "--layout"),
        (tmp_path / "missing", "no such file"),
    ]
    (folder("garbage", data=None) / "data.npy").write_bytes(b"\x93NUMPY garbage")
    cases.append((tmp_path / "garbage", "not a readable .npy"))
    for source, problem in cases:
        with pytest.raises(SkeletonFormatError, match=problem) as err:
            arrays.discover(source)
        assert source.name in str(err.value)
    # Per-sample problems fail in read, naming the file and the sample; the other samples survive.
    d = folder("nan", data=nan)
    units = arrays.discover(d).units
    assert arrays.read(units[0])[0].num_frames == 4
    with pytest.raises(SkeletonFormatError, match=r"nan.*data\[1\] holds NaN"):
        arrays.read(units[1])
    zero = x.copy()
    zero[0] = 0
    with pytest.raises(SkeletonFormatError, match=r"data\[0\] is all zeros"):
        arrays.read(arrays.discover(folder("zero", data=zero)).units[0])

    # .npz problems: missing key, wrong flat width, garbage bytes, a plain file that is no .npz.
    np.savez(tmp_path / "nokey.npz", x_train=np.ones((2, 3, 150)), y_train=np.array([0, 1]))
    np.savez(tmp_path / "width.npz", x_train=np.ones((2, 3, 151)), y_train=np.array([0, 1]),
             x_test=np.ones((1, 3, 151)), y_test=np.array([0]))
    np.savez(tmp_path / "ycount.npz", x_train=np.ones((2, 3, 150)), y_train=np.array([0]),
             x_test=np.ones((1, 3, 150)), y_test=np.array([0]))
    (tmp_path / "junk.npz").write_bytes(rng.integers(0, 256, 200).astype(np.uint8).tobytes())
    (tmp_path / "a.json").write_text(json.dumps([1]))
    for name, problem in [("nokey.npz", "no 'x_test'"), ("width.npz", "persons=2"), ("ycount.npz", "1 labels in y_train for 2"),
                          ("junk.npz", "not a readable .npz"), ("a.json", "expected a folder")]:
        with pytest.raises(SkeletonFormatError, match=problem) as err:
            arrays.discover(tmp_path / name)
        assert name in str(err.value)
    # A truncated uncompressed .npz member is caught before it is memory-mapped past the end.
    np.savez(tmp_path / "t.npz", x_train=np.ones((2, 3, 150)), y_train=np.array([0, 1]),
             x_test=np.ones((1, 3, 150)), y_test=np.array([0]))
    with zipfile.ZipFile(tmp_path / "t.npz") as zf:
        offset = zf.getinfo("x_train.npy").header_offset
    (tmp_path / "t2.npz").write_bytes((tmp_path / "t.npz").read_bytes()[: offset + 200])
    with pytest.raises(SkeletonFormatError, match="t2.npz"):
        arrays.discover(tmp_path / "t2.npz")


@pytest.mark.realdata
def test_pyskl_real_nucla_round_trip(tmp_path, shared_data):
    files = sorted((shared_data / "nw_ucla" / "all_sqe").glob("*.json"))[:6]
    if not files:
        pytest.skip("no N-UCLA json files under ../shared/data/nw_ucla/all_sqe")
    samples = []
    for f in files:
        d = json.loads(f.read_text())
        frames = np.asarray(d["skeletons"], np.float32)[:, None]  # (T, 1, 20, 3)
        samples.append((f.stem, frames, int(d["label"]) - 1))
    path = tmp_path / "nucla.pkl"
    pyskl.write_pyskl(path, samples, {"view1": [n for n, _, _ in samples if n.endswith("v01")]})
    got = _read_all(pyskl, path, dataset="nucla")
    assert pyskl.layout_for(path) == "kinect20"
    for (name, frames, label), s in zip(samples, got):
        assert s.name == name and s.label == label and np.array_equal(s.bodies, frames)
        assert s.extra["split_view1"] == int(name.endswith("v01"))
