"""The web app (Gradio): translate photos and short videos with any trained model (with a strength slider),
compare a run's checkpoints by eye, and stylize by optimisation or with an AdaIN model, live. Imported only by
app.py (Gradio is not needed elsewhere).

    python app.py [--runs runs/] [--checkpoint CKPT ...] [--host 127.0.0.1] [--port 7860] [--auth USER:PASS]

Everything calls what test.py and stylize.py call: the inference engine (gan.inference.engine, with the
runtime policy gan.runtime resolved once at start-up), gan.stylize.optimise.stylize,
gan.inference.feedforward.stylize_feedforward and the model loaders; nothing is re-implemented here. `Backend`
holds the models found at start-up (a few loaded at a time) and does the work; `Handlers` turn the page's
values into calls of it.

Safety: the models a visitor can pick are the ones found at start-up (under --runs, and each --checkpoint); a
visitor names them by label and the label is looked up here, so no path typed in the page is ever opened.
Uploads are limited in bytes (Gradio refuses bigger files), in pixels (checked here after decoding) and, for
videos, in duration and frames (read from the file's headers before any frame is translated); an
unreadable upload or a model that fails to load gives a message in the page. Long jobs go through Gradio's
queue, one at a time (the machine's CPU or GPU is one resource).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from gan import GanError, ImageDecodeError
from gan.data.io import resize_short_side, side_by_side, unit_to_uint8
from gan.inference.engine import MAX_STRENGTH
from gan.models.base import CONTENT_STYLE, ONE_IMAGE
from gan.runtime import Runtime

log = logging.getLogger("gan")


# ------------------------------------------------------------------------------------------ catalog


@dataclass(frozen=True)
class Model:
    label: str  # what the page shows and sends back
    path: Path
    inputs: tuple[str, ...]  # its kind's inference protocol: ONE_IMAGE (CycleGAN, CUT, style, the reference zoo,
    # exports) or CONTENT_STYLE (AdaIN) (gan.models.base)
    run: str | None = None  # the run it belongs to (for comparing checkpoints)
    step: int | None = None


@dataclass
class Catalog:
    """The models the app may open, found once at start-up."""

    models: dict[str, Model] = field(default_factory=dict)

    def add(self, model: Model) -> None:
        label, n = model.label, 2
        while label in self.models:  # two files with one name: both stay reachable
            label = f"{model.label} ({n})"
            n += 1
        self.models[label] = Model(label, model.path, model.inputs, model.run, model.step)

    def taking(self, inputs: tuple[str, ...]) -> list[str]:
        """The labels of the models of one inference protocol."""
        return [k for k, m in self.models.items() if m.inputs == inputs]

    def runs(self) -> list[str]:
        return sorted({m.run for m in self.models.values() if m.run and m.inputs == ONE_IMAGE})

    def checkpoints_of(self, run: str) -> list[str]:
        found = [m for m in self.models.values() if m.run == run]
        return [m.label for m in sorted(found, key=lambda m: (m.step is None, m.step or 0, m.label))]

    def get(self, label: str | None, inputs: tuple[str, ...] | None = None) -> Model:
        model = self.models.get(label or "")
        if model is None or (inputs is not None and model.inputs != inputs):
            raise GanError("choose a model from the list" if not label else f"unknown model {label!r}")
        return model


def _inputs(kind: str | None) -> tuple[str, ...]:
    """The inference protocol of a model kind (a file of no known kind, e.g. an export: one image)."""
    from gan.models import KINDS

    cls = KINDS.get(kind or "cyclegan")
    return cls.inputs if cls is not None else ONE_IMAGE


def _run_inputs(run_dir: Path) -> tuple[str, ...]:
    """A run's inference protocol from its config.yaml's model kind (cheap: no checkpoint is read)."""
    import yaml

    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        kind = (cfg.get("model") or {}).get("kind", "cyclegan")
    except (OSError, yaml.YAMLError, AttributeError):
        kind = "cyclegan"
    return _inputs(kind)


def _step_of(path: Path) -> int | None:
    """The step of a checkpoint file, read from its name (step_0001000.pt) or its header (latest/best: the
    file's tensors are mapped, not read)."""
    if path.stem.startswith("step_") and path.stem[5:].isdigit():
        return int(path.stem[5:])
    try:
        from gan.checkpoint.source import header

        return int(header(path)["step"])
    except Exception:
        return None


def build_catalog(runs_dir: str | Path | None, checkpoints: list[str | Path]) -> Catalog:
    """Every run under runs_dir (latest, best and each step checkpoint) and every file given; a file that is not
    a model this project reads is reported and left out."""
    from gan.checkpoint.folder import is_saved_folder
    from gan.checkpoint.schema import resolve
    from gan.checkpoint.source import header, locate

    cat = Catalog()
    if runs_dir is not None and Path(runs_dir).is_dir():
        for run_dir in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()):
            files = sorted(run_dir.glob("checkpoints/step_*.pt"))
            extra = [run_dir / n for n in ("best.pt", "latest.pt") if (run_dir / n).is_file()]
            if not files and not extra:
                continue
            inputs = _run_inputs(run_dir)
            for f in files + extra:
                step = _step_of(f)
                what = f.stem if f.stem in ("best", "latest") else f"step {step}"
                if f.stem in ("best", "latest") and step is not None:
                    what += f" (step {step})"
                cat.add(Model(f"{run_dir.name} / {what}", f, inputs, run_dir.name, step))
    for given in checkpoints:
        try:
            path = locate(given)  # zoo:NAME and hf:USER/REPO are fetched (once) here
            path = path if is_saved_folder(path) else resolve(path)
            found = header(path)
            kind = found["kind"] if found else None
        except GanError as e:
            log.warning("--checkpoint %s left out: %s", given, e)
            continue
        named = str(given).startswith(("zoo:", "hf:")) or Path(given).is_file() or is_saved_folder(path)
        label = str(given) if str(given).startswith(("zoo:", "hf:")) else Path(given).name
        cat.add(Model(label if named else f"{label} / latest", path, _inputs(kind), None, None))
    return cat


