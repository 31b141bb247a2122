"""The layer-local CFF trainer (science.md §2.2): stage 1 per-block AdamW, then the linear probe."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from cfftui.cff.augment import Augmenter
from cfftui.cff.data import Arrays, split_indices
from cfftui.cff.loss import PairMasks, margin_supcon
from cfftui.cff.model import build_encoder, build_head, count_parameters
from cfftui.spec import RunConfig

PURPOSES = ("split", "init", "order", "augment", "probe_init", "probe_order", "probe_augment")


class Stopped(Exception):
    """Raised at a step boundary when the worker was asked to stop."""


def purpose_seed(seed: int, purpose: str) -> int:
    """Independent 63-bit seeds per purpose, so adding a draw in one stream never shifts another."""
    digest = hashlib.sha256(f"cfftui:{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def make_generator(seed: int, purpose: str, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(purpose_seed(seed, purpose))


def resolve_device(name: str) -> torch.device:
    """runtime.device -> a torch device; ValueError naming the problem when it is not available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"runtime.device: {name!r} is not a device (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"runtime.device: {name!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"runtime.device: {name!r} but only {torch.cuda.device_count()} CUDA devices")
    elif device.type != "cpu":
        raise ValueError(f"runtime.device: {name!r} is not supported (auto, cpu, cuda or cuda:N)")
    return device


