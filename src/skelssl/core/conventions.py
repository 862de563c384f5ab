"""Tensor conventions and the project's error types.

- A sample is ``(C, T, V, M)``: coordinates, frames, joints, persons. A batch is ``(N, C, T, V, M)``.
- On disk (the packed store) frames are laid out ``(T, M, V, C)`` so that one sample is one contiguous
  slice; :func:`to_ctvm` / :func:`to_tmvc` convert at that boundary.
- Variable-length batches are zero-padded along ``T`` and carry ``lengths`` (``(N,)`` int64).
- A person slot that is all zeros is "absent".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["SkeletonFormatError", "StoreError", "to_ctvm", "to_tmvc"]


class SkeletonFormatError(ValueError):
    """A source file that cannot be read as the format it claims to be.

    The message always names the file and the problem, e.g.
    ``S001C001P001R001A001.skeleton: line 7: expected 25 joints, got 'abc'``.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class StoreError(RuntimeError):
    """A packed store that is missing, incomplete or inconsistent."""


def to_ctvm(frames: np.ndarray) -> np.ndarray:
    """``(T, M, V, C)`` -> ``(C, T, V, M)`` (a view when possible)."""
    return np.transpose(frames, (3, 0, 2, 1))


def to_tmvc(sample: np.ndarray) -> np.ndarray:
    """``(C, T, V, M)`` -> ``(T, M, V, C)``."""
    return np.transpose(sample, (1, 3, 2, 0))
