"""Saved folders (python -m gan.hub): safetensors + config.json + model card for every kind, loaded bit-exactly
without pickle, through a path, through `hf:` from huggingface_hub's cache offline, and pushed through an
injected Hub client."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan import GanError
from gan.config import load_config
from gan.hub import publish as hub
from gan.checkpoint.source import header as checkpoint_header
from gan.inference.load import load_generator, load_style_network
from gan.training.trainer import train
from tests.helpers import HANG_GUARD, write_images
from tests.test_cut import CUT_TINY
from tests.test_feedforward import ADAIN_KIND, STYLE_KIND

ROOT = Path(__file__).resolve().parents[1]


def trained(kind: str, overrides: list[str], tmp_path: Path) -> Path:
    extra = {"cyclegan": ["train.ema_decay=0.9"], "cut": CUT_TINY, "adain": ADAIN_KIND}.get(kind, [])
    if kind == "style":
        style = write_images(tmp_path / "style", 1, seed=9)[0]
        extra = STYLE_KIND + [f"loss.vgg.style_images={style}"]
    train(load_config(None, overrides + extra + ["train.max_steps=4", f"name={kind}"]))
    return tmp_path / "runs" / kind


def no_pickle(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("torch.load called on a saved folder")

    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("kind", ["cyclegan", "cut", "style", "adain"])
def test_save_and_load_round_trip_bit_exact_without_pickle(kind, tiny_overrides, tmp_path, monkeypatch):
    run = trained(kind, tiny_overrides, tmp_path)
    folder = hub.save(run, tmp_path / "saved")
    names = {p.name for p in folder.iterdir()}
    assert names - {"sample.png"} == {"README.md", "config.json", "model.safetensors"}
    assert ("sample.png" in names) == any((run / "samples").glob("*.png"))
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "gan" and config["kind"] == kind and config["step"] == 4
    assert config["config"]["model"]["kind"] == kind
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    if kind == "adain":
        want_net, _ = load_style_network(run)
        s = torch.rand(1, 3, 32, 32) * 2 - 1
        with torch.no_grad():
            want = want_net.stylizer([s], [1.0], 0.7)(x)
        no_pickle(monkeypatch)
        got_net, info = load_style_network(folder)
        with torch.no_grad():
            got = got_net.stylizer([s], [1.0], 0.7)(x)
        assert info.source == "folder" and torch.equal(got, want)
        assert set(config["nets"]) == {"encoder", "decoder"}
    else:
        directions = list(config["generators"])
        wants = {}
        for d in directions:
            net, _ = load_generator(run, d)
            with torch.no_grad():
                wants[d] = net(x)
        no_pickle(monkeypatch)
        for d in directions:
            net, info = load_generator(folder, d)
            with torch.no_grad():
                assert torch.equal(net(x), wants[d]), d
            assert info.source == "folder" and info.kind == kind
        if kind == "cyclegan":
            assert config["nets"] == {"g_ab": "ema", "g_ba": "ema"} and directions == ["AtoB", "BtoA"]
    assert checkpoint_header(folder) == {"kind": kind, "step": 4, "name": kind}
    with open(folder / "model.safetensors", "rb") as f:  # safetensors: an 8-byte header length, then JSON
        n = int.from_bytes(f.read(8), "little")
        assert json.loads(f.read(n))["__metadata__"]["kind"] == kind
    card = (folder / "README.md").read_text()
    for field in ("library_name: gan", "pipeline_tag: image-to-image", f"kind `{kind}`", "4 steps", "## Recipe",
                  "## Evaluation", "## Use", "model.safetensors"):
        assert field in card, field


def test_card_has_the_runs_evaluation_numbers_and_sample(tiny_overrides, tmp_path):
    run = trained("cyclegan", tiny_overrides + ["eval.every=2", "eval.metrics=[edge_ssim]",
                                                 "eval.best=edge_ssim_ab"], tmp_path)
    folder = hub.save(run, tmp_path / "saved", weights="raw")
    config = json.loads((folder / "config.json").read_text())
    assert config["nets"] == {"g_ab": "raw", "g_ba": "raw"}
    ev = config["evaluation"]
    assert ev["step"] == 4 and "edge_ssim_ab" in ev and ev["best"]["metric"] == "edge_ssim_ab"
    card = (folder / "README.md").read_text()
    assert "| edge_ssim_ab |" in card and "Best edge_ssim_ab" in card
    assert (folder / "sample.png").is_file() and "![training samples](sample.png)" in card
    with pytest.raises(GanError, match="exists and is not empty; nothing was written"):
        hub.save(run, folder)
    hub.save(run, folder, overwrite=True)


def populate_hf_cache(cache: Path, repo: str, folder: Path, commit: str) -> None:
    """huggingface_hub's cache layout, as a download leaves it: refs/main -> snapshots/COMMIT/files."""
    base = cache / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    shutil.copytree(folder, base / "snapshots" / commit)


