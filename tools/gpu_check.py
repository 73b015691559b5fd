"""The first GPU session in one command: run the suite on CUDA, measure the step, the memory, a real run, the metrics.

    python tools/gpu_check.py --json gpu-check.json               # on a GPU: ~8 minutes at most, every stage boxed
    python tools/gpu_check.py --device cpu --quick --json out.json # every stage small on the CPU (the suite runs it)
    python tools/gpu_check.py --only bench,memory --budget bench=300

Stages, each in its own process with a time box (a stage that fails or overruns is recorded with its one-line
error or as ``timeout`` with what it finished, and the next stage runs):

- ``environment``: torch, CUDA and driver versions, the GPU and its memory, the CPU model.
- ``suite``: the fast test suite with ``PGGAN_TEST_DEVICE`` set to the device: passed / failed / skipped counts and
  the failing test ids.
- ``bench``: ``tools/bench_train.py``'s step at 256², 512², 1024² with the paper's widths and the official batch in
  float32, TF32, bf16 + channels-last and bf16 + channels-last + compile: img/s, peak memory, the fraction of the
  same run's 2048² matmul in the same precision, and the fake-tensor memory model's peak for the same step.
- ``memory``: the memory model per resolution and precision, and the largest per-GPU batch for 16/24/40/80 GB.
- ``train``: a real ``pggan-train`` run on the device with ``--amp`` (and channels-last, the CUDA default) through
  the fade into 64², stopped mid-fade and resumed: seconds, img/s, finite losses, resumed == one go (bitwise?).
- ``swd``: SWD on 16,384 images at 256² and at 1024²: seconds, peak host and device memory.
- ``fid``: the Inception embedding rate (images/s) at 256² (random weights in the standard layout).
- ``ddp``: one-process DDP start-up with the device's backend (NCCL on a GPU): process group, DDP views, steps.

``--quick`` makes every stage small (tiny networks, a few images, a two-file suite; compile is left to the
suite's slow test), so ``--device cpu --quick`` runs in well under a minute and the test suite runs the script.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Sleeping, not spinning, OpenMP threads (as pggan's commands set it): on a busy CPU spinning made steps ~30x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(TOOLS))

from machine import cpu_model  # tools/machine.py  # noqa: E402

#: The stages in the order they run, and their time boxes in seconds (full run on a GPU, --quick).
#: Full boxes sum to 8 minutes; a GPU process starts in a few seconds of each (spawned: CUDA cannot be forked).
STAGES: dict[str, tuple[float, float]] = {
    "environment": (30, 60),
    "suite": (120, 120),
    "bench": (140, 120),
    "memory": (40, 60),
    "train": (50, 120),
    "swd": (60, 60),
    "fid": (20, 60),
    "ddp": (20, 60),
}
#: The quick suite: the device policy and the bf16/channels-last paths, small.
QUICK_TESTS = [
    "tests/test_resolutions.py",
    "tests/test_accelerator_paths.py::test_device_policy_decides_every_flag_in_one_place",
    "tests/test_accelerator_paths.py::test_gradient_penalty_norm_is_float32_for_bf16_images",
]


# ---------------------------------------------------------------- helpers shared by the stages
def torch_device(name: str) -> Any:
    import torch

    return torch.device("cuda", 0) if name == "cuda" else torch.device(name)


def peak_host_mb() -> float:
    """This process's peak resident memory: each stage is its own process, so this is the stage's."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_memory(device: Any) -> dict[str, float]:
    import torch

    if device.type != "cuda":
        return {}
    return {"peak_device_mb": torch.cuda.max_memory_allocated(device) / 2**20}


