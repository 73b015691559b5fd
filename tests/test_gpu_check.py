"""tools/gpu_check.py's own machinery: every stage boxed in time, a failing stage recorded while the rest run.

The stages themselves run small in tests/test_tools.py (``--device cpu --quick``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import gpu_check


def test_a_failing_or_overrunning_stage_is_recorded_and_the_next_stage_still_runs(tmp_path, monkeypatch, capsys):
    def fails(args, save):
        save({"done": 1})
        raise RuntimeError("no CUDA kernel image for this GPU\nsecond line")

    def overruns(args, save):
        save({"rows": ["first row"]})
        time.sleep(60)
        return {"rows": ["never"]}

    monkeypatch.setitem(gpu_check.STAGE_FUNCTIONS, "swd", fails)
    monkeypatch.setitem(gpu_check.STAGE_FUNCTIONS, "fid", overruns)
    monkeypatch.setitem(gpu_check.STAGE_FUNCTIONS, "ddp", lambda args, save: {"backend": "gloo"})
    out = tmp_path / "report.json"
    started = time.perf_counter()
    code = gpu_check.main(["--device", "cpu", "--only", "swd,fid,ddp", "--budget", "fid=2", "--json", str(out)])
    assert code == 0 and time.perf_counter() - started < 30
    stages = json.loads(out.read_text())["stages"]
    assert list(stages) == ["swd", "fid", "ddp"]
    assert stages["swd"]["status"] == "failed"
    assert stages["swd"]["error"] == "RuntimeError: no CUDA kernel image for this GPU"
    assert stages["swd"]["result"] == {"done": 1}  # what it finished before failing is kept
    assert stages["fid"]["status"] == "timeout" and stages["fid"]["result"] == {"rows": ["first row"]}
    assert stages["fid"]["budget_s"] == 2 and stages["fid"]["seconds"] < 15
    assert stages["ddp"] == {**stages["ddp"], "status": "ok", "result": {"backend": "gloo"}}
    table = capsys.readouterr().out
    assert "swd          failed" in table and "fid          timeout" in table and "ddp          ok" in table


def test_suite_counts_come_from_the_summary_or_from_the_progress_when_cut_off():
    finished = "....F.s\nFAILED tests/test_a.py::test_b - AssertionError\n1 failed, 5 passed, 1 skipped in 3.2s\n"
    counts = gpu_check.parse_pytest(finished)
    assert counts == {"passed": 5, "failed": 1, "skipped": 1, "errors": 0, "failing": ["tests/test_a.py::test_b"]}
    cut = gpu_check.parse_pytest("..s.F.....  [ 10%]\n....E  [ 20%]\n")
    assert (cut["passed"], cut["failed"], cut["skipped"], cut["errors"], cut["cut_off"]) == (12, 1, 1, 1, True)
