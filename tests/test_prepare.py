"""pggan-prepare on real files: sources, every format and mode, orientation, crop, resize, the exact pyramid."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pggan.data.loader import PyramidDataset, read_meta
from pggan.data.prepare import prepare_dataset
from pggan.data.pyramid import MAP_SIZE, record_key, shared_env
from pggan.errors import UserError

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample"


def top_images(path, resolution=None):
    """All images of the top (or given) level as (N, H, W, C) uint8 numpy."""
    meta = read_meta(path)
    ds = PyramidDataset(path, resolution or meta["resolution"])
    return ds.get_batch(range(len(ds))).permute(0, 2, 3, 1).numpy()


def float_cascade_reference(top_nchw: torch.Tensor) -> dict[int, torch.Tensor]:
    """Official dataset_tool.py, computed independently in float64: each level is the 2×2 mean of the unrounded
    level above (``img = (img[:, 0::2, 0::2] + img[:, 0::2, 1::2] + img[:, 1::2, 0::2] + img[:, 1::2, 1::2]) * 0.25``)
    and is stored as ``np.rint(img).clip(0, 255).astype(np.uint8)``; torch.round also rounds half to even."""
    levels, exact = {}, top_nchw.double()
    while exact.shape[-1] > 4:
        exact = F.avg_pool2d(exact, 2)
        levels[exact.shape[-1]] = torch.round(exact).clamp(0, 255).to(torch.uint8)
    return levels


def solid(color, size=(40, 40), mode="RGB"):
    return Image.new(mode, size, color)


def test_sample_faces_make_an_exact_pyramid(tmp_path):
    out = tmp_path / "faces"
    result = prepare_dataset([str(SAMPLE)], out, resolution=32, workers=1, progress=False)
    meta = read_meta(out)
    assert result.count == meta["count"] == 131
    assert meta["resolutions"] == [4, 8, 16, 32] and meta["channels"] == 3
    assert meta["key_format"] == "{resolution:04d}-{index:08d}"
    assert set(meta["encoding"]) == {"4", "8", "16", "32"}
    assert set(meta["encoding"].values()) <= {"raw", "png"}
    assert meta["encoding_measurement"]["32"]["raw_bytes"] == 3 * 32 * 32
    assert str(SAMPLE) in meta["source"]["sources"][0]
    # every level is exactly the official float cascade from the top level, rounded with np.rint
    assert meta["level_rule"] == "float-rint"
    expected = float_cascade_reference(PyramidDataset(out, 32).get_batch(range(131)))
    for r in (16, 8, 4):
        assert torch.equal(PyramidDataset(out, r).get_batch(range(131)), expected[r])
    # sorted order: color/ first, then lfw_subset/, then solvay1927/; grayscale sources replicated to RGB
    top = top_images(out)
    assert not np.array_equal(top[0, :, :, 0], top[0, :, :, 1])  # astronaut (colour)
    lfw0 = np.asarray(Image.open(SAMPLE / "lfw_subset" / "lfw_000.png").convert("L"))
    expected = np.asarray(Image.fromarray(lfw0).resize((32, 32), Image.Resampling.LANCZOS))
    assert np.array_equal(top[2, :, :, 0], expected) and np.array_equal(top[2, :, :, 2], expected)
    # the SOURCE.md note is not an image: listed in the report, not fatal
    report = result.report_path.read_text()
    assert result.report_path == tmp_path / "faces.skipped.txt"
    assert "SOURCE.md\tnot an image file" in report and len(result.skipped) == 1
    assert "wrote 131 images" in result.summary() and "skipped 1" in result.summary()


def test_every_format_and_mode_decodes_to_the_right_pixels(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    exact = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(exact).save(src / "a_png.png")
    Image.fromarray(exact).save(src / "b_webp.webp", lossless=True)
    Image.fromarray(exact).save(src / "c_bmp.bmp")
    Image.fromarray(exact).save(src / "d_tiff.tiff")
    solid((200, 100, 50, 0), mode="RGBA").save(src / "e_rgba.png")  # alpha dropped, not composited
    solid((77, 0), mode="LA").save(src / "f_la.png")
    pal = Image.new("P", (40, 40), 3)
    pal.putpalette([0, 0, 0] * 3 + [10, 220, 30] + [0, 0, 0] * 252)
    pal.save(src / "g_palette.gif")
    solid((255, 0, 0, 0), mode="CMYK").save(src / "h_cmyk.tiff")  # pure cyan
    sixteen = np.full((40, 40), 1000, dtype=np.uint16)
    sixteen[:, 20:] = 65535
    Image.fromarray(sixteen).save(src / "i_gray16.png")  # 16-bit: scaled to 8 bits, never clipped
    smooth = np.asarray(Image.fromarray(exact[:4, :4]).resize((32, 32), Image.Resampling.BICUBIC))
    Image.fromarray(smooth).save(src / "j_jpeg.jpg", quality=95)
    solid((120, 30, 200)).convert("CMYK").save(src / "k_cmyk.jpg", quality=100)
    out = tmp_path / "ds"
    result = prepare_dataset([str(src)], out, resolution=32, workers=1, progress=False)
    assert result.count == 11 and result.skipped == []
    top = top_images(out)
    for i in range(4):  # lossless formats at R = source size: bit-exact
        assert np.array_equal(top[i], exact), i
    assert (top[4] == (200, 100, 50)).all()
    assert (top[5] == 77).all()
    assert (top[6] == (10, 220, 30)).all()
    assert (top[7] == (0, 255, 255)).all()
    gray16 = top[8]
    assert (gray16[:, :, 0] == gray16[:, :, 2]).all()
    assert abs(int(gray16[16, 2, 0]) - 4) <= 1 and gray16[16, 30, 0] == 255  # 1000/65535*255 ≈ 3.9
    assert np.abs(top[9].astype(int) - smooth).mean() < 3  # lossy JPEG, same picture
    assert np.abs(top[10].astype(int) - (120, 30, 200)).max() <= 6


def test_channels_one_stores_luma_and_three_replicates_gray(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(src / "rgb.png")
    Image.fromarray(rgb[:, :, 0]).save(src / "gray.png")
    gray_ds = tmp_path / "gray"
    prepare_dataset([str(src)], gray_ds, resolution=16, channels=1, workers=1, progress=False)
    assert read_meta(gray_ds)["channels"] == 1
    ds = PyramidDataset(gray_ds, 16)
    assert ds[0].shape == (1, 16, 16) and ds.channels == 1
    assert np.array_equal(ds[0][0].numpy(), rgb[:, :, 0])  # sorted: gray.png, then rgb.png
    assert np.array_equal(ds[1][0].numpy(), np.asarray(Image.fromarray(rgb).convert("L")))
    assert PyramidDataset(gray_ds, 4)[0].shape == (1, 4, 4)
    color_ds = tmp_path / "color"
    prepare_dataset([str(src)], color_ds, resolution=16, channels=3, workers=1, progress=False)
    gray_as_rgb = PyramidDataset(color_ds, 16)[0]
    assert all(torch.equal(gray_as_rgb[c], torch.from_numpy(rgb[:, :, 0])) for c in range(3))


def test_exif_orientation_centre_crop_and_antialiased_resize(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    pattern = np.zeros((64, 64, 3), dtype=np.uint8)
    pattern[:32, :, 0] = 255  # top half red
    pattern[:, :32, 2] = 255  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the viewer must turn it 90° clockwise
    Image.fromarray(pattern).save(src / "a_rotated.jpg", quality=100, exif=exif)
    wide = np.zeros((32, 48, 3), dtype=np.uint8)
    wide[:, 8:40] = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(wide).save(src / "b_wide.png")
    checker = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    Image.fromarray(checker).save(src / "c_checker.png")
    out = tmp_path / "ds"
    prepare_dataset([str(src)], out, resolution=32, workers=1, progress=False)
    top = top_images(out).astype(int)
    expected = np.rot90(pattern, k=-1)[::2, ::2]  # clockwise: red moves to the right, blue to the top
    assert np.abs(top[0] - expected)[4:-4, 4:-4].mean() < 10
    assert np.array_equal(top[1], wide[:, 8:40])  # the centre square, untouched
    assert np.abs(top[2] - 128)[2:-2, 2:-2].max() <= 2  # a 1-pixel checkerboard filters to grey: no aliasing


def test_large_jpeg_reduced_decode_matches_full_decode(tmp_path):
    rng = np.random.default_rng(3)
    smooth = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((1024, 768), Image.BICUBIC)
    path = tmp_path / "big.jpg"
    smooth.save(path, quality=95)
    out = tmp_path / "ds"
    prepare_dataset([str(path)], out, resolution=64, workers=1, progress=False)
    full = Image.open(path).convert("RGB")
    reference = np.asarray(full.resize((64, 64), Image.Resampling.LANCZOS, box=(128, 0, 896, 768))).astype(int)
    assert np.abs(top_images(out)[0].astype(int) - reference).mean() < 2


def test_zip_and_list_sources_keep_the_given_order(tmp_path):
    colors = [(i * 20, 255 - i * 20, 7) for i in range(6)]
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    solid(colors[1]).save(folder / "sub" / "b.png")
    solid(colors[0]).save(folder / "a.png")
    (folder / ".hidden.png").write_bytes(b"ignored")
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, color in (("z/d.png", colors[3]), ("c.png", colors[2]), ("__MACOSX/._c.png", None)):
            buffer = io.BytesIO()
            if color is None:
                buffer.write(b"resource fork")
            else:
                solid(color).save(buffer, format="PNG")
            zf.writestr(name, buffer.getvalue())
    solid(colors[4]).save(tmp_path / "e.png")
    solid(colors[5]).save(tmp_path / "f.jpg", quality=100)
    listing = tmp_path / "list.txt"
    listing.write_text("# my picks\ne.png\n\n" + str(tmp_path / "f.jpg") + "\nmissing.png\n")
    out = tmp_path / "ds"
    result = prepare_dataset([str(folder), str(archive), str(listing)], out, resolution=16, workers=1, progress=False)
    assert result.count == 6
    top = top_images(out).astype(int)
    for i, color in enumerate(colors):
        assert np.abs(top[i] - color).max() <= 3, i
    assert [name for name, _ in result.skipped] == [str(tmp_path / "missing.png")]
    assert result.skipped[0][1] == "file not found"


def test_broken_files_are_skipped_and_reported(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = np.random.default_rng(4).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(good).save(src / "good.png")
    png = io.BytesIO()
    Image.fromarray(good).save(png, format="PNG")
    (src / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    jpeg = io.BytesIO()
    Image.fromarray(good).save(jpeg, format="JPEG")
    (src / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.png").write_text("this is not a picture")
    (src / "readme.txt").write_text("hello")
    Image.fromarray(good[:10, :10]).save(src / "tiny.png")
    corrupt = bytearray(png.getvalue())
    corrupt[100:140] = b"\x00" * 40
    (src / "corrupt.png").write_bytes(bytes(corrupt))
    out = tmp_path / "ds"
    result = prepare_dataset([str(src)], out, resolution=32, workers=2, progress=False)
    assert result.count == 1
    reasons = dict((Path(name).name, reason) for name, reason in result.skipped)
    assert set(reasons) == {
        "truncated.png",
        "truncated.jpg",
        "empty.jpg",
        "notes.png",
        "readme.txt",
        "tiny.png",
        "corrupt.png",
    }
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["notes.png"].startswith("not an image")
    assert reasons["tiny.png"].startswith("too small (10×10")
    assert reasons["truncated.png"].startswith("cannot decode")
    report = result.report_path.read_text().splitlines()
    assert report[0].startswith("# pggan-prepare report: 1 images written, 7 files skipped")
    assert len(report) == 2 + 7
    resized = np.asarray(Image.fromarray(good).resize((32, 32), Image.Resampling.LANCZOS))
    assert np.array_equal(top_images(out)[0], resized)


def test_min_size_option(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    solid((1, 2, 3), size=(20, 30)).save(src / "small.png")
    assert prepare_dataset([str(src)], tmp_path / "a", resolution=32, min_size=20, workers=1, progress=False).count == 1
    with pytest.raises(UserError, match="none of the 1 image files could be used"):
        prepare_dataset([str(src)], tmp_path / "b", resolution=64, workers=1, progress=False)  # default min 32
    assert "too small (20×30" in (tmp_path / "b.skipped.txt").read_text()
    assert not (tmp_path / "b").exists()


def _write(path, data):
    path.write_bytes(data) if isinstance(data, bytes) else path.mkdir()
    return str(path)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("nope", None, "source not found"),
        ("empty", "dir", "holds no image files"),
        ("x.zip", b"not a zip", "cannot read zip file"),
        ("x.dat", b"?", "is not a folder"),
        ("l.txt", b"# nothing\n", "names no images"),
    ],
)
def test_unusable_sources_are_clear_errors(tmp_path, name, data, message):
    source = str(tmp_path / name) if data is None else _write(tmp_path / name, data)
    with pytest.raises(UserError, match=message):
        prepare_dataset([source], tmp_path / "out", resolution=16, workers=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_bad_options_are_refused(tmp_path):
    solid((0, 0, 0)).save(tmp_path / "a.png")
    for kwargs, message in (
        ({"resolution": 48}, "power of two"),
        ({"resolution": 2048}, "power of two"),
        ({"resolution": 16, "channels": 2}, "channels"),
        ({"resolution": 16, "workers": 0}, "workers"),
        ({"resolution": 16, "min_size": 0}, "min-size"),
    ):
        with pytest.raises(UserError, match=message):
            prepare_dataset([str(tmp_path / "a.png")], tmp_path / "out", progress=False, **kwargs)
    with pytest.raises(UserError, match="does not exist"):
        prepare_dataset([str(tmp_path / "a.png")], tmp_path / "no" / "out", resolution=16, progress=False)


def test_worker_count_does_not_change_the_dataset(tmp_path):
    one = tmp_path / "one"
    two = tmp_path / "two"
    prepare_dataset([str(SAMPLE)], one, resolution=16, workers=1, progress=False)
    prepare_dataset([str(SAMPLE)], two, resolution=16, workers=2, progress=False)
    for r in (16, 8, 4):
        assert torch.equal(PyramidDataset(one, r).get_batch(range(131)), PyramidDataset(two, r).get_batch(range(131)))


def test_forced_encodings_store_identical_pixels_and_are_recorded(tmp_path):
    raw = tmp_path / "raw"
    png = tmp_path / "png"
    prepare_dataset(
        [str(SAMPLE / "solvay1927")], raw, 32, encoding=dict.fromkeys((4, 8, 16, 32), "raw"), progress=False
    )
    prepare_dataset(
        [str(SAMPLE / "solvay1927")], png, 32, encoding=dict.fromkeys((4, 8, 16, 32), "png"), progress=False
    )
    assert read_meta(raw)["encoding"] == dict.fromkeys(("4", "8", "16", "32"), "raw")
    assert read_meta(png)["encoding"]["32"] == "png"
    assert torch.equal(PyramidDataset(raw, 32).get_batch(range(29)), PyramidDataset(png, 32).get_batch(range(29)))
    with shared_env(raw).begin() as txn:
        assert len(txn.get(record_key(32, 5))) == 3 * 32 * 32  # raw: C·R·R bytes, CHW
        assert txn.get(record_key(32, 29)) is None
    png_bytes = read_meta(png)["bytes_per_level"]["32"]
    assert png_bytes < read_meta(raw)["bytes_per_level"]["32"]
    assert MAP_SIZE >= 1 << 40 and (raw / "data.mdb").stat().st_size < 10 << 20  # huge map, small sparse file


def test_encoding_is_chosen_by_measured_savings():
    from pggan.data.pyramid import build_levels
    from pggan.data.storage_choice import choose_encodings

    rng = np.random.default_rng(5)
    smooth = [
        build_levels(np.asarray(Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((256, 256))))
        for _ in range(3)
    ]
    noise = [build_levels(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(3)]
    levels = [4, 8, 16, 32, 64, 128, 256]
    chosen, measured = choose_encodings(smooth, levels, 3)
    assert chosen == {4: "raw", 8: "raw", 16: "raw", 32: "raw", 64: "raw", 128: "png", 256: "png"}
    assert measured["256"]["png_saving"] > 0.5 and measured["256"]["chosen"] == "png" and measured["samples"] == 3
    chosen, measured = choose_encodings(noise, levels, 3)
    assert set(chosen.values()) == {"raw"} and measured["256"]["png_saving"] < 0.2  # PNG cannot shrink noise


def test_float_cascade_rounds_half_to_even_and_differs_from_a_rounded_cascade():
    from pggan.data.pyramid import build_levels

    # Every 2×2 mean is 2.5: np.rint gives 2 (half to even); the legacy rule gave 3 (half up).
    half = np.full((8, 8, 1), 2, dtype=np.uint8)
    half[0::2, 0::2] = 3
    half[1::2, 1::2] = 3
    assert build_levels(half)[4].max() == 2 and build_levels(half, "uint8-half-up")[4].max() == 3
    # Level 4 of a 16² image is the rint of the exact 4×4 block mean (the float cascade never rounds in
    # between); the legacy cascade of rounded levels differs from it on random images.
    rng = np.random.default_rng(0)
    tops = rng.integers(0, 256, (50, 16, 16, 3), dtype=np.uint8)
    for top in tops:
        exact = top.astype(np.float64).reshape(4, 4, 4, 4, 3).mean(axis=(1, 3))
        assert np.array_equal(build_levels(top)[4], np.rint(exact).astype(np.uint8))
    assert any(not np.array_equal(build_levels(t)[4], build_levels(t, "uint8-half-up")[4]) for t in tops)


LEGACY_REWRITE = """
import json, sys
import lmdb, numpy as np
from pggan.data.pyramid import build_levels, decode_record_into, encode_record
env = lmdb.open(sys.argv[1])
with env.begin(write=True) as txn:  # as the previous version made it: rounded cascade, no level_rule field
    meta = json.loads(txn.get(b"meta"))
    del meta["level_rule"]
    top = meta["resolution"]
    for index in range(meta["count"]):
        image = np.empty((meta["channels"], top, top), np.uint8)
        decode_record_into(txn.get(f"{top:04d}-{index:08d}".encode()), meta["encoding"][str(top)], image)
        for r, level in build_levels(image.transpose(1, 2, 0), "uint8-half-up").items():
            txn.put(f"{r:04d}-{index:08d}".encode(), encode_record(level, meta["encoding"][str(r)]))
    txn.put(b"meta", json.dumps(meta).encode())
"""


def test_datasets_of_the_legacy_rule_still_load_and_verify(tmp_path):
    import os
    import subprocess
    import sys

    from pggan.data.pyramid import build_levels
    from pggan.data.verify import verify_dataset

    out = tmp_path / "faces"
    prepare_dataset([str(SAMPLE / "lfw_subset")], out, resolution=16, workers=1, progress=False)
    assert verify_dataset(out, progress=False).ok
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", LEGACY_REWRITE, str(out)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    meta = read_meta(out)
    assert "level_rule" not in meta
    assert verify_dataset(out, progress=False).ok
    top = PyramidDataset(out, 16).get_batch(range(meta["count"]))
    lowest = PyramidDataset(out, 4).get_batch(range(meta["count"]))
    legacy = [build_levels(t.permute(1, 2, 0).numpy(), "uint8-half-up")[4] for t in top]
    assert np.array_equal(lowest.permute(0, 2, 3, 1).numpy(), np.stack(legacy))
