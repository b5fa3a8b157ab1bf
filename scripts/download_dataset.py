"""Download and unpack one of the public CycleGAN datasets into datasets/NAME.

    python scripts/download_dataset.py monet2photo [--root datasets] [--force]

The archive is checked (a valid zip whose members all pass their CRC, with trainA/trainB inside) before
anything is unpacked; an interrupted or failed download leaves nothing behind; an existing datasets/NAME is
kept unless --force.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the clone's package, installed or not
from gan.network import network_problem  # noqa: E402  (standard library only)

BASE_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
DATASETS = (
    "monet2photo", "cezanne2photo", "ukiyoe2photo", "vangogh2photo", "horse2zebra", "apple2orange",
    "summer2winter_yosemite", "iphone2dslr_flower", "maps", "facades", "cityscapes", "ae_photos",
)


class DownloadError(Exception):
    pass


def download(url: str, dest: Path, progress: bool = True) -> None:
    """Stream `url` to `dest` with a progress bar; `dest` is removed if anything goes wrong."""
    from tqdm import tqdm

    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
            if total is not None and f.tell() != total:
                raise DownloadError(f"incomplete download: {f.tell()} of {total} bytes")
    except DownloadError:
        dest.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError) as e:
        dest.unlink(missing_ok=True)
        raise DownloadError(f"cannot download {url}: {network_problem(e)}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def verify(archive: Path, name: str) -> None:
    """A readable zip, every member's CRC correct, no path escaping the target, trainA and trainB present."""
    try:
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
            if bad is not None:
                raise DownloadError(f"{archive.name}: corrupt member {bad}")
            names = z.namelist()
    except zipfile.BadZipFile as e:
        raise DownloadError(f"{archive.name} is not a valid zip archive ({e})") from None
    for n in names:
        if n.startswith("/") or ".." in Path(n).parts:
            raise DownloadError(f"{archive.name}: unsafe path in archive: {n}")
    folders = {Path(n).parts[1] for n in names if len(Path(n).parts) > 2 and Path(n).parts[0] == name}
    if not {"trainA", "trainB"} <= folders:
        raise DownloadError(f"{archive.name}: expected {name}/trainA and {name}/trainB inside, found "
                            f"{sorted(folders) or 'nothing'}")


def fetch_dataset(name: str, root: Path, force: bool = False, base_url: str = BASE_URL,
                  progress: bool = True) -> Path:
    target = root / name
    if target.exists() and any(target.iterdir()) and not force:
        raise DownloadError(f"{target} exists already; pass --force to replace it")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=root) as tmp:
        archive = Path(tmp) / f"{name}.zip"
        download(f"{base_url.rstrip('/')}/{name}.zip", archive, progress)
        verify(archive, name)
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(archive) as z:
            z.extractall(unpacked)
        if target.exists():
            shutil.rmtree(target)
        (unpacked / name).rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help=f"dataset name, e.g. {', '.join(DATASETS[:5])}, ...")
    parser.add_argument("--root", default="datasets", help="parent folder (default: datasets)")
    parser.add_argument("--force", action="store_true", help="replace an existing datasets/NAME")
    parser.add_argument("--base-url", default=BASE_URL, help=argparse.SUPPRESS)  # mirrors and tests
    args = parser.parse_args(argv)
    if args.name not in DATASETS:
        print(f"error: unknown dataset {args.name!r}; available: {', '.join(DATASETS)}", file=sys.stderr)
        return 2
    try:
        target = fetch_dataset(args.name, Path(args.root), args.force, args.base_url)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was kept", file=sys.stderr)
        return 130
    counts = {d.name: sum(1 for _ in d.iterdir()) for d in sorted(target.iterdir()) if d.is_dir()}
    print(f"{args.name} is in {target}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
