"""Set-up and the two first commands, with nothing but Python 3.10 or newer and pip (the Makefile calls this too).

    python3 scripts/bootstrap.py demo   # .venv + install, train the quickstart, translate the sample photos
    python3 scripts/bootstrap.py test   # .venv + install (with pytest), run the test suite

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


def demo() -> None:
    ensure_env(dev=False)
    for path in ("runs/quickstart", "results/quickstart"):  # the demo owns these and replaces them
        shutil.rmtree(ROOT / path, ignore_errors=True)
    (ROOT / "results" / "quickstart_side_by_side.png").unlink(missing_ok=True)
    run(PY, "train.py", "--config", "configs/quickstart.yaml")
    run(PY, "test.py", "--checkpoint", "runs/quickstart", "--input", "datasets/sample/testA",
        "--output", "results/quickstart", "--side-by-side", "results/quickstart_side_by_side.png")
    print("\nTranslated photos:   results/quickstart/\n"
          "Side by side:        results/quickstart_side_by_side.png  (photo | painting-style result)\n"
          "Training run:        runs/quickstart/ (samples/, metrics.jsonl, latest.pt)")


def test() -> None:
    ensure_env(dev=True)
    run(PY, "-m", "pytest", "-q")


def main() -> None:
    tasks = {"demo": demo, "test": test}
    if len(sys.argv) != 2 or sys.argv[1] not in tasks:
        sys.exit(f"usage: python3 scripts/bootstrap.py {'|'.join(tasks)}")
    tasks[sys.argv[1]]()


if __name__ == "__main__":
    main()
