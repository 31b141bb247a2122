"""Stage-1 throughput of cfftui's trainer against a reference-style loop, after an fp64 equivalence gate."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch

from cfftui.cff.augment import Augmenter
from cfftui.cff.model import build_encoder, patchify
from cfftui.cff.reference import (
    as_fast_state_dict,
    build_reference,
    ref_loader,
    ref_optimizers,
    ref_step,
)
from cfftui.cff.train import stage1_step
from cfftui.spec import LossConfig, ModelConfig, RunConfig, stage1_flops_per_image

GATE_DLOSS, GATE_DW = 1e-12, 1e-10
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


@dataclass(frozen=True)
class BenchConfig:
    dim: int = 128
    heads: int = 4
    depth: int = 5
    mlp_ratio: float = 2.0
    patch: int = 4
    image_size: int = 32
    channels: int = 3
    batch_size: int = 64
    pad: int = 12
    temperature: float = 0.15
    margin_first: float = 0.4
    margin_last: float = 0.1
    mode: str = "clamp"
    lr: float = 0.004
    reps: int = 7
    epoch_batches: int = 6
    epoch_reps: int = 3
    seed: int = 0

    @property
    def tokens(self) -> int:
        return (self.image_size // self.patch) ** 2

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch**2

    @property
    def margins(self) -> list[float]:
        """The trainer's own linear schedule (RunConfig.margins) for this depth and these margins."""
        loss = LossConfig(margin_first=self.margin_first, margin_last=self.margin_last)
        return RunConfig(model=self.model(), loss=loss).margins()

    def model(self) -> ModelConfig:
        return ModelConfig(
            embed_dim=self.dim,
            heads=self.heads,
            depth=self.depth,
            mlp_ratio=self.mlp_ratio,
            patch_size=self.patch,
        )


SMOKE = BenchConfig(
    dim=32, heads=4, depth=2, image_size=16, batch_size=16, pad=2, reps=2, epoch_batches=2, epoch_reps=1
)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def build_pair(cfg: BenchConfig, device: torch.device, dtype: torch.dtype = torch.float32) -> tuple[Any, ...]:
    """cfftui's encoder and the reference's layers from the same seed (bitwise-equal weights)."""
    ours = build_encoder(
        cfg.model(),
        image_size=cfg.image_size,
        channels=cfg.channels,
        gen=torch.Generator().manual_seed(cfg.seed),
        dtype=dtype,
        device=device,
    )
    with default_dtype(dtype):
        ref = build_reference(
            image_size=cfg.image_size,
            channels=cfg.channels,
            patch=cfg.patch,
            dim=cfg.dim,
            heads=cfg.heads,
            depth=cfg.depth,
            mlp_ratio=cfg.mlp_ratio,
            seed=cfg.seed,
        ).to(device)
    opts = [
        torch.optim.AdamW(layer.parameters(), lr=cfg.lr, fused=device.type == "cuda" or None)
        for layer in ours.layers
    ]
    return ours, opts, ref, ref_optimizers(ref, lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.999))


