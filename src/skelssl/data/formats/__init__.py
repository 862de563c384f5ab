"""Source-format readers, one module per format, each meeting one typed contract: :class:`Reader`.

A reader module ``formats/<name>.py`` holds its parsing functions (``discover``, ``read``, and the
hooks it needs) and ends with ``READER``, an instance of a :class:`Reader` subclass naming them.
``get_format(name)`` returns that object; ``prepare`` calls every member of :class:`Reader` and never
asks which format it holds: what differs between formats is a class attribute or a hook here, with
its default. The two required methods:

- ``discover(source: Path, **options) -> Discovery``: the units of work (usually files) under
  ``source``, plus a list of ``(path, reason)`` for files excluded on purpose, and ``(path, reason)``
  for broken entries it met while listing (a file that is not a regular file, an unreadable line of
  a label or split file): ``prepare`` reports those as skipped, like a unit whose ``read`` fails. It
  raises :class:`~skelssl.core.conventions.SkeletonFormatError` only when ``source`` as a whole is
  unusable (missing, unreadable, holds nothing of this format, or a file that defines the protocol of
  every sample, such as MSR's protocol list or PKU-MMD's split files, is damaged), never for one bad
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
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from skelssl.data.sample import RawSample

__all__ = ["Discovery", "FORMATS", "Reader", "get_format"]

FORMATS = ("ntu", "nucla", "msr", "utkinect", "pku_mmd", "pyskl", "arrays")


@dataclass
class Discovery:
    """What a reader found under a source: units to read, files it excluded on purpose, and broken
    entries met while listing (reported by ``prepare`` as skipped, with the reason)."""

    units: list[Any]
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


class Reader(ABC):
    """The contract of a source-format reader: what ``prepare`` may ask of every format.

    A subclass sets the class attributes and the two abstract methods, and overrides a hook only
    where its format differs from the default.

    Attributes:
        NAME: the format key of ``skelssl prepare FORMAT`` (``ntu``, ``nucla``, ...).
        LAYOUT: the skeleton layout name its files use; ``None`` when the files do not imply one
            (``pyskl``, ``arrays``: :meth:`layout_for` decides).
        DATASET: the dataset key the named protocols match (``ntu``, ``nucla``, ``pku1``, ...).
        NUM_PERSONS: the store's default person slots ``M`` (1 for the single-person Kinect v1
            datasets, 2 otherwise); ``--persons`` overrides it.
        CLASS_NAMES: class names by label, where the format fixes them (``None``: from the data).
        OPTIONS: ``-o KEY=VALUE`` options beyond the keyword arguments of ``discover`` and ``read``.
    """

    NAME: ClassVar[str]
    LAYOUT: ClassVar[str | None]
    DATASET: ClassVar[str]
    NUM_PERSONS: ClassVar[int] = 2
    CLASS_NAMES: ClassVar[Sequence[str] | None] = None
    OPTIONS: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def discover(self, source: Path, **options: Any) -> Discovery:
        """The units under ``source`` (see the module doc)."""

    @abstractmethod
    def read(self, unit: Any, **options: Any) -> list[RawSample]:
        """The samples of one unit (see the module doc)."""

    # -- hooks, with the defaults that fit a fixed-layout 3D dataset --------------------------------
    def layout_for(self, source: Path, **options: Any) -> str | None:
        """The store's layout name, called after :meth:`discover`: the ``layout`` option, else
        :attr:`LAYOUT`; ``None`` makes ``prepare`` infer it from the joint count of the first sample."""
        return options.get("layout") or self.LAYOUT

    def dataset_for(self, **options: Any) -> str:
        """The store's ``dataset`` key for these options (PKU-MMD: another key for untrimmed stores)."""
        return self.DATASET

    def channels_for(self, source: Path, **options: Any) -> list[str]:
        """The store's channel names: ``x, y, z`` unless the data says otherwise (2D, scores)."""
        return ["x", "y", "z"]

    def recorded_store(self, source: Path, **options: Any) -> dict[str, Any]:
        """What a file written by ``skelssl export`` recorded of its store (``dataset``, ``pipeline``,
        ``num_persons``, ``class_names``), which ``prepare`` restores; ``{}`` for other sources."""
        return {}

    def class_names_for(self, max_label: int) -> Sequence[str] | None:
        """The class names once every label has been read (NTU: 60 or 120 classes); ``None`` keeps
        the names known before reading."""
        return self.CLASS_NAMES


def get_format(name: str) -> Reader:
    """The reader of a format key (its module's ``READER``); a one-line error for an unknown key."""
    if name not in FORMATS:
        raise KeyError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    return importlib.import_module(f"skelssl.data.formats.{name}").READER


def unit_path(unit: Any) -> str:
    """A printable path for a unit (a path, or a tuple whose first item is one)."""
    if isinstance(unit, (tuple, list)):
        unit = unit[0]
    return str(unit if isinstance(unit, (str, Path)) else getattr(unit, "path", unit))
