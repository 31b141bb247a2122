"""The dataset registry: local .npz files, torchvision datasets and a deterministic synthetic set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

SYNTHETIC_SEED = 0x5EED_CFF
"""Fixed: every run of a study sees the same synthetic images, as with a real dataset."""


class DataError(ValueError):
    """A dataset that cannot be loaded; the message names the key, folder or file at fault."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the pipeline needs to know about a dataset beyond its arrays."""

    mean: tuple[float, ...] | None
    """Per-channel normalisation mean (None: measured on the training images)."""
    std: tuple[float, ...] | None
    crop_pad: int | None
    """Zero padding of the standard random crop (None: image side // 8)."""
    flip: bool
    """Horizontal flips are label-preserving (not for digits)."""


CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # the reference's constants

REGISTRY: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(CIFAR_MEAN, CIFAR_STD, crop_pad=12, flip=True),
    "cifar100": DatasetInfo(CIFAR_MEAN, CIFAR_STD, crop_pad=4, flip=True),
    "svhn": DatasetInfo((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), crop_pad=4, flip=False),
    # 28x28: 2 px is the CIFAR-100 ratio (4/32) rounded down, so digits and garments stay in frame.
    "fashion_mnist": DatasetInfo((0.2860,), (0.3530,), crop_pad=2, flip=True),
    "mnist": DatasetInfo((0.1307,), (0.3081,), crop_pad=2, flip=False),
    "synthetic": DatasetInfo(None, None, crop_pad=None, flip=True),
}
DEFAULT_INFO = DatasetInfo(None, None, crop_pad=None, flip=True)


