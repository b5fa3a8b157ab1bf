"""The web app in a real browser: headless Chromium driven by Playwright against `python app.py` on a free
localhost port, with a tiny trained run (two checkpoints) and random VGG weights for stylizing."""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan.config import load_config
from gan.training.trainer import Trainer, prepare_run_dir
from tests.helpers import HANG_GUARD, write_images

ROOT = Path(__file__).resolve().parents[1]
BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine (apt-get install chromium)")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    data = tmp / "data"
    for split, seed in (("trainA", 1), ("trainB", 2), ("testA", 3), ("testB", 4)):
        write_images(data / split, 4, seed=seed)
    from tests.helpers import TINY

    cfg = load_config(None, TINY + [f"data.root={data}", f"train.output_dir={tmp / 'runs'}", "name=tiny",
                                    "train.max_steps=4", "train.save_every=2", "train.keep_last=3"])
    Trainer(cfg, prepare_run_dir(cfg)).fit()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(tmp / "app.log", "w")  # the server's output, for a failure's diagnosis
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--runs", str(tmp / "runs"), "--port", str(port),
                             "--vgg-weights", "none", "--device", "cpu", "--precision", "fp32", "--stylize-size", "64",
                             "--stylize-iterations", "12"], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + HANG_GUARD
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("app.py exited: " + (tmp / "app.log").read_text())
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("app.py did not start: " + (tmp / "app.log").read_text())
    yield url, tmp
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def page(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER, headless=True, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(HANG_GUARD * 1000)  # a busy host is slow, not broken
        pg.goto(server[0])
        yield pg
        browser.close()


@pytest.fixture(scope="module")
def photo(server) -> Path:
    from skimage import data

    path = server[1] / "photo.png"
    Image.fromarray(data.chelsea()).resize((150, 106), Image.LANCZOS).save(path)  # a real photo, odd-ish size
    return path


def shots(tmp: Path, page, name: str) -> Path:
    """Screenshots go next to the test's files (looked at by hand); GAN_SCREENSHOTS=folder keeps a copy."""
    path = tmp / f"{name}.png"
    page.wait_for_timeout(600)  # (the page's fade-in of new results)
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("GAN_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def fetch(url: str) -> Image.Image:
    return Image.open(io.BytesIO(urllib.request.urlopen(url, timeout=30).read()))


def test_translate_a_photo(server, page, photo):
    url, tmp = server
    page.locator("#t_files input[type=file]").set_input_files(str(photo))
    page.locator("#t_go").click()
    link = page.locator("#t_down a[href*='photo_translated']").first
    link.wait_for()
    out = fetch(link.get_attribute("href") if link.get_attribute("href").startswith("http") else
                url.rstrip("/") + link.get_attribute("href"))
    assert out.size == (150, 106)  # full resolution, the input's size
    assert np.abs(np.asarray(out.convert("RGB"), float) - np.asarray(Image.open(photo), float)).mean() > 1
    assert "Translated 1 of 1" in page.locator("#t_status").inner_text()
    assert page.locator("#t_sheet img").count() >= 1
    shots(tmp, page, "app_translate")


def test_a_corrupt_upload_gets_a_message(server, page):
    url, tmp = server
    bad = tmp / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a picture")
    page.locator("#t_files input[type=file]").set_input_files(str(bad))
    page.locator("#t_go").click()
    status = page.locator("#t_status")
    status.filter(has_text="Could not translate").wait_for()
    text = status.inner_text()
    assert "broken.png: not a readable image" in text and "Translated 1 of 2" in text  # the photo still is
    assert text.count("broken.png") == 1
    assert "Traceback" not in page.content()
    shots(tmp, page, "app_corrupt")


def test_compare_two_checkpoints(server, page, photo):
    url, tmp = server
    page.get_by_role("tab", name="Compare checkpoints").click()
    page.locator("#c_file input[type=file]").set_input_files(str(photo))
    page.locator("#c_go").click()
    page.locator("#c_status").filter(has_text="checkpoint(s) of tiny").wait_for()
    strip = page.locator("#c_strip")
    assert strip.locator("img").count() == 3  # the input and two checkpoints
    text = strip.inner_text()
    assert "input" in text and "step 4" in text and "latest" in text
    shots(tmp, page, "app_compare")


def test_stylize_streams_intermediates(server, page, photo):
    url, tmp = server
    page.get_by_role("tab", name="Stylize").click()
    write_images(tmp / "style", 1, size=(48, 40), seed=9)
    page.locator("#s_content input[type=file]").set_input_files(str(photo))
    page.locator("#s_styles input[type=file]").set_input_files(str(tmp / "style" / "img_000.png"))
    page.locator("#s_go").click()
    seen, statuses = [], []
    deadline = time.time() + HANG_GUARD
    while time.time() < deadline:
        img = page.locator("#s_out img")
        src = img.first.get_attribute("src") if img.count() else None
        if src and (not seen or seen[-1] != src):
            seen.append(src)
        status = page.locator("#s_status").inner_text()
        if status and (not statuses or statuses[-1] != status):
            statuses.append(status)
        if "Final image" in status or status.strip() == "Error":
            break
        time.sleep(0.05)
    assert "Final image (done" in statuses[-1], (statuses, (tmp / "app.log").read_text()[-3000:])
    assert sum("iteration" in s and "Scale" in s for s in statuses) >= 2, statuses  # intermediate updates
    assert len(seen) >= 3, len(seen)  # at least two intermediates and the final image, as pictures
    final = fetch(seen[-1] if seen[-1].startswith("http") else url.rstrip("/") + seen[-1])
    assert max(final.size) == 64
    shots(tmp, page, "app_stylize")
    # A long job stops on request, and the page keeps the image it had reached.
    iters = page.locator("#s_iters input[type=number]")
    iters.fill("500")
    iters.press("Enter")
    page.locator("#s_go").click()
    page.locator("#s_status").filter(has_text="iteration").first.wait_for()
    page.locator("#s_stop").click()
    page.locator("#s_status").filter(has_text="Final image (stopped").wait_for()
    n = int(page.locator("#s_status").inner_text().split("after ")[1].split()[0])
    assert 0 < n < 1000  # of 2 scales x 500


def test_translate_a_video_and_the_strength_slider(server, page):
    av = pytest.importorskip("av")
    from tests.test_video import moving_square, write_video

    url, tmp = server
    page.get_by_role("tab", name="Video").click()
    # A broken upload: a message in the page, no traceback.
    broken = tmp / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video at all")
    page.locator("#v_file input[type=file]").set_input_files(str(broken))
    page.locator("#v_go").click()
    page.locator("#v_status").filter(has_text="broken.mp4: cannot read it as a video").wait_for()
    assert "Traceback" not in page.content()
    page.locator("#v_file button[aria-label='Clear']").click()
    clip = tmp / "walk.mp4"
    write_video(clip, moving_square(8), audio_s=None)
    page.locator("#v_file input[type=file]").set_input_files(str(clip))
    strength = page.locator("#v_strength input[type=number]")
    strength.fill("0.5")
    strength.press("Enter")
    page.locator("#v_go").click()
    page.locator("#v_status").filter(has_text="Translated walk.mp4").wait_for()
    text = page.locator("#v_status").inner_text()
    assert "8 frames" in text and "strength 0.5" in text, text
    video = page.locator("#v_out video")
    video.wait_for()
    src = video.get_attribute("src")
    data = urllib.request.urlopen(src if src.startswith("http") else url.rstrip("/") + src, timeout=30).read()
    out = tmp / "walk_back.mp4"
    out.write_bytes(data)
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (48, 64, 3)
    assert page.locator("#v_down a[href*='walk_translated']").count() >= 1
    shots(tmp, page, "app_video")
