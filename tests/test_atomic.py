"""Atomic writes: a writer that fails half-way leaves the previous file whole and no temp file behind."""

import pytest

from pggan.atomic import atomic_write_bytes


def test_a_writer_failing_half_way_keeps_the_old_file(tmp_path):
    path = tmp_path / "latest.pt"
    path.write_bytes(b"the old checkpoint")

    def half_then_fail(handle):
        handle.write(b"half of the new")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of a save

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, half_then_fail)
    assert path.read_bytes() == b"the old checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]
    atomic_write_bytes(path, lambda handle: handle.write(b"new"))
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["latest.pt"]
