"""``skelssl export ctrgcn-npz``: a store's protocol as CTR-GCN / MAMP's ``.npz`` (``x_train (N, T,
M*V*C)`` zero-padded to 300 frames, ``y_train`` one-hot, ``x_test``, ``y_test``, as ``NTU60_CS.npz``),
which ``prepare arrays`` reads back to the same frames and labels."""

from __future__ import annotations

import numpy as np
import pytest

from skelssl.cli import main as cli_main
from skelssl.data.protocols import split
from skelssl.data.store import Store, write_store

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def ntu_store(tmp_path):
    rng = np.random.default_rng(0)

    def samples():
        for i in range(10):
            subject = (1, 3, 2, 6)[i % 4]  # 1, 2 train; 3, 6 test (NTU-60 cross-subject)
            frames = rng.normal(size=(int(rng.integers(20, 40)), 2, 25, 3)).astype(np.float32)
            frames[:, 1] *= i % 2  # every other clip has one actor
            yield f"S001C001P{subject:03d}R001A{1 + i % 3:03d}", frames, {"label": i % 3, "subject": subject, "setup": 1, "view": 1}

    return write_store(tmp_path / "ntu", samples(), "ntu25", 2, info={"dataset": "ntu"})


def test_ctrgcn_npz_layout_and_round_trip(ntu_store, tmp_path):
    out = tmp_path / "NTU60_CS.npz"
    assert cli_main(["export", "ctrgcn-npz", str(ntu_store.path), "--protocol", "ntu60-xsub", "--out", str(out)]) == 0
    train, test = split(ntu_store, "ntu60-xsub")
    with np.load(out) as z:
        assert set(z.files) == {"x_train", "y_train", "x_test", "y_test"}
        assert z["x_train"].shape == (len(train), 300, 2 * 25 * 3) and z["x_test"].shape == (len(test), 300, 150)
        assert z["y_train"].shape == (len(train), 3) and (z["y_train"].sum(1) == 1).all()
        np.testing.assert_array_equal(z["y_test"].argmax(1), ntu_store.labels[test])
        first = ntu_store.frames(int(train[0]))  # (T, M, V, C): persons outer, then joints, then xyz
        np.testing.assert_array_equal(z["x_train"][0, : len(first)], first.reshape(len(first), -1))
        assert not z["x_train"][0, len(first):].any()
    assert cli_main(["prepare", "arrays", str(out), "--out", str(tmp_path / "back")]) == 0
    back = Store(tmp_path / "back")
    order = np.concatenate([train, test])
    assert len(back) == len(order)
    for j, i in enumerate(order):
        np.testing.assert_array_equal(back.frames(j), ntu_store.frames(int(i)))
    np.testing.assert_array_equal(back.labels, ntu_store.labels[order])
    np.testing.assert_array_equal(back.meta["split_train"], np.r_[np.ones(len(train)), np.zeros(len(test))])


def test_ctrgcn_npz_mistakes_are_one_line(ntu_store, tmp_path, capsys):
    for extra, words in (([], "--protocol"), (["--protocol", "nucla-xview"], "nucla")):
        rc = cli_main(["export", "ctrgcn-npz", str(ntu_store.path), "--out", str(tmp_path / "x.npz"), *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and words in err and "\n" not in err, err
    assert not (tmp_path / "x.npz").exists()
