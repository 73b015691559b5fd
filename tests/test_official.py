"""pggan-import: official pickles (written here in the release's exact format) become exact pggan networks."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pggan.__main__ import main
from pggan.errors import UserError
from pggan.model.checkpoint import build_discriminator, build_generator, load_checkpoint
from pggan.official.importer import import_official, lod_to_resolution_alpha
from tests.official_pickles import official_states, write_official_pickle
from tests.official_reference import d_paper, g_paper


def variables(state):
    return {name: np.asarray(value) for name, value in state["variables"]}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def import_file(tmp_path, states, **write_kwargs):
    pkl = write_official_pickle(tmp_path / "net.pkl", states, **write_kwargs)
    numpy1 = write_kwargs.get("numpy1", False)
    assert (b"numpy.core.multiarray" in pkl.read_bytes()) == numpy1 != (b"numpy._core" in pkl.read_bytes())
    out = tmp_path / "net.pt"
    result = cli("import", pkl, "--out", out)
    assert result.exit_code == 0, result.output
    return load_checkpoint(out), result.output


@pytest.mark.parametrize(
    ("fused", "group", "lod", "numpy1"),
    [
        (False, 16, 0.0, True),  # the released layout, numpy 1.x names, full resolution
        (False, 16, 1.3, False),  # released layout while fading in 16x16 (resolution 16, alpha 0.7)
        (True, 4, 1.3, True),  # TF fused_scale layout: transposed G conv, pooled-then-activated D
        (True, 4, 3.0, False),  # the 4x4 stage
        (True, 0, 2.6, False),  # minibatch stddev off
    ],
)
def test_imported_networks_match_the_official_forward_pass(tmp_path, fused, group, lod, numpy1):
    states = official_states(seed=1, resolution=32, fused=fused, mbstd_group_size=group, lod=lod)
    state, output = import_file(tmp_path, states, numpy1=numpy1)
    resolution, alpha = lod_to_resolution_alpha(np.float32(lod), 32)
    assert (state["resolution"], state["alpha"]) == (resolution, alpha)
    assert f"lod             {float(np.float32(lod)):g}" in output and "latent size     12" in output
    lod_in = float(np.float32(lod))
    level = 32 // resolution
    rng = np.random.default_rng(5)
    latents = rng.standard_normal((8, 12))
    for ema, g_state in ((False, states[0]), (True, states[2])):
        generator = build_generator(state, ema=ema)
        with torch.no_grad():
            ours = generator(torch.from_numpy(latents).float(), resolution, alpha).double()
        ours = ours.repeat_interleave(level, 2).repeat_interleave(level, 3).numpy()  # full size, as G_paper
        reference = g_paper(variables(g_state), latents, 32, lod_in)
        assert ours.shape == reference.shape == (8, 3, 32, 32)
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
    images = rng.uniform(-1, 1, (8, 3, 32, 32))
    discriminator = build_discriminator(state).eval()
    small = (
        torch.nn.functional.avg_pool2d(torch.from_numpy(images), level).float()
        if level > 1
        else torch.from_numpy(images).float()
    )
    with torch.no_grad():
        scores = discriminator(small, resolution, alpha).double().numpy()
    reference = d_paper(variables(states[1]), images, 32, lod_in, group)
    np.testing.assert_allclose(scores, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


def test_strided_groups_make_the_imported_critic_exact_for_any_batch(tmp_path):
    states = official_states(seed=2, resolution=16, fused=False, mbstd_group_size=4, lod=0.0)
    state, _ = import_file(tmp_path, states)
    assert state["discriminator_config"]["mbstd_strided"] is True
    images = np.random.default_rng(0).uniform(-1, 1, (12, 3, 16, 16))
    reference = d_paper(variables(states[1]), images, 16, 0.0, 4)
    strided = build_discriminator(state).eval()
    consecutive = build_discriminator(
        {**state, "discriminator_config": {**state["discriminator_config"], "mbstd_strided": False}}
    )
    with torch.no_grad():
        x = torch.from_numpy(images).float()
        ours, other = strided(x, 16, 1.0).double().numpy(), consecutive.eval()(x, 16, 1.0).double().numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
    assert not np.allclose(other, reference, rtol=1e-3)  # the grouping matters at batch 12, group 4


def test_sample_works_on_an_imported_checkpoint(tmp_path):
    states = official_states(seed=3, resolution=16, fused=True, lod=0.5)
    import_file(tmp_path, states)
    result = cli(
        "sample", tmp_path / "net.pt", "--grid", tmp_path / "grid.png", "--rows", 2, "--cols", 2, "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size == (2 * 16, 2 * 16)


def test_existing_output_needs_overwrite(tmp_path):
    pkl = write_official_pickle(tmp_path / "net.pkl", official_states(resolution=8))
    out = tmp_path / "net.pt"
    out.write_bytes(b"keep")
    result = cli("import", pkl, "--out", out)
    assert result.exit_code != 0 and "--overwrite" in result.output and out.read_bytes() == b"keep"
    assert cli("import", pkl, "--out", out, "--overwrite").exit_code == 0
    assert load_checkpoint(out)["generator_config"]["max_resolution"] == 8


class Exploit:
    """Unpickling this would run ``os.system`` (what a hostile network pickle can do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def refused(tmp_path, path, *fragments):
    out = tmp_path / "out.pt"
    result = cli("import", path, "--out", out)
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists()
    return lines[0]


def test_code_in_the_pickle_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    states = list(official_states(resolution=8))
    states[0] = {**states[0], "static_kwargs": {**states[0]["static_kwargs"], "x": Exploit(marker)}}
    path = write_official_pickle(tmp_path / "evil.pkl", tuple(states))
    refused(tmp_path, path, "refused", "system")
    assert not marker.exists()
    path = tmp_path / "plain.pkl"  # a bare exploit, not inside any network
    path.write_bytes(pickle.dumps(Exploit(marker), protocol=4))
    refused(tmp_path, path, "refused")
    assert not marker.exists()


def test_object_arrays_are_refused(tmp_path):
    g, d, gs = official_states(resolution=8)
    bad = [(n, np.array(list(v.ravel()), dtype=object) if n == "4x4/Conv/bias" else v) for n, v in g["variables"]]
    # Refused while unpickling, before any array of objects exists: dtype 'O' is not on the numeric allow-list.
    refused(tmp_path, write_official_pickle(tmp_path / "o.pkl", ({**g, "variables": bad}, d, gs)), "dtype 'O8'")


def _edit(states, index, variables):
    states = list(states)
    states[index] = {**states[index], "variables": variables}
    return tuple(states)


def test_wrong_missing_and_extra_variables_are_refused(tmp_path):
    states = official_states(resolution=8)
    g_vars, d_vars = states[0]["variables"], states[1]["variables"]
    wrong = [(n, v[:-1] if n == "8x8/Conv1/bias" else v) for n, v in g_vars]
    refused(tmp_path, write_official_pickle(tmp_path / "w.pkl", _edit(states, 0, wrong)), "8x8/Conv1/bias", "shape")
    missing = [(n, v) for n, v in d_vars if n != "FromRGB_lod1/bias"]
    refused(
        tmp_path, write_official_pickle(tmp_path / "m.pkl", _edit(states, 1, missing)), "missing", "FromRGB_lod1/bias"
    )
    extra = [*states[2]["variables"], ("16x16/Conv1/weight", np.zeros((3, 3, 4, 4), np.float32))]
    refused(tmp_path, write_official_pickle(tmp_path / "e.pkl", _edit(states, 2, extra)), "Gs", "unexpected")
    text = [(n, "text" if n == "lod" else v) for n, v in g_vars]
    refused(tmp_path, write_official_pickle(tmp_path / "t.pkl", _edit(states, 0, text)), "lod")


def test_truncated_and_foreign_files_are_refused(tmp_path):
    data = write_official_pickle(tmp_path / "full.pkl", official_states(resolution=8)).read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    refused(tmp_path, tmp_path / "cut.pkl", "cut.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    refused(tmp_path, tmp_path / "list.pkl", "(G, D, Gs)")
    refused(tmp_path, tmp_path / "absent.pkl", "not found")
    (tmp_path / "call.pkl").write_bytes(b"cnumpy\nndarray\n((I2\nttR.")  # numpy.ndarray((2,)) called directly
    refused(tmp_path, tmp_path / "call.pkl", "call.pkl")


@pytest.mark.parametrize(
    ("g_kwargs", "d_kwargs", "message"),
    [
        ({"label_size": 4}, {}, "label"),
        ({"use_wscale": False}, {}, "use_wscale"),
        ({}, {"dtype": "float16"}, "float16"),
        ({"fmap_decay": 0.5}, {}, "fmap_decay"),
        ({"resolution": 64}, {}, "resolution"),
    ],
)
def test_unsupported_options_are_refused(tmp_path, g_kwargs, d_kwargs, message):
    states = official_states(resolution=8, g_kwargs=g_kwargs, d_kwargs=d_kwargs)
    refused(tmp_path, write_official_pickle(tmp_path / "u.pkl", states), message)


def test_float16_variables_and_stylegan_files_are_refused(tmp_path):
    states = official_states(resolution=8)
    half = [(n, v.astype(np.float16) if n == "4x4/Conv/weight" else v) for n, v in states[1]["variables"]]
    refused(tmp_path, write_official_pickle(tmp_path / "h.pkl", _edit(states, 1, half)), "float16")
    style = tuple({**s, "build_func_name": f} for s, f in zip(states, ("G_style", "D_basic", "G_style"), strict=True))
    refused(tmp_path, write_official_pickle(tmp_path / "s.pkl", style), "StyleGAN")
    dnnlib = write_official_pickle(tmp_path / "d.pkl", states, module_name="dnnlib.tflib.network")
    refused(tmp_path, dnnlib, "StyleGAN")


def test_lod_mapping():
    assert lod_to_resolution_alpha(0.0, 1024) == (1024, 1.0)
    assert lod_to_resolution_alpha(0.25, 1024) == (1024, 0.75)
    assert lod_to_resolution_alpha(1.0, 1024) == (512, 1.0)
    assert lod_to_resolution_alpha(7.5, 1024) == (8, 0.5)
    assert lod_to_resolution_alpha(8.0, 1024) == (4, 1.0)
    assert lod_to_resolution_alpha(9.0, 1024) == (4, 1.0)  # clipped as the official networks clip it
    with pytest.raises(UserError):
        import_official(Path("/nonexistent.pkl"), Path("/tmp/never.pt"))


OFFICIAL = os.environ.get("PGGAN_OFFICIAL_PKL")


@pytest.mark.skipif(
    not OFFICIAL, reason="set PGGAN_OFFICIAL_PKL to a release pickle (e.g. karras2018iclr-celebahq-1024x1024.pkl)"
)
def test_real_official_file_generates_the_import_example_faces(tmp_path):
    state, output = import_file_real(tmp_path, Path(OFFICIAL))
    generator = build_generator(state)
    latents = np.random.RandomState(1000).randn(1000, generator.latent_size)  # as import_example.py
    latents = latents[[477, 56, 83, 887, 583, 391, 86, 340, 341, 415]]
    with torch.no_grad():
        images = generator(torch.from_numpy(latents).float(), state["resolution"], state["alpha"])
    assert images.shape == (10, 3, state["resolution"], state["resolution"])
    from pggan.pictures.grids import images_to_uint8, save_png

    for index, image in enumerate(images_to_uint8(images)):
        save_png(image.permute(1, 2, 0).numpy(), tmp_path / f"img{index}.png")
    assert images.abs().mean() < 2 and 0.1 < images.std() < 2  # faces in [-1, 1], not noise blown up
    print(output, f"images in {tmp_path}")


def import_file_real(tmp_path, path):
    out = tmp_path / "official.pt"
    result = cli("import", path, "--out", out)
    assert result.exit_code == 0, result.output
    return load_checkpoint(out), result.output
