import pytest

from pggan.training.schedule import Schedule, parse_batch_schedule, parse_learning_rates

# config.py '-preset-v2-1gpu' resolved by train.TrainingSchedule (minibatch_base 4 fills 1024).
OFFICIAL_BATCH_SIZES = {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4, 1024: 4}


def test_official_defaults():
    s = Schedule(1024)
    assert s.fade_images == 600_000 and s.stable_images == 600_000
    assert s.batch_sizes() == OFFICIAL_BATCH_SIZES
    # 4×4 stable, then fade + stable for each of the 8 higher resolutions.
    assert s.growth_end_images == 600_000 + 8 * 1_200_000
    assert s.total_images == s.growth_end_images
    first = s.phase_at(0)
    assert (first.resolution, first.fading, first.batch_size, first.learning_rate) == (4, False, 128, 0.001)
    assert first.alpha(0) == 1.0
    assert s.phase_at(s.growth_end_images - 1).learning_rate == 0.0015
    assert s.phase_at(s.growth_end_images - 1).resolution == 1024


def test_phase_boundaries_and_alpha():
    s = Schedule(16, fade_kimg=1, stable_kimg=2)
    expected = [
        (0, 4, False),
        (1999, 4, False),
        (2000, 8, True),
        (2999, 8, True),
        (3000, 8, False),
        (4999, 8, False),
        (5000, 16, True),
        (6000, 16, False),
        (10**9, 16, False),
    ]
    for images, res, fading in expected:
        phase = s.phase_at(images)
        assert (phase.resolution, phase.fading) == (res, fading), images
    fade = s.phase_at(2000)
    assert fade.alpha(2000) == 0.0
    assert fade.alpha(2500) == pytest.approx(0.5)
    assert fade.alpha(2999) == pytest.approx(0.999)
    assert s.total_images == 8000


def test_fractional_kimg_and_total():
    s = Schedule(8, fade_kimg=0.05, stable_kimg=0.1, total_kimg=0.3, batch_sizes={4: 8, 8: 4})
    assert (s.fade_images, s.stable_images, s.total_images) == (50, 100, 300)
    assert s.phase_at(99).batch_size == 8
    assert s.phase_at(100).batch_size == 4 and s.phase_at(100).fading
    assert s.phase_at(299).resolution == 8 and not s.phase_at(299).fading


def test_no_fade():
    s = Schedule(8, fade_kimg=0, stable_kimg=1, batch_sizes={4: 4, 8: 4})
    assert not any(p.fading for p in s.phases)
    assert s.phase_at(1000).resolution == 8 and s.phase_at(1000).alpha(1000) == 1.0


def test_batch_schedule_parsing():
    assert parse_batch_schedule("4:16, 8:8") == {4: 16, 8: 8}
    assert parse_learning_rates("1024:0.0015") == {1024: 0.0015}
    for bad in ["4-16", "4:x", "3:16", "4:0", ""]:
        with pytest.raises(ValueError, match="unreadable batch schedule"):
            parse_batch_schedule(bad)


def test_missing_resolution_in_batch_schedule():
    with pytest.raises(ValueError, match=r"\[16\]"):
        Schedule(16, batch_sizes={4: 16, 8: 16})
