"""Benchmark whole PGGAN training steps (D update with GP + drift, G update, EMA) as training runs them.

Each row builds a ``GanState`` with ``pggan.training.step.build_gan_state`` (as ``pggan-train`` does) under the
device policy of the flags (``pggan.devices.device_policy``: ``--amp`` bf16 autocast, ``--channels-last``,
``--tf32``, ``--compile``, honoured on the CPU as on CUDA), enters the (resolution, fading) phase and times
``pggan.training.step.train_step``: after warm-up, the median of several steps. Because the machine may be
shared, every timed step is followed by a timed 2048² matmul in the step's precision (float32, float32 with
TF32 allowed, or bf16) and the row reports the step's achieved GFLOP/s as a fraction of that matmul's median
measured in the same run: the ratio is what to compare, not the raw seconds. FLOPs per step come from
``torch.utils.flop_counter.FlopCounterMode`` over one extra untimed eager step; peak memory is
``torch.cuda.max_memory_allocated`` on a GPU and, on the CPU, the peak of live tensor storage during one step
(parameters, gradients, optimizer moments, EMA and activations).

``--memory`` instead models the peak without computing anything: the same step runs on fake tensors
(``FakeTensorMode``; on CUDA with CUDA's autocast rules where a GPU is present, else on the CPU with the CPU's),
its live storage is traced, and two batch sizes give ``peak = fixed + batch × per_image`` per resolution and
precision, hence the largest per-GPU batch that fits each GPU size. On the CPU the modelled peak equals the
measured one (tested); the GPU check compares it with CUDA's measured peak.

    python tools/bench_train.py --res 16 32 64 --fmap-max 128 --batch 16
    python tools/bench_train.py --res 1024 --batch 0 --steps 1 --warmup 0   # default schedule's batch
    python tools/bench_train.py --memory --res 256 512 1024 --fmap-max 512  # what fits on 16/24/40/80 GB
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import weakref
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # tools/machine.py

from pggan import defaults
from pggan.devices import AMP_DTYPE, DevicePolicy, device_policy
from pggan.model.layers import EqualizedConv2dDown, EqualizedUpConv2d
from pggan.model.networks import feature_maps
from pggan.resolutions import is_resolution
from pggan.training.presets import OFFICIAL
from pggan.training.step import GanState, StepInputs, build_gan_state, draw_step_noise, make_optimizer, train_step

MATMUL_SIZE = 2048
#: GPU memory sizes (GiB, as torch reports a card's total) the memory table is written for.
GPU_GIB = (16, 24, 40, 80)
#: Of a card's memory, what training may plan on: the CUDA context (~0.5 GiB) and the caching allocator's
#: fragmentation plus cuDNN workspaces (taken as 10 %) are not in the modelled peak.
CONTEXT_GIB = 0.5
ALLOCATOR_SHARE = 0.9


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
    tf32: bool
    precision: str
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
    Storages are told apart by their C++ object, so fake tensors (no data) count too.
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
        key = storage._cdata
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


def peak_above_start(fn: Any, device: torch.device, alive: list[torch.Tensor]) -> int:
    """Bytes ``fn()`` allocates at its peak beyond what is live when it starts (``alive`` on the CPU).

    CUDA: ``max_memory_allocated`` minus the allocation at the start. CPU: :class:`StoragePeak`'s peak minus the
    storage of ``alive`` (the tensors that already exist: parameters, optimizer state, inputs).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start
    with StoragePeak(alive) as tracker:
        start = tracker.live
        fn()
    return tracker.peak - start


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


def precision_of(policy: DevicePolicy) -> str:
    """``bf16`` (autocast), ``tf32`` (float32 with TF32 convolutions and matmuls) or ``fp32``."""
    return "bf16" if policy.amp else "tf32" if policy.tf32 else "fp32"


