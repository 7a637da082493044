"""scikit-learn's 8x8 digits as four tensors: the data half of rankbias's "your own model" example.

rankbias calls ``load(options)`` with the sweep's ``dataset_options`` table and trains on what it
returns: ``(x_train, y_train, x_test, y_test)``, inputs as float tensors of one shape (here
(N, 1, 8, 8)) and integer class labels from 0. The input shape and the number of classes come from
these tensors; ``train_size``, seeds and batch order apply as for a built-in data set.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits


def load(options: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The digits, split by a fixed permutation (``options``: ``test_fraction``, ``split_seed``)
    and normalised by the training split's mean and standard deviation."""
    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)  # (1797,)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(options.get("split_seed", 0)))
    n_test = int(len(y) * options.get("test_fraction", 0.2))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(), x[train].std()
    return (x[train] - mean) / std, y[train], (x[test] - mean) / std, y[test]
