"""``pggan-train --init CHECKPOINT``: a new run that starts from the networks of an existing checkpoint.

Typical use: fine-tune the official CelebA-HQ networks (``pggan-import``) on
one's own faces. The new run takes the checkpoint's G, D and EMA generator and
its architecture; everything else is fresh — new Adam optimizers, new
counters, new random streams — and the schedule is entered where the
checkpoint stood, at its resolution and fade-in alpha, as the official code's
``resume_kimg`` does. Its images-shown counter therefore starts at that point
of the schedule (so ``--total-kimg`` counts from the start of growth, like
the official ``total_kimg``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pggan.checkpoint import image_channels, load_checkpoint, load_networks, position
from pggan.errors import UserError
from pggan.schedule import Schedule
from pggan.train_options import TrainOptions

if TYPE_CHECKING:
    from pggan.train import Trainer

#: TrainOptions fields that the init checkpoint fixes, and where its configs hold them.
_FROM_CONFIG = {
    "resolution": ("generator_config", "max_resolution"),
    "latent_size": ("generator_config", "latent_size"),
    "fmap_base": ("generator_config", "fmap_base"),
    "fmap_max": ("generator_config", "fmap_max"),
    "mbstd_group_size": ("discriminator_config", "mbstd_group_size"),
    "fused_downsample": ("discriminator_config", "fused_downsample"),
    "mbstd_strided": ("discriminator_config", "mbstd_strided"),
}
_DEFAULTS = {"fused_downsample": False, "mbstd_strided": False}


def load_init_checkpoint(path: str) -> dict[str, Any]:
    """Load a checkpoint that ``--init`` can start from (any pggan or imported checkpoint)."""
    state = load_checkpoint(path)
    needed = ("generator_config", "discriminator_config", "generator", "discriminator", "resolution", "alpha")
    missing = [key for key in needed if key not in state]
    if missing:
        raise UserError(f"--init {path} is an incomplete pggan checkpoint (missing {', '.join(missing)})")
    return state


def options_for_init(options: TrainOptions, explicit: set[str], state: dict[str, Any]) -> TrainOptions:
    """The run's options with the architecture taken from the init checkpoint; conflicts are refused."""
    values: dict[str, Any] = {}
    for name, (section, key) in _FROM_CONFIG.items():
        value = state[section].get(key, _DEFAULTS.get(name))
        if name in explicit and getattr(options, name) != value:
            flag = name.replace("_", "-")
            raise UserError(
                f"--{flag} {getattr(options, name)} conflicts with --init {options.init}, whose networks have "
                f"{flag} {value}; leave --{flag} out"
            )
        values[name] = value
    return options.merged(values)


def entry_images(schedule: Schedule, resolution: int, alpha: float) -> int:
    """Images shown at which ``schedule`` stands at ``resolution`` with fade-in ``alpha``."""
    for phase in schedule.phases:
        if phase.resolution != resolution:
            continue
        if phase.fading and alpha < 1.0 and phase.end is not None and phase.end > phase.start:
            return phase.start + round(alpha * (phase.end - phase.start))
        if not phase.fading:
            return phase.start
    raise UserError(f"the schedule never reaches {resolution}x{resolution}")


def apply_init(trainer: Trainer, state: dict[str, Any], channels: int) -> None:
    """Copy the checkpoint's networks into a freshly built trainer and move it to the entry point."""
    if image_channels(state) != channels:
        raise UserError(
            f"--init networks make {image_channels(state)}-channel images, the dataset has {channels} channels"
        )
    s = trainer.gan
    if "generator_ema" not in state:
        state = {**state, "generator_ema": state["generator"]}
    load_networks(state, s.generator, s.discriminator, s.generator_ema)
    resolution, alpha = position(state)
    entry = entry_images(trainer.schedule, resolution, alpha)
    if entry >= trainer.schedule.total_images:
        raise UserError(
            f"--init enters the schedule at kimg {entry / 1000:g} ({resolution}x{resolution}, "
            f"alpha {alpha:g}); --total-kimg must be larger"
        )
    progress = trainer.progress
    progress.images_shown = entry
    progress.next_snapshot = trainer._snapshot_images()
    progress.next_swd = trainer._swd_images()
    progress.next_fid = trainer._fid_images()
    progress.next_tick = trainer._tick_images()
