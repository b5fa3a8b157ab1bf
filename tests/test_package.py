"""The installable package: the wheel pyproject.toml builds carries every module and the example configs, and, installed
into a fresh virtualenv, its commands run (the dependencies come from this environment: no network here)."""

import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers import HANG_GUARD

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["gan-train", "gan-translate", "gan-stylize", "gan-export", "gan-evaluate", "gan-app", "gan-hub", "gan-zoo"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (the build leaves nothing in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("gan", "configs", "requirements"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(out), str(src)], capture_output=True, text=True, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("gan-*.whl")
    return whl


def test_the_wheel_carries_every_module_the_configs_and_the_commands(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "gan").rglob("*.py")}
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "gan").rglob("__init__.py")}
    assert {"gan/checkpoint", "gan/hub"} <= packages  # (a subpackage missing from pyproject.toml fails here)
    assert modules and not modules - names, sorted(modules - names)
    configs = {f"gan/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")}
    assert configs and not configs - names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry).decode()
    assert all(f"{c} = " in text for c in COMMANDS)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    for req in ("torch", "safetensors", "huggingface_hub"):
        assert f"Requires-Dist: {req}" in meta
    assert "extra == \"app\"" in meta and "extra == \"video\"" in meta and "extra == \"dev\"" in meta


def test_installed_into_a_fresh_virtualenv_the_commands_work(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                        str(wheel)], capture_output=True, text=True, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    # The dependencies: this environment's (a .pth after the venv's own site-packages, so the wheel's gan wins).
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    bin_ = env_dir / "bin"
    for c in COMMANDS:
        r = subprocess.run([str(bin_ / c), "--help"], capture_output=True, text=True, timeout=HANG_GUARD, cwd=tmp_path)
        assert r.returncode == 0 and "usage:" in r.stdout, (c, r.stderr)
    where = subprocess.run([str(py), "-c", "import gan; print(gan.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path).stdout
    assert str(env_dir) in where  # the installed copy, not the checkout
    from gan.nn.networks import ResnetGenerator
    from tests.helpers import write_images

    torch.manual_seed(0)
    torch.save(ResnetGenerator(3, 3, ngf=4, n_blocks=1).state_dict(), tmp_path / "latest_net_G.pth")
    write_images(tmp_path / "photos", 1)
    r = subprocess.run([str(bin_ / "gan-translate"), "--checkpoint", "latest_net_G.pth", "--input", "photos",
                        "--output", "out", "--workers", "0"], capture_output=True, text=True, timeout=HANG_GUARD, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    from gan.data.io import load_image

    out = load_image(tmp_path / "out" / "img_000.png")
    assert out.shape == (40, 48, 3) and np.ptp(out) > 0
    # An example config by name, from inside the installed package.
    r = subprocess.run([str(py), "-c", "from gan.commands.train import config_file; print(config_file('cut'))"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout.strip().endswith("gan/configs/cut.yaml") and str(env_dir) in r.stdout
