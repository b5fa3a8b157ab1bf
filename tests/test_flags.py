"""Command-line flags that no other test runs. Each test compares the result with the flag against the result
without it (or checks that the value reached the code that uses it), so that it fails if the flag were ignored.

    test.py        --video-momentum (with --video-stats running, and without effect under frame)
    stylize.py     --content-weight --tv-weight --lr --ema --init --seed
    app.py         --host --auth --max-upload-mb --max-video-seconds --max-video-frames (in-process, and a real
                   server on 127.0.0.1 for --auth and --max-upload-mb)
    gan.evaluate   --inception-weights
    gan.hub push   --private --token --message (against an imitation of the Hugging Face Hub API on 127.0.0.1)
    train.py       --config hybrid_vgg (its content and style terms)
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
import torch

from gan.nn.networks import ResnetGenerator
from tests.helpers import LocalServer, HANG_GUARD, TINY, write_images

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    """In-process runs on one compute thread (the commands keep it when OMP_NUM_THREADS is set; without it they
    take the cores): tiny tensors gain nothing from more, and two threads on a busy 2-core host wait for each
    other (the file took 100 s instead of 30). Put back afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    """A tiny generator in the reference CycleGAN layout (latest_net_G.pth): no training needed."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("generator") / "latest_net_G.pth"
    torch.save(ResnetGenerator(3, 3, ngf=8, n_blocks=1).state_dict(), path)
    return path


@pytest.fixture
def trained_run(tiny_overrides, tmp_path) -> Path:
    """A tiny CycleGAN run of this project (2 steps)."""
    from gan.config import load_config
    from gan.training.trainer import Trainer, prepare_run_dir

    cfg = load_config(None, tiny_overrides + ["train.max_steps=2"])
    Trainer(cfg, prepare_run_dir(cfg)).fit()
    return tmp_path / "runs" / "tiny"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------ test.py --video-momentum


def test_video_momentum_sets_the_weight_of_the_past_in_running_statistics(generator_file, tmp_path):
    pytest.importorskip("av")
    from gan.commands.translate import main
    from tests.test_video import moving_square, read_frames, write_video

    write_video(tmp_path / "clip.mp4", moving_square(8), audio_s=None, crf=0)

    def translate(stats: str, momentum: str | None) -> np.ndarray:
        out = tmp_path / f"{stats}-{momentum}"
        args = ["--checkpoint", str(generator_file), "--input", str(tmp_path / "clip.mp4"), "--output", str(out),
                "--device", "cpu", "--precision", "fp32", "--workers", "0", "--video-smooth", "0", "--crf", "0",
                "--video-stats", stats]
        assert main(args + (["--video-momentum", momentum] if momentum is not None else [])) == 0
        return read_frames(out / "clip.mp4")

    heavy, light, default = translate("running", "0.9"), translate("running", "0.1"), translate("running", None)
    own = translate("frame", None)
    assert heavy.shape == light.shape == own.shape == (8, 48, 64, 3)

    def change(a, b):  # mean difference per frame
        return np.abs(a - b).mean(axis=(1, 2, 3))

    # The first frame has no past: its own statistics whatever the momentum. Later frames depend on it.
    assert change(heavy, light)[0] == 0
    assert change(heavy, light)[1:].min() > 1.0, change(heavy, light)
    assert np.array_equal(default, heavy)  # the default is 0.9
    # A small weight of the past keeps the statistics close to each frame's own ones; 0.9 averages ~10 frames.
    assert change(light, own)[1:].mean() < 0.5 * change(heavy, own)[1:].mean()
    # With per-frame statistics the momentum is not used at all.
    assert np.array_equal(translate("frame", "0.1"), own)


# ------------------------------------------------------------------------------------------ stylize.py


@pytest.fixture
def stylize_run(tmp_path):
    """stylize(*flags) -> the 16-bit output (int64 HxWx3) of an in-process stylize.py run on a tiny photo, with
    random VGG weights drawn from the same seed every time (so that only the flags differ between runs)."""
    from gan.commands.stylize import main
    from tests.test_stylize import smooth_image, write

    content = write(tmp_path / "photo.png", smooth_image(24, 32, 1))
    style = write(tmp_path / "painting.png", smooth_image(24, 24, 2))
    runs = []

    def stylize(*flags: str) -> np.ndarray:
        import cv2

        out = tmp_path / f"out{len(runs)}.png"
        runs.append(flags)
        torch.manual_seed(0)  # --vgg-weights none: the same random VGG19 for every run
        assert main(["--content", str(content), "--style", str(style), "--output", str(out), "--vgg-weights",
                     "none", "--size", "32", "--min-size", "16", "--iterations", "3", "--style-layers",
                     "relu1_1,relu2_1", "--content-layers", "relu2_2", "--device", "cpu", "--precision", "fp32",
                     "--bit-depth", "16", *flags]) == 0
        img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint16 and img.shape == (24, 32, 3)
        return img.astype(np.int64)

    return stylize


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def total_variation(a: np.ndarray) -> float:
    return float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())


def test_stylize_optimisation_flags_change_the_result(stylize_run):
    base = stylize_run()
    assert np.array_equal(stylize_run(), base)  # deterministic: any difference below comes from the flag
    # The photo as the optimisation sees it (every resize of the scales), barely moved: a step size near 0.
    photo = stylize_run("--lr", "1e-7")
    assert distance(photo, base) > 1000  # (16-bit levels)

    # --content-weight: a large weight keeps the result near the photo (it starts there: --init content).
    content = stylize_run("--content-weight", "100000")
    assert distance(content, photo) < 0.5 * distance(base, photo)
    assert np.array_equal(stylize_run("--content-weight", "100000"), content)

    # --tv-weight: smoother (measured: 0.84 of the total variation without it; Adam's steps bound the change).
    smooth = stylize_run("--tv-weight", "100")
    assert total_variation(smooth) < 0.92 * total_variation(base)
    assert np.array_equal(stylize_run("--tv-weight", "100"), smooth)

    # --lr: bigger steps move further from the photo in the same iterations.
    fast = stylize_run("--lr", "0.2")
    assert distance(fast, photo) > 2 * distance(base, photo)
    assert np.array_equal(stylize_run("--lr", "0.2"), fast)

    # --ema: 0 keeps the last iterate, further from the start than the average of the iterates (default 0.95).
    last = stylize_run("--ema", "0")
    assert distance(last, photo) > 1.2 * distance(base, photo)
    assert np.array_equal(stylize_run("--ema", "0"), last)


def test_stylize_init_and_seed(stylize_run):
    base = stylize_run()
    from_style = stylize_run("--init", "style")
    noise = stylize_run("--init", "noise")
    assert distance(from_style, base) > 5000 and distance(noise, base) > 5000 and distance(noise, from_style) > 5000
    assert np.array_equal(stylize_run("--init", "style"), from_style)
    # --seed: the noise it starts from (the same seed twice: the same picture; another seed: another one).
    seed1 = stylize_run("--init", "noise", "--seed", "1")
    assert np.array_equal(stylize_run("--init", "noise", "--seed", "1"), seed1)
    assert distance(seed1, noise) > 5000  # (the default seed is 0)
    assert np.array_equal(stylize_run("--init", "noise", "--seed", "0"), noise)
    # ... and nothing else: starting from the photo, the seed is not used.
    assert np.array_equal(stylize_run("--seed", "5"), base)


# ----------------------------------------------------------------------------------------------- app.py


def test_app_flags_reach_serve_and_settings(monkeypatch, tmp_path):
    pytest.importorskip("gradio")
    import gan.app
    from gan.commands.app import main

    calls = []

    def fake_serve(catalog, settings, host, port, auth, max_upload_mb, stylize_defaults=None, block=True):
        calls.append({"settings": settings, "host": host, "port": port, "auth": auth,
                      "max_upload_mb": max_upload_mb, "workdir_exists": settings.workdir.is_dir()})

    monkeypatch.setattr(gan.app, "serve", fake_serve)
    (tmp_path / "runs").mkdir()
    common = ["--runs", str(tmp_path / "runs"), "--device", "cpu", "--precision", "fp32", "--vgg-weights", "none"]
    assert main(common) == 0
    assert main(common + ["--host", "0.0.0.0", "--port", "7999", "--auth", "me:se:cret", "--max-upload-mb", "2.5",
                          "--max-video-seconds", "7.5", "--max-video-frames", "99"]) == 0
    default, given = calls
    assert (default["host"], default["auth"], default["max_upload_mb"]) == ("127.0.0.1", None, 50)
    assert (default["settings"].max_video_seconds, default["settings"].max_video_frames) == (60, 1800)
    assert given["host"] == "0.0.0.0" and given["port"] == 7999
    assert given["auth"] == ("me", "se:cret")  # split at the first colon: a password may hold one
    assert given["max_upload_mb"] == 2.5
    assert given["settings"].max_video_seconds == 7.5 and given["settings"].max_video_frames == 99
    assert given["settings"].vgg_weights == "none" and given["workdir_exists"]
    assert not given["settings"].workdir.exists()  # cleaned up when serve returns
    assert main(common + ["--auth", "nocolon"]) == 2 and len(calls) == 2  # refused before serving


def _ctrl_c_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class AppServer:
    """`python app.py ARGS` on a free 127.0.0.1 port, with empty --runs; its output in app.log."""

    def __init__(self, tmp: Path, *args: str):
        (tmp / "runs").mkdir(exist_ok=True)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = tmp / "app.log"
        self._log = open(self.log_path, "w")
        # Its temporary files (uploads, the app's work folder) under tmp, whatever happens to the process.
        (tmp / "tmp").mkdir(exist_ok=True)
        env = subprocess_env(GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(tmp / "gradio"),
                             TMPDIR=str(tmp / "tmp"))
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--runs", str(tmp / "runs"), "--port", self.url.rsplit(":", 1)[1],
             "--vgg-weights", "none", "--device", "cpu", "--precision", "fp32", *args],
            cwd=tmp, env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True,
            # Ctrl-C reaches it even where the suite runs in the background (a shell's background job, as CI
            # starts it, ignores SIGINT, and Python keeps an inherited SIG_IGN): stop() sends SIGINT
            preexec_fn=_ctrl_c_default if os.name == "posix" else None)

    def log(self) -> str:
        return self.log_path.read_text()[-4000:]

    def wait(self, client) -> None:
        import httpx

        deadline = time.time() + HANG_GUARD
        while True:
            try:
                client.get("/")
                return
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"app.py exited ({self.proc.returncode}):\n{self.log()}") from None
                if time.time() > deadline:
                    raise AssertionError(f"app.py did not answer:\n{self.log()}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        """Ctrl-C (app.py then closes the server and removes its work folder); killed if it does not end."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def check_login_and_upload_limit(tmp: Path, max_upload_mb: str, too_big: int, limit_message: str) -> None:
    """app.py --auth me:secret --max-upload-mb MAX: nothing useful without the password; after logging in, an
    upload of `too_big` bytes is refused with a message, a small one taken, and the server goes on answering."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("gradio")
    server = AppServer(tmp, "--auth", "me:secret", "--max-upload-mb", max_upload_mb)
    try:
        with httpx.Client(base_url=server.url, timeout=HANG_GUARD, trust_env=False) as client:
            server.wait(client)
            # Without the password: the page is the login form (no app in it); config, API and upload refuse.
            page = client.get("/")
            assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
            assert "t_go" not in page.text  # (an element id of the app's Translate tab)
            for path in ("/config", "/gradio_api/info"):
                r = client.get(path)
                assert r.status_code == 401 and "Not authenticated" in r.text, (path, r.status_code, r.text)
            r = client.post("/gradio_api/upload", files={"files": ("small.bin", b"x" * 100)})
            assert r.status_code == 401, r.text
            r = client.post("/login", data={"username": "me", "password": "wrong"})
            assert r.status_code == 400 and "Incorrect credentials" in r.text
            assert client.get("/config").status_code == 401
            # Logged in: the app.
            r = client.post("/login", data={"username": "me", "password": "secret"})
            assert r.status_code == 200 and r.json() == {"success": True}, r.text
            r = client.get("/config")
            assert r.status_code == 200 and '"username":"me"' in r.text.replace(" ", "") and "t_go" in r.text
            # Uploads above --max-upload-mb: refused, saying why; below: taken.
            r = client.post("/gradio_api/upload", files={"files": ("big.bin", os.urandom(too_big))})
            assert r.status_code == 413 and limit_message in r.text, (r.status_code, r.text)
            r = client.post("/gradio_api/upload", files={"files": ("small.bin", b"x" * 100)})
            assert r.status_code == 200 and r.json()[0].endswith("small.bin"), r.text
            assert client.get("/config").status_code == 200  # still serving
            assert server.proc.poll() is None, server.log()
    finally:
        server.stop()


def test_app_server_asks_for_the_password_and_refuses_big_uploads(tmp_path):
    # 1 MB = 1048576 bytes (gradio counts in MiB); 1.2 MB is above it.
    check_login_and_upload_limit(tmp_path, "1", 1_200_000, "File size exceeded maximum allowed size of 1048576 bytes")


def test_app_server_takes_a_fractional_upload_limit(tmp_path):
    check_login_and_upload_limit(tmp_path, "0.001", 5000, "File size exceeded maximum allowed size")


# --------------------------------------------------------------------------- gan.evaluate --inception-weights


def two_image_sets(tmp_path: Path) -> tuple[Path, Path]:
    write_images(tmp_path / "photos", 3, size=(24, 32), seed=1)
    write_images(tmp_path / "paintings", 3, size=(24, 32), seed=2)
    return tmp_path / "photos", tmp_path / "paintings"


def test_evaluate_missing_inception_weights_file(generator_file, tmp_path):
    photos, paintings = two_image_sets(tmp_path)
    missing = tmp_path / "nowhere" / "inception.pth"
    r = subprocess.run([sys.executable, "-m", "gan.evaluate", "--checkpoint", str(generator_file), "--input",
                        str(photos), "--reference", str(paintings), "--metrics", "fid", "--inception-weights",
                        str(missing), "--json", str(tmp_path / "e.json"), "--device", "cpu"],
                       capture_output=True, text=True, cwd=ROOT, timeout=HANG_GUARD,
                       env=subprocess_env(TORCH_HOME=str(tmp_path / "torch")))
    assert r.returncode == 2, r.stderr
    assert f"Inception weights not found: {missing}" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "e.json").exists()


def test_evaluate_inception_weights_reach_the_feature_extractor(generator_file, tmp_path, monkeypatch):
    import gan.evaluation.metrics as metrics
    from gan.commands.evaluate import main
    from tests.test_metrics import TinyFeatures

    photos, paintings = two_image_sets(tmp_path)
    weights = tmp_path / "my-inception.pth"
    weights.write_bytes(b"not read: the extractor is a stand-in")
    seen = []

    def fake_inception(path=None):
        seen.append(path)
        return TinyFeatures()

    monkeypatch.setattr(metrics, "inception", fake_inception)
    common = ["--checkpoint", str(generator_file), "--input", str(photos), "--reference", str(paintings),
              "--metrics", "fid,kid", "--device", "cpu", "--precision", "fp32"]
    assert main(common + ["--json", str(tmp_path / "a.json"), "--inception-weights", str(weights)]) == 0
    assert main(common + ["--json", str(tmp_path / "b.json")]) == 0
    assert seen == [str(weights), None]
    results = json.loads((tmp_path / "a.json").read_text())["results"]
    assert results["n_input"] == results["n_reference"] == 3 and results["fid"] >= 0 and "kid" in results


# ----------------------------------------------------------------------------------------------- gan.hub push


class FakeHub:
    """Just enough of the Hugging Face Hub API, on 127.0.0.1, for huggingface_hub.HfApi's create_repo and
    upload_folder: repo creation, the model card's YAML check, preupload (every file "regular": sent inline in the
    commit, no LFS or Xet upload) and the ndjson commit. Records every request."""

    def __init__(self):
        self.requests: list[dict] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, obj, code=200):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self, body: bytes) -> str:
                path = self.path.split("?")[0]
                hub.requests.append({"method": self.command, "path": path, "body": body,
                                     "authorization": self.headers.get("Authorization")})
                return path

            def do_GET(self):
                self._record(b"")
                self._reply({"error": "not imitated"}, 404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self._record(body)
                if path == "/api/repos/create":
                    p = json.loads(body)
                    self._reply({"url": f"{hub.url}/{p['organization']}/{p['name']}"})
                elif path == "/api/validate-yaml":
                    self._reply({})
                elif "/preupload/" in path:
                    self._reply({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                           for f in json.loads(body)["files"]]})
                elif "/commit/" in path:
                    repo = path.split("/api/models/", 1)[1].split("/commit/")[0]
                    self._reply({"commitUrl": f"{hub.url}/{repo}/commit/{'0' * 40}", "commitOid": "0" * 40})
                else:
                    self._reply({"error": "not imitated"}, 404)

        self.local = LocalServer(Handler)
        self.url = self.local.url

    def stop(self):
        self.local.stop()

    def only(self, suffix: str) -> dict:
        found = [r for r in self.requests if r["path"].endswith(suffix) or f"/{suffix}/" in r["path"]]
        assert len(found) == 1, (suffix, [r["path"] for r in self.requests])
        return found[0]


@pytest.fixture
def fake_hub():
    pytest.importorskip("huggingface_hub")
    hub = FakeHub()
    yield hub
    hub.stop()


def test_hub_push_flags_reach_the_hub(trained_run, fake_hub, tmp_path):
    env = subprocess_env(HF_ENDPOINT=fake_hub.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HOME=str(tmp_path / "hf"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET", "HF_TOKEN_PATH"):
        env.pop(name, None)

    def push(*flags: str) -> dict:
        fake_hub.requests.clear()
        r = subprocess.run([sys.executable, "-m", "gan.hub", "push", str(trained_run), "me/tiny-model", *flags],
                           capture_output=True, text=True, cwd=ROOT, env=env, timeout=HANG_GUARD)
        assert r.returncode == 0, r.stderr
        assert f"{fake_hub.url}/me/tiny-model/commit/" in r.stderr  # the URL the (imitated) hub answered
        create = json.loads(fake_hub.only("/api/repos/create")["body"])
        commit = fake_hub.only("commit")
        lines = [json.loads(x) for x in commit["body"].decode().splitlines() if x.strip()]
        files = {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines if x["key"] == "file"}
        auth = {r["authorization"] for r in fake_hub.requests}
        return {"create": create, "header": lines[0], "files": files, "auth": auth}

    given = push("--private", "--token", "hf_test_token_123", "--message", "first upload: tiny model")
    assert given["auth"] == {"Bearer hf_test_token_123"}  # every request carries --token
    # huggingface_hub >= 1.x sends "visibility"; older versions sent "private": true.
    create = given["create"]
    assert create.get("visibility") == "private" or create.get("private") is True, create
    assert (create["organization"], create["name"]) == ("me", "tiny-model")
    assert given["header"] == {"key": "header", "value": {"summary": "first upload: tiny model", "description": ""}}
    assert {"model.safetensors", "config.json", "README.md"} <= set(given["files"])
    config = json.loads(given["files"]["config.json"])
    assert config["format"] == "gan" and config["kind"] == "cyclegan"
    header_len = int.from_bytes(given["files"]["model.safetensors"][:8], "little")
    assert json.loads(given["files"]["model.safetensors"][8: 8 + header_len])["__metadata__"]["kind"] == "cyclegan"

    default = push()  # without the flags: public, no token (none stored in this HF_HOME), the default message
    assert default["auth"] == {None}
    assert default["create"].get("visibility") in ("public", None) and not default["create"].get("private")
    assert default["header"]["value"]["summary"] == "gan: a cyclegan model"


# ---------------------------------------------------------------------------------- configs/hybrid_vgg.yaml


def test_hybrid_vgg_config_trains_with_content_and_style_terms(tiny_data, tmp_path):
    from gan.commands.train import main

    overrides = TINY + [f"data.root={tiny_data}", f"train.output_dir={tmp_path / 'runs'}", "train.max_steps=2",
                        "loss.vgg.weights=none"]
    assert main(["--config", "hybrid_vgg", *overrides, "name=hybrid"]) == 0
    assert main(["--config", "photo2monet", *overrides, "name=plain"]) == 0  # the same recipe without VGG terms

    def logged(name: str) -> dict:
        rows = [json.loads(x) for x in (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines()]
        (row,) = [r for r in rows if r.get("step") == 2 and "loss_g" in r]
        return row

    hybrid, plain = logged("hybrid"), logged("plain")
    for term in ("content_ab", "content_ba", "style_ab", "style_ba"):
        assert term in hybrid and np.isfinite(hybrid[term]) and hybrid[term] > 0, (term, hybrid)
        assert term not in plain, plain
    import yaml

    stored = yaml.safe_load((tmp_path / "runs" / "hybrid" / "config.yaml").read_text())
    assert stored["loss"]["lambda_style"] == 1000.0 and stored["loss"]["lambda_content"] == 1.0
    assert stored["loss"]["vgg"]["style_layers"] == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]

