"""Detection metrics and conversions on hand-made segment sets with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from skelssl.evaluation.detection import (
    Segment,
    average_precision,
    match_detections,
    mean_average_precision,
    pku_mmd_official_map,
    segments_from_labels,
    segments_from_scores,
    temporal_iou,
    temporal_nms,
)
from skelssl.evaluation.untrimmed import frame_scores, window_labels, window_spans


def test_temporal_iou_half_open():
    assert temporal_iou(0, 10, 5, 15) == pytest.approx(5 / 15)
    assert temporal_iou(0, 10, 0, 10) == pytest.approx(1.0)
    assert temporal_iou(0, 10, 2, 4) == pytest.approx(0.2)
    assert temporal_iou(0, 10, 10, 20) == 0.0  # abutting half-open intervals share no frame
    assert temporal_iou(0, 10, 30, 40) == 0.0
    np.testing.assert_allclose(temporal_iou(0, 10, [0, 5, 20], [10, 15, 30]), [1.0, 1 / 3, 0.0])


def test_segments_from_labels_runs():
    labels = np.array([-1, -1, 3, 3, 3, -1, 5, 5, 3])
    got = [(s.label, s.start, s.end) for s in segments_from_labels(labels, video=7)]
    assert got == [(3, 2, 5), (5, 6, 8), (3, 8, 9)]
    assert all(s.video == 7 and s.score == 1.0 for s in segments_from_labels(labels, video=7))
    assert segments_from_labels(np.full(5, -1)) == []
    with pytest.raises(ValueError):
        Segment(0, 1, 5, 5)


def test_segments_from_scores_argmax_runs_mean_score_and_min_length():
    # 3 classes + background (column 3); frames 0-1 background, 2-5 class 0, 6 class 1 (one frame), 7-9 class 2.
    s = np.zeros((10, 4))
    s[[0, 1], 3] = 0.9
    s[2:6, 0] = [0.6, 0.8, 0.7, 0.5]
    s[6, 1] = 0.55
    s[7:10, 2] = [0.9, 0.9, 0.6]
    segs = segments_from_scores(s, background_index=3, video=2)
    assert [(g.label, g.start, g.end) for g in segs] == [(0, 2, 6), (1, 6, 7), (2, 7, 10)]
    assert segs[0].score == pytest.approx(0.65) and segs[2].score == pytest.approx(0.8)
    assert [(g.label, g.start) for g in segments_from_scores(s, 3, min_length=2)] == [(0, 2), (2, 7)]


def test_segments_from_scores_actionness_rule():
    # Background 0.4 outscores each of three actions (0.2 each) but the frame is 60 % "some action".
    s = np.array([[0.2, 0.2, 0.2, 0.4]] * 4 + [[0.05, 0.05, 0.0, 0.9]] * 2 + [[0.1, 0.5, 0.1, 0.3]] * 3)
    assert [(g.label, g.start, g.end) for g in segments_from_scores(s, 3)] == [(1, 6, 9)]
    got = segments_from_scores(s, 3, action_threshold=0.5)
    assert [(g.label, g.start, g.end) for g in got] == [(0, 0, 4), (1, 6, 9)]
    assert got[0].score == pytest.approx(0.2) and got[1].score == pytest.approx(0.5)
    assert segments_from_scores(s, 3, action_threshold=0.65) == [got[1]]


def test_temporal_nms_per_class():
    a, b, c = Segment(0, 1, 0, 10, 0.9), Segment(0, 1, 1, 11, 0.8), Segment(0, 2, 1, 11, 0.7)
    far = Segment(0, 1, 30, 40, 0.1)
    assert temporal_nms([b, a, c, far], 0.5) == [a, c, far]
    assert temporal_nms([b, a], 0.95) == [a, b]  # tIoU 9/11 < 0.95 keeps both


def test_average_precision_all_point_interpolation():
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: the 1/2 at recall 1/2 is lifted to 1, then 2/3.
    assert average_precision([True, False, True], 2) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert average_precision([True, False, True], 3) == pytest.approx(1 / 3 + 1 / 3 * 2 / 3)
    assert average_precision([False, True], 1) == pytest.approx(0.5)
    assert average_precision([True, True], 2) == pytest.approx(1.0)
    assert average_precision([], 3) == 0.0 and average_precision([True], 0) == 0.0


def test_matching_takes_the_best_unmatched_instance():
    gt = [Segment(0, 0, 0, 10), Segment(0, 0, 8, 20)]
    first = Segment(0, 0, 9, 20, 0.9)  # tIoU 0.05 with [0, 10), 11/12 with [8, 20)
    second = Segment(0, 0, 0, 10, 0.8)
    ranked, hits = match_detections([second, first], gt, 0.5)
    assert ranked == [first, second] and hits.tolist() == [True, True]
    # A detection in another sequence never matches.
    _, hits = match_detections([Segment(1, 0, 0, 10, 0.9)], gt, 0.1)
    assert hits.tolist() == [False]


def _hand_made():
    gt = [Segment(0, 0, 0, 10), Segment(1, 0, 20, 40), Segment(0, 1, 50, 60)]
    det = [
        Segment(0, 0, 0, 10, 0.9),  # class 0: exact
        Segment(0, 0, 0, 9, 0.8),  # class 0: a duplicate of the same instance
        Segment(1, 0, 25, 45, 0.7),  # class 0: tIoU 15/25 = 0.6
        Segment(0, 1, 55, 65, 0.5),  # class 1: tIoU 5/15 = 1/3
        Segment(0, 2, 0, 5, 0.99),  # class 2 has no ground truth: not averaged in
    ]
    return det, gt


def test_mean_average_precision_known_answers():
    det, gt = _hand_made()
    r = mean_average_precision(det, gt)
    assert r["classes"] == [0, 1]
    ap0 = 0.5 * 1 + 0.5 * 2 / 3  # ranked TP, FP (duplicate), TP
    assert r["ap"][0.5] == {0: pytest.approx(ap0), 1: 0.0}
    assert r["map"][0.1] == pytest.approx((ap0 + 1) / 2)
    assert r["map"][0.3] == pytest.approx((ap0 + 1) / 2)
    assert r["map"][0.5] == pytest.approx(ap0 / 2)
    assert r["map"][0.7] == pytest.approx(0.5 / 2)  # class 0: TP, FP, FP (tIoU 0.6)
    perfect = mean_average_precision(gt, gt)
    assert all(v == pytest.approx(1.0) for v in perfect["map"].values())
    assert mean_average_precision([], gt)["map"][0.5] == 0.0


def test_official_pku_mmd_script_differences():
    gt = [Segment(0, 0, 0, 10), Segment(0, 0, 20, 30)]
    det = [Segment(0, 0, 0, 10, 0.9), Segment(0, 0, 0, 10, 0.8), Segment(0, 0, 20, 30, 0.7)]
    # Ours: the duplicate is a false positive. The script counts it correct: AP 1.
    assert mean_average_precision(det, gt, [0.5])["map"][0.5] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert pku_mmd_official_map(det, gt, 0.5, num_labels=1) == pytest.approx(1.0)
    # The script divides by its 52 label slots, and one perfect detection alone scores 0 there.
    assert pku_mmd_official_map(det, gt, 0.5) == pytest.approx(1 / 52)
    assert pku_mmd_official_map([Segment(0, 0, 0, 10, 0.9)], gt[:1], 0.5, num_labels=1) == 0.0
    assert mean_average_precision([Segment(0, 0, 0, 10, 0.9)], gt[:1])["map"][0.5] == pytest.approx(1.0)


def test_window_spans_cover_every_frame():
    spans = window_spans(100, 32, 16)
    assert spans[:, 0].tolist() == [0, 16, 32, 48, 64, 68] and (spans[:, 1] - spans[:, 0] == 32).all()
    assert window_spans(96, 32, 16)[-1].tolist() == [64, 96]
    assert window_spans(20, 32, 16).tolist() == [[0, 20]]
    with pytest.raises(ValueError):
        window_spans(10, 0, 4)


def test_window_labels_majority_and_centre():
    fl = np.array([-1, -1, -1, 0, 0, 1, 1, 1])
    spans = np.array([[0, 4], [2, 6], [3, 8], [0, 8]])
    assert window_labels(fl, spans, background_index=2).tolist() == [2, 0, 1, 1]  # [0, 8): 3 x 1 ties 3 x background
    # centre frame (s + e - 1) // 2: 1, 3, 5, 3
    assert window_labels(fl, spans, 2, rule="centre").tolist() == [2, 0, 1, 0]
    # A tie between an action and background goes to the action.
    assert window_labels(np.array([-1, 0]), np.array([[0, 2]]), 1).tolist() == [0]


def test_frame_scores_average_the_covering_windows():
    spans = np.array([[0, 4], [2, 6]])
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    got = frame_scores(probs, spans, 6)
    np.testing.assert_allclose(got, [[1, 0], [1, 0], [0.5, 0.5], [0.5, 0.5], [0, 1], [0, 1]])