@dataclass
class Arrays:
    """A whole dataset in memory: uint8 images [N, C, H, W] and int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pad: int
    flip: bool
    source: str

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[2])


# --- local .npz files (the layout of ../shared/data) ------------------------------------------------


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    try:
        with np.load(path) as d:
            x, y = d["x"], d["y"]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not a dataset archive with arrays 'x' and 'y' ({e})") from None
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype != np.uint8 or x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise DataError(
            f"{path}: expected x uint8 NxHxWxC and y of length N, got x {x.dtype} {x.shape}, y {y.shape}"
        )
    return x, y.astype(np.int64)


def _from_npz(name: str, root: Path) -> tuple[np.ndarray, ...] | None:
    import numpy as np

    train_files = sorted(root.glob(f"{name}-train*.npz"))
    if not train_files:
        return None
    test_file = root / f"{name}-test.npz"
    if not test_file.is_file():
        raise DataError(f"data.dataset: {train_files[0]} exists but {test_file} is missing")
    parts = [_read_npz(p) for p in train_files]
    x_test, y_test = _read_npz(test_file)
    x_train = np.concatenate([p[0] for p in parts])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"data.dataset: train images {x_train.shape[1:]} and test images "
            f"{x_test.shape[1:]} of {name!r} in {root} differ in shape"
        )
    return x_train, np.concatenate([p[1] for p in parts]), x_test, y_test


# --- torchvision --------------------------------------------------------------------------------


def _tv_cifar(cls_name: str) -> Callable[[Path, bool], tuple[np.ndarray, ...]]:
    def load(root: Path, download: bool) -> tuple[np.ndarray, ...]:
        import numpy as np
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        tr, te = cls(root, train=True, download=download), cls(root, train=False, download=download)
        return tr.data, np.asarray(tr.targets), te.data, np.asarray(te.targets)

    return load


def _tv_mnist(cls_name: str) -> Callable[[Path, bool], tuple[np.ndarray, ...]]:
    def load(root: Path, download: bool) -> tuple[np.ndarray, ...]:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        tr, te = cls(root, train=True, download=download), cls(root, train=False, download=download)
        return tr.data.numpy()[..., None], tr.targets.numpy(), te.data.numpy()[..., None], te.targets.numpy()

    return load


def _tv_svhn(root: Path, download: bool) -> tuple[np.ndarray, ...]:
    import torchvision.datasets as tvd

    tr = tvd.SVHN(root, split="train", download=download)
    te = tvd.SVHN(root, split="test", download=download)
    return tr.data.transpose(0, 2, 3, 1), tr.labels, te.data.transpose(0, 2, 3, 1), te.labels


TORCHVISION: dict[str, Callable[[Path, bool], tuple[np.ndarray, ...]]] = {
    "cifar10": _tv_cifar("CIFAR10"),
    "cifar100": _tv_cifar("CIFAR100"),
    "svhn": _tv_svhn,
    "fashion_mnist": _tv_mnist("FashionMNIST"),
    "mnist": _tv_mnist("MNIST"),
}


# --- synthetic ----------------------------------------------------------------------------------


def synthetic_arrays(
    *, image_size: int, channels: int, num_classes: int, n_train: int, n_test: int
) -> tuple[np.ndarray, ...]:
    """Class prototypes (smooth random patterns) blended with another class and buried in noise.

    Each image mixes its class's prototype (weight 0.5-1) with a random other class's, plus
    smooth and white noise of the same scale, so classes overlap and a small ViT reaches a
    middling accuracy that moves with the seed.
    """
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(SYNTHETIC_SEED)
    low = max(2, image_size // 4)

    def smooth(n: int) -> torch.Tensor:
        noise = torch.randn(n, channels, low, low, generator=g)
        up = F.interpolate(noise, size=(image_size, image_size), mode="bilinear", align_corners=False)
        return up / up.std(dim=(1, 2, 3), keepdim=True)

    prototypes = smooth(num_classes)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = torch.randint(num_classes, (n,), generator=g)
        other = (y + torch.randint(1, num_classes, (n,), generator=g)) % num_classes
        w = (0.5 + 0.5 * torch.rand(n, generator=g)).view(n, 1, 1, 1)
        signal = w * prototypes[y] + (1 - w) * prototypes[other]
        x = signal + 0.9 * smooth(n) + 0.5 * torch.randn(n, channels, image_size, image_size, generator=g)
        pixels = (0.5 + 0.15 * x).clamp(0, 1).mul(255).round().to(torch.uint8)
        return pixels.permute(0, 2, 3, 1).numpy(), y.numpy()

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return x_train, y_train, x_test, y_test


# --- the entry point ----------------------------------------------------------------------------


def load_arrays(data_cfg: Any) -> Arrays:
    """The dataset a spec.DataConfig names, on the CPU: .npz in data.root first, then built-ins."""
    import numpy as np
    import torch

    check_available(data_cfg)
    name, root = data_cfg.dataset, Path(data_cfg.root)
    info = REGISTRY.get(name, DEFAULT_INFO)
    found = _from_npz(name, root) if root.is_dir() else None
    source = f"npz:{root}"
    if found is None and name == "synthetic":
        found = synthetic_arrays(
            image_size=data_cfg.image_size,
            channels=data_cfg.channels,
            num_classes=data_cfg.num_classes,
            n_train=data_cfg.synthetic_train,
            n_test=data_cfg.synthetic_test,
        )
        source = "synthetic"
    if found is None and name in TORCHVISION:
        found = _from_torchvision(name, root, data_cfg.download)
        source = f"torchvision:{root}"
    if found is None:
        raise DataError(
            f"data.dataset: unknown dataset {name!r}: no {name}-train*.npz in {root} and not "
            f"one of {', '.join(REGISTRY)}"
        )
    x_train, y_train, x_test, y_test = (torch.from_numpy(np.ascontiguousarray(a)) for a in found)
    x_train, x_test = x_train.permute(0, 3, 1, 2).contiguous(), x_test.permute(0, 3, 1, 2).contiguous()
    y_train, y_test = y_train.long(), y_test.long()
    if min(int(y_train.min()), int(y_test.min())) < 0:
        raise DataError(f"data.dataset: {name!r} has negative labels")
    num_classes = max(int(y_train.max()), int(y_test.max())) + 1
    mean, std = info.mean, info.std
    if mean is None or std is None or len(mean) != x_train.shape[1]:
        pixels = x_train.float().div_(255)
        mean = tuple(pixels.mean(dim=(0, 2, 3)).tolist())
        std = tuple(pixels.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist())
    pad = info.crop_pad if info.crop_pad is not None else max(1, x_train.shape[2] // 8)
    return Arrays(x_train, y_train, x_test, y_test, num_classes, mean, std, pad, info.flip, source)


TORCHVISION_FILES = {
    "cifar10": ("cifar-10-batches-py",),
    "cifar100": ("cifar-100-python",),
    "svhn": ("train_32x32.mat", "test_32x32.mat"),
    "fashion_mnist": ("FashionMNIST/raw",),
    "mnist": ("MNIST/raw",),
}
"""What torchvision keeps under data.root for each built-in (checked before torch is imported)."""


def check_available(data_cfg: Any) -> None:
    """DataError when the named dataset surely cannot load; touches only the file system (fast)."""
    name, root = data_cfg.dataset, Path(data_cfg.root)
    if root.is_dir() and any(root.glob(f"{name}-train*.npz")) or name == "synthetic":
        return
    if name not in TORCHVISION:
        raise DataError(
            f"data.dataset: unknown dataset {name!r}: no {name}-train*.npz in {root} and not "
            f"one of {', '.join(REGISTRY)}"
        )
    missing = [f for f in TORCHVISION_FILES[name] if not (root / f).exists()]
    if missing and not data_cfg.download:
        raise DataError(
            f"data.dataset: {name!r} not found in {root} (no {name}-train*.npz and "
            f"{name}-test.npz, no torchvision files {', '.join(missing)}); add them or set "
            f"data.download = true"
        )


def _from_torchvision(name: str, root: Path, download: bool) -> tuple[np.ndarray, ...]:
    try:
        return TORCHVISION[name](root, download)
    except RuntimeError as e:
        if download:
            raise DataError(f"data.dataset: could not download {name!r} into {root}: {e}") from None
        raise DataError(
            f"data.dataset: {name!r} not found in {root} (no {name}-train*.npz and "
            f"{name}-test.npz, no torchvision files); add them or set data.download = true"
        ) from None
    except OSError as e:
        raise DataError(f"data.dataset: could not load {name!r} from {root}: {e}") from None


@dataclass
class Splits:
    """Index tensors into Arrays for one seed: train and validation from the training set, test."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def split_indices(n_train: int, n_test: int, data_cfg: Any, gen: torch.Generator) -> Splits:
    """The optional subsets and the train/validation split, all drawn from the seed's split generator."""
    import torch

    perm = torch.randperm(n_train, generator=gen)
    if data_cfg.train_subset:
        perm = perm[: data_cfg.train_subset]
    n_val = max(1, round(len(perm) * data_cfg.val_fraction))
    if len(perm) - n_val < 2:
        raise DataError(
            f"data.train_subset: {len(perm)} training images leave none to train on after "
            f"the validation split"
        )
    test = torch.arange(n_test)
    if data_cfg.test_subset and data_cfg.test_subset < n_test:
        test = torch.randperm(n_test, generator=gen)[: data_cfg.test_subset]
    return Splits(train=perm[n_val:], val=perm[:n_val], test=test)
