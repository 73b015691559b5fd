"""Every device decision in one place: which device a command runs on, and which accelerator settings apply there.

Commands turn ``--device`` into a torch device here (:func:`resolve_device`). Training, the benchmarks, the GPU
check and the tests ask :func:`device_policy` which of bf16 autocast, channels-last memory, TF32, cuDNN
autotuning, ``torch.compile``, pinned host memory and the DDP backend apply on a device, and use the answer's
:meth:`DevicePolicy.autocast`, :attr:`DevicePolicy.memory_format` and :meth:`DevicePolicy.configure`. Autocast,
channels-last and compile are the same code on the CPU and on CUDA (the CPU tests run the branches a GPU runs);
only what cannot exist on a CPU — TF32, cuDNN, pinned memory, NCCL — depends on the device type.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

import torch

from pggan.defaults import TF32
from pggan.errors import UserError

#: The reduced precision of ``--amp``: bf16 has float32's exponent range, so no loss scaling is needed.
AMP_DTYPE = torch.bfloat16


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


@dataclass(frozen=True)
class DevicePolicy:
    """Which accelerator settings apply on ``device``: the one answer every caller reads.

    ``amp``, ``channels_last`` and ``compile`` are honoured on any device (off by default on the CPU, where
    they rarely pay); ``tf32``, ``cudnn_benchmark`` and ``pin_memory`` only exist on CUDA and are False
    elsewhere; ``ddp_backend`` is NCCL for GPUs and gloo for CPUs.
    """

    device: torch.device
    amp: bool = False
    channels_last: bool = False
    tf32: bool = False
    compile: bool = False
    cudnn_benchmark: bool = False
    pin_memory: bool = False
    ddp_backend: str = "gloo"

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype of the step's forwards (None: float32 throughout)."""
        return AMP_DTYPE if self.amp else None

    @property
    def memory_format(self) -> torch.memory_format:
        """Of the networks' 4-D weights and of every image batch fed to them."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> Any:
        """bf16 autocast on this device type when ``amp`` (``"cuda"`` on a GPU, ``"cpu"`` on the CPU), else nothing.

        The gradient penalty's norm stays float32 either way (``pggan.model.losses.gradient_penalty``).
        """
        if self.amp:
            return torch.autocast(self.device.type, dtype=AMP_DTYPE)
        return contextlib.nullcontext()

    def configure(self) -> None:
        """Set the process-global torch flags this policy implies; call once before building a training state.

        On CUDA: cuDNN autotuning (shapes are fixed within a phase) and the TF32 choice — PyTorch would run
        cuDNN convolutions in TF32 on Ampere and later (10-bit mantissa); the official runs are float32, so
        TF32 is off for convolutions and matmuls unless asked for. With ``compile``: enough dynamo cache
        entries for every (resolution, fading) phase of a 4 → 1024 run.
        """
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
            torch.backends.cudnn.allow_tf32 = self.tf32
            torch.backends.cuda.matmul.allow_tf32 = self.tf32
        if self.compile:
            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)

    def describe(self) -> str:
        """One line for logs and reports, e.g. ``cuda:0: bf16 autocast, channels-last, TF32 off, DDP nccl``."""
        parts = [f"{AMP_DTYPE} autocast".replace("torch.", "") if self.amp else "float32"]
        parts.append("channels-last" if self.channels_last else "contiguous")
        if self.device.type == "cuda":
            parts.append(f"TF32 {'on' if self.tf32 else 'off'}")
            parts.append("cuDNN benchmark" if self.cudnn_benchmark else "cuDNN default")
            parts.append("pinned memory" if self.pin_memory else "pageable memory")
        if self.compile:
            parts.append("torch.compile")
        parts.append(f"DDP {self.ddp_backend}")
        return f"{self.device}: {', '.join(parts)}"


def device_policy(
    device: torch.device | str,
    *,
    amp: bool = False,
    channels_last: bool | None = None,
    tf32: bool = TF32,
    compile: bool = False,
) -> DevicePolicy:
    """The settings that apply on ``device`` for the options asked (``channels_last`` None: on for CUDA only).

    CUDA: channels-last by default (cuDNN's faster NHWC convolutions), cuDNN autotuning, pinned host batches,
    NCCL, TF32 as asked. Other devices: channels-last only when asked, no TF32/cuDNN/pinning, gloo. ``amp`` and
    ``compile`` mean the same everywhere.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    return DevicePolicy(
        device=device,
        amp=bool(amp),
        channels_last=cuda if channels_last is None else bool(channels_last),
        tf32=bool(tf32) and cuda,
        compile=bool(compile),
        cudnn_benchmark=cuda,
        pin_memory=cuda,
        ddp_backend="nccl" if cuda else "gloo",
    )


def configure_torch(device: torch.device, tf32: bool = TF32, compile: bool = False) -> None:
    """Every process-global torch setting training needs: :meth:`DevicePolicy.configure` of ``device``'s policy."""
    device_policy(device, tf32=tf32, compile=compile).configure()


def autocast_context(device: torch.device, amp: bool) -> Any:
    """bf16 autocast on ``device`` when ``amp`` (the policy's :meth:`DevicePolicy.autocast`)."""
    return device_policy(device, amp=amp).autocast()
