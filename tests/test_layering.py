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
    code = "import sys, gan.cli; print('gan.training.trainer' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout.split()
    assert out == ["False", "False"]  # the CLI helpers import neither the trainer nor torch


def test_no_module_writes_the_environment():
    """Only the programs (gan/commands, which own their process, as train.py did) may set variables."""
    for path in (ROOT / "gan").rglob("*.py"):
        if path.parent.name == "commands":
            continue
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
    from gan.nn.networks import ResnetGenerator
    from gan.inference.translate import TranslateOptions, translate_folder
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
    code = ("import sys, gan.training.trainer, gan.inference.translate, gan.stylize.optimise, gan.inference.tiling, gan.inference.video, gan.export; "
            "print('gradio' in sys.modules, 'av' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout.split()
    assert out == ["False", "False"]


# Each module's layer, from the bottom up: a module imports (at the top or inside a function) only modules of
# its own layer or below. A new module must be given its place here.
LAYERS = [
    ["gan", "gan.cpus", "gan.distributed", "gan.cli", "gan.network"],
    ["gan.config.schema"],
    ["gan.data", "gan.data.io", "gan.nn", "gan.nn.bandprog"],
    ["gan.nn.networks", "gan.nn.losses", "gan.data.datasets", "gan.data.sample", "gan.runtime"],
    ["gan.models", "gan.models.*"],
    ["gan.config"],  # loads configs: the shared sections and each kind's own
    # model files: the run folder's format and what reads every source (names fetched by gan.hub.sources)
    ["gan.checkpoint", "gan.checkpoint.schema", "gan.checkpoint.runs", "gan.checkpoint.folder",
     "gan.checkpoint.exported"],
    ["gan.hub", "gan.hub.zoo", "gan.hub.sources"],
    ["gan.checkpoint.source"],
    # training and inference side by side: neither imports the other (test below)
    ["gan.training", "gan.training.tracking", "gan.inference", "gan.inference.normstats", "gan.inference.temporal",
     "gan.evaluation", "gan.evaluation.metrics", "gan.evaluation.alignment", "gan.stylize", "gan.stylize.options",
     "gan.stylize.colour"],
    ["gan.inference.tiling", "gan.inference.load", "gan.inference.export", "gan.hub.publish", "gan.stylize.optimise"],
    ["gan.inference.engine"],
    ["gan.inference.video", "gan.inference.feedforward"],
    ["gan.inference.translate", "gan.training.trainer", "gan.inference.stylize_files"],
    ["gan.app", "gan.commands", "gan.commands.*", "gan.export", "gan.evaluate", "gan.zoo", "gan.hub.__main__"],
]


def _layer_of(name: str) -> int:
    for i, names in enumerate(LAYERS):
        if name in names or any(n.endswith(".*") and name.startswith(n[:-1]) for n in names):
            return i
    raise AssertionError(f"{name} has no layer in tests/test_layering.py's LAYERS: give it its place")


def test_no_module_imports_one_above_its_layer():
    modules = {}
    for path in (ROOT / "gan").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    wrong = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gan":
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "gan"]
            for t in targets:
                if _layer_of(t) > _layer_of(name):
                    wrong.append(f"{name} imports {t}")
    assert not wrong, wrong


def test_training_and_inference_import_nothing_of_each_other():
    """They stand side by side on the model-file owner (gan.checkpoint) and the runtime policy (gan.runtime)."""
    wrong = []
    for path in (ROOT / "gan").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for pkg, other in (("gan.training", "gan.inference"), ("gan.inference", "gan.training")):
            if not name.startswith(pkg):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                mods = [node.module] if isinstance(node, ast.ImportFrom) and node.module else (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                wrong += [f"{name} imports {m}" for m in mods if m and m.startswith(other)]
    assert not wrong, wrong
