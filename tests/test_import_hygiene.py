"""The import directions of design.md, proven in fresh interpreters (the only way to see a deferral defer)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY_FOR_CORE = ("torch", "torchvision", "textual")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["cfftui.spec", "cfftui.events", "cfftui.engine.store", "cfftui.cli"])
def test_core_modules_import_no_torch_or_textual(module: str) -> None:
    mods = loaded_after(f"import {module}")
    assert not {m.split(".")[0] for m in mods} & set(HEAVY_FOR_CORE)
