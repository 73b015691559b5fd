"""The fast SWD against a float64 reference written from issue 5, and its behaviour on real faces."""

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
from PIL import Image

from pggan.errors import UserError
from pggan.metrics import swd
from pggan.metrics.swd import SWDEvaluator, sliced_wasserstein_pyramid
from pggan.model.networks import Generator
from tests.swd_reference import laplacian, pyr_down, pyr_up, reference_swd

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample"


def load_folder(name, size=None):
    images = []
    for file in sorted((SAMPLE / name).glob("*.png")):
        image = Image.open(file)
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        array = np.asarray(image)
        images.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(images))


def to_uint8(x):
    return torch.as_tensor(np.clip(np.rint(np.asarray(x, dtype=np.float64)), 0, 255).astype(np.uint8))


def noised(images, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return to_uint8(images.numpy() + rng.normal(0.0, sigma, images.shape))


def blurred(images, sigma):
    return to_uint8(scipy.ndimage.gaussian_filter(images.numpy().astype(np.float64), (0, 0, sigma, sigma)))


@pytest.fixture(scope="module")
def solvay():
    return load_folder("solvay1927")  # 29 real faces, 1×64×64


@pytest.fixture(scope="module")
def lfw_up():
    return load_folder("lfw_subset", 64)[:29]  # other real faces, upscaled 25 → 64


@pytest.fixture(scope="module")
def colour_faces():
    """16 RGB 64² variants of the two colour faces: random crops, flips and mild noise."""
    base = load_folder("color").numpy().astype(np.float64)  # (2, 3, 128, 128)
    rng = np.random.default_rng(5)
    out = []
    for i in range(16):
        y, x = rng.integers(0, 33, size=2)
        crop = base[i % 2, :, y : y + 96, x : x + 96]
        crop = scipy.ndimage.zoom(crop, (1, 64 / 96, 64 / 96), order=1)
        if i % 4 >= 2:
            crop = crop[:, :, ::-1]
        out.append(crop + rng.normal(0, 3, crop.shape))
    return to_uint8(np.stack(out))


@pytest.fixture(scope="module")
def generated():
    """29 images from a small randomly initialised generator at 64², grayscale."""
    torch.manual_seed(0)
    g = Generator(64, channels=1, latent_size=16, fmap_base=64, fmap_max=16).eval()
    with torch.no_grad():
        x = g(torch.randn(29, 16), 64, 1.0)
        x = x / x.abs().amax() * 0.9
    return x.mul(127.5).add(127.5).round().clamp(0, 255).to(torch.uint8)


def assert_agrees(fast, ref, rel):
    assert fast.keys() == ref.keys()
    for key in fast:
        assert math.isclose(fast[key], ref[key], rel_tol=rel), (key, fast[key], ref[key])


# ---------------------------------------------------------------- the pyramid itself
def test_pyramid_matches_explicit_mirror_convolution(solvay, colour_faces):
    for images in (solvay, colour_faces):
        x64 = images.numpy().astype(np.float64)
        down = swd.pyr_down(images.float())
        np.testing.assert_allclose(down.numpy(), pyr_down(x64), atol=1e-4)
        np.testing.assert_allclose(swd.pyr_up(down).numpy(), pyr_up(pyr_down(x64)), atol=1e-4)
        fast = swd.laplacian_pyramid(images, 3)
        ref = laplacian(images.numpy(), 3)
        assert [tuple(level.shape[-2:]) for level in fast] == [(64, 64), (32, 32), (16, 16)]
        for a, b in zip(fast, ref, strict=True):
            np.testing.assert_allclose(a.numpy(), b, atol=2e-4)


def test_pyramid_levels_reconstruct_the_image(colour_faces):
    levels = swd.laplacian_pyramid(colour_faces, 3)
    rebuilt = levels[2]
    for level in reversed(levels[:2]):
        rebuilt = level + swd.pyr_up(rebuilt)
    assert torch.allclose(rebuilt, colour_faces.float(), atol=1e-3)


def test_patch_corners_keep_the_whole_patch_inside():
    corners = swd.patch_corners(500, 16, torch.Generator().manual_seed(1))
    assert corners.shape == (500, 128, 2)
    assert corners.min() == 0 and corners.max() == 16 - 7  # both ends of the range are drawn


def test_descriptors_are_the_patches_channel_major(colour_faces):
    level = colour_faces[:2].float()
    corners = torch.tensor([[[0, 0]] * 128, [[5, 9]] * 128])
    desc = swd.extract_descriptors(level, corners)
    assert desc.shape == (256, 3 * 49)
    assert torch.equal(desc[0], level[0, :, 0:7, 0:7].reshape(-1))
    assert torch.equal(desc[200], level[1, :, 5:12, 9:16].reshape(-1))


# ---------------------------------------------------------------- agreement with the float64 reference
@pytest.mark.parametrize(
    "pair",
    ["faces_vs_other_faces", "faces_vs_noised", "faces_vs_blurred", "colour_variants", "generated_vs_faces"],
)
def test_fast_agrees_with_float64_reference(pair, solvay, lfw_up, colour_faces, generated):
    reals, fakes = {
        "faces_vs_other_faces": (solvay, lfw_up),
        "faces_vs_noised": (solvay, noised(solvay, 8)),
        "faces_vs_blurred": (solvay, blurred(solvay, 1.0)),
        "colour_variants": (colour_faces[:8], colour_faces[8:]),
        "generated_vs_faces": (solvay, generated),
    }[pair]
    fast = sliced_wasserstein_pyramid(reals, fakes, seed=7)
    ref = reference_swd(reals, fakes, seed=7)
    assert_agrees(fast, ref, rel=0.02)  # the bar
    assert_agrees(fast, ref, rel=1e-4)  # what float32 actually gives with the same random draws


def test_reference_with_its_own_randomness_agrees_on_average(solvay, lfw_up):
    """Independent numpy draws (patches and directions): the mean over seeds lands on the fast version's."""
    fast = [sliced_wasserstein_pyramid(solvay, lfw_up, seed=s)["avg"] for s in range(4)]
    refs = []
    for s in range(4):
        rng = np.random.default_rng(100 + s)

        def corners(level, size, rng=rng):
            return [rng.integers(0, size - 6, size=(29, 128, 2)) for _ in range(2)]

        def directions(level, dim, rng=rng):
            d = rng.standard_normal((512, dim))
            return d / np.linalg.norm(d, axis=1, keepdims=True)

        refs.append(reference_swd(solvay, lfw_up, corners=corners, directions=directions)["avg"])
    assert math.isclose(np.mean(fast), np.mean(refs), rel_tol=0.05), (fast, refs)


# ---------------------------------------------------------------- behaviour on faces
@pytest.fixture(scope="module")
def lfw200():
    """200 real faces at 32²: the 100 LFW crops upscaled from 25², and their mirror images."""
    faces = load_folder("lfw_subset", 32)
    return torch.cat([faces, faces.flip(-1)])


def test_identical_sets_are_far_closer_than_degraded_copies(lfw200):
    """Reals and fakes draw different patches, so identical sets sit at the sampling floor, not at 0."""
    same = sliced_wasserstein_pyramid(lfw200, lfw200)
    noisy = sliced_wasserstein_pyramid(lfw200, noised(lfw200, 20))
    soft = sliced_wasserstein_pyramid(lfw200, blurred(lfw200, 1.5))
    assert same[32] < 0.2 * noisy[32], (same, noisy)  # noise shows in the finest band only
    assert same[32] < 0.2 * soft[32] and same["avg"] < 0.2 * soft["avg"], (same, soft)


def test_grows_monotonically_with_noise_at_the_fine_level(lfw200):
    evaluator = SWDEvaluator(lfw200)  # reals once, as training does
    curves = [evaluator.evaluate(noised(lfw200, s)) for s in (0, 2, 5, 10, 20)]
    for level in (32, "avg"):
        values = [c[level] for c in curves]
        assert values == sorted(values) and values[-1] > 3 * values[0], (level, values)
    # white noise lives in the finest band; the 16² Gaussian level averages it away
    assert curves[-1][32] - curves[0][32] > 5 * (curves[-1][16] - curves[0][16])


def test_grows_monotonically_with_blur_at_every_level(lfw200):
    evaluator = SWDEvaluator(lfw200)
    curves = [evaluator.evaluate(blurred(lfw200, s)) for s in (0.01, 0.5, 1.0, 2.0)]
    for level in (32, 16, "avg"):
        values = [c[level] for c in curves]
        assert values == sorted(values), (level, values)
    assert curves[-1][32] - curves[0][32] > curves[-1][16] - curves[0][16]


def test_other_faces_are_farther_than_a_slight_perturbation(solvay, lfw_up):
    other = sliced_wasserstein_pyramid(solvay, lfw_up)["avg"]
    assert other > sliced_wasserstein_pyramid(solvay, noised(solvay, 2))["avg"]


# ---------------------------------------------------------------- determinism and batching
def test_deterministic_for_a_seed_and_independent_of_batching(solvay, lfw_up):
    solvay, lfw_up = solvay[:16], lfw_up[:16]
    a = sliced_wasserstein_pyramid(solvay, lfw_up, seed=3)
    assert sliced_wasserstein_pyramid(solvay, lfw_up, seed=3) == a
    assert sliced_wasserstein_pyramid(solvay, lfw_up, seed=4) != a
    batched = sliced_wasserstein_pyramid(solvay, lfw_up, seed=3, batch_size=4)
    assert_agrees(batched, a, rel=1e-5)
    streamed = sliced_wasserstein_pyramid(iter(solvay.split(10)), iter(lfw_up.split(5)), seed=3)
    assert_agrees(streamed, a, rel=1e-5)
    assert list(a) == [64, 32, 16, "avg"]


def test_small_projection_chunks_give_the_same_result(solvay, lfw_up, monkeypatch):
    solvay, lfw_up = solvay[:8], lfw_up[:8]
    full = sliced_wasserstein_pyramid(solvay, lfw_up)
    monkeypatch.setattr(swd, "PROJECTION_BYTES", 8 * 8 * 128 * 40)  # 40 directions at a time: 13 chunks
    assert_agrees(sliced_wasserstein_pyramid(solvay, lfw_up), full, rel=1e-5)


# ---------------------------------------------------------------- evaluator and cache
def test_evaluator_caches_real_descriptors(tmp_path, solvay, lfw_up):
    cache = tmp_path / "swd" / "reals.pt"
    first = SWDEvaluator(solvay, seed=2, cache_path=cache)
    assert not first.from_cache and cache.is_file()
    assert [p.name for p in cache.parent.iterdir()] == ["reals.pt"]  # no temp file left behind
    again = SWDEvaluator(solvay, seed=2, cache_path=cache)
    assert again.from_cache
    assert again.evaluate(lfw_up) == first.evaluate(lfw_up) == sliced_wasserstein_pyramid(solvay, lfw_up, seed=2)
    by_id = SWDEvaluator(iter([solvay]), seed=2, cache_path=tmp_path / "ids.pt", dataset_id="solvay@64")
    assert SWDEvaluator(None, seed=2, cache_path=tmp_path / "ids.pt", dataset_id="solvay@64").from_cache
    assert by_id.evaluate(lfw_up) == first.evaluate(lfw_up)


def test_cache_for_other_parameters_or_data_is_recomputed(tmp_path, solvay, lfw_up):
    cache = tmp_path / "reals.pt"
    SWDEvaluator(solvay, seed=2, cache_path=cache)
    assert not SWDEvaluator(solvay, seed=3, cache_path=cache).from_cache  # another seed
    assert not SWDEvaluator(lfw_up, seed=3, cache_path=cache).from_cache  # other images
    with pytest.raises(UserError, match="no SWD descriptor cache"):
        SWDEvaluator(None, seed=9, cache_path=cache, dataset_id="x")


def test_corrupt_cache_is_recomputed_not_fatal(tmp_path, solvay, lfw_up):
    cache = tmp_path / "reals.pt"
    cache.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable SWD cache"):
        evaluator = SWDEvaluator(solvay, cache_path=cache)
    assert evaluator.evaluate(lfw_up) == sliced_wasserstein_pyramid(solvay, lfw_up)
    assert SWDEvaluator(solvay, cache_path=cache).from_cache  # replaced by a good one


def test_iterable_reals_need_an_id_to_be_cached(tmp_path, solvay):
    with pytest.raises(ValueError, match="dataset_id"):
        SWDEvaluator(iter([solvay]), cache_path=tmp_path / "c.pt")


# ---------------------------------------------------------------- bad input
def test_bad_input_gives_user_errors(solvay, lfw_up):
    with pytest.raises(UserError, match="uint8"):
        sliced_wasserstein_pyramid(solvay.float(), lfw_up)
    with pytest.raises(UserError, match="power of two"):
        sliced_wasserstein_pyramid(solvay[..., :48, :48], lfw_up[..., :48, :48])
    with pytest.raises(UserError, match="power of two"):
        sliced_wasserstein_pyramid(solvay[..., :8, :8], lfw_up[..., :8, :8])
    with pytest.raises(UserError, match="equal size"):
        sliced_wasserstein_pyramid(solvay, lfw_up[:20])
    with pytest.raises(UserError, match="equal size"):
        sliced_wasserstein_pyramid(solvay[:20], lfw_up)
    with pytest.raises(UserError, match="like with like"):
        sliced_wasserstein_pyramid(solvay, lfw_up[..., :32, :32])
    with pytest.raises(UserError, match="square"):
        sliced_wasserstein_pyramid(solvay[..., :32], lfw_up[..., :32])
    with pytest.raises(UserError, match="empty"):
        sliced_wasserstein_pyramid(iter([]), lfw_up)