# ------------------------------------------------------------------------------------------- engine


@dataclass
class Settings:
    runtime: Runtime  # the device and precision every tab runs under (resolved once by app.py)
    max_megapixels: float = 40.0  # a decoded upload above this is refused
    max_video_seconds: float = 60.0  # a video upload longer than this is refused
    max_video_frames: int = 1800  # ... or with more frames than this
    vgg_weights: str = "imagenet"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gan-app-")))


class Backend:
    """The app's models and its work: loads models on demand (a few kept), translates and stylizes through the
    inference engine; no Gradio in here (tested directly)."""

    def __init__(self, catalog: Catalog, settings: Settings, keep: int = 4):
        self.catalog, self.settings, self.keep = catalog, settings, keep
        self.runtime = settings.runtime  # once, for every tab
        self._nets: dict[tuple, torch.nn.Module] = {}  # models and VGG extractors, the `keep` most recent
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ models

    def _cached(self, key: tuple, load):
        with self._lock:
            if key not in self._nets:
                if len(self._nets) >= self.keep:
                    self._nets.pop(next(iter(self._nets)))
                self._nets[key] = load()
            return self._nets[key]

    def generator(self, label: str, direction: str):
        from gan.inference.load import load_generator

        model = self.catalog.get(label, ONE_IMAGE)
        return self._cached((model.path, direction), lambda: load_generator(model.path, direction,
                                                                              self.runtime.device)[0])

    def style_network(self, label: str):
        from gan.inference.load import load_style_network

        model = self.catalog.get(label, CONTENT_STYLE)
        return self._cached((model.path, "style"), lambda: load_style_network(model.path, self.runtime.device)[0])

    def vgg(self, opts):
        """The VGG19 extractor for `opts`' layers (built up to the deepest one they use)."""
        from gan.stylize.optimise import load_vgg

        key = ("vgg", opts.content_layers + opts.style_layers)
        return self._cached(key, lambda: load_vgg(opts, self.settings.vgg_weights, self.runtime.device))

    # ------------------------------------------------------------------ images

    def read(self, path: str | Path) -> np.ndarray:
        """An uploaded file as uint8 RGB, or a GanError naming it and why not."""
        from gan.data.io import load_image

        name = Path(path).name
        try:
            img = load_image(path)
        except ImageDecodeError as e:
            # The reason may quote the file (Pillow does): a visitor sees the name they uploaded, never the
            # server's temporary folder.
            reason = _upload_name_only(str(e).split(": ", 2)[-1], path)
            raise GanError(f"{name}: not a readable image ({reason})") from None
        mp = img.shape[0] * img.shape[1] / 1e6
        if mp > self.settings.max_megapixels:
            raise GanError(f"{name}: {img.shape[1]}x{img.shape[0]} is {mp:.1f} megapixels, above this server's limit "
                           f"of {self.settings.max_megapixels:g}")
        return img

    def translate(self, label: str, direction: str, image: np.ndarray, resize: int | None = None,
                  progress=None, strength: float = 1.0) -> np.ndarray:
        """uint8 HWC -> uint8 HWC, at full resolution (bands above 4 MP) or with the short side resized, at
        `strength` (0 = the photo, 1 = the model's output)."""
        from gan.data.io import to_chw
        from gan.inference.engine import Engine

        net = self.generator(label, direction)
        image = resize_short_side(image, resize)
        return Engine(net, self.runtime, strength=strength).image(to_chw(image), progress, as_uint8=True)

    def translate_video(self, label: str, direction: str, path: str | Path, strength: float = 1.0,
                        smooth: float | None = None) -> tuple[Path, int]:
        """An uploaded video -> (the translated mp4 in a new folder, frames), the way test.py translates videos
        (the same engine, statistics and smoothing), after checking the server's duration, frame and pixel
        limits. Messages name the upload, never the server's folders."""
        from gan.inference.engine import Engine
        from gan.inference.video import SMOOTH_DEFAULT, VIDEO_EXTENSIONS, VideoOptions, clip_info
        from gan.inference.video import translate_video as video

        path, name = Path(path), Path(path).name
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise GanError(f"{name}: not a video this tab takes ({', '.join(e[1:] for e in VIDEO_EXTENSIONS)})")
        s = self.settings
        try:
            frames, seconds, w, h = clip_info(path)
            if seconds > s.max_video_seconds or frames > s.max_video_frames:
                raise GanError(f"{name}: {seconds:.1f} s, {frames} frames; this server takes videos up to "
                               f"{s.max_video_seconds:g} s and {s.max_video_frames} frames")
            if w * h / 1e6 > s.max_megapixels:
                raise GanError(f"{name}: {w}x{h} frames are above this server's limit of {s.max_megapixels:g} "
                               "megapixels")
            net = self.generator(label, direction)
            out = self.new_folder("video") / f"{path.stem}_translated.mp4"
            opts = VideoOptions(smooth=SMOOTH_DEFAULT if smooth is None else smooth)
            n = video(Engine(net, self.runtime, strength=strength), path, out, opts, progress=False)
        except GanError as e:
            raise GanError(_upload_name_only(str(e), path)) from None
        return out, n

    def new_folder(self, what: str) -> Path:
        self.settings.workdir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{what}-", dir=self.settings.workdir))
        return folder


