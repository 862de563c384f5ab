"""Source-format readers, one module per format.

Every reader module defines:

- ``NAME``: the format key used by ``skelssl prepare FORMAT`` (``ntu``, ``nucla``, ...);
- ``LAYOUT``: the skeleton layout name its files use (``None`` when the user must say, e.g. ``arrays``);
- ``DATASET``: the dataset key the named protocols match (``ntu``, ``nucla``, ``pku1``, ``msr``, ...);
- ``discover(source: Path, **options) -> list[Unit]``: the units of work (usually files) under
  ``source``, plus a list of ``(path, reason)`` for files excluded on purpose (returned as
  ``Discovery``), and ``(path, reason)`` for broken entries it met while listing (a file that is
  not a regular file, an unreadable line of a label or split file): ``prepare`` reports those as
  skipped, like a unit whose ``read`` fails. It raises
  :class:`~skelssl.core.conventions.SkeletonFormatError` only when ``source`` as a whole is unusable
  (missing, unreadable, holds nothing of this format, or a file that defines the protocol of every
  sample, such as MSR's protocol list or PKU-MMD's split files, is damaged), never for one bad
  sample or data file;
- ``read(unit, **options) -> list[RawSample]``: the samples of one unit. It raises
  ``SkeletonFormatError`` naming the file and the problem for a malformed unit, never a bare
  ``IndexError``/``ValueError``, and never hangs: files are read through
  :func:`skelssl.data.formats._files.read_bytes` (regular files only, a bounded number of bytes).

Readers return :class:`~skelssl.data.sample.RawSample` records in the store's ``(T, B, V, C)`` layout;
the preprocessing pipelines (:mod:`skelssl.data.preprocess`) turn bodies into the store's person slots.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["Discovery", "FORMATS", "get_format"]

FORMATS = ("ntu", "nucla", "msr", "utkinect", "pku_mmd", "pyskl", "arrays")


@dataclass
class Discovery:
    """What a reader found under a source: units to read, files it excluded on purpose, and broken
    entries met while listing (reported by ``prepare`` as skipped, with the reason)."""

    units: list[Any]
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def get_format(name: str) -> ModuleType:
    """The reader module for a format key; a one-line error for an unknown key."""
    if name not in FORMATS:
        raise KeyError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    return importlib.import_module(f"skelssl.data.formats.{name}")


def unit_path(unit: Any) -> str:
    """A printable path for a unit (a path, or a tuple whose first item is one)."""
    if isinstance(unit, (tuple, list)):
        unit = unit[0]
    return str(unit if isinstance(unit, (str, Path)) else getattr(unit, "path", unit))