def step_policy(
    device: torch.device, amp: bool = False, channels_last: bool = False, tf32: bool = False, compile: bool = False
) -> DevicePolicy:
    """The device policy of one benchmark variant, exactly as ``pggan-train`` would resolve those flags."""
    return device_policy(device, amp=amp, channels_last=channels_last, tf32=tf32, compile=compile)


def build_state(res: int, fmap_max: int, policy: DevicePolicy, latent_size: int) -> GanState:
    """The networks, EMA and optimizers from the builder ``pggan-train`` uses, with the paper's defaults."""
    policy.configure()
    return build_gan_state(res, 3, policy.device, latent_size=latent_size, fmap_max=fmap_max, policy=policy)


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


def official_batch(res: int) -> int:
    """The official 1-GPU preset's batch at ``res`` (what one GPU trains on)."""
    return OFFICIAL.tables[1].batch(res)


def step_flops(state: GanState, step: Any) -> float:
    """FLOPs of one step as ``FlopCounterMode`` counts them (the step must run eagerly)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def bench_row(args: argparse.Namespace, res: int, device: torch.device) -> Row:
    policy = step_policy(device, args.amp, args.channels_last, args.tf32, args.compile)
    batch = args.batch or official_batch(res)
    alpha = args.alpha if res > 4 else 1.0
    fading = alpha < 1.0
    state = build_state(res, args.fmap_max, policy, args.latent_size)
    state.enter_phase(res, fading)
    reals = (torch.rand(batch, 3, res, res, device=device) * 2 - 1).contiguous(memory_format=policy.memory_format)
    noise = torch.Generator().manual_seed(0)

    def step_of(target: GanState) -> Any:
        def step() -> None:
            d_latents, mix, g_latents = draw_step_noise(noise, batch, args.latent_size, 0, 1)
            train_step(target, StepInputs(reals, d_latents, mix, g_latents), res, alpha, defaults.EMA_BETA)

        return step

    step = step_of(state)
    dtype = AMP_DTYPE if policy.amp else torch.float32  # TF32, when on, applies to this float32 matmul too
    size = args.matmul_size
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(args.warmup):
        step()
        matmul_seconds(a, b, 1)
    sync(device)
    if device.type == "cuda":
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
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        with StoragePeak([*alive_tensors(state), reals]) as tracker:
            step()
        peak = tracker.peak
    flops = reference_flops = math.nan
    if not args.no_flops:
        counted = state
        if policy.compile:  # compiled graphs do not dispatch aten ops one by one: count an eager twin
            counted = build_state(res, args.fmap_max, replace(policy, compile=False), args.latent_size)
            counted.enter_phase(res, fading)
        flops = step_flops(counted, step_of(counted))
        fused = [m for m in counted.generator.modules() if isinstance(m, EqualizedUpConv2d) and m.fused]
        for m in fused:  # the same step in the paper's unfused formulation: comparable across fusion settings
            m.fused = False
        reference_flops = step_flops(counted, step_of(counted))
        for m in fused:
            m.fused = True
    sec = statistics.median(step_times)
    mm_flop = 2 * size**3
    ratios = [flops / t / (mm_flop / m) for t, m in zip(step_times, mm_times, strict=True)]
    return Row(
        res=res,
        fmap_max=args.fmap_max,
        batch=batch,
        alpha=alpha,
        device=str(device),
        amp=policy.amp,
        channels_last=policy.channels_last,
        compile=policy.compile,
        tf32=policy.tf32,
        precision=precision_of(policy),
        sec_per_step=sec,
        img_per_s=batch / sec,
        sec_per_kimg=1000 * sec / batch,
        gflop_per_step=flops / 1e9,
        gflop_reference=reference_flops / 1e9,
        gflops=flops / sec / 1e9,
        matmul_gflops=mm_flop / statistics.median(mm_times) / 1e9,
        fraction_of_matmul=statistics.median(ratios),
        reference_fraction_of_matmul=statistics.median(ratios) * reference_flops / flops,
        peak_mem_mb=peak / 2**20,
    )


# ---------------------------------------------------------------- the memory model (fake tensors)
class _ForcedAutocast:
    """bf16 autocast of a device type even where that device is absent (fake CUDA tensors on a CPU machine).

    ``torch.autocast("cuda")`` switches itself off without a GPU; the model needs CUDA's casting rules
    anyway, so it sets the same thread-local state ``torch.autocast`` would.
    """

    def __init__(self, device_type: str) -> None:
        self.device_type = device_type

    def __enter__(self) -> None:
        self.saved = (torch.is_autocast_enabled(self.device_type), torch.get_autocast_dtype(self.device_type))
        torch.set_autocast_dtype(self.device_type, AMP_DTYPE)
        torch.set_autocast_enabled(self.device_type, True)
        torch.autocast_increment_nesting()

    def __exit__(self, *exc: object) -> None:
        if torch.autocast_decrement_nesting() == 0:
            torch.clear_autocast_cache()
        torch.set_autocast_enabled(self.device_type, self.saved[0])
        torch.set_autocast_dtype(self.device_type, self.saved[1])


@dataclass(frozen=True)
class ModelPolicy(DevicePolicy):
    """A device policy whose autocast also works on a fake device (see :class:`_ForcedAutocast`)."""

    def autocast(self) -> Any:
        return _ForcedAutocast(self.device.type) if self.amp else super().autocast()


@dataclass
class MemoryModel:
    """``peak = fixed + batch × per_image`` of one training step (bytes), from two traced batch sizes."""

    res: int
    fmap_max: int
    device: str
    precision: str
    channels_last: bool
    fixed_mb: float
    per_image_mb: float
    batches: tuple[int, int]

    def peak_mb(self, batch: int) -> float:
        return self.fixed_mb + batch * self.per_image_mb

    def largest_batch(self, gpu_gib: float) -> int:
        """The largest per-GPU batch whose modelled peak fits ``gpu_gib`` less the context and the allocator's share,
        and that the minibatch-stddev group of 4 divides (1, 2 and 3 form groups of themselves); 0: none fits."""
        budget_mb = (gpu_gib * ALLOCATOR_SHARE - CONTEXT_GIB) * 1024
        fits = int((budget_mb - self.fixed_mb) // self.per_image_mb) if budget_mb > self.fixed_mb else 0
        return fits if fits < 4 else fits - fits % 4


def fake_state(mode: FakeTensorMode, res: int, fmap_max: int, latent_size: int, policy: DevicePolicy) -> GanState:
    """``build_gan_state``'s networks with every parameter replaced by a fake tensor on ``policy.device``.

    The weights are drawn for real on the CPU (as training does), then turned into fakes of the policy's device
    and memory format; the optimizers are made over the fakes, so their moments are fake too.
    """
    real = build_gan_state(res, 3, torch.device("cpu"), latent_size=latent_size, fmap_max=fmap_max)
    nets = (real.generator, real.discriminator, real.generator_ema)
    for net in nets:
        for module in net.modules():
            for name, param in list(module.named_parameters(recurse=False)):
                fake = mode.from_tensor(param.detach())
                with mode:
                    layout = policy.memory_format if param.ndim == 4 else torch.preserve_format
                    fake = fake.to(device=policy.device, memory_format=layout)
                setattr(module, name, nn.Parameter(fake, requires_grad=param.requires_grad))
    with mode:
        return GanState(
            generator=nets[0],
            discriminator=nets[1],
            generator_ema=nets[2],
            g_optimizer=make_optimizer(nets[0], defaults.LEARNING_RATE, policy.device),
            d_optimizer=make_optimizer(nets[1], defaults.LEARNING_RATE, policy.device),
            policy=policy,
        )


def traced_peaks(
    res: int,
    fmap_max: int,
    batches: tuple[int, ...],
    device_type: str = "cuda",
    amp: bool = False,
    channels_last: bool | None = None,
    latent_size: int = defaults.LATENT_SIZE,
    alpha: float = 0.5,
) -> list[int]:
    """Peak bytes of live tensor storage of one training step per batch size, on fake tensors (nothing computed).

    The step is the real ``train_step`` after one warm-up step (so Adam's moments exist, as in a run), mid-fade
    by default (both paths of the fade alive: the largest step of a resolution).
    """
    device = torch.device(device_type, 0) if device_type == "cuda" else torch.device(device_type)
    base = device_policy(device, amp=amp, channels_last=channels_last)
    policy = ModelPolicy(**{f.name: getattr(base, f.name) for f in fields(DevicePolicy)})
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    state = fake_state(mode, res, fmap_max, latent_size, policy)
    alpha = alpha if res > 4 else 1.0
    noise = torch.Generator().manual_seed(0)
    peaks = []
    with mode:
        state.enter_phase(res, alpha < 1.0)
        for i, batch in enumerate((batches[0], *batches)):
            reals = torch.zeros(batch, 3, res, res, device=device).contiguous(memory_format=policy.memory_format)
            inputs = StepInputs(reals, *draw_step_noise(noise, batch, latent_size, 0, 1))
            with StoragePeak([*alive_tensors(state), reals]) as tracker:
                train_step(state, inputs, res, alpha, defaults.EMA_BETA)
            if i > 0:  # the first run is the warm-up that creates Adam's moments
                peaks.append(tracker.peak)
    state.release_views()
    return peaks


def memory_model(
    res: int,
    fmap_max: int,
    device_type: str = "cuda",
    amp: bool = False,
    channels_last: bool | None = None,
    batches: tuple[int, int] = (4, 8),
    latent_size: int = defaults.LATENT_SIZE,
) -> MemoryModel:
    """Fit ``peak = fixed + batch × per_image`` through the traced peaks of two batch sizes."""
    low, high = traced_peaks(res, fmap_max, batches, device_type, amp, channels_last, latent_size)
    per_image = (high - low) / (batches[1] - batches[0])
    policy = device_policy(torch.device(device_type), amp=amp, channels_last=channels_last)
    return MemoryModel(
        res=res,
        fmap_max=fmap_max,
        device=device_type,
        precision="bf16" if amp else "fp32",
        channels_last=policy.channels_last,
        fixed_mb=(low - batches[0] * per_image) / 2**20,
        per_image_mb=per_image / 2**20,
        batches=batches,
    )


def memory_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per (resolution, precision): the model and the largest batch per GPU size."""
    rows = []
    for res in args.res:
        for amp in (False, True):
            model = memory_model(res, args.fmap_max, args.memory_device, amp, latent_size=args.latent_size)
            row = asdict(model)
            row["official_batch"] = official_batch(res)
            row["official_batch_peak_mb"] = model.peak_mb(official_batch(res))
            row["largest_batch"] = {str(gib): model.largest_batch(gib) for gib in GPU_GIB}
            rows.append(row)
    return rows


def format_memory_row(row: dict[str, Any]) -> str:
    fits = "  ".join(f"{row['largest_batch'][str(g)]:>5d}" for g in GPU_GIB)
    return (
        f"{row['res']:>5} {row['precision']:>5} {row['fixed_mb']:>9.0f} {row['per_image_mb']:>9.1f} "
        f"{row['official_batch']:>5d} {row['official_batch_peak_mb']:>9.0f}  {fits}"
    )


MEMORY_HEADER = f"{'res':>5} {'prec':>5} {'fixed MB':>9} {'MB/image':>9} {'batch':>5} {'peak MB':>9}  " + "  ".join(
    f"{str(g) + 'GB':>5}" for g in GPU_GIB
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--res", type=int, nargs="+", default=[16, 32, 64], help="resolution(s), one row each")
    parser.add_argument("--fmap-max", type=int, default=128, help="widest layer (the paper: 512)")
    parser.add_argument("--batch", type=int, default=16, help="batch size; 0 = the official schedule's batch")
    parser.add_argument("--alpha", type=float, default=0.5, help="fade-in weight (default mid-fade; 1 = stable)")
    parser.add_argument("--latent-size", type=int, default=512)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (on the CPU too)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC networks and batches (on the CPU too)")
    parser.add_argument("--tf32", action="store_true", help="TF32 convolutions and matmuls (CUDA only)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the single-backward forwards")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    parser.add_argument("--matmul-size", type=int, default=MATMUL_SIZE, help="side of the reference matmul")
    parser.add_argument("--no-flops", action="store_true", help="skip counting FLOPs (two extra eager steps)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per row instead of a table")
    parser.add_argument(
        "--fusion", action="store_true", help="instead: time the fused vs unfused resampling convs per resolution"
    )
    parser.add_argument(
        "--memory", action="store_true", help="instead: model each resolution's peak memory on fake tensors"
    )
    parser.add_argument(
        "--memory-device",
        default="auto",
        choices=["auto", "cuda", "cpu"],
        help="the device whose autocast rules are modelled (auto: CUDA where a GPU is, else the CPU's rules; "
        "fake CUDA tensors need a GPU for their backward)",
    )
    args = parser.parse_args(argv)
    if args.memory_device == "auto":
        args.memory_device = "cuda" if torch.cuda.is_available() else "cpu"
    for res in args.res:
        if not is_resolution(res):
            parser.error(f"--res must be powers of two from 4 to 1024, got {res}")
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must lie in [0, 1], got {args.alpha}")
    return args


HEADER = (
    f"{'res':>5} {'fmap':>5} {'batch':>5} {'alpha':>5} {'prec':>5} {'s/step':>8} {'img/s':>8} {'s/kimg':>8} "
    f"{'GFLOP':>8} {'ref GF':>8} {'GFLOP/s':>8} {'mm GF/s':>8} {'of mm':>6} {'ref/mm':>6} {'peak MB':>8}"
)


def format_row(r: Row) -> str:
    return (
        f"{r.res:>5} {r.fmap_max:>5} {r.batch:>5} {r.alpha:>5.2f} {r.precision:>5} {r.sec_per_step:>8.4f} "
        f"{r.img_per_s:>8.1f} {r.sec_per_kimg:>8.1f} {r.gflop_per_step:>8.1f} {r.gflop_reference:>8.1f} "
        f"{r.gflops:>8.1f} {r.matmul_gflops:>8.1f} {r.fraction_of_matmul:>6.0%} {r.reference_fraction_of_matmul:>6.0%} "
        f"{r.peak_mem_mb:>8.0f}"
    )


def resolve_bench_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_train: --device cuda but no CUDA device is available")
    return device


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
    if args.memory:
        rows = memory_rows(args)
        if args.json:
            for row in rows:
                print(json.dumps(row), flush=True)
            return
        print(f"modelled on fake {args.memory_device} tensors, fmap-max {args.fmap_max}, mid-fade; largest per-GPU "
              f"batch = ({ALLOCATOR_SHARE:.0%} of the card − {CONTEXT_GIB} GiB − fixed) / per image")  # fmt: skip
        print(MEMORY_HEADER)
        for row in rows:
            print(format_memory_row(row), flush=True)
        return
    device = resolve_bench_device(args.device)
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
        flags = [name for name in ("amp", "channels_last", "tf32", "compile") if getattr(args, name)]
        print(f"device {device} ({cpu_model()}), {torch.get_num_threads()} threads, torch {torch.__version__}, "
              f"flags {flags or '-'}")  # fmt: skip
        print(HEADER)
    for res in args.res:
        row = bench_row(args, res, device)
        print(json.dumps(row.__dict__) if args.json else format_row(row), flush=True)


if __name__ == "__main__":
    main()
