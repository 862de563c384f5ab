"""Temporal action detection: segments, temporal IoU, and interval-level average precision.

The PKU-MMD protocol (Liu et al., arXiv:1703.07475, §5) scores detected intervals: a detection is a
``(sequence, class, [start, end), confidence)`` tuple, it is correct when its temporal IoU with a
ground-truth interval of the same class in the same sequence reaches a threshold ``theta``, and the
score is the mean over classes of the average precision (mAP) at ``theta`` in {0.1, 0.3, 0.5, 0.7}.

:func:`mean_average_precision` is the standard form (the one of VOC, THUMOS and ActivityNet):

- per class, detections are sorted by confidence (ties keep their input order) and greedily matched,
  each to the *unmatched* ground truth of the same class and sequence with the highest tIoU, if that
  tIoU is >= theta; a second detection of an already matched instance is a false positive;
- AP is the area under the precision-recall curve with all-point interpolation (VOC 2010+: the
  precision at recall r is the highest precision at any recall >= r);
- mAP is the mean over the classes that have ground truth (a class without any detection has AP 0).

The official PKU-MMD script (``evaluate.py`` in github.com/ECHO960/PKU-MMD) differs in three ways,
reproduced by :func:`pku_mmd_official_map` for comparison: a detection counts as correct when its
best overlap with *any* same-class instance reaches theta, without one-to-one matching (duplicates
are not penalised; recall is capped at 1); each recall step is weighted by the best precision of the
detections ranked *above* the one that adds it (so one perfect detection alone scores 0); and the
mean runs over all 52 label slots (51 classes and the unused label 0), classes without ground truth
counting 0.

Intervals are half-open frame ranges ``[start, end)``, as the PKU-MMD reader reads the label files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "Segment",
    "temporal_iou",
    "segments_from_labels",
    "segments_from_scores",
    "temporal_nms",
    "average_precision",
    "match_detections",
    "mean_average_precision",
    "pku_mmd_official_map",
    "DEFAULT_IOU_THRESHOLDS",
]

#: The PKU-MMD paper's thresholds (Liu et al. 2017, Table 4).
DEFAULT_IOU_THRESHOLDS = (0.1, 0.3, 0.5, 0.7)


@dataclass(frozen=True)
class Segment:
    """One action interval of one sequence.

    Args:
        video: the sequence it belongs to (e.g. its store index).
        label: class index ``0..C-1`` (never background).
        start: first frame.
        end: one past the last frame (``end > start``).
        score: confidence (1 for ground truth).
    """

    video: int
    label: int
    start: int
    end: int
    score: float = 1.0

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"segment [{self.start}, {self.end}) is empty or reversed")

    @property
    def length(self) -> int:
        return self.end - self.start


def temporal_iou(a_start, a_end, b_start, b_end) -> np.ndarray:
    """Temporal IoU of half-open intervals ``[a_start, a_end)`` and ``[b_start, b_end)`` (broadcasts).

    Returns:
        Intersection length over union length, in ``[0, 1]`` (0 for disjoint intervals).
    """
    a_start, a_end, b_start, b_end = (np.asarray(v, dtype=np.float64) for v in (a_start, a_end, b_start, b_end))
    inter = np.clip(np.minimum(a_end, b_end) - np.maximum(a_start, b_start), 0.0, None)
    union = (a_end - a_start) + (b_end - b_start) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def segments_from_labels(frame_labels: np.ndarray, video: int = 0, background: int = -1) -> list[Segment]:
    """Ground-truth segments: the runs of equal per-frame labels other than ``background``.

    Two instances of the same class that abut without a gap become one run: a store keeps per-frame
    labels only (PKU-MMD has no two such instances among the 307 of the shared subset).

    Shape:
        ``frame_labels`` ``(T,)`` int.
    """
    labels = np.asarray(frame_labels).reshape(-1)
    if labels.size == 0:
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    bounds = np.concatenate([[0], change, [labels.size]])
    return [Segment(video, int(labels[s]), int(s), int(e)) for s, e in zip(bounds[:-1], bounds[1:]) if labels[s] != background]


def segments_from_scores(
    scores: np.ndarray, background_index: int, video: int = 0, min_length: int = 1, action_threshold: float | None = None
) -> list[Segment]:
    """Detections from per-frame class scores: runs of frames given the same action.

    Two rules label the frames:

    - ``action_threshold=None``: the arg-max over all columns, background included (a frame is
      background when no single action outscores it);
    - ``action_threshold=a``: a frame is an action frame when its actionness ``1 - p_background``
      reaches ``a``, and its action is the arg-max over the action columns. With many classes the
      action probability is often split among similar ones, so background would win the arg-max of
      frames that are clearly some action; this rule still finds them.

    Each run of frames given the same action becomes one segment; its confidence is the mean score of
    that class over the run. Runs shorter than ``min_length`` frames are dropped.

    Args:
        scores: ``(T, K)`` per-frame class probabilities, background included.
        background_index: the background column of ``scores``.
        video: the sequence id given to the segments.
        min_length: shortest segment kept, in frames.
        action_threshold: see above.

    Returns:
        Segments in time order.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or not 0 <= background_index < scores.shape[1]:
        raise ValueError(f"scores must be (T, K) with the background column inside, got {scores.shape} and {background_index}")
    if action_threshold is None:
        best = scores.argmax(axis=1)  # (T,)
    else:
        actions = scores.copy()
        actions[:, background_index] = -np.inf
        best = np.where(1.0 - scores[:, background_index] >= action_threshold, actions.argmax(axis=1), background_index)
    out = []
    for seg in segments_from_labels(best, video, background=background_index):
        if seg.length >= min_length:
            score = float(scores[seg.start : seg.end, seg.label].mean())
            out.append(Segment(video, seg.label, seg.start, seg.end, score))
    return out


