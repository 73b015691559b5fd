"""The public API at the package top: every documented name resolves, and ``import pggan`` stays light."""

import subprocess
import sys

import pggan


def test_every_public_name_resolves_to_what_its_module_defines():
    import importlib

    for name in pggan.__all__:
        value = getattr(pggan, name)
        if name != "__version__":
            assert value is getattr(importlib.import_module(pggan.PUBLIC_MODULES[name]), name), name
    assert set(pggan.__all__) <= set(dir(pggan))


def test_the_short_list_of_the_design():
    from pggan import Discriminator, Generator, PyramidDataset, build_generator, load_checkpoint  # noqa: F401

    assert Generator(8, latent_size=8, fmap_base=32, fmap_max=8)(pggan_latents(), 8, 1.0).shape == (2, 3, 8, 8)


def pggan_latents():
    import torch

    return torch.randn(2, 8)


def test_import_pggan_does_not_import_torch():
    code = "import sys, pggan; print('torch' in sys.modules, pggan.__version__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", pggan.__version__], done.stderr


def test_unknown_names_are_attribute_errors():
    try:
        pggan.NotAThing  # noqa: B018
    except AttributeError as exc:
        assert "NotAThing" in str(exc)
    else:
        raise AssertionError("pggan.NotAThing resolved")
