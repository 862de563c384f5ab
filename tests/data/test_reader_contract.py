"""Every source format meets the one reader contract, and the prepare driver names no format."""

from __future__ import annotations

import importlib
import inspect

import pytest

from skelssl.data import prepare as prepare_module
from skelssl.data.formats import FORMATS, Reader, get_format


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_is_a_reader(name):
    reader = get_format(name)
    module = importlib.import_module(f"skelssl.data.formats.{name}")
    assert isinstance(reader, Reader) and reader is module.READER
    assert (reader.NAME, reader.LAYOUT, reader.DATASET) == (name, module.LAYOUT, module.DATASET)
    assert reader.read is module.read and reader.discover is module.discover
    assert reader.NUM_PERSONS in (1, 2)


def test_hook_defaults_and_overrides():
    nucla, pku, ntu = get_format("nucla"), get_format("pku_mmd"), get_format("ntu")
    assert nucla.NUM_PERSONS == 1 and ntu.NUM_PERSONS == 2
    assert nucla.layout_for("anywhere") == "kinect20" and nucla.dataset_for() == "nucla"
    assert nucla.channels_for("anywhere") == ["x", "y", "z"] and nucla.recorded_store("anywhere") == {}
    assert list(nucla.class_names_for(9)) == list(nucla.CLASS_NAMES)
    assert pku.dataset_for() == "pku1" and pku.dataset_for(untrimmed=True) == "pku1_untrimmed"
    assert len(ntu.class_names_for(59)) == 60 and len(ntu.class_names_for(60)) == 120


def test_prepare_driver_names_no_format():
    source = inspect.getsource(prepare_module)
    assert "hasattr" not in source and "getattr(reader" not in source and "writer._" not in source
    for name in FORMATS:
        assert f'"{name}"' not in source and f"'{name}'" not in source
