"""One vocabulary of resolutions: growth (4..R, ascending) and SWD levels (R..16, descending) are distinct."""

import pytest

from pggan.resolutions import growth_resolutions, is_power_of_two, is_resolution, stage_of, swd_resolutions


def test_growth_and_swd_sequences():
    assert growth_resolutions(4) == [4]
    assert growth_resolutions(1024) == [4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert swd_resolutions(16) == [16]
    assert swd_resolutions(256) == [256, 128, 64, 32, 16]
    assert [stage_of(r) for r in growth_resolutions(32)] == [0, 1, 2, 3]


@pytest.mark.parametrize("bad", [0, 2, 3, 12, 2048, True, 8.0, "8", None])
def test_checks(bad):
    assert not is_resolution(bad)
    with pytest.raises(ValueError):
        growth_resolutions(bad)


def test_power_of_two_and_bounds():
    assert is_power_of_two(1) and is_power_of_two(4096) and not is_power_of_two(True)
    assert is_resolution(64, high=64) and not is_resolution(128, high=64)
    with pytest.raises(ValueError, match="at least 16"):
        swd_resolutions(8)
