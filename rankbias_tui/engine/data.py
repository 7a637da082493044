"""Data sets as device-resident tensors.

This module owns turning a data-set name into a ``DataSet``: normalised float32 images
(N, C, H, W) and int64 labels for a train and a test split, already on the training device, so
the trainer can draw batches by index without a DataLoader. It holds the loaders the catalog's
rows name (``rankbias_tui.catalog.DATASETS``: which data sets exist, their shapes, classes and
sizes), knows where files live on disk (``default_data_dir``), how torchvision lays them out, and
how to explain a missing data set (``DatasetUnavailable``). It does not shuffle, batch or augment;
the trainer does that.

torchvision is imported only inside the functions that read its data sets, so importing this
module stays cheap. Nothing is cached on disk beyond torchvision's own files.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import references
from ..catalog import DATASETS, resolve

# What torchvision raises for missing ("Dataset not found", RuntimeError) or damaged files.
_READ_ERRORS = (RuntimeError, OSError, ValueError, TypeError, EOFError, KeyError, pickle.UnpicklingError)

# Seeds of the offline data sets: fixed, and independent of a run's seed, so every run of a sweep
# sees the same data.
_DIGITS_SPLIT_SEED = 0
_SYNTHETIC_SEED = 20220612


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value, compare by identity
class DataSet:
    """A train and a test split, normalised, channels first, on one device."""

    name: str
    x_train: Tensor  # (N, C, H, W) float32, normalised (a user's data set: (N, *input_shape))
    y_train: Tensor  # (N,) int64
    x_test: Tensor  # (M, C, H, W) float32, normalised
    y_test: Tensor  # (M,) int64
    n_classes: int
    digest: str = ""  # SHA-256 of the whole data set as loaded (``content_digest``); "" not computed

    @property
    def in_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one input (a user's data set: whatever shape its inputs have)."""
        return tuple(int(s) for s in self.x_train.shape[1:])


class DatasetUnavailable(Exception):
    """A data set's files are not on disk and could not be downloaded."""


@dataclass(frozen=True)
class _TorchvisionSpec:
    """How one torchvision data set is opened, normalised and laid out on disk (its classes are in
    its catalog row)."""

    cls_name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    files: str  # where torchvision expects the files, relative to the data directory
    pad: int = 0  # zero padding on each side, in pixels, before normalisation


_CIFAR_MEAN, _CIFAR_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
_MNIST_FILES = (
    "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
    "t10k-labels-idx1-ubyte (uncompressed; the same names with .gz in that folder are also accepted "
    "and extracted)"
)
_TORCHVISION: dict[str, _TorchvisionSpec] = {
    "cifar10": _TorchvisionSpec(
        "CIFAR10",
        _CIFAR_MEAN,
        _CIFAR_STD,
        "DIR/cifar-10-batches-py/ holding data_batch_1 ... data_batch_5, test_batch and batches.meta "
        "(MD5-checked), or the archive DIR/cifar-10-python.tar.gz, which is then extracted",
    ),
    "cifar100": _TorchvisionSpec(
        "CIFAR100",
        _CIFAR_MEAN,
        _CIFAR_STD,
        "DIR/cifar-100-python/ holding train, test and meta (MD5-checked), "
        "or the archive DIR/cifar-100-python.tar.gz, which is then extracted",
    ),
    "mnist": _TorchvisionSpec("MNIST", (0.1307,), (0.3081,), f"DIR/MNIST/raw/ holding {_MNIST_FILES}", 2),
    "fashion-mnist": _TorchvisionSpec(
        "FashionMNIST", (0.1307,), (0.3081,), f"DIR/FashionMNIST/raw/ holding {_MNIST_FILES}", 2
    ),
    "svhn": _TorchvisionSpec(
        "SVHN",
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
        "DIR/train_32x32.mat and DIR/test_32x32.mat directly in the directory (MD5-checked; needs scipy)",
    ),
}


