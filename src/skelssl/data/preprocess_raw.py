"""The ``raw`` preprocessing pipeline (Hi-TRS ``prepare_NTU_60.py``): body slots kept as listed.

Camera coordinates as recorded; person slot ``m`` is body slot ``m``; no centring, no rotation, no
denoising. :func:`pad_slots` (empty body slots up to the person count) is shared with ``agcn``.
"""

from __future__ import annotations

import numpy as np

from skelssl.core.layouts import Layout
from skelssl.data.sample import RawSample

__all__ = ["raw", "pad_slots"]


def pad_slots(bodies: np.ndarray, ids: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Append empty body slots (zeros, id ``-1``) up to ``slots``; never removes any."""
    missing = slots - bodies.shape[1]
    if missing <= 0:
        return bodies, ids
    t, _, v, c = bodies.shape
    bodies = np.concatenate([bodies, np.zeros((t, missing, v, c), dtype=bodies.dtype)], axis=1)
    ids = np.concatenate([ids, np.full((t, missing), -1, dtype=np.int64)], axis=1)
    return bodies, ids


def raw(raw: RawSample, layout: Layout, num_persons: int) -> RawSample:
    """Hi-TRS: person slot ``m`` = body slot ``m`` of each frame, coordinates untouched.

    Hi-TRS's ``prepare_NTU_60.py`` writes the ``m``-th body listed in a frame into slot ``m`` (first two)
    and keeps the camera-space metres as recorded. Missing slots are zero-filled.
    """
    bodies, ids = pad_slots(raw.bodies, raw.tracking_ids(), num_persons)
    bodies, ids = bodies[:, :num_persons], ids[:, :num_persons]  # (T, M, V, C), (T, M)
    return raw.with_bodies(bodies.copy(), ids.copy() if raw.body_ids is not None else None)
