"""Loading studies: the shipped file, overrides, syntax variants, custom datasets and the import budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cfftui.config import Execution, StudyError, default_study_text, load_study, parse_value
from cfftui.plan import estimate_cost, plan

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "experiments.toml"
SMALL = REPO / "tests" / "data" / "good" / "small.toml"
PAPER_DESIGNS = ("cifar10_2x2", "cifar100_replication", "svhn_replication", "fmnist_replication",
                 "svhn_difficulty_sweep", "margin_probe")


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_study_validates_and_every_experiment_plans() -> None:
    study = load_study(SHIPPED)
    assert {"demo", "fmnist_quick", "cifar10_quick", *PAPER_DESIGNS} <= set(study.experiments)
    for exp in study.experiments.values():
        specs = plan(exp)
        assert len(specs) == len(exp.cells()) * len(exp.seeds) == len({s.run_id for s in specs})
        assert "Steier" in exp.description or "cfftui extension" in exp.description, exp.name
        assert exp.analysis.compare == "loss.margin_mode" and exp.analysis.levels == ("clamp", "subtract")
    assert len(plan(study.experiments["cifar10_2x2"])) == 28
    assert study.experiments["cifar10_2x2"].factor("model.embed_dim").labels == ("128", "256")
    sweep = study.experiments["svhn_difficulty_sweep"].factor("augmentation")
    assert sweep.labels == ("none", "standard", "strong", "aggressive")
    assert sweep.levels[3].values == {"data.augment": "aggressive"}


def test_the_demo_matches_its_brief() -> None:
    demo = load_study(SHIPPED).experiments["demo"]
    c = demo.base
    assert (c.data.dataset, c.data.synthetic_train, c.data.synthetic_test, c.data.image_size) == (
        "synthetic", 1500, 500, 16)
    model, train = c.model, c.train
    assert (model.depth, model.heads, model.patch_size, train.epochs, train.batch_size) == (2, 2, 4, 4, 128)
    assert (c.probe.epochs, c.runtime.device, demo.seeds) == (5, "cpu", (0, 1, 2))
    assert (demo.execution.jobs, demo.execution.threads_per_run) == (2, 1)


def test_datasets_without_local_files_download_and_local_ones_point_at_shared_data(shared_data: Path) -> None:
    study = load_study(SHIPPED)
    for name in ("cifar100_replication", "svhn_replication", "svhn_difficulty_sweep"):
        assert study.experiments[name].base.data.download, name
    for name in ("fmnist_quick", "cifar10_quick", "cifar10_2x2", "fmnist_replication", "margin_probe"):
        root = Path(study.experiments[name].base.data.root)
        dataset = study.experiments[name].base.data.dataset
        assert root.resolve() == shared_data.resolve() and list(root.glob(f"{dataset}-train*.npz")), name


def test_the_packaged_copy_is_the_top_level_file() -> None:
    assert default_study_text() == SHIPPED.read_text()


def test_the_embedded_demo_loads_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    study = load_study("experiments.toml", source=default_study_text())
    assert len(plan(study.experiments["demo"])) == 12


def test_relative_paths_are_relative_to_the_study_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    header = '[cfftui]\nruns = "out/runs"\n[defaults]\ndata.root = "../d"'
    text = SMALL.read_text().replace("[defaults]", header)
    path = write(tmp_path / "sub", text)
    study = load_study(path)
    assert study.runs_dir == str(tmp_path / "sub" / "out" / "runs")
    assert study.experiments["small"].base.data.root == str(tmp_path / "d")


def test_overrides_reach_every_experiment_and_win_over_levels() -> None:
    study = load_study(SHIPPED, ["train.epochs=2", "seeds=[5, 9]", "execution.jobs=3", "runtime.device=cpu",
                                 "analysis.metric=top5", "probe.epochs=1"])
    for exp in study.experiments.values():
        assert exp.seeds == (5, 9) and exp.execution.jobs == 3 and exp.analysis.metric == "top5"
        assert all(s.config.train.epochs == 2 and s.config.probe.epochs == 1 for s in plan(exp))
        assert all(s.config.runtime.device == "cpu" for s in plan(exp))
    # A named level that sets train.epochs is overridden too: --set is how a smoke test shortens everything.
    text = SMALL.read_text() + '[experiments.small.factors.length.short]\n"train.epochs" = 3\n' \
        '[experiments.small.factors.length.long]\n"train.epochs" = 9\n"train.lr" = 0.001\n'
    exp = load_study(SMALL, source=text, overrides=["train.epochs=1"]).experiments["small"]
    assert {s.config.train.epochs for s in plan(exp)} == {1}
    assert {s.config.train.lr for s in plan(exp)} == {0.004, 0.001}


def test_an_override_that_pins_a_factor_is_refused() -> None:
    with pytest.raises(StudyError) as caught:
        load_study(SHIPPED, ["data.augment=none"])
    assert str(caught.value) == (
        "command line: --set data.augment: pins factor augmentation of experiment svhn_difficulty_sweep: "
        "its levels would all run the same value; leave it out, or make it a one-level factor")


@pytest.mark.parametrize(
    ("raw", "value"),
    [("5", 5), ("0.5", 0.5), ("true", True), ("[1, 2]", [1, 2]), ('"x y"', "x y"), ("clamp", "clamp"),
     ("1e-3", 0.001), ("", "")],
)
def test_command_line_values_are_read_as_toml(raw: str, value: object) -> None:
    assert parse_value(raw) == value


def test_unquoted_nested_and_inline_factor_syntax_plan_the_same_runs(tmp_path: Path) -> None:
    head = '[experiments.e]\ndataset = "synthetic"\nseeds = 2\nmodel = {depth = 1, heads = 2}\n'
    quoted = write(tmp_path, head + '[experiments.e.factors]\n"loss.margin_mode" = ["clamp", "subtract"]\n'
                   '"model.embed_dim" = [16, 32]\n', "a.toml")
    nested = write(tmp_path, head + '[experiments.e.factors]\nloss.margin_mode = ["clamp", "subtract"]\n'
                   'model.embed_dim = [16, 32]\n', "b.toml")
    inline = write(tmp_path, head + 'factors = { loss = { margin_mode = ["clamp", "subtract"] }, '
                   '"model.embed_dim" = [16, 32] }\n', "c.toml")
    ids = [[s.run_id for s in plan(load_study(p).experiments["e"])] for p in (quoted, nested, inline)]
    assert ids[0] == ids[1] == ids[2] and len(set(ids[0])) == 8


def test_quoted_dotted_keys_work_in_experiment_tables(tmp_path: Path) -> None:
    text = SMALL.read_text().replace("seeds = 2", 'seeds = 2\n"train.epochs" = 3')
    assert load_study(write(tmp_path, text)).experiments["small"].base.train.epochs == 3
    twice = text.replace('"train.epochs" = 3', '"train.epochs" = 3\ntrain.epochs = 4')
    with pytest.raises(StudyError, match="set twice"):
        load_study(write(tmp_path, twice))


def test_analysis_defaults_and_numeric_levels(tmp_path: Path) -> None:
    text = ('[experiments.e]\ndataset = "synthetic"\nseeds = 3\n'
            'model = {depth = 1, heads = 2, embed_dim = 16}\n'
            '[experiments.e.factors]\n"model.mlp_ratio" = [2]\n"loss.margin_scale" = [1.0, 0.5, 0.25]\n'
            '[experiments.e.analysis]\nlevels = [0.25, 1]\n')
    analysis = load_study(write(tmp_path, text)).experiments["e"].analysis
    # The first factor has one level, so the comparison falls to the first factor that has two.
    assert (analysis.compare, analysis.levels) == ("loss.margin_scale", ("0.25", "1.0"))
    assert (analysis.metric, analysis.bootstrap, analysis.seed) == ("top1", 10_000, 0)


def test_execution_defaults_and_gpu_lists(tmp_path: Path) -> None:
    assert load_study(SMALL).experiments["small"].execution == Execution()
    text = SMALL.read_text() + ('[experiments.small.execution]\ngpus = [1, 0]\nexecutor = "ray"\n'
                                'ray_address = "auto"\nhang_timeout_s = 30\ncpus_per_run = 2\n')
    ex = load_study(write(tmp_path, text)).experiments["small"].execution
    got = (ex.gpus, ex.executor, ex.ray_address, ex.hang_timeout_s, ex.cpus_per_run)
    assert got == ((1, 0), "ray", "auto", 30.0, 2.0)
    every_gpu = load_study(write(tmp_path, text.replace("[1, 0]", '"all"'))).experiments["small"]
    assert every_gpu.execution.gpus is None


def test_selecting_an_unknown_experiment_suggests_one() -> None:
    study = load_study(SHIPPED)
    assert [e.name for e in study.select(["demo"])] == ["demo"]
    with pytest.raises(StudyError, match=r"demoo: unknown experiment \(did you mean 'demo'\?\)"):
        study.select(["demoo"])


def test_a_custom_npz_dataset_is_found_and_sized(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name, n in (("tiny-train-part1", 30), ("tiny-train-part2", 20), ("tiny-test", 10)):
        np.savez_compressed(tmp_path / f"{name}.npz", x=rng.integers(0, 255, (n, 8, 8, 1), dtype=np.uint8),
                            y=rng.integers(0, 2, n))
    text = SMALL.read_text().replace('dataset = "synthetic"',
                                     'dataset = "tiny"\ndata.root = "."\nmodel.patch_size = 2')
    exp = load_study(write(tmp_path, text)).experiments["small"]
    cost = estimate_cost(exp)
    # 8x8 images in 2x2 patches: 16 tokens; 50 training images of which 10% validate, 10 test images.
    assert cost["runs"] == 4 and cost["flops_per_run"] > 0
    (tmp_path / "tiny-test.npz").unlink()
    with pytest.raises(StudyError, match=r"unknown dataset 'tiny'.*no tiny-train\*\.npz with tiny-test\.npz"):
        load_study(write(tmp_path, text))


def test_config_and_plan_import_nothing_heavy() -> None:
    code = ("import sys, cfftui.config, cfftui.plan; "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert not loaded & {"torch", "textual", "polars", "scipy", "numpy"}


def test_a_data_root_from_the_command_line_is_relative_to_the_shell(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exp = load_study(SMALL, ["data.root=mine"]).experiments["small"]
    assert exp.base.data.root == str(tmp_path / "mine")