def temporal_nms(segments: Iterable[Segment], iou_threshold: float) -> list[Segment]:
    """Greedy non-maximum suppression per (sequence, class): keep the most confident, drop overlaps.

    Returns:
        The kept segments, most confident first.
    """
    order = sorted(segments, key=lambda s: -s.score)
    kept: list[Segment] = []
    for seg in order:
        if all(k.video != seg.video or k.label != seg.label
               or temporal_iou(k.start, k.end, seg.start, seg.end) <= iou_threshold for k in kept):
            kept.append(seg)
    return kept


def average_precision(is_tp: Sequence[bool], num_gt: int) -> float:
    """All-point interpolated AP of a ranked list (VOC 2010+, THUMOS, ActivityNet).

    Args:
        is_tp: per detection in decreasing confidence, whether it is a true positive.
        num_gt: ground-truth instances of the class (recall's denominator).

    Returns:
        AP in ``[0, 1]``; 0 when ``num_gt`` is 0 or there is no detection.
    """
    tp = np.asarray(is_tp, dtype=np.float64)
    if num_gt <= 0 or tp.size == 0:
        return 0.0
    tp_cum = np.cumsum(tp)
    recall = tp_cum / num_gt
    precision = tp_cum / np.arange(1, tp.size + 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the best precision at any recall >= r
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def match_detections(detections: Sequence[Segment], ground_truth: Sequence[Segment], iou_threshold: float) -> tuple[list[Segment], np.ndarray]:
    """Greedy one-to-one matching of one class's detections to its ground truth.

    Args:
        detections: detections of one class (any sequences).
        ground_truth: ground truth of the same class.
        iou_threshold: the least tIoU of a match.

    Returns:
        The detections sorted by decreasing confidence (stable) and ``(n,)`` bool, True for matches.
    """
    ranked = sorted(detections, key=lambda s: -s.score)  # sorted() is stable: ties keep input order
    by_video: dict[int, list[int]] = {}
    for j, g in enumerate(ground_truth):
        by_video.setdefault(g.video, []).append(j)
    used = np.zeros(len(ground_truth), dtype=bool)
    hits = np.zeros(len(ranked), dtype=bool)
    for i, det in enumerate(ranked):
        cands = [j for j in by_video.get(det.video, ()) if not used[j]]
        if not cands:
            continue
        ious = temporal_iou(det.start, det.end, [ground_truth[j].start for j in cands], [ground_truth[j].end for j in cands])
        k = int(np.argmax(ious))
        if ious[k] >= iou_threshold:
            used[cands[k]] = True
            hits[i] = True
    return ranked, hits


def mean_average_precision(
    detections: Sequence[Segment],
    ground_truth: Sequence[Segment],
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
) -> dict[str, object]:
    """Interval-level mAP over the classes that have ground truth, at each tIoU threshold.

    Args:
        detections: all detections (every class and sequence), with confidences.
        ground_truth: all ground-truth segments.
        iou_thresholds: the thresholds (PKU-MMD: 0.1, 0.3, 0.5, 0.7).

    Returns:
        ``{"map": {theta: mAP}, "ap": {theta: {class: AP}}, "classes": [classes with ground truth]}``,
        values in ``[0, 1]``. With no ground truth at all, every mAP is 0 and ``classes`` is empty.
    """
    classes = sorted({g.label for g in ground_truth})
    det_by: dict[int, list[Segment]] = {}
    gt_by: dict[int, list[Segment]] = {}
    for d in detections:
        det_by.setdefault(d.label, []).append(d)
    for g in ground_truth:
        gt_by.setdefault(g.label, []).append(g)
    result: dict[str, object] = {"map": {}, "ap": {}, "classes": classes}
    for theta in iou_thresholds:
        per_class = {}
        for c in classes:
            _, hits = match_detections(det_by.get(c, []), gt_by[c], theta)
            per_class[c] = average_precision(hits, len(gt_by[c]))
        result["ap"][float(theta)] = per_class
        result["map"][float(theta)] = float(np.mean(list(per_class.values()))) if classes else 0.0
    return result


def _official_ap(props: list[tuple[float, float]], theta: float, total: int) -> float:
    """The official ``ap(lst, ratio, total)`` on ``(confidence, overlap)`` pairs, step by step."""
    if total == 0:
        return 0.0
    props = sorted(props, key=lambda p: p[0])  # ascending confidence, stable
    pos = float(sum(ov >= theta for _, ov in props))
    number = float(len(props))
    score, old_precision = 0.0, 0.0
    old_recall = min(pos / total, 1.0)
    for _, ov in props:
        number -= 1
        if ov < theta:
            continue
        pos -= 1
        if number == 0:
            break
        precision, recall = pos / number, min(pos / total, 1.0)
        old_precision = max(old_precision, precision)
        score += old_precision * (old_recall - recall)
        old_recall = recall
    return score + old_precision * old_recall


def pku_mmd_official_map(
    detections: Sequence[Segment], ground_truth: Sequence[Segment], iou_threshold: float, num_labels: int = 52
) -> float:
    """``mAP_action`` as the official PKU-MMD ``evaluate.py`` computes it (see the module docstring).

    Args:
        detections, ground_truth: as in :func:`mean_average_precision` (labels ``0..C-1``).
        iou_threshold: theta.
        num_labels: the script's ``number_label`` (52 for PKU-MMD: the mean divides by it).

    Returns:
        The script's mAP in ``[0, 1]``.
    """
    gt_by: dict[tuple[int, int], list[Segment]] = {}
    counts: dict[int, int] = {}
    for g in ground_truth:
        gt_by.setdefault((g.video, g.label), []).append(g)
        counts[g.label] = counts.get(g.label, 0) + 1
    props: dict[int, list[tuple[float, float]]] = {}
    for d in detections:
        # The script's calc_ovlp: overlap over the hull, best over the same-class instances, 0 if none.
        overlap = 0.0
        for g in gt_by.get((d.video, d.label), ()):
            overlap = max(overlap, (min(g.end, d.end) - max(g.start, d.start)) / (max(g.end, d.end) - min(g.start, d.start)))
        props.setdefault(d.label, []).append((d.score, overlap))
    return sum(_official_ap(props.get(c, []), iou_threshold, counts.get(c, 0)) for c in set(props) | set(counts)) / num_labels
