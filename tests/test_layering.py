"""Structure the package promises: no import cycles through errors, no hidden global state."""

import ast
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import torch

import gan

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.walk_packages(gan.__path__, "gan.") if m.name != "gan.app")


def test_error_classes_live_in_the_package_root_with_exit_codes():
    from gan import ConfigError, DivergenceError, GanError, ImageDecodeError

    assert GanError.exit_code == 2 and ConfigError.exit_code == 2 and ImageDecodeError.exit_code == 2
    assert DivergenceError.exit_code == 1
    code = "import sys, gan.cli; print('gan.trainer' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout.split()
    assert out == ["False", "False"]  # the CLI helpers import neither the trainer nor torch


def test_no_module_writes_the_environment():
    for path in (ROOT / "gan").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("putenv", "setdefault", "update", "pop") and \
                    isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
                raise AssertionError(f"{path.name}:{node.lineno} writes os.environ")
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Attribute) and t.value.attr == "environ":
                        raise AssertionError(f"{path.name}:{node.lineno} writes os.environ")


def test_no_shared_mutable_default_arguments():
    import importlib

    bad = []
    for name in MODULES:
        module = importlib.import_module(name)
        for obj_name, obj in vars(module).items():
            functions = [obj] if inspect.isfunction(obj) else (
                [f for f in vars(obj).values() if inspect.isfunction(f)] if inspect.isclass(obj) else [])
            for f in functions:
                if f.__module__ != name:
                    continue
                for p in inspect.signature(f).parameters.values():
                    d = p.default
                    mutable = isinstance(d, (list, dict, set)) or (
                        hasattr(d, "__dataclass_fields__") and not d.__dataclass_params__.frozen)
                    if mutable:
                        bad.append(f"{name}.{f.__qualname__}({p.name}=...)")
    assert not bad, bad


def test_translation_leaves_the_callers_net_as_it_was(tmp_path):
    from gan.networks import ResnetGenerator
    from gan.translate import TranslateOptions, translate_folder
    from tests.helpers import write_images

    net = ResnetGenerator(3, 3, 4, 1).eval()
    before = {k: (v.data_ptr(), v.stride()) for k, v in net.state_dict().items()}
    write_images(tmp_path / "in", 1)
    translate_folder(net, tmp_path / "in", tmp_path / "out", TranslateOptions(workers=0), progress=False)
    assert {k: (v.data_ptr(), v.stride()) for k, v in net.state_dict().items()} == before
    assert all(p.is_contiguous() for p in net.parameters())
    assert torch.is_grad_enabled()


def test_gradio_and_pyav_load_only_where_needed():
    """The web app's Gradio is imported by gan.app alone, PyAV only when a video is decoded: train.py, test.py on
    images and stylize.py start as fast as without them."""
    code = ("import sys, gan.trainer, gan.translate, gan.stylize, gan.tiling, gan.video, gan.export; "
            "print('gradio' in sys.modules, 'av' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout.split()
    assert out == ["False", "False"]
