"""Metric events: encoding, tolerant decoding, and tailing by byte offset."""

from __future__ import annotations

import json
from pathlib import Path

from cfftui.events import EventWriter, Tail, decode_line, encode, last_epoch, make_event, read_events


def test_non_finite_numbers_become_null() -> None:
    line = encode(make_event("epoch", "r1", train_loss=[float("nan"), 1.0], lr=float("inf")))
    data = json.loads(line)
    assert data["train_loss"] == [None, 1.0] and data["lr"] is None
    assert data["v"] == 1 and data["event"] == "epoch" and data["run"] == "r1"


def test_decode_skips_garbage() -> None:
    assert decode_line("") is None
    assert decode_line("{not json") is None
    assert decode_line("[1, 2]") is None
    assert decode_line('{"no_event": 1}') is None
    assert decode_line('{"event": "epoch", "unknown_field": 3}') == {"event": "epoch", "unknown_field": 3}


def test_tail_holds_back_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = Tail(path)
    assert tail.read() == []  # missing file is not an error
    with EventWriter(path, "r1") as w:
        w.emit("start", attempt=1)
    assert [e["event"] for e in tail.read()] == ["start"]
    with open(path, "a") as f:
        f.write('{"event": "epoch", "epoch": 1')
    assert tail.read() == []
    with open(path, "a") as f:
        f.write("}\n")
    assert [e["epoch"] for e in tail.read()] == [1]
    assert tail.read() == []


def test_tail_restarts_after_truncation(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    with EventWriter(path, "r1") as w:
        for epoch in (1, 2, 3):
            w.emit("epoch", epoch=epoch)
    tail = Tail(path)
    assert len(tail.read()) == 3
    keep = len(path.read_bytes().split(b"\n")[0]) + 1
    with open(path, "r+") as f:
        f.truncate(keep)
    assert [e["epoch"] for e in tail.read()] == [1]  # re-read from the start
    assert tail.resets == 1
    with EventWriter(path, "r1") as w:
        w.emit("epoch", epoch=2)
    events = read_events(path)
    assert [e["epoch"] for e in events] == [1, 2]
    assert last_epoch(events) == 2
