"""Typed configs: strict recipes, checked dotted overrides, hashing, strict component kwargs."""

from __future__ import annotations

import pytest
import yaml

from _toys import TOY_ENCODER, TOY_METHOD, ToyEncoder, ToyMethod
from skelssl.engine.config import (
    ComponentConfig,
    ConfigError,
    RunConfig,
    build_encoder_from_config,
    build_method_from_config,
    checked_kwargs,
    config_hash,
    config_keys,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_and_round_trip(tmp_path):
    cfg = load_config(None)
    assert cfg == RunConfig()
    data = to_dict(cfg)
    assert from_dict(RunConfig, data) == cfg
    saved = save_config(cfg, tmp_path / "config.yaml")
    assert load_config(saved) == cfg
    assert "optim.lr" in config_keys() and "trainer.ckpt_every_steps" in config_keys()


def test_recipe_values_are_typed(tmp_path):
    recipe = write(
        tmp_path / "r.yaml",
        {"optim": {"name": "sgd", "lr": "1e-3", "betas": [0.9, 0.95]}, "trainer": {"devices": "auto", "max_steps": 1e3}},
    )
    cfg = load_config(recipe)
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == [0.9, 0.95]
    assert cfg.trainer.devices == "auto"
    assert cfg.trainer.max_steps == 1000 and isinstance(cfg.trainer.max_steps, int)


@pytest.mark.parametrize(
    "recipe, bad_key, suggestion",
    [
        ({"optim": {"lrr": 0.1}}, "optim.lrr", "optim.lr"),
        ({"optimizer": {"lr": 0.1}}, "optimizer", "optim"),
        ({"trainer": {"epoch": 3}}, "trainer.epoch", "trainer.epochs"),
    ],
)
def test_unknown_recipe_key_names_it_and_suggests(tmp_path, recipe, bad_key, suggestion):
    path = write(tmp_path / "bad.yaml", recipe)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert f"'{bad_key}'" in msg and suggestion in msg and "bad.yaml" in msg


def test_overrides_are_parsed_and_coerced():
    cfg = load_config(
        None,
        [
            "optim.lr=1e-3",
            "trainer.devices=2",
            "trainer.max_steps=null",
            "trainer.epochs=1e2",
            "optim.betas=[0.9, 0.95]",
            "data.split=all",
            "encoder.name=gru",
            "encoder.kwargs.hidden=32",
            "eval.knn.ks=[20]",
            "eval.linear.preset=hitrs",
            "trainer.progress=false",
            "optim.no_decay=[bias, norm]",
        ],
    )
    assert cfg.optim.lr == 0.001
    assert cfg.trainer.devices == 2 and cfg.trainer.max_steps is None and cfg.trainer.epochs == 100
    assert cfg.optim.betas == [0.9, 0.95] and cfg.data.split == "all"
    assert cfg.encoder == ComponentConfig("gru", {"hidden": 32})
    assert cfg.eval.knn.ks == [20] and cfg.trainer.progress is False
    assert cfg.eval.linear.epochs == 70 and cfg.eval.linear.optim.name == "adamw"  # the hitrs preset, applied at load
    assert cfg.optim.no_decay == ["bias", "norm"]


def test_a_typo_in_the_eval_section_is_refused_when_the_recipe_loads(tmp_path):
    """The ``eval`` section is typed: pre-training refuses a misspelt key there, in one line."""
    path = write(tmp_path / "r.yaml", {"eval": {"linear": {"preset": "isc", "epoch": 3}}})
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "eval.linear.epoch" in str(e.value) and "eval.linear.epochs" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="eval.finetune.preset: unknown preset 'nope'"):
        load_config(None, ["eval.finetune.preset=nope"])


def test_a_preset_picked_on_the_command_line_replaces_the_recorded_one():
    """A run's saved ``eval`` holds its sections resolved; ``linear.preset=X`` still gives X's values,
    with the values the recipe set itself kept."""
    from skelssl.engine.config import load_eval_config

    recorded = to_dict(load_eval_config({"linear": {"preset": "isc", "epochs": 40}}))
    assert recorded["linear"]["optim"]["name"] == "sgd"
    cfg = load_eval_config(recorded, ["linear.preset=hitrs"])
    assert cfg.linear.preset == "hitrs" and cfg.linear.optim.name == "adamw" and cfg.linear.epochs == 40
    assert cfg == load_eval_config({"linear": {"preset": "hitrs", "epochs": 40}})
    assert load_eval_config(recorded) == load_eval_config({"linear": {"preset": "isc", "epochs": 40}})


def test_override_unknown_key_lists_close_keys():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["optim.lrr=0.1"])
    assert "optim.lrr" in str(e.value) and "optim.lr" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(None, ["trainer.ckpt_every_step=5"])
    assert "trainer.ckpt_every_steps" in str(e.value)


