import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan import GanError
from gan.config import load_config
from gan.data.datasets import UnpairedDataset, UnpairedSampler, build_train_data, build_transform, scan_domain
from gan.data.io import find_images, load_image, to_tensor, to_uint8
from tests.helpers import write_images


def rgb(h=20, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------ discovery


def test_find_images_recursive_sorted_any_case_hidden_skipped(tmp_path):
    for rel in ["b.JPG", "a.png", "sub/c.WebP", "sub/deep/d.tiff", ".hidden.png", ".cache/e.png", "notes.txt",
                "f.Jpeg", "g.bmp", "h.tif"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    names = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert names == ["a.png", "b.JPG", "f.Jpeg", "g.bmp", "h.tif", "sub/c.WebP", "sub/deep/d.tiff"]


# ------------------------------------------------------------------------------------------- decoding


def test_grayscale_palette_rgba_cmyk_16bit_and_1x1(tmp_path):
    Image.fromarray(np.full((4, 5), 200, np.uint8), "L").save(tmp_path / "gray.png")
    Image.fromarray(rgb(6, 7)).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "pal.gif")
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[0, 0, 3] = 255  # one opaque red pixel, the rest transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb(8, 8)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(np.full((4, 4), 65535 // 2, np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "one.png")
    gray = load_image(tmp_path / "gray.png")
    assert gray.shape == (4, 5, 3) and gray.dtype == np.uint8 and (gray == 200).all()
    assert load_image(tmp_path / "pal.gif").shape == (6, 7, 3)
    a = load_image(tmp_path / "rgba.png")
    assert tuple(a[0, 0]) == (255, 0, 0) and tuple(a[1, 1]) == (255, 255, 255)  # composited on white
    c = load_image(tmp_path / "cmyk.jpg")
    assert c.shape == (8, 8, 3) and c.dtype == np.uint8
    g16 = load_image(tmp_path / "g16.png")
    assert g16.dtype == np.uint8 and abs(int(g16[0, 0, 0]) - 127) <= 1
    assert load_image(tmp_path / "one.png").shape == (1, 1, 3)


def test_exif_orientation_applied(tmp_path):
    img = Image.fromarray(rgb(10, 20))  # landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").shape == (20, 10, 3)


def make_bad_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(rgb(64, 64)).save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image")
    return [folder / n for n in ("truncated.jpg", "empty.png", "text.jpg")]


def test_unreadable_files_raise_named_errors(tmp_path):
    from gan import ImageDecodeError

    for p in make_bad_files(tmp_path):
        with pytest.raises(ImageDecodeError, match=p.name):
            load_image(p)


def test_scan_skips_bad_files_with_one_warning_each(tmp_path, caplog):
    write_images(tmp_path / "d", 2)
    bad = make_bad_files(tmp_path / "d")
    before = {p: p.read_bytes() for p in bad}
    with caplog.at_level(logging.WARNING, logger="gan"):
        dom = scan_domain(tmp_path / "d")
    assert len(dom.paths) == 2 and sorted(p.name for p, _ in dom.skipped) == sorted(p.name for p in bad)
    warnings = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(warnings) == 3 and all(any(p.name in w for w in warnings) for p in bad)
    assert all(p.read_bytes() == before[p] for p in bad)  # only ever read


def test_every_still_format_pillow_decodes_is_found(tmp_path):
    from gan.data.io import IMAGE_EXTENSIONS

    for ext in (".jpg", ".png", ".webp", ".tif", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".jp2"):
        assert ext in IMAGE_EXTENSIONS, ext
    assert not {".mpg", ".eps", ".h5", ".wmf"} & set(IMAGE_EXTENSIONS)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(tmp_path / "anim.GIF", save_all=True, append_images=frames[1:])
    Image.fromarray(rgb).save(tmp_path / "x.ppm")
    Image.fromarray(rgb[..., 1]).save(tmp_path / "y.pgm")
    Image.fromarray(rgb).save(tmp_path / "z.tga")
    dom = scan_domain(tmp_path)
    assert sorted(p.name for p in dom.paths) == ["anim.GIF", "x.ppm", "y.pgm", "z.tga"] and not dom.skipped
    first = load_image(tmp_path / "anim.GIF")  # the first frame (GIF palettes quantise colours a little)
    assert first.shape == (12, 16, 3) and np.abs(first.astype(int) - rgb).mean() < 20
    assert np.array_equal(load_image(tmp_path / "x.ppm"), rgb)


def test_empty_domain_error_names_folder_and_contents(tmp_path):
    make_bad_files(tmp_path / "paintings")
    (tmp_path / "paintings" / "readme.txt").write_text("hi")
    with pytest.raises(GanError) as e:
        scan_domain(tmp_path / "paintings", "data.train_b")
    msg = str(e.value)
    assert "data.train_b: no usable image in" in msg and "paintings" in msg and "3 unreadable image(s)" in msg
    assert "readme.txt" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanError, match="no image files; the folder is empty"):
        scan_domain(tmp_path / "empty")
    with pytest.raises(GanError, match="folder not found"):
        scan_domain(tmp_path / "nowhere")


