"""Every recipe in configs/ (the ``_base.yaml`` files the others start from too) loads strictly (unknown
keys, wrong types and bad values are errors, in the ``eval`` section too), names a registered encoder
and method, and resolves its batch on one device."""

from __future__ import annotations

from pathlib import Path

import pytest

from skelssl.engine.config import load_config, resolve_batch

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPES = sorted(CONFIGS.rglob("*.yaml"))


def test_there_are_recipes():
    assert len(RECIPES) >= 25


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_recipe_loads(recipe):
    from skelssl.methods import import_methods
    from skelssl.models import import_encoders

    cfg = resolve_batch(load_config(recipe), 1)
    assert cfg.encoder.name in import_encoders()
    # A supervised baseline names no method: it is evaluated with --random-init (trained from scratch).
    assert cfg.method.name in import_methods() or (not cfg.method.name and "supervised" in recipe.name)
    assert cfg.data.batch_size >= 1 and cfg.trainer.epochs >= 1
