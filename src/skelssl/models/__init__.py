"""Encoders (backbones). Strings become encoders only here, at the edge (config and CLI).

A file's name is its encoder's registry key (``models/agcn.py`` is ``"agcn"``), and
``@register_encoder(name)`` on the class is its only registration: the first look-up of a name that
is not registered yet imports every module of this package, and each encoder module registers itself
as it is imported (as methods do, :mod:`skelssl.methods`). Importing ``skelssl.models`` alone stays
cheap: no encoder module is imported until an encoder is asked for by name.
"""

from __future__ import annotations

from typing import Any

from skelssl.core.layouts import get_layout
from skelssl.core.registry import Registry, import_submodules
from skelssl.models.base import Encoder

__all__ = ["Encoder", "ENCODERS", "build_encoder", "get_encoder", "import_encoders", "register_encoder"]

ENCODERS: Registry[type[Encoder]] = Registry("encoder")


def register_encoder(name: str):
    """Class decorator: register an encoder class under ``name`` (a duplicate name is an error)."""
    return ENCODERS.register(name)


def import_encoders() -> list[str]:
    """Import every module of this package (each encoder registers itself); the registered names."""
    import_submodules(__name__)
    return ENCODERS.names()


def _ensure(name: str) -> None:
    """Make sure ``name`` is registered if any module of this package registers it."""
    if name not in ENCODERS:
        import_encoders()


def get_encoder(name: str) -> type[Encoder]:
    """The encoder class registered under ``name`` (``KeyError`` listing the known ones otherwise)."""
    _ensure(name)
    return ENCODERS.get(name)


def build_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build a registered encoder from keyword arguments and record its spec.

    ``layout`` may be given by name; it is stored by name in ``encoder.spec`` so that the spec is
    JSON-serialisable and an encoder checkpoint can rebuild the encoder. The spec also records the
    constructor's defaults for every argument not given (recipes state only what differs from them), so
    a saved encoder is rebuilt as it was trained even if a default changes later.
    """
    cls = get_encoder(name)
    spec_kwargs = {**_constructor_defaults(cls), **kwargs}
    if "layout" in kwargs:
        layout = get_layout(kwargs["layout"])
        kwargs["layout"] = layout
        spec_kwargs["layout"] = layout.name
    enc = cls(**kwargs)
    enc.spec = {"name": name, "kwargs": spec_kwargs}
    return enc


def _constructor_defaults(cls: type) -> dict[str, Any]:
    """The JSON-representable keyword defaults of ``cls.__init__`` (tuples as lists)."""
    import inspect
    import json

    out: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.default is inspect.Parameter.empty:
            continue
        value = list(param.default) if isinstance(param.default, tuple) else param.default
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[name] = value
    return out
