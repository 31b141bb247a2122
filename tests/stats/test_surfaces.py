"""The surfaces: the terminal strip plot, `cfftui report` / `cfftui export` as real processes, figures, imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from cfftui.stats import analyse, strip_plot

from .studies import write_study


def cfftui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cfftui", *args], capture_output=True, text=True, timeout=120)


def test_strip_plot_places_runs_mean_and_ci() -> None:
    frame = pl.DataFrame({"cell": ["a", "a", "a", "b", "b", "b"], "v": [0.0, 10.0, 10.0, 4.0, 5.0, 6.0]})
    assert strip_plot(frame, "v", 40).splitlines() == [
        # a: runs at 0 and twice at 10 (a "2"), mean 6.67, CI wider than the axis so clipped to it
        "a ●─────────────┃──────2 6.67 ± 5.77 n=3",
        # b: 4, 5, 6 with mean 5 (hidden under the middle run), CI 5 ± 2.48
        "b      ───●─●──●───      5.00 ± 1.00 n=3",
        "  0                   10",
    ]
    assert strip_plot(frame.with_columns(v=pl.lit(None, pl.Float64)), "v", 40) == ""


def test_report_prints_the_headline_first_and_every_table(study_2x2: Path) -> None:
    done = cfftui("report", "cifar_2x2", "--runs", str(study_2x2), "--bootstrap", "500")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("clamp / subtract variance ratio ")
    for title in ("Per cell", "Variance comparison", "Variance tests", "Two-way ANOVA", "Dispersion ANOVA",
                  "Diagnostics per cell", "CAR and gradient norm per layer"):
        assert title in done.stdout
    assert "ddof=1" in done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["report", "missing"], "cfftui report: no experiment 'missing'"),
    (["report", "cifar_2x2", "--metric", "acc"], "cfftui report: experiment 'cifar_2x2' has no metric 'acc'"),
    (["export", "cifar_2x2", "--levels", "clamp", "nonsense"], "cfftui export: loss.margin_mode has no level"),
])
def test_commands_refuse_bad_input_with_one_line_and_exit_2(study_2x2: Path, args: list[str], message: str) -> None:
    done = cfftui(*args, "--runs", str(study_2x2))
    assert done.returncode == 2 and done.stderr.startswith(message) and done.stderr.count("\n") == 1
    assert not (study_2x2 / "cifar_2x2" / "results").exists()


def test_export_writes_the_chosen_formats_into_results(study_2x2: Path) -> None:
    done = cfftui("export", "cifar_2x2", "--runs", str(study_2x2), "--format", "md", "--format", "latex",
                  "--bootstrap", "500")
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (study_2x2 / "cifar_2x2" / "results").iterdir())
    assert "analysis.md" in names and "macros.tex" in names and "comparison.tex" in names
    assert not [n for n in names if n.endswith((".csv", ".parquet", ".json"))]


def test_figures_are_written_as_svg_and_png(study_2x2: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from cfftui.stats.figures import write_figures
    paths = write_figures(analyse(study_2x2, "cifar_2x2", n_boot=300), tmp_path)
    assert sorted(p.name for p in paths) == ["layers.png", "layers.svg", "strip.png", "strip.svg", "sweep.png",
                                             "sweep.svg"]
    for p in paths:
        head = p.read_bytes()[:200]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else b"<svg" in p.read_bytes()[:2000]


def test_figures_without_matplotlib_get_a_clear_message_and_write_nothing(study_2x2: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.modules['matplotlib'] = None; from cfftui.cli import main; "
            f"sys.exit(main(['export', 'cifar_2x2', '--runs', {str(study_2x2)!r}, '--figures', "
            f"'--out', {str(tmp_path / 'out')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "figures need matplotlib" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_stats_never_imports_torch_or_textual_and_commands_import_nothing_heavy() -> None:
    code = ("import sys, cfftui.stats.commands; light = set(sys.modules); "
            "import cfftui.stats.analysis, cfftui.stats.export, cfftui.stats.report; "
            "print(' '.join(sorted(light)), '|', ' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    light, full = (set(part.split()) for part in out.split("|"))
    assert not {m.split(".")[0] for m in light} & {"torch", "textual", "polars", "scipy", "numpy"}
    assert not {m.split(".")[0] for m in full} & {"torch", "textual", "matplotlib"}


def test_one_level_study_through_the_command(tmp_path: Path) -> None:
    root = write_study(tmp_path / "runs", "solo", {"loss.margin_mode": ["clamp"]}, {("clamp",): [0.5, 0.6]})
    done = cfftui("report", "solo", "--runs", str(root))
    assert done.returncode == 2 and "has one level only" in done.stderr
