"""Network failures say which they are (gan.network): no network, refused credentials, not found, or another
answer of the server; against servers on 127.0.0.1, a closed port and a name that does not resolve."""

import socket
import urllib.request
from http.server import BaseHTTPRequestHandler

import pytest

from gan import GanError
from tests.helpers import LocalServer
from gan.network import CREDENTIALS, NO_NETWORK, NOT_FOUND, SERVER, network_problem, problem


@pytest.fixture
def server():
    """A local server answering /401/..., /403/..., /404/..., /500/... with that status."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            first = self.path.strip("/").split("/")[0]
            code = int(first) if first.isdigit() else 200
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"x")

        def log_message(self, *args):
            pass

    local = LocalServer(Handler)
    yield local.url
    local.stop()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more
    return port


def failure(url: str) -> Exception:
    try:
        urllib.request.urlopen(url, timeout=10)
    except Exception as e:
        return e
    raise AssertionError(f"{url} answered")


def test_each_class_of_failure_is_named(server):
    assert problem(failure(f"{server}/401"))[0] == CREDENTIALS
    assert problem(failure(f"{server}/403"))[0] == CREDENTIALS
    assert problem(failure(f"{server}/404")) == (NOT_FOUND, "HTTP 404")
    assert problem(failure(f"{server}/500")) == (SERVER, "HTTP 500")
    assert problem(failure(f"http://127.0.0.1:{closed_port()}/x"))[0] == NO_NETWORK  # refused
    assert problem(failure("http://no-such-host.invalid/x"))[0] == NO_NETWORK  # no DNS answer
    said = network_problem(failure(f"{server}/401"), "log in")
    assert said.startswith("credentials refused; log in")
    said = network_problem(failure(f"http://127.0.0.1:{closed_port()}/x"), "log in")
    assert said.startswith("no network") and "log in" not in said


def test_the_zoo_names_the_cause(server, tmp_path, monkeypatch):
    from gan.hub import zoo

    monkeypatch.setenv("GAN_HOME", str(tmp_path))
    monkeypatch.setenv("GAN_ZOO_URL", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(GanError, match="zoo:style_monet is not in the cache and cannot be downloaded: no network"):
        zoo.fetch("style_monet", progress=False)
    monkeypatch.setenv("GAN_ZOO_URL", server + "/404")  # every file there is missing
    with pytest.raises(GanError, match=r"cannot download zoo:style_monet from .*: not found \(HTTP 404\)"):
        zoo.fetch("style_monet", progress=False)


def test_hf_names_offline_say_so(tmp_path, monkeypatch):
    from gan.hub.sources import hf_snapshot

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(GanError, match="cannot get hf:me/nothing: no network"):
        hf_snapshot("me/nothing")


def test_the_dataset_download_names_the_cause(server, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from tests.helpers import HANG_GUARD

    script = Path(__file__).resolve().parents[1] / "scripts" / "download_dataset.py"
    for base, said in ((f"http://127.0.0.1:{closed_port()}", "no network"), (server + "/404", "not found")):
        r = subprocess.run([sys.executable, str(script), "monet2photo", "--root", str(tmp_path), "--base-url", base],
                           capture_output=True, text=True, timeout=HANG_GUARD)
        assert r.returncode == 2 and f"cannot download {base}/monet2photo.zip: {said}" in r.stderr, r.stderr


def test_wandb_without_network_says_so_at_once_and_records_offline(tiny_overrides, tmp_path, monkeypatch, caplog):
    """With a W&B key set and no network, the run used to sit about 60 s in silence: now it says it is trying,
    finds in a few seconds that the server cannot be reached, and records the run offline, saying why."""
    import logging

    from gan.config import load_config
    from gan.training.tracking import Tracker

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(logging.getLogger("gan"), "propagate", True)
    cfg = load_config(None, tiny_overrides + ["tracking.wandb.mode=online"])
    (tmp_path / "run").mkdir()
    with caplog.at_level(logging.INFO, logger="gan"):
        tracker = Tracker(tmp_path / "run", cfg)
        tracker.close()
    text = caplog.text
    assert "W&B: connecting to 127.0.0.1 for an online run" in text
    assert "no network" in text and "recorded offline instead" in text
    assert "no W&B credentials configured" not in text  # (there are: it is the network)
    assert tracker.run_id is not None  # an offline run, to sync later
