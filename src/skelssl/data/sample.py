"""The record every format reader produces, before any preprocessing pipeline runs."""

from __future__ import annotations

import dataclasses
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

    @property
    def where(self) -> str:
        """The source file, else the name: what an error message about this sample names."""
        return self.source or self.name

    def tracking_ids(self) -> np.ndarray:
        """``(T, B)`` int64 tracking ids, ``-1`` everywhere when the reader gave none."""
        if self.body_ids is None:
            return np.full(self.bodies.shape[:2], -1, dtype=np.int64)
        if self.body_ids.shape != self.bodies.shape[:2]:
            raise ValueError(f"{self.name}: body_ids {self.body_ids.shape} do not match bodies {self.bodies.shape[:2]}")
        return np.asarray(self.body_ids, dtype=np.int64)

    def with_bodies(self, bodies: np.ndarray, ids: np.ndarray | None) -> "RawSample":
        """A new sample with this one's metadata and the given person slots (nothing shared with it)."""
        return dataclasses.replace(
            self,
            bodies=np.ascontiguousarray(bodies, dtype=np.float32),
            body_ids=None if ids is None else np.ascontiguousarray(ids, dtype=np.int64),
            frame_labels=None if self.frame_labels is None else np.array(self.frame_labels, copy=True),
            extra=dict(self.extra),
        )

    def meta(self) -> dict[str, int]:
        out = {k: int(getattr(self, k)) for k in META_FIELDS}
        out.update({k: int(v) for k, v in self.extra.items()})
        return out
