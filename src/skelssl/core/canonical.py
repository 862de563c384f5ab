"""Canonical JSON of a config or record, and its hash: the one ``config_hash`` of the project.

A checkpoint records the hash of its run's resolved config, and ``results.json`` the hash of the
evaluation's settings; both come from :func:`config_hash`, so equal content gives the same 16 hex
digits wherever it is hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["to_jsonable", "config_hash"]


def to_jsonable(obj: Any, strict: bool = True) -> Any:
    """Plain JSON types from dataclasses, paths, tuples, numpy and 0-d / small torch values.

    Args:
        obj: the value.
        strict: raise ``TypeError`` for a value of no known kind; else store its ``str``.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj), strict)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, strict) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(v, strict) for v in items]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "tolist"):  # numpy arrays / scalars and torch tensors
        return to_jsonable(obj.tolist(), strict)
    if hasattr(obj, "name") and hasattr(obj, "num_joints"):  # a Layout: stored by name, as in encoder specs
        return str(obj.name)
    if not strict:
        return str(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} in JSON: {obj!r}")


def config_hash(obj: Any, length: int = 16) -> str:
    """First ``length`` hex digits of the SHA-256 of ``obj`` as canonical JSON (sorted keys, no spaces).

    Stable across processes and Python versions for the same content; dataclasses hash like the dict
    of their fields, tuples like lists; a value of no JSON kind hashes as its ``str``.
    """
    text = json.dumps(to_jsonable(obj, strict=False), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
