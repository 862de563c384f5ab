"""Self-supervised methods. A file's name is its registry key (``methods/simclr.py`` is ``"simclr"``).

``@register_method(name)`` on the method's class is its only registration: the first look-up of a
name that is not registered yet imports every module of this package, and each method module
registers itself as it is imported. Adding a method is adding its file (and its recipes and test).
"""

from __future__ import annotations

from skelssl.core.registry import Registry, import_submodules
from skelssl.methods.base import Method, momentum_update

__all__ = ["Method", "METHODS", "get_method", "register_method", "momentum_update", "import_methods"]

METHODS: Registry[type[Method]] = Registry("method")


def register_method(name: str):
    """Class decorator: register a method class under ``name`` (a duplicate name is an error)."""
    return METHODS.register(name)


def import_methods() -> list[str]:
    """Import every module of this package (each method registers itself); the registered names."""
    import_submodules(__name__)
    return METHODS.names()


def get_method(name: str) -> type[Method]:
    """The method class registered under ``name`` (``KeyError`` listing the known ones otherwise)."""
    if name not in METHODS:
        import_methods()
    return METHODS.get(name)
