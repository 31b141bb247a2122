"""The import directions of design.md, proven in fresh interpreters (the only way to see a deferral defer)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def top_level_packages_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


RULES = [
    # (what is imported, modules that must stay out of the process)
    ("import cfftui.spec, cfftui.events", {"torch", "textual", "polars", "scipy", "numpy"}),
    ("import cfftui.config, cfftui.plan", {"torch", "textual", "polars", "scipy"}),
    ("import cfftui.engine.supervisor, cfftui.engine.control, cfftui.engine.commands, cfftui.fakeworker",
     {"torch", "textual", "polars", "scipy"}),
    ("import cfftui.stats.analysis, cfftui.stats.export, cfftui.stats.frames", {"torch", "textual"}),
    ("import cfftui.tui.app", {"torch", "torchvision"}),
    ("import cfftui.cff.train, cfftui.cff.worker", {"textual", "polars", "scipy", "cfftui.engine",
                                                    "cfftui.tui", "cfftui.stats"}),
    # `cfftui --help`, `plan` and `status` must start fast: the router loads no heavy package
    ("import cfftui.cli; cfftui.cli.build_parser()", {"torch", "textual", "polars", "scipy"}),
]


@pytest.mark.parametrize(("statement", "forbidden"), RULES, ids=[r[0].split(";")[0][7:40] for r in RULES])
def test_import_directions(statement: str, forbidden: set[str]) -> None:
    loaded = top_level_packages_after(statement)
    leaked = {m for m in forbidden if m in loaded or any(n.startswith(m + ".") for n in loaded)}
    assert not leaked, f"{statement!r} loaded {sorted(leaked)}"
