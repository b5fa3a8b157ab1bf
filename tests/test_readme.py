"""Every command README.md and docs/*.md show runs as written, in document order (README.md first, then docs/*.md
by name), in a folder laid out the way the README tells users to lay it out (datasets/my_style/photo,
painting, photo_test; photos/, big.jpg, clip.mp4, ... beside them).

Only sizes are made tiny: train.py gets tiny-model overrides appended (later keys win), stylize.py a small
size and random VGG weights, and FID's Inception network is replaced by a tiny module (its weights cannot be
downloaded here). Each command's output files are cleared before it runs, as a user trying one example after
another would pick a fresh output. A command that cannot run on a CPU-only machine without internet is listed in
NOT_RUN with the reason and the test that covers its path instead; a command in neither list fails."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.helpers import TINY, write_images

ROOT = Path(__file__).resolve().parents[1]

# Commands not run here, by their first words: why, and what covers them.
NOT_RUN = {
    "python3 scripts/bootstrap.py": "the set-up itself (it runs this suite)",
    "torchrun": "several processes or nodes: tests/test_distributed.py runs train.py under torchrun",
    "srun": "SLURM: tests/test_distributed.py runs train.py under torchrun",
    "head=$(scontrol": "SLURM",
    "python app.py": "a server that runs until stopped: tests/test_app.py drives it in a browser",
    "python scripts/download_dataset.py": "downloads: tests/test_sample_and_download.py against a local server",
    "python benchmarks/": "timed runs at real sizes, run alone on a quiet machine (docs/benchmarks.md)",
    "bash benchmarks/gpu.sh": "needs a CUDA GPU: tests/test_cuda.py is the part that checks, and skips without one",
    "wandb ": "W&B's own command with an account: tests/test_tracking.py covers offline runs and sweep agents",
    "pip install": "installs the package: tests/test_package.py builds the wheel and installs it in a fresh virtualenv",
    "gan-": "installed commands: tests/test_package.py runs them from a fresh virtualenv",
    "python -m gan.hub push": "uploads to the Hub: tests/test_hub.py runs it up to the upload, which it injects",
    "python test.py --checkpoint hf:": "the Hub: tests/test_hub.py loads hf: names from a pre-filled cache offline",
}

TRAIN_TINY = [o for o in TINY if not o.startswith("train.device")] + [
    "train.max_steps=2", "data.batch_size=1", "loss.vgg.weights=none", "eval.num_images=2"]
STYLIZE_TINY = ["--vgg-weights", "none", "--min-size", "16", "--iterations", "2"]


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands() -> list[str]:
    """The commands of the bash blocks of README.md and docs/*.md, in that order, continuation lines joined,
    comments kept (shlex drops them)."""
    blocks = [b for doc in DOCUMENTS for b in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S)]
    commands = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def not_run_reason(command: str) -> str | None:
    return next((why for start, why in NOT_RUN.items() if command.startswith(start)), None)


def layout(ws: Path) -> None:
    """What the README asks users to have: their folders, a few photos and paintings, a clip, a zoo file."""
    from tests.test_video import moving_square, write_video

    write_images(ws / "datasets/my_style/photo", 4, seed=1)
    write_images(ws / "datasets/my_style/painting", 4, seed=2)
    write_images(ws / "datasets/my_style/photo_test", 2, seed=3)
    for split, seed in (("trainA", 4), ("trainB", 5), ("testA", 6), ("testB", 7)):
        write_images(ws / "datasets/monet2photo" / split, 3, seed=seed)
    write_images(ws / "photos", 2, seed=8)
    rng = np.random.default_rng(0)
    for name in ("photo", "big", "monet", "hokusai", "ukiyoe", "a", "b", "starry_night"):
        small = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
        Image.fromarray(small).resize((72, 56), Image.BILINEAR).save(ws / f"{name}.jpg", quality=95)
    write_video(ws / "clip.mp4", moving_square(6), audio_s=None)
    (ws / "holiday").mkdir()
    write_video(ws / "holiday" / "walk.mp4", moving_square(4), audio_s=None)
    from gan.nn.networks import ResnetGenerator

    torch.manual_seed(0)
    torch.save(ResnetGenerator(3, 3, ngf=4, n_blocks=1).state_dict(), ws / "latest_net_G.pth")
    shutil.copytree(ROOT / "configs", ws / "configs")


def prepare(ws: Path, argv: list[str]) -> None:
    """Per command: fresh outputs; a step the tiny run never reached is given the run's latest checkpoint."""
    for name in ("out", "out.png", "out.tif", "stylized", "results"):
        p = ws / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    for a in argv:
        m = re.fullmatch(r"(runs/[^/]+)/checkpoints/step_\d+\.pt", a)
        if m and not (ws / a).exists():
            shutil.copy(ws / m.group(1) / "latest.pt", ws / a)


def entry(argv: list[str]):
    """(main function, its arguments, tiny additions) of a `python ...` command."""
    if argv[:2] == ["python", "-m"]:
        module = importlib.import_module(argv[2])
        if hasattr(module, "__path__"):  # a package: `python -m` runs its __main__
            module = importlib.import_module(f"{argv[2]}.__main__")
        return module.main, argv[3:], []
    script = argv[1]
    spec = importlib.util.spec_from_file_location(f"readme_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = argv[2:]
    if script == "train.py":
        resume = "--resume" in args
        extra = ["train.max_steps=4", "train.device=cpu"] if resume else TRAIN_TINY + [
            "train.device=cpu", "train.save_every=2"]
        if "train.epochs_decay=150" in args:  # the second resume example: two more steps
            extra = ["train.max_steps=6", "train.device=cpu"]
        if any(a.startswith("configs/") and "cut" in a for a in args):  # one residual block: layers in reach
            extra.append("model.cut.nce_layers=[0,4,8,12]")
        return module.main, args, extra
    if script == "stylize.py":
        size = [] if "--size" in args and args[args.index("--size") + 1] == "0" else ["--size", "32"]
        return module.main, args, STYLIZE_TINY + size
    return module.main, args, []


def test_readme_lists_only_commands_that_run_or_say_why():
    commands = readme_commands()
    assert len(commands) >= 25
    for c in commands:
        assert c.startswith("python ") or not_run_reason(c), f"command neither run nor explained: {c}"


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.*)$", text, re.M)}


def test_relative_links_and_images_point_at_what_exists():
    for doc in DOCUMENTS:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked here
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            assert file.exists(), f"{doc.name}: link to a missing file: {target}"
            if anchor:
                assert anchor in anchors(file), f"{doc.name}: link to a missing heading: {target}"


def test_every_readme_command_runs_as_written(tmp_path, monkeypatch):
    import gan.evaluation.metrics
    from tests.test_metrics import TinyFeatures

    ws = tmp_path / "ws"
    ws.mkdir()
    layout(ws)
    monkeypatch.chdir(ws)
    monkeypatch.setattr(gan.evaluation.metrics, "inception", lambda weights=None: TinyFeatures())
    from tests.test_zoo import Mirror, generator_bytes  # the zoo's files, from a server on 127.0.0.1

    mirror = Mirror({f"{n}.pth": generator_bytes() for n in ("style_monet", "style_ukiyoe")})
    monkeypatch.setenv("GAN_ZOO_URL", mirror.url)
    monkeypatch.setenv("GAN_HOME", str(tmp_path / "gan_home"))
    ran = []
    for command in readme_commands():
        if not_run_reason(command):
            continue
        argv = shlex.split(command, comments=True)
        main, args, extra = entry(argv)
        prepare(ws, args)
        code = main(args + extra)
        assert code == 0, f"exit {code}: {command}"
        for flag in ("--output", "--json"):
            if flag in args:
                out = ws / args[args.index(flag) + 1]
                assert out.is_file() or any(out.iterdir()), f"nothing written to {out}: {command}"
        ran.append(command)
    mirror.stop()
    assert len(ran) >= 20
    # What the commands promised is there.
    assert (ws / "runs/my_style/latest.pt").is_file() and (ws / "runs/starry/latest.pt").is_file()
    assert torch.load(ws / "runs/my_style/latest.pt", weights_only=True)["step"] == 6  # trained, resumed twice
    assert (ws / "my_style.onnx").is_file() and (ws / "adain.onnx").is_file()
