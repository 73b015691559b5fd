"""pggan: Progressive Growing of GANs (Karras et al., ICLR 2018) in PyTorch.

The public API is the names below, importable from the package top (``from pggan import Generator``); the
module paths under it may change between versions, these names do not. Each is imported on first use, so
``import pggan`` stays cheap (no torch until a name needs it).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
PUBLIC_MODULES = {
    # the method
    "Generator": "pggan.model.networks",
    "Discriminator": "pggan.model.networks",
    "d_loss": "pggan.model.losses",
    "g_loss": "pggan.model.losses",
    # datasets
    "prepare_dataset": "pggan.data.prepare",
    "verify_dataset": "pggan.data.verify",
    "PyramidDataset": "pggan.data.loader",
    # checkpoints
    "load_checkpoint": "pggan.model.checkpoint",
    "save_checkpoint": "pggan.model.checkpoint",
    "build_generator": "pggan.model.checkpoint",
    "build_discriminator": "pggan.model.checkpoint",
    "position": "pggan.model.checkpoint",
    # training
    "TrainOptions": "pggan.training.options",
    # pictures: faces by seed, directions, grids, videos
    "seed_latents": "pggan.pictures.latents",
    "parse_seeds": "pggan.pictures.latents",
    "slerp_path": "pggan.pictures.latents",
    "seed_path": "pggan.pictures.latents",
    "sefa_directions": "pggan.pictures.directions",
    "load_direction_file": "pggan.pictures.directions",
    "apply_direction": "pggan.pictures.directions",
    "generate_faces_uint8": "pggan.pictures.generate",
    "generate_uint8": "pggan.pictures.generate",
    "make_grid": "pggan.pictures.grids",
    "save_png": "pggan.pictures.grids",
    "save_image_grid": "pggan.pictures.grids",
    "render_training_video": "pggan.pictures.training_video",
    "Explorer": "pggan.pictures.explore.faces",  # the explore page's faces, without HTTP
    "run_explore": "pggan.pictures.explore.server",  # pggan-explore
    # metrics
    "sliced_wasserstein_pyramid": "pggan.metrics.swd",
    "frechet_distance": "pggan.metrics.fid",
    # the official release
    "import_official": "pggan.official.importer",
    # errors
    "UserError": "pggan.errors",
}

__all__ = ["__version__", *PUBLIC_MODULES]


def __getattr__(name: str) -> Any:
    if name not in PUBLIC_MODULES:
        raise AttributeError(f"module 'pggan' has no attribute {name!r}")
    value = getattr(importlib.import_module(PUBLIC_MODULES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(PUBLIC_MODULES))
