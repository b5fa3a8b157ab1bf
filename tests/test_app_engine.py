"""The web app's model catalog and backend, without a browser (tests/test_app.py drives the page itself)."""

import numpy as np
import pytest
import torch
from PIL import Image

from gan import GanError
from gan.runtime import Runtime
from gan.app import Backend, Settings, build_catalog
from gan.config import load_config
from gan.nn.networks import ResnetGenerator
from gan.training.trainer import Trainer, prepare_run_dir


@pytest.fixture
def catalog(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.max_steps=4", "train.save_every=2"])
    Trainer(cfg, prepare_run_dir(cfg)).fit()
    torch.save(ResnetGenerator(3, 3, ngf=4, n_blocks=1).state_dict(), tmp_path / "latest_net_G.pth")
    (tmp_path / "notes.txt").write_text("not a model")
    return build_catalog(tmp_path / "runs", [tmp_path / "latest_net_G.pth", tmp_path / "notes.txt"])


def test_catalog_lists_runs_checkpoints_and_given_files(catalog):
    labels = list(catalog.models)
    assert "tiny / step 2" in labels and "tiny / step 4" in labels and "tiny / latest (step 4)" in labels
    assert "latest_net_G.pth" in labels and "notes.txt" not in labels  # not a model: left out, with a warning
    assert catalog.runs() == ["tiny"]
    assert catalog.checkpoints_of("tiny") == ["tiny / step 2", "tiny / latest (step 4)", "tiny / step 4"]


def test_engine_opens_only_listed_models_and_checks_uploads(catalog, tmp_path):
    backend = Backend(catalog, Settings(Runtime.on("cpu"), max_megapixels=0.01, workdir=tmp_path / "w"))
    with pytest.raises(GanError, match="unknown model"):
        backend.generator(str(tmp_path / "runs" / "tiny" / "latest.pt"), "AtoB")  # a path is not a label
    img = (np.random.default_rng(0).random((30, 41, 3)) * 255).astype(np.uint8)
    out = backend.translate("tiny / latest (step 4)", "AtoB", img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert backend.translate("latest_net_G.pth", "AtoB", img, resize=20).shape == (20, 27, 3)
    Image.fromarray(np.zeros((120, 100, 3), np.uint8)).save(tmp_path / "big.png")  # 0.012 MP > 0.01
    with pytest.raises(GanError, match="above this server's limit"):
        backend.read(tmp_path / "big.png")
    (tmp_path / "junk.jpg").write_bytes(b"nope")
    with pytest.raises(GanError, match="junk.jpg: not a readable image"):
        backend.read(tmp_path / "junk.jpg")


def test_upload_errors_name_the_upload_never_the_servers_folder(tmp_path):
    """Gradio keeps uploads in a hashed temporary folder; Pillow's reasons quote the full path. A visitor sees
    only the name they uploaded."""
    from gan.app import Catalog

    upload = tmp_path / "gradio" / "3f9a1c0e5b7d" / "holiday.png"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature, then nothing readable
    backend = Backend(Catalog(), Settings(Runtime.on("cpu"), workdir=tmp_path / "w"))
    with pytest.raises(GanError) as e:
        backend.read(str(upload))
    text = str(e.value)
    assert text.startswith("holiday.png: not a readable image")
    assert str(tmp_path) not in text and "3f9a1c0e5b7d" not in text and "gradio" not in text


def test_engine_translates_videos_within_the_servers_limits(catalog, tmp_path):
    pytest.importorskip("av")
    from tests.test_video import moving_square, read_frames, write_video

    upload = tmp_path / "gradio" / "9c1d" / "clip.mp4"
    upload.parent.mkdir(parents=True)
    write_video(upload, moving_square(6), audio_s=None, crf=0)
    backend = Backend(catalog, Settings(Runtime.on("cpu"), workdir=tmp_path / "w"))
    out, n = backend.translate_video("tiny / latest (step 4)", "AtoB", upload, strength=1.0, smooth=0)
    assert n == 6 and out.suffix == ".mp4" and out.is_file() and tmp_path / "w" in out.parents
    same, _ = backend.translate_video("tiny / latest (step 4)", "AtoB", upload, strength=0.0, smooth=0)
    src, full, zero = read_frames(upload), read_frames(out), read_frames(same)
    assert np.abs(zero - src).mean() < 0.25 * np.abs(full - src).mean()  # strength 0: the clip back
    for settings, msg in ((dict(max_video_frames=5), r"clip.mp4: .* 6 frames; this server takes videos up to 60 s "
                                                     r"and 5 frames"),
                          (dict(max_video_seconds=0.1), "this server takes videos up to 0.1 s"),
                          (dict(max_megapixels=0.001), "clip.mp4: 64x48 frames are above this server's limit")):
        limited = Backend(catalog, Settings(Runtime.on("cpu"), workdir=tmp_path / "w", **settings))
        with pytest.raises(GanError, match=msg):
            limited.translate_video("tiny / latest (step 4)", "AtoB", upload)
    broken = upload.with_name("broken.mp4")
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video at all")
    with pytest.raises(GanError) as e:
        backend.translate_video("tiny / latest (step 4)", "AtoB", broken)
    assert str(e.value).startswith("broken.mp4: cannot read it as a video") and "9c1d" not in str(e.value)
    with pytest.raises(GanError, match="notes.txt: not a video this tab takes"):
        backend.translate_video("tiny / latest (step 4)", "AtoB", tmp_path / "notes.txt")


def test_catalog_takes_saved_folders_and_zoo_names(catalog, tmp_path, monkeypatch):
    from gan.hub import publish as hub
    from tests.test_zoo import Mirror, generator_bytes

    hub.save(tmp_path / "runs" / "tiny", tmp_path / "saved_tiny")
    m = Mirror({"style_monet.pth": generator_bytes()})
    monkeypatch.setenv("GAN_ZOO_URL", m.url)
    monkeypatch.setenv("GAN_HOME", str(tmp_path / "home"))
    try:
        cat = build_catalog(None, [tmp_path / "saved_tiny", "zoo:style_monet", "zoo:nope"])
    finally:
        m.stop()
    assert sorted(cat.models) == ["saved_tiny", "zoo:style_monet"]  # zoo:nope left out with a warning
    backend = Backend(cat, Settings(Runtime.on("cpu"), workdir=tmp_path / "w"))
    img = (np.random.default_rng(0).random((30, 41, 3)) * 255).astype(np.uint8)
    for label in cat.models:
        assert backend.translate(label, "AtoB", img, strength=0.5).shape == img.shape
        assert np.array_equal(backend.translate(label, "AtoB", img, strength=0), img)


def test_the_strength_sliders_reach_the_engines_own_limit(tmp_path):
    """The web app's Translate and Video strength sliders go as far as --strength does (the engine's
    MAX_STRENGTH), not to 2."""
    from gan.app import Catalog, build
    from gan.inference.engine import MAX_STRENGTH

    page = build(Backend(Catalog(), Settings(Runtime.on("cpu"), workdir=tmp_path / "w")))
    sliders = {b.elem_id: b for b in page.blocks.values() if getattr(b, "elem_id", None) in ("t_strength", "v_strength")}
    assert set(sliders) == {"t_strength", "v_strength"}
    assert all(s.maximum == MAX_STRENGTH and s.minimum == 0 for s in sliders.values())
