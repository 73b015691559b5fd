"""Hostile checkpoints, image sources, datasets and FID statistics; non-finite training steps.

Real crafted files only (``tests.hostile_files``): checkpoints whose configs claim gigabytes, stride-0 tensors,
deflated members and fields of every wrong type; a FIFO, ``/dev/zero`` behind a symlink, sparse and zip-bomb
files, names with newlines; a data.mdb beside a user's thesis; statistics files with forged headers. Commands
run through the real entry point in a subprocess under an address-space cap, and every refusal must be exit
code 1, exactly one ``Error:`` line, no traceback and nothing written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pggan.data.prepare import prepare_dataset
from pggan.data.pyramid import read_meta
from pggan.errors import UserError
from tests import hostile_files as H

CAP = H.TORCH_BASELINE + 1 * H.GIB
SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "sample"


# ---------------------------------------------------------------------------------------------- checkpoints
def _every_command(checkpoint: Path, resumable: Path, faces16: Path, root: Path, good_stats: Path) -> list[list]:
    """Every command that reads a checkpoint: sample, swd, fid, train --init, train --resume."""
    return [
        ["sample", checkpoint, "--grid", root / "g.png", "--device", "cpu"],
        ["swd", faces16, checkpoint, "--num-images", 8, "--quiet", "--device", "cpu"],
        ["fid", good_stats, checkpoint, "--inception", root / "none.pth", "--num-images", 8, "--quiet",
         "--device", "cpu"],
        ["train", "--data", faces16, "--init", checkpoint, "--out", root / "runs", *H.TINY_TRAIN],
        ["train", "--resume", resumable, *H.TINY_TRAIN],
    ]  # fmt: skip


def _checkpoint_cases(faces16: Path, root: Path, good_stats: Path) -> list[tuple[str, list, list[str]]]:
    """(class, command, fragments of its one-line refusal) for every crafted checkpoint."""
    cases = []
    fields = {  # in every command
        "config is a list": "generator_config is a list, not a dict of constructor arguments",
        "resolution missing": "missing resolution",
        "config has an extra key": "generator_config has unexpected key(s) evil",
    }
    for index, (name, message) in enumerate(fields.items()):
        edits = H.CHECKPOINT_FIELDS[name]
        checkpoint = H.tiny_checkpoint(root / f"field{index}.pt", **edits)
        resumable = H.resumable_checkpoint(root / f"resume{index}" / "latest.pt", faces16, **edits)
        cases += [("fields", c, [message]) for c in _every_command(checkpoint, resumable, faces16, root, good_stats)]
    others = {  # in the commands that read the networks only
        "widths 16384 claimed": (H.huge_width_checkpoint, "generator does not fit its generator_config"),
        "stride-0 tensors": (H.stride0_checkpoint, "claims shape (4096,) but the file does not hold its data"),
        "NaN weights": (H.nan_checkpoint, "holds NaN or infinite weights"),
        "overflowing weights": (H.overflow_checkpoint, "output holds NaN or infinite values"),
        "deflated members": (H.compressed_checkpoint, "is compressed"),
        "alpha is a string": (lambda p: H.tiny_checkpoint(p, alpha="half"), "alpha is 'half', not a number"),
        "resolution is a list": (lambda p: H.tiny_checkpoint(p, resolution=[16]), "resolution is a list"),
        "weights of another shape": (lambda p: H.tiny_checkpoint(p, **H.CHECKPOINT_FIELDS["weights of another shape"]),
                                     "blocks.0.conv.weight has shape (8, 8, 3, 1)"),
    }  # fmt: skip
    for index, (name, (make, message)) in enumerate(others.items()):
        checkpoint = make(root / f"other{index}.pt")
        kind = "memory" if name in ("widths 16384 claimed", "stride-0 tensors", "deflated members") else (
            "non-finite" if "weights" in name and "shape" not in name else "fields")  # fmt: skip
        commands = _every_command(checkpoint, checkpoint, faces16, root, good_stats)[:2]
        cases += [(kind, c, [message]) for c in commands]
    for index, (name, edits) in enumerate(H.RESUME_FIELDS.items()):
        resumable = H.resumable_checkpoint(root / f"train{index}" / "latest.pt", faces16, **edits)
        message = {"noise_rng missing": "missing noise_rng", "option resolution is a list":
                   "option resolution is a list"}.get(name, "is not a usable pggan checkpoint")  # fmt: skip
        cases.append(("fields", ["train", "--resume", resumable, *H.TINY_TRAIN], [message]))
    return cases


def _stats_cases(root: Path, good: Path) -> list[tuple[str, list, list[str]]]:
    rng = np.random.default_rng(0)
    np.savez(root / "nosigma.npz", mu=np.zeros(2048))
    files = {
        "bomb": (H.fid_stats_bomb(root / "bomb.npz"), "sigma is float64 of shape (40000, 40000)"),
        "512-d": (H.fid_stats(root / "small.npz", mu=np.zeros(512), sigma=np.eye(512)), "2048-d"),
        "asymmetric": (H.fid_stats(root / "asym.npz", sigma=rng.standard_normal((2048, 2048))), "not symmetric"),
        "nan": (H.fid_stats(root / "nan.npz", mu=np.full(2048, np.nan)), "NaN or infinite"),
        "count list": (H.fid_stats(root / "count.npz", num_images=np.array([1, 2])), "num_images is int64"),
        "objects": (H.fid_stats(root / "obj.npz", mu=np.array([None] * 2048, dtype=object)), "mu is object"),
        "no sigma": (root / "nosigma.npz", "it has no sigma"),
    }
    cases = [("stats", ["fid", good, path], [str(path), "is not an FID statistics file", fragment])
             for path, fragment in files.values()]  # fmt: skip
    # A bad statistics file beside images and missing weights: the file is what is refused, before any image.
    nan = files["nan"][0]
    cases.append(("stats", ["fid", SAMPLE / "color", nan, "--inception", root / "none.pth", "--quiet"],
                  [str(nan), "NaN or infinite"]))  # fmt: skip
    return cases


@pytest.fixture(scope="module")
def capped_run(faces16, tmp_path_factory):
    """Every crafted checkpoint and statistics file through every command that reads it: ONE capped process.

    One subprocess (torch starts once) under ``RLIMIT_AS`` = torch's start-up + 1 GiB, the commands through
    ``python -m pggan``'s entry point one after another; the valid controls run last in the same process.
    """
    root = tmp_path_factory.mktemp("hostile")
    good_stats = H.fid_stats(root / "good.npz")
    cases = _checkpoint_cases(faces16, root, good_stats) + _stats_cases(root, good_stats)
    controls = [
        ["sample", H.tiny_checkpoint(root / "ok.pt"), "--grid", root / "ok.png", "--rows", 1, "--cols", 2,
         "--device", "cpu"],
        ["train", "--resume", H.resumable_checkpoint(root / "run" / "latest.pt", faces16), *H.TINY_TRAIN],
    ]  # fmt: skip
    results = H.run_commands([command for _, command, _ in cases] + controls, address_space=CAP)
    return root, list(zip(cases, results, strict=False)), results[len(cases) :]


def _check(capped_run, kind: str) -> None:
    root, pairs, _ = capped_run
    chosen = [(case, result) for case, result in pairs if case[0] == kind]
    assert chosen
    for (_, _, fragments), result in chosen:
        line = result.one_line_error(*fragments)
        assert "MemoryError" not in line and "allocate" not in line, line  # refused for its reason, not the cap
    assert not (root / "g.png").exists()  # nothing written by any refused command
    assert not (root / "runs").exists() or not list((root / "runs").rglob("*.pt"))


def test_checkpoint_fields_of_the_wrong_type_or_missing_are_one_line_in_every_command(capped_run):
    _check(capped_run, "fields")


def test_checkpoints_claiming_gigabytes_are_refused_before_any_network_is_built(capped_run):
    _check(capped_run, "memory")
    _, pairs, _ = capped_run
    assert max(result.max_rss_mb for _, result in pairs) < 1500  # torch is ~0.7 GB; the claims were 10-100 GB


def test_a_generator_with_non_finite_weights_or_output_is_reported_not_drawn(capped_run):
    _check(capped_run, "non-finite")


def test_fid_statistics_files_are_checked_field_by_field_before_any_image(capped_run):
    _check(capped_run, "stats")


def test_valid_checkpoints_still_sample_and_resume_in_the_same_process(capped_run):
    root, _, controls = capped_run
    assert [r.code for r in controls] == [0, 0], [r.stderr[-800:] for r in controls]
    assert (root / "ok.png").is_file() and "done: " in controls[1].stdout


# ---------------------------------------------------------------------------------------------- image sources
def test_prepare_reads_only_regular_files_within_the_size_limit(tmp_path):
    src = H.good_images(tmp_path / "src", count=2)
    os.mkfifo(src / "fifo.png")  # opening it would wait for a writer for ever
    (src / "zero.png").symlink_to("/dev/zero")  # reading it would never end
    with open(src / "sparse.png", "wb") as handle:  # 600 MiB on paper, nothing on disk
        handle.truncate(600 << 20)
    H.patched_zip(tmp_path / "announced.zip", declared=3 << 30, actual=b"\0" * 1000)
    H.patched_zip(tmp_path / "lying.zip", declared=1000, actual=b"\0" * (64 << 20))
    out = tmp_path / "faces"
    outcome = H.run_capped(
        H.pggan_args("prepare", src, tmp_path / "announced.zip", tmp_path / "lying.zip", "--out", out,
                     "--resolution", 16, "--workers", 1), timeout=90, data=2 * H.GIB, env={"PYTHONPATH": str(H.REPO)},
    )  # fmt: skip
    assert outcome.returncode == 0 and not outcome.timed_out, outcome.summary()
    assert read_meta(out)["count"] == 4  # the two good images and good.png of each zip
    report = (tmp_path / "faces.skipped.txt").read_text().splitlines()
    reasons = dict(line.split("\t", 1) for line in report[2:])
    assert reasons[str(src / "fifo.png")] == "not a regular file (a FIFO (named pipe))"
    assert reasons[str(src / "zero.png")] == "not a regular file (a character device)"
    assert reasons[str(src / "sparse.png")] == "larger than the 512 MiB limit for one image (600 MiB)"
    assert reasons[f"{tmp_path / 'announced.zip'}:bomb.png"] == "larger than the 512 MiB limit for one image (3 GiB)"
    assert reasons[f"{tmp_path / 'lying.zip'}:bomb.png"].startswith("cannot read: Bad CRC-32")
    assert outcome.max_rss_mb < 600, outcome.max_rss_mb  # nothing of the 3.6 GiB claimed was read


def test_a_memory_error_while_decoding_skips_that_image(tmp_path):
    src = H.good_images(tmp_path / "src", count=2)
    H.huge_png(src / "huge.png", side=12000)  # 144 MB decoded, 100 KB on disk (under Pillow's bomb limit)
    out = tmp_path / "faces"
    script = (
        "import pggan.cli, pggan.data.prepare; "
        "print(open('/proc/self/status').read().split('VmPeak:')[1].split()[0])"
    )
    probe = H.run_capped([H.sys.executable, "-c", script], env={"PYTHONPATH": str(H.REPO)})
    baseline = int(probe.stdout.strip()) * 1024
    outcome = H.run_capped(H.pggan_args("prepare", src, "--out", out, "--resolution", 16, "--workers", 1),
                           address_space=baseline + (200 << 20), env={"PYTHONPATH": str(H.REPO)})  # fmt: skip
    assert outcome.returncode == 0, outcome.summary()
    assert read_meta(out)["count"] == 2
    reasons = dict(line.split("\t", 1) for line in (tmp_path / "faces.skipped.txt").read_text().splitlines()[2:])
    assert "MemoryError" in reasons[str(src / "huge.png")] or "memory" in reasons[str(src / "huge.png")]


# ---------------------------------------------------------------------------------------------- --out and the report
@pytest.fixture
def small_dataset(tmp_path):
    out = tmp_path / "faces"
    prepare_dataset([str(SAMPLE / "color")], out, resolution=8, workers=1, progress=False)
    return out


def test_overwrite_replaces_only_a_pggan_dataset_that_holds_nothing_else(small_dataset, tmp_path):
    lookalike = tmp_path / "thesis"
    lookalike.mkdir()
    (lookalike / "data.mdb").write_bytes(b"not an LMDB file, just named like one")
    (lookalike / "thesis.tex").write_text("years of work")
    with pytest.raises(UserError, match=r"is not a pggan dataset .*refusing to replace it"):
        prepare_dataset([str(SAMPLE / "color")], lookalike, resolution=8, workers=1, overwrite=True, progress=False)
    assert (lookalike / "thesis.tex").read_text() == "years of work" and (lookalike / "data.mdb").is_file()
    (small_dataset / "notes.txt").write_text("mine")  # a real dataset with a user's file in it
    with pytest.raises(UserError, match=r"holds files that are not part of the dataset \(notes.txt\)"):
        prepare_dataset([str(SAMPLE / "color")], small_dataset, resolution=8, workers=1, overwrite=True,
                        progress=False)  # fmt: skip
    assert (small_dataset / "notes.txt").read_text() == "mine" and read_meta(small_dataset)["count"] == 2
    damaged = tmp_path / "damaged"
    shutil.copytree(small_dataset, damaged)
    (damaged / "notes.txt").unlink()
    os.truncate(damaged / "data.mdb", 4096)  # its meta record can no longer be read: not confirmed, not replaced
    with pytest.raises(UserError, match="remove it yourself"):
        prepare_dataset([str(SAMPLE / "color")], damaged, resolution=8, workers=1, overwrite=True, progress=False)
    assert (damaged / "data.mdb").stat().st_size == 4096


def test_the_skipped_report_is_an_output_of_the_dataset(small_dataset, tmp_path):
    report = tmp_path / "faces.skipped.txt"
    before = report.read_text()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"")
    with pytest.raises(UserError, match=r"\(a.png: empty file \(0 bytes\); the earlier .* was left in place\)"):
        prepare_dataset([str(broken)], small_dataset, resolution=8, workers=1, overwrite=True, progress=False)
    assert report.read_text() == before and read_meta(small_dataset)["count"] == 2  # the failed run kept both
    mine = tmp_path / "other.skipped.txt"
    mine.write_text("my own notes")
    with pytest.raises(UserError, match=r"other\.skipped\.txt already exists; pass --overwrite"):
        prepare_dataset([str(SAMPLE / "color")], tmp_path / "other", resolution=8, workers=1, progress=False)
    assert mine.read_text() == "my own notes" and not (tmp_path / "other").exists()
    # A failed run's own report (no dataset beside it) is replaced by the next run without --overwrite.
    with pytest.raises(UserError, match="reasons in"):
        prepare_dataset([str(broken)], tmp_path / "third", resolution=8, workers=1, progress=False)
    prepare_dataset([str(SAMPLE / "color")], tmp_path / "third", resolution=8, workers=1, progress=False)
    assert (tmp_path / "third.skipped.txt").read_text().startswith("# pggan-prepare report: 2 images written")


def test_file_names_cannot_forge_report_lines(tmp_path):
    src = H.good_images(tmp_path / "src", count=1)
    forged = "x.png\nforged.png\tfine.png"
    (src / forged).write_bytes(b"")
    (src / "esc\x1b[31m.png").write_bytes(b"")
    with open(os.path.join(os.fsencode(src), b"latin-\xe9.png"), "wb") as handle:  # not UTF-8
        handle.write(b"")
    result = prepare_dataset([str(src)], tmp_path / "out", resolution=16, workers=1, progress=False)
    lines = result.report_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 + 3 and all(line.count("\t") == 1 for line in lines[2:])
    assert f"{src}/x.png\\nforged.png\\tfine.png\tempty file (0 bytes)" in lines
    assert f"{src}/esc\\x1b[31m.png\tempty file (0 bytes)" in lines
    assert f"{src}/latin-\\xe9.png\tempty file (0 bytes)" in lines


# ------------------------------------------------------------------------------------------ datasets under ulimit -v
def test_datasets_open_under_an_address_space_limit(faces16, tmp_path):
    sparse = tmp_path / "sparse"
    shutil.copytree(faces16, sparse)
    os.truncate(sparse / "data.mdb", 8 << 30)  # 8 GiB of map that a 2.5 GiB limit cannot hold
    results = H.run_commands([["prepare", "--verify", faces16], ["prepare", "--verify", sparse]],
                             address_space=int(2.5 * H.GIB))  # fmt: skip
    assert results[0].code == 0 and "OK" in results[0].stdout, results[0].stderr
    line = results[1].one_line_error("cannot map", "ulimit -v", "not damaged")
    assert "is damaged" not in line


# ---------------------------------------------------------------------------------------------- non-finite steps
def _trainer(tmp_path, **overrides):
    from pggan.training.distributed import DistContext
    from pggan.training.trainer import Trainer
    from tests.helpers import plan, random_pyramid, tensor_source, tiny_options

    options = tiny_options(tmp_path, **overrides)
    run_dir = Path(options.out) / options.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    trainer = Trainer(plan(options, tensor_source(random_pyramid())), DistContext(), run_dir, 3, log=lines.append)
    return trainer, run_dir, lines


def _poison_critic(monkeypatch, steps: set[int]) -> list[int]:
    """Make the critic loss NaN at the given (0-based) steps: its gradients are then NaN too."""
    import pggan.training.step as train_step

    real, calls = train_step.d_loss, []

    def poisoned(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        calls.append(len(calls))
        return (loss * float("nan"), stats) if calls[-1] in steps else (loss, stats)

    monkeypatch.setattr(train_step, "d_loss", poisoned)
    return calls


def test_a_single_non_finite_step_is_skipped_counted_and_the_run_goes_on(tmp_path, monkeypatch):
    trainer, run_dir, lines = _trainer(tmp_path)
    _poison_critic(monkeypatch, {3})
    steps = {}
    real_step = trainer.gan.d_optimizer.step

    def counting_step(*args, **kwargs):
        result = real_step(*args, **kwargs)
        steps[trainer.step] = [s["step"].item() for s in trainer.gan.d_optimizer.state.values()]
        return result

    trainer.gan.d_optimizer.step = counting_step
    assert trainer.run() == "done"
    records = [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert sum(r["nonfinite_steps"] for r in records) == 1
    assert all(np.isfinite(r["d_loss"]) for r in records)  # the skipped step's NaN stays out of the means
    assert any("non-finite gradients or loss; the update was skipped (1 in a row" in line for line in lines)
    assert all(torch.isfinite(p).all() for p in trainer.gan.discriminator.parameters())
    assert steps[3] == steps[2]  # fused Adam's found_inf: the skipped update did not count a step either


def test_consecutive_non_finite_steps_stop_the_run_keeping_the_last_checkpoint(tmp_path, monkeypatch):
    from pggan.defaults import MAX_NONFINITE_STEPS
    from pggan.training.trainer import TrainingDiverged

    trainer, run_dir, lines = _trainer(tmp_path, total_kimg=0.128)
    _poison_critic(monkeypatch, set(range(4, 1000)))  # from the 5th step on, every step
    with pytest.raises(TrainingDiverged, match=f"in {MAX_NONFINITE_STEPS} consecutive steps up to step 14") as info:
        trainer.run()
    assert sum("the update was skipped" in line for line in lines) == MAX_NONFINITE_STEPS - 1
    from pggan.model.checkpoint import load_checkpoint

    named = re.search(r"the last good checkpoint is (\S+) \(kimg", str(info.value))
    assert named and Path(named.group(1)).parent == run_dir
    state = load_checkpoint(named.group(1))  # skipped steps changed no weight: what it holds is good
    assert all(torch.isfinite(v).all() for v in state["discriminator"].values())


def _ddp_worker(rank: int, port: int, root: str) -> None:
    import torch.distributed as dist

    import pggan.training.step as train_step
    from pggan.training.distributed import DistContext, shutdown
    from pggan.training.trainer import Trainer
    from tests.helpers import plan, random_pyramid, tensor_source, tiny_options

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    real, calls = train_step.nonfinite_gradients, []

    def rank1_fault(params, ddp=False):  # after the gradient all-reduce, on rank 1 only: only the check can tell
        calls.append(1)
        if rank == 1 and len(calls) == 5:  # the critic update of the third step
            params[0].grad.view(-1)[0] = float("nan")
        return real(params, ddp)

    train_step.nonfinite_gradients = rank1_fault
    try:
        options = tiny_options(Path(root), total_kimg=0.056)
        run_dir = Path(options.out) / options.run_name
        run_dir.mkdir(parents=True, exist_ok=True)
        job = DistContext(rank=rank, local_rank=rank, world_size=2)
        source = tensor_source(random_pyramid(), rank=rank, world_size=2)
        trainer = Trainer(plan(options, source, 2), job, run_dir, 3, log=lambda m: None)
        trainer.run()
        flat = torch.cat([p.detach().flatten() for p in trainer.gan.discriminator.parameters()])
        torch.save(flat, Path(root) / f"d-rank{rank}.pt")
    finally:
        shutdown()


@pytest.mark.slow  # two gloo processes: ~40 s on a loaded 2-core machine
def test_ranks_agree_on_skipping_a_step_only_one_of_them_saw_non_finite(tmp_path):
    import torch.multiprocessing as mp

    from tests.test_train_ddp import free_port

    mp.spawn(_ddp_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = torch.load(tmp_path / "d-rank0.pt"), torch.load(tmp_path / "d-rank1.pt")
    assert torch.isfinite(rank0).all() and torch.equal(rank0, rank1), "rank 0 applied an update rank 1 skipped"
    records = [json.loads(x) for x in (tmp_path / "runs" / "run" / "stats.jsonl").read_text().splitlines()]
    assert sum(r["nonfinite_steps"] for r in records) == 1


def test_cli_refusals_of_fid_statistics_in_process(tmp_path):
    """The same checks through click's runner (fast), as the in-process tests of the other commands do."""
    from pggan.__main__ import main

    bad = H.fid_stats(tmp_path / "bad.npz", mu=np.zeros(100), sigma=np.eye(100))
    result = CliRunner().invoke(main, ["fid", str(bad), str(bad)])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "2048-d" in result.output
