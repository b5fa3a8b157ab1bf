"""A trained model as a folder others can load without pickle, and on the Hugging Face Hub.

    save("runs/monet", "monet_model/")           # model.safetensors + config.json + README.md (+ sample.png)
    push("runs/monet", "user/monet-cyclegan")    # the same folder, uploaded with huggingface_hub

The folder holds what inference needs and nothing else: the weights of the model's inference networks (each
generator of a one-image kind, the EMA weights when the run kept them, or the networks a content + style kind
builds its stylizer from) in model.safetensors, named `NET.PARAM`; config.json with the kind, the run's full
config (inference reads its `model` section), the step, the weights used and the evaluation numbers the run
has; a model card (README.md, the Hub's format: metadata header, what it translates, the recipe, numbers, how
to use it) and the run's last sample sheet. `--checkpoint FOLDER` and `--checkpoint hf:user/repo` load it
(gan.inference.load).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from gan import GanError, __version__
from gan.inference.load import FOLDER_CONFIG, FOLDER_FORMAT, FOLDER_WEIGHTS, model_config
from gan.training.checkpoint import is_gan_checkpoint, migrate, require, resolve, run_dir_of, safe_load


def inference_nets(kind, obj: dict, path: Path, weights: str = "ema") -> tuple[dict[str, dict], dict[str, str]]:
    """{net name: state dict} of what inference builds from checkpoint `obj` of model kind `kind` (its class),
    and {net name: "ema" | "raw"}."""
    ema = obj.get("ema") or {}
    nets, used = {}, {}

    def state_of(name: str) -> dict:
        if name not in nets:
            pick = weights == "ema" and name in ema
            nets[name], used[name] = (ema[name] if pick else require(obj, f"nets.{name}", path, dict)), (
                "ema" if pick else "raw")
        return nets[name]

    if kind.inputs == ("image",):
        for name in kind.generators.values():
            state_of(name)
    else:  # the kind asks for what it builds its network from
        kind.load_inference(model_config(obj, path), state_of, path)
    return nets, used


def _evaluation(run_dir: Path, obj: dict) -> dict:
    """The run's last evaluation (metrics.jsonl lines the trainer's evaluation wrote) and its best checkpoint."""
    from gan.training.tracking import read_metrics

    found: dict = {}
    for rec in reversed(read_metrics(run_dir)):
        if "loss_g" not in rec and any(k.endswith(("_ab", "_ba")) for k in rec):
            found = {"step": rec.get("step"), **{k: v for k, v in rec.items() if k != "step"}}
            break
    if obj.get("best"):
        found["best"] = obj["best"]
    return found


def save(source: str | Path, folder: str | Path, weights: str = "ema", overwrite: bool = False) -> Path:
    """Write `source` (a run directory or checkpoint of this project) as a saved folder; returns the folder."""
    from safetensors.torch import save_file

    path = resolve(source)
    obj = safe_load(path)
    if not is_gan_checkpoint(obj):
        raise GanError(f"{path} is not a checkpoint of this project (save takes a run directory or checkpoint)")
    obj = migrate(obj, path)
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise GanError(f"{folder} exists and is not empty; nothing was written (pass --overwrite to replace it)")
    from gan.models import kind_class

    kind = kind_class(require(obj, "kind", path, str))
    nets, used = inference_nets(kind, obj, path, weights)
    tensors = {f"{name}.{k}": v.detach().cpu().contiguous().clone() for name, sd in nets.items() for k, v in sd.items()}
    cfg = obj.get("config") or {}
    run_dir = run_dir_of(path)
    config = {
        "format": FOLDER_FORMAT, "gan_version": __version__, "kind": obj["kind"], "inputs": list(kind.inputs),
        "generators": dict(kind.generators), "nets": used, "name": cfg.get("name"), "step": obj.get("step"),
        "evaluation": _evaluation(run_dir, obj), "config": cfg,
    }
    tmp = Path(tempfile.mkdtemp(prefix=".saving-", dir=folder.parent if folder.parent.exists() else None))
    try:
        save_file(tensors, str(tmp / FOLDER_WEIGHTS), metadata={"format": FOLDER_FORMAT, "kind": obj["kind"]})
        (tmp / FOLDER_CONFIG).write_text(json.dumps(config, indent=2, default=str) + "\n")
        samples = sorted((run_dir / "samples").glob("*.png"))
        if samples:
            shutil.copy(samples[-1], tmp / "sample.png")
        (tmp / "README.md").write_text(model_card(config, samples[-1].name if samples else None))
        for f in tmp.iterdir():
            f.chmod(0o644)
        tmp.chmod(0o755)  # (a temporary folder is private; the saved one is for sharing)
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp), str(folder))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def model_card(config: dict, sample_from: str | None) -> str:
    """README.md for the Hub: metadata header, what the model translates, the recipe, its numbers, how to use it."""
    cfg = config.get("config") or {}
    data, model, train = (cfg.get(k) or {} for k in ("data", "model", "train"))
    g = model.get("generator") or {}
    kind, name = config["kind"], config.get("name") or "model"
    root = data.get("root", "?")
    if config["inputs"] == ["image"]:
        directions = " and ".join(f"{d} ({n})" for d, n in config["generators"].items())
        what = (f"Translates images like those of `{root}/{data.get('train_a', 'trainA')}` into the look of "
                f"`{root}/{data.get('train_b', 'trainB')}`; generators: {directions}.")
        use = "python test.py --checkpoint hf:USER/REPO --input photos/ --output out/ --direction AtoB"
    else:
        what = (f"Puts the style of any painting on a photo ({' + '.join(config['inputs'])} images), trained on "
                f"`{root}`.")
        use = "python stylize.py --model hf:USER/REPO --content photo.jpg --style painting.jpg --output out.png"
    recipe = [f"kind `{kind}`", f"generator ngf {g.get('ngf', '?')}, {g.get('n_blocks', '?')} blocks"
              + (f", skip {g['skip']}" if g.get("skip") not in (None, "none") else "")
              + (f", upsample {g['upsample']}" if g.get("upsample") else ""),
              f"crops {data.get('crop_size', '?')} px, batch {data.get('batch_size', '?')}",
              f"{config.get('step', '?')} steps"]
    own = model.get(kind)  # the kind's own section (model.<kind>), when it has one
    if isinstance(own, dict) and own:
        recipe.append(f"`model.{kind}`: " + ", ".join(f"{k} {v}" for k, v in own.items() if v is not None))
    if train.get("lr") is not None:
        recipe.append(f"learning rate {train['lr']}")
    recipe.append("the loss weights and every other setting: `config.json` (`config`)")
    ev = config.get("evaluation") or {}
    numbers = [f"| {k} | {v:.4g} |" for k, v in ev.items() if isinstance(v, (int, float)) and k != "step"]
    best = ev.get("best")
    lines = [
        "---", "library_name: gan", "pipeline_tag: image-to-image",
        f"tags: [image-to-image, {kind}, style-transfer]", "---", "",
        f"# {name}", "", what, "",
        "## Recipe", "", *[f"- {r}" for r in recipe], "",
        "Weights: " + ", ".join(f"{n}, {'the moving average (EMA) of its weights' if w == 'ema' else 'as trained'}"
                                for n, w in config["nets"].items()) + ".", "",
        "## Evaluation", "",
    ]
    if numbers:
        lines += [f"At step {ev.get('step', '?')}:", "", "| metric | value |", "|---|---|", *numbers, ""]
    else:
        lines += ["The run was not evaluated (no FID/KID numbers were logged).", ""]
    if isinstance(best, dict):
        lines += [f"Best {best.get('metric')}: {best.get('value')} at step {best.get('step')}.", ""]
    if sample_from:
        lines += ["## Samples", "", "![training samples](sample.png)", "",
                  f"The run's last training sample sheet ({sample_from}).", ""]
    lines += ["## Use", "", "With this project (`pip install .` in its clone):", "", "```bash", use, "```", "",
              f"Saved by gan {config.get('gan_version', '?')}: `model.safetensors` (no pickle) and `config.json`.", ""]
    return "\n".join(lines)


def push(source: str | Path, repo_id: str, private: bool = False, token: str | None = None,
         message: str | None = None, api=None) -> str:
    """Save `source` into a temporary folder and upload it to the Hub repository `repo_id` (created when it does
    not exist). `api`: a huggingface_hub.HfApi (or anything with its create_repo and upload_folder)."""
    from gan.inference.sources import parse_repo

    repo, revision = parse_repo(repo_id)
    if revision:
        raise GanError(f"push takes USER/REPO without a revision, got {repo_id}")
    if api is None:
        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise GanError("pushing needs the huggingface_hub package: pip install huggingface_hub") from None
        api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="gan-push-") as tmp:
        folder = save(source, Path(tmp) / "model")
        kind = json.loads((folder / FOLDER_CONFIG).read_text())["kind"]
        try:
            api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
            info = api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="model",
                                     commit_message=message or f"gan: a {kind} model")
        except Exception as e:
            if isinstance(e, GanError):
                raise
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise GanError(f"cannot push to {repo}: {first} (log in with `hf auth login` or pass --token)") from None
    return str(getattr(info, "commit_url", None) or info or f"https://huggingface.co/{repo}")
