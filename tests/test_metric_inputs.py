"""What the metrics read: folders through pggan-prepare's reader, checkpoints through the one generate path."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pggan.cli import swd_command, train_command
from pggan.data.prepare import prepare_dataset
from pggan.metrics.sources import image_batches, open_image_set
from pggan.metrics.swd_command import compare_swd as compare
from tests.device import DEVICE_ARG

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample"
TINY = [
    "--fmap-base", "32", "--fmap-max", "8", "--latent-size", "8", "--device", DEVICE_ARG, "--workers", "0",
    "--batch-schedule", "4:8,8:8,16:8", "--fade-kimg", "0.016", "--stable-kimg", "0.016",
    "--tick-kimg", "0.016", "--snapshot-kimg", "0.032", "--grid-size", "2", "--no-tensorboard",
]  # fmt: skip


def _exif_rotated_jpeg(upright: np.ndarray, path: Path) -> None:
    """Store ``upright`` as a phone does: pixels turned 90°, EXIF orientation 6 saying "turn them back"."""
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))  # 90° counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # display: rotate 90° clockwise
    stored.save(path, format="JPEG", quality=95, exif=exif.tobytes())


@pytest.fixture(scope="module")
def phone_folders(tmp_path_factory):
    """A folder of EXIF-rotated JPEGs and a folder of their upright PNG copies (decoded, pixel for pixel)."""
    root = tmp_path_factory.mktemp("phone")
    rotated, upright = root / "rotated", root / "upright"
    rotated.mkdir()
    upright.mkdir()
    rng = np.random.default_rng(0)
    for k in range(6):
        picture = np.zeros((48, 40, 3), np.uint8)  # portrait, not square: orientation changes the crop
        picture[: 12 + 4 * k] = rng.integers(0, 256, 3, dtype=np.uint8)  # a band at the top, unlike the bottom
        picture += rng.integers(0, 20, picture.shape, dtype=np.uint8)
        _exif_rotated_jpeg(picture, rotated / f"img{k}.jpg")
        with Image.open(rotated / f"img{k}.jpg") as image:  # the upright copy: the JPEG's pixels, turned upright
            from PIL import ImageOps

            ImageOps.exif_transpose(image).save(upright / f"img{k}.png")
    return rotated, upright


def test_exif_rotated_jpegs_score_as_their_upright_copies(phone_folders, tmp_path):
    rotated, upright = phone_folders
    sides = [open_image_set(rotated), open_image_set(upright)]
    assert [s.native_resolution for s in sides] == [32, 32] and [s.count for s in sides] == [6, 6]
    a, b = (torch.cat(list(image_batches(side, 6, 32, 3))) for side in sides)
    assert torch.equal(a, b)  # EXIF applied before the crop: the same 32² images
    assert not torch.equal(a, a.transpose(-1, -2))
    scores = [compare(SAMPLE / "color", folder, resolution=32, progress=False)["swd"] for folder in phone_folders]
    assert scores[0] == scores[1] and scores[0]["avg"] > 0


def test_folder_reads_as_pggan_prepare_reads_it(tmp_path):
    """A folder's images are the dataset made from it, bit for bit (same file list, crop and resize)."""
    dataset = tmp_path / "ds"
    prepare_dataset([str(SAMPLE / "color")], dataset, resolution=32, channels=3, workers=1, progress=False)
    folder = open_image_set(SAMPLE / "color")
    from_folder = torch.cat(list(image_batches(folder, 2, 32, 3)))
    from_dataset = torch.cat(list(image_batches(open_image_set(dataset), 2, 32, 3)))
    assert torch.equal(from_folder, from_dataset)


def test_swd_of_a_checkpoint_reproduces_the_one_training_logged(tmp_path):
    dataset = tmp_path / "faces16"
    prepare_dataset([str(SAMPLE)], dataset, resolution=16, channels=3, workers=1, progress=False)
    out = tmp_path / "runs"
    args = ["--data", dataset, "--resolution", 16, "--out", out, "--run-name", "r", *TINY,
            "--total-kimg", 0.08, "--swd-kimg", 0.032, "--swd-images", 64, "--seed", 3]  # fmt: skip
    result = CliRunner().invoke(train_command, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ticks = [json.loads(line) for line in (out / "r" / "stats.jsonl").read_text().splitlines()]
    logged = [t for t in ticks if t.get("swd")]
    assert [t["kimg"] for t in logged] == [0.064]  # the end of the fade into 16²: alpha 1 in both
    report = tmp_path / "swd.json"
    command = [dataset, out / "r" / "checkpoint-000000.064.pt", "--num-images", 64, "--seed", 3, "--json", report]
    swd = CliRunner().invoke(swd_command, [str(a) for a in command], catch_exceptions=False)
    assert swd.exit_code == 0, swd.output
    assert json.loads(report.read_text())["swd"] == logged[0]["swd"]
