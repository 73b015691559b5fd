"""A tiny run directory and an in-process explore server, shared by the HTTP and the browser tests."""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from pggan.model.checkpoint import RunProgress, networks_checkpoint, save_checkpoint
from pggan.model.networks import Discriminator, Generator

LATENT = 8
RESOLUTION = 16
#: checkpoint file -> (images shown, resolution, alpha, weight seed): an early 8×8 one, one mid-fade, the last.
RUN = {
    "checkpoint-000001.000.pt": (1000, 8, 1.0, 1),
    "checkpoint-000002.000.pt": (2000, 16, 0.5, 2),
    "latest.pt": (2500, 16, 1.0, 3),
}


def tiny_run(folder: Path, channels: int = 3) -> Path:
    """A run directory of three checkpoints of a 16² generator (latent 8), each with other weights, and two
    direction files beside it (``smile.npy`` (8,), ``age.npy`` (1, 8)). Returns the run directory."""
    run = folder / "run"
    run.mkdir(parents=True)
    for name, (shown, resolution, alpha, seed) in RUN.items():
        torch.manual_seed(seed)
        g = Generator(RESOLUTION, channels=channels, latent_size=LATENT, fmap_base=32, fmap_max=8)
        d = Discriminator(RESOLUTION, channels=channels, fmap_base=32, fmap_max=8)
        ema = {k: v + 0.05 * torch.randn_like(v) for k, v in g.state_dict().items()}  # EMA differs from raw
        state = networks_checkpoint(
            g.config, d.config, g.state_dict(), ema, d.state_dict(), resolution, alpha,
            progress=RunProgress(images_shown=shown).to_dict(),
        )  # fmt: skip
        save_checkpoint(state, run / name)
    rng = np.random.RandomState(5)
    np.save(folder / "smile.npy", rng.randn(LATENT))
    np.save(folder / "age.npy", rng.randn(1, LATENT).astype(np.float32))
    return run


@contextlib.contextmanager
def serving(source: Path, **options) -> Iterator[tuple[object, str]]:
    """An explore server on a free port of 127.0.0.1 in a background thread: ``(server, base URL)``."""
    from pggan.pictures.explore.faces import Explorer
    from pggan.pictures.explore.server import ExploreServer

    explorer = Explorer(source, device="cpu", **options)
    server = ExploreServer(("127.0.0.1", 0), explorer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def get(base: str, target: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """One request on a fresh connection: ``(status, headers, body)``; no exception for 4xx/5xx."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, target, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()
