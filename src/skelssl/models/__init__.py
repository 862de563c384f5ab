"""Encoders (backbones). Strings become encoders only here, at the edge (config and CLI)."""

from __future__ import annotations

import importlib
from typing import Any

from skelssl.core.layouts import get_layout
from skelssl.core.registry import Registry
from skelssl.models.base import Encoder

__all__ = ["Encoder", "ENCODERS", "build_encoder", "register_encoder"]

ENCODERS: Registry[type[Encoder]] = Registry("encoder")

# name -> module defining it; imported lazily so that importing skelssl.models stays cheap.
_MODULES = {
    "stgcn": "skelssl.models.stgcn",
    "hitrs": "skelssl.models.hitrs",
    "motion_transformer": "skelssl.models.motion_transformer",
    "gru": "skelssl.models.gru",
    "agcn": "skelssl.models.agcn",
    "hcn": "skelssl.models.hcn",
    "mamp": "skelssl.models.mamp",
}


def register_encoder(name: str):
    """Class decorator: register an encoder class under ``name`` (a duplicate name is an error)."""
    return ENCODERS.register(name)


def _ensure(name: str) -> None:
    if name not in ENCODERS and name in _MODULES:
        try:
            importlib.import_module(_MODULES[name])
        except ModuleNotFoundError as e:
            if e.name != _MODULES[name]:
                raise


def build_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build a registered encoder from keyword arguments and record its spec.

    ``layout`` may be given by name; it is stored by name in ``encoder.spec`` so that the spec is
    JSON-serialisable and an encoder checkpoint can rebuild the encoder.
    """
    _ensure(name)
    cls = ENCODERS.get(name)
    spec_kwargs = dict(kwargs)
    if "layout" in kwargs:
        layout = get_layout(kwargs["layout"])
        kwargs["layout"] = layout
        spec_kwargs["layout"] = layout.name
    enc = cls(**kwargs)
    enc.spec = {"name": name, "kwargs": spec_kwargs}
    return enc
