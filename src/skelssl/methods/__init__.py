"""Self-supervised methods. A file's name is its registry key (``methods/simclr.py`` is ``"simclr"``)."""

from __future__ import annotations

import importlib

from skelssl.core.registry import Registry
from skelssl.methods.base import Method, momentum_update

__all__ = ["Method", "METHODS", "get_method", "register_method", "momentum_update"]

METHODS: Registry[type[Method]] = Registry("method")

_MODULES = {
    "simclr": "skelssl.methods.simclr",
    "hitrs": "skelssl.methods.hitrs",
    "isc": "skelssl.methods.isc",
    "motion_transformer": "skelssl.methods.motion_transformer",
    "mamp": "skelssl.methods.mamp",
}


def register_method(name: str):
    return METHODS.register(name)


def get_method(name: str) -> type[Method]:
    if name not in METHODS and name in _MODULES:
        try:
            importlib.import_module(_MODULES[name])
        except ModuleNotFoundError as e:
            if e.name != _MODULES[name]:
                raise
    return METHODS.get(name)