def test_decompression_bomb_is_refused_not_decoded(tmp_path, monkeypatch):
    Image.fromarray(rgb(100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 100x100 = 10,000 > 2 x 1000
    from gan import ImageDecodeError
    from gan.data.io import check_image

    with pytest.raises(ImageDecodeError, match="decompression-bomb limit"):
        load_image(tmp_path / "big.png")
    assert "decompression-bomb" in check_image(tmp_path / "big.png")


def test_uint8_tensor_round_trip():
    img = rgb(5, 7)
    t = to_tensor(img)
    assert t.shape == (3, 5, 7) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(to_uint8(t), img)


# ----------------------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("preset, size, expected", [
    ("resize_and_crop", (50, 70), (32, 32)),
    ("crop", (50, 70), (32, 32)),
    ("crop", (10, 12), (32, 32)),  # smaller than the crop: upscaled, not crashed
    ("scale_width", (50, 70), (28, 36)),  # width 36, height 36*50/70=25.7 -> 26 >= 32? min height 32 -> pad to 32
    ("scale_width_and_crop", (50, 70), (32, 32)),
    ("none", (37, 53), (40, 56)),  # kept, padded to a multiple of 4
])
def test_presets_shape_and_range(preset, size, expected):
    cfg = load_config(None, [f"data.preprocess={preset}", "data.load_size=36", "data.crop_size=32"])
    out = build_transform(cfg.data)(image=rgb(*size))["image"]
    t = to_tensor(out)
    if preset == "scale_width":
        assert t.shape[2] == 36 and t.shape[1] % 4 == 0 and t.shape[1] >= 32
    else:
        assert tuple(t.shape[1:]) == expected
    assert t.dtype == torch.float32 and -1 <= t.min() and t.max() <= 1


def test_extra_transforms_applied():
    cfg = load_config(None, ["data.preprocess=none", "data.flip=false",
                             "data.extra_transforms=[{name: InvertImg, params: {p: 1.0}}]"])
    img = rgb(8, 8)
    assert np.array_equal(build_transform(cfg.data)(image=img)["image"], 255 - img)


# -------------------------------------------------------------------------------- sampling and loader


def test_unpaired_dataset_length_and_pairs(tmp_path):
    a = write_images(tmp_path / "A", 3)
    b = write_images(tmp_path / "B", 5)
    cfg = load_config(None, ["data.preprocess=resize_and_crop", "data.load_size=36", "data.crop_size=32"])
    ds = UnpairedDataset(a, b, build_transform(cfg.data), seed=0)
    assert len(ds) == 5
    item = ds[(0, 4)]
    assert item["A_path"] == str(a[4 % 3]) and item["A"].shape == (3, 32, 32)
    assert ds[(0, 4)]["B_path"] == item["B_path"] and torch.equal(ds[(0, 4)]["B"], item["B"])
    serial = UnpairedDataset(a, b, build_transform(cfg.data), seed=0, serial_batches=True)
    assert [serial[(0, i)]["B_path"] for i in range(5)] == [str(p) for p in b]
    # B partners are random (vary with the epoch) when not serial
    partners = {ds[(e, 0)]["B_path"] for e in range(20)}
    assert len(partners) > 1


