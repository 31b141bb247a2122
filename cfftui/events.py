"""The metric-event schema shared by the worker and every reader, and a tolerant JSONL tailer.

A worker appends one JSON object per line to RUN_DIR/metrics.jsonl and flushes
after each line; the file is the source of truth. Every event carries `v`
(schema version), `event` (its kind), `t` (unix seconds) and `run` (the run
id). Kinds and their fields (lists are per block, block 0 first):

- start:  attempt, spec_digest, device, precision, params, depth, epochs,
          n_train, n_val, n_test, resumed_from (last epoch already recorded, 0 if none)
- epoch:  epoch (1-based), train_loss, val_loss, car, grad_norm (lists), lr,
          images_per_s, seconds (wall time of the epoch)
- probe:  epoch, train_loss, val_loss (the linear head's cross-entropy)
- result: top1, top5 (test accuracy in [0, 1]), best_epoch, car (per-block
          mean over all training steps), car_final (last epoch), grad_norm (run mean)
- end:    state (done | failed | diverged | stopped), reason

Readers ignore fields and kinds they do not know, so the schema can grow;
a torn last line is kept back until its newline arrives.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from typing import IO, Any

SCHEMA_VERSION = 1
KINDS = ("start", "epoch", "probe", "result", "end")
END_STATES = ("done", "failed", "diverged", "stopped")


class WorkerExit:
    """Exit statuses of `python -m cfftui.cff.worker RUN_DIR` (the end event says the same)."""

    DONE = 0
    FAILED = 1
    """An exception during training; the traceback is on stderr."""
    BAD_INPUT = 2
    """The spec, dataset or shapes cannot be used; one line on stderr says why; nothing written."""
    DIVERGED = 3
    """A NaN or infinite loss; retrying the same seed would diverge again."""
    STOPPED = 4
    """SIGTERM: the worker checkpointed and left; starting it again resumes."""


def make_event(kind: str, run_id: str, **fields: Any) -> dict[str, Any]:
    """An event dict with the common header fields first."""
    return {"v": SCHEMA_VERSION, "event": kind, "t": round(time.time(), 3), "run": run_id, **fields}


def encode(event: dict[str, Any]) -> str:
    """One line of JSON (no newline); NaN and infinities become null so every reader can parse it."""
    return json.dumps(_nan_to_none(event), separators=(",", ":"), allow_nan=False)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def decode_line(line: str | bytes) -> dict[str, Any] | None:
    """Parse one line; None for blank, malformed or non-event lines (readers skip them)."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        return None
    return obj


class EventWriter:
    """Appends events to metrics.jsonl, one flushed line each."""

    def __init__(self, path: str | os.PathLike[str], run_id: str) -> None:
        self.run_id = run_id
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = make_event(kind, self.run_id, **fields)
        self._file.write(encode(event) + "\n")
        self._file.flush()
        return event

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete event in a metrics file (a torn last line is left out)."""
    tail = Tail(path)
    return tail.read()


class Tail:
    """Follows one JSONL file by byte offset; holds a torn last line back until it is complete.

    Not thread-safe; one Tail per reader. Cheap when nothing changed: one stat().
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes_per_read: int = 1 << 20) -> None:
        self.path = os.fspath(path)
        self.offset = 0
        self.resets = 0
        """How often the file shrank (a resumed worker truncates events after its checkpoint);
        a reader that sees this grow must drop what it built and rebuild from the events."""
        self._partial = b""
        self._max = max_bytes_per_read

    def read(self) -> list[dict[str, Any]]:
        """New complete events since the last call (at most max_bytes_per_read bytes of them)."""
        return list(self._iter_new())

    def _iter_new(self) -> Iterator[dict[str, Any]]:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size < self.offset:  # truncated or replaced: start over
            self.offset, self._partial = 0, b""
            self.resets += 1
        if size == self.offset:
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(min(size - self.offset, self._max))
        self.offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            event = decode_line(line)
            if event is not None:
                yield event


def last_epoch(events: list[dict[str, Any]]) -> int:
    """The highest epoch number among epoch events (0 if none)."""
    return max((int(e.get("epoch", 0)) for e in events if e.get("event") == "epoch"), default=0)