def _upload_name_only(text: str, path: str | Path) -> str:
    """A message about an upload with the server's folder taken out: the visitor sees only the file's name."""
    for where in {str(path), str(Path(path)), str(Path(path).resolve())}:
        text = text.replace(where, Path(path).name)
    return text


def save_png(img: np.ndarray, path: Path) -> Path:
    from gan.data.io import write_image

    write_image(img, path)
    return path


# --------------------------------------------------------------------------------------------- page


class Handlers:
    """What the page's buttons call: each takes the page's values and returns (or, for stylize, yields) what
    the page shows. User errors become messages in the page."""

    def __init__(self, backend: Backend, stylize_defaults: dict | None = None):
        self.backend, self.catalog = backend, backend.catalog
        self.defaults = {"size": 384, "iterations": 100, "min_size": 128, "save_every": 10, **(stylize_defaults or {})}
        self.stop_flags: dict[str, threading.Event] = {}  # per browser session

    # ----------------------------------------------------------------- translate
    def translate(self, files, label, direction, size_mode, short_side, strength=1.0, progress=gr.Progress()):
        if not files:
            return [], None, "Upload one or more images first."
        if not label:
            return [], None, "Choose a model first."
        out_dir = self.backend.new_folder("translate")
        sheet, downloads, problems = [], [], []
        resize = int(short_side) if size_mode == "resize" else None
        for i, f in enumerate(files):
            name = Path(f).name
            progress(i / len(files), desc=f"{name} ({i + 1}/{len(files)})")
            try:
                img = self.backend.read(f)
                report = (lambda frac, what, i=i: progress((i + frac) / len(files), desc=f"{name}: {what}"))
                out = self.backend.translate(label, direction, img, resize, report, float(strength))
            except GanError as e:
                problems.append(str(e))
                continue
            shown = resize_short_side(img, resize)
            sheet.append((side_by_side([[shown, out]], 384), f"{name}: input | output ({out.shape[1]}x{out.shape[0]})"))
            downloads.append(str(save_png(out, out_dir / f"{Path(name).stem}_translated.png")))
        if len(downloads) > 1:
            zip_path = out_dir / "translated.zip"
            with zipfile.ZipFile(zip_path, "w") as z:
                for d in downloads:
                    z.write(d, Path(d).name)
            downloads.append(str(zip_path))
        at = f", strength {float(strength):g}" if float(strength) != 1 else ""
        done = f"Translated {len(sheet)} of {len(files)} image(s) with {label} ({direction}{at})."
        status = _message([done] + (["Could not translate:"] + problems if problems else []))
        return sheet, downloads or None, status

    # ----------------------------------------------------------------- video
    def video(self, file, label, direction, strength, smooth, progress=gr.Progress()):
        if not file:
            return None, None, "Upload a video first."
        if not label:
            return None, None, "Choose a model first."
        name = Path(file).name
        progress(0, desc=f"translating {name}")
        start = time.perf_counter()
        try:
            out, frames = self.backend.translate_video(label, direction, file, float(strength), float(smooth))
        except GanError as e:
            return None, None, str(e)
        return (str(out), str(out), f"Translated {name}: {frames} frames with {label} ({direction}, strength "
                                    f"{float(strength):g}) in {time.perf_counter() - start:.1f} s.")

    # ----------------------------------------------------------------- compare
    def checkpoints_for(self, run):
        labels = self.catalog.checkpoints_of(run) if run else []
        default = [x for x in labels if "/ best" in x or "/ latest" in x]
        default = default if len(default) == 2 else labels[-2:]
        return gr.update(choices=labels, value=default)

    def compare(self, file, run, chosen, direction, progress=gr.Progress()):
        if not file:
            return [], "Upload a photo first."
        if not chosen:
            return [], "Choose at least one checkpoint of the run."
        try:
            img = self.backend.read(file)
        except GanError as e:
            return [], str(e)
        strip = [(img, "input")]
        problems = []
        for i, label in enumerate(chosen):
            progress(i / len(chosen), desc=label)
            try:
                out = self.backend.translate(label, direction, img)
            except GanError as e:
                problems.append(f"**{label}**: {e}")
                continue
            strip.append((out, label.split(" / ", 1)[-1]))
        status = f"{len(strip) - 1} checkpoint(s) of {run}, {direction}."
        return strip, _message([status] + (["Could not load:"] + problems if problems else []))

    # ----------------------------------------------------------------- stylize
    def stylize(self, content, styles, weights_text, method, alpha, size, iterations, style_weight, style_loss,
                preserve, request: gr.Request, progress=gr.Progress()):
        from gan.inference.feedforward import stylize_feedforward
        from gan.stylize.optimise import stylize as optimise
        from gan.stylize.options import StylizeOptions, normalised_weights, scale_sizes

        if content is None or not styles:
            yield None, "Upload a photo and at least one style image first."
            return
        try:
            photo = self.backend.read(content)
            paintings = [self.backend.read(s) for s in styles]
            weights = tuple(float(x) for x in (weights_text or "").replace(",", " ").split()) or ()
            opts = StylizeOptions(size=int(size), min_size=min(int(self.defaults["min_size"]), int(size)),
                                  iterations=int(iterations), style_weight=float(style_weight),
                                  style_weights=weights, style_loss=style_loss, preserve_color=preserve,
                                  save_every=max(1, int(iterations) // max(1, int(self.defaults["save_every"]))))
            opts.check(len(paintings))
            normalised_weights(opts.style_weights, len(paintings))
        except ValueError:
            yield None, "Style weights: numbers separated by spaces, one per style image."
            return
        except GanError as e:
            yield None, str(e)
            return
        if method != "optimisation":
            try:
                net = self.backend.style_network(method)
                out = stylize_feedforward(photo, paintings, net, opts, float(alpha), self.backend.runtime)
            except GanError as e:
                yield None, str(e)
                return
            yield unit_to_uint8(out), f"Stylized with {method} (alpha {float(alpha):g}) in one pass."
            return
        try:
            vgg = self.backend.vgg(opts)
        except GanError as e:
            yield None, str(e)
            return
        note = f" ({self.backend.runtime.for_pixels().note})" if self.backend.runtime.for_pixels().note else ""
        stop = self.stop_flags.setdefault(request.session_hash or "local", threading.Event())
        stop.clear()
        updates: list = []
        history: list = []
        failure: list = []
        scales = scale_sizes(opts.size, opts.min_size)
        total = len(scales) * opts.iterations

        def callback(img, scale, it):
            updates.append(("step", img, scale, it))

        def work():
            try:
                updates.append(("final", optimise(photo, paintings, opts, vgg, self.backend.runtime, callback,
                                                  stop.is_set, progress=False, history=history)))
            except Exception as e:  # reported in the page below
                failure.append(e)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        shown = 0
        try:
            while worker.is_alive() or shown < len(updates):
                time.sleep(0.05)
                progress(min(1.0, len(history) / total), desc=f"iteration {len(history)}/{total}")
                while shown < len(updates):
                    item = updates[shown]
                    shown += 1
                    if item[0] == "final":
                        state = "stopped" if stop.is_set() else "done"
                        yield (unit_to_uint8(item[1]), f"Final image ({state} after {len(history)} iterations)"
                                                        f"{note}.")
                    else:
                        _, img, scale, it = item
                        yield (unit_to_uint8(img), f"Scale {scale + 1}/{len(scales)} ({scales[scale]} px), "
                                                    f"iteration {it}/{opts.iterations}")
            if failure:
                e = failure[0]
                yield None, str(e) if isinstance(e, GanError) else f"Stylization failed: {type(e).__name__}: {e}"
        finally:
            stop.set()  # a cancelled or closed page stops the optimisation too
            worker.join(timeout=30)

    def stop_stylize(self, request: gr.Request):
        self.stop_flags.setdefault(request.session_hash or "local", threading.Event()).set()
        return "Stopping after the current iteration..."


def _message(lines: list[str]) -> str:
    return "\n\n".join(lines)


def build(backend: Backend, stylize_defaults: dict | None = None):
    """The Gradio Blocks of the app: the layout, wired to Handlers."""
    h = Handlers(backend, stylize_defaults)
    cat, sd = backend.catalog, h.defaults
    gens, adains, runs = cat.taking(ONE_IMAGE), cat.taking(CONTENT_STYLE), cat.runs()
    with gr.Blocks(title="gan") as page:
        gr.Markdown("# gan: photos to paintings")
        with gr.Tab("Translate"):
            with gr.Row():
                with gr.Column():
                    t_files = gr.File(label="Photos", file_count="multiple", file_types=["image"], elem_id="t_files")
                    latest = [g for g in gens if g.endswith("/ latest") or "/ latest (" in g]
                    t_model = gr.Dropdown(gens, value=(latest or gens or [None])[0], label="Model", elem_id="t_model")
                    t_dir = gr.Radio(["AtoB", "BtoA"], value="AtoB", label="Direction (AtoB: photo to painting)")
                    with gr.Row():
                        t_size = gr.Radio([("full resolution", "full"), ("resize", "resize")], value="full",
                                          label="Size", info="full resolution: big images go in bands automatically")
                        t_short = gr.Number(512, label="short side (resize)", precision=0, minimum=16, maximum=8192)
                    t_strength = gr.Slider(0, MAX_STRENGTH, 1.0, step=0.05, label="Strength", elem_id="t_strength",
                                           info="0: the photo, 1: the model's output, above 1: exaggerated")
                    t_go = gr.Button("Translate", variant="primary", elem_id="t_go")
                with gr.Column():
                    t_status = gr.Markdown(elem_id="t_status")
                    t_sheet = gr.Gallery(label="input | output", columns=1, elem_id="t_sheet", height="auto",
                                         object_fit="contain")
                    t_down = gr.File(label="Downloads (full resolution)", elem_id="t_down")
            t_go.click(h.translate, [t_files, t_model, t_dir, t_size, t_short, t_strength], [t_sheet, t_down, t_status])
        with gr.Tab("Video"):
            with gr.Row():
                with gr.Column():
                    v_file = gr.File(label=f"Video (up to {backend.settings.max_video_seconds:g} s, "
                                           f"{backend.settings.max_video_frames} frames)",
                                     file_types=[".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"], elem_id="v_file")
                    v_model = gr.Dropdown(gens, value=(latest or gens or [None])[0], label="Model", elem_id="v_model")
                    v_dir = gr.Radio(["AtoB", "BtoA"], value="AtoB", label="Direction (AtoB: photo to painting)")
                    v_strength = gr.Slider(0, MAX_STRENGTH, 1.0, step=0.05, label="Strength", elem_id="v_strength",
                                           info="0: the clip, 1: the model's output, above 1: exaggerated")
                    v_smooth = gr.Slider(0, 0.95, 0.7, step=0.05, label="Smoothing along the motion",
                                         info="steadies the strokes from frame to frame; 0 = off")
                    v_go = gr.Button("Translate video", variant="primary", elem_id="v_go")
                with gr.Column():
                    v_status = gr.Markdown(elem_id="v_status")
                    v_out = gr.Video(label="Translated clip", elem_id="v_out", interactive=False)
                    v_down = gr.File(label="Download", elem_id="v_down")
            v_go.click(h.video, [v_file, v_model, v_dir, v_strength, v_smooth], [v_out, v_down, v_status])
        with gr.Tab("Compare checkpoints"):
            with gr.Row():
                with gr.Column():
                    c_file = gr.File(label="Photo", file_types=["image"], elem_id="c_file")
                    c_run = gr.Dropdown(runs, value=runs[0] if runs else None, label="Run", elem_id="c_run")
                    first = h.checkpoints_for(runs[0]) if runs else {"choices": [], "value": []}
                    c_ckpts = gr.Dropdown(first["choices"], value=first["value"], multiselect=True,
                                          label="Checkpoints", elem_id="c_ckpts")
                    c_dir = gr.Radio(["AtoB", "BtoA"], value="AtoB", label="Direction")
                    c_go = gr.Button("Compare", variant="primary", elem_id="c_go")
                with gr.Column():
                    c_status = gr.Markdown(elem_id="c_status")
                    c_strip = gr.Gallery(label="input, then one result per checkpoint", columns=4, elem_id="c_strip",
                                         height="auto", object_fit="contain")
            c_run.change(h.checkpoints_for, c_run, c_ckpts)
            c_go.click(h.compare, [c_file, c_run, c_ckpts, c_dir], [c_strip, c_status])
        with gr.Tab("Stylize"):
            with gr.Row():
                with gr.Column():
                    s_content = gr.File(label="Photo", file_types=["image"], elem_id="s_content")
                    s_styles = gr.File(label="Style image(s)", file_count="multiple", file_types=["image"],
                                       elem_id="s_styles")
                    s_weights = gr.Textbox(label="Style weights", placeholder="e.g. 3 1 (one per style; empty: equal)")
                    s_method = gr.Dropdown(["optimisation"] + adains, value="optimisation", elem_id="s_method",
                                           label="Method", info="optimisation (VGG19, live) or an AdaIN model")
                    s_alpha = gr.Slider(0, 1, 1.0, step=0.05, label="Style strength (AdaIN alpha)")
                    with gr.Row():
                        s_size = gr.Slider(64, 1024, sd["size"], step=16, label="Size (long side, px)")
                        s_iters = gr.Slider(1, 500, sd["iterations"], step=1, label="Iterations per scale",
                                            elem_id="s_iters")
                    with gr.Row():
                        s_sw = gr.Number(1e6, label="Style weight (gram; wasserstein: ~10)")
                        s_loss = gr.Radio(["gram", "wasserstein"], value="gram", label="Style loss")
                        s_color = gr.Radio(["none", "luminance", "histogram"], value="none",
                                           label="Keep the photo's colours")
                    with gr.Row():
                        s_go = gr.Button("Stylize", variant="primary", elem_id="s_go")
                        s_stop = gr.Button("Stop", elem_id="s_stop")
                with gr.Column():
                    s_status = gr.Markdown(elem_id="s_status")
                    s_out = gr.Image(label="Result (updates while it optimises)", format="png", elem_id="s_out",
                                     buttons=["download"], interactive=False)
            s_go.click(h.stylize, [s_content, s_styles, s_weights, s_method, s_alpha, s_size, s_iters, s_sw,
                        s_loss, s_color], [s_out, s_status])
            s_stop.click(h.stop_stylize, None, s_status, queue=False)
        gr.Markdown(f"Models from start-up: {len(gens)} translation, {len(adains)} content + style (AdaIN), "
                    f"{len(runs)} run(s). Device: {backend.runtime.describe()}.")
    return page




def serve(catalog: Catalog, settings: Settings, host: str, port: int, auth: tuple[str, str] | None,
          max_upload_mb: float, stylize_defaults: dict | None = None, block: bool = True):
    """Build and launch; returns (page, url). The queue runs one job at a time."""
    backend = Backend(catalog, settings)
    page = build(backend, stylize_defaults)
    page.queue(default_concurrency_limit=1, max_size=32)
    limit = max(1, int(max_upload_mb * 2**20))  # bytes: gradio's "<n>mb" strings take whole numbers only
    _, url, _ = page.launch(server_name=host, server_port=port, auth=auth, max_file_size=limit,
                            prevent_thread_lock=True, quiet=True, footer_links=[],
                            allowed_paths=[str(settings.workdir)])
    log.info("serving on %s (%d model(s); Ctrl-C to stop)", url, len(catalog.models))
    if block:
        try:
            page.block_thread()
        except KeyboardInterrupt:
            page.close()
    return page, url


def cleanup(settings: Settings) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(settings.workdir)
