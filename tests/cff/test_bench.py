"""`cfftui bench --smoke` runs the equivalence gate and prints both ratios (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_smoke_prints_the_ratios(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "cfftui", "bench", "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "equivalence (fp64, CPU, 3 steps): init bitwise equal yes" in done.stdout
    assert "ratio (cfftui / reference steps per s):" in done.stdout
    assert "mini-epoch" in done.stdout and "ratio" in done.stdout.split("mini-epoch")[1]
    figures = json.loads(out.read_text())
    assert figures["gate"]["passed"] and figures["gate"]["dloss"] <= 1e-12 and figures["gate"]["dw"] <= 1e-10
    assert figures["ratio_steps"] > 0 and figures["ratio_epoch"] > 0


def test_bench_rejects_a_bad_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cfftui", "bench", "--heads", "3"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--heads 3 does not divide --embed-dim 128" in done.stderr