def test_hf_names_load_from_the_hub_cache_offline(tiny_overrides, tmp_path):
    run = trained("cyclegan", tiny_overrides, tmp_path)
    folder = hub.save(run, tmp_path / "saved")
    commit = "0123456789abcdef0123456789abcdef01234567"
    populate_hf_cache(tmp_path / "hf" / "hub", "someone/tiny-cyclegan", folder, commit)
    write_images(tmp_path / "in", 1)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None)
    outs = {}
    for spec in ("hf:someone/tiny-cyclegan", f"hf:someone/tiny-cyclegan@{commit}", str(folder)):
        out = tmp_path / f"out{len(outs)}"
        r = subprocess.run([sys.executable, str(ROOT / "test.py"), "--checkpoint", spec, "--input",
                            str(tmp_path / "in"), "--output", str(out), "--workers", "0"],
                           capture_output=True, text=True, timeout=HANG_GUARD, env=env)
        assert r.returncode == 0, (spec, r.stderr)
        outs[spec] = (out / "img_000.png").read_bytes()
    assert len(set(outs.values())) == 1
    r = subprocess.run([sys.executable, str(ROOT / "test.py"), "--checkpoint", "hf:someone/not-cached", "--input",
                        str(tmp_path / "in"), "--output", str(tmp_path / "o"), "--workers", "0"],
                       capture_output=True, text=True, timeout=HANG_GUARD, env=env)
    assert r.returncode == 2 and "cannot get hf:someone/not-cached" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(GanError, match="expected hf:USER/REPO or hf:USER/REPO@REVISION"):
        load_generator("hf:just-a-name")


def test_push_saves_then_calls_the_hub(tiny_overrides, tmp_path):
    run = trained("cut", tiny_overrides, tmp_path)
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw))

        def upload_folder(self, repo_id, folder_path, **kw):
            calls.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir()), kw))
            return "https://huggingface.co/me/cut-model/commit/abc"

    url = hub.push(run, "me/cut-model", private=True, api=FakeApi())
    assert url.endswith("/commit/abc")
    assert calls[0] == ("create", "me/cut-model", {"repo_type": "model", "private": True, "exist_ok": True})
    assert calls[1][:3] == ("upload", "me/cut-model", ["README.md", "config.json", "model.safetensors",
                                                       "sample.png"])
    assert calls[1][3]["commit_message"] == "gan: a cut model"

    import socket

    class HTTPError(Exception):  # what huggingface_hub raises: the response, with its status code
        def __init__(self, status):
            super().__init__(f"{status} Client Error")
            self.response = type("Response", (), {"status_code": status})()

    for raised, said in ((HTTPError(401), "credentials refused; log in with `hf auth login`, set HF_TOKEN or pass "
                                          "--token"),
                         (socket.gaierror(-2, "Name or service not known"), "no network: the server cannot be reached"),
                         (HTTPError(404), "not found (HTTP 404)")):
        class Refused(FakeApi):
            def create_repo(self, repo_id, raised=raised, **kw):
                raise raised

        with pytest.raises(GanError) as e:
            hub.push(run, "me/cut-model", api=Refused())
        assert str(e.value).startswith("cannot push to me/cut-model: " + said), str(e.value)
        assert ("log in" in str(e.value)) == ("credentials" in said)  # offline is not a login problem


def test_hub_command_saves_and_the_folder_exports(tiny_overrides, tmp_path):
    run = trained("cyclegan", tiny_overrides, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "gan.hub", "save", str(run), str(tmp_path / "m")], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=HANG_GUARD)
    assert r.returncode == 0 and "model.safetensors" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "gan.export", "--checkpoint", str(tmp_path / "m"), "--format", "onnx",
                        "--output", str(tmp_path / "m.onnx")], capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "gan.hub", "save", str(tmp_path / "nothing"), str(tmp_path / "x")],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=HANG_GUARD)
    assert r.returncode == 2 and "checkpoint not found" in r.stderr