def test_sampler_shards_like_distributed_sampler_and_resumes():
    s = UnpairedSampler(10, seed=3)
    s.set_epoch(2)
    full = list(s)
    assert sorted(i for _, i in full) == list(range(10)) and all(e == 2 for e, _ in full)
    s.set_epoch(2, start=4)
    assert list(s) == full[4:] and len(s) == 6
    ranks = [list(UnpairedSampler(10, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert all(len(r) == 4 for r in ranks)  # ceil(10 / 3), padded as DistributedSampler does
    from torch.utils.data import DistributedSampler

    ds = DistributedSampler(range(10), num_replicas=3, rank=1, shuffle=True, seed=3)
    ds.set_epoch(0)
    mine = UnpairedSampler(10, seed=3, rank=1, world_size=3)
    assert [i for _, i in mine] == list(ds)


def batches(data, n):
    out = []
    for batch in data.loader:
        out.append((batch["A"].clone(), batch["B"].clone(), list(batch["A_path"])))
        if len(out) == n:
            break
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_deterministic_and_resumes_mid_epoch(tiny_overrides, workers):
    cfg = load_config(None, tiny_overrides + [f"data.num_workers={workers}", "data.batch_size=2"])
    d1 = build_train_data(cfg)
    assert d1.steps_per_epoch == 3  # max(6, 5) = 6 samples / batch 2
    d1.set_position(1, 0)
    first = batches(d1, 3)
    d2 = build_train_data(cfg)
    d2.set_position(1, 0)
    again = batches(d2, 3)
    d3 = build_train_data(cfg)
    d3.set_position(1, 2)  # resume at the third batch of epoch 1
    resumed = batches(d3, 1)
    for (a1, b1, p1), (a2, b2, p2) in zip(first, again):
        assert torch.equal(a1, a2) and torch.equal(b1, b2) and p1 == p2
    assert torch.equal(resumed[0][0], first[2][0]) and torch.equal(resumed[0][1], first[2][1])


def test_workers_match_main_process(tiny_overrides):
    d0 = build_train_data(load_config(None, tiny_overrides + ["data.num_workers=0"]))
    d2 = build_train_data(load_config(None, tiny_overrides + ["data.num_workers=2"]))
    for (a0, b0, _), (a2, b2, _) in zip(batches(d0, 4), batches(d2, 4)):
        assert torch.equal(a0, a2) and torch.equal(b0, b2)


def test_too_few_images_for_batch(tiny_overrides):
    with pytest.raises(GanError, match="data.batch_size=16 x 1 process"):
        build_train_data(load_config(None, tiny_overrides + ["data.batch_size=16"]))


def test_train_data_reports_skipped(tiny_overrides, tiny_data):
    make_bad_files(tiny_data / "trainA")
    d = build_train_data(load_config(None, tiny_overrides))
    assert len(d.domain_a.skipped) == 3 and len(d.domain_a.paths) == 6


def test_the_one_writer_and_planner(tmp_path):
    from gan.data.io import load_image_alpha, plan_outputs, write_image

    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    alpha = np.full((4, 5), 128, np.uint8)
    write_image(img, tmp_path / "a.png", alpha)
    got, got_alpha = load_image_alpha(tmp_path / "a.png")
    assert got_alpha is not None and (got_alpha == 128).all()
    write_image(img, tmp_path / "a.jpg", alpha)  # JPEG has no transparency: written opaque
    assert load_image_alpha(tmp_path / "a.jpg")[1] is None
    unit = np.linspace(0, 1, 4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    write_image(unit, tmp_path / "deep.tif", bit_depth=16)
    import cv2

    deep = cv2.imread(str(tmp_path / "deep.tif"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.max() == 65535
    with pytest.raises(GanError, match="16-bit output needs PNG or TIFF"):
        write_image(unit, tmp_path / "deep.jpg", bit_depth=16)
    with pytest.raises(GanError, match="unknown output format"):
        write_image(img, tmp_path / "a.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.png", "deep.tif"]  # no .part files left

    # planning, for every caller: an output folder inside the input is not read as input; one file -> one file
    src = tmp_path / "in"
    write_images(src, 2)
    write_images(src / "out", 1, prefix="old")
    pairs = plan_outputs(src, src / "out", "jpg")
    assert [d.relative_to(src / "out").as_posix() for _, d in pairs] == ["img_000.jpg", "img_001.jpg"]
    one = src / "img_000.png"
    assert plan_outputs(one, tmp_path / "x.webp", "png", to_file=True) == [(one, tmp_path / "x.webp")]
    with pytest.raises(GanError, match="is the input itself"):
        plan_outputs(one, one, "png", to_file=True)
    with pytest.raises(GanError, match="every input is inside the output folder"):
        plan_outputs(src / "out", src, "png")
