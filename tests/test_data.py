"""pggan.data.loader: the level reader and the exact, resumable, rank-sliced, worker-independent batch stream."""

import pickle
from itertools import islice
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from pggan.data.loader import (
    BatchStream,
    PyramidDataset,
    epoch_order,
    make_batch_loader,
    read_meta,
    to_float_images,
)
from pggan.data.prepare import prepare_dataset
from pggan.errors import UserError

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample"


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """29 real faces (the Solvay crops) plus the two colour portraits: 31 images, levels 4..16."""
    out = tmp_path_factory.mktemp("data") / "faces"
    prepare_dataset([str(SAMPLE / "solvay1927"), str(SAMPLE / "color")], out, 16, workers=1, progress=False)
    return out


def reference_samples(path, resolution, seed, total, mirror):
    """The global sample stream built straight from the definition: epochs of epoch_order, flips by index."""
    ds = PyramidDataset(path, resolution)
    images, epoch = [], 0
    while len(images) < total:
        permutation, flags = epoch_order(len(ds), seed, epoch)
        for index in permutation.tolist():
            image = ds[index]
            images.append(image.flip(-1) if mirror and flags[index] else image)
        epoch += 1
    return torch.stack(images[:total])


def test_dataset_reads_levels_as_uint8_chw(faces):
    meta = read_meta(faces)
    assert meta["count"] == 31 and meta["resolutions"] == [4, 8, 16]
    ds = PyramidDataset(faces, 8)
    assert len(ds) == 31 and ds.resolution == 8 and ds.channels == 3 and ds.resolutions == [4, 8, 16]
    assert ds.meta["count"] == 31
    image = ds[30]
    assert image.dtype == torch.uint8 and image.shape == (3, 8, 8)
    assert torch.equal(ds[-1], image)
    assert torch.equal(ds.get_batch([30, 0, 30]), torch.stack([ds[30], ds[0], ds[30]]))
    assert torch.equal(ds.get_batch(torch.tensor([2, 1])), torch.stack([ds[2], ds[1]]))
    with pytest.raises(IndexError):
        ds[31]
    with pytest.raises(IndexError):
        ds.get_batch([0, 31])
    with pytest.raises(UserError, match="has no 32×32 level"):
        PyramidDataset(faces, 32)
    assert torch.equal(pickle.loads(pickle.dumps(ds))[5], ds[5])


def test_dataset_is_safe_in_forked_dataloader_workers(faces):
    ds = PyramidDataset(faces, 16)
    expected = ds.get_batch(range(31))  # the parent has an open handle before the workers fork
    loader = DataLoader(ds, batch_size=8, num_workers=2)
    assert torch.equal(torch.cat(list(loader)), expected)
    assert torch.equal(ds.get_batch(range(31)), expected)  # and the parent's handle still works


def test_epoch_order_is_a_deterministic_permutation():
    p, m = epoch_order(1000, seed=7, epoch=3)
    p2, m2 = epoch_order(1000, seed=7, epoch=3)
    assert torch.equal(p, p2) and torch.equal(m, m2)
    assert p.dtype == torch.long and m.dtype == torch.bool
    assert torch.equal(torch.sort(p).values, torch.arange(1000))
    assert 400 < int(m.sum()) < 600
    assert not torch.equal(p, epoch_order(1000, seed=7, epoch=4)[0])
    assert not torch.equal(p, epoch_order(1000, seed=8, epoch=3)[0])
    assert epoch_order(1000, seed=0, epoch=0)[0][:5].tolist() == epoch_order(1000, 0, 0)[0][:5].tolist()


@pytest.mark.parametrize("mirror", [False, True])
def test_stream_follows_the_definition_across_epochs(faces, mirror):
    stream = BatchStream(faces, 8, batch_size=12, start=0, seed=3, mirror=mirror)
    got = torch.cat([next(stream) for _ in range(8)])  # 96 samples: three epochs of 31 and a bit
    assert torch.equal(got, reference_samples(faces, 8, seed=3, total=96, mirror=mirror))