def reset_device_peak(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- stages
def stage_environment(args: argparse.Namespace, save: Callable[[dict], None]) -> dict[str, Any]:
    import platform

    import torch

    result: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if args.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        result.update(
            gpu=props.name,
            gpu_count=torch.cuda.device_count(),
            gpu_memory_gib=round(props.total_memory / 2**30, 2),
            capability=f"{props.major}.{props.minor}",
            cudnn=torch.backends.cudnn.version(),
            nccl=str(torch.cuda.nccl.version()) if hasattr(torch.cuda, "nccl") else None,
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    return result


def parse_pytest(text: str) -> dict[str, Any]:
    """Counts from pytest's final line, or (cut off by the time box) from its progress characters."""
    counts: dict[str, Any] = {}
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", text):
        counts["errors" if word.startswith("error") else word] = int(number)
    if not counts:
        progress = "".join(re.findall(r"^([.FsExX]+)\s*\[\s*\d+%\]", text, flags=re.MULTILINE))
        counts = {"passed": progress.count("."), "failed": progress.count("F"), "skipped": progress.count("s"),
                  "errors": progress.count("E"), "cut_off": True}  # fmt: skip
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0, **counts}
    counts["failing"] = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", text, flags=re.MULTILINE)))[:50]
    return counts


def stage_suite(args: argparse.Namespace, save: Callable[[dict], None]) -> dict[str, Any]:
    log = Path(args.workdir) / "suite.log"
    selection = QUICK_TESTS if args.quick else ["-m", "not slow"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "--tb=line", *selection]
    env = {**os.environ, "PGGAN_TEST_DEVICE": args.device, "PYTHONPATH": str(REPO)}
    save({"log": str(log), "command": " ".join(command[1:])})  # the parent reads the log if the box closes
    with open(log, "w") as handle:
        done = subprocess.run(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
    return {"exit_code": done.returncode, **parse_pytest(log.read_text())}


def bench_variants(quick: bool) -> list[dict[str, Any]]:
    variants = [
        {"name": "fp32", "amp": False, "channels_last": False, "tf32": False, "compile": False},
        {"name": "tf32", "amp": False, "channels_last": False, "tf32": True, "compile": False},
        {"name": "bf16+cl", "amp": True, "channels_last": True, "tf32": False, "compile": False},
        {"name": "bf16+cl+compile", "amp": True, "channels_last": True, "tf32": False, "compile": True},
    ]
    return variants[:3] if quick else variants


def stage_bench(args: argparse.Namespace, save: Callable[[dict], None]) -> dict[str, Any]:
    import bench_train
    import torch

    device = torch_device(args.device)
    resolutions = [8, 16] if args.quick else [256, 512, 1024]
    fmap_max, latent = (8, 16) if args.quick else (512, 512)
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {"fmap_max": fmap_max, "rows": rows}
    if args.quick:
        result["skipped"] = "bf16+cl+compile: torch.compile costs ~30 s on a CPU (the suite's slow test covers it)"
    flops: dict[int, tuple[float, float]] = {}
    modelled: dict[tuple[int, bool], float] = {}
    # Eager variants at every resolution first, compiled ones last: a time box that closes early keeps most rows.
    order = [(v, r) for v in bench_variants(args.quick) if not v["compile"] for r in resolutions]
    order += [(v, r) for v in bench_variants(args.quick) if v["compile"] for r in reversed(resolutions)]
    for variant, res in order:
        argv = ["--res", str(res), "--fmap-max", str(fmap_max), "--latent-size", str(latent), "--device", str(device)]
        if args.quick:
            argv += ["--batch", "4", "--warmup", "1", "--steps", "1", "--matmul-size", "256"]
        else:
            argv += ["--batch", "0", "--warmup", "2", "--steps", "3"]
        argv += [f"--{flag.replace('_', '-')}" for flag in ("amp", "channels_last", "tf32", "compile") if variant[flag]]
        counted = res in flops
        if counted:  # FLOPs do not depend on precision, layout or compile: counted once per resolution
            argv.append("--no-flops")
        started = time.perf_counter()
        row = bench_train.bench_row(bench_train.parse_args(argv), res, device).__dict__
        row["variant"] = variant["name"]
        row["seconds"] = round(time.perf_counter() - started, 1)
        if counted:
            gflop, reference = flops[res]
            row.update(gflop_per_step=gflop, gflop_reference=reference, gflops=gflop / row["sec_per_step"])
            mm_per_step = row["matmul_gflops"]
            row["fraction_of_matmul"] = row["gflops"] / mm_per_step
            row["reference_fraction_of_matmul"] = row["fraction_of_matmul"] * reference / gflop
        else:
            flops[res] = (row["gflop_per_step"], row["gflop_reference"])
        key = (res, variant["amp"])
        if key not in modelled:
            (peak,) = bench_train.traced_peaks(res, fmap_max, (row["batch"],), args.device, variant["amp"],
                                               variant["channels_last"], latent)  # fmt: skip
            modelled[key] = peak / 2**20
        row["modelled_peak_mb"] = modelled[key]
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the next row's peak starts from a clean allocator
        save(result)
    return result


def stage_memory(args: argparse.Namespace, save: Callable[[dict], None]) -> dict[str, Any]:
    import bench_train

    resolutions = [16] if args.quick else [256, 512, 1024]
    fmap_max, latent = (16, 16) if args.quick else (512, 512)
    argv = ["--memory", "--res", *map(str, resolutions), "--fmap-max", str(fmap_max), "--latent-size", str(latent),
            "--memory-device", args.device]  # fmt: skip
    rows = bench_train.memory_rows(bench_train.parse_args(argv))
    return {
        "gpu_gib": list(bench_train.GPU_GIB),
        "budget": f"{bench_train.ALLOCATOR_SHARE:.0%} of the card - {bench_train.CONTEXT_GIB} GiB",
        "rows": rows,
    }


def run_pggan(*argv: Any) -> None:
    """``python -m pggan ARGV`` in this process (one start-up for the whole stage); raises on failure."""
    from pggan.__main__ import main

    try:
        main.main([str(a) for a in argv], standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"pggan {argv[0]} exited with {exc.code}") from None


def stage_train(args: argparse.Namespace, save: Callable[[dict], None]) -> dict[str, Any]:
    from pggan.data.prepare import prepare_dataset
    from pggan.model.checkpoint import load_checkpoint, run_progress

    device = torch_device(args.device)
    work = Path(args.workdir) / "train"
    work.mkdir(parents=True, exist_ok=True)
    resolution = 16 if args.quick else 64
    data = work / f"faces{resolution}"
    started = time.perf_counter()
    prepare_dataset([str(REPO / "datasets" / "sample")], data, resolution=resolution, workers=1, progress=False)
    prepared = time.perf_counter() - started
    phase = 0.016 if args.quick else 0.5  # kimg per fade and per stable phase
    phases = len([r for r in (4, 8, 16, 32, 64) if r <= resolution])
    total = phase + (phases - 1) * 2 * phase  # 4² stable, then a fade + stable per resolution
    stop = total - 1.5 * phase  # halfway through the fade into the top resolution
    common = ["--data", data, "--resolution", resolution, "--device", args.device, "--amp", "--workers", 0,
              "--fade-kimg", phase, "--stable-kimg", phase, "--tick-kimg", phase, "--snapshot-kimg", total,
              "--grid-size", 2, "--no-tensorboard"]  # fmt: skip
    if args.quick:
        common += ["--fmap-base", 32, "--fmap-max", 8, "--latent-size", 8, "--batch-schedule", "4:8,8:8,16:8"]
    else:
        common += ["--fmap-max", 256]
    timings = {}
    for name, extra in (("one_go", ["--total-kimg", total]), ("first", ["--total-kimg", stop])):
        begin = time.perf_counter()
        run_pggan("train", *common, "--out", work / name, "--run-name", "run", *extra)
        timings[name] = time.perf_counter() - begin
    begin = time.perf_counter()
    run_pggan("train", "--resume", work / "first" / "run", "--total-kimg", total)
    timings["resumed"] = time.perf_counter() - begin
    one_go = load_checkpoint(work / "one_go" / "run" / "latest.pt")
    resumed = load_checkpoint(work / "first" / "run" / "latest.pt")
    diffs = [
        (one_go[net][key].float() - resumed[net][key].float()).abs().max().item()
        for net in ("generator", "discriminator", "generator_ema")
        for key in one_go[net]
    ]
    ticks = [json.loads(line) for line in (work / "one_go" / "run" / "stats.jsonl").read_text().splitlines()]
    return {
        "resolution": resolution,
        "kimg": total,
        "stopped_at_kimg": stop,
        "options": {k: one_go["options"][k] for k in ("amp", "channels_last", "tf32", "compile", "batch_schedule")},
        "prepare_seconds": round(prepared, 1),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "img_per_s_last_tick": ticks[-1]["img_per_s"],
        "losses_finite": all(
            all(isinstance(t[k], float) and abs(t[k]) < float("inf") for k in ("d_loss", "g_loss")) for t in ticks
        ),
        "resolutions_seen": sorted({t["resolution"] for t in ticks}),
        "resumed_images": run_progress(resumed).images_shown,
        "resumed_equals_one_go": max(diffs) == 0.0,
        "resumed_max_abs_difference": max(diffs),
        "device": str(device),
        "peak_host_mb": round(peak_host_mb(), 1),
        **device_memory(device),
    }


def synthetic_batches(count: int, resolution: int, batch: int, seed: int, device: Any):
    """Smooth random uint8 images made on the device (coarse noise, upsampled): nothing to read, little host memory."""
    import torch

    generator = torch.Generator(device=device).manual_seed(seed)
    for start in range(0, count, batch):
        n = min(batch, count - start)
        coarse = torch.rand(n, 3, resolution // 8, resolution // 8, generator=generator, device=device)
        images = torch.nn.functional.interpolate(coarse, scale_factor=8, mode="bilinear", align_corners=False)
        images = images + 0.1 * torch.rand(n, 3, resolution, resolution, generator=generator, device=device)
        yield (images.clamp(0, 1) * 255).round().to(torch.uint8)


def stage_swd(args: argparse.Namespace, save: Callable[[dict], None]) -> dict[str, Any]:
    from pggan.metrics import swd

    device = torch_device(args.device)
    cases = [(16, 32), (16, 64)] if args.quick else [(16384, 256), (16384, 1024)]
    runs: list[dict[str, Any]] = []
    for count, resolution in cases:
        batch = max(1, swd.PIXELS_PER_BATCH // (4 * 3 * resolution * resolution))
        reset_device_peak(device)
        host_before = peak_host_mb()
        started = time.perf_counter()
        reals = synthetic_batches(count, resolution, batch, 0, device)
        fakes = synthetic_batches(count, resolution, batch, 1, device)
        scores = swd.sliced_wasserstein_pyramid(reals, fakes, seed=0, device=device, num_images=count)
        synchronize(device)
        runs.append({
            "num_images": count, "resolution": resolution, "seconds": round(time.perf_counter() - started, 2),
            "swd_avg": scores["avg"], "peak_host_mb": round(peak_host_mb(), 1),
            "host_peak_grew_mb": round(peak_host_mb() - host_before, 1), **device_memory(device),
        })  # fmt: skip
        save({"runs": runs})
    return {"runs": runs}


def stage_fid(args: argparse.Namespace, save: Callable[[dict], None]) -> dict[str, Any]:
    import torch

    from pggan.metrics import fid, inception

    device = torch_device(args.device)
    count, resolution, batch = (2, 32, 2) if args.quick else (4096, 256, 128)
    weights = Path(args.workdir) / "random-inception.pth"
    inception.write_random_weights(weights)
    network = inception.load_inception(weights, allow_unverified=True, device=device)
    batches = list(synthetic_batches(count, resolution, batch, 0, device))
    network.features(batches[0])  # warm-up (cuDNN picks its kernels)
    reset_device_peak(device)
    accumulator = fid.StatsAccumulator()
    started = time.perf_counter()
    for images in batches:
        accumulator.add(network.features(images))
    synchronize(device)
    seconds = time.perf_counter() - started
    stats = accumulator.result()
    return {
        "num_images": count,
        "resolution": resolution,
        "batch": batch,
        "seconds": round(seconds, 3),
        "images_per_second": round(count / seconds, 1),
        "feature_dims": int(stats.mu.shape[0]),
        "torch_threads": torch.get_num_threads(),
        **device_memory(device),
    }


def stage_ddp(args: argparse.Namespace, save: Callable[[dict], None]) -> dict[str, Any]:
    import socket

    import torch
    import torch.distributed as dist

    from pggan.devices import device_policy
    from pggan.training.step import StepInputs, build_gan_state, draw_step_noise, train_step

    device = torch_device(args.device)
    policy = device_policy(device)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    started = time.perf_counter()
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(policy.ddp_backend, rank=0, world_size=1, **kwargs)
    try:
        group_seconds = time.perf_counter() - started
        res, fmap_max, latent, batch = (8, 8, 16, 4) if args.quick else (128, 256, 512, 16)
        policy.configure()
        state = build_gan_state(res, 3, device, latent_size=latent, fmap_max=fmap_max, ddp=True, policy=policy)
        begin = time.perf_counter()
        state.enter_phase(res, fading=True)
        views_seconds = time.perf_counter() - begin
        noise = torch.Generator().manual_seed(0)
        reals = torch.rand(batch, 3, res, res) * 2 - 1
        times = []
        for _ in range(3):
            begin = time.perf_counter()
            stats = train_step(state, StepInputs(reals, *draw_step_noise(noise, batch, latent, 0, 1)), res, 0.5, 0.999)
            synchronize(device)
            times.append(time.perf_counter() - begin)
        finite = all(bool(torch.isfinite(v)) for v in stats.values())
        state.release_views()
        return {
            "backend": policy.ddp_backend,
            "process_group_seconds": round(group_seconds, 3),
            "ddp_views_seconds": round(views_seconds, 3),
            "first_step_seconds": round(times[0], 3),
            "later_step_seconds": round(statistics.median(times[1:]), 4),
            "resolution": res,
            "batch": batch,
            "losses_finite": finite,
        }
    finally:
        import gc

        gc.collect()
        dist.destroy_process_group()


STAGE_FUNCTIONS: dict[str, Callable[[argparse.Namespace, Callable[[dict], None]], dict[str, Any]]] = {
    "environment": stage_environment,
    "suite": stage_suite,
    "bench": stage_bench,
    "memory": stage_memory,
    "train": stage_train,
    "swd": stage_swd,
    "fid": stage_fid,
    "ddp": stage_ddp,
}


# ---------------------------------------------------------------- running stages in boxes
def _stage_child(name: str, args: argparse.Namespace, result_path: str, log_path: str) -> None:
    """One stage in its own process group and log: writes {"status", "result" | "error"} to ``result_path``."""
    os.setpgrp()  # the parent kills the whole group (pytest, workers) when the box closes
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)

    def save(partial: dict[str, Any], status: str = "running") -> None:
        tmp = result_path + ".tmp"
        Path(tmp).write_text(json.dumps({"status": status, "result": partial}, default=str))
        os.replace(tmp, result_path)

    try:
        result = STAGE_FUNCTIONS[name](args, save)
        save(result, "ok")
        code = 0
    except BaseException as exc:  # every failure is recorded, never raised
        traceback.print_exc()
        previous = {}
        try:
            previous = json.loads(Path(result_path).read_text()).get("result", {})
        except (OSError, ValueError):
            pass
        line = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        Path(result_path).write_text(json.dumps(
            {"status": "failed", "error": f"{type(exc).__name__}: {line}", "result": previous}, default=str
        ))  # fmt: skip
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_stage(name: str, args: argparse.Namespace, budget: float) -> dict[str, Any]:
    """Run one stage in a child process for at most ``budget`` seconds; never raises."""
    workdir = Path(args.workdir)
    result_path, log_path = workdir / f"{name}.json", workdir / f"{name}.log"
    # fork is instant on the CPU; CUDA cannot be used in a forked child once the parent touched it, so spawn there.
    context = multiprocessing.get_context("fork" if args.device == "cpu" else "spawn")
    process = context.Process(target=_stage_child, args=(name, args, str(result_path), str(log_path)))
    started = time.perf_counter()
    process.start()
    process.join(budget)
    timed_out = process.is_alive()
    if timed_out:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.join(10)
    seconds = time.perf_counter() - started
    try:
        outcome = json.loads(result_path.read_text())
    except (OSError, ValueError):
        outcome = {"status": "failed", "error": f"the stage process exited with {process.exitcode} (see {log_path})"}
    if timed_out:
        outcome["status"] = "timeout"
        outcome["error"] = f"stopped after its {budget:.0f} s box; what it finished is kept"
    elif outcome.get("status") == "running":
        outcome = {**outcome, "status": "failed", "error": f"the stage process died (exit {process.exitcode})"}
    result = outcome.get("result") or {}
    if name == "suite" and outcome["status"] != "ok" and result.get("log"):
        try:  # counts of what ran before the box closed
            result.update(parse_pytest(Path(result["log"]).read_text()))
        except OSError:
            pass
    return {"status": outcome["status"], "seconds": round(seconds, 1), "budget_s": budget, "result": result,
            **({"error": outcome["error"]} if "error" in outcome else {}), "log": str(log_path)}  # fmt: skip


# ---------------------------------------------------------------- the report
def summary(name: str, stage: dict[str, Any]) -> str:
    """The stage's key figures in one line for the table."""
    r = stage.get("result") or {}
    try:
        if name == "environment":
            return f"torch {r.get('torch')}, {r.get('gpu') or r.get('cpu')}" + (
                f", {r['gpu_memory_gib']} GiB" if "gpu_memory_gib" in r else ""
            )
        if name == "suite":
            return (f"{r.get('passed', 0)} passed, {r.get('failed', 0)} failed, {r.get('skipped', 0)} skipped"
                    + (f", {r.get('errors')} errors" if r.get("errors") else ""))  # fmt: skip
        if name == "bench":
            return "; ".join(f"{x['res']} {x['variant']} {x['img_per_s']:.1f} img/s {x['peak_mem_mb']:.0f} MB "
                             f"{x['fraction_of_matmul']:.0%} mm" for x in r.get("rows", []))  # fmt: skip
        if name == "memory":
            return "; ".join(f"{x['res']} {x['precision']} {x['fixed_mb']:.0f}+{x['per_image_mb']:.0f}/img MB, "
                             f"16GB: {x['largest_batch']['16']}" for x in r.get("rows", []))  # fmt: skip
        if name == "train":
            return (f"{r['kimg']} kimg to {r['resolution']}², {r['seconds']['one_go']} s one go, resumed == one "
                    f"go: {r['resumed_equals_one_go']} (max diff {r['resumed_max_abs_difference']:.2g})")  # fmt: skip
        if name == "swd":
            return "; ".join(f"{x['num_images']} at {x['resolution']}²: {x['seconds']} s, host "
                             f"{x['peak_host_mb']:.0f} MB"
                             + (f", device {x['peak_device_mb']:.0f} MB" if "peak_device_mb" in x else "")
                             for x in r.get("runs", []))  # fmt: skip
        if name == "fid":
            return f"{r['images_per_second']} img/s at {r['resolution']}² (batch {r['batch']})"
        if name == "ddp":
            return (f"{r['backend']}: group {r['process_group_seconds']} s, views {r['ddp_views_seconds']} s, "
                    f"first step {r['first_step_seconds']} s, then {r['later_step_seconds']} s")  # fmt: skip
    except (KeyError, TypeError, ValueError):
        pass
    return ""


def print_table(report: dict[str, Any]) -> None:
    print(f"gpu_check on {report['device']} ({report['cpu']}), quick={report['quick']}, {report['seconds']:.0f} s")
    print(f"{'stage':<12} {'status':<8} {'seconds':>8} {'box':>5}  figures")
    for name, stage in report["stages"].items():
        line = summary(name, stage) if stage["status"] in ("ok", "timeout", "failed") else ""
        note = f"  [{stage['error']}]" if "error" in stage else ""
        print(f"{name:<12} {stage['status']:<8} {stage['seconds']:>8.1f} {stage['budget_s']:>5.0f}  {line}{note}")
    sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda or cpu")
    parser.add_argument("--quick", action="store_true", help="every stage small (the test suite runs this on the CPU)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--only", default="", help="comma-separated stages to run (default: all)")
    parser.add_argument("--budget", action="append", default=[], help="STAGE=SECONDS: another time box")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device not in ("cuda", "cpu"):
        parser.error(f"--device must be auto, cuda or cpu, got {args.device!r}")
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(STAGES)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s) {unknown}: choose from {', '.join(STAGES)}")
    args.stages = chosen
    args.budgets = {name: STAGES[name][1 if args.quick else 0] for name in STAGES}
    for item in args.budget:
        name, _, seconds = item.partition("=")
        if name not in STAGES or not seconds:
            parser.error(f"--budget takes STAGE=SECONDS, got {item!r}")
        args.budgets[name] = float(seconds)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.device == "cpu":  # forked stages share these imports instead of paying for them eight times
        for module in ("bench_train", "pggan.__main__", "pggan.metrics.fid", "pggan.metrics.swd"):
            importlib.import_module(module)
    with tempfile.TemporaryDirectory(prefix="pggan-gpu-check-") as scratch:
        if args.workdir is None:
            args.workdir = scratch
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        stages = {}
        for name in args.stages:
            stages[name] = run_stage(name, args, args.budgets[name])
            print(f"{name}: {stages[name]['status']} ({stages[name]['seconds']:.0f} s)", file=sys.stderr, flush=True)
            if args.workdir != scratch:
                continue
            stages[name]["log"] = stages[name]["log"].replace(scratch, "<scratch>")
        report = {
            "tool": "gpu_check",
            "device": args.device,
            "quick": args.quick,
            "cpu": cpu_model(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.perf_counter() - started, 1),
            "stages": stages,
        }
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
