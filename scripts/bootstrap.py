"""Set-up and the two first commands, with nothing but Python 3.10 or newer and pip (the Makefile calls this too).

    python3 scripts/bootstrap.py demo [key=value ...] [--threads N]   # .venv + install, train the quickstart,
                                        # translate the sample photos (and, online, with a pretrained zoo model)
    python3 scripts/bootstrap.py test [pytest arguments ...]   # .venv + install (with pytest), run the test suite

The demo takes the settings a user would give train.py (`key=value` overrides, e.g. train.threads=1 on a
shared machine); `--threads N` sets the compute threads of both training and translation.

The virtualenv is created once in .venv/ and reinstalled only when a requirements file changes.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT)
    if code != 0:
        sys.exit(code)


def ensure_env(dev: bool) -> None:
    if sys.version_info < (3, 10):
        sys.exit(f"Python 3.10 or newer is needed (this is {sys.version.split()[0]})")
    if not PY.exists():
        print(f"creating the virtualenv {VENV}", flush=True)
        try:
            venv.create(VENV, with_pip=True)
        except Exception as e:  # Debian/Ubuntu ship venv separately
            shutil.rmtree(VENV, ignore_errors=True)
            sys.exit(f"cannot create a virtualenv ({e}); on Debian/Ubuntu: sudo apt install python3-venv")
        run(PY, "-m", "pip", "install", "--upgrade", "pip")
    req = ROOT / ("requirements-dev.txt" if dev else "requirements.txt")
    files = [ROOT / "requirements.txt"] + ([ROOT / "requirements-dev.txt"] if dev else [])
    files += sorted((ROOT / "requirements").glob("*.txt"))  # what those two include
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    stamp = VENV / f".installed-{'dev' if dev else 'run'}"
    if not stamp.exists() or stamp.read_text() != digest:
        run(PY, "-m", "pip", "install", "-r", req)
        stamp.write_text(digest)


ZOO_MODEL = "style_monet"  # the fully trained model the demo also shows, when it can be fetched


def demo_commands(args: list[str]) -> list[list[str]]:
    """The demo's programs for its arguments: `key=value` overrides go to train.py (which checks them), and
    train.threads=N or --threads N sets the threads of training and translation alike."""
    overrides, threads, rest = [], None, list(args)
    while rest:
        a = rest.pop(0)
        if a == "--threads" and rest:
            threads = rest.pop(0)
            overrides.append(f"train.threads={threads}")
        elif a.startswith("--threads="):
            threads = a.split("=", 1)[1]
            overrides.append(f"train.threads={threads}")
        elif "=" in a and not a.startswith("-"):
            overrides.append(a)
            if a.startswith("train.threads="):
                threads = a.split("=", 1)[1]
        else:
            sys.exit(f"demo: unknown argument {a!r}; it takes train.py's key=value settings (e.g. train.threads=1) "
                     "and --threads N")
    translate = ["--threads", threads] if threads is not None else []
    return [
        [str(PY), "train.py", "--config", "configs/quickstart.yaml", *overrides],
        [str(PY), "test.py", "--checkpoint", "runs/quickstart", "--input", "datasets/sample/testA",
         "--output", "results/quickstart", "--side-by-side", "results/quickstart_side_by_side.png", *translate],
        [str(PY), "test.py", "--checkpoint", f"zoo:{ZOO_MODEL}", "--input", "datasets/sample/testA", "--output",
         "results/quickstart_zoo", "--side-by-side", "results/quickstart_zoo_side_by_side.png", *translate],
    ]


def demo(args: list[str]) -> None:
    ensure_env(dev=False)
    train, translate, zoo = demo_commands(args)
    for path in ("runs/quickstart", "results/quickstart", "results/quickstart_zoo"):  # the demo owns these
        shutil.rmtree(ROOT / path, ignore_errors=True)
    for sheet in ("quickstart_side_by_side.png", "quickstart_zoo_side_by_side.png"):
        (ROOT / "results" / sheet).unlink(missing_ok=True)
    run(*train)
    run(*translate)
    skipped = zoo_sheet(zoo)
    if skipped:
        print(skipped, flush=True)
    print(DEMO_SAYS + ("" if skipped else
                       f"Fully trained:       results/quickstart_zoo_side_by_side.png  (photo | zoo:{ZOO_MODEL}, the "
                       "reference's pretrained Monet generator)\n"), flush=True)


def zoo_sheet(command: list[str], env: dict | None = None) -> str | None:
    """Run the zoo model's translation; None when it worked, else the one line saying it was skipped and why
    (offline, typically: the model cannot be fetched)."""
    print("+", " ".join(command), flush=True)
    got = subprocess.run(command, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env)
    if got.returncode == 0:
        return None
    reason = next((line for line in reversed(got.stderr.splitlines()) if line.startswith("error:")),
                  "it did not run").removeprefix("error: ")
    return f"skipped the sheet of the pretrained zoo:{ZOO_MODEL}: {reason}"


# What the demo's results are, said plainly (docs/quality.md has the measurements).
DEMO_SAYS = ("\nTranslated photos:   results/quickstart/\n"
             "Side by side:        results/quickstart_side_by_side.png  (photo | the quickstart model's result)\n"
             "Training run:        runs/quickstart/ (samples/, metrics.jsonl, latest.pt)\n"
             "What it shows:       minutes of CPU training on 48 images: each photo recoloured, not yet painted (no\n"
             "                     outlines or flat patches yet; casts and blotches differ from CPU to CPU). Paintings\n"
             "                     take a full recipe trained for hours on a GPU, or a pretrained model:\n"
             "                     python test.py --checkpoint zoo:style_monet ... (README, docs/quality.md)\n")


def test(args: list[str]) -> None:
    ensure_env(dev=True)
    # -rs: the reason of every skipped test is shown (a missing browser, no GPU)
    run(PY, "-m", "pytest", "-q", "-rs", *args)


def main() -> None:
    tasks = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in tasks:
        sys.exit(f"usage: python3 scripts/bootstrap.py demo [key=value ...] [--threads N] | test [pytest arguments]")
    tasks[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
