"""pggan-swd end to end on real files: image folders, checkpoints and run directories."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pggan.cli import swd_command
from tests.helpers import tiny_checkpoint

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample"


def run(*args):
    result = CliRunner().invoke(swd_command, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small grayscale generator at 32², half faded in, saved as a run directory's latest.pt."""
    path = tmp_path_factory.mktemp("run") / "latest.pt"
    tiny_checkpoint(path, max_resolution=64, resolution=32, alpha=0.5, channels=1)
    return path


def test_two_folders_table_and_json(tmp_path):
    out = tmp_path / "out" / "swd.json"
    result = run(SAMPLE / "solvay1927", SAMPLE / "lfw_subset", "--resolution", 32, "--json", out, "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "29 images per side at 32², seed 0"  # the smaller folder sets the count
    assert lines[2].split() == ["32²", "16²", "avg"]
    report = json.loads(out.read_text())
    assert report["num_images"] == 29 and report["resolution"] == 32 and report["channels"] == 1
    assert list(report["swd"]) == ["32", "16", "avg"]
    assert [f"{v:.3f}" for v in report["swd"].values()] == lines[3].split()
    assert report["swd"]["avg"] > 0


def test_checkpoint_side_is_deterministic_and_sets_the_resolution(tmp_path, checkpoint):
    reports = []
    for name in ("a.json", "b.json"):
        result = run(SAMPLE / "solvay1927", checkpoint, "--num-images", 16, "--seed", 5, "--json", tmp_path / name)
        assert result.exit_code == 0, result.output
        reports.append(json.loads((tmp_path / name).read_text()))
    assert reports[0] == reports[1]
    assert reports[0]["resolution"] == 32  # the generator stands at 32², the folder's images are 64²
    assert list(reports[0]["swd"]) == ["32", "16", "avg"]
    other = run(
        SAMPLE / "solvay1927", checkpoint.parent, "--num-images", 16, "--seed", 6, "--json", tmp_path / "c.json"
    )
    assert other.exit_code == 0, other.output  # a run directory works too
    assert json.loads((tmp_path / "c.json").read_text())["swd"] != reports[0]["swd"]


def test_checkpoint_resized_to_a_requested_resolution(tmp_path, checkpoint):
    for resolution, levels in ((16, ["16", "avg"]), (64, ["64", "32", "16", "avg"])):
        out = tmp_path / f"{resolution}.json"
        result = run(checkpoint, checkpoint, "--num-images", 8, "--resolution", resolution, "--json", out)
        assert result.exit_code == 0, result.output
        assert list(json.loads(out.read_text())["swd"]) == levels


def test_colour_folder_against_grayscale_folder_compares_in_rgb(tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(SAMPLE / "color", mixed)
    shutil.copy(SAMPLE / "solvay1927" / "solvay_00.png", mixed)
    result = run(mixed, SAMPLE / "solvay1927", "--json", tmp_path / "o.json", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o.json").read_text())
    assert report["channels"] == 3 and report["num_images"] == 3 and report["resolution"] == 64


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing-dir", SAMPLE / "lfw_subset"], "not found: missing-dir"),
        ([SAMPLE / "lfw_subset", SAMPLE / "solvay1927", "--num-images", 50], "fewer than 50 images"),
        ([SAMPLE / "lfw_subset" / "lfw_000.png", SAMPLE / "solvay1927"], "single image"),
        ([SAMPLE / "lfw_subset", SAMPLE / "solvay1927", "--resolution", 24], "power of two"),
        ([SAMPLE, SAMPLE / "solvay1927", "--resolution", 8], "power of two"),
    ],
)
def test_bad_input_is_one_line_error(args, message):
    result = CliRunner().invoke(swd_command, [str(a) for a in args])
    assert result.exit_code != 0
    assert result.output.startswith("Error: ") and message in result.output, result.output
    assert "Traceback" not in result.output


def test_not_a_checkpoint_is_refused(tmp_path):
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"garbage")
    result = CliRunner().invoke(swd_command, [str(bogus), str(SAMPLE / "solvay1927")])
    assert result.exit_code != 0 and "not a readable pggan checkpoint" in result.output
