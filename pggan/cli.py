"""Thin click shells over the library: parse options, call one function, report errors in one line.

Heavy imports (torch, lmdb, av) happen inside each command so that ``--help``
answers instantly.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from pggan.errors import UserError


def _one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Report bad input as ``Error: ...`` with exit code 2 instead of a traceback.

    Set ``PGGAN_DEBUG=1`` to see the traceback anyway.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (UserError, ValueError, OSError) as exc:
            if os.environ.get("PGGAN_DEBUG"):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise click.ClickException(message) from None  # click prints "Error: ..." and exits 1
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper


def _not_implemented(command: str) -> None:
    raise UserError(f"{command} is not implemented yet in this version of pggan")


# ---------------------------------------------------------------- pggan-prepare
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("sources", nargs=-1, type=click.Path())
@click.option("--out", "out", type=click.Path(), help="Dataset (LMDB directory) to create.")
@click.option("--resolution", type=int, help="Top resolution of the pyramid (power of two, 4..1024).")
@click.option(
    "--channels", type=click.Choice(["1", "3"]), default="3", show_default=True, help="1 = grayscale, 3 = RGB."
)
@click.option("--workers", type=int, default=None, help="Decoding processes [default: number of CPU cores].")
@click.option("--min-size", type=int, default=None, help="Skip images whose shorter side is smaller [default: R/2].")
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing dataset at --out (only once the new one is complete)."
)
@click.option("--verify", "verify", type=click.Path(), default=None, help="Check an existing dataset and exit.")
@_one_line_errors
def prepare_command(**options: Any) -> None:
    """Build an LMDB multi-resolution pyramid from image folders, zip files or lists of paths."""
    _not_implemented("pggan-prepare")


# ---------------------------------------------------------------- pggan-train
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", type=click.Path(), help="Dataset made by pggan-prepare.")
@click.option("--resolution", type=int, help="Target resolution (power of two).")
@_one_line_errors
def train_command(**options: Any) -> None:
    """Train a progressive GAN from 4×4 up to --resolution."""
    _not_implemented("pggan-train")


# ---------------------------------------------------------------- pggan-sample
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path())
@click.option("--grid", type=click.Path(), default=None, help="Write an image grid PNG here.")
@click.option("--video", type=click.Path(), default=None, help="Write a latent-walk mp4 here.")
@click.option("--seed", type=int, default=0, show_default=True)
@_one_line_errors
def sample_command(**options: Any) -> None:
    """Draw image grids and latent-interpolation videos from a checkpoint."""
    _not_implemented("pggan-sample")


# ---------------------------------------------------------------- pggan-swd
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("real", type=click.Path())
@click.argument("fake", type=click.Path())
@click.option(
    "--num-images",
    type=click.IntRange(min=1),
    default=None,
    help="Images per side [default: 16384, or the smaller set's size].",
)
@click.option("--resolution", type=int, default=None, help="Compare at this size [default: the smaller side's].")
@click.option("--seed", type=int, default=0, show_default=True, help="Patches, directions, subsets and latents.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write the result as JSON here.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_one_line_errors
def swd_command(**options: Any) -> None:
    """Laplacian-pyramid sliced Wasserstein distance between two image sets (×10³, lower is closer).

    REAL and FAKE may each be a dataset made by pggan-prepare, a folder of images, or a checkpoint (or run
    directory), whose EMA generator draws the images.
    """
    from pggan.metrics.image_sets import compare

    report = compare(
        options["real"],
        options["fake"],
        num_images=options["num_images"],
        resolution=options["resolution"],
        seed=options["seed"],
        device=options["device"],
        json_path=options["json_path"],
        progress=not options["quiet"],
    )
    click.echo(f"{report['num_images']} images per side at {report['resolution']}², seed {report['seed']}")
    click.echo(report["table"])
