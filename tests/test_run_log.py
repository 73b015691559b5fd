"""RunLog: the one owner of a run's console lines, stats.jsonl and TensorBoard events, on real files."""

import json

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pggan.training.run_log import RunLog


def record(tick, kimg, **extra):
    return {
        "tick": tick, "kimg": kimg, "step": tick * 10, "resolution": 16, "alpha": 0.5, "batch": 8, "d_loss": 0.25,
        "g_loss": -0.5, "sec_per_kimg": 2.0, "img_per_s": 500.0, "total_seconds": 1.0, "memory_mb": 100.0, **extra,
    }  # fmt: skip


def scalars(run_dir):
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}, events


def test_a_tick_goes_to_every_output(tmp_path):
    lines = []
    log = RunLog(tmp_path, tensorboard=True, console=lines.append)
    tick = record(0, 0.016, swd={"16": 12.5, "avg": 10.0}, fid=42.0)
    log.append(tick)
    log.show(tick, 16)
    log.add_grid(np.zeros((8, 8, 3), dtype=np.uint8), 16)
    log.close()
    assert [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()] == [tick]
    assert lines[0].startswith("tick 0") and "D +0.250" in lines[0] and "img/s 500.0" in lines[0]
    assert lines[1] == "SWD x1e3 at 16x16  16: 12.50  avg: 10.00" and lines[2] == "FID at 16x16  42.000"
    values, events = scalars(tmp_path)
    assert values["train/d_loss"] == [(16, 0.25)] and values["swd/16"] == [(16, 12.5)] and values["fid"] == [(16, 42.0)]
    assert "train/tick" not in values and "train/step" not in values  # counters are not curves
    assert events.Tags()["images"] == ["ema_grid"]


def test_without_tensorboard_no_event_file(tmp_path):
    log = RunLog(tmp_path, tensorboard=False, console=lambda line: None)
    log.append(record(0, 0.016))
    log.show(record(0, 0.016), 16)
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.jsonl"]


def test_resume_forgets_what_was_logged_past_the_checkpoint(tmp_path):
    log = RunLog(tmp_path, tensorboard=True, console=lambda line: None)
    for tick, kimg in enumerate((0.016, 0.032, 0.048)):
        log.append(record(tick, kimg))
        log.show(record(tick, kimg), round(kimg * 1000))
    log.close()
    with open(tmp_path / "stats.jsonl", "a") as handle:
        handle.write('{"tick": 3, "kimg": 0.0')  # torn by a crash
    resumed = RunLog(tmp_path, tensorboard=True, console=lambda line: None)
    resumed.resume_at(32)  # the checkpoint the run continues from
    assert [json.loads(line)["kimg"] for line in (tmp_path / "stats.jsonl").read_text().splitlines()] == [0.016, 0.032]
    resumed.append(record(2, 0.048))
    resumed.show(record(2, 0.048, d_loss=0.75), 48)
    resumed.close()
    values, _ = scalars(tmp_path)
    assert values["train/d_loss"] == [(16, 0.25), (32, 0.25), (48, 0.75)]  # the old step 48 was purged