def test_batches_larger_than_the_dataset_span_several_epochs(faces):
    loader = make_batch_loader(faces, 4, batch_size=80, start=0, seed=1)
    first, second = next(loader), next(loader)
    assert first.shape == (80, 3, 4, 4)
    assert torch.equal(torch.cat([first, second]), reference_samples(faces, 4, seed=1, total=160, mirror=False))


def test_resume_from_the_middle_equals_the_tail_of_an_uninterrupted_stream(faces):
    uninterrupted = torch.cat(list(islice(make_batch_loader(faces, 8, 8, start=0, seed=5, mirror=True), 12)))
    start = 3 * 8 + 5  # not a batch boundary, and the next batches cross the epoch end at 31
    resumed = torch.cat(list(islice(make_batch_loader(faces, 8, 8, start=start, seed=5, mirror=True), 8)))
    assert torch.equal(resumed, uninterrupted[start : start + 64])


def test_rank_slices_concatenate_to_the_single_process_batch(faces):
    single = list(islice(make_batch_loader(faces, 8, 12, start=7, seed=2, mirror=True), 5))
    for world in (2, 3, 4):
        ranks = [
            list(islice(make_batch_loader(faces, 8, 12, start=7, seed=2, rank=r, world_size=world, mirror=True), 5))
            for r in range(world)
        ]
        for k in range(5):
            assert all(part[k].shape == (12 // world, 3, 8, 8) for part in ranks)
            assert torch.equal(torch.cat([part[k] for part in ranks]), single[k])


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 workers on a 2-core machine, on purpose
def test_worker_processes_do_not_change_the_stream(faces):
    plain = list(islice(make_batch_loader(faces, 16, 6, start=11, seed=4, mirror=True), 9))
    loader = make_batch_loader(faces, 16, 6, start=11, seed=4, mirror=True, num_workers=2)
    try:
        with_workers = list(islice(loader, 9))
    finally:
        loader.close()
    assert all(torch.equal(a, b) for a, b in zip(plain, with_workers, strict=True))
    ranked = make_batch_loader(faces, 16, 6, start=11, seed=4, rank=1, world_size=2, mirror=True, num_workers=3)
    try:
        assert all(torch.equal(next(ranked), batch[3:]) for batch in plain)
    finally:
        ranked.close()


def test_mirror_flips_exactly_the_flagged_samples(faces):
    plain = next(make_batch_loader(faces, 16, 31, start=0, seed=9))
    mirrored = next(make_batch_loader(faces, 16, 31, start=0, seed=9, mirror=True))
    permutation, flags = epoch_order(31, 9, 0)
    for slot, index in enumerate(permutation.tolist()):
        expected = plain[slot].flip(-1) if flags[index] else plain[slot]
        assert torch.equal(mirrored[slot], expected)
    assert 0 < int(flags.sum()) < 31


def test_loader_refuses_bad_arguments(faces):
    with pytest.raises(UserError, match="not divisible"):
        make_batch_loader(faces, 8, 10, start=0, seed=0, world_size=4)
    with pytest.raises(UserError, match="has no 2048"):
        make_batch_loader(faces, 2048, 8, start=0, seed=0)
    with pytest.raises(UserError, match="rank"):
        make_batch_loader(faces, 8, 8, start=0, seed=0, rank=2, world_size=2)
    with pytest.raises(UserError, match="dataset not found"):
        make_batch_loader(faces.parent / "nothing", 8, 8, start=0, seed=0, num_workers=2)


def test_to_float_images_maps_uint8_to_minus_one_one():
    batch = torch.tensor([0, 127, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    floats = to_float_images(batch, device="cpu")
    assert floats.dtype == torch.float32 and floats.shape == (1, 3, 1, 1)
    assert torch.allclose(floats.flatten(), torch.tensor([-1.0, 127 / 127.5 - 1, 1.0]))
    assert batch.dtype == torch.uint8 and batch[0, 2, 0, 0] == 255  # input untouched
