"""The reference's pretrained CycleGAN generators by name: `--checkpoint zoo:style_monet`.

    path = fetch("style_monet")     # downloaded once into the cache, then served from it (offline too)

The files are the ones junyanz/pytorch-CycleGAN-and-pix2pix publishes (NAME.pth under its pretrained_models
address; `GAN_ZOO_URL` points at a mirror laid out the same way). The cache is `$GAN_HOME/zoo`, or the platform's
cache folder (`~/.cache/gan/zoo` on Linux). A download goes to NAME.pth.part: an interrupted one is resumed
from where it stopped (HTTP range request) or started again where the server cannot resume; what arrives must be
a complete generator of the reference's layout (it is loaded and checked before it is kept), else it is removed.
The reference publishes no checksums: the sha256 of the first download is recorded beside the file
(NAME.sha256) and checked whenever the cached file is used; a file that no longer matches is fetched again.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import sys
from pathlib import Path

from gan import GanError

REFERENCE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
PREFIX = "zoo:"
log = logging.getLogger("gan")

# name -> what it does (AtoB, the one direction each file holds; 9-block ResNet generators, ngf 64, 256 px)
ZOO = {
    "style_monet": "photo -> Monet painting",
    "style_cezanne": "photo -> Cezanne painting",
    "style_ukiyoe": "photo -> ukiyo-e print",
    "style_vangogh": "photo -> Van Gogh painting",
    "monet2photo": "Monet painting -> photo",
    "horse2zebra": "horse -> zebra",
    "zebra2horse": "zebra -> horse",
    "apple2orange": "apple -> orange",
    "orange2apple": "orange -> apple",
    "summer2winter_yosemite": "Yosemite in summer -> in winter",
    "winter2summer_yosemite": "Yosemite in winter -> in summer",
    "iphone2dslr_flower": "phone photo of flowers -> shallow depth of field (DSLR look)",
    "sat2map": "satellite image -> map",
    "map2sat": "map -> satellite image",
    "cityscapes_photo2label": "street photo -> Cityscapes label colours",
    "cityscapes_label2photo": "Cityscapes label colours -> street photo",
    "facades_photo2label": "facade photo -> facade label colours",
    "facades_label2photo": "facade label colours -> facade photo",
}


def cache_home() -> Path:
    """$GAN_HOME, else the platform's cache folder for gan."""
    if os.environ.get("GAN_HOME"):
        return Path(os.environ["GAN_HOME"]).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "gan" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "gan"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gan"


def base_url() -> str:
    return (os.environ.get("GAN_ZOO_URL") or REFERENCE_URL).rstrip("/")


def check_name(name: str) -> str:
    if name in ZOO:
        return name
    close = difflib.get_close_matches(name, ZOO, n=1)
    hint = f"did you mean zoo:{close[0]}? " if close else ""
    raise GanError(f"zoo:{name} is not a model of the zoo; {hint}it has: {', '.join(ZOO)} "
                   "(python -m gan.zoo list says what each does)")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(name: str, progress: bool = True) -> Path:
    """The cached file of zoo model `name`, downloaded (or the download resumed) first when it is not there."""
    name = check_name(name)
    folder = cache_home() / "zoo"
    path, record = folder / f"{name}.pth", folder / f"{name}.sha256"
    if path.is_file():
        if not record.is_file() or record.read_text().strip() == sha256(path):
            return path
        log.warning("%s does not match the sha256 recorded when it was downloaded: fetching it again", path)
        path.unlink()
    url = f"{base_url()}/{name}.pth"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GanError(f"cannot create the model cache {folder} ({e.strerror or e}); set GAN_HOME to a folder "
                       "you can write") from None
    part = folder / f"{name}.pth.part"
    _download(url, part, name, progress)
    _check_generator(part, url)
    digest = sha256(part)
    os.replace(part, path)
    if record.is_file() and record.read_text().strip() != digest:
        log.warning("zoo:%s: the file downloaded now differs from the one first recorded (sha256 %s, was %s); "
                    "keeping the new one", name, digest[:12], record.read_text().strip()[:12])
    record.write_text(digest + "\n")
    log.info("zoo:%s: %s (sha256 %s)", name, path, digest[:12])
    return path


def _download(url: str, part: Path, name: str, progress: bool) -> None:
    """url -> part, resuming a partial file with a range request; a network failure keeps what arrived (the next
    call resumes) and says where the file can be placed by hand."""
    import http.client
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    from gan.network import network_problem

    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    where = cache_home() / "zoo" / f"{name}.pth"
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the range starts at the end: the file is there
            return
        part.unlink(missing_ok=True)
        raise GanError(f"cannot download zoo:{name} from {url}: {network_problem(e)}") from None
    except (urllib.error.URLError, OSError) as e:
        raise GanError(f"zoo:{name} is not in the cache and cannot be downloaded: {network_problem(e)}. Download "
                       f"{url} and place it at {where} (or set GAN_ZOO_URL to a mirror)") from None
    with response:
        resumed = have and response.status == 206
        if not resumed:
            have = 0  # the server sent the whole file
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=f"zoo:{name}",
                   disable=not progress, dynamic_ncols=True)
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while True:
                    chunk = response.read(1 << 16)
                    if not chunk:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
        except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
            raise GanError(f"the download of zoo:{name} was interrupted ({network_problem(e)}); run the command "
                           f"again to resume it, or place {url} at {where}") from None
        finally:
            bar.close()
    got = part.stat().st_size
    if total is not None and got != total:
        raise GanError(f"the download of zoo:{name} stopped at {got} of {total} bytes; run the command again to "
                       f"resume it, or place {url} at {where}")


def _check_generator(part: Path, url: str) -> None:
    """What arrived is a complete reference CycleGAN generator, or it is removed."""
    from gan.checkpoint.schema import reference_generator

    try:
        reference_generator(part)
    except GanError as e:
        part.unlink(missing_ok=True)
        reason = str(e).replace(str(part), "the file")
        raise GanError(f"what {url} sent is not a complete CycleGAN generator ({reason}); it was removed") from None


def cached() -> dict[str, Path]:
    """The zoo models in the cache."""
    folder = cache_home() / "zoo"
    return {n: folder / f"{n}.pth" for n in ZOO if (folder / f"{n}.pth").is_file()}
