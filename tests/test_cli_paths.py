"""Every user-facing path runs at least once: CLI flags, config variants, formats, failures that must leave
nothing behind. CLIs that compare numbers pin --precision fp32, so results do not depend on the host CPU."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan.config import load_config
from gan.training.trainer import Trainer, prepare_run_dir
from tests.helpers import ESTIMATE, HANG_GUARD, write_images
from tests.test_translate import run_dir, run_test_py  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]


def run_py(*args, cwd=ROOT, env_extra=None, timeout=HANG_GUARD):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", **(env_extra or {})}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


# ----------------------------------------------------------------------------------------- test.py


def test_test_py_tiling_flags_and_precisions(run_dir, tmp_path):  # noqa: F811
    src = tmp_path / "in"
    write_images(src, 2, size=(70, 90))
    outs, logs = {}, {}
    for name, extra in {
        "bands": ["--tile", "48", "--tile-overlap", "8", "--precision", "fp32", "--workers", "0", "--device", "cpu"],
        # 0.001 MP: every image goes in bands automatically (of 512^2 px: one band)
        "auto": ["--max-megapixels", "0.001", "--precision", "fp32", "--workers", "1"],
        "plain": ["--precision", "fp32", "--workers", "0"],
        "bf16": ["--precision", "bf16", "--workers", "0"],
    }.items():
        out = tmp_path / name
        r = run_test_py("--checkpoint", str(run_dir), "--input", str(src), "--output", str(out), *extra)
        assert r.returncode == 0, (name, r.stderr)
        logs[name] = r.stderr
        outs[name] = np.asarray(Image.open(out / "img_000.png")).astype(float)
        assert outs[name].shape == (70, 90, 3)
    # Every flag took effect: bands (48^2 px over the width padded to 92, halved in float32: 13 rows) and one automatic band give the untiled result (up to
    # the float16 stores: at most one level); bf16 is close to fp32 but not equal. The log says what happened.
    diff = {k: np.abs(v - outs["plain"]).max() for k, v in outs.items()}
    assert diff["bands"] <= 1 and diff["auto"] <= 1
    assert 0 < np.abs(outs["bf16"] - outs["plain"]).mean() < 2
    assert logs["bands"].count("computed in bands of about 13 rows") == 2 and "above --tile 48" in logs["bands"]
    assert "above --max-megapixels 0.001" in logs["auto"] and "computed in bands" not in logs["plain"]
    r = run_test_py("--checkpoint", str(run_dir), "--input", str(src), "--output", str(tmp_path / "x"),
                    "--workers", "-1")
    assert r.returncode == 2 and "--workers must be >= 0" in r.stderr


def test_test_py_reads_gif_and_netpbm_files(run_dir, tmp_path):  # noqa: F811
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(src / "a.ppm")
    Image.fromarray(rgb[..., 0]).save(src / "b.pgm")
    Image.fromarray(rgb[..., 0] > 128).save(src / "c.pbm")
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(src / "d.gif", save_all=True, append_images=frames[1:])
    r = run_test_py("--checkpoint", str(run_dir), "--input", str(src), "--output", str(tmp_path / "o"),
                    "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    # (an animated GIF is a video: it comes out animated, see test_video)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.png", "b.png", "c.png", "d.gif"]
    assert all(Image.open(p).size == (28, 20) for p in (tmp_path / "o").iterdir())
    assert Image.open(tmp_path / "o" / "d.gif").n_frames == 2


def test_torchscript_export_runs_through_test_py(run_dir, tmp_path):  # noqa: F811
    ts = tmp_path / "my_style.pt"
    r = run_py("-m", "gan.export", "--checkpoint", run_dir, "--format", "torchscript", "--output", ts)
    assert r.returncode == 0, r.stderr
    write_images(tmp_path / "in", 1, size=(30, 44))
    r = run_test_py("--checkpoint", str(ts), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "ts"))
    assert r.returncode == 0, r.stderr
    assert "weights_only" not in r.stderr and "TorchScript" in r.stderr
    r2 = run_test_py("--checkpoint", str(run_dir), "--input", str(tmp_path / "in"), "--output",
                     str(tmp_path / "pt"), "--precision", "fp32")
    a = np.asarray(Image.open(tmp_path / "ts" / "img_000.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "pt" / "img_000.png")).astype(int)
    assert r2.returncode == 0 and np.abs(a - b).max() <= 1
    r = run_test_py("--checkpoint", str(ts), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "x"),
                    "--direction", "BtoA")
    assert r.returncode == 2 and "exported for AtoB" in r.stderr and "Traceback" not in r.stderr
    # Given where a checkpoint is expected for training, it is named for what it is.
    r = run_py(ROOT / "train.py", "--resume", ts)
    assert r.returncode == 2 and "is a TorchScript model, not a checkpoint" in r.stderr
    assert "weights_only=False" not in r.stderr


# -------------------------------------------------------------------------------------- evaluate


def test_evaluate_size_num_images_direction(run_dir, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    out = tmp_path / "e.json"
    r = run_py("-m", "gan.evaluate", "--checkpoint", run_dir, "--input", data / "trainB", "--reference",
               data / "trainA", "--direction", "BtoA", "--metrics", "edge_ssim", "--size", "24", "--num-images", "3",
               "--json", out, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    record = json.loads(out.read_text())
    assert record["direction"] == "BtoA" and record["size"] == 24
    assert record["results"]["n_input"] == 3 and record["results"]["n_reference"] == 3


# -------------------------------------------------------------------------------------- train.py


def test_train_py_with_no_arguments_trains_the_quickstart(tmp_path):
    """No arguments: configs/quickstart.yaml on the sample dataset, built on first use (here in a scratch
    working directory); stopped by SIGTERM once it has said what the whole run will take (after 11 steps), as a
    user's Ctrl-C would. Bounded by steps, not seconds: a slow or busy host only takes longer."""
    import threading

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, str(ROOT / "train.py")], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    stepped = threading.Event()

    def read_stderr():
        for chunk in iter(lambda: p.stderr.read(1), ""):
            err.append(chunk)
            if chunk == "\n" and "s/step over steps" in "".join(err[-300:]):  # said after 11 steps
                stepped.set()
        stepped.set()  # the process ended

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    stepped.wait(timeout=1800)  # a hang guard only
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=600)
    reader.join(timeout=60)
    text = "".join(err)
    assert p.returncode == 0, text[-3000:]
    assert (tmp_path / "datasets" / "sample" / "trainA").is_dir()
    state = torch.load(tmp_path / "runs" / "quickstart" / "latest.pt", weights_only=True)
    assert state["config"]["name"] == "quickstart" and state["step"] >= 11 and state["kind"] == "cyclegan"
    assert re.search(r"s/step over steps 2-11: the 2389 steps left take " + ESTIMATE, text)
    assert f"stopped at step {state['step']} and saved" in text


