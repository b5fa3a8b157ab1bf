"""The web app's model catalog and engine, without a browser (tests/test_app.py drives the page itself)."""

import numpy as np
import pytest
import torch
from PIL import Image

from gan import GanError
from gan.app import Engine, Settings, build_catalog
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
    engine = Engine(catalog, Settings(torch.device("cpu"), "fp32", max_megapixels=0.01, workdir=tmp_path / "w"))
    with pytest.raises(GanError, match="unknown model"):
        engine.generator(str(tmp_path / "runs" / "tiny" / "latest.pt"), "AtoB")  # a path is not a label
    img = (np.random.default_rng(0).random((30, 41, 3)) * 255).astype(np.uint8)
    out = engine.translate("tiny / latest (step 4)", "AtoB", img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert engine.translate("latest_net_G.pth", "AtoB", img, resize=20).shape == (20, 27, 3)
    Image.fromarray(np.zeros((120, 100, 3), np.uint8)).save(tmp_path / "big.png")  # 0.012 MP > 0.01
    with pytest.raises(GanError, match="above this server's limit"):
        engine.read(tmp_path / "big.png")
    (tmp_path / "junk.jpg").write_bytes(b"nope")
    with pytest.raises(GanError, match="junk.jpg: not a readable image"):
        engine.read(tmp_path / "junk.jpg")


def test_upload_errors_name_the_upload_never_the_servers_folder(tmp_path):
    """Gradio keeps uploads in a hashed temporary folder; Pillow's reasons quote the full path. A visitor sees
    only the name they uploaded."""
    from gan.app import Catalog

    upload = tmp_path / "gradio" / "3f9a1c0e5b7d" / "holiday.png"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature, then nothing readable
    engine = Engine(Catalog(), Settings(torch.device("cpu"), "fp32", workdir=tmp_path / "w"))
    with pytest.raises(GanError) as e:
        engine.read(str(upload))
    text = str(e.value)
    assert text.startswith("holiday.png: not a readable image")
    assert str(tmp_path) not in text and "3f9a1c0e5b7d" not in text and "gradio" not in text
