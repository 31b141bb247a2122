"""`python -m cfftui.cff.worker RUN_DIR`: train one RunSpec, append its events, checkpoint, resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from cfftui.events import EventWriter, WorkerExit, read_events
from cfftui.spec import RunSpec, SpecError

SPEC, METRICS, CHECKPOINT = "spec.json", "metrics.jsonl", "checkpoint.pt"


class BadInput(Exception):
    """The run cannot start; the message is the one line printed on stderr."""


def log(message: str) -> None:
    print(f"cfftui worker: {message}", file=sys.stderr, flush=True)


# --- input checks (before any file is created) ---------------------------------------------------


def read_spec(run_dir: Path) -> RunSpec:
    path = run_dir / SPEC
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: run directory does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: missing") from None
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({e.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise BadInput(f"{path}: not valid JSON ({e})") from None
    try:
        return RunSpec.from_json(data)
    except SpecError as e:
        raise BadInput(f"{path}: {e}") from None


def finished(run_dir: Path) -> bool:
    events = read_events(run_dir / METRICS) if (run_dir / METRICS).is_file() else []
    return bool(events) and events[-1].get("event") == "end" and events[-1].get("state") == "done"


def check_geometry(spec: RunSpec, channels: int, height: int, width: int, dataset: str) -> None:
    m = spec.config.model
    if height != width:
        raise BadInput(
            f"{SPEC}: data.dataset: {dataset!r} has {height}x{width} images; only square images are supported"
        )
    if height % m.patch_size:
        raise BadInput(
            f"{SPEC}: config.model.patch_size: patch size {m.patch_size} does not divide the "
            f"image size {height} of {dataset!r}"
        )


def spec_digest(spec: RunSpec) -> str:
    return hashlib.sha256(json.dumps(spec.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def git_commit() -> str | None:
    """The checkout's commit when it is one git call away; None otherwise."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


# --- the run ---------------------------------------------------------------------------------------


