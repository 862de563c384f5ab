import numpy as np
import pytest

from skelssl.core.layouts import KINECT20, LAYOUTS, NTU25, Layout, get_layout


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_layout_is_a_tree(layout: Layout):
    # V-1 bones, every joint reaches the centre, adjacency symmetric.
    assert len(layout.bones) == layout.num_joints - 1
    a = layout.adjacency()
    assert np.array_equal(a, a.T)
    assert np.isfinite(layout.hop_distance()).all()
    flip = layout.flip_index
    assert tuple(flip[j] for j in flip) == tuple(range(layout.num_joints))
    parts = layout.spatial_partition()
    assert parts.shape == (3, layout.num_joints, layout.num_joints)
    # Column-normalised: each non-empty column sums to 1.
    for k in range(3):
        col = parts[k].sum(0)
        assert np.allclose(col[col > 0], 1.0)


def test_ntu25_matches_official_bone_list():
    # METHODS.md §1, 1-based (child, parent), minus the (21, 21) self pair.
    official = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10), (12, 11),
                (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8),
                (24, 25), (25, 12)]
    assert sorted(NTU25.bones) == sorted((c - 1, p - 1) for c, p in official)
    assert NTU25.joint_names[NTU25.spine] == "spine_mid"


def test_kinect20_matches_ctrgcn_ucla_graph():
    official = [(1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10), (12, 11), (13, 1),
                (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19)]
    assert sorted(KINECT20.bones) == sorted((c - 1, p - 1) for c, p in official)


def test_bad_layouts_are_rejected():
    with pytest.raises(ValueError):
        Layout("x", ("a", "b"), (1, 0), (), center=0, spine=0, hip=0, shoulders=(0, 1))  # cycle, two roots
    with pytest.raises(KeyError):
        get_layout("nope")
    with pytest.raises(Exception):
        NTU25.name = "other"  # frozen
