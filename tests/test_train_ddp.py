"""Several processes must train exactly like one process with the same global batch (gloo on the CPU, NCCL on GPUs).

On the CPU two gloo processes share the machine; with ``PGGAN_TEST_DEVICE=cuda`` each GPU (at most two) runs one
NCCL process, as ``torchrun`` does (tests/device.py).
"""

import socket
import warnings
from pathlib import Path

import torch
import torch.multiprocessing as mp

from pggan.training.distributed import DistContext, shutdown
from pggan.training.trainer import Trainer
from tests.device import ddp_world_size, init_test_group
from tests.helpers import plan, random_pyramid, single_job, tensor_source, tiny_options


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flat_params(trainer):
    s = trainer.gan
    return torch.cat(
        [p.detach().flatten().cpu() for n in (s.generator, s.discriminator, s.generator_ema) for p in n.parameters()]
    )


def _worker(rank: int, world_size: int, port: int, root: str, overrides: dict) -> None:
    device = init_test_group(rank, world_size, port)
    try:
        options = tiny_options(Path(root), **overrides)
        run_dir = Path(options.out) / options.run_name
        run_dir.mkdir(parents=True, exist_ok=True)
        job = DistContext(rank=rank, local_rank=rank, world_size=world_size, device=device)
        source = tensor_source(random_pyramid(), rank=rank, world_size=world_size)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer = Trainer(plan(options, source, job.world_size), job, run_dir, 3, log=lambda m: None)
            trainer.run()
        # 3×3 kernels over several channels: the weights whose NHWC and NCHW layouts differ (a 1×1 one is both).
        weights = [p for net in (trainer.gan.generator, trainer.gan.discriminator) for p in net.parameters()
                   if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] > 1]  # fmt: skip
        result = {
            "params": _flat_params(trainer),
            "warnings": [str(w.message) for w in caught],
            "channels_last": [p.is_contiguous(memory_format=torch.channels_last) for p in weights],
            "contiguous": [p.is_contiguous() for p in weights],
        }
        torch.save(result, Path(root) / f"params-rank{rank}.pt")
    finally:
        shutdown()  # drops DDP reducers (gc) before the group, as pggan-train does


def _run_ddp(root: Path, **overrides) -> list[dict]:
    world_size = ddp_world_size()
    mp.spawn(_worker, args=(world_size, free_port(), str(root), overrides), nprocs=world_size, join=True)
    return [torch.load(root / f"params-rank{rank}.pt") for rank in range(world_size)]


def _single_process(root: Path, **overrides) -> torch.Tensor:
    options = tiny_options(root, **overrides)
    run_dir = Path(options.out) / options.run_name
    run_dir.mkdir(parents=True)
    single = Trainer(plan(options, tensor_source(random_pyramid())), single_job(), run_dir, 3, log=lambda m: None)
    single.run()
    return _flat_params(single)


def test_ddp_processes_equal_a_single_process(tmp_path):
    results = _run_ddp(tmp_path, total_kimg=0.056)
    for other in results[1:]:
        assert torch.equal(results[0]["params"], other["params"]), "ranks ended the run with different parameters"
    expected = _single_process(tmp_path / "single", total_kimg=0.056)
    # 7 steps across two resolution changes (4 → 8 → 16, mid-fade at the end).
    torch.testing.assert_close(results[0]["params"], expected, rtol=1e-4, atol=1e-5)
    options = tiny_options(tmp_path / "single", total_kimg=0.056)
    run_dir = Path(options.out) / options.run_name
    untrained = Trainer(plan(options, tensor_source(random_pyramid())), single_job(), run_dir, 3)
    assert not torch.equal(expected, _flat_params(untrained))
    assert (tmp_path / "runs" / "run" / "latest.pt").is_file()  # rank 0 wrote the files


def test_ddp_step_with_channels_last_networks_and_batches(tmp_path):
    """The GPU's memory layout under DDP: NHWC weights stay NHWC through DDP's gradient buckets, no layout
    warning, ranks in sync, and the run equals a one-process channels-last run (4 → 8, through a fade)."""
    results = _run_ddp(tmp_path, total_kimg=0.032, channels_last=True)
    for result in results:
        assert result["channels_last"] and all(result["channels_last"])
        assert not any(result["contiguous"]), "the 4-D weights are no longer NHWC"
        layout_warnings = [w for w in result["warnings"] if "stride" in w.lower() or "layout" in w.lower()]
        assert not layout_warnings, layout_warnings
        assert torch.equal(result["params"], results[0]["params"])
    expected = _single_process(tmp_path / "single", total_kimg=0.032, channels_last=True)
    torch.testing.assert_close(results[0]["params"], expected, rtol=1e-4, atol=1e-5)
