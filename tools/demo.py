"""`make demo`: prepare the bundled sample faces, train a small net to 32×32 on the CPU, write a grid.

The bundled faces are grayscale but for two, so the demo trains on one channel (``--channels 1``): in the
same four minutes the grid then shows faces rather than colour noise. The net is narrow (32 feature maps)
and each phase short (10 kimg), so the EMA half-life is shortened to 2 kimg: with the paper's per-step
β = 0.999 the average would still be dominated by earlier phases.

It runs the same commands a user would (printed as it goes), takes a few
minutes on a 2-core CPU, and leaves everything in ``checkpoints/demo/``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATASET = REPO / "datasets" / "sample-gray-32"
RUN_DIR = REPO / "checkpoints" / "demo"

TRAIN_ARGS = [
    "--data", str(DATASET), "--resolution", "32", "--out", str(RUN_DIR.parent), "--run-name", RUN_DIR.name,
    "--device", "cpu", "--fmap-base", "256", "--fmap-max", "32", "--latent-size", "64",
    "--batch-schedule", "4:16,8:16,16:16,32:16", "--fade-kimg", "10", "--stable-kimg", "10", "--total-kimg", "70",
    "--ema-kimg", "2", "--tick-kimg", "5", "--snapshot-kimg", "20", "--grid-size", "6", "--mirror", "--workers", "1",
]  # fmt: skip


def run(command: str, *args: str) -> None:
    print(f"$ {command} {' '.join(args)}", flush=True)
    result = subprocess.run([str(BIN / command), *args])
    if result.returncode != 0:
        sys.exit(f"make demo: {command} failed (exit {result.returncode})")


def smoke_args(run_dir: Path, dataset: Path) -> list[str]:
    """The same pipeline at 8×8 with a tiny net for a few steps: what the tools test runs."""
    args = list(TRAIN_ARGS)
    values = {"--data": str(dataset), "--resolution": "8", "--out": str(run_dir.parent), "--fmap-base": "32",
              "--fmap-max": "8", "--latent-size": "8", "--batch-schedule": "4:8,8:8", "--fade-kimg": "0.016",
              "--stable-kimg": "0.016", "--total-kimg": "0.048", "--tick-kimg": "0.016", "--snapshot-kimg": "0.048",
              "--grid-size": "2", "--workers": "0"}  # fmt: skip
    for i, arg in enumerate(args[:-1]):
        if arg in values:
            args[i + 1] = values[arg]
    return [*args, "--no-tensorboard"]


def main() -> None:
    global DATASET, RUN_DIR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", type=Path, metavar="DIR", help="a few steps at 8×8 into DIR (the tools test)")
    args = parser.parse_args()
    train_args, resolution = TRAIN_ARGS, "32"
    if args.smoke:
        DATASET, RUN_DIR = args.smoke / "dataset", args.smoke / "run" / "demo"
        args.smoke.mkdir(parents=True, exist_ok=True)
        train_args, resolution = smoke_args(RUN_DIR, DATASET), "8"
    start = time.time()
    if (DATASET / "data.mdb").exists() and subprocess.run(
        [str(BIN / "pggan-prepare"), "--verify", str(DATASET)], capture_output=True
    ).returncode == 0:
        print(f"using the prepared dataset {shown(DATASET)}")
    else:
        run("pggan-prepare", str(REPO / "datasets" / "sample"), "--out", str(DATASET), "--resolution", resolution,
            "--channels", "1", "--overwrite", *(["--workers", "1"] if args.smoke else []))  # fmt: skip
    if RUN_DIR.exists():
        print(f"removing the previous demo run {shown(RUN_DIR)}")
        shutil.rmtree(RUN_DIR)
    run("pggan-train", *train_args)
    grids = sorted(RUN_DIR.glob("grid-*.png"))
    if not grids:
        sys.exit("make demo: training ended without writing a grid")
    print()
    print(f"make demo finished in {time.time() - start:.0f} s.")
    print(f"  image grid (EMA generator, {resolution}x{resolution}): {shown(grids[-1])}")
    print(f"  checkpoint:                        {shown(RUN_DIR / 'latest.pt')}")
    print(f"  training log:                      {shown(RUN_DIR / 'stats.jsonl')}")
    print(f"  more samples: pggan-sample {shown(RUN_DIR / 'latest.pt')} --grid samples.png")


def shown(path: Path) -> Path:
    """A path as the user should read it: relative to the checkout when inside it."""
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


if __name__ == "__main__":
    main()
