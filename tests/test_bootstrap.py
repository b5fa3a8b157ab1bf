"""scripts/bootstrap.py, the clone's first commands: the demo passes a user's settings through, shows a fully
trained zoo model when it can be fetched (and says in one line why not otherwise), and the test command shows why
tests skip. (The set-up itself is what CI runs; the demo's whole training is not repeated here.)"""

import importlib.util
import os
import socket
import sys
from pathlib import Path

import pytest

from tests.helpers import write_images

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bootstrap(monkeypatch):
    spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "scripts" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_passes_the_users_settings_through(bootstrap):
    train, translate, zoo = bootstrap.demo_commands(["train.threads=1"])
    assert train[1:] == ["train.py", "--config", "configs/quickstart.yaml", "train.threads=1"]
    assert translate[-2:] == ["--threads", "1"] and zoo[-2:] == ["--threads", "1"]  # the same for translation
    train, translate, _ = bootstrap.demo_commands(["--threads", "1", "train.epochs=2"])
    assert train[-2:] == ["train.threads=1", "train.epochs=2"] and translate[-2:] == ["--threads", "1"]
    train, translate, _ = bootstrap.demo_commands([])
    assert train[-1] == "configs/quickstart.yaml" and "--threads" not in translate
    assert zoo[2:4] == ["--checkpoint", "zoo:style_monet"] and "datasets/sample/testA" in zoo
    with pytest.raises(SystemExit, match="demo: unknown argument '--fast'"):
        bootstrap.demo_commands(["--fast"])


def test_offline_the_zoo_sheet_is_skipped_in_one_line_saying_why(bootstrap, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    write_images(tmp_path / "photos", 1)
    env = {**os.environ, "GAN_HOME": str(tmp_path / "home"), "GAN_ZOO_URL": f"http://127.0.0.1:{port}",
           "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "test.py", "--checkpoint", "zoo:style_monet", "--input", str(tmp_path / "photos"),
               "--output", str(tmp_path / "out"), "--workers", "0"]
    said = bootstrap.zoo_sheet(command, env)
    assert said.startswith("skipped the sheet of the pretrained zoo:style_monet: zoo:style_monet is not in the cache "
                           "and cannot be downloaded: no network")
    assert "\n" not in said and not (tmp_path / "out").exists()


def test_the_test_command_shows_why_tests_skip():
    text = (ROOT / "scripts" / "bootstrap.py").read_text()
    assert '"pytest", "-q", "-rs"' in text


def test_the_demo_says_plainly_what_its_sheet_shows(bootstrap):
    """A few minutes of CPU training recolours the photos; the last message says so, and where paintings come from
    (the quickstart model is not called a painter)."""
    said = bootstrap.DEMO_SAYS
    assert "not yet painted" in said and "zoo:style_monet" in said and "GPU" in said
    assert "painting-style result" not in said
