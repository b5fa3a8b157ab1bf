"""A trained model as a folder others can load without pickle, and on the Hugging Face Hub.

    save("runs/monet", "monet_model/")           # model.safetensors + config.json + README.md (+ sample.png)
    push("runs/monet", "user/monet-cyclegan")    # the same folder, uploaded with huggingface_hub

The folder holds what inference needs and nothing else: the weights of the model's inference networks (each
generator of a one-image kind, the EMA weights when the run kept them, or the networks a content + style kind
builds its stylizer from) in model.safetensors, named `NET.PARAM`; config.json with the kind, the run's full
config (inference reads its `model` section), the step, the weights used and the evaluation numbers the run
has; a model card (README.md, the Hub's format: metadata header, what it translates, the recipe, numbers, how
to use it) and the run's last sample sheet. `--checkpoint FOLDER` and `--checkpoint hf:user/repo` load it
(gan.checkpoint.source).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from gan import GanError, __version__
from gan.checkpoint import folder as saved
from gan.checkpoint.runs import read_metrics
from gan.checkpoint.schema import run_dir_of
from gan.checkpoint.source import open_model


def _evaluation(run_dir: Path, best: dict | None) -> dict:
    """The run's last evaluation (metrics.jsonl lines the trainer's evaluation wrote) and its best checkpoint."""
    found: dict = {}
    for rec in reversed(read_metrics(run_dir)):
        if "loss_g" not in rec and any(k.endswith(("_ab", "_ba")) for k in rec):
            found = {"step": rec.get("step"), **{k: v for k, v in rec.items() if k != "step"}}
            break
    if best:
        found["best"] = best
    return found


def save(source: str | Path, folder: str | Path, weights: str = "ema", overwrite: bool = False) -> Path:
    """Write `source` (a run directory or checkpoint of this project) as a saved folder; returns the folder."""
    model = open_model(source, weights)
    if model.source != "checkpoint":
        raise GanError(f"{model.path} is not a checkpoint of this project (save takes a run directory or checkpoint)")
    kind = model.kind_class()
    nets, used = model.inference_nets()
    run_dir = run_dir_of(model.path)
    cfg = model.record["config"]
    config = {
        "gan_version": __version__, "kind": model.kind, "inputs": list(kind.inputs),
        "generators": dict(kind.generators), "nets": used, "name": cfg.get("name"), "step": model.step,
        "evaluation": _evaluation(run_dir, model.record["best"]), "config": cfg,
    }
    samples = sorted((run_dir / "samples").glob("*.png"))
    extra = {"README.md": model_card({"format": saved.FORMAT, **config},
                                      samples[-1].name if samples else None).encode()}
    if samples:
        extra["sample.png"] = samples[-1]
    return saved.write(Path(folder), nets, config, extra, overwrite)


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
    from gan.hub.sources import parse_repo

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
        kind = json.loads((folder / saved.CONFIG).read_text())["kind"]
        try:
            api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
            info = api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="model",
                                     commit_message=message or f"gan: a {kind} model")
        except Exception as e:
            if isinstance(e, GanError):
                raise
            from gan.network import network_problem

            raise GanError(f"cannot push to {repo}: "
                           f"{network_problem(e, 'log in with `hf auth login`, set HF_TOKEN or pass --token')}") from None
    return str(getattr(info, "commit_url", None) or info or f"https://huggingface.co/{repo}")
