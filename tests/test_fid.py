"""pggan-fid on real files with a random-weights Inception file in the standard layout (the real one is not here).

Set PGGAN_INCEPTION_WEIGHTS to the standard pt_inception-2015-12-05-6726825d.pth to also run the end-to-end check
of the verified path.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pggan.cli import fid_command
from pggan.metrics import fid, inception
from tests.device import DEVICE_ARG
from tests.helpers import tiny_checkpoint

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    inception.write_random_weights(path, seed=0)
    return path


@pytest.fixture(scope="module")
def network(weights):
    return inception.load_inception(weights, allow_unverified=True)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """The library's download path must never be reached."""

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def run(*args):
    return CliRunner().invoke(fid_command, [str(a) for a in args])


def images(count, size, seed):
    return torch.randint(0, 256, (count, 3, size, size), generator=torch.Generator().manual_seed(seed)).to(torch.uint8)


def test_standard_digest_matches_the_file_names():
    assert all(name.endswith(f"-{inception.STANDARD_SHA256[:8]}.pth") for name in inception.STANDARD_NAMES)


def test_features_and_statistics_equal_torch_fidelitys(weights, network):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    ours = network
    assert not ours.verified
    reference = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights)
    )
    batch = images(4, 48, seed=1)  # not 299²: the TF1-compatible resize runs
    (expected,) = reference(batch)
    got = ours.features(batch)
    assert torch.equal(got, expected)
    stats = fid.stats_of_batches([batch[:3], batch[3:]], ours)
    features = expected.double().numpy()
    # Random Inception weights give features of tiny spread (σ ~ 1e-15 here): tolerances scale with the values,
    # never an absolute floor that a wrong estimator (÷N instead of ÷N−1) would fit under.
    expected_sigma = np.cov(features, rowvar=False)
    assert abs(expected_sigma).max() > 0
    np.testing.assert_allclose(stats.mu, features.mean(axis=0), rtol=1e-12, atol=1e-12 * abs(features).max())
    np.testing.assert_allclose(stats.sigma, expected_sigma, rtol=1e-9, atol=1e-9 * abs(expected_sigma).max())
    assert stats.num_images == 4 and stats.sigma.dtype == np.float64


def test_grayscale_is_replicated_to_rgb(network):
    ours = network
    gray = images(2, 32, seed=2)[:, :1]
    assert torch.equal(ours.features(gray), ours.features(gray.repeat(1, 3, 1, 1)))


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # pytorch-fid
def test_distance_equals_pytorch_fids_on_full_rank_statistics():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 32))
    b = rng.normal(size=(300, 32)) @ rng.normal(size=(32, 32)) * 0.5 + 0.2
    args = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid.frechet_distance(*args) == pytest.approx(calculate_frechet_distance(*args), rel=1e-10)
    assert fid.frechet_distance(args[0], args[1], args[0], args[1]) == pytest.approx(0.0, abs=1e-8)


def test_near_singular_statistics_stay_finite():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 64)), rng.normal(size=(5, 64))  # rank 4 covariances of 64 dimensions
    value = fid.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert np.isfinite(value) and value > 0


