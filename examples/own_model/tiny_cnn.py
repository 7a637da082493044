"""A small conv net for 8x8 images: the model half of rankbias's "your own model" example.

rankbias calls ``build(input_shape, num_classes, options)`` with the shape of one input from the
data set (here (1, 8, 8)), the number of classes and the sweep's ``model_options`` table, and
trains the ``torch.nn.Module`` it returns. By default it measures every Linear and Conv weight but
the final classifier: here ``conv1``, ``conv2`` and ``fc`` (not ``head``).
"""

from __future__ import annotations

import torch
from torch import nn


class TinyCNN(nn.Module):
    """conv1 -> ReLU -> conv2 -> ReLU -> flatten -> fc -> ReLU -> head."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, channels: int, hidden: int):
        super().__init__()
        c, h, w = input_shape
        self.conv1 = nn.Conv2d(c, channels, 3, padding=1)  # (N, channels, H, W)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.fc = nn.Linear(channels * h * w, hidden)  # (N, hidden)
        self.head = nn.Linear(hidden, num_classes)  # (N, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H, W)
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(torch.relu(self.fc(x.flatten(1))))


def build(input_shape: tuple[int, ...], num_classes: int, options: dict) -> nn.Module:
    """The builder named in experiments.toml as ``model = "tiny_cnn:build"``."""
    if len(input_shape) != 3:
        raise ValueError(f"TinyCNN wants (C, H, W) inputs, got {input_shape}")
    hidden = options.get("hidden", 64)
    channels = options.get("channels", 8)
    return TinyCNN(input_shape, num_classes, channels, hidden)
