"""Device discovery (torch lives in engine/, so this is where CUDA is asked about)."""

from __future__ import annotations


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
