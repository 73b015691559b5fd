"""--msssim-kimg during training and pggan-eval over a short real run: the values the per-checkpoint tools give."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pggan.cli import eval_command, fid_command, msssim_command, swd_command, train_command
from pggan.metrics import evaluate
from pggan.metrics.dataset_metrics import DatasetMSSSIM

TINY = [
    "--fmap-base", "32", "--fmap-max", "8", "--latent-size", "8", "--device", "cpu", "--workers", "0",
    "--batch-schedule", "4:8,8:8,16:8", "--fade-kimg", "0.016", "--stable-kimg", "0.016",
    "--tick-kimg", "0.016", "--snapshot-kimg", "0.032", "--grid-size", "2",
]  # fmt: skip
SEED = 2
COUNT = 16  # images per metric, in training and here, so training's real-side caches are reused


def invoke(command, *args):
    return CliRunner().invoke(command, [str(a) for a in args])


@pytest.fixture(scope="module")
def run_dir(faces16, tmp_path_factory):
    """16×16 by kimg 0.08: checkpoint-0.032 (8×8), -0.064 and -0.080 (16×16, the last also latest.pt); MS-SSIM and
    SWD logged at 0.064."""
    out = tmp_path_factory.mktemp("runs")
    args = ["--data", faces16, "--resolution", 16, "--out", out, "--run-name", "r", *TINY, "--total-kimg", 0.08,
            "--seed", SEED, "--msssim-kimg", 0.064, "--msssim-images", COUNT, "--swd-kimg", 0.064,
            "--swd-images", COUNT]  # fmt: skip
    result = CliRunner().invoke(train_command, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out / "r"


def test_msssim_during_training_is_logged_and_reproduced_by_pggan_msssim(run_dir, faces16, tmp_path):
    ticks = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    logged = [t for t in ticks if "msssim" in t]
    assert [t["kimg"] for t in logged] == [0.064]
    assert set(logged[0]["msssim"]) == {"fake", "real"}
    cached = json.loads((run_dir / "msssim-reals-16.json").read_text())
    assert cached["msssim"] == logged[0]["msssim"]["real"] and cached["num_pairs"] == COUNT // 2
    fake, real = tmp_path / "fake.json", tmp_path / "real.json"
    common = ["--num-images", COUNT, "--seed", SEED, "--quiet", "--json"]
    assert invoke(msssim_command, run_dir / "checkpoint-000000.064.pt", *common, fake).exit_code == 0
    assert invoke(msssim_command, faces16, "--resolution", 16, *common, real).exit_code == 0
    assert json.loads(fake.read_text())["msssim"] == logged[0]["msssim"]["fake"]
    assert json.loads(real.read_text())["msssim"] == logged[0]["msssim"]["real"]


def test_training_refuses_an_odd_msssim_count(faces16, tmp_path):
    args = ["--data", faces16, "--resolution", 16, "--out", tmp_path, *TINY, "--msssim-kimg", 0.032,
            "--msssim-images", 9]  # fmt: skip
    result = invoke(train_command, *args)
    assert result.exit_code != 0 and "--msssim-images must be even" in result.output
    assert not any(tmp_path.iterdir())  # refused before the run directory was made


def swd_avg(path, dataset, tmp_path):
    out = tmp_path / f"swd-{path.name}.json"
    result = invoke(swd_command, dataset, path, "--num-images", COUNT, "--seed", SEED, "--json", out, "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["swd"]


def test_eval_rows_equal_pggan_swd_and_pggan_msssim_and_reuse_training_caches(run_dir, faces16, tmp_path):
    caches = {name: (run_dir / name).stat().st_mtime_ns for name in ("swd-reals-16.pt", "msssim-reals-16.json")}
    report_path = tmp_path / "eval.json"
    result = invoke(eval_command, run_dir, "--num-images", COUNT, "--swd-levels", "--json", report_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["kimg", "res", "alpha", "seconds", "SWD-16", "SWD-avg", "MS-SSIM", "MS-SSIM-real"]
    report = json.loads(report_path.read_text())
    rows = report["rows"]
    assert [(r["checkpoint"], r["kimg"], r["resolution"]) for r in rows] == [
        ("checkpoint-000000.032.pt", 0.032, 8),
        ("checkpoint-000000.064.pt", 0.064, 16),
        ("checkpoint-000000.080.pt", 0.08, 16),  # latest.pt holds the same position: no row of its own
    ]
    assert report["seed"] == SEED  # the run's own seed by default
    assert rows[0]["swd"] is None and rows[0]["msssim"] is None  # 8×8: below what both metrics take
    assert lines[2].split()[4:] == ["—"] * 4
    for row in rows[1:]:
        path = run_dir / row["checkpoint"]
        assert row["swd"] == swd_avg(path, faces16, tmp_path)
        out = tmp_path / f"m-{row['checkpoint']}.json"
        assert invoke(msssim_command, path, "--num-images", COUNT, "--seed", SEED, "--json", out).exit_code == 0
        assert row["msssim"]["fake"] == json.loads(out.read_text())["msssim"]
    assert {name: (run_dir / name).stat().st_mtime_ns for name in caches} == caches  # training's, reused
    assert any(name.endswith(".eval") for name in os.listdir(run_dir))  # the TensorBoard events of the evaluation


def test_a_rerun_after_an_interruption_reuses_finished_rows(run_dir, tmp_path, monkeypatch):
    store = run_dir / evaluate.STORE_NAME
    store.unlink(missing_ok=True)
    calls = []
    original = DatasetMSSSIM.evaluate

    def interrupted(self, generator, resolution, alpha):
        calls.append(resolution)
        if len(calls) == 3:  # the third checkpoint: Ctrl-C
            raise KeyboardInterrupt
        return original(self, generator, resolution, alpha)

    monkeypatch.setattr(DatasetMSSSIM, "evaluate", interrupted)
    args = dict(metrics="msssim", num_images=COUNT, json_path=tmp_path / "a.json", echo=lambda line: None)
    with pytest.raises(KeyboardInterrupt):
        evaluate.evaluate_run(run_dir, **args)
    done = [json.loads(line) for line in store.read_text().splitlines()]
    assert [d["checkpoint"] for d in done] == ["checkpoint-000000.032.pt", "checkpoint-000000.064.pt"]
    calls.clear()
    printed = []
    report = evaluate.evaluate_run(run_dir, **{**args, "echo": printed.append})
    assert calls == [16]  # only the last checkpoint was evaluated again
    assert [r["msssim"] for r in report["rows"][:2]] == [d["value"] for d in done]
    assert len(printed) == 1 + 3  # the header, then a row per checkpoint
    monkeypatch.setattr(DatasetMSSSIM, "evaluate", original)
    calls.clear()
    again = evaluate.evaluate_run(run_dir, **{**args, "num_images": COUNT + 2})  # other settings: computed anew
    assert again["rows"][2]["msssim"] != report["rows"][2]["msssim"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "swd,is"], "unknown metric 'is'"),
        (["--metrics", "swd,fid"], "--metrics fid needs --inception PATH"),
        (["--num-images", 7], "--num-images must be even"),
        (["--data", "/nonexistent/dataset"], "not found"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(run_dir, tmp_path, args, message):
    before = sorted(os.listdir(run_dir))
    result = invoke(eval_command, run_dir, *args, "--json", tmp_path / "e.json")
    assert result.exit_code != 0 and message in result.output, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert sorted(os.listdir(run_dir)) == before and not (tmp_path / "e.json").exists()


def test_a_folder_without_checkpoints_is_refused(tmp_path):
    result = invoke(eval_command, tmp_path)
    assert result.exit_code != 0 and "no checkpoint-*.pt or latest.pt" in result.output
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # Inception on a few images and four 2048-dimensional matrix square roots
def test_eval_fid_equals_pggan_fid_per_checkpoint(run_dir, faces16, tmp_path):
    from pggan.metrics import inception

    weights = tmp_path / "random-inception.pth"
    inception.write_random_weights(weights, seed=0)
    report_path = tmp_path / "eval.json"
    result = invoke(eval_command, run_dir, "--metrics", "swd,fid", "--num-images", COUNT, "--inception", weights,
                    "--allow-unverified", "--json", report_path, "--no-tensorboard")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(report_path.read_text())["rows"]
    assert (run_dir / "fid-reals-16.npz").is_file() and (run_dir / "fid-reals-8.npz").is_file()
    for row in rows:
        path = run_dir / row["checkpoint"]
        out = tmp_path / f"fid-{row['checkpoint']}.json"
        fid = invoke(fid_command, faces16, path, "--inception", weights, "--allow-unverified", "--num-images",
                     COUNT, "--seed", SEED, "--resolution", row["resolution"], "--json", out, "--quiet")  # fmt: skip
        assert fid.exit_code == 0, fid.output
        assert row["fid"] == json.loads(out.read_text())["fid"]
        if row["resolution"] >= 16:
            assert row["swd"] == swd_avg(path, faces16, tmp_path)


def test_latest_has_a_row_of_its_own_when_no_snapshot_holds_its_position(run_dir, tmp_path):
    import shutil

    for name in ("checkpoint-000000.032.pt", "latest.pt", "options.json"):
        shutil.copy(run_dir / name, tmp_path / name)
    snapshots, latest = evaluate.list_snapshots(tmp_path, warn=print)
    assert [(s.path.name, s.images_shown) for s in snapshots] == [("checkpoint-000000.032.pt", 32), ("latest.pt", 80)]
    assert latest is not None and snapshots[1].state is latest  # loaded once, for its position and its row
    (tmp_path / "latest.pt").write_bytes(b"damaged")
    warnings = []
    snapshots, _ = evaluate.list_snapshots(tmp_path, warn=warnings.append)
    assert [s.path.name for s in snapshots] == ["checkpoint-000000.032.pt"]
    assert warnings and "skipped latest.pt" in warnings[0]


def test_python_dash_m_pggan_knows_both_commands():
    from pggan.__main__ import main

    for name in ("msssim", "eval"):
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_store_ignores_torn_lines(tmp_path):
    path = tmp_path / evaluate.STORE_NAME
    entry = {"checkpoint": "latest.pt", "images_shown": 5, "metric": "fid", "settings": {"seed": 0}, "value": 1.5}
    path.write_text(json.dumps(entry) + "\n" + '{"checkpoint": "lat')
    store = evaluate.RowStore(Path(path))
    assert store.get("latest.pt", 5, "fid", {"seed": 0})["value"] == 1.5
    assert store.get("latest.pt", 5, "fid", {"seed": 1}) is None
