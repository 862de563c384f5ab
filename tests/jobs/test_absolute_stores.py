"""Run configs name their stores by absolute path; a run recorded before that still resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from skelssl.engine.config import ConfigError, load_config, to_dict
from skelssl.jobs.pretrain import absolute_stores, check_same_run


def test_absolute_stores_makes_both_store_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = absolute_stores(load_config(None, ["data.store=stores/a", "monitor.store=../b"]))
    assert cfg.data.store == str(tmp_path / "stores" / "a")
    assert Path(cfg.monitor.store) == Path(tmp_path / ".." / "b").absolute()
    assert absolute_stores(load_config(None, [])).data.store == ""  # no store stays no store


def test_a_run_recorded_with_a_relative_store_resumes_from_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    recorded = to_dict(load_config(None, ["data.store=stores/a"]))
    (run / "config.yaml").write_text(yaml.safe_dump(recorded))
    check_same_run(run, to_dict(absolute_stores(load_config(None, ["data.store=stores/a"]))))
    with pytest.raises(ConfigError, match="data.store"):
        check_same_run(run, to_dict(absolute_stores(load_config(None, ["data.store=stores/other"]))))