def test_streamed_statistics_do_not_depend_on_the_batching():
    x = torch.randn(37, 16, dtype=torch.float64) * 3 + 1
    one, many = fid.StatsAccumulator(), fid.StatsAccumulator()
    one.add(x)
    for part in x.split(5):
        many.add(part)
    np.testing.assert_allclose(many.result().sigma, one.result().sigma, rtol=1e-12)
    np.testing.assert_allclose(many.result().mu, np.mean(x.numpy(), axis=0), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # pytorch-fid
def test_statistics_files_round_trip_in_pytorch_fids_format(tmp_path):
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(2)
    sides = []
    for name, shift in (("real", 0.0), ("fake", 0.4)):
        x = rng.normal(size=(200, 16)) + shift
        stats = fid.FeatureStats(x.mean(0), np.cov(x, rowvar=False), 200)
        fid.save_stats(stats, tmp_path / f"{name}.npz")
        with np.load(tmp_path / f"{name}.npz") as saved:  # what pytorch-fid reads
            np.testing.assert_array_equal(saved["mu"], stats.mu)
            np.testing.assert_array_equal(saved["sigma"], stats.sigma)
        loaded = fid.load_stats(tmp_path / f"{name}.npz", features=16)
        assert loaded.num_images == 200 and loaded.mu.dtype == np.float64
        sides.append(stats)
    report = tmp_path / "fid.json"
    # 16-d statistics keep the distance fast; the command line takes only 2048-d ones (tests/test_hostile_inputs.py)
    fid.compare(tmp_path / "real.npz", tmp_path / "fake.npz", json_path=report, progress=False, features=16)
    expected = calculate_frechet_distance(sides[0].mu, sides[0].sigma, sides[1].mu, sides[1].sigma)
    value = json.loads(report.read_text())["fid"]
    assert value == pytest.approx(expected, rel=1e-10) and value > 0
    refused = run(tmp_path / "real.npz", tmp_path / "fake.npz")
    assert refused.exit_code == 1 and "2048-d" in refused.output


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "latest.pt"
    tiny_checkpoint(path, max_resolution=32, resolution=16)
    return path


def test_checkpoint_and_folder_statistics_are_deterministic_for_a_seed(network, checkpoint):
    from pggan.metrics.sources import open_image_set

    def stats(path, count, seed):
        return fid.image_set_statistics(open_image_set(path), count, 16, seed, torch.device("cpu"), network)

    first, again, other = stats(checkpoint, 3, 1), stats(checkpoint, 3, 1), stats(checkpoint, 3, 2)
    assert np.array_equal(first.mu, again.mu) and np.array_equal(first.sigma, again.sigma)
    assert not np.array_equal(first.mu, other.mu)
    subset, same_subset = stats(SAMPLE / "lfw_subset", 3, 5), stats(SAMPLE / "lfw_subset", 3, 5)
    assert np.array_equal(subset.sigma, same_subset.sigma) and subset.num_images == 3


@pytest.mark.slow  # three 2048-dimensional matrix square roots: about a minute on a busy 2-core machine
def test_folders_checkpoint_npz_out_and_in(weights, checkpoint, tmp_path):
    stats_path, report_path = tmp_path / "real.npz", tmp_path / "fid.json"
    common = ["--inception", weights, "--allow-unverified", "--num-images", 3, "--resolution", 16, "--seed", 1]
    first = run(SAMPLE / "lfw_subset", checkpoint, *common, "--save-stats", stats_path, "--json", report_path)
    assert first.exit_code == 0, first.output
    assert "not comparable with published numbers" in first.output
    report = json.loads(report_path.read_text())
    assert report["num_real"] == 3 and report["num_images"] == 3 and report["comparable"] is False
    assert report["fid"] > 0
    with np.load(stats_path) as saved:  # pytorch-fid's format
        assert saved["mu"].shape == (2048,) and saved["sigma"].shape == (2048, 2048)
        assert saved["mu"].dtype == np.float64 and int(saved["num_images"]) == 3
    fake_stats = tmp_path / "f.npz"
    again = run(stats_path, checkpoint, *common, "--json", tmp_path / "b.json", "--save-stats", fake_stats)
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "b.json").read_text())["fid"] == report["fid"]
    no_network = run(stats_path, fake_stats, "--json", tmp_path / "c.json")
    assert no_network.exit_code == 0, no_network.output
    assert json.loads((tmp_path / "c.json").read_text())["fid"] == pytest.approx(report["fid"], rel=1e-12)


