"""Benchmark pggan-explore as a user meets it: a real server process, faces fetched over HTTP.

For each resolution, a generator at the paper's widths with synthetic weights (random initialisation: the timings
do not depend on what the weights learned) is saved as a checkpoint, and ``python -m pggan explore`` is started
on it (``--device cpu`` unless ``--device``). Then, over one keep-alive connection:

- ``startup_seconds``: from starting the process to the address printed (imports, checkpoint load, SeFa);
- ``first_face_seconds``: the first ``GET /image.png?seed=0`` (drawn, PNG-encoded; the first call also pays
  one-time allocations);
- ``face_seconds``: the median of ``--distinct`` further faces not yet drawn (``face_max_seconds``: the slowest);
- ``cached_face_seconds``: the median of the same face asked again (served from the cache);
- memory of the server process (``VmRSS`` from /proc): after start-up, and after ``--requests`` requests in all
  (the ``--distinct`` new faces, then the rest repeats of them and of seed 0), with its peak (``VmHWM``) and what
  the face cache holds by then.

Prints a table and, with ``--json``, one JSON object per resolution on the last lines (CPU model from
tools/machine.py). ``--smoke``: a tiny 8² network and 20 requests, seconds in all, for the test suite.

    python tools/bench_explore.py [--resolutions 32 1024] [--requests 500] [--distinct 400 12] [--json] [--smoke]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402


def write_checkpoint(path: Path, resolution: int, fmap_base: int, fmap_max: int, latent_size: int) -> int:
    """A checkpoint of randomly initialised networks, finished at ``resolution``; returns G's parameter count."""
    import torch

    from pggan.model.checkpoint import networks_checkpoint, save_checkpoint
    from pggan.model.networks import Discriminator, Generator

    torch.manual_seed(0)
    g = Generator(resolution, latent_size=latent_size, fmap_base=fmap_base, fmap_max=fmap_max)
    d = Discriminator(resolution, fmap_base=fmap_base, fmap_max=fmap_max)
    state = networks_checkpoint(g.config, d.config, g.state_dict(), g.state_dict(), d.state_dict(), resolution, 1.0)
    save_checkpoint(state, path)
    return sum(p.numel() for p in g.parameters())


def memory_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak, MiB (Linux /proc)."""
    text = Path(f"/proc/{pid}/status").read_text()
    values = {key: int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1)) / 1024 for key in ("VmRSS", "VmHWM")}
    return {"rss_mb": values["VmRSS"], "peak_rss_mb": values["VmHWM"]}


class Client:
    """One keep-alive HTTP connection to the server, as a browser tab holds."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def get(self, target: str) -> tuple[float, bytes]:
        start = time.perf_counter()
        self.connection.request("GET", target)
        response = self.connection.getresponse()
        body = response.read()
        seconds = time.perf_counter() - start
        if response.status != 200:
            raise SystemExit(f"bench_explore: GET {target} answered {response.status}: {body[:200]!r}")
        return seconds, body


def bench(resolution: int, args: argparse.Namespace, distinct: int, folder: Path) -> dict[str, Any]:
    checkpoint = folder / f"synthetic-{resolution}.pt"
    parameters = write_checkpoint(checkpoint, resolution, args.fmap_base, args.fmap_max, args.latent_size)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "pggan", "explore", str(checkpoint), "--port", "0", "--device", args.device,
               "--cache-mb", str(args.cache_mb)]  # fmt: skip
    start = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = None
        while port is None:
            line = server.stdout.readline()
            if not line:
                raise SystemExit(f"bench_explore: the server did not start: {server.stderr.read()[-2000:]}")
            found = re.search(r"serving on http://[^:]+:(\d+)/", line)
            port = int(found.group(1)) if found else None
        result: dict[str, Any] = {
            "resolution": resolution,
            "generator_parameters": parameters,
            "startup_seconds": time.perf_counter() - start,
            "memory_after_startup": memory_mb(server.pid),
        }
        client = Client(port)
        first, face = client.get("/image.png?seed=0")
        result["first_face_seconds"] = first
        result["png_bytes"] = len(face)
        fresh = [client.get(f"/image.png?seed={seed}")[0] for seed in range(1, distinct + 1)]
        result["face_seconds"] = statistics.median(fresh) if fresh else None
        result["face_max_seconds"] = max(fresh) if fresh else None
        cached = [client.get("/image.png?seed=0")[0] for _ in range(max(1, min(50, args.requests - distinct - 1)))]
        result["cached_face_seconds"] = statistics.median(cached)
        done = 1 + distinct + len(cached)
        for k in range(max(0, args.requests - done)):
            client.get(f"/image.png?seed={k % (distinct + 1)}")
        result["requests"] = max(done, args.requests)
        result["distinct_faces"] = distinct + 1
        result["memory_after_requests"] = memory_mb(server.pid)
        result["cache"] = json.loads(client.get("/api/info")[1])["cache"]
        client.connection.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return result


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 1024])
    parser.add_argument("--distinct", type=int, nargs="+", default=[400, 12],
                        help="new faces drawn per resolution (one number for all)")  # fmt: skip
    parser.add_argument("--requests", type=int, default=500, help="requests in all, per resolution")
    parser.add_argument("--fmap-base", type=int, default=8192)
    parser.add_argument("--fmap-max", type=int, default=512)
    parser.add_argument("--latent-size", type=int, default=512)
    parser.add_argument("--cache-mb", type=float, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="also print one JSON object per resolution")
    parser.add_argument("--smoke", action="store_true", help="a tiny 8² network, 20 requests: checks the tool")
    args = parser.parse_args(argv)
    if args.smoke:
        args.resolutions, args.distinct, args.requests = [8], [4], 20
        args.fmap_base, args.fmap_max, args.latent_size = 32, 8, 8
    distinct = args.distinct * len(args.resolutions) if len(args.distinct) == 1 else args.distinct
    if len(distinct) != len(args.resolutions):
        parser.error("--distinct takes one number, or one per resolution")

    machine = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "device": args.device}
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-explore-") as folder:
        for resolution, count in zip(args.resolutions, distinct, strict=True):
            results.append({**machine, **bench(resolution, args, count, Path(folder))})

    print(f"pggan-explore on {machine['cpu']} ({machine['cpu_count']} cores), device {args.device}, paper widths "
          f"(fmap_max {args.fmap_max}, latent {args.latent_size}), synthetic weights")  # fmt: skip
    header = ("res", "start s", "1st face s", "face s (max)", "cached ms", "PNG KB", "RSS MB start", "after N req",
              "peak", "cache MB")  # fmt: skip
    print(" | ".join(header))
    for r in results:
        after = r["memory_after_requests"]
        fresh = "-" if r["face_seconds"] is None else f"{r['face_seconds']:.3f} ({r['face_max_seconds']:.3f})"
        print(" | ".join([
            f"{r['resolution']}", f"{r['startup_seconds']:.1f}", f"{r['first_face_seconds']:.3f}", fresh,
            f"{1000 * r['cached_face_seconds']:.2f}", f"{r['png_bytes'] / 1024:.0f}",
            f"{r['memory_after_startup']['rss_mb']:.0f}", f"{after['rss_mb']:.0f} ({r['requests']} req)",
            f"{after['peak_rss_mb']:.0f}", f"{r['cache']['bytes'] / 2**20:.1f}",
        ]))  # fmt: skip
    if args.json:
        for r in results:
            print(json.dumps(r))
    return results


if __name__ == "__main__":
    main()
