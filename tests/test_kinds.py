"""Adding a model kind is one module and one entry in gan.models.KINDS: a toy kind defined here, with its own
config section, value rule, network and band program, trains, resumes bitwise, translates (in bands too),
exports and shows in the web app's catalog, with no other code changed."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from gan import ConfigError
from gan.inference.load import load_generator
from gan.nn.bandprog import Program, ops_of
from gan.config import Config, ModelConfig, load_config, require
from gan.models import KINDS
from gan.models.base import TrainModel
from tests.helpers import write_images
from tests.test_train import straight_and_resumed, weights


@dataclass(frozen=True)
class ToyConfig:
    width: int = 6


class ToyNet(nn.Module):
    """x + conv(relu(conv(x))): a one-image generator of any size (nothing to pad: pad_rule (1, 1))."""

    pad_rule = (1, 1)

    def __init__(self, width: int):
        super().__init__()
        self.layers = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(3, width, 3), nn.ReLU(),
                                    nn.ReflectionPad2d(1), nn.Conv2d(width, 3, 3))

    def forward(self, x):
        return x + self.layers(x)

    def core(self, x):  # what the ONNX export holds
        return self.forward(x)

    def band_program(self, norms):
        from gan.nn.bandprog import Op

        return Program([Op("push")] + ops_of(self.layers, norms) + [Op("add")], *self.pad_rule, 3)


class Toy(TrainModel):
    optimizers = {"g": ("g_ab",)}
    generators = {"AtoB": "g_ab"}
    domains = ("A",)
    Section = ToyConfig

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        require(cfg.model.options.width >= 1, "model.toy.width", cfg.model.options.width, "an integer >= 1")

    def __init__(self, g_ab):
        super().__init__()
        self.g_ab = g_ab

    @classmethod
    def build(cls, cfg, device, rank=0, vgg_weights=None):
        return cls(ToyNet(cfg.model.options.width)).to(device)

    @property
    def nets(self):
        return {"g_ab": self.g_ab}

    @staticmethod
    def inference_net(model_cfg: ModelConfig, name: str) -> nn.Module:
        if name != "g_ab":
            raise KeyError(name)
        return ToyNet(model_cfg.options.width)

    def training_step(self, batch, ctx):
        real_a = batch["A"]
        with ctx.autocast():
            fake = self.g_ab(real_a)
            loss = (fake - real_a.flip(1)).abs().mean()  # learn to swap red and blue
        ctx.update("g", loss, {"l1": loss})
        return {"loss_g": loss.detach(), "l1": loss.detach()}, {"real_a": real_a, "fake_b": fake.detach()}

    def sample_rows(self, images):
        return [[images["real_a"][0], images["fake_b"][0]]], "real_a | fake_b"


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(KINDS, "toy", Toy)


def test_a_kind_defined_outside_the_package_does_everything(toy, tiny_overrides, tmp_path):
    with pytest.raises(ConfigError, match="model.toy.width: invalid value 0"):
        load_config(None, ["model.kind=toy", "model.toy.width=0"])
    over = tiny_overrides + ["model.kind=toy", "model.toy.width=5", "train.max_steps=4", "train.save_every=100"]
    straight, resumed = straight_and_resumed(over, tmp_path, stop_at=2)
    a, b = weights(straight), weights(resumed)
    assert a.keys() == {"g_ab.layers.1.weight", "g_ab.layers.1.bias", "g_ab.layers.4.weight", "g_ab.layers.4.bias"}
    assert all(torch.equal(a[k], b[k]) for k in a)

    run = tmp_path / "runs" / "resumed"
    net, info = load_generator(run, "AtoB")
    assert info.kind == "toy" and isinstance(net, ToyNet) and net.layers[1].out_channels == 5

    from gan.inference.translate import TranslateOptions, translate_folder

    write_images(tmp_path / "photos", 2, size=(30, 41))
    programs = []
    real_program = ToyNet.band_program
    ToyNet.band_program = lambda self, norms: programs.append(1) or real_program(self, norms)
    try:
        report = translate_folder(net, tmp_path / "photos", tmp_path / "out", TranslateOptions(workers=0, tile=16),
                                  progress=False)  # 30 x 41 > 16 x 16: in bands, through the toy's own program
    finally:
        ToyNet.band_program = real_program
    assert report.written == 2 and programs  # the band runner read the toy's program ...
    whole = translate_folder(net, tmp_path / "photos", tmp_path / "whole", TranslateOptions(workers=0),
                             progress=False)  # ... and its bands give the untiled result
    assert whole.written == 2
    from gan.data.io import load_image

    for banded in sorted((tmp_path / "out").glob("*.png")):
        a, b = load_image(banded).astype(int), load_image(tmp_path / "whole" / banded.name).astype(int)
        assert a.shape == (30, 41, 3) and abs(a - b).max() <= 1

    from gan.commands.export import main as export_main

    for fmt, suffix in (("onnx", "onnx"), ("torchscript", "pt")):
        assert export_main(["--checkpoint", str(run), "--format", fmt, "--output", str(tmp_path / f"toy.{suffix}")]) == 0
        exported, exported_info = load_generator(tmp_path / f"toy.{suffix}", "AtoB")
        assert exported_info.kind == "toy"
        x = torch.rand(1, 3, 20, 28) * 2 - 1
        with torch.no_grad():
            assert (exported(x) - net(x)).abs().max() < 1e-4

    from gan.app import build_catalog

    catalog = build_catalog(tmp_path / "runs", [])
    from gan.models.base import CONTENT_STYLE, ONE_IMAGE

    assert catalog.taking(ONE_IMAGE) and not catalog.taking(CONTENT_STYLE)