def test_refusals(weights, tmp_path):
    args = [SAMPLE / "color", SAMPLE / "lfw_subset", "--num-images", 2]
    missing = run(*args, "--inception", tmp_path / "nope.pth")
    assert missing.exit_code != 0 and "weights file not found" in missing.output
    unverified = run(*args, "--inception", weights)
    assert unverified.exit_code != 0 and "--allow-unverified" in unverified.output
    assert "not the standard Inception weights file" in unverified.output
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, wrong)
    for flags in ([], ["--allow-unverified"]):
        result = run(*args, "--inception", wrong, *flags)
        assert result.exit_code != 0 and "is not an Inception-v3 FID weights file" in result.output
    shaped = tmp_path / "shaped.pth"
    state = torch.load(weights, weights_only=True)
    state["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's 1000 classes, not the FID network's 1008
    torch.save(state, shaped)
    result = run(*args, "--inception", shaped, "--allow-unverified")
    assert result.exit_code != 0 and "fc.weight is (1000, 2048)" in result.output
    code = tmp_path / "code.pth"
    torch.save({"x": Path("anything")}, code)  # a pickle that imports a class: refused, never run
    result = run(*args, "--inception", code, "--allow-unverified")
    assert result.exit_code != 0 and "not a loadable weights file" in result.output
    no_weights = run(*args)
    assert no_weights.exit_code != 0 and "--inception PATH" in no_weights.output
    for output in (missing.output, unverified.output, no_weights.output):
        assert output.startswith("Error: ") and "Traceback" not in output and len(output.splitlines()) == 1
    bad_npz = tmp_path / "bad.npz"
    np.savez(bad_npz, mu=np.zeros(3))
    result = run(bad_npz, bad_npz)
    assert result.exit_code != 0 and "not an FID statistics file" in result.output


@pytest.mark.skipif(not os.environ.get("PGGAN_INCEPTION_WEIGHTS"), reason="PGGAN_INCEPTION_WEIGHTS not set")
def test_the_standard_weights_file_end_to_end(tmp_path):
    path = Path(os.environ["PGGAN_INCEPTION_WEIGHTS"])
    assert inception.file_sha256(path) == inception.STANDARD_SHA256
    net = inception.load_inception(path)
    assert net.verified
    result = run(SAMPLE / "color", SAMPLE / "lfw_subset", "--inception", path, "--num-images", 2, "--json",
                 tmp_path / "r.json")  # fmt: skip
    assert result.exit_code == 0 and "not comparable" not in result.output
    assert json.loads((tmp_path / "r.json").read_text())["comparable"] is True


TINY = [
    "--fmap-base", "32", "--fmap-max", "8", "--latent-size", "8", "--device", DEVICE_ARG, "--workers", "0",
    "--batch-schedule", "4:8,8:8,16:8", "--fade-kimg", "0.016", "--stable-kimg", "0.016",
    "--tick-kimg", "0.016", "--snapshot-kimg", "0.032", "--grid-size", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from pggan.data.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("data") / "faces16"
    prepare_dataset([str(SAMPLE / "lfw_subset")], out, resolution=16, channels=3, workers=1, progress=False)
    return out


def test_training_refuses_fid_without_a_good_weights_file(dataset, weights, tmp_path):
    from pggan.cli import train_command

    base = ["--data", dataset, "--resolution", 16, "--out", tmp_path, *TINY, "--fid-kimg", 0.032]
    for extra, message in (
        ([], "--fid-kimg needs --inception PATH"),
        (["--inception", weights], "--allow-unverified"),
        (["--inception", tmp_path / "missing.pth"], "weights file not found"),
    ):
        result = CliRunner().invoke(train_command, [str(a) for a in base + extra])
        assert result.exit_code != 0 and message in result.output, result.output
        assert not (tmp_path / "faces16-16").exists()  # refused before the run directory was made


@pytest.mark.slow  # two 2048-dimensional matrix square roots
def test_fid_during_training_is_logged_and_reproduced_by_pggan_fid(dataset, weights, tmp_path):
    from pggan.cli import train_command

    out = tmp_path / "runs"
    args = ["--data", dataset, "--resolution", 16, "--out", out, "--run-name", "r", *TINY, "--total-kimg", 0.08,
            "--fid-kimg", 0.064, "--fid-images", 8, "--inception", weights, "--allow-unverified-inception",
            "--seed", 2]  # fmt: skip
    result = CliRunner().invoke(train_command, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ticks = [json.loads(line) for line in (out / "r" / "stats.jsonl").read_text().splitlines()]
    logged = [t for t in ticks if "fid" in t]
    assert [t["kimg"] for t in logged] == [0.064] and logged[0]["fid"] > 0
    assert (out / "r" / "fid-reals-16.npz").is_file()  # the real statistics, cached
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(out / "r"))
    report = tmp_path / "fid.json"
    command = [dataset, out / "r" / "checkpoint-000000.064.pt", "--inception", weights, "--allow-unverified",
               "--num-images", 8, "--seed", 2, "--json", report]  # fmt: skip
    again = run(*command)
    assert again.exit_code == 0, again.output
    assert json.loads(report.read_text())["fid"] == logged[0]["fid"]


def test_python_dash_m_pggan_fid_answers_help():
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run([sys.executable, "-m", "pggan", "fid", "--help"], capture_output=True, text=True,
                            timeout=120, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--inception" in result.stdout and "--allow-unverified" in result.stdout
