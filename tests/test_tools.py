"""Every script in tools/ runs: a tiny smoke run each, so a moved or renamed function breaks the suite, not a user.

A new script must add itself to SMOKE_RUNS (the last test checks that none is missing).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"

#: script -> the arguments of a tiny run ("{tmp}" becomes a scratch folder). Each must exit 0.
SMOKE_RUNS: dict[str, list[str]] = {
    "bench_data.py": ["--images-256", "2", "--images-1024", "1", "--workers", "1", "--loader-seconds", "0.1", "--json"],
    "bench_directions.py": ["--smoke", "--json"],
    "bench_explore.py": ["--smoke", "--json"],
    "bench_fid.py": ["--smoke"],
    "bench_msssim.py": ["--smoke"],
    "bench_import.py": ["--smoke", "--workdir", "{tmp}", "--rows", "1", "--cols", "1"],
    "bench_sample.py": [
        "--resolution",
        "8",
        "--frames",
        "2",
        "--batch-sizes",
        "1",
        "--fmap-max",
        "8",
        "--device",
        "cpu",
    ],
    "bench_swd.py": [
        "--num-images",
        "16",
        "--resolution",
        "16",
        "--big-num-images",
        "0",
        "--seeds",
        "0",
        "--no-baseline",
    ],
    "bench_train.py": [
        "--res",
        "8",
        "--fmap-max",
        "8",
        "--batch",
        "4",
        "--latent-size",
        "8",
        "--warmup",
        "0",
        "--steps",
        "1",
        "--device",
        "cpu",
        "--json",
    ],
    "demo.py": ["--smoke", "{tmp}"],
    "gpu_check.py": ["--device", "cpu", "--quick", "--json", "{tmp}/gpu-check.json"],
    "machine.py": [],
    "mutation_check.py": ["--list"],
    "soak_train.py": ["--help"],  # minutes of training with a second, CPU-heavy process: its parts are tested
}


@pytest.mark.parametrize("script", sorted(SMOKE_RUNS))
def test_tool_runs(script, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in SMOKE_RUNS[script]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, str(TOOLS / script), *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, f"{script} {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    if script == "gpu_check.py":  # every stage ran, small, on the CPU, and the report says so
        report = json.loads((tmp_path / "gpu-check.json").read_text())
        stages = report["stages"]
        assert list(stages) == ["environment", "suite", "bench", "memory", "train", "swd", "fid", "ddp"]
        assert {name: stage["status"] for name, stage in stages.items()} == dict.fromkeys(stages, "ok"), stages
        assert stages["suite"]["result"]["passed"] > 0 and stages["suite"]["result"]["failed"] == 0
        assert {row["variant"] for row in stages["bench"]["result"]["rows"]} == {"fp32", "tf32", "bf16+cl"}
        assert stages["train"]["result"]["resumed_equals_one_go"] is True
        for name, stage in stages.items():  # a result each, and a line in the printed table
            assert stage["result"] and f"\n{name:<12} ok" in done.stdout
        return
    if "--json" in args and script != "mutation_check.py":
        last_line_json = script in ("bench_train.py", "bench_directions.py", "bench_explore.py")
        json.loads(done.stdout.strip().splitlines()[-1] if last_line_json else done.stdout)


def test_every_tool_has_a_smoke_run():
    scripts = {p.name for p in TOOLS.glob("*.py")}
    assert scripts == set(SMOKE_RUNS), f"add to SMOKE_RUNS: {sorted(scripts - set(SMOKE_RUNS))}"
