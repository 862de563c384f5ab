"""Reading (and writing) the official ``torch.save`` files without ever running code from them.

``torch.load(weights_only=True)`` unpickles tensors and plain containers only; the one class the
official files need besides those is MAMP's ``args``, an ``argparse.Namespace`` (attributes only, no
behaviour on load), allowed by :func:`torch.serialization.safe_globals`. Anything else a pickle asks
for (``os.system``, a model class, ...) is refused with one line naming it.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from skelssl.core.files import OutputError, atomic_write_with
from skelssl.engine.checkpoint import CheckpointError

__all__ = ["ALLOWED_CLASSES", "load_official", "save_official", "check_export_output", "is_our_export", "strip_prefix",
           "to_plain", "from_plain"]

#: Classes a file may hold besides tensors and plain containers: MAMP's ``args``.
ALLOWED_CLASSES = (argparse.Namespace,)
#: The record an exported file carries inside its zip archive; torch.load ignores it, and it marks
#: the file as one skelssl wrote (so ``--overwrite`` may replace it, and nothing else).
EXPORT_RECORD = "skelssl-export.json"
_NAMESPACE = "__argparse_namespace__"


def load_official(path: str | Path) -> Any:
    """``torch.load`` of an official checkpoint on the CPU, tensors and allowed classes only.

    Raises:
        CheckpointError: a missing file, a file that is no PyTorch checkpoint, or a pickle asking for
            any other class or function (one line: what it asked for).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # protocol-version notes of the weights-only unpickler
        try:
            with torch.serialization.safe_globals(list(ALLOWED_CLASSES)):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            m = re.search(r"GLOBAL ([\w.]+)", str(e))
            if m:
                raise CheckpointError(
                    f"{path}: refused: its pickle asks for {m[1]}; skelssl loads only tensors, plain containers "
                    f"and argparse.Namespace from a checkpoint and never runs code from it") from None
            why = re.search(r"(Unsupported [^\n]*)", str(e))
            raise CheckpointError(f"{path}: not a PyTorch checkpoint of tensors (the weights-only unpickler "
                                  f"stopped: {why[1] if why else 'unreadable pickle'})") from None
        except Exception as e:  # torch raises many types for files that are not checkpoints
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first[:160]})") from None


def strip_prefix(state: dict[str, Any], prefix: str = "module.") -> tuple[dict[str, Any], str]:
    """Remove a ``DataParallel`` prefix when every key has it: ``(state, prefix removed or "")``."""
    keys = [k for k in state if isinstance(k, str)]
    if keys and len(keys) == len(state) and all(k.startswith(prefix) for k in keys):
        return {k[len(prefix):]: v for k, v in state.items()}, prefix
    return dict(state), ""


def to_plain(x: Any) -> Any:
    """Namespaces as marked dicts (for :func:`skelssl.engine.checkpoint.flatten_state`)."""
    if isinstance(x, argparse.Namespace):
        return {_NAMESPACE: {k: to_plain(v) for k, v in vars(x).items()}}
    if isinstance(x, dict):
        return {k: to_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_plain(v) for v in x)
    return x


def from_plain(x: Any) -> Any:
    """Inverse of :func:`to_plain`."""
    if isinstance(x, dict):
        if set(x) == {_NAMESPACE}:
            return argparse.Namespace(**{k: from_plain(v) for k, v in x[_NAMESPACE].items()})
        return {k: from_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(from_plain(v) for v in x)
    return x


def is_our_export(path: Path) -> bool:
    """True when ``path`` is a file :func:`save_official` wrote (its archive holds our record)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/")[-1] == EXPORT_RECORD for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def check_export_output(path: Path, overwrite: bool) -> None:
    """Refuse a folder, a link, or an existing file that skelssl did not export (or any without ``overwrite``)."""
    if path.is_dir() or path.is_symlink():
        raise OutputError(f"{path} is a folder or a link; give the file to write")
    if path.exists():
        if not is_our_export(path):
            raise OutputError(f"{path} exists and is not a file skelssl exported; choose another --out")
        if not overwrite:
            raise OutputError(f"{path} exists (an earlier export); pass --overwrite to replace it")


def save_official(obj: Any, path: str | Path, record: str, overwrite: bool = False) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically, with ``record`` (JSON text) inside the archive.

    Raises:
        OutputError: ``path`` is a folder, or a file that skelssl did not export (or ``overwrite`` is off).
    """
    path = Path(path)
    check_export_output(path, overwrite)

    def write(tmp: str) -> None:
        torch.save(obj, tmp)
        with zipfile.ZipFile(tmp, "a") as z:
            archive = z.namelist()[0].split("/")[0]
            z.writestr(f"{archive}/{EXPORT_RECORD}", record)

    atomic_write_with(path, write)
    return path
