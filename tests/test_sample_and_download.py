import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from gan.data.io import find_images, load_image
from gan.data.sample import build_sample_dataset
from tests.helpers import HANG_GUARD

ROOT = Path(__file__).resolve().parents[1]


def test_sample_dataset_build_is_deterministic(tmp_path):
    a = build_sample_dataset(tmp_path / "one" / "datasets" / "sample", log=lambda *_: None)
    b = build_sample_dataset(tmp_path / "two" / "datasets" / "sample", log=lambda *_: None)
    for split, n in (("trainA", 48), ("trainB", 48), ("testA", 5), ("testB", 8)):
        files = find_images(a / split)
        assert len(files) == n
        for f in files:
            assert f.read_bytes() == (b / split / f.name).read_bytes()
    img = load_image(find_images(a / "trainB")[0])
    assert img.shape == (128, 128, 3)
    assert not list((tmp_path / "one" / "datasets").glob(".sample-*"))  # temp folder cleaned up


def make_zip(folder: Path, name: str, with_b: bool = True) -> Path:
    src = folder / "src" / name
    for d in ("trainA", "trainB", "testA", "testB") if with_b else ("trainA",):
        (src / d).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(src / d / "x.jpg")
    archive = folder / "srv" / f"{name}.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(src.rglob("*")):
            z.write(p, p.relative_to(src.parent).as_posix())
    return archive


def run_script(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "download_dataset.py"), *args],
                          capture_output=True, text=True, timeout=HANG_GUARD)


def test_download_verify_unpack_and_refuse_overwrite(tmp_path):
    archive = make_zip(tmp_path, "horse2zebra")
    url = archive.parent.as_uri()
    root = tmp_path / "datasets"
    r = run_script("horse2zebra", "--root", str(root), "--base-url", url)
    assert r.returncode == 0, r.stderr
    assert (root / "horse2zebra" / "trainA" / "x.jpg").is_file() and (root / "horse2zebra" / "testB").is_dir()
    assert "horse2zebra is in" in r.stdout
    r = run_script("horse2zebra", "--root", str(root), "--base-url", url)
    assert r.returncode == 2 and "exists already; pass --force" in r.stderr
    (root / "horse2zebra" / "trainA" / "x.jpg").unlink()
    r = run_script("horse2zebra", "--root", str(root), "--base-url", url, "--force")
    assert r.returncode == 0 and (root / "horse2zebra" / "trainA" / "x.jpg").is_file()


def test_corrupt_or_incomplete_archives_leave_nothing(tmp_path):
    archive = make_zip(tmp_path, "monet2photo")
    data = bytearray(archive.read_bytes())
    data[60:80] = b"\0" * 20  # damage the first member
    archive.write_bytes(bytes(data))
    root = tmp_path / "datasets"
    r = run_script("monet2photo", "--root", str(root), "--base-url", archive.parent.as_uri())
    assert r.returncode == 2 and "monet2photo.zip" in r.stderr
    assert not (root / "monet2photo").exists() and list(root.iterdir()) == []
    archive2 = make_zip(tmp_path / "b", "vangogh2photo", with_b=False)
    r = run_script("vangogh2photo", "--root", str(root), "--base-url", archive2.parent.as_uri())
    assert r.returncode == 2 and "expected vangogh2photo/trainA and vangogh2photo/trainB" in r.stderr
    assert list(root.iterdir()) == []


def test_download_failure_and_unknown_name(tmp_path):
    root = tmp_path / "datasets"
    r = run_script("cezanne2photo", "--root", str(root), "--base-url", (tmp_path / "nothing").as_uri())
    assert r.returncode == 2 and "cannot download" in r.stderr and list(root.iterdir()) == []
    r = run_script("monet2painting", "--root", str(root))
    assert r.returncode == 2 and "unknown dataset 'monet2painting'" in r.stderr
