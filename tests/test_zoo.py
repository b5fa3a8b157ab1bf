"""The pretrained zoo by name, against a server on 127.0.0.1 laid out like the reference's (GAN_ZOO_URL): download
with progress, the sha256 recorded and checked, truncated and wrong files refused and removed, an interrupted
download resumed, the cache serving it with the server gone, and the messages for unknown names and no network."""

import io
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
import torch

from gan import GanError
from gan.hub import zoo
from gan.nn.networks import ResnetGenerator
from tests.helpers import LocalServer, HANG_GUARD, write_images

ROOT = Path(__file__).resolve().parents[1]


def generator_bytes() -> bytes:
    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.save(ResnetGenerator(3, 3, ngf=4, n_blocks=1).state_dict(), buf)
    return buf.getvalue()


class Mirror:
    """NAME.pth files over HTTP with range requests; `cut` sends only that many bytes of a file and drops the
    connection; `ranges` records the Range headers received."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.cut, self.ranges = files, None, []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                data = mirror.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                rng = self.headers.get("Range")
                mirror.ranges.append(rng)
                if rng:
                    start, status = int(rng.split("=")[1].split("-")[0]), 206
                    if start >= len(data):
                        self.send_error(416)
                        return
                self.send_response(status)
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                body = data[start:]
                if mirror.cut is not None:
                    body = body[: mirror.cut]
                self.wfile.write(body)
                self.wfile.flush()
                if mirror.cut is not None:
                    self.close_connection = True

        self.local = LocalServer(Handler)
        self.url = self.local.url

    def stop(self):
        self.local.stop()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    m = Mirror({"style_monet.pth": generator_bytes(), "style_ukiyoe.pth": b"<html>Not here</html>",
                "style_cezanne.pth": generator_bytes()[:3000]})
    monkeypatch.setenv("GAN_ZOO_URL", m.url + "/")
    monkeypatch.setenv("GAN_HOME", str(tmp_path / "home"))
    yield m
    m.stop()


def test_download_once_with_progress_then_from_the_cache_offline(mirror, tmp_path, capfd):
    path = zoo.fetch("style_monet")
    assert path == tmp_path / "home" / "zoo" / "style_monet.pth" and path.read_bytes() == generator_bytes()
    assert (path.parent / "style_monet.sha256").read_text().strip() == zoo.sha256(path)
    assert "zoo:style_monet" in capfd.readouterr().err  # the progress bar
    assert not list(path.parent.glob("*.part"))
    mirror.stop()
    assert zoo.fetch("style_monet") == path  # no server: the cache
    # test.py by name, offline, in another process.
    write_images(tmp_path / "in", 1)
    env = {**os.environ, "GAN_HOME": str(tmp_path / "home"), "GAN_ZOO_URL": mirror.url}
    r = subprocess.run([sys.executable, str(ROOT / "test.py"), "--checkpoint", "zoo:style_monet", "--input",
                        str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--workers", "0"],
                       capture_output=True, text=True, timeout=HANG_GUARD, env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "img_000.png").is_file()


def test_an_interrupted_download_is_resumed(mirror):
    data = mirror.files["style_monet.pth"]
    mirror.cut = len(data) // 3
    with pytest.raises(GanError, match="(interrupted|stopped at).*run the command again to resume"):
        zoo.fetch("style_monet", progress=False)
    part = zoo.cache_home() / "zoo" / "style_monet.pth.part"
    assert part.stat().st_size == len(data) // 3  # what arrived is kept
    mirror.cut = None
    path = zoo.fetch("style_monet", progress=False)
    assert mirror.ranges[-1] == f"bytes={len(data) // 3}-"  # resumed, not started again
    assert path.read_bytes() == data and not part.exists()


def test_wrong_or_truncated_files_are_refused_and_removed(mirror):
    for name in ("style_ukiyoe", "style_cezanne"):  # an HTML page; a file cut short on the server itself
        with pytest.raises(GanError, match=f"{mirror.url}/{name}.pth sent is not a complete CycleGAN generator"):
            zoo.fetch(name, progress=False)
        assert not list((zoo.cache_home() / "zoo").glob(f"{name}*"))
    with pytest.raises(GanError, match="HTTP 404"):
        zoo.fetch("horse2zebra", progress=False)


def test_a_cached_file_that_changed_is_fetched_again(mirror, caplog):
    path = zoo.fetch("style_monet", progress=False)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    assert zoo.fetch("style_monet", progress=False).read_bytes() == generator_bytes()
    assert "does not match the sha256 recorded" in caplog.text


def test_unknown_names_and_no_network_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_HOME", str(tmp_path / "home"))
    with pytest.raises(GanError, match=r"zoo:style_monnet is not a model of the zoo; did you mean zoo:style_monet\?"):
        zoo.fetch("style_monnet")
    m = Mirror({})
    m.stop()  # nothing listens there any more
    monkeypatch.setenv("GAN_ZOO_URL", m.url)
    where = tmp_path / "home" / "zoo" / "style_monet.pth"
    with pytest.raises(GanError, match=f"not in the cache and cannot be downloaded: no network.*Download {m.url}/style_monet.pth "
                                       f"and place it at {where}"):
        zoo.fetch("style_monet")


def test_zoo_list_command(mirror):
    zoo.fetch("style_monet", progress=False)
    r = subprocess.run([sys.executable, "-m", "gan.zoo", "list"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len([x for x in lines if x.startswith("zoo:")]) == len(zoo.ZOO) == 18
    assert any(x.startswith("zoo:style_monet") and "photo -> Monet painting" in x and "(cached)" in x for x in lines)
    assert not any(x.startswith("zoo:style_vangogh") and "(cached)" in x for x in lines)
    assert np.all([n in r.stdout for n in ("style_cezanne", "horse2zebra", "iphone2dslr_flower")])
