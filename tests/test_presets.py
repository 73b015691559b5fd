"""The presets are config.py's, resolved as the official TrainingSchedule resolves them, for any process count.

Values from tkarras/progressive_growing_of_gans config.py ("Config presets"):
  -preset-v1-1gpu:  D.mbstd_group_size = 16; minibatch_base = 16; minibatch_dict = {256: 14, 512: 6, 1024: 3};
                    lod_training_kimg = lod_transition_kimg = 800; total_kimg = 19000
  -preset-v2-1gpu:  minibatch_base = 4;  minibatch_dict = {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16,
                    256: 8, 512: 4};  G_lrate_dict = {1024: 0.0015}; total_kimg = 12000
  -preset-v2-2gpus: minibatch_base = 8;  minibatch_dict = {4: 256, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16,
                    256: 8};  G_lrate_dict = {512: 0.0015, 1024: 0.002}; total_kimg = 12000
  -preset-v2-4gpus: minibatch_base = 16; minibatch_dict = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16};
                    G_lrate_dict = {256: 0.0015, 512: 0.002, 1024: 0.003}; total_kimg = 12000
  -preset-v2-8gpus: minibatch_base = 32; minibatch_dict = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32};
                    G_lrate_dict = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}; total_kimg = 12000
  -fp32:            max_minibatch_per_gpu = {256: 16, 512: 8, 1024: 4}
train.py TrainingSchedule: minibatch = minibatch_dict.get(res, minibatch_base); minibatch -= minibatch % num_gpus;
capped at max_minibatch_per_gpu[res] * num_gpus; lod_training_kimg = lod_transition_kimg = 600 by default.
"""

import pytest

from pggan.errors import UserError
from pggan.training.options import TrainOptions, upgrade_saved_options
from pggan.training.plan import build_schedule, check_batch_sizes
from pggan.training.presets import OFFICIAL, PAPER, resolve_batches, resolve_learning_rates

RES = [4, 8, 16, 32, 64, 128, 256, 512, 1024]
OFFICIAL_BATCHES = {
    1: [128, 128, 128, 64, 32, 16, 8, 4, 4],
    2: [256, 256, 128, 64, 32, 16, 8, 8, 8],
    4: [512, 256, 128, 64, 32, 16, 16, 16, 16],
    8: [512, 256, 128, 64, 32, 32, 32, 32, 32],
}
OFFICIAL_LRATES = {
    1: {1024: 0.0015},
    2: {512: 0.0015, 1024: 0.002},
    4: {256: 0.0015, 512: 0.002, 1024: 0.003},
    8: {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003},
}


@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_official_tables_are_config_py(gpus):
    assert resolve_batches(OFFICIAL, 1024, gpus, 4) == dict(zip(RES, OFFICIAL_BATCHES[gpus], strict=True))
    assert resolve_learning_rates(OFFICIAL, gpus) == OFFICIAL_LRATES[gpus]
    options = TrainOptions(resolution=1024).resolved(gpus)
    schedule = build_schedule(options)
    check_batch_sizes(schedule, gpus, options.mbstd_group_size)  # the README's 8-GPU command no longer fails
    assert schedule.batch_sizes() == dict(zip(RES, OFFICIAL_BATCHES[gpus], strict=True))
    rates = {p.resolution: p.learning_rate for p in schedule.phases}
    assert rates == {r: OFFICIAL_LRATES[gpus].get(r, 0.001) for r in RES}


def test_defaults_are_the_official_run():
    options = TrainOptions(resolution=1024).resolved(1)
    assert (options.preset, options.fade_kimg, options.stable_kimg, options.total_kimg) == ("official", 600, 600, 12000)
    assert options.mirror is True and options.mbstd_group_size == 4 and options.gp_space == "official"
    assert options.tf32 is False and options.processes == 1
    assert build_schedule(options).total_images == 12_000_000
    # Whatever the target: 12,000 kimg at 256 too (the official total does not depend on the resolution).
    assert build_schedule(TrainOptions(resolution=256).resolved(1)).total_images == 12_000_000