def _clone(tree: Any) -> Any:
    """A deep copy of nested dicts/lists of tensors (a snapshot that later steps cannot change)."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, dict):
        return {k: _clone(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_clone(v) for v in tree)
    return tree


@dataclass
class EpochResult:
    """One stage-1 epoch, already on the host."""

    epoch: int
    train_loss: list[float]
    val_loss: list[float]
    car: list[float]
    grad_norm: list[float]
    seconds: float
    images_per_s: float

    @property
    def diverged(self) -> bool:
        return not all(math.isfinite(v) for v in self.train_loss + self.val_loss)


@dataclass
class ProbeResult:
    top1: float
    top5: float
    best_epoch: int
    epochs: list[dict[str, float]] = field(default_factory=list)


def stage1_step(
    layers: list[torch.nn.Module],
    opts: list[torch.optim.Optimizer] | None,
    views: torch.Tensor,
    labels: torch.Tensor,
    acc: torch.Tensor,
    *,
    margins: list[float],
    temperature: float,
    mode: str,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> None:
    """One CFF step on [2B, N, P] patches (view 1 then view 2); adds [loss*B, CAR, grad norm] per block.

    Both views go through each block as one batch: every op acts per image, so this equals the
    reference's two forwards with half the launches. Each block is stepped right after its own
    forward pass, before the next block sees the batch. With opts None nothing is updated
    (validation) and only the loss column is filled.
    """
    b = len(labels)
    masks = PairMasks.from_labels(labels)  # once per step, shared by every block
    h = views
    for block, layer in enumerate(layers):
        with autocast():
            h = layer(h.detach())  # the stop-gradient: no gradient crosses blocks
        loss, car = margin_supcon(h.mean(1), masks, temperature=temperature, margin=margins[block], mode=mode)
        if opts is None:
            acc[block, 0] += loss.detach() * b
            continue
        opt = opts[block]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in layer.parameters() if p.grad is not None])
        opt.step()
        acc[block] += torch.stack([loss.detach() * b, car, grad_norm.to(acc.dtype)])


class Trainer:
    """Everything one run needs: data on the device, encoder, per-block AdamWs, generators, best state."""

    def __init__(
        self,
        config: RunConfig,
        seed: int,
        arrays: Arrays,
        device: torch.device,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg, self.seed, self.device = config, seed, device
        self.should_stop = should_stop
        self.precision = config.runtime.precision
        cuda = device.type == "cuda"
        if cuda and self.precision == "tf32":
            torch.backends.cuda.matmul.allow_tf32 = True

        # --- data: uint8 on the device, index tensors from the seed's split stream -------------
        splits = split_indices(
            len(arrays.y_train),
            len(arrays.y_test),
            config.data,
            make_generator(seed, "split", torch.device("cpu")),
        )
        self.num_classes = arrays.num_classes
        self.y_train = arrays.y_train.to(device)
        self.y_test = arrays.y_test.to(device)
        self.train_idx, self.val_idx = splits.train.to(device), splits.val.to(device)
        self.test_idx = splits.test.to(device)
        patch = config.model.patch_size
        self.augment = Augmenter(
            arrays.x_train.to(device),
            config.data.augment,
            arrays.crop_pad,
            arrays.flip,
            arrays.mean,
            arrays.std,
            patch,
        )
        self.test_images = Augmenter(
            arrays.x_test.to(device), "none", 0, False, arrays.mean, arrays.std, patch
        )

        # --- model and one AdamW per block --------------------------------------------------
        self.encoder = build_encoder(
            config.model,
            image_size=arrays.image_size,
            channels=arrays.channels,
            gen=make_generator(seed, "init", torch.device("cpu")),
            device=device,
        )
        self.layers = list(self.encoder.layers)
        t = config.train
        self.opts = [
            torch.optim.AdamW(
                layer.parameters(),
                lr=t.lr,
                betas=(t.beta1, t.beta2),
                weight_decay=t.weight_decay,
                fused=cuda or None,
            )
            for layer in self.layers
        ]
        self.margins = config.margins()
        self.order_gen = make_generator(seed, "order", device)
        self.augment_gen = make_generator(seed, "augment", device)

        # --- progress ----------------------------------------------------------------------
        self.epoch = 0
        self.best_epoch, self.best_val = 0, math.inf
        self.best_state = _clone(self.encoder.state_dict())
        depth = len(self.layers)
        self.car_sum, self.grad_sum, self.steps = [0.0] * depth, [0.0] * depth, 0
        self.last_car = [0.0] * depth

    # --- sizes ------------------------------------------------------------------------------
    @property
    def n_train(self) -> int:
        return len(self.train_idx)

    @property
    def n_val(self) -> int:
        return len(self.val_idx)

    @property
    def n_test(self) -> int:
        return len(self.test_idx)

    @property
    def param_count(self) -> int:
        return (
            count_parameters(self.encoder)
            + self.encoder.dim * 2
            + self.encoder.dim * self.num_classes
            + self.num_classes
        )

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def batches(
        self, index: torch.Tensor, batch_size: int, gen: torch.Generator | None
    ) -> Iterator[torch.Tensor]:
        """Index batches in a fresh random order (gen) or in order (None); the last partial batch is kept."""
        order = (
            index[torch.randperm(len(index), device=index.device, generator=gen)]
            if gen is not None
            else index
        )
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]

    # --- stage 1 ----------------------------------------------------------------------------
    def _stage1_pass(self, index: torch.Tensor, acc: torch.Tensor, train: bool) -> None:
        """One pass over `index` (training steps, or the no-grad validation pass) into acc [L, 3]."""
        cfg = self.cfg
        for batch in self.batches(index, cfg.train.batch_size, self.order_gen if train else None):
            if train and self.should_stop():
                raise Stopped
            views = self.augment(torch.cat([batch, batch]), self.augment_gen)
            stage1_step(
                self.layers,
                self.opts if train else None,
                views,
                self.y_train[batch],
                acc,
                margins=self.margins,
                temperature=cfg.loss.temperature,
                mode=cfg.loss.margin_mode,
                autocast=self.autocast,
            )

    def train_epoch(self) -> EpochResult:
        """One stage-1 epoch plus its validation pass; the best encoder is kept by last-block val loss."""
        started = time.perf_counter()
        depth = len(self.layers)
        train_acc = torch.zeros(depth, 3, device=self.device)
        val_acc = torch.zeros(depth, 3, device=self.device)
        self.encoder.train()
        self._stage1_pass(self.train_idx, train_acc, train=True)
        self.encoder.eval()
        with torch.no_grad():
            self._stage1_pass(self.val_idx, val_acc, train=False)
        steps = math.ceil(self.n_train / self.cfg.train.batch_size)
        # The epoch's one host sync: every per-block figure comes over in a single copy.
        host = torch.cat([train_acc.flatten(), val_acc[:, 0]]).tolist()
        seconds = time.perf_counter() - started
        self.epoch += 1
        rows = [host[3 * i : 3 * i + 3] for i in range(depth)]
        result = EpochResult(
            epoch=self.epoch,
            train_loss=[r[0] / self.n_train for r in rows],
            val_loss=[v / self.n_val for v in host[3 * depth :]],
            car=[r[1] / steps for r in rows],
            grad_norm=[r[2] / steps for r in rows],
            seconds=seconds,
            images_per_s=self.n_train / seconds if seconds > 0 else 0.0,
        )
        self.steps += steps
        for i, r in enumerate(rows):
            self.car_sum[i] += r[1]
            self.grad_sum[i] += r[2]
        self.last_car = result.car
        if not result.diverged and result.val_loss[-1] < self.best_val:
            self.best_val, self.best_epoch = result.val_loss[-1], self.epoch
            self.best_state = _clone(self.encoder.state_dict())
        return result

    # --- stage 2: the linear probe -----------------------------------------------------------
    def _features(
        self, index: torch.Tensor, gen: torch.Generator | None, augment: bool, source: Augmenter | None = None
    ) -> torch.Tensor:
        source = source or self.augment
        out = []
        with torch.no_grad():
            for batch in self.batches(index, self.cfg.probe.batch_size, None):
                with self.autocast():
                    out.append(self.encoder(source(batch, gen, augment=augment)).float())
        return torch.cat(out) if out else torch.zeros(0, self.encoder.dim, device=self.device)

    def run_probe(self, on_epoch: Callable[[int, float, float], None] | None = None) -> ProbeResult:
        """Train LayerNorm + Linear on frozen final-block features of the best encoder; test it."""
        p, dev = self.cfg.probe, self.device
        self.encoder.load_state_dict(self.best_state)
        self.encoder.eval()
        head = build_head(
            self.encoder.dim,
            self.num_classes,
            gen=make_generator(self.seed, "probe_init", torch.device("cpu")),
            device=dev,
        )
        opt = torch.optim.AdamW(
            head.parameters(), lr=p.lr, weight_decay=p.weight_decay, fused=dev.type == "cuda" or None
        )
        order_gen = make_generator(self.seed, "probe_order", dev)
        aug_gen = make_generator(self.seed, "probe_augment", dev)
        test_x = self._features(self.test_idx, None, augment=False, source=self.test_images)
        test_y = self.y_test[self.test_idx]
        best_val, best_epoch, best_head = math.inf, 0, _clone(head.state_dict())
        result = ProbeResult(top1=0.0, top5=0.0, best_epoch=0)
        for epoch in range(1, p.epochs + 1):
            if self.should_stop():
                raise Stopped
            # View 1 with the train-time augmentation, fresh each epoch, for train and validation.
            train_x = self._features(self.train_idx, aug_gen, augment=True)
            val_x = self._features(self.val_idx, aug_gen, augment=True)
            train_y, val_y = self.y_train[self.train_idx], self.y_train[self.val_idx]
            sums = torch.zeros(2, device=dev)
            head.train()
            positions = torch.arange(self.n_train, device=dev)
            for batch in self.batches(positions, p.batch_size, order_gen):
                loss = F.cross_entropy(head(train_x[batch]), train_y[batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sums[0] += loss.detach() * len(batch)
            head.eval()
            with torch.no_grad():
                sums[1] = F.cross_entropy(head(val_x), val_y, reduction="sum")
            train_loss, val_loss = (
                sums / torch.tensor([self.n_train, self.n_val], device=dev)
            ).tolist()  # sync
            result.epochs.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
            if on_epoch is not None:
                on_epoch(epoch, train_loss, val_loss)
            if val_loss < best_val:
                best_val, best_epoch, best_head = val_loss, epoch, _clone(head.state_dict())
        head.load_state_dict(best_head)
        head.eval()
        with torch.no_grad():
            logits = head(test_x)
            k = min(5, self.num_classes)
            topk = logits.topk(k, dim=1).indices
            hits = topk == test_y[:, None]
            top1, top5 = (torch.stack([hits[:, 0].float().mean(), hits.any(1).float().mean()])).tolist()
        result.top1, result.top5, result.best_epoch = top1, top5, best_epoch
        return result

    def summary(self) -> dict[str, Any]:
        """Run-level diagnostics for the result event."""
        steps = max(1, self.steps)
        return {
            "best_epoch": self.best_epoch,
            "car": [c / steps for c in self.car_sum],
            "car_final": list(self.last_car),
            "grad_norm": [g / steps for g in self.grad_sum],
        }

    # --- checkpoint state ------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """A snapshot of everything that makes the rest of the run exact (tensors cloned)."""
        return _clone(
            {
                "epoch": self.epoch,
                "encoder": self.encoder.state_dict(),
                "opts": [o.state_dict() for o in self.opts],
                "order_gen": self.order_gen.get_state(),
                "augment_gen": self.augment_gen.get_state(),
                "best_epoch": self.best_epoch,
                "best_val": self.best_val,
                "best_state": self.best_state,
                "car_sum": self.car_sum,
                "grad_sum": self.grad_sum,
                "steps": self.steps,
                "last_car": self.last_car,
            }
        )

    def load_state(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.encoder.load_state_dict(state["encoder"])
        for opt, s in zip(self.opts, state["opts"], strict=True):
            opt.load_state_dict(s)
        self.order_gen.set_state(state["order_gen"])
        self.augment_gen.set_state(state["augment_gen"])
        self.best_epoch, self.best_val = int(state["best_epoch"]), float(state["best_val"])
        self.best_state = {k: v.to(self.device) for k, v in state["best_state"].items()}
        self.car_sum, self.grad_sum = list(state["car_sum"]), list(state["grad_sum"])
        self.steps, self.last_car = int(state["steps"]), list(state["last_car"])
