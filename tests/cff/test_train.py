"""The trainer in-process: bitwise determinism, bf16 autocast with an fp32 loss, lazy imports."""

from __future__ import annotations

import math
import subprocess
import sys

import torch

from cfftui.cff.data import load_arrays
from cfftui.cff.train import Trainer, purpose_seed
from cfftui.spec import config_from_dict

from .helpers import TINY, merge


def trainer(seed: int, **over: dict[str, object]) -> Trainer:
    cfg = config_from_dict(merge(TINY, over))
    return Trainer(cfg, seed, load_arrays(cfg.data), torch.device("cpu"))


def test_same_seed_gives_bitwise_equal_weights_and_other_seeds_do_not() -> None:
    a, b, c = trainer(1), trainer(1), trainer(2)
    for t in (a, b, c):
        t.train_epoch()
    sa, sb, sc = (t.encoder.state_dict() for t in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_purpose_streams_are_independent_of_each_other() -> None:
    seeds = {purpose_seed(1, p) for p in ("split", "init", "order", "augment")}
    assert len(seeds) == 4 and purpose_seed(1, "init") != purpose_seed(2, "init")


def test_bf16_autocast_trains_with_finite_fp32_losses() -> None:
    t = trainer(1, runtime={"precision": "bf16"})
    r = t.train_epoch()
    assert all(math.isfinite(v) for v in r.train_loss + r.val_loss)
    assert all(0 <= c <= 1 for c in r.car)


def test_last_partial_batch_is_kept() -> None:
    t = trainer(1, train={"batch_size": 64})
    seen = torch.cat(list(t.batches(t.train_idx, 64, torch.Generator().manual_seed(0))))
    assert len(seen) == t.n_train == 270 and sorted(seen.tolist()) == sorted(t.train_idx.tolist())


def test_the_bench_command_module_imports_no_torch() -> None:
    code = "import sys, cfftui.cff.commands; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
