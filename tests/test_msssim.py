"""MS-SSIM: equal to a transcription of the official numpy code, its pairing, its refusals, pggan-msssim."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pggan.cli import msssim_command
from pggan.errors import UserError
from pggan.metrics import ms_ssim
from tests import msssim_reference as reference

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample"


def similar_pairs(count: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """2·count uint8 images: smooth random blobs, each paired with a noisy, shifted copy (so scores are mid-range)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, channels, max(2, height // 8), max(2, width // 8), generator=generator) * 255
    base = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    noisy = torch.roll(base, 1, dims=-1) + torch.randn(base.shape, generator=generator) * 25
    images = torch.empty(2 * count, channels, height, width)
    images[0::2], images[1::2] = base, noisy
    return images.round().clamp(0, 255).to(torch.uint8)


def to_nhwc(images: torch.Tensor) -> np.ndarray:
    return images.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize(
    "shape",
    [
        (1, 16, 16),  # the smallest: the fifth level is 1×1 (window 1 tap)
        (3, 32, 32),  # windows of 11, 11, 8, 4, 2 taps
        (3, 48, 48),  # not a power of two: 3×3 at the last level
        (1, 64, 64),
        (3, 32, 64),  # not square: the window follows the shorter side
        (3, 128, 128),
        (3, 256, 256),  # the full 11 taps at every level
    ],
)
def test_equals_the_official_transcription_pair_by_pair(shape):
    channels, height, width = shape
    images = similar_pairs(3, channels, height, width, seed=height + channels)
    images[4:6] = torch.randint(0, 256, (2, *shape), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    ours = ms_ssim.ms_ssim_pairs(images[0::2], images[1::2])
    assert ours.dtype == torch.float64 and ours.shape == (3,)
    nhwc = to_nhwc(images)
    for i in range(3):
        expected = reference.msssim(nhwc[2 * i : 2 * i + 1], nhwc[2 * i + 1 : 2 * i + 2])
        assert float(ours[i]) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert 0.1 < float(ours[0]) < 0.99  # mid-range, so a wrong level or weight would show
    literal = reference.msssim(nhwc[0::2], nhwc[1::2], dtype=np.float32)  # the official astype(np.float32)
    assert ms_ssim.ms_ssim(images[0::2], images[1::2]) == pytest.approx(literal, abs=2e-5)


def test_stream_mean_equals_the_official_api_whatever_the_batching():
    images = similar_pairs(9, 3, 32, 32, seed=3)
    expected = reference.api_score([images[:8].numpy(), images[8:].numpy()])  # minibatches of 8 and 10
    for sizes in ([18], [8, 10], [1, 4, 3, 7, 3], [5, 5, 5, 3]):
        batches = torch.split(images, sizes)
        result = ms_ssim.ms_ssim_of_batches(batches)
        assert result.num_pairs == 9
        assert result.score == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("channels", [1, 3])
def test_identical_pairs_score_one(channels):
    images = similar_pairs(2, channels, 64, 64)
    scores = ms_ssim.ms_ssim_pairs(images, images.clone())
    torch.testing.assert_close(scores, torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-12)


def test_grayscale_replicated_to_rgb_scores_the_same():
    gray = similar_pairs(2, 1, 32, 32, seed=5)
    rgb = gray.expand(-1, 3, -1, -1).contiguous()
    torch.testing.assert_close(ms_ssim.ms_ssim_pairs(gray[0::2], gray[1::2]),
                               ms_ssim.ms_ssim_pairs(rgb[0::2], rgb[1::2]), rtol=1e-13, atol=0)  # fmt: skip


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu():
    images = similar_pairs(4, 3, 128, 128, seed=7)
    cpu = ms_ssim.ms_ssim_pairs(images[0::2], images[1::2])
    gpu = ms_ssim.ms_ssim_pairs(images[0::2].cuda(), images[1::2].cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 8, 8), "at least 16×16"),
        ((1, 16, 8), "at least 16×16"),
        ((3, 40, 40), "divisible by 16"),
    ],
)
def test_sizes_the_levels_cannot_take_are_refused(shape, message):
    images = torch.zeros(2, *shape, dtype=torch.uint8)
    with pytest.raises(UserError, match=message):
        ms_ssim.ms_ssim_pairs(images[:1], images[1:])


def test_an_odd_stream_or_a_single_image_is_refused():
    images = similar_pairs(2, 1, 16, 16)
    with pytest.raises(UserError, match="odd number"):
        ms_ssim.ms_ssim_of_batches([images[:3]])
    with pytest.raises(UserError, match="at least 2 images"):
        ms_ssim.ms_ssim_of_batches([])
    with pytest.raises(UserError, match="uint8"):
        ms_ssim.ms_ssim_of_batches([images.float()])


# ---------------------------------------------------------------- pggan-msssim
def run(*args):
    return CliRunner().invoke(msssim_command, [str(a) for a in args])


def test_folder_score_and_json_equal_the_library_on_the_same_images(tmp_path):
    from pggan.metrics.sources import image_batches, open_image_set

    out = tmp_path / "out" / "msssim.json"
    result = run(SAMPLE / "lfw_subset", "--num-images", 20, "--resolution", 32, "--seed", 3, "--json", out, "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["num_pairs"] == 10 and report["resolution"] == 32 and report["kind"] == "folder"
    assert result.output.startswith(f"MS-SSIM {report['msssim']:.4f}  (10 pairs of folder images at 32², seed 3)")
    assert "should approach" in result.output  # real images: the figure a generator aims at
    batches = image_batches(open_image_set(SAMPLE / "lfw_subset"), 20, 32, 3, seed=3)
    assert report["msssim"] == ms_ssim.ms_ssim_of_batches(batches).score


def test_default_count_is_the_whole_set_rounded_down_to_even(tmp_path):
    out = tmp_path / "m.json"
    result = run(SAMPLE / "solvay1927", "--resolution", 16, "--json", out, "--quiet")  # 29 images
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["num_pairs"] == 14


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num-images", 7], "--num-images must be even"),
        (["--num-images", 0], "must be at least 2"),
        (["--resolution", 8], "at least 16×16"),
        (["--resolution", 24], "power of two"),
        (["--num-images", 200], "fewer than 200 images"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "m.json"
    result = run(SAMPLE / "lfw_subset", *args, "--json", out, "--quiet")
    assert result.exit_code != 0 and message in result.output, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_a_single_image_is_refused(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    first = sorted((SAMPLE / "lfw_subset").iterdir())[0]
    (folder / first.name).write_bytes(first.read_bytes())
    result = run(folder, "--quiet")
    assert result.exit_code != 0 and "at least 2 images (one pair)" in result.output


def test_benchmark_smoke_runs_and_agrees_with_the_official_code(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    tool = Path(__file__).resolve().parent.parent / "tools" / "bench_msssim.py"
    result = subprocess.run([sys.executable, str(tool), "--smoke", "--json", str(out)], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["machine"]["cpu"] and [c["resolution"] for c in report["cases"]] == [32, 64]
    for case in report["cases"]:
        assert case["pairs"] == 6 and case["seconds"] >= 0 and "peak_memory_gib" in case
        base = case["baseline"]
        assert base["msssim_pggan_on_subset"] == pytest.approx(base["msssim_official_on_subset"], abs=2e-5)
