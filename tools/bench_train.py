"""Benchmark whole PGGAN training steps (D update with GP + drift, G update, EMA) as training runs them.

Each row builds a ``GanState`` with ``pggan.training.step.build_gan_state`` (as ``pggan-train`` does), enters
the (resolution, fading) phase and times ``pggan.training.step.train_step``: after
warm-up, the median of several steps. Because the machine may be shared, every
timed step is followed by a timed 2048² matmul (float32 on the CPU, bf16 on a
GPU) and the row reports the step's achieved GFLOP/s as a fraction of that
matmul's median measured in the same run: the ratio is what to compare, not the
raw seconds. FLOPs per step come from ``torch.utils.flop_counter.FlopCounterMode``
over one extra untimed step; peak memory is ``torch.cuda.max_memory_allocated``
on a GPU and, on the CPU, the peak of live tensor storage during one step
(parameters, gradients, optimizer moments, EMA and activations).

    python tools/bench_train.py --res 16 32 64 --fmap-max 128 --batch 16
    python tools/bench_train.py --res 1024 --batch 0 --steps 1 --warmup 0   # default schedule's batch
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pggan import defaults
from pggan.devices import configure_torch
from pggan.model.layers import EqualizedConv2dDown, EqualizedUpConv2d
from pggan.model.networks import feature_maps
from pggan.resolutions import is_resolution
from pggan.training.presets import OFFICIAL
from pggan.training.step import GanState, StepInputs, build_gan_state, draw_step_noise, train_step

MATMUL_SIZE = 2048


@dataclass
class Row:
    res: int
    fmap_max: int
    batch: int
    alpha: float
    device: str
    amp: bool
    channels_last: bool
    compile: bool
    sec_per_step: float
    img_per_s: float
    sec_per_kimg: float
    gflop_per_step: float
    gflop_reference: float
    gflops: float
    matmul_gflops: float
    fraction_of_matmul: float
    reference_fraction_of_matmul: float
    peak_mem_mb: float


class StoragePeak(TorchDispatchMode):
    """Peak bytes of live tensor storage while active, counting the given tensors as already alive.

    Every storage an op returns is counted once and released through a weak
    reference when it dies, so views and in-place results are not counted twice.
    """

    def __init__(self, alive: list[torch.Tensor]) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, weakref.ref] = {}
        for tensor in alive:
            self._track(tensor)

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self._refs and self._refs[key]() is not None:
            return
        size = storage.nbytes()

        def release(_: Any, key: int = key, size: int = size) -> None:
            self.live -= size
            self._refs.pop(key, None)

        self._refs[key] = weakref.ref(storage, release)
        self.live += size
        self.peak = max(self.peak, self.live)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for value in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(value, torch.Tensor) and value.device.type != "meta":
                self._track(value)
        return out


def matmul_seconds(a: torch.Tensor, b: torch.Tensor, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        sync(a.device)
        times.append(time.perf_counter() - start)
    return min(times)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_state(
    res: int, fmap_max: int, device: torch.device, channels_last: bool, compile: bool, latent_size: int
) -> GanState:
    """The networks, EMA and optimizers from the builder ``pggan-train`` uses, with the paper's defaults."""
    configure_torch(device, tf32=defaults.TF32, compile=compile)
    return build_gan_state(
        res, 3, device, latent_size=latent_size, fmap_max=fmap_max, channels_last=channels_last, compile=compile
    )


def alive_tensors(state: GanState) -> list[torch.Tensor]:
    tensors = []
    for net in (state.generator, state.discriminator, state.generator_ema):
        for p in net.parameters():
            tensors.append(p)
            if p.grad is not None:
                tensors.append(p.grad)
    for opt in (state.g_optimizer, state.d_optimizer):
        for per_param in opt.state.values():
            tensors += [v for v in per_param.values() if isinstance(v, torch.Tensor)]
    return tensors