class StopFlag:
    """Set by SIGTERM (or SIGINT); the trainer looks at it between steps."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        log("usage: python -m cfftui.cff.worker RUN_DIR")
        return WorkerExit.BAD_INPUT
    run_dir = Path(argv[0])
    stop = StopFlag()
    signal.signal(signal.SIGTERM, stop.handle)
    signal.signal(signal.SIGINT, stop.handle)
    try:
        spec = read_spec(run_dir)
        if finished(run_dir):
            log(f"{run_dir}: already done; nothing to do")
            return WorkerExit.DONE
        precheck(spec)
        prepared = prepare(spec)
        check_geometry(
            spec, prepared["arrays"].channels, *prepared["arrays"].x_train.shape[2:], spec.config.data.dataset
        )
    except BadInput as e:
        log(str(e))
        return WorkerExit.BAD_INPUT
    return run(run_dir, spec, prepared, stop)


def precheck(spec: RunSpec) -> None:
    """The checks that need no torch, so the commonest mistakes are reported at once."""
    from cfftui.cff.data import DataError, check_available

    device = spec.config.runtime.device
    if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise BadInput(f"{SPEC}: runtime.device: {device!r} is not supported (auto, cpu, cuda or cuda:N)")
    try:
        check_available(spec.config.data)
    except DataError as e:
        raise BadInput(f"{SPEC}: {e}") from None


def prepare(spec: RunSpec) -> dict[str, Any]:
    """Import torch, pick the device and load the dataset; failures are BadInput."""
    import torch

    from cfftui.cff.data import DataError, load_arrays
    from cfftui.cff.train import resolve_device

    rt = spec.config.runtime
    if rt.threads:
        torch.set_num_threads(rt.threads)
    try:
        device = resolve_device(rt.device)
        arrays = load_arrays(spec.config.data)
    except (ValueError, DataError) as e:
        raise BadInput(f"{SPEC}: {e}") from None
    return {"device": device, "arrays": arrays}


def run(run_dir: Path, spec: RunSpec, prepared: dict[str, Any], stop: StopFlag) -> int:
    import torch

    from cfftui.cff.checkpoint import load_checkpoint, save_checkpoint
    from cfftui.cff.train import Stopped, Trainer

    metrics, ckpt_path = run_dir / METRICS, run_dir / CHECKPOINT
    cfg = spec.config
    writer: EventWriter | None = None
    try:
        trainer = Trainer(cfg, spec.seed, prepared["arrays"], prepared["device"], should_stop=stop)

        # Resume: drop every event after the checkpoint, so no epoch is recorded twice.
        previous = read_events(metrics) if metrics.is_file() else []
        attempt = 1 + sum(e.get("event") == "start" for e in previous)
        checkpoint = load_checkpoint(ckpt_path)
        size = metrics.stat().st_size if metrics.is_file() else 0
        if checkpoint is not None and (
            checkpoint.get("run_id") != spec.run_id or checkpoint.get("metrics_bytes", 0) > size
        ):
            log("checkpoint does not match this run's metrics; starting over")
            checkpoint = None
        if checkpoint is not None:
            trainer.load_state(checkpoint["trainer"])
        keep = checkpoint["metrics_bytes"] if checkpoint is not None else 0
        if metrics.is_file():
            os.truncate(metrics, keep)
        writer = EventWriter(metrics, spec.run_id)
        writer.emit(
            "start",
            attempt=attempt,
            spec_digest=spec_digest(spec),
            device=str(trainer.device),
            precision=cfg.runtime.precision,
            params=trainer.param_count,
            depth=cfg.model.depth,
            epochs=cfg.train.epochs,
            n_train=trainer.n_train,
            n_val=trainer.n_val,
            n_test=trainer.n_test,
            resumed_from=trainer.epoch,
            torch=torch.__version__,
            git=git_commit(),
            dataset=prepared["arrays"].source,
            num_classes=trainer.num_classes,
            threads=torch.get_num_threads(),
            probe_epochs=cfg.probe.epochs,
        )
        log(
            f"run {spec.run_id} attempt {attempt} on {trainer.device}, {trainer.param_count:,} parameters, "
            f"{trainer.n_train}/{trainer.n_val}/{trainer.n_test} images"
            + (f", resuming after epoch {trainer.epoch}" if trainer.epoch else "")
        )

        def snapshot(phase: str) -> dict[str, Any]:
            return {
                "run_id": spec.run_id,
                "phase": phase,
                "metrics_bytes": metrics.stat().st_size,
                "trainer": trainer.state(),
            }

        latest = checkpoint if checkpoint is not None else snapshot("train")
        saved = checkpoint is not None
        try:
            if checkpoint is None or checkpoint.get("phase") == "train":
                while trainer.epoch < cfg.train.epochs:
                    r = trainer.train_epoch()
                    writer.emit(
                        "epoch",
                        epoch=r.epoch,
                        train_loss=r.train_loss,
                        val_loss=r.val_loss,
                        car=r.car,
                        grad_norm=r.grad_norm,
                        lr=cfg.train.lr,
                        images_per_s=round(r.images_per_s, 1),
                        seconds=round(r.seconds, 4),
                    )
                    log(
                        f"epoch {r.epoch}/{cfg.train.epochs} loss {r.train_loss[-1]:.4f} "
                        f"val {r.val_loss[-1]:.4f} car0 {r.car[0]:.3f} {r.seconds:.2f}s"
                    )
                    if r.diverged:
                        writer.emit("end", state="diverged", reason=f"non-finite loss in epoch {r.epoch}")
                        log(f"diverged in epoch {r.epoch}")
                        return WorkerExit.DIVERGED
                    latest, saved = snapshot("train"), False
                    if r.epoch % cfg.runtime.checkpoint_every == 0:
                        save_checkpoint(ckpt_path, latest)
                        saved = True
                # Stage 1 is done: the probe restarts from here, from its own seeded generators.
                latest = snapshot("probe")
                save_checkpoint(ckpt_path, latest)
                saved = True
            probe = trainer.run_probe(
                lambda e, tl, vl: writer.emit("probe", epoch=e, train_loss=tl, val_loss=vl)
            )
        except Stopped:
            if not saved:
                save_checkpoint(ckpt_path, latest)
            writer.emit("end", state="stopped", reason="SIGTERM")
            log(f"stopped; checkpoint after epoch {latest['trainer']['epoch']}")
            return WorkerExit.STOPPED
        writer.emit(
            "result", top1=probe.top1, top5=probe.top5, **trainer.summary(), probe_best_epoch=probe.best_epoch
        )
        writer.emit("end", state="done", reason="")
        log(f"done: top1 {probe.top1:.4f} top5 {probe.top5:.4f} (best epoch {trainer.best_epoch})")
        return WorkerExit.DONE
    except Exception as e:  # noqa: BLE001 - every failure becomes an end event and exit 1
        traceback.print_exc()
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        try:
            writer = writer or EventWriter(metrics, spec.run_id)
            writer.emit("end", state="failed", reason=reason)
        except OSError:
            pass
        return WorkerExit.FAILED
    finally:
        if writer is not None:
            writer.close()


if __name__ == "__main__":
    sys.exit(main())
