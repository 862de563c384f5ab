"""Preprocessing pipelines: a reader's body slots -> the store's person slots.

A reader returns a :class:`~skelssl.data.sample.RawSample` whose ``bodies`` are ``(T, B, V, C)``, one
slot per body in the order the source lists them (NTU: up to 4). A pipeline turns that into
``(T, M, V, C)`` person slots (``M = num_persons``, 2 for every published protocol) and may normalise
the coordinates. Three incompatible pipelines are used by the methods we reproduce (docs/protocols.md,
docs/mamp.md):

- ``raw`` (Hi-TRS ``prepare_NTU_60.py``; in :mod:`skelssl.data.preprocess_raw`): camera coordinates as
  recorded; person slot ``m`` is body slot ``m``; no centring, no rotation, no denoising.
- ``agcn`` (ISC ``data_gen/ntu_gendata.py`` + 2s-AGCN ``data_gen/preprocess.py::pre_normalization``; in
  :mod:`skelssl.data.preprocess_agcn`):
  keep the two most energetic bodies, shift/loop-fill empty frames, centre on body 0's spine joint,
  rotate body 0's frame-0 hip->spine bone onto +z, then its shoulder line onto +x (that second
  rotation tilts the spine off +z again, by 0.3-7 degrees on real NTU samples, as in the official code).
- ``ctrgcn`` (MAMP, i.e. the SGN / CTR-GCN scripts, docs/mamp.md; in
  :mod:`skelssl.data.preprocess_ctrgcn`): drop empty frames, denoise tracked bodies by length, spread
  and motion, two actor slots by non-overlapping intervals, centre on actor 1's first spine joint, no
  rotation; the output may be shorter than the input. ``ctrgcn_dup`` copies a single actor into the
  empty second slot, as MAMP's NTU-120 arrays do.

Unlike the official code the store keeps each sample's real length ``T`` (no padding to 300 frames),
so ``agcn``'s loop-fill acts within those ``T`` frames only; the output has ``T' = T``.

Each pipeline is one module ``preprocess_<name>.py`` whose public function has the signature of
:func:`~skelssl.data.preprocess_raw.raw`; this module checks the input once (``_check_input``) and
dispatches by name (``_PIPELINES``). Pipeline modules import nothing from here, nor each other's
private names (``agcn`` uses ``raw``'s public ``pad_slots``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from skelssl.core.conventions import SkeletonFormatError
from skelssl.core.layouts import Layout, get_layout
from skelssl.data.preprocess_agcn import agcn
from skelssl.data.preprocess_ctrgcn import ctrgcn, ctrgcn_dup
from skelssl.data.preprocess_raw import raw as raw_pipeline
from skelssl.data.sample import RawSample

__all__ = ["PIPELINES", "apply_pipeline"]


def _check_input(raw: RawSample, layout: Layout, num_persons: int) -> None:
    """Raise :class:`SkeletonFormatError` for input no pipeline can process."""
    if num_persons < 1:
        raise ValueError(f"num_persons must be >= 1, got {num_persons}")
    bodies = raw.bodies
    if bodies.shape[2] != layout.num_joints:
        raise SkeletonFormatError(
            raw.where, f"{bodies.shape[2]} joints per body, layout {layout.name} has {layout.num_joints}"
        )
    finite = np.isfinite(bodies)
    if not finite.all():
        bad = np.flatnonzero(~finite.reshape(bodies.shape[0], -1).all(axis=1))
        raise SkeletonFormatError(
            raw.where,
            f"{int((~finite).sum())} non-finite coordinate values (NaN/inf), first at frame {int(bad[0])}",
        )
    if bodies.shape[0] == 0 or not bodies.any():
        raise SkeletonFormatError(raw.where, "no body in any frame (all coordinates are zero)")


_PIPELINES: dict[str, Callable[[RawSample, Layout, int], RawSample]] = {
    "raw": raw_pipeline,  # Hi-TRS
    "agcn": agcn,  # ISC / 2s-AGCN
    "ctrgcn": ctrgcn,  # SGN / CTR-GCN denoising as MAMP uses it
    "ctrgcn_dup": ctrgcn_dup,  # the same, a single actor copied into the empty slots (MAMP's NTU-120 arrays)
}
PIPELINES: tuple[str, ...] = tuple(_PIPELINES)


def apply_pipeline(name: str, raw: RawSample, layout: Layout | str, num_persons: int = 2) -> RawSample:
    """Run preprocessing pipeline ``name`` on one sample.

    Args:
        name: one of :data:`PIPELINES` (``"raw"``, ``"agcn"``, ``"ctrgcn"``, ``"ctrgcn_dup"``).
        raw: a reader's sample, ``bodies`` ``(T, B, V, C)``; never modified.
        layout: the skeleton layout (or its name) of ``raw``; gives the spine/hip/shoulder joints.
        num_persons: person slots ``M`` of the result (2 in every published protocol).

    Returns:
        A new :class:`RawSample` with the same metadata whose ``bodies`` are ``(T', M, V, C)`` float32
        person slots (absent person = zeros), ``body_ids`` ``(T, M)`` following the same slots and frame
        moves (``None`` if the input had none), and a copy of ``frame_labels``. ``T' = T`` except for
        ``ctrgcn``, which drops empty frames.

    Raises:
        KeyError: unknown pipeline name (the message lists the known ones).
        SkeletonFormatError: NaN/inf coordinates, no body in any frame, or a joint count that does not
            match ``layout`` (the message names ``raw.source`` or ``raw.name``).
    """
    try:
        fn = _PIPELINES[name]
    except KeyError:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}") from None
    layout = get_layout(layout)
    _check_input(raw, layout, num_persons)
    return fn(raw, layout, num_persons)
