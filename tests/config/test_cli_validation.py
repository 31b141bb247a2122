"""The real `cfftui` command on invalid studies: exit 2, one line naming file, line and key, no runs/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cfftui.config import StudyError, load_study

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_toml"


def cfftui(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cfftui", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("bad", ["factor_level_clash", "unknown_dataset", "duplicate_experiment",
                                 "syntax_error"])
def test_an_invalid_study_exits_2_with_one_line_and_writes_nothing(tmp_path: Path,
                                                                    command: str, bad: str) -> None:
    study = tmp_path / "experiments.toml"
    study.write_text((CORPUS / f"{bad}.toml").read_text())
    with pytest.raises(StudyError) as expected:
        load_study(study)
    result = cfftui(command, "--file", str(study), "--runs", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"cfftui: {expected.value}"
    assert result.stdout == ""
    assert not (tmp_path / "runs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments.toml"]


def test_a_bad_override_exits_2_with_one_line(tmp_path: Path) -> None:
    good = Path(__file__).resolve().parents[1] / "data" / "good" / "small.toml"
    result = cfftui("plan", "--file", str(good), "--runs", str(tmp_path / "runs"), "--set", "train.epoch=2",
                    cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("cfftui: command line: --set train.epoch: unknown key (did you mean "
                                     "'train.epochs'?); expected a run-configuration key (train.epochs), "
                                     "dataset, seeds, analysis.* or execution.*")
    assert not (tmp_path / "runs").exists()