def test_eval_overrides_go_through_the_same_checks():
    """``skelssl eval`` overrides use :func:`apply_overrides` against :class:`EvalConfig`: an unknown
    key names close ones, a value is not a section, and nested preset values are kept."""
    from skelssl.engine.config import load_eval_config
    from skelssl.methods.hitrs import LINEAR_PRESET

    with pytest.raises(ConfigError) as e:
        load_eval_config(None, ["linear.epoch=3"])
    assert "linear.epoch" in str(e.value) and "linear.epochs" in str(e.value)
    with pytest.raises(ConfigError, match="knn.ks is a value"):
        load_eval_config(None, ["knn.ks.x=1"])
    cfg = load_eval_config({"linear": {"preset": "hitrs"}}, ["linear.optim.lr=0.5", "finetune.encoder.pool=joints"])
    assert cfg.linear.optim.lr == 0.5 and cfg.linear.optim.name == "adamw" and cfg.finetune.encoder == {"pool": "joints"}
    assert LINEAR_PRESET["optim"]["lr"] == 0.01  # the preset itself is untouched
    with pytest.raises(ConfigError, match="linear is a section; set its keys"):
        load_eval_config(None, ["linear=3"])


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("trainer.epochs=1.5", "trainer.epochs"),
        ("trainer.progress=maybe", "trainer.progress"),
        ("data.split=val", "data.split"),
        ("trainer.precision=bf16", "trainer.precision"),
        ("optim.lr=fast", "optim.lr"),
        ("optim.lr.x=1", "optim.lr"),
        ("optim.lr", "key=value"),
        ("data.batch_size=true", "data.batch_size"),
    ],
)
def test_bad_override_values(override, fragment):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert fragment in str(e.value)


def test_defaults_inheritance(tmp_path):
    write(tmp_path / "base.yaml", {"optim": {"lr": 0.5, "weight_decay": 0.1}, "trainer": {"epochs": 7}})
    child = write(tmp_path / "child.yaml", {"defaults": ["base.yaml"], "optim": {"lr": 0.01}})
    cfg = load_config(child, ["trainer.seed=5"])
    assert cfg.optim.lr == 0.01 and cfg.optim.weight_decay == 0.1 and cfg.trainer.epochs == 7 and cfg.trainer.seed == 5
    loop = write(tmp_path / "loop.yaml", {"defaults": ["loop.yaml"]})
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(loop)


def test_config_hash_is_stable_and_sensitive():
    a, b = load_config(None, ["optim.lr=0.1"]), load_config(None, ["optim.lr=1e-1"])
    assert config_hash(a) == config_hash(b) == config_hash(to_dict(a))
    assert config_hash(a) != config_hash(load_config(None, ["optim.lr=0.2"]))
    assert len(config_hash(a)) == 16


def test_checked_kwargs():
    assert checked_kwargs(ToyEncoder, {"hidden": "32", "out_dim": 4.0}, "encoder.kwargs") == {"hidden": 32, "out_dim": 4}
    with pytest.raises(ConfigError) as e:
        checked_kwargs(ToyEncoder, {"hiden": 3}, "encoder.kwargs")
    assert "encoder.kwargs.hiden" in str(e.value) and "hidden" in str(e.value)
    with pytest.raises(ConfigError, match="set by skelssl"):
        checked_kwargs(ToyMethod, {"encoder": 1}, "method.kwargs", given=("encoder",))


def test_build_components_from_config():
    enc = build_encoder_from_config(ComponentConfig(TOY_ENCODER, {"hidden": 8}), in_channels=3, layout="kinect20", num_persons=1)
    assert isinstance(enc, ToyEncoder) and enc.spec == {
        "name": TOY_ENCODER,
        # what was given, and the constructor's defaults for the rest (a saved encoder never depends on them)
        "kwargs": {"hidden": 8, "in_channels": 3, "layout": "kinect20", "num_persons": 1, "out_dim": 8},
    }
    with pytest.raises(ConfigError, match="encoder.kwargs.layout"):
        build_encoder_from_config(ComponentConfig(TOY_ENCODER, {"layout": "ntu25"}), layout="kinect20")
    with pytest.raises(ConfigError, match="encoder.name"):
        build_encoder_from_config(ComponentConfig("no_such_encoder"))
    method = build_method_from_config(ComponentConfig(TOY_METHOD, {"queue_size": "8"}), encoder=enc)
    assert isinstance(method, ToyMethod) and method.queue.shape[0] == 8
    with pytest.raises(ConfigError, match="method.kwargs.queue"):
        build_method_from_config(ComponentConfig(TOY_METHOD, {"queue": 8}), encoder=enc)


def test_empty_sections_read_as_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("optim:\neval:\nencoder:\n  name: gru\n  kwargs:\n")
    cfg = load_config(path)
    assert cfg.optim == RunConfig().optim and cfg.eval == RunConfig().eval and cfg.encoder == ComponentConfig("gru", {})
