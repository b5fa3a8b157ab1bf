"""Where a model named on the command line comes from: `zoo:NAME` (the reference's pretrained generators,
gan.hub.zoo), `hf:user/repo[@revision]` (a folder saved by `python -m gan.hub`, fetched through
huggingface_hub's own download and cache, which also serves it offline), or a path (a file, a run directory or a
saved folder). `locate` turns each into a local path; gan.checkpoint.source reads what is there.
"""

from __future__ import annotations

from pathlib import Path

from gan import GanError
from gan.checkpoint.folder import CONFIG, WEIGHTS

HF_PREFIX = "hf:"
HUB_FILES = (CONFIG, WEIGHTS, "README.md", "sample.png")  # a saved folder (gan.checkpoint.folder, gan.hub.publish)


def locate(spec: str | Path) -> Path:
    """A local path for `spec`: downloads a zoo model or a Hub repository first when it is not cached."""
    from gan.hub.zoo import PREFIX, fetch

    text = str(spec)
    if text.startswith(PREFIX):
        return fetch(text[len(PREFIX):])
    if text.startswith(HF_PREFIX):
        return hf_snapshot(text[len(HF_PREFIX):])
    return Path(spec)


def parse_repo(text: str) -> tuple[str, str | None]:
    """"user/repo@revision" -> ("user/repo", "revision"); the revision is optional."""
    repo, _, revision = text.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")) or (_ and not revision):
        raise GanError(f"hf:{text}: expected hf:USER/REPO or hf:USER/REPO@REVISION")
    return repo, revision or None


def hf_snapshot(text: str) -> Path:
    """The local folder of a Hub repository (huggingface_hub's cache; HF_HUB_OFFLINE=1 uses only the cache)."""
    repo, revision = parse_repo(text)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise GanError("hf: models need the huggingface_hub package: pip install huggingface_hub") from None
    try:
        folder = snapshot_download(repo, revision=revision, allow_patterns=list(HUB_FILES))
    except Exception as e:  # offline without a cached copy, a repository or revision that does not exist, ...
        from gan.network import network_problem

        raise GanError(f"cannot get hf:{text}: {network_problem(e, 'a private repository needs `hf auth login` or HF_TOKEN')}"
                       "; offline, only a repository downloaded before can be used") from None
    return Path(folder)
