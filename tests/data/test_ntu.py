"""NTU RGB+D ``.skeleton`` reader and writer.

Real files (``../shared/data/ntu_rgbd_samples``, skipped when absent): frame and body counts from its
SOURCE.md, metadata from the names, CRLF and LF, values bit-identical to ``float()``. Synthetic files:
write/read round trip, body slots, the exclusion list, and malformed input, which must always raise
``SkeletonFormatError`` naming the file (never another exception type, never hang).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.formats import get_format, ntu

pytestmark = pytest.mark.timeout(60)

# SOURCE.md of ntu_rgbd_samples: name -> (frames, bodies).
EXPECTED = {
    "S001C001P001R001A001": (103, 1), "S002C001P003R001A003": (100, 1), "S004C002P003R001A017": (124, 1),
    "S003C001P015R001A034": (71, 1), "S001C001P001R001A050": (74, 2), "S017C003P020R002A054": (42, 2),
    "S017C003P020R002A055": (66, 2), "S017C003P020R002A056": (80, 2), "S017C003P020R002A058": (65, 2),
}


def _compiled_or_skip():
    if ntu._compiled_scan() is None:
        pytest.skip("numba (the [fast] extra) is not installed, or SKELSSL_NUMBA=0")
    return ntu._read_compiled


@pytest.fixture(params=["numpy", "compiled"])
def fast_reader(request):
    """Each fast reader (``(data, cols, max_bodies) -> parsed or None``): the numpy one, the compiled one."""
    return ntu._read_regular if request.param == "numpy" else _compiled_or_skip()


@pytest.fixture(scope="module")
def ntu_dir(shared_data: Path) -> Path:
    folder = shared_data / "ntu_rgbd_samples"
    if not folder.is_dir():
        pytest.skip(f"NTU sample files not found at {folder}")
    return folder


def _naive(path: Path) -> list[list[list[float]]]:
    """The official read_skeleton grammar, one float() per value: frames -> bodies -> 25 x 12 rows."""
    lines = path.read_text().splitlines()
    i, frames = 1, []
    for _ in range(int(lines[0])):
        nb = int(lines[i])
        i += 1
        bodies = []
        for _ in range(nb):
            bodies.append([[float(v) for v in lines[i + 2 + j].split()] for j in range(25)])
            i += 27
        frames.append(bodies)
    return frames


def _random_bodies(rng: np.random.Generator, frames: int, slots: int) -> np.ndarray:
    """Random-walk skeletons about 3 m in front of the camera, (T, B, 25, 3) float32."""
    base = rng.normal(0, 0.3, size=(1, slots, 25, 3)) + np.array([0.0, 0.0, 3.0])
    walk = np.cumsum(rng.normal(0, 0.01, size=(frames, slots, 25, 3)), axis=0)
    return (base + walk).astype(np.float32)


def _text_of(bodies: np.ndarray, crlf: bool) -> str:
    """The text write_skeleton_file writes for ``bodies``."""
    with tempfile.TemporaryDirectory() as d:
        return ntu.write_skeleton_file(Path(d) / "a.skeleton", bodies, crlf=crlf).read_bytes().decode()


# -- real files ------------------------------------------------------------------------------------
def test_module_contract():
    assert get_format("ntu") is ntu.READER
    assert (ntu.NAME, ntu.LAYOUT, ntu.DATASET) == ("ntu", "ntu25", "ntu")


def test_real_files_counts_meta_and_body_ids(ntu_dir: Path):
    disc = ntu.discover(ntu_dir)
    assert sorted(p.stem for p in disc.units) == sorted(EXPECTED)
    assert disc.excluded == []
    for path in disc.units:
        [s] = ntu.read(path)
        frames, bodies = EXPECTED[s.name]
        assert s.bodies.shape == (frames, bodies, 25, 3) and s.bodies.dtype == np.float32
        assert s.num_frames == frames
        assert int((s.body_ids >= 0).sum(axis=1).max()) == bodies
        meta = ntu.parse_sample_name(s.name)
        assert (s.setup, s.view, s.subject, s.repetition, s.label) == (
            meta["setup"], meta["view"], meta["subject"], meta["repetition"], meta["label"])
        assert s.label == int(s.name[-3:]) - 1 and s.source == str(path)
        present = s.body_ids >= 0
        assert np.isfinite(s.bodies).all() and np.all(s.bodies[~present] == 0)
        z = s.bodies[present][..., 2]
        assert 0.5 < z[z != 0].min() and z.max() < 6.0  # camera-space metres in front of a Kinect
        # The first body id, exactly as written (ids exceed 2**53; a float parse would change them).
        first_id = int(path.read_text().splitlines()[2].split()[0])
        assert first_id > 2**53 and s.body_ids[0, 0] == first_id
    s = ntu.read(ntu_dir / "S017C003P020R002A054.skeleton")[0]
    assert (s.setup, s.view, s.subject, s.repetition, s.label) == (17, 3, 20, 2, 53)


def test_real_values_bit_identical_to_float(ntu_dir: Path):
    """All 12 columns of every file equal float() of the text (E-notation tokens included)."""
    for path in sorted(ntu_dir.glob("*.skeleton")):
        [s] = ntu.read(path, fields=ntu.JOINT_FIELDS)
        ref = np.zeros(s.bodies.shape, dtype=np.float64)
        for t, bodies in enumerate(_naive(path)):
            for m, rows in enumerate(bodies):
                ref[t, m] = rows
        assert np.array_equal(s.bodies, ref.astype(np.float32)), path.name
    # Every reader, and in float64 (not only after the float32 cast).
    path = ntu_dir / "S001C001P001R001A050.skeleton"
    data, cols = path.read_bytes(), np.arange(12)
    ref = np.array([[float(v) for v in ln.split()] for ln in data.splitlines() if len(ln.split()) == 12])
    assert np.array_equal(ntu._read_checked(data, path, cols, 4)[3], ref)
    readers = [ntu._read_regular] + ([ntu._read_compiled] if ntu._compiled_scan() else [])
    for reader in readers:
        fast = reader(data, cols, 4)
        assert fast is not None, reader  # a real file takes the fast path
        assert np.array_equal(fast[3], ref), reader


def test_every_parser_gives_the_same_samples(ntu_dir: Path):
    """``parser=`` auto / compiled / numpy / checked: identical bodies and ids on the real files, for
    x, y, z and for other field choices."""
    parsers = ["auto", "numpy", "checked"] + (["compiled"] if ntu._compiled_scan() else [])
    for path in sorted(ntu_dir.glob("*.skeleton")):
        for fields, max_bodies in ((("x", "y", "z"), 4), (("colorY", "x", "trackingState"), 1), (ntu.JOINT_FIELDS, 2)):
            ref = ntu.read(path, fields=fields, max_bodies=max_bodies, parser="checked")[0]
            for parser in parsers:
                s = ntu.read(path, fields=fields, max_bodies=max_bodies, parser=parser)[0]
                assert np.array_equal(s.bodies, ref.bodies) and np.array_equal(s.body_ids, ref.body_ids), (path, parser)
    with pytest.raises(ValueError, match="parser must be one of"):
        ntu.read(path, parser="fastest")


def test_compiled_parser_without_numba_is_a_clear_error(ntu_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ntu, "_compiled_scan", lambda: None)
    path = next(iter(sorted(ntu_dir.glob("*.skeleton"))))
    with pytest.raises(ImportError, match=r"skelssl\[fast\]"):
        ntu.read(path, parser="compiled")
    assert ntu.read(path)[0].bodies.shape[0] > 0  # auto falls back to the numpy reader


def test_crlf_and_lf_both_parse(ntu_dir: Path, tmp_path: Path):
    files = sorted(ntu_dir.glob("*.skeleton"))
    crlf = [p for p in files if b"\r\n" in p.read_bytes()[:64]]
    assert len(crlf) == 4 and len(files) - len(crlf) == 5  # as SOURCE.md says
    lf = next(p for p in files if p not in crlf)
    for src, convert in ((crlf[0], lambda b: b.replace(b"\r\n", b"\n")), (lf, lambda b: b.replace(b"\n", b"\r\n"))):
        other = tmp_path / src.name
        other.write_bytes(convert(src.read_bytes()))
        a, b = ntu.read(src)[0], ntu.read(other)[0]
        assert np.array_equal(a.bodies, b.bodies) and np.array_equal(a.body_ids, b.body_ids)


# -- write / read ----------------------------------------------------------------------------------
@pytest.mark.parametrize("crlf", [False, True])
def test_write_read_round_trip(tmp_path: Path, crlf: bool):
    rng = np.random.default_rng(0)
    bodies = _random_bodies(rng, 9, 3)
    bodies[2] = 0  # a frame with no body
    bodies[4, 2] = 0  # slots 0, 1 only
    ids = np.array([[11, 22, 33]] * 9, dtype=np.int64) + 72057594037927936
    path = ntu.write_skeleton_file(tmp_path / "S005C002P010R002A042.skeleton", bodies, body_ids=ids, crlf=crlf)
    raw = path.read_bytes()
    assert (b"\r\n" in raw) == crlf and raw.count(b"\n") == 1 + 9 + (3 * 8 - 1) * 27
    lines = raw.decode().splitlines()
    assert lines[0] == "9" and lines[1] == "3" and len(lines[2].split()) == 10 and lines[3] == "25"
    assert all(len(lines[4 + j].split()) == 12 for j in range(25))
    assert "0" in lines  # the empty frame's body count
    [s] = ntu.read(path, fields=ntu.JOINT_FIELDS)
    assert (s.setup, s.view, s.subject, s.repetition, s.label) == (5, 2, 10, 2, 41)
    assert s.bodies.shape == (9, 3, 25, 12)
    assert np.array_equal(s.bodies[..., :3], bodies)  # float32-exact
    assert np.array_equal(s.body_ids[0], ids[0]) and np.all(s.body_ids[2] == -1) and s.body_ids[4, 2] == -1
    tracked = s.bodies[s.body_ids >= 0]  # (K, 25, 12)
    assert np.all(tracked[..., 11] == 2) and np.all(tracked[..., 7] == 1)  # tracked, identity quaternion
    depth_x, color_y = tracked[..., 3], tracked[..., 6]
    assert 0 < depth_x.min() and depth_x.max() < 512 and 0 < color_y.min() and color_y.max() < 1080


def test_irregular_spacing_reads_the_same(tmp_path: Path, fast_reader):
    bodies = _random_bodies(np.random.default_rng(4), 3, 2)
    text = _text_of(bodies, crlf=False)
    lines = text.split("\n")
    lines[5] = lines[5].replace(" ", "  \t", 3) + "  "  # tabs, double and trailing spaces
    lines[2] = lines[2].replace(" ", "   ")
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text("\n".join(lines))
    assert fast_reader(path.read_bytes(), np.arange(3), 4) is None  # the reference reader takes it
    assert np.array_equal(ntu.read(path)[0].bodies, bodies)


def test_absent_slot_moves_up_and_max_bodies(tmp_path: Path):
    rng = np.random.default_rng(1)
    bodies = _random_bodies(rng, 4, 5)
    bodies[1, 0] = 0  # frame 1: slot 0 empty -> its slot 1 body is listed first
    path = ntu.write_skeleton_file(tmp_path / "x.skeleton", bodies)
    s = ntu.read(path)[0]
    assert s.bodies.shape == (4, 4, 25, 3)  # the official reader keeps 4
    assert np.array_equal(s.bodies[1, 0], bodies[1, 1]) and np.array_equal(s.bodies[0], bodies[0, :4])
    s2 = ntu.read(path, max_bodies=2)[0]
    assert s2.bodies.shape == (4, 2, 25, 3) and np.array_equal(s2.bodies[3], bodies[3, :2])
    assert (s.name, s.label, s.setup, s.view, s.subject, s.repetition) == ("x", -1, -1, -1, -1, -1)
    s3 = ntu.read(path, fields=("z", "colorX"))[0]
    assert s3.bodies.shape == (4, 4, 25, 2) and np.array_equal(s3.bodies[..., 0], s.bodies[..., 2])
    with pytest.raises(ValueError, match="unknown NTU joint field"):
        ntu.read(path, fields=("x", "w"))


def _tokens_through_fast_path(tokens: list[str], number_bytes: bool = False) -> np.ndarray:
    """The vectorised decimal conversion of ``tokens`` (NaN where it defers to float())."""
    text = "x" * 16 + " ".join(tokens)  # 16 bytes of lead-in: every token has a full window
    ends = np.cumsum([len(t) + 1 for t in tokens]) - 1 + 16
    lengths = np.array([len(t) for t in tokens])
    return ntu._decimal_tokens(np.frombuffer(text.encode(), np.uint8), ends - lengths, ends, number_bytes=number_bytes)


def test_decimal_tokens_bit_identical_to_float():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 3, 300), rng.normal(0, 1e-4, 100), rng.uniform(-2000, 2000, 200)])
    tokens = ["-0", "0", "5.", ".5", "-.5", "123456789012345", "-1234.5678", "2", "0.000001", "-99999.99999",
              "00012.50", "-0.0000000000001", "99999999999999.", "1.00000000000000"]
    tokens += [f"{v:.9g}" for v in values] + [f"{v:.7g}" for v in values] + [f"{v:.6f}" for v in values]
    got = _tokens_through_fast_path(tokens)
    ref = np.array([float(t) for t in tokens])
    deferred = np.isnan(got)  # only exponent forms and 16+ characters are left to float()
    assert all("e" in t or len(t) > 15 for t, d in zip(tokens, deferred) if d) and deferred.mean() < 0.1
    assert np.array_equal(got[~deferred], ref[~deferred])
    assert np.array_equal(np.signbit(got[~deferred]), np.signbit(ref[~deferred]))
    # Forms left to float(): exponents, '+', 16+ characters, garbage.
    others = ["1.960929E-05", "+3.25", "1e3", "0.12345678901234567", "1234567890123456", "1.2.3", "3-1",
              "-", ".", "--1", "1-", "abc", "1,5", "1:", ";5", "1/2", "..5", "-1-", "5.-"]
    assert np.isnan(_tokens_through_fast_path(others)).all()
    # The shortcut for text already known to hold only 0123456789.-+eE: the same values, the same NaNs.
    number_like = tokens + [t for t in others if set(t) <= set("0123456789.-+eE")]
    assert np.array_equal(_tokens_through_fast_path(number_like, number_bytes=True),
                          _tokens_through_fast_path(number_like), equal_nan=True)
    # A 16-character token with its sign is still exact (15 digits and a '.'), one past that is left to float().
    got = _tokens_through_fast_path(["-0.0000000000012", "-12345678901.345", "-0.00000000000012", "1234567890.12345"])
    assert got[0] == float("-0.0000000000012") and got[1] == float("-12345678901.345") and np.isnan(got[2:]).all()


def _taken_as_the_reference_takes_it(fast_reader, data: bytes, cols: np.ndarray) -> bool:
    """Whether ``fast_reader`` takes ``data``; when it does, the line-by-line reference must take it
    too and give the same frames, slots, ids and float64 values."""
    fast = fast_reader(data, cols, 2)
    if fast is None:
        return False
    try:
        ref = ntu._read_checked(data, Path("x.skeleton"), cols, 2)
    except SkeletonFormatError as e:
        raise AssertionError(f"the fast reader took a file the reference rejects ({e}): {data!r}") from None
    assert fast[:2] == ref[:2] and np.array_equal(fast[2], ref[2]) and np.array_equal(fast[3], ref[3])
    return True


def test_fast_and_checked_readers_agree_on_damaged_files(fast_reader):
    """Whenever the fast reader accepts a file, the line-by-line reference gives the same result."""
    rng = np.random.default_rng(11)
    bodies = _random_bodies(rng, 3, 3)
    bodies[1, 2] = 0
    bodies[2, 1:] = 0
    cols = np.array([0, 1, 2, 5, 11])
    taken = 0
    for trial in range(400):
        data = bytearray(_text_of(bodies, crlf=bool(trial % 2)).encode())
        for _ in range(int(rng.integers(1, 3))):
            at = int(rng.integers(0, len(data)))
            kind = int(rng.integers(0, 4))
            if kind == 0:
                del data[at:at + int(rng.integers(1, 3))]
            elif kind == 1:
                data[at:at] = bytes(rng.choice(list(b"0123456789.-+eE  \n\r\t"), size=int(rng.integers(1, 3))))
            elif kind == 2:
                data[at] = int(rng.choice(list(b"0123456789.- \n\r")))
            else:  # move a separator a few bytes: the separator count stays, the fields change
                seps = [i for i, c in enumerate(data) if c in b" \r"]
                i = seps[int(rng.integers(0, len(seps)))]
                c = data.pop(i)
                data.insert(min(len(data), max(0, i + int(rng.integers(-3, 4)))), c)
        taken += _taken_as_the_reference_takes_it(fast_reader, bytes(data), cols)
    assert taken > 20  # some damage leaves a valid file, and the fast path reads it


def test_compiled_reader_takes_only_what_the_reference_takes():
    """Byte-level damage of every kind (any byte value, doubled or dropped separators, blank lines)
    with several field choices: whenever the compiled reader accepts a file, the line-by-line
    reference accepts it too and gives the same frames, slots, ids and float64 values."""
    read_compiled = _compiled_or_skip()
    rng = np.random.default_rng(23)
    bodies = _random_bodies(rng, 3, 3)
    bodies[1, 2] = 0
    bodies[0, 1:] = 0
    taken = 0
    for trial in range(900):
        cols = [np.arange(3), np.array([0, 2]), np.array([11]), np.array([3, 0]), np.arange(12)][trial % 5]
        data = bytearray(_text_of(bodies, crlf=bool(trial % 2)).encode())
        if trial % 7:  # (one file in seven left whole: the fast path must take it)
            for _ in range(int(rng.integers(1, 3))):
                at = int(rng.integers(0, len(data)))
                kind = int(rng.integers(0, 6))
                if kind == 0:
                    data[at] = int(rng.integers(0, 256))
                elif kind == 5:  # a sign, exponent or point inside a field, or a field's '.' turned into one
                    while data[at] in b" \r\n" and at > 0:
                        at -= 1
                    char = int(rng.choice(list(b"-+eE.")))
                    if data[at] == ord(".") and rng.random() < 0.5:
                        data[at] = char
                    else:
                        data[at:at] = bytes([char])
                elif kind == 1:
                    data[at:at] = bytes(rng.choice(list(b"  \r\n\t0.-+eE~/,:"), size=int(rng.integers(1, 3))))
                elif kind == 2:
                    del data[at:at + int(rng.integers(1, 4))]
                elif kind == 3:  # double a separator
                    seps = [i for i, c in enumerate(data) if c in b" \n"]
                    i = seps[int(rng.integers(0, len(seps)))]
                    data[i:i] = data[i:i + 1]
                else:
                    data = data[:at]
        took = _taken_as_the_reference_takes_it(read_compiled, bytes(data), cols)
        assert took or trial % 7  # an undamaged file takes the fast path
        taken += took
    assert taken > 100


def test_lone_cr_is_a_line_break_not_a_separator(tmp_path: Path, fast_reader):
    """A CR where a space belongs (LF file), or between the last field and the LF (CRLF file), ends a
    line for the reference reader (``splitlines``), so the fast reader must not read it as a space."""
    bodies = _random_bodies(np.random.default_rng(5), 3, 1)
    lf = _text_of(bodies, crlf=False).encode()
    lines = lf.split(b"\n")
    lines[10] = lines[10].replace(b" ", b"\r", 1)  # LF file, first field separator of a joint line -> CR
    crlf = _text_of(bodies, crlf=True).encode().split(b"\r\n")
    crlf[12] = crlf[12][:-2] + b" \r" + crlf[12][-1:]  # "... 0 2\r\n" -> "... 0 \r2\n": same separators, moved
    for data in (b"\n".join(lines), b"\r\n".join(crlf)):
        assert fast_reader(data, np.arange(3), 4) is None
        path = tmp_path / "S001C001P001R001A001.skeleton"
        path.write_bytes(data)
        with pytest.raises(SkeletonFormatError, match="line"):
            ntu.read(path)


@pytest.mark.parametrize("crlf", [False, True])
def test_frames_with_ten_or_more_bodies(tmp_path: Path, crlf: bool, fast_reader):
    """Two-digit body counts (never in NTU, but legal in the format) take the same fast path."""
    bodies = _random_bodies(np.random.default_rng(6), 3, 12)
    bodies[1, 10:] = 0  # frame 1 lists 10 bodies, the others 12
    path = ntu.write_skeleton_file(tmp_path / "S001C001P001R001A001.skeleton", bodies, crlf=crlf)
    data = path.read_bytes()
    fast = fast_reader(data, np.arange(3), 12)
    ref = ntu._read_checked(data, path, np.arange(3), 12)
    assert fast is not None and fast[:2] == ref[:2] == (3, 12)
    assert np.array_equal(fast[2], ref[2]) and np.array_equal(fast[3], ref[3])
    s = ntu.read(path, max_bodies=12)[0]
    assert np.array_equal(s.bodies, bodies) and np.array_equal(s.body_ids[1, 10:], [-1, -1])
    assert np.array_equal(ntu.read(path)[0].bodies, bodies[:, :4])


def test_unreadable_path_is_a_format_error(tmp_path: Path):
    with pytest.raises(SkeletonFormatError, match="cannot read"):
        ntu.read(tmp_path)  # a folder
    with pytest.raises(SkeletonFormatError, match="cannot read"):
        ntu.read(tmp_path / "absent.skeleton")


# -- discover and the exclusion list ---------------------------------------------------------------
def test_exclusion_lists():
    ntu60, ntu120 = ntu.missing_skeleton_samples(60), ntu.missing_skeleton_samples(120)
    assert len(ntu60) == 302 and len(ntu120) == 535 and ntu60 <= ntu120
    # The extra NTU-120 names are all from setups 18..32, so the 535 list is also right for NTU-60.
    assert all(ntu.parse_sample_name(n)["setup"] >= 18 for n in ntu120 - ntu60)
    assert all(ntu.parse_sample_name(n) is not None for n in ntu120)


def test_discover(tmp_path: Path):
    bodies = _random_bodies(np.random.default_rng(2), 3, 1)
    missing = sorted(ntu.missing_skeleton_samples(60))[0]
    names = ["S001C001P001R001A001", missing, "nested/S018C001P042R001A100", "other/S001C001P001R001A001"]
    for name in names:
        ntu.write_skeleton_file(tmp_path / f"{name}.skeleton", bodies)
    (tmp_path / "._S001C001P001R001A002.skeleton").write_bytes(b"\x00\x05\x16\x07")
    (tmp_path / "notes.txt").write_text("not a skeleton")
    disc = ntu.discover(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in disc.units] == [
        "S001C001P001R001A001.skeleton", "nested/S018C001P042R001A100.skeleton"]
    reasons = {Path(p).name: r for p, r in disc.excluded}
    assert reasons[f"{missing}.skeleton"] == ntu.MISSING_REASON
    assert "duplicate" in reasons["S001C001P001R001A001.skeleton"]
    assert "hidden" in reasons["._S001C001P001R001A002.skeleton"]
    kept = ntu.discover(tmp_path, exclude_missing=False)
    assert f"{missing}.skeleton" in {p.name for p in kept.units}
    with pytest.raises(SkeletonFormatError, match="no such"):
        ntu.discover(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkeletonFormatError, match="no .skeleton files"):
        ntu.discover(tmp_path / "empty")


# -- malformed input -------------------------------------------------------------------------------
def _replace_line(text: str, index: int, new: str) -> str:
    lines = text.split("\n")
    lines[index] = new
    return "\n".join(lines)


def _field(text: str, line: int, col: int, value: str) -> str:
    fields = text.split("\n")[line].split(" ")
    fields[col] = value
    return _replace_line(text, line, " ".join(fields))


def _bodies_for_bad() -> np.ndarray:
    bodies = _random_bodies(np.random.default_rng(3), 3, 2)
    bodies[1, 1] = 0  # frame 2 has one body
    return bodies


# Layout of the base file (_bodies_for_bad): line 0 "3"; frame 1: line 1 "2", body line 2, "25" line 3, joints 4..28,
# body line 29, "25" 30, joints 31..55; frame 2: line 56 "1", body 57, "25" 58, joints 59..83; ...
BAD = {
    "empty": (lambda t: "", "empty file"),
    "blank lines only": (lambda t: "\n \n\n", "empty file"),
    "binary": (lambda t: "\x00\x01\x02garbage\xff" * 20, "line 1"),
    "truncated in the middle": (lambda t: t[: t.index("\n", len(t) // 2) - 9], "truncated"),
    "truncated in the last line": (lambda t: t.rstrip("\n")[:-9], "line 139: a joint line needs 12 fields, got 7"),
    "truncated at a line end": (lambda t: "\n".join(t.split("\n")[:70]), "truncated"),
    "frame count too large": (lambda t: _replace_line(t, 0, "4"), "ends after 3 of the 4 frames"),
    "frame count too small": (lambda t: _replace_line(t, 0, "2"), "frame count does not match"),
    "frame count zero": (lambda t: _replace_line(t, 0, "0"), "frame count is 0"),
    "garbled frame count": (lambda t: _replace_line(t, 0, "3a"), "line 1"),
    "garbled number": (lambda t: _field(t, 10, 1, "0.1x5"), "line 11: bad number '0.1x5'"),
    "two dots": (lambda t: _field(t, 40, 0, "1.2.3"), "line 41: bad number '1.2.3'"),
    "misplaced minus": (lambda t: _field(t, 60, 2, "3-1"), "line 61: bad number '3-1'"),
    "garbled unread column": (lambda t: _field(t, 12, 5, "12#4"), "line 13: bad number '12#4'"),
    "nan": (lambda t: _field(t, 5, 0, "nan"), "line 6: non-finite value 'nan'"),
    "NaN in unread column": (lambda t: _field(t, 7, 8, "NaN"), "line 8: non-finite value 'NaN'"),
    "inf": (lambda t: _field(t, 33, 2, "-inf"), "non-finite value '-inf'"),
    "overflowing exponent": (lambda t: _field(t, 34, 1, "1e999"), "line 35: non-finite value '1e999'"),
    "wrong joint count": (lambda t: _replace_line(t, 30, "24"), "line 31: expected the joint count 25, got '24'"),
    "joint line missing a field": (lambda t: _replace_line(t, 20, t.split("\n")[20].rsplit(" ", 1)[0]),
                                   "line 21: a joint line needs 12 fields, got 11"),
    "joint line with an extra field": (lambda t: _replace_line(t, 45, t.split("\n")[45] + " 7"),
                                       "line 46: a joint line needs 12 fields, got 13"),
    "garbled body count": (lambda t: _replace_line(t, 56, "x"), "line 57: expected the body count of frame 2"),
    "huge body count": (lambda t: _replace_line(t, 56, "999999999"), "declares 999999999 bodies"),
    "negative body count": (lambda t: _replace_line(t, 56, "-1"), "negative body count"),
    "bad body id": (lambda t: _field(t, 2, 0, "7205759403793110x"), "line 3: bad body id"),
    "body id past 64 bits": (lambda t: _field(t, 85, 0, "9" * 25), "line 86: body id 9999"),
    "short body line": (lambda t: _replace_line(t, 29, "72057594037931101 0 1"),
                        "line 30: a body line needs 10 fields, got 3"),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_files_raise_format_error(tmp_path: Path, case: str, crlf: bool):
    damage, expected = BAD[case]
    text = damage(_text_of(_bodies_for_bad(), crlf=False))
    path = tmp_path / "S001C001P001R001A001.skeleton"
    data = text.encode("latin-1")
    path.write_bytes(data.replace(b"\n", b"\r\n") if crlf else data)
    with pytest.raises(SkeletonFormatError) as err:
        ntu.read(path)
    assert err.value.path == str(path) and str(path) in str(err.value)
    assert expected in err.value.problem


def test_mutation_fuzz_only_format_errors(tmp_path: Path):
    """Seeded random damage: the reader returns finite float32 bodies or raises SkeletonFormatError."""
    rng = np.random.default_rng(7)
    base = _text_of(_random_bodies(rng, 2, 2), crlf=False).encode()
    path = tmp_path / "S001C001P001R001A001.skeleton"
    outcomes = {"read": 0, "error": 0}
    for trial in range(300):
        data = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            if not data:
                break
            at = int(rng.integers(0, len(data)))
            kind = int(rng.integers(0, 4))
            if kind == 0:
                del data[at:at + int(rng.integers(1, 40))]
            elif kind == 1:
                data[at:at] = bytes(rng.choice(list(b"0123456789.-+eE \n\r\tnax"), size=int(rng.integers(1, 6))))
            elif kind == 2:
                data[at] = int(rng.integers(0, 256))
            else:
                data = data[:at]
        path.write_bytes(bytes(data))
        try:
            [s] = ntu.read(path)
        except SkeletonFormatError as e:
            assert str(path) in str(e)
            outcomes["error"] += 1
            continue
        assert s.bodies.dtype == np.float32 and np.isfinite(s.bodies).all() and s.bodies.shape[2:] == (25, 3)
        outcomes["read"] += 1
    assert outcomes["error"] > 100  # the damage is mostly detected
