"""A curated mutation check: one-line changes to the method that the fast tests must catch.

Each entry changes one line of the package (a paper constant, a fade, the penalty space, an estimator, …) in a
scratch copy of the checkout, runs the tests named beside it there, and counts the entry *caught* when they
fail. A missed entry means the suite would let that change to the method through: the check exits 1.

    python tools/mutation_check.py                 # every entry, 2 at a time (about 4 minutes here)
    python tools/mutation_check.py --only ema      # entries whose name contains "ema"
    python tools/mutation_check.py --list          # the entries and their tests
    python tools/mutation_check.py --smoke         # one entry (what the fast suite runs)

New method code adds its entries to MUTATIONS. The unmutated copy must pass every named test first (otherwise a
"caught" would mean nothing); that baseline runs before the entries.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("pggan", "tests", "tools", "pytest.ini", "datasets/sample", "README.md")


@dataclass(frozen=True)
class Mutation:
    """Replace the one occurrence of ``old`` in ``path`` by ``new``; ``tests`` (pytest node ids) must then fail."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


CONST = "tests/test_method_constants.py"
MECH = "tests/test_training_mechanisms.py"
ACCEL = "tests/test_accelerator_paths.py"

MUTATIONS: list[Mutation] = [
    # ---- the paper's constants (official config.py, networks.py, loss.py)
    Mutation("latent size 256", "pggan/defaults.py", "LATENT_SIZE = 512", "LATENT_SIZE = 256", (CONST,)),
    Mutation("fmap base 4096", "pggan/defaults.py", "FMAP_BASE = 8192", "FMAP_BASE = 4096", (CONST,)),
    Mutation("fmap max 256", "pggan/defaults.py", "FMAP_MAX = 512", "FMAP_MAX = 256", (CONST,)),
    Mutation("mbstd group 2", "pggan/defaults.py", "MBSTD_GROUP_SIZE = 4", "MBSTD_GROUP_SIZE = 2", (CONST,)),
    Mutation("learning rate 0.002", "pggan/defaults.py", "LEARNING_RATE = 0.001", "LEARNING_RATE = 0.002", (CONST,)),
    Mutation("adam beta2 0.9", "pggan/defaults.py", "ADAM_BETAS = (0.0, 0.99)", "ADAM_BETAS = (0.0, 0.9)", (CONST,)),
    Mutation("adam eps 1e-6", "pggan/defaults.py", "ADAM_EPS = 1e-8", "ADAM_EPS = 1e-6", (CONST,)),
    Mutation("ema beta 0.99", "pggan/defaults.py", "EMA_BETA = 0.999", "EMA_BETA = 0.99", (CONST, MECH)),
    Mutation(
        "gp lambda 1", "pggan/defaults.py", "GP_LAMBDA = 10.0", "GP_LAMBDA = 1.0", (CONST, "tests/test_losses.py")
    ),
    Mutation("gp target 2", "pggan/defaults.py", "GP_TARGET = 1.0", "GP_TARGET = 2.0", (CONST, "tests/test_losses.py")),
    Mutation("drift 0.01", "pggan/defaults.py", "DRIFT_EPSILON = 0.001", "DRIFT_EPSILON = 0.01", (CONST,)),
    Mutation("tick kimg at 4x4", "pggan/defaults.py", "{4: 160, 8: 140", "{4: 150, 8: 140", (CONST,)),
    Mutation("swd images 8192", "pggan/defaults.py", "SWD_IMAGES = 16384", "SWD_IMAGES = 8192", (CONST,)),
    Mutation(
        "fade 500 kimg",
        "pggan/defaults.py",
        "FADE_KIMG = 600.0",
        "FADE_KIMG = 500.0",
        ("tests/test_presets.py",),
    ),
    Mutation(
        "total 10000 kimg",
        "pggan/defaults.py",
        "TOTAL_KIMG = 12000.0",
        "TOTAL_KIMG = 10000.0",
        ("tests/test_presets.py",),
    ),
    Mutation(
        "1-gpu batch at 128x128",
        "pggan/training/presets.py",
        "64: 32, 128: 16, 256: 8, 512: 4}",
        "64: 32, 128: 8, 256: 8, 512: 4}",
        ("tests/test_presets.py",),
    ),
    Mutation("lrelu slope 0.1", "pggan/model/layers.py", "LRELU_SLOPE = 0.2", "LRELU_SLOPE = 0.1", (CONST,)),
    Mutation(
        "pixel norm eps 1e-4", "pggan/model/layers.py", "PIXEL_NORM_EPS = 1e-8", "PIXEL_NORM_EPS = 1e-4", (CONST,)
    ),
    Mutation("he gain 1", "pggan/model/layers.py", "HE_GAIN = math.sqrt(2.0)", "HE_GAIN = 1.0", (CONST,)),
    Mutation(
        "pixel norm over width",
        "pggan/model/layers.py",
        "x.square().mean(dim=1, keepdim=True)",
        "x.square().mean(dim=3, keepdim=True)",
        ("tests/test_layers.py",),
    ),
    Mutation(
        "latent not normalised",
        "pggan/model/networks.py",
        "self.blocks[0](pixel_norm(z))",
        "self.blocks[0](z)",
        ("tests/test_official.py",),
    ),
    Mutation(
        "first dense gain",
        "pggan/model/networks.py",
        "gain=math.sqrt(2.0) / 4",
        "gain=math.sqrt(2.0)",
        ("tests/test_official.py",),
    ),
    # ---- the fades of G, D and the reals
    Mutation(
        "G fade off",
        "pggan/model/networks.py",
        "return torch.lerp(old, new, alpha)",
        "return new",
        ("tests/test_networks.py",),
    ),
    Mutation(
        "D fade off", "pggan/model/networks.py", "h = torch.lerp(old, h, alpha)", "h = h", ("tests/test_networks.py",)
    ),
    Mutation(
        "reals not faded",
        "pggan/training/step.py",
        "return torch.lerp(upsample2x(downsample2x(reals)), reals, alpha)",
        "return reals",
        (CONST, MECH),
    ),
    Mutation(
        "reals faded the wrong way",
        "pggan/training/step.py",
        "return torch.lerp(upsample2x(downsample2x(reals)), reals, alpha)",
        "return torch.lerp(reals, upsample2x(downsample2x(reals)), alpha)",
        (CONST, MECH),
    ),
    # ---- the loss and the penalty space
    Mutation(
        "penalty in native space",
        "pggan/training/step.py",
        'max_resolution / resolution if gp_space == "official" else 1.0',
        "1.0",
        ("tests/test_gp_official.py",),
    ),
    Mutation(
        "drift on |D|",
        "pggan/model/losses.py",
        "real_scores.square() * drift",
        "real_scores.abs() * drift",
        ("tests/test_losses.py",),
    ),
    Mutation(
        "wgan sign",
        "pggan/model/losses.py",
        "(fake_scores - real_scores + penalty",
        "(real_scores - fake_scores + penalty",
        ("tests/test_losses.py",),
    ),
    # ---- the step: Adam resets, EMA
    Mutation(
        "no adam reset",
        "pggan/training/trainer.py",
        "            reset_optimizer(self.gan.g_optimizer)\n",
        "            pass\n",
        ("tests/test_train_loop.py::test_optimizer_moments_reset_at_every_phase_start",),
    ),
    Mutation(
        "adam reset only when a fade starts",
        "pggan/training/trainer.py",
        "if phase.index != self.progress.optimizer_phase:",
        "if phase.index != self.progress.optimizer_phase and phase.fading:",
        ("tests/test_train_loop.py::test_optimizer_moments_reset_at_every_phase_start",),
    ),
    Mutation(
        "ema update weight",
        "pggan/training/step.py",
        "torch._foreach_lerp_(state.ema_pairs[0], state.ema_pairs[1], 1.0 - ema_beta)",
        "torch._foreach_lerp_(state.ema_pairs[0], state.ema_pairs[1], 0.01)",
        (MECH,),
    ),
    # ---- data: mirror, pyramid rounding, the batch stream position
    Mutation(
        "no mirror flips",
        "pggan/data/loader.py",
        "mirror = torch.rand(count, generator=generator) < 0.5",
        "mirror = torch.rand(count, generator=generator) < 0.0",
        ("tests/test_data.py",),
    ),
    Mutation(
        "mirror off in the official preset",
        "pggan/training/presets.py",
        "    mirror=True,  # config.py",
        "    mirror=False,  # config.py",
        ("tests/test_presets.py",),
    ),
    Mutation(
        "pyramid floors",
        "pggan/data/pyramid.py",
        "levels[exact.shape[0]] = np.rint(exact)",
        "levels[exact.shape[0]] = np.floor(exact)",
        ("tests/test_prepare.py",),
    ),
    Mutation(
        "batch stream skips a batch",
        "pggan/data/loader.py",
        "first = self.start + k * self.batch_size + self.offset",
        "first = self.start + (k + 1) * self.batch_size + self.offset",
        ("tests/test_data.py",),
    ),
    # ---- resume state
    Mutation(
        "noise rng not restored",
        "pggan/model/checkpoint.py",
        '    noise.set_state(state["noise_rng"])\n',
        "    pass\n",
        ("tests/test_train_loop.py::test_resume_is_bitwise_exact_from_any_point",),
    ),
    # ---- the SWD and FID estimators
    Mutation(
        "swd half the directions",
        "pggan/metrics/swd.py",
        "DIRS_PER_REPEAT = 128",
        "DIRS_PER_REPEAT = 64",
        (CONST, "tests/test_swd.py"),
    ),
    Mutation(
        "swd 64 patches",
        "pggan/metrics/swd.py",
        "NHOODS_PER_IMAGE = 128",
        "NHOODS_PER_IMAGE = 64",
        (CONST, "tests/test_swd.py"),
    ),
    Mutation(
        "swd 5x5 patches", "pggan/metrics/swd.py", "NHOOD_SIZE = 7", "NHOOD_SIZE = 5", (CONST, "tests/test_swd.py")
    ),
    Mutation(
        "fid biased covariance",
        "pggan/metrics/fid.py",
        "sigma = (self.m2 / (self.count - 1))",
        "sigma = (self.m2 / self.count)",
        (CONST, "tests/test_fid.py"),
    ),
    # ---- the run's timeline (resume keeps every cadence)
    Mutation(
        "timeline forgets saved cadences",
        "pggan/training/timeline.py",
        "elif saved.get(name) is not None:",
        "elif False:",
        ("tests/test_train_loop.py::test_stopped_and_resumed_run_keeps_tick_and_swd_cadence",),
    ),
    # ---- pictures: the seed rule, SeFa
    Mutation(
        "seed rule off by one",
        "pggan/pictures/latents.py",
        "        rng.seed(seed)\n",
        "        rng.seed(seed + 1)\n",
        ("tests/test_pictures_latents.py",),
    ),
    Mutation(
        "sefa rows not normalised",
        "pggan/pictures/directions.py",
        "    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-300)\n",
        "",
        ("tests/test_pictures_directions.py",),
    ),
    Mutation(
        "sefa ascending eigenvalues",
        "pggan/pictures/directions.py",
        "order = torch.argsort(values, descending=True, stable=True)",
        "order = torch.argsort(values, descending=False, stable=True)",
        ("tests/test_pictures_directions.py",),
    ),
    # ---- the importer and atomic writes
    Mutation(
        "import kernel not flipped",
        "pggan/official/importer.py",
        "np.ascontiguousarray(w[::-1, ::-1].transpose(2, 3, 0, 1)",
        "np.ascontiguousarray(w.transpose(2, 3, 0, 1)",
        ("tests/test_official.py",),
    ),
    Mutation(
        "writes not atomic",
        "pggan/atomic.py",
        'fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)',
        "tmp_name = str(path); fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)",
        ("tests/test_atomic.py", "tests/test_checkpoint.py::test_refused_write_is_one_error_and_keeps_the_old_file"),
    ),
    # ---- the accelerator paths (pggan.devices.DevicePolicy), run on the CPU as a GPU runs them
    Mutation(
        "autocast off",
        "pggan/devices.py",
        "            return torch.autocast(self.device.type, dtype=AMP_DTYPE)\n",
        "            return contextlib.nullcontext()\n",
        (ACCEL + "::test_bf16_step_runs_under_autocast_and_stays_near_float32",),
    ),
    Mutation(
        "autocast on cuda only",
        "pggan/devices.py",
        "torch.autocast(self.device.type, dtype=AMP_DTYPE)",
        'torch.autocast("cuda", dtype=AMP_DTYPE)',
        (ACCEL + "::test_bf16_step_runs_under_autocast_and_stays_near_float32",),
    ),
    Mutation(
        "penalty norm in bf16",
        "pggan/model/losses.py",
        "norms = grad.flatten(1).to(torch.promote_types(grad.dtype, torch.float32)).norm(dim=1)",
        "norms = grad.flatten(1).norm(dim=1)",
        (ACCEL + "::test_gradient_penalty_norm_is_float32_for_bf16_images",),
    ),
    Mutation(
        "bf16 fakes not cast for the penalty",
        "pggan/model/losses.py",
        "torch.lerp(reals.detach(), fakes.detach().to(reals.dtype), u)",
        "torch.lerp(reals.detach(), fakes.detach(), u)",
        (ACCEL + "::test_bf16_fakes_meet_float32_reals_in_the_penalty",),
    ),
    Mutation(
        "channels-last off",
        "pggan/devices.py",
        "return torch.channels_last if self.channels_last else torch.contiguous_format",
        "return torch.contiguous_format",
        (ACCEL + "::test_channels_last_state_trains_like_a_contiguous_one",),
    ),
    Mutation(
        "reals not channels-last in the step",
        "pggan/training/step.py",
        "reals = inputs.reals.to(device, memory_format=policy.memory_format, non_blocking=True)",
        "reals = inputs.reals.to(device, non_blocking=True)",
        (ACCEL + "::test_channels_last_state_trains_like_a_contiguous_one",),
    ),
    Mutation(
        "grids and metrics in batches of 64",
        "pggan/training/trainer.py",
        "return generation_batch_size(self.schedule.batch_sizes()[resolution] // self.job.world_size)",
        "return generation_batch_size()",
        ("tests/test_memory_bounds.py",),
    ),
]


