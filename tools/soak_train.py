"""Soak test: a long CPU run through every phase under load, with resident memory sampled phase by phase.

Two gloo processes train tiny networks from 4×4 to ``--resolution`` on a real prepared dataset, with
real loader worker processes (started and stopped at every phase), TensorBoard on, a log line every
tick and a checkpoint + grid every snapshot, while a third process keeps a CPU core busy. At the end
of every phase each rank records its resident set (VmRSS) and that of its loader workers. Growth from
phase to phase would be a leak across DDP rebuilds, loaders or TensorBoard; the figure to read is the
change of rank 0's RSS from the end of the first 8×8 phase (everything imported, warmed up) to the end
of the run.

    python tools/soak_train.py                       # 128×128: 11 phases
    python tools/soak_train.py --resolution 64 --phase-kimg 0.2 --json soak.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import cpu_model  # tools/machine.py

REPO = Path(__file__).resolve().parents[1]


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process in MiB, from /proc (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children_rss_mb() -> float:
    """Summed RSS of this process's direct children (the loader workers)."""
    total = 0.0
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        total += sum(rss_mb(pid) for pid in children)
    return total


def _worker(rank: int, args: argparse.Namespace, port: int, root: str) -> None:
    import torch
    import torch.distributed as dist

    from pggan.training.distributed import DistContext, shutdown
    from pggan.training.options import TrainOptions
    from pggan.training.plan import dataset_batch_source, plan_run
    from pggan.training.trainer import Trainer

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    samples: list[dict[str, Any]] = []

    class Sampled(Trainer):
        def _enter_phase(self, phase: Any) -> None:
            if self.phase is not None:
                samples.append(self._sample())
            super()._enter_phase(phase)

        def _sample(self) -> dict[str, Any]:
            p = self.phase
            return {
                "round": round_index,
                "phase": p.index,
                "resolution": p.resolution,
                "fading": p.fading,
                "kimg": self.images_shown / 1000,
                "rss_mb": round(rss_mb(), 1),
                "loader_rss_mb": round(children_rss_mb(), 1),
            }

    kimg = args.phase_kimg
    batches = ",".join(f"{1 << k}:8" for k in range(2, args.resolution.bit_length()))
    options = TrainOptions(
        data=args.data,
        resolution=args.resolution,
        out=root,
        run_name="soak",
        fade_kimg=kimg,
        stable_kimg=kimg,
        batch_schedule=batches,
        fmap_base=64,
        fmap_max=16,
        latent_size=16,
        device="cpu",
        tick_kimg=kimg / 4,
        snapshot_kimg=kimg / 2,
        workers=1,
        grid_size=2,
        tensorboard=True,
    )
    job = DistContext(rank=rank, local_rank=rank, world_size=2)

    began, steps = time.perf_counter(), 0
    for round_index in range(args.rounds):  # the whole schedule again, in the same processes
        options.run_name = f"soak-{round_index}"
        run_dir = Path(root) / options.run_name
        run_dir.mkdir(parents=True, exist_ok=True)
        plan = plan_run(options, 2, lambda resolved: dataset_batch_source(resolved, job))  # as pggan-train does
        trainer = Sampled(plan, job, run_dir, 3, log=lambda m: None)
        trainer.run()
        steps += trainer.step
        end = {"round": round_index, "phase": "end", "kimg": trainer.images_shown / 1000}
        samples.append({**end, "rss_mb": round(rss_mb(), 1), "loader_rss_mb": 0.0})
        del trainer
    Path(root, f"samples-{rank}.json").write_text(
        json.dumps({"samples": samples, "seconds": time.perf_counter() - began, "steps": steps})
    )
    shutdown()  # drops DDP reducers (gc) before the group, as pggan-train does


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--phase-kimg", type=float, default=0.4, help="Length of each fade and stable phase.")
    parser.add_argument("--rounds", type=int, default=3, help="Train the whole schedule this many times.")
    parser.add_argument("--data", default=None, help="A prepared dataset [default: made from datasets/sample].")
    parser.add_argument("--no-load", action="store_true", help="Without the CPU-heavy second process.")
    parser.add_argument("--json", default=None, help="Also write the figures here.")
    args = parser.parse_args()

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="pggan-soak-") as root:
        if args.data is None:
            from pggan.data.prepare import prepare_dataset

            args.data = str(Path(root) / "data")
            prepare_dataset([str(REPO / "datasets" / "sample")], args.data, args.resolution, workers=1, progress=False)
        hog = None
        if not args.no_load:  # a second CPU-heavy process, as on a shared machine
            hog = subprocess.Popen([sys.executable, "-c", "while True: sum(i * i for i in range(10000))"])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            mp.spawn(_worker, args=(args, port, root), nprocs=2, join=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        ranks = [json.loads(Path(root, f"samples-{r}.json").read_text()) for r in range(2)]

    rows = ranks[0]["samples"]
    print(f"CPU: {cpu_model()}  (load process: {'no' if args.no_load else 'yes'})")
    phases = len(rows)  # the last phase of each round is sampled as its "end"
    print(f"{ranks[0]['steps']} steps in {ranks[0]['seconds']:.0f} s, 2 gloo processes, {phases} phases")
    header = ("round", "phase", "res", "kind", "kimg", "rank0 MB", "rank1 MB", "loader MB")
    print(" ".join(h.rjust(w) for h, w in zip(header, (5, 5, 5, 7, 7, 9, 9, 10), strict=True)))
    for row0, row1 in zip(rows, ranks[1]["samples"], strict=True):
        kind = "" if row0["phase"] == "end" else ("fade" if row0["fading"] else "stable")
        print(
            f"{row0['round']:>5} {row0['phase']!s:>5} {row0.get('resolution', ''):>5} {kind:>7} {row0['kimg']:7.3f} "
            f"{row0['rss_mb']:9.1f} {row1['rss_mb']:9.1f} {row0['loader_rss_mb']:10.1f}"
        )
    ends = [r["rss_mb"] for r in rows if r["phase"] == "end"]
    deltas = [b - a for a, b in itertools.pairwise(ends)]
    print(f"rank 0 RSS at the end of each round: {', '.join(f'{e:.1f}' for e in ends)} MB")
    if deltas:  # round 1 allocates everything once; a leak would add the same amount again every round
        print(f"change from round to round: {', '.join(f'{d:+.1f}' for d in deltas)} MB")
    figures = {
        "cpu": cpu_model(),
        "load_process": not args.no_load,
        "resolution": args.resolution,
        "phase_kimg": args.phase_kimg,
        "rounds": args.rounds,
        "phases": phases,
        "steps": ranks[0]["steps"],
        "seconds": round(ranks[0]["seconds"], 1),
        "rank0": ranks[0]["samples"],
        "rank1": ranks[1]["samples"],
        "rank0_rss_mb_at_round_ends": ends,
        "rank0_change_mb_round_to_round": [round(d, 1) for d in deltas],
    }
    print(json.dumps({k: v for k, v in figures.items() if k not in ("rank0", "rank1")}))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
