"""Tests for rankbias_tui.engine.data: offline data sets, torchvision's on-disk formats, errors.

No test touches the network: the torchvision tests write tiny files in torchvision's exact on-disk
layout into a temporary directory, and downloads are monkeypatched to fail.
"""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rankbias_tui.catalog import DATASETS
from rankbias_tui.engine import data as D
from rankbias_tui.engine.data import DataSet, DatasetUnavailable, default_data_dir, load_dataset

# --- digits ---------------------------------------------------------------------------------------


def test_digits_shapes_split_and_normalisation() -> None:
    ds = load_dataset("digits")
    assert isinstance(ds, DataSet) and ds.name == "digits" and ds.n_classes == 10
    assert ds.in_shape == (1, 8, 8)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.x_train.shape[1:] == ds.x_test.shape[1:] == (1, 8, 8)
    assert len(ds.x_train) == len(ds.y_train) and len(ds.x_test) == len(ds.y_test)
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert len(ds.y_test) == pytest.approx(0.2 * 1797, abs=1)
    assert set(ds.y_train.tolist()) == set(ds.y_test.tolist()) == set(range(10))  # stratified
    assert abs(ds.x_train.mean().item()) < 1e-5
    assert ds.x_train.std().item() == pytest.approx(1.0, abs=1e-4)


def test_digits_deterministic_across_calls() -> None:
    a, b = load_dataset("digits"), load_dataset("digits")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name))


def test_train_size_subsets_deterministically() -> None:
    full = load_dataset("digits")
    a = load_dataset("digits", train_size=100, subset_seed=3)
    b = load_dataset("digits", train_size=100, subset_seed=3)
    c = load_dataset("digits", train_size=100, subset_seed=4)
    assert a.x_train.shape == (100, 1, 8, 8) and a.y_train.shape == (100,)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)
    assert torch.equal(a.x_test, full.x_test)  # the test split is never subset
    # every kept example is a real training example with its own label
    rows = {tuple(x.flatten().tolist()): int(y) for x, y in zip(full.x_train, full.y_train, strict=True)}
    assert all(rows[tuple(x.flatten().tolist())] == int(y) for x, y in zip(a.x_train, a.y_train, strict=True))


def test_train_size_larger_than_data_keeps_all() -> None:
    assert len(load_dataset("digits", train_size=10**6).y_train) == len(load_dataset("digits").y_train)


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="imagenet"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="train_size"):
        load_dataset("digits", train_size=0)


# --- synthetic ------------------------------------------------------------------------------------


def test_synthetic_shapes_determinism_and_labels() -> None:
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert a.in_shape == (3, 32, 32) and a.n_classes == 10
    assert a.x_train.shape == (4096, 3, 32, 32) and a.x_test.shape == (1024, 3, 32, 32)
    assert a.y_train.shape == (4096,) and a.y_train.dtype == torch.int64
    assert a.x_train.dtype == torch.float32
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.y_test, b.y_test)
    counts = torch.bincount(a.y_train, minlength=10)
    assert (counts > 0).sum() >= 8 and counts.max() < 0.5 * len(a.y_train)


# --- torchvision on-disk formats ------------------------------------------------------------------


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the big-endian idx format that torchvision's MNIST reader parses."""
    magic = struct.pack(">HBB", 0, 0x08, array.ndim)  # zero, type 0x08 = uint8, number of dims
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(magic + dims + array.astype(np.uint8).tobytes())


