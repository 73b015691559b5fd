"""Two gloo processes on the CPU must train exactly like one process with the same global batch."""

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pggan.training.distributed import DistContext, shutdown
from pggan.training.trainer import Trainer
from tests.helpers import plan, random_pyramid, tensor_source, tiny_options


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flat_params(trainer):
    s = trainer.gan
    return torch.cat(
        [p.detach().flatten() for n in (s.generator, s.discriminator, s.generator_ema) for p in n.parameters()]
    )


def _worker(rank: int, world_size: int, port: int, root: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        options = tiny_options(Path(root), total_kimg=0.056)
        run_dir = Path(options.out) / options.run_name
        run_dir.mkdir(parents=True, exist_ok=True)
        job = DistContext(rank=rank, local_rank=rank, world_size=world_size)
        source = tensor_source(random_pyramid(), rank=rank, world_size=world_size)
        trainer = Trainer(plan(options, source, job.world_size), job, run_dir, 3, log=lambda m: None)
        trainer.run()
        torch.save(_flat_params(trainer), Path(root) / f"params-rank{rank}.pt")
    finally:
        shutdown()  # drops DDP reducers (gc) before the group, as pggan-train does


def test_two_process_gloo_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "params-rank0.pt")
    rank1 = torch.load(tmp_path / "params-rank1.pt")
    assert torch.equal(rank0, rank1), "ranks ended the run with different parameters"

    options = tiny_options(tmp_path / "single", total_kimg=0.056)
    run_dir = Path(options.out) / options.run_name
    run_dir.mkdir(parents=True)
    single = Trainer(plan(options, tensor_source(random_pyramid())), DistContext(), run_dir, 3, log=lambda m: None)
    single.run()
    expected = _flat_params(single)
    # 7 steps across two resolution changes (4 → 8 → 16, mid-fade at the end).
    torch.testing.assert_close(rank0, expected, rtol=1e-4, atol=1e-5)
    assert not torch.equal(
        expected, _flat_params(Trainer(plan(options, tensor_source(random_pyramid())), DistContext(), run_dir, 3))
    )
    assert (tmp_path / "runs" / "run" / "latest.pt").is_file()  # rank 0 wrote the files
