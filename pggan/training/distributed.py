"""torchrun environment, process group and rank-0 helpers.

``torchrun --nproc_per_node=N pggan-train ...`` sets RANK, LOCAL_RANK and
WORLD_SIZE; without them we run as a single process. NCCL is used on GPUs,
gloo on the CPU (tests run two gloo processes on one machine).
"""

from __future__ import annotations

import datetime
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pggan import defaults
from pggan.devices import device_policy, resolve_device
from pggan.errors import UserError

#: How long a collective waits for a silent peer before the job gives up (torch's own default is 30 minutes for
#: gloo and 10 for NCCL: long on a cluster, where a lost node should free the allocation and requeue quickly).
DEFAULT_TIMEOUT_MINUTES = defaults.DIST_TIMEOUT_MINUTES

#: Words in the RuntimeErrors gloo and NCCL raise when a peer died, hung up or timed out.
_PEER_LOST_MARKERS = ("gloo", "nccl", "connection reset", "connection closed", "timed out", "broken pipe", "socket")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes, and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")  # noqa: RUF009 - immutable

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES) -> DistContext:
    """Join the torchrun process group when launched by torchrun; otherwise a single-process context.

    ``timeout_minutes`` bounds every collective: a rank whose peer was killed or whose node was lost
    stops after at most that long (usually at once: the dead peer's socket closes) instead of hanging.
    """
    if timeout_minutes <= 0:
        raise UserError(f"--dist-timeout must be positive, got {timeout_minutes}")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if torch_device.type == "cuda":
            torch.cuda.set_device(torch_device)
        backend = device_policy(torch_device).ddp_backend
        kwargs = {"device_id": torch_device} if torch_device.type == "cuda" else {}
        timeout = datetime.timedelta(minutes=timeout_minutes)
        dist.init_process_group(backend=backend, timeout=timeout, **kwargs)
    return DistContext(rank=rank, local_rank=local_rank, world_size=world_size, device=torch_device)


def peer_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says another process of the job died, hung up or stopped answering."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(marker in text for marker in _PEER_LOST_MARKERS)


def shutdown() -> None:
    """Leave the process group, if any, once nothing (DDP reducers) refers to it any more."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, job: DistContext) -> torch.Tensor:
    """Sum a small tensor over all ranks (identity in a single process)."""
    if job.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(job: DistContext) -> None:
    if job.distributed:
        dist.barrier()