@dataclass
class Outcome:
    name: str
    caught: bool
    seconds: float
    tests: tuple[str, ...]
    detail: str


def make_copy(dest: Path) -> Path:
    """A scratch copy of what the tests need; its ``pggan`` is imported ahead of the installed one."""
    for rel in COPIED:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[bool, str]:
    """True when the tests pass in ``copy``; the failing test (or pytest's last line) as the detail."""
    env = {**os.environ, "PYTHONPATH": str(copy), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider", "-m", "not slow", *tests]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    lines = [x for x in done.stdout.splitlines() if x.strip()]
    failed = [x.split()[1] for x in lines if x.startswith("FAILED ")]
    detail = failed[0] if failed else (lines[-1] if lines else done.stderr.strip()[-200:])
    return done.returncode == 0, detail


def apply(copy: Path, mutation: Mutation) -> str:
    """Apply ``mutation`` in ``copy``; returns the original text for restoring."""
    path = copy / mutation.path
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise SystemExit(f"mutation {mutation.name!r}: {mutation.old!r} occurs {count} times in {mutation.path}")
    path.write_text(text.replace(mutation.old, mutation.new))
    return text


def check(copy: Path, mutation: Mutation, timeout: float) -> Outcome:
    start = time.perf_counter()
    original = apply(copy, mutation)
    try:
        passed, detail = run_tests(copy, mutation.tests, timeout)
    finally:
        (copy / mutation.path).write_text(original)
    return Outcome(mutation.name, not passed, time.perf_counter() - start, mutation.tests, detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the entries whose name contains this text")
    parser.add_argument("--jobs", type=int, default=2, help="entries checked at once (one scratch copy each)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per entry before it counts as caught")
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    parser.add_argument("--smoke", action="store_true", help="one entry only (the tools' smoke test)")
    args = parser.parse_args(argv)

    chosen = [m for m in MUTATIONS if args.only in m.name]
    if args.smoke:
        chosen = [m for m in MUTATIONS if m.name == "ema beta 0.99"]
    if not chosen:
        print(f"no entry matches {args.only!r}", file=sys.stderr)
        return 1
    for m in chosen:  # every entry must still apply to today's code: fail before any test runs
        text = (ROOT / m.path).read_text() if (ROOT / m.path).is_file() else ""
        if text.count(m.old) != 1:
            print(f"mutation {m.name!r} no longer applies: {m.old!r} not found once in {m.path}", file=sys.stderr)
            return 1
    if args.list:  # also the fast suite's check that every entry still applies to today's code
        for m in chosen:
            print(f"{m.name:36s} {m.path:28s} {' '.join(m.tests)}")
        return 0

    started = time.perf_counter()
    jobs = max(1, min(args.jobs, len(chosen)))
    with tempfile.TemporaryDirectory(prefix="pggan-mutation-") as tmp:
        copies = [make_copy(Path(tmp) / f"copy{i}") for i in range(jobs)]
        baseline_tests = tuple(sorted({t for m in chosen for t in m.tests}))
        ok, detail = run_tests(copies[0], baseline_tests, args.timeout * 4)
        if not ok:
            print(f"the unmutated tests fail, nothing to compare: {detail}", file=sys.stderr)
            return 1
        free = list(copies)
        outcomes: list[Outcome] = []

        def worker(mutation: Mutation) -> Outcome:
            copy = free.pop()
            try:
                return check(copy, mutation, args.timeout)
            finally:
                free.append(copy)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for outcome in pool.map(worker, chosen):
                outcomes.append(outcome)
                mark = "caught" if outcome.caught else "MISSED"
                print(f"{mark:7s} {outcome.name:36s} {outcome.seconds:6.1f} s  {outcome.detail}", flush=True)
    missed = [o for o in outcomes if not o.caught]
    total = time.perf_counter() - started
    print(f"{len(outcomes) - len(missed)} caught, {len(missed)} missed of {len(outcomes)} in {total:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"seconds": total, "outcomes": [asdict(o) for o in outcomes]}, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
