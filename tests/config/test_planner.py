"""The planner: cells x seeds in a fixed order, stable run ids, and the cost estimate."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from cfftui.config import load_study
from cfftui.plan import estimate_cost, plan, run_flops
from cfftui.spec import RunConfig

HEAD = '[experiments.e]\ndataset = "synthetic"\nmodel = { depth = 1, heads = 2, embed_dim = 16 }\n'


def study(tmp_path: Path, body: str, overrides: tuple[str, ...] = ()):
    path = tmp_path / "study.toml"
    path.write_text(HEAD + body)
    return load_study(path, overrides).experiments["e"]


@pytest.mark.parametrize(
    ("body", "factor_labels", "seeds"),
    [
        pytest.param('seeds = 7\n[experiments.e.factors]\n"loss.margin_mode" = ["clamp", "subtract"]\n'
                     '"model.embed_dim" = [16, 32]\n',
                     [("clamp", "subtract"), ("16", "32")], tuple(range(7)), id="2x2_x7"),
        pytest.param('seeds = 2\n[experiments.e.factors]\n"model.depth" = [2]\n'
                     '"loss.margin_mode" = ["clamp", "subtract", "none"]\n',
                     [("2",), ("clamp", "subtract", "none")], (0, 1), id="one_level_x3_x2"),
        pytest.param('seeds = [11, 3, 7]\n'
                     '[experiments.e.factors]\n"loss.margin_mode" = ["clamp", "subtract"]\n'
                     '[experiments.e.factors.augmentation.none]\n"data.augment" = "none"\n'
                     '[experiments.e.factors.augmentation.aggressive]\n"data.augment" = "aggressive"\n'
                     '"train.epochs" = 9\n',
                     [("clamp", "subtract"), ("none", "aggressive")], (11, 3, 7),
                     id="named_levels_explicit_seeds"),
        pytest.param('seeds = 1\n[experiments.e.factors]\n"loss.margin_scale" = [1.0, 0.5, 0.25]\n'
                     '"train.lr" = [0.004, 0.001]\n"train.batch_size" = [8, 16]\n',
                     [("1.0", "0.5", "0.25"), ("0.004", "0.001"), ("8", "16")], (0,), id="3x2x2_x1"),
    ],
)
def test_plan_is_the_cartesian_product_with_seeds_inner(tmp_path: Path, body: str,
                                                        factor_labels: list[tuple[str, ...]],
                                                        seeds: tuple[int, ...]) -> None:
    exp = study(tmp_path, body)
    specs = plan(exp)
    keys = [f.key for f in exp.factors]
    expected = [(dict(zip(keys, combo, strict=True)), seed)
                for combo in itertools.product(*factor_labels) for seed in seeds]
    assert [(s.cell, s.seed) for s in specs] == expected
    assert len({s.run_id for s in specs}) == len(specs)
    assert all(s.experiment == "e" for s in specs)
    for s in specs:  # every level's values reach the run's configuration
        for key, label in s.cell.items():
            level = next(lv for lv in exp.factor(key).levels if lv.label == label)
            for dotted_key, value in level.values.items():
                section, name = dotted_key.split(".")
                assert getattr(getattr(s.config, section), name) == value


def test_named_levels_leave_other_keys_at_the_base(tmp_path: Path) -> None:
    exp = study(tmp_path, 'seeds = 1\ntrain.epochs = 4\n'
                '[experiments.e.factors.aug.none]\n"data.augment" = "none"\n'
                '[experiments.e.factors.aug.hard]\n"data.augment" = "aggressive"\n"train.epochs" = 9\n')
    runs = [(s.config.data.augment, s.config.train.epochs) for s in plan(exp)]
    assert runs == [("none", 4), ("aggressive", 9)]


BODY = ('seeds = 3\n[experiments.e.factors]\n"loss.margin_mode" = ["clamp", "subtract"]\n'
        '"model.embed_dim" = [16, 32]\n')


def test_replanning_gives_the_same_ids(tmp_path: Path) -> None:
    first = [s.run_id for s in plan(study(tmp_path, BODY))]
    again = study(tmp_path, BODY)
    assert [s.run_id for s in plan(again)] == first == [s.run_id for s in plan(again)]


def test_changing_a_level_changes_only_the_runs_of_its_cells(tmp_path: Path) -> None:
    before = {(tuple(s.cell.items()), s.seed): s.run_id for s in plan(study(tmp_path, BODY))}
    after = {(tuple(s.cell.items()), s.seed): s.run_id
             for s in plan(study(tmp_path, BODY.replace("[16, 32]", "[16, 48]")))}
    kept = {k for k in before if dict(k[0])["model.embed_dim"] == "16"}
    assert len(kept) == 6
    assert all(after[k] == before[k] for k in kept)
    changed = set(after.values()) - set(before.values())
    assert len(changed) == 6


def test_more_seeds_keep_the_ids_of_the_seeds_already_planned(tmp_path: Path) -> None:
    three = {s.run_id for s in plan(study(tmp_path, BODY))}
    five = {s.run_id for s in plan(study(tmp_path, BODY.replace("seeds = 3", "seeds = 5")))}
    assert three < five and len(five - three) == 8


def test_placement_overrides_do_not_change_ids(tmp_path: Path) -> None:
    ids = [s.run_id for s in plan(study(tmp_path, BODY))]
    moved = study(tmp_path, BODY, ("runtime.device=cuda:1", "runtime.threads=2", "execution.jobs=8"))
    assert [s.run_id for s in plan(moved)] == ids
    assert [s.run_id for s in plan(study(tmp_path, BODY, ("train.epochs=3",)))] != ids


def test_the_reference_run_costs_what_performance_md_computes() -> None:
    flops = run_flops(RunConfig())  # CIFAR-10, E = 128, 5 blocks, 600 epochs, 50 probe epochs
    assert flops["train"] == pytest.approx(15.63e15, rel=1e-3)
    assert flops["val"] == pytest.approx(0.579e15, rel=2e-3)
    assert flops["probe"] == pytest.approx(0.239e15, rel=2e-3)
    assert flops["total"] == pytest.approx(16.45e15, rel=1e-3)


def test_estimate_cost_reports_flops_hours_and_assumptions(tmp_path: Path) -> None:
    exp = study(tmp_path, BODY)
    cost = estimate_cost(exp)
    assert cost["runs"] == 12 and len(cost["cells"]) == 4
    assert cost["flops_total"] == pytest.approx(3 * sum(c["flops_per_run"] for c in cost["cells"]))
    wide, narrow = cost["cells"][1]["flops_per_run"], cost["cells"][0]["flops_per_run"]
    assert wide > narrow  # embed_dim 32 costs more than 16
    assert 0 < cost["h200_hours_total"] < cost["cpu_hours_total"]
    assert {"cpu_flops_per_s_per_run", "h200_flops_per_s", "source"} <= set(cost["assumptions"])
