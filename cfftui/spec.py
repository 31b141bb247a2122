"""The run configuration and the RunSpec: the contract between planner, engine and worker.

Every field has a default that reproduces the reference CFF setup
(science.md §8). A configuration is built from plain nested dicts (TOML
tables, spec.json) by `config_from_dict`, which checks every key, type, range
and choice and raises `SpecError` naming the dotted key at fault, so the
experiments.toml loader can add the file and line. This module is stdlib only:
the worker, the engine and the UI all import it, and none of them may pay for
torch at import time.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

SPEC_VERSION = 1

MARGIN_MODES = ("clamp", "subtract", "none")
MARGIN_SCHEDULES = ("linear", "constant")
AUGMENT_LEVELS = ("none", "standard", "strong", "aggressive")
PRECISIONS = ("fp32", "tf32", "bf16")
BUILTIN_DATASETS = ("cifar10", "cifar100", "svhn", "fashion_mnist", "mnist", "synthetic")


class SpecError(ValueError):
    """A configuration value that cannot be used; `key` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


def _f(default: Any, *, doc: str, lo: float | None = None, hi: float | None = None,
       lo_open: bool = False, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its documentation and validation rules attached."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelConfig:
    """The reference ViT (science.md §2.1): raw patches, pre-LN blocks, mean over tokens."""

    embed_dim: int = _f(128, doc="Token width E.", lo=1)
    heads: int = _f(4, doc="Attention heads; must divide embed_dim.", lo=1)
    depth: int = _f(5, doc="Number of blocks, each trained by its own local loss.", lo=1, hi=64)
    mlp_ratio: float = _f(2.0, doc="MLP hidden width as a multiple of embed_dim.", lo=0, lo_open=True)
    patch_size: int = _f(4, doc="Side of the square, non-overlapping pixel patches.", lo=1)
    dropout: float = _f(0.0, doc="Dropout inside the MLP (the reference uses 0).", lo=0, hi=1)


@dataclass(frozen=True)
class DataConfig:
    """Which images, how many, and how they are augmented."""

    dataset: str = _f("cifar10", doc="A built-in dataset name, or the prefix of NAME-train*.npz / "
                      "NAME-test.npz files in `root`.")
    root: str = _f("data", doc="Folder holding dataset files (.npz or torchvision's layout).")
    download: bool = _f(False, doc="Let torchvision download a missing built-in dataset into `root`.")
    train_subset: int = _f(0, doc="Use only this many training images (0: all), drawn from the seed.", lo=0)
    test_subset: int = _f(0, doc="Use only this many test images (0: all), drawn from the seed.", lo=0)
    val_fraction: float = _f(0.1, doc="Share of the training images held out for validation.",
                             lo=0, hi=0.9, lo_open=True)
    augment: str = _f("standard", doc="Augmentation level (see cfftui/cff/augment.py).",
                      choices=AUGMENT_LEVELS)
    image_size: int = _f(16, doc="Synthetic dataset only: image side in pixels.", lo=2)
    channels: int = _f(3, doc="Synthetic dataset only: channels per image.", lo=1, hi=4)
    num_classes: int = _f(10, doc="Synthetic dataset only: number of classes.", lo=2)
    synthetic_train: int = _f(2000, doc="Synthetic dataset only: training images (before the split).", lo=4)
    synthetic_test: int = _f(500, doc="Synthetic dataset only: test images.", lo=1)


@dataclass(frozen=True)
class LossConfig:
    """The margin supervised contrastive loss of each block (science.md §3, §8.2)."""

    margin_mode: str = _f("clamp", doc="clamp: min(s+m,1) on positives; subtract: m subtracted "
                          "after the log-probability (gradient-neutral); none: plain SupCon.",
                          choices=MARGIN_MODES)
    temperature: float = _f(0.15, doc="SupCon temperature tau.", lo=0, lo_open=True)
    margin_schedule: str = _f("linear", doc="linear: margin_first at block 0 to margin_last at "
                              "the last block; constant: margin_first everywhere.",
                              choices=MARGIN_SCHEDULES)
    margin_first: float = _f(0.4, doc="Margin at block 0.", lo=0, hi=2)
    margin_last: float = _f(0.1, doc="Margin at the last block (linear schedule).", lo=0, hi=2)
    margin_scale: float = _f(1.0, doc="Global factor on every margin (the reduced-margin probe).",
                             lo=0, hi=10)


@dataclass(frozen=True)
class TrainConfig:
    """Stage 1: layer-local training of the encoder with one AdamW per block."""

    epochs: int = _f(600, doc="Stage-1 epochs.", lo=1)
    batch_size: int = _f(512, doc="Images per step (each seen as two views).", lo=2)
    lr: float = _f(0.004, doc="AdamW learning rate, constant.", lo=0, lo_open=True)
    weight_decay: float = _f(0.01, doc="AdamW weight decay.", lo=0)
    beta1: float = _f(0.9, doc="AdamW beta1.", lo=0, hi=1)
    beta2: float = _f(0.999, doc="AdamW beta2.", lo=0, hi=1)


@dataclass(frozen=True)
class ProbeConfig:
    """Stage 2: LayerNorm + Linear head on frozen last-block features."""

    epochs: int = _f(50, doc="Probe epochs; the epoch with the lowest validation CE is kept.", lo=1)
    lr: float = _f(0.0005, doc="AdamW learning rate of the head.", lo=0, lo_open=True)
    batch_size: int = _f(512, doc="Images per probe step.", lo=1)
    weight_decay: float = _f(0.01, doc="AdamW weight decay of the head.", lo=0)


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how a run executes; device and threads do not change a run's identity."""

    device: str = _f("auto", doc="auto (CUDA when available, else CPU), cpu, cuda or cuda:N.")
    precision: str = _f("fp32", doc="fp32 (reference math), tf32, or bf16 autocast for the blocks "
                        "with the loss kept in fp32.", choices=PRECISIONS)
    threads: int = _f(0, doc="Torch CPU threads for this run (0: let the executor decide).", lo=0)
    checkpoint_every: int = _f(10, doc="Write a checkpoint every N epochs (and on SIGTERM).", lo=1)
    fake: bool = _f(False, doc="Emit realistic events without training (engine and UI benchmarks).")
    fake_events_per_s: float = _f(10.0, doc="Fake mode: epoch events per second.", lo=0, lo_open=True)


@dataclass(frozen=True)
class RunConfig:
    """The fully resolved configuration of one training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def margins(self) -> list[float]:
        """Per-block margins after schedule and scale (linear: np.linspace(m0, mL, L))."""
        loss, depth = self.loss, self.model.depth
        if loss.margin_schedule == "constant" or depth == 1:
            base = [loss.margin_first] * depth
        else:
            span = loss.margin_last - loss.margin_first
            base = [loss.margin_first + span * i / (depth - 1) for i in range(depth)]
        return [m * loss.margin_scale for m in base]


SECTIONS: dict[str, type] = {f.name: f.type if isinstance(f.type, type) else globals()[f.type]
                             for f in dataclasses.fields(RunConfig)}

# Keys that say where a run executes, not what it computes: they stay out of the run id.
PLACEMENT_KEYS = frozenset({"runtime.device", "runtime.threads", "runtime.checkpoint_every",
                            "data.root", "data.download"})


def config_keys() -> dict[str, dataclasses.Field[Any]]:
    """Every dotted key of the run configuration with its dataclass field."""
    keys: dict[str, dataclasses.Field[Any]] = {}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            keys[f"{section}.{f.name}"] = f
    return keys


def suggest(name: str, options: list[str] | tuple[str, ...]) -> str:
    """' (did you mean X?)' for the closest option, or ''."""
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    if not close and "." in name:
        tails = {o.rsplit(".", 1)[-1]: o for o in options}
        close = [tails[c] for c in difflib.get_close_matches(name.rsplit(".", 1)[-1], list(tails), 1, 0.6)]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(t: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(t, str(t))


def check_value(key: str, value: Any) -> Any:
    """Validate one dotted-key value against its field; return it coerced (int -> float)."""
    fields = config_keys()
    if key not in fields:
        raise SpecError(key, f"unknown configuration key{suggest(key, list(fields))}")
    f = fields[key]
    want = {"int": int, "float": float, "bool": bool, "str": str}[f.type if isinstance(f.type, str)
                                                                   else f.type.__name__]
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise SpecError(key, f"expected {_type_name(want)}, got {json.dumps(value)}")
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        raise SpecError(key, f"{value!r} is not one of {', '.join(meta['choices'])}"
                        f"{suggest(value, meta['choices'])}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        bound = f"greater than {lo:g}" if meta.get("lo_open") else f"at least {lo:g}"
        raise SpecError(key, f"must be {bound}, got {value!r}")
    if hi is not None and value > hi:
        raise SpecError(key, f"must be at most {hi:g}, got {value!r}")
    return value


def config_from_dict(data: dict[str, Any] | None = None, *, prefix: str = "") -> RunConfig:
    """Build a RunConfig from nested dicts, checking every key; unknown keys are errors."""
    data = data or {}
    sections: dict[str, Any] = {}
    for section, values in data.items():
        where = f"{prefix}{section}"
        if section not in SECTIONS:
            raise SpecError(where, f"unknown configuration section{suggest(section, list(SECTIONS))}")
        if not isinstance(values, dict):
            raise SpecError(where, "expected a table of settings")
        checked = {}
        for name, value in values.items():
            try:
                checked[name] = check_value(f"{section}.{name}", value)
            except SpecError as e:
                raise SpecError(f"{prefix}{e.key}", e.message) from None
        sections[section] = SECTIONS[section](**checked)
    config = RunConfig(**sections)
    check_consistency(config, prefix=prefix)
    return config


def check_consistency(config: RunConfig, *, prefix: str = "") -> None:
    """Cross-field rules that no single value can break on its own."""
    m = config.model
    if m.embed_dim % m.heads:
        raise SpecError(f"{prefix}model.heads", f"{m.heads} heads do not divide embed_dim {m.embed_dim}")
    if config.data.dataset == "synthetic" and config.data.image_size % m.patch_size:
        raise SpecError(f"{prefix}model.patch_size", f"patch size {m.patch_size} does not divide the "
                        f"synthetic image size {config.data.image_size}")
    if config.loss.margin_mode != "none" and max(config.margins()) > 2:
        raise SpecError(f"{prefix}loss.margin_scale", "scaled margins above 2 saturate every pair")


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """Nested plain dicts, the inverse of config_from_dict."""
    return dataclasses.asdict(config)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def run_id_for(config: RunConfig, seed: int) -> str:
    """A stable content id: the same resolved configuration and seed always give the same id."""
    identity = {k: v for k, v in flatten(config_to_dict(config)).items() if k not in PLACEMENT_KEYS}
    blob = json.dumps({"config": identity, "seed": seed, "v": SPEC_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def flops_per_view(*, tokens: int, dim: int, depth: int, mlp_ratio: float, patch_dim: int) -> float:
    """Forward FLOPs of one view through the encoder (multiply-add = 2; performance.md §1.1).

    Per block: QKV 6NE², output 2NE², MLP 4rNE², scores and attention x V 4N²E; plus the patch embedding.
    """
    block = tokens * dim * dim * (8 + 4 * mlp_ratio) + 4 * tokens * tokens * dim
    return depth * block + 2 * tokens * patch_dim * dim


def stage1_flops_per_image(*, tokens: int, dim: int, depth: int, mlp_ratio: float, patch_dim: int,
                           batch_size: int) -> float:
    """Training FLOPs per image per stage-1 step: two views, a [2B, 2B] similarity per block, bwd ~ 2x fwd."""
    view = flops_per_view(tokens=tokens, dim=dim, depth=depth, mlp_ratio=mlp_ratio, patch_dim=patch_dim)
    similarity = 8 * batch_size * dim * depth
    return 3 * (2 * view + similarity)


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class RunSpec:
    """One (cell, seed) of an experiment: what the engine writes to spec.json for the worker."""

    experiment: str
    """Experiment name (a safe folder name)."""
    cell: dict[str, str]
    """Factor dotted key -> level label, in factor order."""
    seed: int
    """Drives split, initialisation, data order and augmentation."""
    config: RunConfig
    """The fully resolved configuration."""
    run_id: str = ""
    """Content id from run_id_for(config, seed); filled in when empty."""

    def __post_init__(self) -> None:
        if not self.run_id:
            object.__setattr__(self, "run_id", run_id_for(self.config, self.seed))

    @property
    def cell_label(self) -> str:
        """'margin_mode=clamp embed_dim=128': short factor names with level labels."""
        return " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in self.cell.items()) or "all"

    def to_json(self) -> dict[str, Any]:
        return {"v": SPEC_VERSION, "run_id": self.run_id, "experiment": self.experiment,
                "cell": dict(self.cell), "seed": self.seed, "config": config_to_dict(self.config)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        """Parse spec.json content; raises SpecError naming the bad field."""
        if not isinstance(data, dict):
            raise SpecError("", "spec must be a JSON object")
        for key, kind in (("experiment", str), ("seed", int), ("cell", dict), ("config", dict)):
            if key not in data:
                raise SpecError(key, "missing")
            if not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
                raise SpecError(key, f"expected {_type_name(kind) if kind is not dict else 'an object'}")
        config = config_from_dict(data["config"], prefix="config.")
        return cls(experiment=data["experiment"], cell={str(k): str(v) for k, v in data["cell"].items()},
                   seed=data["seed"], config=config, run_id=str(data.get("run_id") or ""))
