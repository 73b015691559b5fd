"""Every default of the method, in one place: the values of the paper and of the official release.

``TrainOptions``, the command-line options, the training step, the losses and
the tools all read them from here, so a default can never differ between the
CLI and the library. The per-GPU-count minibatch and learning-rate tables of
the official configurations live in :mod:`pggan.training.presets`.
"""

from __future__ import annotations

# Networks (paper Table 2; official config.py G/D_paper).
LATENT_SIZE = 512
FMAP_BASE = 8192
FMAP_MAX = 512
MBSTD_GROUP_SIZE = 4  # official D_paper default; the paper's v1 preset uses 16 (pggan.training.presets)

# Optimisation (official config.py: G_opt / D_opt, TrainingSchedule's G/D_lrate_base, train.G_smoothing).
LEARNING_RATE = 0.001
ADAM_BETAS = (0.0, 0.99)
ADAM_EPS = 1e-8
EMA_BETA = 0.999

# Loss (official loss.D_wgangp_acgan).
GP_LAMBDA = 10.0
GP_TARGET = 1.0
DRIFT_EPSILON = 0.001
#: Where the gradient penalty measures ‖∇D‖: "official" = the full-size images the official D receives,
#: "native" = the pixels at the current training resolution (what pggan did before; see losses.py).
GP_SPACES = ("official", "native")
GP_SPACE = "official"

# Schedule and outputs (official TrainingSchedule: lod_training_kimg, lod_transition_kimg; config.py total_kimg).
FADE_KIMG = 600.0
STABLE_KIMG = 600.0
TOTAL_KIMG = 12000.0
PRESET = "official"
#: kimg between progress ticks (official TrainingSchedule.tick_kimg_dict).
TICK_KIMG: dict[int, float] = {4: 160, 8: 140, 16: 120, 32: 100, 64: 80, 128: 60, 256: 40, 512: 20, 1024: 10}
SNAPSHOT_KIMG = 300.0
SWD_IMAGES = 16384
FID_IMAGES = 50000  # fakes per FID (and reals at most), as published numbers use
MSSSIM_IMAGES = 20000  # images per MS-SSIM (10,000 pairs), as the official config's metric-msssim-20k
EVAL_METRICS = "swd,msssim"  # pggan-eval's metrics (FID needs a weights file the user brings)
SEED = 0
WORKERS = 2
GRID_SIZE = 8
#: Ticks between the small grids the training video is made of (official image_snapshot_ticks = 1); 0 = none.
GRID_TICKS = 1
#: The official runs are float32: TF32 convolutions and matmuls stay off unless asked for.
TF32 = False
#: Consecutive non-finite steps after which a run stops. A single non-finite step is skipped, as the official
#: code does (tfutil applies gradients only when all are finite): it changes no weight and no Adam moment. Each
#: step draws a fresh batch and fresh latents, so a transient overflow does not repeat ten times in a row, while
#: a network that overflows on every input never recovers (skipped steps change nothing): ten in a row stop the
#: run seconds after it broke, with the last good checkpoint kept, where the official code would skip for ever.
MAX_NONFINITE_STEPS = 10
#: Minutes a process of a multi-process job waits for a silent peer before the job stops (torch's own: 30).
DIST_TIMEOUT_MINUTES = 5.0

# Reading user files (pggan-prepare, metric inputs).
#: Largest image file (or zip member, or list of image paths) that is read; larger ones are skipped before a
#: byte is read. Twice the uncompressed size of an 8-bit RGB image at Pillow's decompression-bomb threshold
#: (89.5 M pixels, 268 MB): any camera's photo fits, and a zip bomb or a device behind a symlink cannot fill
#: the memory of every decoding process.
MAX_IMAGE_FILE_BYTES = 512 << 20

# pggan-sample: grids, PNG folders and latent-walk videos.
SAMPLE_ROWS = 8
SAMPLE_COLS = 8
SAMPLE_COUNT = 64
VIDEO_SECONDS = 10.0
VIDEO_FPS = 30
VIDEO_GRID = "1x1"
VIDEO_SMOOTHING = 1.0  # Gaussian σ of the latent walk, in seconds
SAMPLE_BATCH = 8
#: The training video shows one grid per frame; 10 a second makes a full 1024² run's ~340 grids 34 seconds.
TRAINING_VIDEO_FPS = 10
