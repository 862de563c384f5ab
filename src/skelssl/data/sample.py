"""The record every format reader produces, before any preprocessing pipeline runs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["RawSample", "META_FIELDS"]

# Integer metadata columns every store has (``-1`` = unknown / not applicable).
META_FIELDS = ("label", "subject", "view", "setup", "repetition")


@dataclass
class RawSample:
    """One sequence as read from its source file, in the store's frame layout.

    Args:
        name: unique sample name (NTU style ``S001C001P001R001A001``, or the file stem).
        bodies: ``(T, B, V, C)`` float32; ``B`` body slots in the order the source lists them in each
            frame (NTU: up to 4); an absent body is all zeros. ``C`` is 3 (x, y, z) unless a reader
            was asked for more fields.
        label: 0-based class index, ``-1`` when unknown.
        subject, view, setup, repetition: integer metadata from the source (``-1`` unknown). ``view``
            is the camera / view id as the dataset numbers it (NTU camera 1..3, N-UCLA view 1..3).
        source: the file the sample came from (for reports).
        body_ids: ``(T, B)`` int64 tracking ids per slot (``-1`` absent) where the format has them.
        frame_labels: ``(T,)`` int32 per-frame class (``-1`` background) for untrimmed sequences.
        extra: further integer metadata columns (for example official split membership).
    """

    name: str
    bodies: np.ndarray
    label: int = -1
    subject: int = -1
    view: int = -1
    setup: int = -1
    repetition: int = -1
    source: str = ""
    body_ids: np.ndarray | None = None
    frame_labels: np.ndarray | None = None
    extra: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bodies.ndim != 4:
            raise ValueError(f"{self.name}: bodies must be (T, B, V, C), got shape {self.bodies.shape}")

    @property
    def num_frames(self) -> int:
        return int(self.bodies.shape[0])

    def meta(self) -> dict[str, int]:
        out = {k: int(getattr(self, k)) for k in META_FIELDS}
        out.update({k: int(v) for k, v in self.extra.items()})
        return out