def bench_row(args: argparse.Namespace, res: int, device: torch.device) -> Row:
    cuda = device.type == "cuda"
    channels_last = args.channels_last and cuda
    amp = args.amp and cuda
    batch = args.batch or OFFICIAL.tables[1].batch(res)
    alpha = args.alpha if res > 4 else 1.0
    fading = alpha < 1.0
    state = build_state(res, args.fmap_max, device, channels_last, args.compile, args.latent_size)
    state.enter_phase(res, fading)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    reals = (torch.rand(batch, 3, res, res, device=device) * 2 - 1).contiguous(memory_format=memory_format)
    noise = torch.Generator().manual_seed(0)

    def step() -> None:
        d_latents, mix, g_latents = draw_step_noise(noise, batch, args.latent_size, 0, 1)
        train_step(state, StepInputs(reals, d_latents, mix, g_latents), res, alpha, defaults.EMA_BETA, amp)

    dtype = torch.bfloat16 if cuda else torch.float32
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=dtype)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=dtype)
    for _ in range(args.warmup):
        step()
        matmul_seconds(a, b, 1)
    sync(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    # The matmul is timed right before and right after every step: on a shared machine the ceiling moves,
    # and each step is compared with the ceiling of its own moment.
    step_times, mm_times = [], []
    before = matmul_seconds(a, b)
    for _ in range(max(1, args.steps)):
        start = time.perf_counter()
        step()
        sync(device)
        step_times.append(time.perf_counter() - start)
        after = matmul_seconds(a, b)
        mm_times.append((before + after) / 2)
        before = after
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
    else:
        with StoragePeak([*alive_tensors(state), reals]) as tracker:
            step()
        peak = tracker.peak
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    fused = [m for m in state.generator.modules() if isinstance(m, EqualizedUpConv2d) and m.fused]
    for m in fused:  # the same step in the paper's unfused formulation: comparable across fusion settings
        m.fused = False
    with FlopCounterMode(display=False) as counter:
        step()
    reference_flops = counter.get_total_flops()
    for m in fused:
        m.fused = True
    sec = statistics.median(step_times)
    mm_flop = 2 * MATMUL_SIZE**3
    ratios = [flops / t / (mm_flop / m) for t, m in zip(step_times, mm_times, strict=True)]
    mm_gflops = mm_flop / statistics.median(mm_times) / 1e9
    gflops = flops / sec / 1e9
    return Row(
        res=res,
        fmap_max=args.fmap_max,
        batch=batch,
        alpha=alpha,
        device=str(device),
        amp=amp,
        channels_last=channels_last,
        compile=args.compile,
        sec_per_step=sec,
        img_per_s=batch / sec,
        sec_per_kimg=1000 * sec / batch,
        gflop_per_step=flops / 1e9,
        gflop_reference=reference_flops / 1e9,
        gflops=gflops,
        matmul_gflops=mm_gflops,
        fraction_of_matmul=statistics.median(ratios),
        reference_fraction_of_matmul=statistics.median(ratios) * reference_flops / flops,
        peak_mem_mb=peak / 2**20,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--res", type=int, nargs="+", default=[16, 32, 64], help="resolution(s), one row each")
    parser.add_argument("--fmap-max", type=int, default=128, help="widest layer (the paper: 512)")
    parser.add_argument("--batch", type=int, default=16, help="batch size; 0 = the official schedule's batch")
    parser.add_argument("--alpha", type=float, default=0.5, help="fade-in weight (default mid-fade; 1 = stable)")
    parser.add_argument("--latent-size", type=int, default=512)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only; ignored on the CPU)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC tensors (CUDA only; ignored on the CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the single-backward forwards")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per row instead of a table")
    parser.add_argument(
        "--fusion", action="store_true", help="instead: time the fused vs unfused resampling convs per resolution"
    )
    args = parser.parse_args(argv)
    for res in args.res:
        if not is_resolution(res):
            parser.error(f"--res must be powers of two from 4 to 1024, got {res}")
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must lie in [0, 1], got {args.alpha}")
    return args


HEADER = (
    f"{'res':>5} {'fmap':>5} {'batch':>5} {'alpha':>5} {'s/step':>8} {'img/s':>8} {'s/kimg':>8} "
    f"{'GFLOP':>8} {'ref GF':>8} {'GFLOP/s':>8} {'mm GF/s':>8} {'of mm':>6} {'ref/mm':>6} {'peak MB':>8}"
)


def format_row(r: Row) -> str:
    return (
        f"{r.res:>5} {r.fmap_max:>5} {r.batch:>5} {r.alpha:>5.2f} {r.sec_per_step:>8.4f} {r.img_per_s:>8.1f} "
        f"{r.sec_per_kimg:>8.1f} {r.gflop_per_step:>8.1f} {r.gflop_reference:>8.1f} {r.gflops:>8.1f} "
        f"{r.matmul_gflops:>8.1f} {r.fraction_of_matmul:>6.0%} {r.reference_fraction_of_matmul:>6.0%} "
        f"{r.peak_mem_mb:>8.0f}"
    )


def fusion_rows(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Forward + backward time of each resampling conv, unfused vs fused, timed alternately (min of N)."""
    rows = []
    batch = args.batch or 16
    for res in args.res:
        if res < 8:
            continue
        channels = feature_maps(res, defaults.FMAP_BASE, args.fmap_max)
        cases = {
            "upsample+conv3x3 vs convT4x4": (EqualizedUpConv2d(channels, channels), res // 2),
            "conv3x3+avgpool vs conv4x4/2": (EqualizedConv2dDown(channels, channels), res),
        }
        for name, (layer, size) in cases.items():
            layer.to(device)
            x = torch.randn(batch, channels, size, size, device=device, requires_grad=True)
            times: dict[bool, list[float]] = {False: [], True: []}
            for i in range(2 + max(3, args.steps)):
                for fused in (False, True):
                    layer.fused = fused
                    start = time.perf_counter()
                    layer(x).square().sum().backward()
                    sync(device)
                    if i >= 2:
                        times[fused].append(time.perf_counter() - start)
            unfused, fused_s = min(times[False]), min(times[True])
            rows.append(
                {"res": res, "channels": channels, "batch": batch, "layer": name, "device": str(device),
                 "unfused_ms": unfused * 1e3, "fused_ms": fused_s * 1e3, "speedup": unfused / fused_s}
            )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            sys.exit("bench_train: --device cuda but no CUDA device is available")
    if args.fusion:
        for row in fusion_rows(args, device):
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(
                    f"{row['res']:>5} {row['channels']:>5}ch {row['layer']:<30} unfused {row['unfused_ms']:8.2f} ms"
                    f"  fused {row['fused_ms']:8.2f} ms  speed-up {row['speedup']:.2f}x",
                    flush=True,
                )
        return
    if not args.json:
        flags = [name for name in ("amp", "channels_last", "compile") if getattr(args, name)]
        print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, flags {flags or '-'}")
        print(HEADER)
    for res in args.res:
        row = bench_row(args, res, device)
        print(json.dumps(row.__dict__) if args.json else format_row(row), flush=True)


if __name__ == "__main__":
    main()
