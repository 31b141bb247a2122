"""A stand-in for `cfftui.cff.worker` that emits realistic events without training (no torch).

`python -m cfftui.fakeworker RUN_DIR` behaves like the real worker towards the
engine: it reads spec.json, appends start / epoch / probe / result / end events
to metrics.jsonl at `runtime.fake_events_per_s` epoch events per second,
checkpoints every `runtime.checkpoint_every` epochs and on SIGTERM (exit 4,
state stopped), and on restart truncates metrics.jsonl back to its checkpoint
so no epoch is recorded twice. Its numbers are deterministic in (run id, seed).

Faults for tests, from the environment variable CFFTUI_FAKE_FAULTS, a JSON
object mapping a run id (or "*" for every run) to
    {"kind": K, "epoch": N, "attempts": A}
where the fault strikes at epoch N (default 1) of attempts 1..A (default: all;
the supervisor passes the attempt number in CFFTUI_ATTEMPT), and K is one of
    fail      raise an error: end event "failed", exit 1
    crash     vanish without an end event (os._exit(1)), like a segfault
    diverge   end event "diverged", exit 3
    hang      stop emitting and ignore SIGTERM, forever
    badinput  one line on stderr, exit 2, nothing written
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cfftui.engine.store import atomic_write_json, read_json
from cfftui.events import EventWriter, WorkerExit
from cfftui.spec import RunSpec, SpecError

CHECKPOINT = "fake_checkpoint.json"


def fault_for(run_id: str, attempt: int) -> dict[str, Any] | None:
    """The fault this attempt of this run must simulate, if any."""
    raw = os.environ.get("CFFTUI_FAKE_FAULTS")
    if not raw:
        return None
    faults = json.loads(raw)
    fault = faults.get(run_id) or faults.get("*")
    if not fault or attempt > int(fault.get("attempts", 1 << 30)):
        return None
    return fault


def epoch_metrics(rng: random.Random, epoch: int, epochs: int, depth: int, rate: float) -> dict[str, Any]:
    """Plausible per-block numbers: losses fall with training and with depth, CAR rises."""
    progress = epoch / epochs
    train = [
        round(4.0 * math.exp(-2.0 * progress) * (1 - 0.08 * b) + rng.uniform(0, 0.05), 5)
        for b in range(depth)
    ]
    return {
        "epoch": epoch,
        "train_loss": train,
        "val_loss": [round(t * 1.05 + rng.uniform(0, 0.05), 5) for t in train],
        "car": [
            round(min(1.0, 0.2 + 0.6 * progress * (b + 1) / depth + rng.uniform(0, 0.02)), 5)
            for b in range(depth)
        ],
        "grad_norm": [round(0.5 + rng.uniform(0, 0.2), 5) for _ in range(depth)],
        "lr": 0.004,
        "images_per_s": round(20000.0 + rng.uniform(-500, 500), 1),
        "seconds": round(1.0 / rate, 4),
    }


class FakeRun:
    """One attempt of a fake run."""

    def __init__(self, run_dir: Path, spec: RunSpec, attempt: int) -> None:
        self.run_dir = run_dir
        self.spec = spec
        self.attempt = attempt
        self.stop = threading.Event()
        self.metrics = run_dir / "metrics.jsonl"

    def resume_point(self) -> int:
        """Truncate metrics.jsonl to the checkpoint and return the last epoch it covers."""
        ckpt = read_json(self.run_dir / CHECKPOINT)
        if not ckpt:
            if self.metrics.exists():
                self.metrics.write_bytes(b"")  # events without a checkpoint are redone
            return 0
        os.truncate(self.metrics, int(ckpt["offset"]))
        return int(ckpt["epoch"])

    def checkpoint(self, epoch: int) -> None:
        atomic_write_json(self.run_dir / CHECKPOINT, {"epoch": epoch, "offset": self.metrics.stat().st_size})

    def run(self) -> int:
        cfg = self.spec.config
        epochs, depth = cfg.train.epochs, cfg.model.depth
        rate = cfg.runtime.fake_events_per_s
        fault = fault_for(self.spec.run_id, self.attempt)
        if fault and fault["kind"] == "badinput":
            print(f"{self.run_dir / 'spec.json'}: fake bad input", file=sys.stderr)
            return WorkerExit.BAD_INPUT
        resumed_from = self.resume_point()
        seed_bits = int(hashlib.sha256(f"{self.spec.run_id}:{self.spec.seed}".encode()).hexdigest()[:8], 16)
        digest = hashlib.sha256(json.dumps(self.spec.to_json(), sort_keys=True).encode()).hexdigest()[:16]
        n_train = cfg.data.synthetic_train if cfg.data.dataset == "synthetic" else 50000
        n_val = int(n_train * cfg.data.val_fraction)
        with EventWriter(self.metrics, self.spec.run_id) as out:
            out.emit(
                "start",
                attempt=self.attempt,
                spec_digest=digest,
                device=f"fake:{os.environ.get('CUDA_VISIBLE_DEVICES', 'cpu')}",
                precision=cfg.runtime.precision,
                params=depth * 12 * cfg.model.embed_dim**2,
                depth=depth,
                epochs=epochs,
                n_train=n_train - n_val,
                n_val=n_val,
                n_test=cfg.data.synthetic_test,
                resumed_from=resumed_from,
            )
            next_at = time.monotonic()
            for epoch in range(resumed_from + 1, epochs + 1):
                next_at += 1.0 / rate
                if self.stop.wait(max(0.0, next_at - time.monotonic())):
                    self.checkpoint(epoch - 1)
                    out.emit("end", state="stopped", reason="SIGTERM")
                    return WorkerExit.STOPPED
                if fault and int(fault.get("epoch", 1)) == epoch:
                    return self.strike(fault, out)
                out.emit(
                    "epoch",
                    **epoch_metrics(random.Random(seed_bits * 100003 + epoch), epoch, epochs, depth, rate),
                )
                if epoch % cfg.runtime.checkpoint_every == 0 or epoch == epochs:
                    self.checkpoint(epoch)
            rng = random.Random(seed_bits)
            for probe_epoch in range(1, cfg.probe.epochs + 1):
                out.emit(
                    "probe",
                    epoch=probe_epoch,
                    train_loss=round(2.0 / probe_epoch, 5),
                    val_loss=round(2.1 / probe_epoch + rng.uniform(0, 0.01), 5),
                )
            effect = {"clamp": 0.0, "subtract": 0.02, "none": -0.03}[cfg.loss.margin_mode]
            top1 = min(1.0, max(0.0, 0.55 + effect + rng.gauss(0, 0.01)))
            out.emit(
                "result",
                top1=round(top1, 5),
                top5=round(min(1.0, top1 + 0.3), 5),
                best_epoch=cfg.probe.epochs,
                car=[round(0.3 + 0.1 * b, 4) for b in range(depth)],
                car_final=[round(0.5 + 0.1 * b, 4) for b in range(depth)],
                grad_norm=[0.6] * depth,
            )
            out.emit("end", state="done", reason="finished")
        return WorkerExit.DONE

    def strike(self, fault: dict[str, Any], out: EventWriter) -> int:
        kind = fault["kind"]
        if kind == "fail":
            print("RuntimeError: fake failure", file=sys.stderr)
            out.emit("end", state="failed", reason="RuntimeError: fake failure")
            return WorkerExit.FAILED
        if kind == "diverge":
            out.emit("end", state="diverged", reason="loss is NaN at block 0")
            return WorkerExit.DIVERGED
        if kind == "crash":
            os._exit(1)
        if kind == "hang":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(3600)
        raise ValueError(f"CFFTUI_FAKE_FAULTS: unknown kind {kind!r}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cfftui.fakeworker RUN_DIR", file=sys.stderr)
        return WorkerExit.BAD_INPUT
    run_dir = Path(args[0])
    data = read_json(run_dir / "spec.json")
    if data is None:
        print(f"{run_dir / 'spec.json'}: missing or not JSON", file=sys.stderr)
        return WorkerExit.BAD_INPUT
    try:
        spec = RunSpec.from_json(data)
    except SpecError as e:
        print(f"{run_dir / 'spec.json'}: {e}", file=sys.stderr)
        return WorkerExit.BAD_INPUT
    run = FakeRun(run_dir, spec, attempt=int(os.environ.get("CFFTUI_ATTEMPT", "1")))
    signal.signal(signal.SIGTERM, lambda *_: run.stop.set())
    return run.run()


if __name__ == "__main__":
    raise SystemExit(main())