def test_paper_preset_is_v1():
    options = TrainOptions(resolution=1024, preset="paper").resolved(1)
    assert (options.fade_kimg, options.stable_kimg, options.total_kimg, options.mbstd_group_size) == (
        800,
        800,
        19000,
        16,
    )
    assert options.batch_schedule == "4:16,8:16,16:16,32:16,64:16,128:16,256:14,512:6,1024:3"
    assert options.lr_schedule == "" and options.mirror is True
    check_batch_sizes(build_schedule(options), 1, 16)  # group min(16, batch): 14, 6 and 3 work


def test_explicit_options_override_the_preset():
    options = TrainOptions(
        resolution=16, preset="paper", batch_schedule="4:8,8:8,16:8", total_kimg=5, mbstd_group_size=2, mirror=False
    ).resolved(2)
    assert (options.batch_schedule, options.total_kimg, options.mbstd_group_size, options.mirror) == (
        "4:8,8:8,16:8",
        5,
        2,
        False,
    )
    assert options.fade_kimg == 800  # not given: the preset's
    # A named table resolves for the process count.
    assert TrainOptions(resolution=8, batch_schedule="paper").resolved(4).batch_schedule == "4:16,8:16"


@pytest.mark.parametrize("processes", [3, 5, 6, 7, 12, 16, 24, 32, 64])
@pytest.mark.parametrize("preset", [OFFICIAL, PAPER])
def test_any_process_count_gets_a_valid_schedule(processes, preset):
    batches = resolve_batches(preset, 1024, processes, preset.mbstd_group_size)
    table = max(n for n in preset.tables if n <= processes)
    for res, batch in batches.items():
        official = preset.tables[table].batch(res)
        local = batch // processes
        assert batch % processes == 0
        assert batch >= official  # never fewer images per step than the official table
        assert local >= min(preset.mbstd_group_size, official // table)  # never a smaller stddev group
        assert local - -(-official // processes) < preset.mbstd_group_size  # raised by less than one group
    options = TrainOptions(resolution=1024, preset=preset.name).resolved(processes)
    check_batch_sizes(build_schedule(options), processes, options.mbstd_group_size)
    assert options.lr_schedule == ",".join(f"{r}:{v:g}" for r, v in preset.tables[table].lrate_dict.items())


def test_rule_for_sixteen_processes():
    # The 8-GPU table; at 1024 its 32 images would give 2 per process: raised to the stddev group, 4 each.
    batches = resolve_batches(OFFICIAL, 1024, 16, 4)
    assert batches[4] == 512 and batches[64] == 64 and batches[1024] == 64


def test_resumed_schedule_is_kept_or_refused_in_one_line():
    saved = TrainOptions(resolution=1024).resolved(1)
    assert saved.resolved(2).batch_schedule == saved.batch_schedule  # divides: kept
    with pytest.raises(UserError, match="not divisible by the 8 processes: pass --batch-schedule official"):
        check_batch_sizes(build_schedule(saved.resolved(8)), 8, 4)
    again = saved.merged({"batch_schedule": "official"}).resolved(8)
    assert again.batch_schedule == TrainOptions(resolution=1024).resolved(8).batch_schedule
    assert again.processes == 8


def test_options_saved_before_presets_keep_their_meaning():
    old = {"resolution": 16, "fade_kimg": 1.0, "stable_kimg": 2.0, "total_kimg": None, "batch_schedule": "official"}
    assert upgrade_saved_options(old)["total_kimg"] == 2.0 + 2 * 3.0


def test_cli_defaults_are_the_library_defaults():
    """pggan-train's option defaults come from the same source as TrainOptions (pggan.defaults)."""
    from pggan.cli import train_command

    library = TrainOptions()
    for param in train_command.params:
        if param.name in ("resume", "help") or not hasattr(library, param.name):
            continue
        assert param.default == getattr(library, param.name), param.name


def test_tf32_is_an_explicit_choice_off_by_default():
    """The official runs are float32; PyTorch's cuDNN default would be TF32 on Ampere+. The flag decides both."""
    import torch

    from pggan.devices import configure_torch

    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        configure_torch(torch.device("cuda"), tf32=TrainOptions().tf32)
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        configure_torch(torch.device("cuda"), tf32=True)
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark = saved
    assert TrainOptions(resolution=8).resolved(1).to_dict()["tf32"] is False  # recorded in options.json
