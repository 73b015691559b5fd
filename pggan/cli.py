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
    """Build an LMDB multi-resolution pyramid from image folders, zip files or lists of paths.

    SOURCE is a folder (searched recursively), a .zip file, a text file listing
    image paths, or an image. Unusable files are skipped and listed in
    DATASET.skipped.txt. Check a finished dataset with --verify DATASET.
    """
    if options["verify"] is not None:
        if options["sources"] or options["out"]:
            raise UserError("--verify DATASET takes no SOURCE and no --out")
        from pggan.verify import verify_dataset

        result = verify_dataset(options["verify"])
        for problem in result.problems:
            click.echo(f"  {problem}", err=True)
        if not result.ok:
            raise UserError(result.summary())
        click.echo(result.summary())
        return
    if not options["out"] or options["resolution"] is None:
        raise UserError("pggan-prepare needs SOURCE..., --out DATASET and --resolution R (or --verify DATASET)")
    from pggan.prepare import prepare_dataset

    result = prepare_dataset(
        list(options["sources"]),
        options["out"],
        resolution=options["resolution"],
        channels=int(options["channels"]),
        workers=options["workers"],
        min_size=options["min_size"],
        overwrite=options["overwrite"],
    )
    click.echo(result.summary())


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
@_one_line_errors
def swd_command(**options: Any) -> None:
    """Laplacian-pyramid sliced Wasserstein distance between two image sets."""
    _not_implemented("pggan-swd")
