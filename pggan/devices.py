"""Every device decision in one place: which device a command runs on, and which accelerator settings apply where.

Commands turn ``--device`` into a torch device here; training asks here for its process-global torch settings
and its autocast context, so the CPU tests run the same branches a GPU will.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import torch

from pggan.defaults import TF32
from pggan.errors import UserError


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when present, else the CPU; plain ``cuda`` → this process's GPU (one per local rank).

    The one place every command turns ``--device`` into a torch device; asking for CUDA without a GPU is a
    UserError rather than a failure deep inside torch.
    """
    name = device.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: no CUDA device is available here (use --device cpu)")
        if name == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device(name)
    raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")


def configure_torch(device: torch.device, tf32: bool = TF32, compile: bool = False) -> None:
    """Every process-global torch setting training needs, in one place; call it once before building a state.

    On CUDA: cuDNN autotuning (shapes are fixed within a phase) and the TF32 choice — PyTorch runs cuDNN
    convolutions in TF32 on Ampere and later by default (10-bit mantissa); the official runs are float32,
    so TF32 is off for convolutions and matmuls unless ``tf32`` is set. With ``compile``: enough dynamo
    cache entries for every (resolution, fading) phase of a 4 → 1024 run. Nothing else on the CPU.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
    if compile:
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)


def autocast_context(device: torch.device, amp: bool) -> Any:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