@pytest.mark.parametrize("variant", [
    ["loss.gan_mode=vanilla"], ["loss.gan_mode=hinge"],
    ["train.lr_policy=step", "train.lr_step_epochs=1"], ["train.lr_policy=cosine"],
    ["data.preprocess=none"], ["data.preprocess=scale_width", "data.load_size=32"],
    ["model.generator.norm=batch", "model.discriminator.norm=batch"],
    ["model.generator.norm=none", "model.discriminator.norm=none"],
    ["model.discriminator.spectral_norm=true"],
])
def test_one_training_step_per_variant(tiny_overrides, variant):
    cfg = load_config(None, tiny_overrides + variant + ["train.max_steps=2"])
    trainer = Trainer(cfg, prepare_run_dir(cfg))
    before = {k: v.clone() for k, v in trainer.nets["g_ab"].state_dict().items()}
    trainer.fit()
    assert trainer.step == 2
    rows = [json.loads(x) for x in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(rows[-1][k]) for k in ("loss_g", "loss_d", "adv_ab", "d_b"))
    after = trainer.nets["g_ab"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the weights really moved


def test_failed_starts_leave_nothing_behind(tiny_overrides, tmp_path):
    runs = tmp_path / "runs"
    r = run_py(ROOT / "train.py", *tiny_overrides, f"data.train_a={tmp_path / 'nowhere'}")
    assert r.returncode == 2 and "data.train_a: folder not found" in r.stderr
    assert "(set data.train_a=FOLDER, relative to data.root or absolute" in r.stderr
    r = run_py(ROOT / "train.py", *tiny_overrides, "eval.every=2", "eval.metrics=[edge_ssim]",
               "eval.best=edge_ssim_ab", f"data.test_b={tmp_path / 'empty'}")
    assert r.returncode == 2 and "data.test_b (eval)" in r.stderr
    assert not runs.exists(), sorted(str(p) for p in runs.rglob("*"))


def test_hybrid_mode_end_to_end_with_style_images(tiny_overrides, tmp_path):
    style = tmp_path / "style"
    write_images(style, 5, size=(40, 40), seed=9)
    r = run_py(ROOT / "train.py", *tiny_overrides, "loss.lambda_content=1", "loss.lambda_style=100",
               "loss.vgg.weights=none", "loss.vgg.content_layers=[relu2_2]",
               "loss.vgg.style_layers=[relu1_1, relu2_1]", f"loss.vgg.style_images={style}", "train.max_steps=3",
               "train.log_every=1", "model.generator.skip=color")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (tmp_path / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()]
    # skip=color starts G as the identity: content and cycle are exactly 0 at step 1
    assert len(rows) == 3 and all(row["style_ab"] > 0 for row in rows)
    assert rows[0]["content_ab"] == 0 and rows[0]["cycle_a"] == 0 and rows[2]["content_ab"] > 0


def test_style_grams_are_computed_in_chunks(tmp_path):
    """Chunked mean Gram matrices equal the all-at-once ones, and VGG never sees more than a chunk."""
    from gan.nn import losses
    from gan.nn.losses import style_grams_from_files

    write_images(tmp_path / "style", 7, size=(24, 24))
    vgg = losses.VGGFeatures(["relu1_1", "relu2_1"], "none")
    seen = []
    vgg.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    grams = style_grams_from_files(vgg, tmp_path / "style", 16, ("relu1_1", "relu2_1"), torch.device("cpu"), chunk=3)
    assert seen == [3, 3, 1]
    from gan.data.datasets import style_image_batches

    everything = torch.cat(list(style_image_batches(tmp_path / "style", 16, 100)))
    feats = vgg(everything)
    for k in ("relu1_1", "relu2_1"):
        assert torch.allclose(grams[k], losses.gram_matrix(feats[k]).mean(0, keepdim=True), atol=1e-6)


def test_wandb_env_offline_with_disabled_config_says_so(tiny_overrides, tmp_path):
    r = run_py(ROOT / "train.py", *tiny_overrides, "train.max_steps=1", "tracking.wandb.mode=disabled",
               env_extra={"WANDB_MODE": "offline"})
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("tracking.wandb.mode=disabled, which WANDB_MODE=offline does not override") == 1
    assert not (tmp_path / "runs" / "tiny" / "wandb").exists()


def test_cuda_index_under_torchrun_is_refused(monkeypatch):
    from gan import GanError
    from gan.distributed import resolve_device

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(GanError, match="cuda:1 under torchrun: each process uses the GPU of its LOCAL_RANK"):
        resolve_device("cuda:1")
