"""The optional compiled kernels: loaded when numba is there, skipped cleanly when it is not."""

from __future__ import annotations

import importlib

import pytest

from skelssl.data import _numba


@pytest.fixture(autouse=True)
def fresh_cache():
    _numba.kernels.cache_clear()
    yield
    _numba.kernels.cache_clear()


def test_switched_off_by_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SKELSSL_NUMBA", "0")
    assert _numba.kernels("skelssl.data._agcn_compiled") is None


def test_missing_numba_means_no_kernels(monkeypatch: pytest.MonkeyPatch):
    def no_numba(name):
        raise ModuleNotFoundError("No module named 'numba'", name="numba")

    monkeypatch.setattr(importlib, "import_module", no_numba)
    assert _numba.kernels("skelssl.data._agcn_compiled") is None


def test_a_broken_kernel_module_is_not_hidden(monkeypatch: pytest.MonkeyPatch):
    def broken(name):
        raise ModuleNotFoundError("No module named 'skelssl.data._typo'", name="skelssl.data._typo")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="_typo"):
        _numba.kernels("skelssl.data._agcn_compiled")


def test_loaded_where_numba_is_installed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SKELSSL_NUMBA", raising=False)
    pytest.importorskip("numba")
    module = _numba.kernels("skelssl.data._agcn_compiled")
    assert module is not None and callable(module.steps)
