"""The run configuration: defaults, validation messages, margins and stable run ids."""

from __future__ import annotations

import pytest

from cfftui.spec import (
    RunConfig,
    RunSpec,
    SpecError,
    config_from_dict,
    config_to_dict,
    flatten,
    run_id_for,
    unflatten,
)


def test_defaults_reproduce_the_reference_setup() -> None:
    c = RunConfig()
    assert (c.model.embed_dim, c.model.heads, c.model.depth, c.model.mlp_ratio, c.model.patch_size) == (
        128, 4, 5, 2.0, 4)
    assert (c.train.epochs, c.train.batch_size, c.train.lr, c.train.weight_decay) == (600, 512, 0.004, 0.01)
    assert (c.loss.temperature, c.loss.margin_mode) == (0.15, "clamp")
    assert (c.probe.epochs, c.probe.lr) == (50, 0.0005)
    assert c.margins() == pytest.approx([0.4, 0.325, 0.25, 0.175, 0.1], abs=1e-15)


def test_margin_schedules_and_scale() -> None:
    c = config_from_dict({"loss": {"margin_schedule": "constant", "margin_scale": 0.5}})
    assert c.margins() == [0.2] * 5
    assert config_from_dict({"model": {"depth": 1}}).margins() == [0.4]


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        ({"model": {"embed_dm": 64}}, "model.embed_dm", "did you mean 'model.embed_dim'"),
        ({"modle": {}}, "modle", "did you mean 'model'"),
        ({"loss": {"margin_mode": "clmp"}}, "loss.margin_mode", "not one of clamp, subtract, none"),
        ({"train": {"lr": 0}}, "train.lr", "greater than 0"),
        ({"train": {"epochs": "ten"}}, "train.epochs", "expected an integer"),
        ({"train": {"epochs": True}}, "train.epochs", "expected an integer"),
        ({"data": {"val_fraction": 0.95}}, "data.val_fraction", "at most 0.9"),
        ({"model": {"embed_dim": 30, "heads": 4}}, "model.heads", "do not divide"),
        ({"model": {"patch_size": 5}, "data": {"dataset": "synthetic"}}, "model.patch_size", "does not divide"),
        ({"loss": "clamp"}, "loss", "expected a table"),
    ],
)
def test_invalid_values_name_their_key(data: dict, key: str, words: str) -> None:
    with pytest.raises(SpecError) as err:
        config_from_dict(data)
    assert err.value.key == key
    assert words in str(err.value)


def test_integers_are_accepted_for_floats() -> None:
    assert config_from_dict({"train": {"lr": 1}}).train.lr == 1.0


def test_round_trip_through_dicts() -> None:
    c = config_from_dict({"model": {"embed_dim": 64}, "loss": {"margin_mode": "subtract"}})
    assert config_from_dict(config_to_dict(c)) == c
    flat = flatten(config_to_dict(c))
    assert flat["model.embed_dim"] == 64
    assert unflatten(flat) == config_to_dict(c)


def test_run_ids_are_stable_and_ignore_placement() -> None:
    c = RunConfig()
    assert run_id_for(c, 1) == run_id_for(RunConfig(), 1)
    assert run_id_for(c, 1) != run_id_for(c, 2)
    moved = config_from_dict({"runtime": {"device": "cuda:1", "threads": 3}, "data": {"root": "/elsewhere"}})
    assert run_id_for(moved, 1) == run_id_for(c, 1)
    assert run_id_for(config_from_dict({"loss": {"margin_mode": "subtract"}}), 1) != run_id_for(c, 1)


def test_runspec_json_round_trip_and_errors() -> None:
    spec = RunSpec("demo", {"loss.margin_mode": "clamp"}, 3, RunConfig())
    again = RunSpec.from_json(spec.to_json())
    assert again == spec and again.run_id == spec.run_id
    assert spec.cell_label == "margin_mode=clamp"
    bad = spec.to_json() | {"seed": "x"}
    with pytest.raises(SpecError, match="seed"):
        RunSpec.from_json(bad)
    with pytest.raises(SpecError, match="config.model.depth"):
        RunSpec.from_json(spec.to_json() | {"config": {"model": {"depth": 0}}})