def _write_tiny_mnist(root: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    raw = root / "MNIST" / "raw"  # torchvision 0.29.1: MNIST.raw_folder = root/MNIST/raw
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 20, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 10, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        _write_idx(raw / name, arr)
    return arrays


def test_mnist_read_from_raw_idx_files(tmp_path: Path) -> None:
    # MNIST's existence check only asks that the four uncompressed files exist (no MD5), so no
    # monkeypatching is needed here.
    arrays = _write_tiny_mnist(tmp_path, np.random.default_rng(0))
    ds = load_dataset("mnist", data_dir=tmp_path)
    assert ds.x_train.shape == (20, 1, 32, 32) and ds.x_test.shape == (10, 1, 32, 32)
    assert ds.in_shape == (1, 32, 32) and ds.n_classes == 10
    assert (ds.in_shape, ds.n_classes) == (DATASETS["mnist"].in_shape, DATASETS["mnist"].classes)
    assert ds.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    expected = (torch.from_numpy(arrays["train-images-idx3-ubyte"]).float() / 255 - 0.1307) / 0.3081
    assert torch.allclose(ds.x_train[:, 0, 2:30, 2:30], expected, atol=1e-6)
    pad_value = -0.1307 / 0.3081  # zero pixels padded before normalisation
    border = torch.cat([ds.x_train[..., :2, :].flatten(), ds.x_train[..., 30:, :].flatten()])
    assert torch.allclose(border, torch.full_like(border, pad_value))
    assert torch.allclose(ds.x_train[..., :, :2], torch.full_like(ds.x_train[..., :, :2], pad_value))


def _write_tiny_cifar10(root: Path, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images, labels = [], []
    for i in range(1, 6):  # 5 batches of 4 images, rows are (3 * 32 * 32) channel-major
        batch = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        batch_labels = rng.integers(0, 10, 4).tolist()
        images.append(batch)
        labels += batch_labels
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps({"data": batch, "labels": batch_labels}))
    test = {"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), "labels": list(range(10))}
    (folder / "test_batch").write_bytes(pickle.dumps(test))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    return np.concatenate(images), labels


def _existence_only_integrity(fpath: str | Path, md5: str | None = None) -> bool:
    return Path(fpath).is_file()


def test_cifar10_read_from_python_pickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # torchvision's CIFAR10 checks each file's MD5 through the name `check_integrity` imported into
    # torchvision.datasets.cifar (in _check_integrity and _load_meta). Our hand-made files cannot
    # match the real sums, so only that check is replaced by an existence check; unpickling,
    # stacking and the HWC layout are torchvision's real code.
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", _existence_only_integrity)
    images, labels = _write_tiny_cifar10(tmp_path, np.random.default_rng(1))
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32)
    assert ds.in_shape == (3, 32, 32) and ds.n_classes == 10
    assert (ds.in_shape, ds.n_classes) == (DATASETS["cifar10"].in_shape, DATASETS["cifar10"].classes)
    assert ds.y_train.tolist() == labels and ds.y_test.tolist() == list(range(10))
    mean = torch.tensor((0.5071, 0.4865, 0.4409)).view(1, 3, 1, 1)
    std = torch.tensor((0.2673, 0.2564, 0.2762)).view(1, 3, 1, 1)
    expected = (torch.from_numpy(images).float().view(20, 3, 32, 32) / 255 - mean) / std
    assert torch.allclose(ds.x_train, expected, atol=1e-6)


def test_svhn_read_from_mat_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As for CIFAR: torchvision.datasets.svhn checks the .mat files' MD5 sums through its imported
    # `check_integrity`; only that check is replaced, scipy's loadmat and the relabelling are real.
    import scipy.io
    import torchvision.datasets.svhn as tv_svhn

    monkeypatch.setattr(tv_svhn, "check_integrity", _existence_only_integrity)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (32, 32, 3, 6), dtype=np.uint8)  # the .mat layout: (H, W, C, N)
    digits = np.array([[10], [1], [2], [3], [10], [9]], dtype=np.uint8)  # SVHN stores digit 0 as 10
    for split in ("train", "test"):
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": images, "y": digits})
    ds = load_dataset("svhn", data_dir=tmp_path)
    assert ds.x_train.shape == (6, 3, 32, 32) and ds.in_shape == (3, 32, 32)
    assert (ds.in_shape, ds.n_classes) == (DATASETS["svhn"].in_shape, DATASETS["svhn"].classes)
    assert ds.y_train.tolist() == [0, 1, 2, 3, 0, 9]
    expected = (torch.from_numpy(images).permute(3, 2, 0, 1).float() / 255 - 0.5) / 0.5
    assert torch.allclose(ds.x_test, expected, atol=1e-6)


def test_cifar10_missing_and_download_failing_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as tv_cifar

    def no_network(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated download failure")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_network)
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    message = str(info.value)
    assert "cifar10" in message and str(tmp_path) in message and "--data-dir" in message
    assert "RANKBIAS_DATA_DIR" in message and "simulated download failure" in message
    assert "cifar-10-batches-py" in message and "\n" not in message


# --- defaults and import cost ---------------------------------------------------------------------


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RANKBIAS_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("RANKBIAS_DATA_DIR")
    assert default_data_dir() == Path.home() / ".cache" / "rankbias" / "data"


def test_import_does_not_load_torchvision_or_sklearn() -> None:
    code = (
        "import sys, rankbias_tui.engine.data; print('torchvision' in sys.modules, 'sklearn' in sys.modules)"
    )
    repo_root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo_root
    )
    assert out.stdout.split() == ["False", "False"]


def test_the_torchvision_table_holds_exactly_the_catalog_s_torchvision_rows() -> None:
    torchvision = {e.name for e in DATASETS.values() if e.loader.endswith(":load_torchvision")}
    assert set(D._TORCHVISION) == torchvision
