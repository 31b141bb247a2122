"""The key locator: the line of any key path in a TOML document, for error messages."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cfftui.config.locate import Locator, dotted, key_lines, records

DOC = '''# a comment with [fake.header] and key = 1
[defaults]
train.epochs = 600   # trailing comment
note = """multi-line
[not.a.table]
fake = 1
"""
'quoted.literal' = 'x'

[experiments.a]
data = { root = "r", inner = { deep = [1,
  2] } }
"loss.margin_mode" = [
  "clamp",  # first
  'subtract',
]
seeds = [1, 2, 3]

[experiments.a.factors.augmentation.none]
"data.augment" = "none"

[[runs]]
name = "x"
'''


def test_the_fixture_is_valid_toml() -> None:
    tomllib.loads(DOC)


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("defaults",), 2),
        (("defaults", "train", "epochs"), 3),
        (("defaults", "train"), 3),
        (("defaults", "note"), 4),
        (("defaults", "quoted.literal"), 8),
        (("experiments", "a"), 10),
        (("experiments", "a", "data", "root"), 11),
        (("experiments", "a", "data", "inner", "deep", 1), 12),
        (("experiments", "a", "loss.margin_mode"), 13),
        (("experiments", "a", "loss.margin_mode", 1), 15),
        (("experiments", "a", "seeds", 2), 17),
        (("experiments", "a", "factors"), 19),
        (("experiments", "a", "factors", "augmentation", "none", "data.augment"), 20),
        (("runs", "name"), 23),
        (("experiments", "a", "missing", "key"), 10),
        (("nowhere",), None),
    ],
)
def test_line_of_a_key_path(path: tuple, line: int | None) -> None:
    assert Locator(DOC).line_of(path) == line


def test_strings_and_comments_hide_no_keys() -> None:
    found = key_lines(DOC)
    assert ("not", "a", "table") not in found and ("defaults", "fake") not in found
    assert ("fake", "header") not in found


def test_repeats_are_kept_in_order_and_a_cut_document_is_read_as_far_as_it_goes() -> None:
    head = "a = 1\n[t]\nb = [1,\n"
    assert records("a = 1\na = 2\n") == [(("a",), 1), (("a",), 2)]
    assert records(head)[:3] == [(("a",), 1), (("t",), 2), (("t", "b"), 3)]


def test_dotted_writes_paths_as_toml_does() -> None:
    path = ("experiments", "x", "factors", "loss.margin_mode", 1)
    assert dotted(path) == 'experiments.x.factors."loss.margin_mode"[1]'
    assert dotted(("experiments", "my study")) == 'experiments."my study"'


def leaves(table: dict, path: tuple = ()):
    for key, value in table.items():
        if isinstance(value, dict):
            yield from leaves(value, path + (key,))
        else:
            yield path + (key,)


def test_every_value_of_the_shipped_study_is_found_on_a_line_that_names_it() -> None:
    text = (Path(__file__).resolve().parents[2] / "experiments.toml").read_text()
    lines = text.splitlines()
    locator = Locator(text)
    paths = list(leaves(tomllib.loads(text)))
    assert len(paths) > 90
    for path in paths:
        line = locator.line_of(path)
        assert line is not None and path[-1] in lines[line - 1], path
