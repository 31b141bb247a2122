"""Invalid study files, one per validation rule: each names its file, line and key in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cfftui.config import StudyError, load_study

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_toml"
EXPECT = re.compile(r"^# error: line (\d+|None): (.+)$")


def expectation(path: Path) -> tuple[int | None, list[str]]:
    """The first line of each corpus file says where the error is and which words its message holds."""
    m = EXPECT.match(path.read_text().splitlines()[0])
    assert m, f"{path.name} lacks its '# error: line N: words | ...' header"
    line = None if m.group(1) == "None" else int(m.group(1))
    return line, [w.strip() for w in m.group(2).split("|")]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.toml")), ids=lambda p: p.stem)
def test_each_invalid_file_is_rejected_with_file_line_and_key(path: Path) -> None:
    line, words = expectation(path)
    with pytest.raises(StudyError) as caught:
        load_study(path)
    err = caught.value
    text = str(err)
    assert err.file == str(path)
    assert err.line == line, text
    assert "\n" not in text
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert text.startswith(prefix), text
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


def test_the_corpus_is_found_so_the_table_above_is_not_empty() -> None:
    assert len(list(CORPUS.glob("*.toml"))) >= 40


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"nope\.toml: no such file"):
        load_study(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["train.epoch=3"], "command line: --set train.epoch: unknown key (did you mean 'train.epochs'?)"),
        (["train.epochs=0"], "command line: --set train.epochs: must be at least 1, got 0"),
        (["train.epochs"], "command line: --set train.epochs: expected KEY=VALUE"),
        (["loss.margin_mode=clmp"], "command line: --set loss.margin_mode: 'clmp' is not one of"),
        (["seeds=0"], "command line: --set seeds: the number of seeds must be between 1 and 100000"),
        (["seeds=[1, 1]"], "command line: --set seeds[1]: seed 1 is listed twice"),
        (["execution.jobs=-1"], "command line: --set execution.jobs: must be at least 0"),
        (["analysis.metric=top9"], "command line: --set analysis.metric: 'top9' is not one of top1, top5"),
        (["model.heads=3"], "command line: --set model.heads: 3 heads do not divide embed_dim 32"),
        # Overrides win over levels, so pinning a factor collapses its cells: said, not silently run.
        (["loss.margin_mode=clamp"],
         "--set loss.margin_mode: pins factor loss.margin_mode of experiment small"),
    ],
)
def test_command_line_overrides_are_checked(overrides: list[str], words: str) -> None:
    study = CORPUS.parents[1] / "data" / "good" / "small.toml"
    with pytest.raises(StudyError) as caught:
        load_study(study, overrides)
    assert words in str(caught.value)
