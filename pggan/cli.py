"""Thin click shells over the library: parse options, call one function, report errors in one line.

Heavy imports (torch, lmdb, av) happen inside each command so that ``--help``
answers instantly.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pggan import defaults
from pggan.errors import UserError
from pggan.resolutions import MAX_RESOLUTION, MIN_RESOLUTION
from pggan.training.presets import OFFICIAL, PAPER

#: Help texts take their numbers from the constants the code uses.
RESOLUTION_RANGE = f"{MIN_RESOLUTION}..{MAX_RESOLUTION}"

# Idle OpenMP threads sleep instead of spinning. On a busy machine (other jobs, data-loading workers) spinning
# threads wait on descheduled peers at every parallel region and small-net training steps slow down many times
# (tools/bench_train.py under load shows it). Must be set before torch is imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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


# ---------------------------------------------------------------- pggan-prepare
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("sources", nargs=-1, type=click.Path())
@click.option("--out", "out", type=click.Path(), help="Dataset (LMDB directory) to create.")
@click.option("--resolution", type=int, help=f"Top resolution of the pyramid (power of two, {RESOLUTION_RANGE}).")
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
        from pggan.data.verify import verify_dataset

        result = verify_dataset(options["verify"])
        for problem in result.problems:
            click.echo(f"  {problem}", err=True)
        if not result.ok:
            raise UserError(result.summary())
        click.echo(result.summary())
        return
    if not options["out"] or options["resolution"] is None:
        raise UserError("pggan-prepare needs SOURCE..., --out DATASET and --resolution R (or --verify DATASET)")
    from pggan.data.prepare import prepare_dataset

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
@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--data", type=click.Path(), default="", help="Dataset made by pggan-prepare.")
@click.option("--resolution", type=int, default=0, help=f"Target resolution (power of two, {RESOLUTION_RANGE}).")
@click.option("--out", type=click.Path(), default="checkpoints", show_default=True, help="Parent of run directories.")
@click.option("--run-name", default=None, help="Run directory name [default: <dataset>-<resolution>].")
@click.option("--resume", default=None, help="RUN_DIR, CHECKPOINT, or 'auto' (continue the run if it exists).")
@click.option(
    "--preset",
    type=click.Choice(["official", "paper"]),
    default=defaults.PRESET,
    show_default=True,
    help=f"official: config.py's v2 presets per GPU count ({OFFICIAL.fade_kimg:g}+{OFFICIAL.stable_kimg:g} kimg "
    f"phases, {OFFICIAL.total_kimg:,.0f} kimg); paper: the v1 preset ({PAPER.fade_kimg:g}+{PAPER.stable_kimg:g}, "
    f"{PAPER.total_kimg:,.0f} kimg, batch 16 then 14/6/3, stddev group {PAPER.mbstd_group_size}). "
    "Every option below overrides it.",
)
@click.option("--fade-kimg", type=float, default=None, help="Fade-in length per resolution [default: preset].")
@click.option("--stable-kimg", type=float, default=None, help="Stable length per resolution [default: preset].")
@click.option(
    "--total-kimg",
    type=float,
    default=None,
    help=f"Stop here [default: preset, {OFFICIAL.total_kimg:,.0f} or {PAPER.total_kimg:,.0f}].",
)
@click.option(
    "--batch-schedule",
    default=None,
    help="RES:BATCH pairs like 4:16,8:16,... (global batch, all GPUs together), or 'official'/'paper' "
    "[default: the preset's table for this many processes].",
)
@click.option("--lr", type=float, default=defaults.LEARNING_RATE, show_default=True, help="Adam learning rate.")
@click.option("--lr-schedule", default=None, help="Per-resolution learning rates RES:LR,... [default: preset].")
@click.option("--fmap-base", type=int, default=defaults.FMAP_BASE, show_default=True)
@click.option("--fmap-max", type=int, default=defaults.FMAP_MAX, show_default=True)
@click.option("--latent-size", type=int, default=defaults.LATENT_SIZE, show_default=True)
@click.option(
    "--mbstd-group-size", type=int, default=None, help="0 or 1 disables minibatch stddev [default: preset, 4 or 16]."
)
@click.option(
    "--fused-downsample/--no-fused-downsample",
    default=False,
    show_default=True,
    help="D pools before conv1's lrelu, as the official TF code's fused_scale.",
)
@click.option(
    "--mbstd-strided/--no-mbstd-strided",
    default=False,
    show_default=True,
    help="Minibatch-stddev groups of strided samples, as the official layer.",
)
@click.option(
    "--init",
    default=None,
    help="Start from this checkpoint's networks (e.g. pggan-import's): fresh optimizers, schedule at its resolution.",
)
@click.option("--seed", type=int, default=defaults.SEED, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N (with torchrun: cuda).")
@click.option("--tick-kimg", type=float, default=None, help="kimg between log lines [default: official, per res].")
@click.option(
    "--snapshot-kimg", type=float, default=defaults.SNAPSHOT_KIMG, show_default=True, help="kimg between snapshots."
)
@click.option("--swd-kimg", type=float, default=None, help="Evaluate SWD every K kimg [default: off].")
@click.option(
    "--swd-images", type=int, default=defaults.SWD_IMAGES, show_default=True, help="Images per SWD evaluation."
)
@click.option("--fid-kimg", type=float, default=None, help="Evaluate FID every K kimg (needs --inception).")
@click.option(
    "--fid-images", type=int, default=defaults.FID_IMAGES, show_default=True, help="Fakes (and reals at most) per FID."
)
@click.option("--msssim-kimg", type=float, default=None, help="Evaluate MS-SSIM every K kimg [default: off].")
@click.option(
    "--msssim-images",
    type=int,
    default=defaults.MSSSIM_IMAGES,
    show_default=True,
    help="Images (pairs × 2) per MS-SSIM, generated and real.",
)
@click.option("--inception", type=click.Path(), default=None, help="Inception-v3 weights file for --fid-kimg.")
@click.option(
    "--allow-unverified-inception", is_flag=True, default=False, help="Accept a non-standard Inception weights file."
)
@click.option("--mirror/--no-mirror", default=None, help="Random horizontal flips of reals [default: on].")
@click.option("--ema-beta", type=float, default=defaults.EMA_BETA, show_default=True, help="EMA decay of G per step.")
@click.option("--ema-kimg", type=float, default=None, help="EMA half-life in kimg (overrides --ema-beta).")
@click.option(
    "--gp-space",
    type=click.Choice(list(defaults.GP_SPACES)),
    default=defaults.GP_SPACE,
    show_default=True,
    help="Gradient penalty on the full-size images the official D sees, or on native-resolution pixels.",
)
@click.option(
    "--amp/--no-amp",
    default=False,
    show_default=True,
    help="bf16 autocast of the forwards (the gradient penalty's norm stays float32); on the CPU too when given.",
)
@click.option(
    "--channels-last/--no-channels-last",
    default=None,
    help="NHWC memory for the networks and batches [default: on for CUDA, off on the CPU].",
)
@click.option(
    "--tf32/--no-tf32",
    default=defaults.TF32,
    show_default=True,
    help="TF32 convolutions and matmuls on CUDA (faster on Ampere+; the official runs are float32).",
)
@click.option("--compile/--no-compile", "compile", default=False, show_default=True, help="torch.compile.")
@click.option(
    "--workers", type=int, default=defaults.WORKERS, show_default=True, help="Data-loading processes per GPU."
)
@click.option("--grid-size", type=int, default=defaults.GRID_SIZE, show_default=True, help="Snapshot grids are N×N.")
@click.option(
    "--grid-ticks",
    type=int,
    default=defaults.GRID_TICKS,
    show_default=True,
    help="Write a small grid (ticks/grid-<kimg>.png) every N ticks, for pggan-sample --training-video; 0 = none.",
)
@click.option("--tensorboard/--no-tensorboard", default=True, show_default=True)
@click.option(
    "--dist-timeout",
    type=click.FloatRange(min=0.1),
    default=defaults.DIST_TIMEOUT_MINUTES,
    show_default=True,
    help="Minutes a process waits for a silent peer before the job stops (several processes only).",
)
@click.option("--allow-new-data", is_flag=True, help="Resume on a different dataset on purpose (fine-tuning).")
@click.pass_context
@_one_line_errors
def train_command(ctx: click.Context, **options: Any) -> None:
    """Train a progressive GAN from 4×4 up to --resolution (torchrun for several GPUs)."""
    from pggan.training.setup import run_training

    explicit = {name for name in options if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    run_training(options, explicit)


# ---------------------------------------------------------------- pggan-sample
@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("checkpoint", type=click.Path())
@click.option("--grid", type=click.Path(), default=None, help="Write an image grid PNG here (and its seeds, .json).")
@click.option("--rows", type=int, default=defaults.SAMPLE_ROWS, show_default=True, help="Grid rows.")
@click.option("--cols", type=int, default=defaults.SAMPLE_COLS, show_default=True, help="Grid columns.")
@click.option("--outdir", type=click.Path(), default=None, help="Write one PNG per face (seed<SSSSS>.png) here.")
@click.option(
    "--count", type=int, default=defaults.SAMPLE_COUNT, show_default=True, help="How many PNGs --outdir gets."
)
@click.option("--seed", type=int, default=0, show_default=True, help="First seed: faces are seeds S, S+1, ...")
@click.option("--seeds", default=None, help="These faces instead, e.g. 12,873,40-47 (grids in this order).")
@click.option("--video", type=click.Path(), default=None, help="Write a latent-walk (or morph, or edit) mp4 here.")
@click.option("--seconds", type=float, default=defaults.VIDEO_SECONDS, show_default=True, help="Video length.")
@click.option(
    "--fps",
    type=int,
    default=None,
    help=f"Frame rate [default: {defaults.VIDEO_FPS}; {defaults.TRAINING_VIDEO_FPS} for --training-video].",
)
@click.option(
    "--grid-size",
    default=defaults.VIDEO_GRID,
    show_default=True,
    help="Video layout COLSxROWS: one independent walk per cell.",
)
@click.option(
    "--smoothing",
    type=float,
    default=defaults.VIDEO_SMOOTHING,
    show_default=True,
    help="Walk smoothness: Gaussian σ in seconds.",
)
@click.option("--keyframes", type=int, default=None, help="Slerp through the faces of K seeds instead (looping).")
@click.option("--keyframe-seeds", default=None, help="Morph through exactly these faces, e.g. 12,873,44 (--video).")
@click.option("--loop/--no-loop", default=True, show_default=True, help="Morphs return to the first face.")
@click.option("--direction", default=None, help="Edit the faces along sefa:K (closed form) or FILE.npy.")
@click.option(
    "--strengths", default=None, help="Edit strengths LO:HI:N or a,b,c [default: -3:3:7]; videos sweep LO..HI."
)
@click.option(
    "--training-video",
    type=click.Path(),
    default=None,
    help="Write the run's grids, in kimg order, as an mp4 here (CHECKPOINT is the run directory).",
)
@click.option("--caption/--no-caption", default=True, show_default=True, help="kimg and resolution under each frame.")
@click.option("--raw", is_flag=True, help="Use the trained generator instead of its EMA average.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--batch-size", type=int, default=defaults.SAMPLE_BATCH, show_default=True, help="Video frames generated at once."
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@_one_line_errors
def sample_command(checkpoint: str, **options: Any) -> None:
    """Pick faces by seed, edit them along semantic directions, morph them, and show how training grew them.

    Samples at the checkpoint's current resolution and fade-in alpha, with the EMA generator unless --raw.
    """
    from pggan.pictures.sample_command import run_sample

    written = run_sample(checkpoint, progress=True, **options)
    for key in ("grid", "video", "training_video"):
        if options[key] is not None:
            click.echo(f"wrote {options[key]}")
    if options["outdir"] is not None:
        images = sum(1 for path in written if path.suffix == ".png" and path.parent == Path(options["outdir"]))
        click.echo(f"wrote {images} images to {options['outdir']}")


# ---------------------------------------------------------------- pggan-explore
@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("checkpoint", type=click.Path())
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. 0.0.0.0 lets anyone on the network use the page (and the GPU): a warning is printed.",
)
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--direction",
    "directions",
    multiple=True,
    help="NAME=FILE.npy: a slider for this direction file (InterFaceGAN format); repeat for more.",
)
@click.option("--sefa", type=int, default=5, show_default=True, help="Sliders for the first N closed-form directions.")
@click.option("--raw", is_flag=True, help="Use the trained generator instead of its EMA average.")
@click.option(
    "--cache-mb", type=float, default=256, show_default=True, help="Memory for rendered faces (least recently used go)."
)
@click.option(
    "--open", "open_browser", is_flag=True, help="Open the page in this machine's browser (if it has a display)."
)
@click.option("--verbose", is_flag=True, help="Log every request.")
@_one_line_errors
def explore_command(checkpoint: str, **options: Any) -> None:
    """Serve a web page to browse, pick, morph and edit the faces of CHECKPOINT (a file or a run directory).

    Runs in the foreground until Ctrl-C. From another machine, tunnel the port: ssh -L 8000:127.0.0.1:8000 HOST.
    """
    from pggan.pictures.explore.server import run_explore

    run_explore(checkpoint, **options)


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
    from pggan.metrics.swd_command import compare_swd as compare

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


# ---------------------------------------------------------------- pggan-import
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pickle_file", metavar="FILE.pkl", type=click.Path())
@click.option("--out", "out", type=click.Path(), required=True, help="The pggan checkpoint to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file at --out.")
@_one_line_errors
def import_command(pickle_file: str, out: str, overwrite: bool) -> None:
    """Convert an official release network pickle (G, D, Gs) into a pggan checkpoint, without TensorFlow.

    Nothing stored in the pickle is executed: only network variables are read.
    """
    from pggan.official.importer import import_official

    networks = import_official(pickle_file, out, overwrite=overwrite)
    click.echo(networks.summary())
    click.echo(f"wrote {out}")


# ---------------------------------------------------------------- pggan-fid
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("real", type=click.Path())
@click.argument("fake", type=click.Path())
@click.option("--inception", "inception_path", type=click.Path(), default=None, help="Inception-v3 weights file.")
@click.option(
    "--num-images",
    type=int,
    default=None,
    help=f"Fakes to draw, reals at most [default: {defaults.FID_IMAGES}, as published].",
)
@click.option("--resolution", type=int, default=None, help="Read images at this size [default: the smaller side's].")
@click.option("--seed", type=int, default=0, show_default=True, help="Subsets and latents.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=int, default=None, help="Images per Inception call [default: by image size].")
@click.option("--save-stats", "save_stats_path", type=click.Path(), default=None, help="Keep REAL's statistics (.npz).")
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write the result as JSON here.")
@click.option("--allow-unverified", is_flag=True, help="Accept a weights file that is not the standard one.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_one_line_errors
def fid_command(**options: Any) -> None:
    """Fréchet Inception Distance between two image sets (lower is closer), offline.

    REAL and FAKE may each be a dataset made by pggan-prepare, a folder of images, a checkpoint (or run
    directory), or an .npz of statistics (mu, sigma; pytorch-fid's format). --inception names the standard
    weights file pt_inception-2015-12-05-6726825d.pth; pggan never downloads it.
    """
    from pggan.metrics.fid import compare

    quiet = options.pop("quiet")
    report = compare(options.pop("real"), options.pop("fake"), progress=not quiet, **options)
    click.echo(f"FID {report['fid']:.4f}  ({report['num_real']} real, {report['num_images']} fake images)")
    if report["comparable"] is False:
        click.echo("warning: unverified Inception weights: this FID is not comparable with published numbers")


# ---------------------------------------------------------------- pggan-msssim
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", type=click.Path())
@click.option(
    "--num-images",
    type=int,
    default=None,
    help=f"Images to pair, even [default: {defaults.MSSSIM_IMAGES}, or the set's size rounded down to even].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Subset of a dataset or folder, or the latents.")
@click.option("--resolution", type=int, default=None, help="Measure at this size [default: the source's].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write the result as JSON here.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_one_line_errors
def msssim_command(**options: Any) -> None:
    """Mean MS-SSIM of pairs of images (the paper's diversity figure; higher means more alike).

    SOURCE is what pggan-swd reads: a dataset made by pggan-prepare, a folder or .zip of images, or a checkpoint
    (or run directory) whose EMA generator draws the images. Image 2i is paired with image 2i+1, as the official
    code pairs them. For a dataset this is the real-pair figure its generators should approach.
    """
    from pggan.metrics.ms_ssim import measure

    quiet = options.pop("quiet")
    report = measure(options.pop("source"), progress=not quiet, **options)
    click.echo(
        f"MS-SSIM {report['msssim']:.4f}  ({report['num_pairs']} pairs of {report['kind']} images at "
        f"{report['resolution']}², seed {report['seed']})"
    )
    if report["kind"] in ("dataset", "folder"):
        click.echo("real pairs: the figure a generator trained on these images should approach (higher = less diverse)")


# ---------------------------------------------------------------- pggan-eval
@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("run_dir", type=click.Path())
@click.option("--metrics", default=defaults.EVAL_METRICS, show_default=True, help="Comma-separated: swd, fid, msssim.")
@click.option(
    "--num-images",
    type=int,
    default=None,
    help=f"Images per metric [default: each metric's own: SWD {defaults.SWD_IMAGES}, FID {defaults.FID_IMAGES}, "
    f"MS-SSIM {defaults.MSSSIM_IMAGES}].",
)
@click.option("--inception", "inception_path", type=click.Path(), default=None, help="Inception-v3 weights, for fid.")
@click.option("--allow-unverified", is_flag=True, help="Accept an Inception weights file that is not the standard one.")
@click.option("--data", type=click.Path(), default=None, help="The real images [default: the run's dataset].")
@click.option("--seed", type=int, default=None, help="Subsets and latents [default: the run's seed, as training].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--swd-levels", is_flag=True, help="One SWD column per pyramid level, not only the average.")
@click.option(
    "--tensorboard/--no-tensorboard", default=True, show_default=True, help="Add new values to the run's TensorBoard."
)
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write every row as JSON here.")
@_one_line_errors
def eval_command(**options: Any) -> None:
    """Metrics of every checkpoint of a run, one table row each (the official evaluate_metrics).

    Rows follow kimg order: checkpoint-*.pt, then latest.pt unless a snapshot holds its position.

    Each metric runs at the checkpoint's resolution and alpha against the run's dataset; real sides are computed
    once per resolution and cached in RUN_DIR (training's caches are reused). Finished values are kept in
    RUN_DIR/eval-metrics.jsonl: run the same command again after an interruption and it continues.
    """
    from pggan.metrics.evaluate import evaluate_run

    evaluate_run(
        options["run_dir"],
        metrics=options["metrics"],
        num_images=options["num_images"],
        inception_path=options["inception_path"],
        allow_unverified=options["allow_unverified"],
        data=options["data"],
        seed=options["seed"],
        device=options["device"],
        json_path=options["json_path"],
        swd_levels=options["swd_levels"],
        tensorboard=options["tensorboard"],
        echo=lambda line: click.echo(line),
        warn=lambda line: click.echo(line, err=True),
    )
    if options["json_path"] is not None:
        click.echo(f"wrote {options['json_path']}")
