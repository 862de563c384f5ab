"""Self-supervised methods. A file's name is its registry key (``methods/simclr.py`` is ``"simclr"``).

``@register_method(name, ...)`` on the method's class is its only registration: the first look-up of
a name that is not registered yet imports every module of this package, and each method module
registers itself as it is imported. Adding a method is adding its file (and its recipes and test).

The decorator also records what evaluation needs to know of a method, as plain data beside it: its
evaluation presets (``eval.linear.preset: <name>``, ``eval.finetune.preset: <name>``) and the papers'
numbers ``skelssl report`` shows beside ours. :func:`eval_presets` and :func:`published_numbers`
read them; evaluation imports those two and never builds a method.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from skelssl.core.registry import Registry, import_submodules
from skelssl.methods.base import Method, momentum_update

__all__ = [
    "Method",
    "METHODS",
    "get_method",
    "register_method",
    "momentum_update",
    "import_methods",
    "eval_presets",
    "published_numbers",
    "published_rows",
]

METHODS: Registry[type[Method]] = Registry("method")


@dataclass(frozen=True)
class _EvalFacts:
    """A method's evaluation presets (partial ``eval.linear`` / ``eval.finetune`` sections) and numbers."""

    linear: dict[str, Any] | None
    finetune: dict[str, Any] | None
    published: tuple[dict[str, Any], ...]


_FACTS: dict[str, _EvalFacts] = {}
_all_imported = False


def register_method(name: str, *, linear: dict[str, Any] | None = None, finetune: dict[str, Any] | None = None,
                    published: list[dict[str, Any]] | tuple[dict[str, Any], ...] = ()):
    """Class decorator: register a method class under ``name`` (a duplicate name is an error).

    Args:
        name: the registry key (the file's name).
        linear, finetune: the method's evaluation preset of that task, named ``name`` (the fields of
            :class:`~skelssl.engine.eval_config.ClassifierTaskConfig` it sets; the rest keep their defaults).
        published: the papers' numbers (:func:`published_rows`) shown beside ours by ``skelssl report``.
    """

    def deco(cls: type[Method]) -> type[Method]:
        METHODS.add(name, cls)
        _FACTS[name] = _EvalFacts(linear, finetune, tuple(published))
        return cls

    return deco


def import_methods() -> list[str]:
    """Import every module of this package (each method registers itself); the registered names."""
    global _all_imported
    if not _all_imported:
        import_submodules(__name__)
        _all_imported = True
    return METHODS.names()


def get_method(name: str) -> type[Method]:
    """The method class registered under ``name`` (``KeyError`` listing the known ones otherwise)."""
    if name not in METHODS:
        import_methods()
    return METHODS.get(name)


def eval_presets(task: Literal["linear", "finetune"]) -> dict[str, dict[str, Any]]:
    """The methods' presets of an evaluation task, by method name (copies: callers may change them)."""
    import_methods()
    return {name: copy.deepcopy(getattr(facts, task)) for name, facts in sorted(_FACTS.items())
            if getattr(facts, task) is not None}


def published_numbers() -> list[dict[str, Any]]:
    """Every registered method's published numbers (rows of :func:`published_rows`), by method name."""
    import_methods()
    return [dict(row) for _, facts in sorted(_FACTS.items()) for row in facts.published]


def published_rows(method: str, task: str, values: dict[str, float], source: str, ref: str, **extra: Any) -> list[dict[str, Any]]:
    """Published top-1 numbers (%, test split) of one table, one row per protocol.

    Args:
        method: the name as the paper writes it (``"Hi-TRS"``).
        task: ``linear``, ``knn``, ``finetune``, ``semi`` (with ``label_fraction``) or ``transfer``
            (with ``pretrained_on``: the dataset the encoder was pre-trained on).
        values: protocol (:mod:`skelssl.data.protocols` names; PKU-MMD II cross-subject is
            ``pku2-xsub``) to value.
        source: provenance: ``READ`` (read in a public page or image, ``ref`` says which), ``RECALL``
            (recalled from the paper, **not verified**) or ``2nd-hand`` (a third party quoting the paper).
        ref: where the number was read.
        extra: ``label_fraction``, ``pretrained_on``, ``variant``, ``random_init``.
    """
    return [
        {"method": method, "task": task, "protocol": protocol, "metric": "top1", "value": value, "source": source, "ref": ref, **extra}
        for protocol, value in values.items()
    ]