def default_data_dir() -> Path:
    """``$RANKBIAS_DATA_DIR`` if set, else ``~/.cache/rankbias/data``."""
    env = os.environ.get("RANKBIAS_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rankbias" / "data"


def load_dataset(
    name: str,
    data_dir: Path | None = None,
    device: str | torch.device = "cpu",
    train_size: int | None = None,
    subset_seed: int = 0,
    options: dict[str, Any] | None = None,
    code_dir: str | None = None,
) -> DataSet:
    """Load data set ``name``, optionally keep a random ``train_size`` subset, move it to ``device``.

    ``name`` may be a user's ``"module:callable"`` loader (``load_user_data``: ``options`` and
    ``code_dir`` are for it). ``train_size`` larger than the training set keeps all of it. Raises
    ``DatasetUnavailable`` when a torchvision data set is neither on disk nor downloadable,
    ``ValueError`` for an unknown name or a ``train_size`` below 1.
    """
    if name not in DATASETS and not references.is_reference(name):
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    if train_size is not None and train_size < 1:
        raise ValueError(f"train_size must be at least 1, got {train_size}")
    if references.is_reference(name):
        ds = load_user_data(name, options or {}, code_dir)
    else:
        loader = resolve(DATASETS[name].loader)
        ds = loader(name, Path(data_dir) if data_dir is not None else default_data_dir())
    ds = replace(ds, digest=content_digest(ds))  # of the whole set: a run's subset follows its seed
    if train_size is not None and train_size < len(ds.y_train):
        idx = subset_rows(len(ds.y_train), train_size, subset_seed)
        ds = replace(ds, x_train=ds.x_train[idx], y_train=ds.y_train[idx])
    return _to_device(ds, torch.device(device))


def content_digest(ds: DataSet) -> str:
    """SHA-256 of both splits' inputs and labels as loaded (normalised, on the CPU): what a report
    shows so that two sweeps can tell whether they trained on the same numbers."""
    h = hashlib.sha256()
    for t in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def subset_rows(n: int, train_size: int | None, seed: int) -> torch.Tensor:
    """The training examples a run keeps, as sorted indices into the ``n`` of its data set:
    ``train_size`` of them drawn with ``seed`` (a fused pack picks each member's rows with it too);
    all of them when ``train_size`` is None or not smaller. The test split is never subset."""
    if train_size is None or train_size >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[:train_size].sort().values


# --- torchvision data sets ------------------------------------------------------------------------


def load_torchvision(name: str, root: Path) -> DataSet:
    """Read both splits' raw arrays of torchvision's ``name`` from ``root`` and normalise them per
    PAPER.md."""
    spec = _TORCHVISION[name]
    x_train, y_train = _raw_arrays(name, spec, root, train=True)
    x_test, y_test = _raw_arrays(name, spec, root, train=False)
    return DataSet(
        name=name,
        x_train=_normalise(_pad(x_train, spec.pad), spec.mean, spec.std),
        y_train=y_train,
        x_test=_normalise(_pad(x_test, spec.pad), spec.mean, spec.std),
        y_test=y_test,
        n_classes=DATASETS[name].classes,
    )


def _raw_arrays(name: str, spec: _TorchvisionSpec, root: Path, train: bool) -> tuple[Tensor, Tensor]:
    """One split as (uint8 images (N, C, H, W), int64 labels (N,)), read whole, not item by item."""
    ds = _open_torchvision(name, spec, root, train)
    data = torch.as_tensor(ds.data)
    if spec.cls_name.startswith("CIFAR"):
        data = data.permute(0, 3, 1, 2)  # torchvision keeps CIFAR as (N, H, W, C)
    elif data.ndim == 3:
        data = data.unsqueeze(1)  # MNIST-like (N, H, W) -> (N, 1, H, W); SVHN is already (N, C, H, W)
    labels = ds.labels if spec.cls_name == "SVHN" else ds.targets
    return data.contiguous(), torch.as_tensor(labels, dtype=torch.int64)


def _open_torchvision(name: str, spec: _TorchvisionSpec, root: Path, train: bool) -> Any:
    """The torchvision data set object: from disk, else downloaded, else ``DatasetUnavailable``."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, spec.cls_name)
    split = "train" if train else "test"
    kwargs: dict[str, Any] = {"split": split} if spec.cls_name == "SVHN" else {"train": train}
    try:
        return cls(str(root), download=False, **kwargs)
    except _READ_ERRORS as err:  # missing or corrupt files: try a download next
        read_err = err
    try:
        return cls(str(root), download=True, **kwargs)
    except Exception as err:
        raise DatasetUnavailable(_unavailable_message(name, spec, root, read_err, err)) from err


def _unavailable_message(
    name: str, spec: _TorchvisionSpec, root: Path, read_err: BaseException, download_err: BaseException
) -> str:
    files = spec.files.replace("DIR", str(root))
    return (
        f"Data set {name!r} is not available in {root}: reading it failed ({_one_line(read_err)}) "
        f"and downloading it failed ({_one_line(download_err)}). To supply it by hand, copy the files "
        f"torchvision expects there: {files}. To use another directory, pass --data-dir or set "
        f"RANKBIAS_DATA_DIR. The {_OFFLINE} data sets need no files and no network."
    )


_OFFLINE = " and ".join(repr(e.name) for e in DATASETS.values() if e.offline)


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


def _pad(x: Tensor, pad: int) -> Tensor:
    """Zero-pad uint8 images by ``pad`` pixels on each side (MNIST 28x28 -> 32x32)."""
    return torch.nn.functional.pad(x, (pad, pad, pad, pad)) if pad else x


def _normalise(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1] -> (x - mean) / std per channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x.to(torch.float32) / 255.0 - m) / s


# --- offline data sets ----------------------------------------------------------------------------


def load_digits(name: str = "digits", root: Path | None = None) -> DataSet:
    """scikit-learn's 8x8 digits: fixed stratified 80/20 split, normalised by train mean and std
    (no files: ``root`` is not read)."""
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    bunch = sklearn.datasets.load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8) in [0, 1]
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(
        list(range(len(y))), test_size=0.2, stratify=bunch.target, random_state=_DIGITS_SPLIT_SEED
    )
    x_train, x_test = x[idx_train], x[idx_test]
    mean, std = x_train.mean(), x_train.std()  # scalars over the train split only
    return DataSet(
        name="digits",
        x_train=(x_train - mean) / std,
        y_train=y[idx_train],
        x_test=(x_test - mean) / std,
        y_test=y[idx_test],
        n_classes=10,
    )


def make_synthetic(
    name: str = "synthetic",
    root: Path | None = None,
    n_train: int = 4096,
    n_test: int = 1024,
    hidden: int = 256,
) -> DataSet:
    """CIFAR-shaped Gaussian inputs labelled by a fixed random two-layer ReLU teacher (10 classes;
    no files: ``root`` is not read)."""
    gen = torch.Generator().manual_seed(_SYNTHETIC_SEED)
    n, d, k = n_train + n_test, 3 * 32 * 32, 10
    x = torch.randn(n, 3, 32, 32, generator=gen)  # already zero mean, unit variance
    w1 = torch.randn(d, hidden, generator=gen, dtype=torch.float64) / d**0.5
    w2 = torch.randn(hidden, k, generator=gen, dtype=torch.float64) / hidden**0.5
    h = torch.relu(x.reshape(n, d).to(torch.float64) @ w1)  # (n, hidden); float64 so ties are stable
    # Subtracting each hidden unit's expected ReLU output, E relu(z) = ||w1_j|| / sqrt(2 pi) for
    # z ~ N(0, ||w1_j||^2), removes a shared positive offset that would otherwise favour a few classes.
    offset = w1.norm(dim=0) / (2 * torch.pi) ** 0.5  # (hidden,)
    logits = (h - offset) @ w2  # (n, k)
    y = logits.argmax(1)
    return DataSet(
        name="synthetic",
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        n_classes=k,
    )


# --- a user's data set ---------------------------------------------------------------------------


def load_user_data(ref: str, options: dict[str, Any], code_dir: str | None = None) -> DataSet:
    """Call a user's ``loader(options)`` and check what it returns: ``(x_train, y_train, x_test,
    y_test)`` tensors (or arrays), inputs of one shape, integer labels from 0; the classes are
    ``max label + 1``. Anything else is a ``references.UserCodeError`` saying what is wrong."""
    loader = references.call("importing data set", ref, references.load, ref, code_dir)
    out = references.call("data set loader", ref, loader, dict(options))
    if not isinstance(out, (tuple, list)) or len(out) != 4:
        raise references.UserCodeError(
            f"data set loader {ref!r} returned {type(out).__name__}, not (x_train, y_train, x_test, y_test)"
        )
    try:
        x_train, y_train, x_test, y_test = (torch.as_tensor(t) for t in out)
    except (TypeError, ValueError, RuntimeError) as err:
        raise references.UserCodeError(
            f"data set loader {ref!r} returned something not a tensor: {err}"
        ) from err
    problems = _split_problems("train", x_train, y_train) + _split_problems("test", x_test, y_test)
    if x_train.shape[1:] != x_test.shape[1:]:
        problems.append(
            f"x_train inputs are {tuple(x_train.shape[1:])} but x_test inputs {tuple(x_test.shape[1:])}"
        )
    if problems:
        raise references.UserCodeError(
            f"data set loader {ref!r} returned unusable tensors: " + "; ".join(problems)
        )
    classes = int(max(y_train.max(), y_test.max())) + 1
    return DataSet(ref, x_train.float(), y_train.long(), x_test.float(), y_test.long(), n_classes=classes)


def _split_problems(split: str, x: Tensor, y: Tensor) -> list[str]:
    """What is wrong with one split: shapes that do not pair, labels that are not class indices."""
    out, n = [], x.shape[0] if x.ndim else 0
    if x.ndim < 2 or n == 0:
        out.append(f"x_{split} has shape {tuple(x.shape)}: want (N, *input_shape) with N >= 1")
    if y.ndim != 1 or y.shape[0] != n:
        out.append(f"y_{split} has shape {tuple(y.shape)} for x_{split} of {tuple(x.shape)}: want ({n},)")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        out.append(f"y_{split} holds {y.dtype}: want integer class labels")
    elif y.numel() and int(y.min()) < 0:
        out.append(f"y_{split} has a negative label ({int(y.min())})")
    return out


# --- subsetting and placement ---------------------------------------------------------------------


def _to_device(ds: DataSet, device: torch.device) -> DataSet:
    return DataSet(
        name=ds.name,
        x_train=ds.x_train.to(device),
        y_train=ds.y_train.to(device),
        x_test=ds.x_test.to(device),
        y_test=ds.y_test.to(device),
        n_classes=ds.n_classes,
        digest=ds.digest,
    )
