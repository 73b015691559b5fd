"""`make demo`: prepare the bundled sample faces, train a small net to 32×32 on the CPU, write a grid.

The bundled faces are grayscale but for two, so the demo trains on one channel (``--channels 1``): in the
same four minutes the grid then shows faces rather than colour noise. The net is narrow (32 feature maps)
and each phase short (10 kimg), so the EMA half-life is shortened to 2 kimg: with the paper's per-step
β = 0.999 the average would still be dominated by earlier phases.

It runs the same commands a user would (printed as it goes), takes a few
minutes on a 2-core CPU, and leaves everything in ``checkpoints/demo/``.
"""

from __future__ import annotations

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


def main() -> None:
    start = time.time()
    if (DATASET / "data.mdb").exists() and subprocess.run(
        [str(BIN / "pggan-prepare"), "--verify", str(DATASET)], capture_output=True
    ).returncode == 0:
        print(f"using the prepared dataset {DATASET.relative_to(REPO)}")
    else:
        run("pggan-prepare", str(REPO / "datasets" / "sample"), "--out", str(DATASET), "--resolution", "32",
            "--channels", "1", "--overwrite")  # fmt: skip
    if RUN_DIR.exists():
        print(f"removing the previous demo run {RUN_DIR.relative_to(REPO)}")
        shutil.rmtree(RUN_DIR)
    run("pggan-train", *TRAIN_ARGS)
    grids = sorted(RUN_DIR.glob("grid-*.png"))
    if not grids:
        sys.exit("make demo: training ended without writing a grid")
    grid = grids[-1].relative_to(REPO)
    print()
    print(f"make demo finished in {time.time() - start:.0f} s.")
    print(f"  image grid (EMA generator, 32x32): {grid}")
    print(f"  checkpoint:                        {(RUN_DIR / 'latest.pt').relative_to(REPO)}")
    print(f"  training log:                      {(RUN_DIR / 'stats.jsonl').relative_to(REPO)}")
    print(f"  more samples: pggan-sample {(RUN_DIR / 'latest.pt').relative_to(REPO)} --grid samples.png")


if __name__ == "__main__":
    main()
