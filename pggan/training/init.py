"""``pggan-train --init CHECKPOINT``: the checkpoint, the options it fixes, and where it enters the schedule.

The trainer itself takes the networks (``Trainer.start_from``).

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

from typing import Any

from pggan.errors import UserError
from pggan.model.checkpoint import discriminator_config, generator_config, load_checkpoint, require_networks
from pggan.training.options import TrainOptions
from pggan.training.schedule import Schedule

#: TrainOptions fields that the init checkpoint fixes, and where its configs hold them.
_FROM_CONFIG = {
    "resolution": (generator_config, "max_resolution"),
    "latent_size": (generator_config, "latent_size"),
    "fmap_base": (generator_config, "fmap_base"),
    "fmap_max": (generator_config, "fmap_max"),
    "mbstd_group_size": (discriminator_config, "mbstd_group_size"),
    "fused_downsample": (discriminator_config, "fused_downsample"),
    "mbstd_strided": (discriminator_config, "mbstd_strided"),
}
_DEFAULTS = {"fused_downsample": False, "mbstd_strided": False}


def load_init_checkpoint(path: str) -> dict[str, Any]:
    """Load a checkpoint that ``--init`` can start from (any pggan or imported checkpoint)."""
    state = load_checkpoint(path)
    require_networks(state, f"--init {path}")
    return state


def options_for_init(options: TrainOptions, explicit: set[str], state: dict[str, Any]) -> TrainOptions:
    """The run's options with the architecture taken from the init checkpoint; conflicts are refused."""
    values: dict[str, Any] = {}
    for name, (config_of, key) in _FROM_CONFIG.items():
        value = config_of(state).get(key, _DEFAULTS.get(name))
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