def equivalence_gate(cfg: BenchConfig, steps: int = 3) -> dict[str, Any]:
    """fp64 on CPU: same init bitwise, then |dloss| and |dW| after `steps` steps on the same batch."""
    cpu = torch.device("cpu")
    ours, opts, ref, ref_opts = build_pair(cfg, cpu, torch.float64)
    init_equal = all(
        torch.equal(layer.state_dict()[k], v)
        for i, layer in enumerate(ours.layers)
        for k, v in as_fast_state_dict(ref[i], i).items()
    )
    g = torch.Generator().manual_seed(cfg.seed + 1)
    b = cfg.batch_size
    x1 = torch.randn(b, cfg.tokens, cfg.patch_dim, generator=g, dtype=torch.float64)
    x2 = torch.randn(b, cfg.tokens, cfg.patch_dim, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (b,), generator=g)
    dloss = 0.0
    with default_dtype(torch.float64):
        for _ in range(steps):
            acc = torch.zeros(cfg.depth, 3, dtype=torch.float64)
            stage1_step(
                list(ours.layers),
                opts,
                torch.cat([x1, x2]),
                y,
                acc,
                margins=cfg.margins,
                temperature=cfg.temperature,
                mode=cfg.mode,
            )
            ref_losses = ref_step(
                ref, ref_opts, x1, x2, y, margins=cfg.margins, temperature=cfg.temperature, mode=cfg.mode
            )
            ours_losses = (acc[:, 0] / b).tolist()
            dloss = max(dloss, *(abs(a - r) for a, r in zip(ours_losses, ref_losses, strict=True)))
    dw = max(
        float((layer.state_dict()[k] - v).abs().max())
        for i, layer in enumerate(ours.layers)
        for k, v in as_fast_state_dict(ref[i], i).items()
    )
    passed = init_equal and dloss <= GATE_DLOSS and dw <= GATE_DW
    return {"init_equal": init_equal, "dloss": dloss, "dw": dw, "passed": passed}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _autocast(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def model_step_times(
    cfg: BenchConfig, device: torch.device, precision: str
) -> tuple[list[float], list[float]]:
    """Seconds per step of the reference loop and of cfftui's step, interleaved so drift hits both."""
    ours, opts, ref, ref_opts = build_pair(cfg, device)
    g = torch.Generator().manual_seed(cfg.seed)
    b = cfg.batch_size
    x1 = torch.randn(b, cfg.tokens, cfg.patch_dim, generator=g).to(device)
    x2 = torch.randn(b, cfg.tokens, cfg.patch_dim, generator=g).to(device)
    views = torch.cat([x1, x2])
    y = torch.randint(0, 10, (b,), generator=g).to(device)
    acc = torch.zeros(cfg.depth, 3, device=device)
    autocast = _autocast(device, precision)

    def new() -> None:
        stage1_step(
            list(ours.layers),
            opts,
            views,
            y,
            acc,
            margins=cfg.margins,
            temperature=cfg.temperature,
            mode=cfg.mode,
            autocast=autocast,
        )

    def old() -> None:
        ref_step(ref, ref_opts, x1, x2, y, margins=cfg.margins, temperature=cfg.temperature, mode=cfg.mode)

    for _ in range(2):
        old(), new()
    ref_s, new_s = [], []
    for _ in range(cfg.reps):
        ref_s.append(_timed(old, device))
        new_s.append(_timed(new, device))
    return ref_s, new_s


def mini_epoch_times(
    cfg: BenchConfig, device: torch.device, precision: str
) -> tuple[list[float], list[float]]:
    """Seconds for `epoch_batches` batches with augmentation: DataLoader + reference vs gather + cfftui."""
    n = cfg.epoch_batches * cfg.batch_size
    g = torch.Generator().manual_seed(cfg.seed)
    images = torch.randint(
        0, 256, (n, cfg.channels, cfg.image_size, cfg.image_size), generator=g, dtype=torch.uint8
    )  # random, never zeros: zeros hide bugs and run too fast
    labels = torch.randint(0, 10, (n,), generator=g)
    mean, std = (CIFAR_MEAN * cfg.channels)[: cfg.channels], (CIFAR_STD * cfg.channels)[: cfg.channels]
    ours, opts, ref, ref_opts = build_pair(cfg, device)
    loader = ref_loader(
        images, labels, batch_size=cfg.batch_size, pad=cfg.pad, flip=True, mean=mean, std=std, seed=cfg.seed
    )
    aug = Augmenter(images.to(device), "standard", cfg.pad, True, mean, std, cfg.patch)
    labels_dev = labels.to(device)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    order_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    acc = torch.zeros(cfg.depth, 3, device=device)
    autocast = _autocast(device, precision)

    def old() -> None:
        for v1, v2, y in loader:
            ref_step(
                ref,
                ref_opts,
                patchify(v1, cfg.patch).to(device),
                patchify(v2, cfg.patch).to(device),
                y.to(device),
                margins=cfg.margins,
                temperature=cfg.temperature,
                mode=cfg.mode,
            )

    def new() -> None:
        order = torch.randperm(n, device=device, generator=order_gen)
        for start in range(0, n, cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            stage1_step(
                list(ours.layers),
                opts,
                aug(torch.cat([batch, batch]), aug_gen),
                labels_dev[batch],
                acc,
                margins=cfg.margins,
                temperature=cfg.temperature,
                mode=cfg.mode,
                autocast=autocast,
            )

    ref_s, new_s = [], []
    for _ in range(cfg.epoch_reps):
        ref_s.append(_timed(old, device))
        new_s.append(_timed(new, device))
    return ref_s, new_s


def peak_memory(device: torch.device) -> dict[str, float]:
    import psutil

    info = psutil.Process().memory_info()
    # ru_maxrss would be the true peak, but psutil is portable; report the current RSS too.
    out = {"rss_mib": info.rss / 2**20}
    try:
        import resource

        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:
        pass
    if device.type == "cuda":
        out["cuda_peak_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def run_bench(
    cfg: BenchConfig,
    device: torch.device,
    precision: str,
    peak_tflops: float,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole benchmark; prints as it goes and returns the figures (passed is False if the gate failed)."""
    flops = stage1_flops_per_image(
        tokens=cfg.tokens,
        dim=cfg.dim,
        depth=cfg.depth,
        mlp_ratio=cfg.mlp_ratio,
        patch_dim=cfg.patch_dim,
        batch_size=cfg.batch_size,
    )
    ref_flops = stage1_flops_per_image(
        tokens=cfg.tokens,
        dim=cfg.dim,
        depth=cfg.depth,
        mlp_ratio=cfg.mlp_ratio,
        patch_dim=cfg.patch_dim,
        batch_size=512,
    )
    out(
        f"cfftui bench: device {device}, precision {precision} (reference loop fp32), "
        f"threads {torch.get_num_threads()}, torch {torch.__version__}"
    )
    out(
        f"config: E={cfg.dim} H={cfg.heads} L={cfg.depth} patch {cfg.patch}, images "
        f"{cfg.image_size}x{cfg.image_size}x{cfg.channels}, batch {cfg.batch_size} (x2 views), margin mode "
        f"{cfg.mode}; {flops / 1e6:.1f} MFLOP per image-step ({ref_flops / 1e6:.1f} at batch 512)"
    )
    gate = equivalence_gate(cfg)
    verdict = "PASS" if gate["passed"] else "FAIL"
    out(
        f"equivalence (fp64, CPU, 3 steps): init bitwise equal {'yes' if gate['init_equal'] else 'NO'}, "
        f"|dloss| {gate['dloss']:.1e} (<= {GATE_DLOSS:.0e}), |dW| {gate['dw']:.1e} (<= {GATE_DW:.0e}): "
        f"{verdict}"
    )
    result: dict[str, Any] = {
        "config": asdict(cfg),
        "device": str(device),
        "precision": precision,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gate": gate,
        "mflop_per_image": flops / 1e6,
    }
    if not gate["passed"]:
        result["passed"] = False
        return result
    ref_s, new_s = model_step_times(cfg, device, precision)
    ref_ms, new_ms = statistics.median(ref_s) * 1e3, statistics.median(new_s) * 1e3
    for name, times, med in (("reference", ref_s, ref_ms), ("cfftui", new_s, new_ms)):
        out(
            f"model step {name:9s}: median {med:8.2f} ms "
            f"(min {min(times) * 1e3:.2f}, max {max(times) * 1e3:.2f}, "
            f"n={len(times)})  {cfg.batch_size / med * 1e3:9.1f} img/s"
        )
    ratio_steps = ref_ms / new_ms
    out(f"ratio (cfftui / reference steps per s): {ratio_steps:.3f}")
    ref_e, new_e = mini_epoch_times(cfg, device, precision)
    epoch_ref, epoch_new = statistics.median(ref_e), statistics.median(new_e)
    ratio_epoch = epoch_ref / epoch_new
    out(
        f"mini-epoch ({cfg.epoch_batches} x {cfg.batch_size} images incl. augmentation): reference "
        f"{epoch_ref:.3f} s, cfftui {epoch_new:.3f} s, ratio {ratio_epoch:.3f}"
    )
    images_per_s = cfg.batch_size / new_ms * 1e3
    memory = peak_memory(device)
    out("peak memory: " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))
    result.update(
        ref_ms=ref_ms,
        new_ms=new_ms,
        ratio_steps=ratio_steps,
        epoch_ref_s=epoch_ref,
        epoch_new_s=epoch_new,
        ratio_epoch=ratio_epoch,
        images_per_s=images_per_s,
        memory=memory,
        passed=True,
    )
    if device.type == "cuda":
        mfu = images_per_s * flops / (peak_tflops * 1e12)
        result["mfu"] = mfu
        out(f"MFU (cfftui): {100 * mfu:.2f}% of {peak_tflops:g} TFLOP/s")
    for label, ratio in (("model-step", ratio_steps), ("mini-epoch", ratio_epoch)):
        if ratio < 0.9:
            print(f"warning: {label} ratio {ratio:.3f} < 0.9 (CPU noise is about +-15%)", file=sys.stderr)
    return result


def threads_default() -> int:
    return os.cpu_count() or 1
