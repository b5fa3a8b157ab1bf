import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan import GanError
from gan.inference.export import export
from gan.checkpoint.exported import OnnxGenerator
from gan.nn.networks import ResnetGenerator
from tests.test_translate import run_dir  # noqa: F401  (fixture)
from tests.helpers import HANG_GUARD

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_round_trip_dynamic_shapes(tmp_path, fmt):
    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, ngf=4, n_blocks=1).eval()
    path = tmp_path / f"g.{fmt}"
    diff = export(net, fmt, path)
    assert path.is_file() and diff < 1e-3
    x = torch.rand(3, 3, 29, 70) * 2 - 1  # another batch and an odd size than the check used
    with torch.no_grad():
        ref = net(x)
    got = OnnxGenerator(path)(x) if fmt == "onnx" else torch.jit.load(str(path))(x)
    assert got.shape == ref.shape and (got - ref).abs().max() < 1e-3


def test_export_cli_and_onnx_through_test_py(run_dir, tmp_path):  # noqa: F811
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    onnx_path = tmp_path / "m.onnx"
    r = subprocess.run([sys.executable, "-m", "gan.export", "--checkpoint", str(run_dir), "--format", "onnx",
                        "--output", str(onnx_path), "--direction", "BtoA"], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    assert "max abs difference" in r.stderr and onnx_path.is_file()
    (tmp_path / "in").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (21, 34, 3), dtype=np.uint8)).save(tmp_path / "in" / "a.png")

    def translate(*args):
        return subprocess.run([sys.executable, str(ROOT / "test.py"), "--input", str(tmp_path / "in"), "--precision",
                               "fp32", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=HANG_GUARD)

    # The file knows what it holds: kind, run name and direction, in its ONNX metadata.
    import json

    import onnx

    meta = json.loads({p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}["gan_export.json"])
    assert meta["direction"] == "BtoA" and meta["kind"] == "cyclegan" and meta["name"] == "tiny"
    r = translate("--checkpoint", str(onnx_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 2 and "was exported for BtoA; pass --direction BtoA" in r.stderr
    assert not (tmp_path / "out" / "a.png").exists()
    r = translate("--checkpoint", str(onnx_path), "--output", str(tmp_path / "out"), "--direction", "BtoA")
    assert r.returncode == 0, r.stderr
    got = np.asarray(Image.open(tmp_path / "out" / "a.png")).astype(int)
    assert got.shape == (21, 34, 3)
    for direction, same in (("BtoA", True), ("AtoB", False)):  # the checkpoint's BtoA result, not its AtoB one
        r = translate("--checkpoint", str(run_dir), "--output", str(tmp_path / direction), "--direction", direction)
        assert r.returncode == 0, r.stderr
        ref = np.asarray(Image.open(tmp_path / direction / "a.png")).astype(int)
        assert (np.abs(got - ref).max() <= 1) == same, direction


def test_onnx_without_a_record_runs_with_a_warning(tmp_path, caplog):
    from gan.inference.load import load_generator

    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, ngf=4, n_blocks=1).eval()
    export(net, "onnx", tmp_path / "g.onnx", meta={"direction": "AtoB"})
    import onnx

    model = onnx.load(str(tmp_path / "g.onnx"))
    del model.metadata_props[:]  # as another tool or an older version writes it
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with caplog.at_level("WARNING", logger="gan"):
        load_generator(tmp_path / "bare.onnx", "BtoA")
    assert "records no direction" in caplog.text
    with pytest.raises(GanError, match="was exported for AtoB"):
        load_generator(tmp_path / "g.onnx", "BtoA")


def test_export_refuses_unknown_format(tmp_path):
    with pytest.raises(GanError, match="--format must be onnx or torchscript"):
        export(ResnetGenerator(3, 3, 4, 1), "tflite", tmp_path / "x")


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_runs_in_fp32_whatever_precision_the_entry_point_resolved(tmp_path, fmt):
    """The defect: through Engine(..., bf16) a TorchScript generator ran under autocast and differed from fp32 by
    0.017. The engine, given any entry point's policy, prepares an export to run as exported: the same result
    (exactly) under a bf16 policy as under fp32, for the engine, the app's backend and gan.evaluate's path."""
    from gan.inference.engine import Engine
    from gan.inference.load import load_generator
    from gan.runtime import Runtime, is_exported

    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, ngf=8, n_blocks=2).eval()
    export(net, fmt, tmp_path / f"g.{fmt}", meta={"direction": "AtoB"})
    loaded, info = load_generator(tmp_path / f"g.{fmt}")
    assert info.source == fmt and is_exported(loaded)
    bf16 = Runtime.resolve("cpu", "bf16")
    _, prepared = bf16.prepare(loaded)
    assert prepared.precision.name == "fp32" and not prepared.channels_last
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 40, 52), dtype=np.uint8))
    fp32 = Engine(loaded, Runtime.on("cpu")).image(x)
    assert torch.equal(Engine(loaded, bf16).image(x), fp32)
    # a PyTorch generator does run in bf16 under that policy (the policy is applied, not ignored)
    assert not torch.equal(Engine(net, bf16).image(x), Engine(net, Runtime.on("cpu")).image(x))


def test_a_big_image_through_an_export_names_the_setting_that_works_with_it(tmp_path):
    """An export cannot run in bands: its big images go in tiles with their own statistics. The log line says so
    and names the setting that gives one whole-image pass with the export, with the memory it takes."""
    from gan.inference.engine import Engine
    from gan.inference.load import load_generator

    torch.manual_seed(0)
    export(ResnetGenerator(3, 3, ngf=4, n_blocks=1).eval(), "onnx", tmp_path / "g.onnx", meta={"direction": "AtoB"})
    net, _ = load_generator(tmp_path / "g.onnx")
    said = Engine(net, max_pixels=4_000_000).describe(2000, 3000)
    assert "overlapping tiles" in said and "an exported model cannot be run stage by stage" in said
    assert "--max-megapixels 6 (about 5 GB of memory" in said, said
    assert "--max-megapixels" not in Engine(net, tile=512).describe(2000, 3000)  # tiles asked for: nothing to add
    checkpoint_net = ResnetGenerator(3, 3, ngf=4, n_blocks=1).eval()
    assert "--max-megapixels 6" not in Engine(checkpoint_net).describe(2000, 3000)  # bands, whole-image statistics
