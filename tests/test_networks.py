from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from gan import GanError
from gan.config import InitConfig, load_config
from gan.nn.networks import (PatchDiscriminator, ResnetGenerator, build_discriminator, build_generator,
                             count_parameters, init_weights, load_reference_generator)


@pytest.mark.parametrize("n_blocks, expected", [(9, 11_378_179), (6, 7_837_699)])
def test_generator_parameter_counts(n_blocks, expected):
    assert count_parameters(ResnetGenerator(3, 3, 64, n_blocks)) == expected


def test_discriminator_parameter_count_and_receptive_field():
    d = PatchDiscriminator(3, 64, 3)
    assert count_parameters(d) == 2_764_737
    # 70x70 receptive field: one output logit depends on exactly a 70x70 input window (no norm, so pixels
    # outside it cannot leak in through normalisation statistics).
    d = PatchDiscriminator(3, 8, 3, norm="none")
    x = torch.zeros(1, 3, 160, 160, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (x.grad.abs().sum((0, 1, 3)) > 0).nonzero()
    assert int(rows.max() - rows.min() + 1) == 70


@pytest.mark.parametrize("upsample", ["transpose", "resize_conv"])
@pytest.mark.parametrize("size", [(37, 53), (32, 32), (5, 3), (1, 1)])
def test_generator_keeps_any_size(upsample, size):
    g = ResnetGenerator(3, 3, ngf=4, n_blocks=1, upsample=upsample).eval()
    y = g(torch.rand(2, 3, *size) * 2 - 1)
    assert y.shape == (2, 3, *size)
    assert y.abs().max() <= 1


def test_generator_structure_matches_paper():
    g = ResnetGenerator(3, 3, ngf=8, n_blocks=2, dropout=True)
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs[0].kernel_size == (7, 7) and convs[-1].kernel_size == (7, 7)
    assert [c.stride for c in convs[1:3]] == [(2, 2), (2, 2)]
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in g.modules()) == 2
    norms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(not n.affine and not n.track_running_stats for n in norms)
    assert sum(isinstance(m, nn.Dropout) for m in g.modules()) == 2
    assert isinstance(g.model[-1], nn.Tanh) and not g.has_skip  # the reference layout: tanh last, no skip path
    assert sum(isinstance(m, nn.Upsample) for m in ResnetGenerator(3, 3, 8, 1, upsample="resize_conv").modules()) == 2


def test_channels_are_configurable():
    g = ResnetGenerator(1, 3, ngf=4, n_blocks=1)
    assert g(torch.zeros(1, 1, 16, 16)).shape == (1, 3, 16, 16)


def test_spectral_norm_discriminator():
    cfg = load_config(None, ["model.discriminator.spectral_norm=true", "model.discriminator.ndf=8"])
    d = build_discriminator(cfg.model, 3)
    assert any("parametrizations" in k for k in d.state_dict())
    assert d(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 6, 6)


@pytest.mark.parametrize("kind", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_types(kind):
    """Each init's defining statistic on a residual-block conv (32 -> 32, 3x3: 9,216 weights), so a no-op or
    wrong init fails: PyTorch's default (kaiming-uniform, a=sqrt(5)) has std 1/sqrt(3 * fan_in) = 0.034."""
    torch.manual_seed(0)
    gain = 0.5 if kind in ("xavier", "orthogonal") else 0.02
    net = init_weights(ResnetGenerator(3, 3, 8, 1, norm="batch"), InitConfig(kind, gain))
    conv = net.model[10].conv_block[1]  # 32 -> 32, 3x3, no bias with batch norm
    w = conv.weight.detach().reshape(32, -1)  # (fan_out rows of fan_in = 288)
    fan_in, fan_out = 32 * 9, 32 * 9
    expected_std = {"normal": gain, "xavier": gain * (2 / (fan_in + fan_out)) ** 0.5,
                    "kaiming": (2 / fan_in) ** 0.5}
    if kind == "orthogonal":  # rows orthogonal with norm gain: W W^T = gain^2 I
        assert torch.allclose(w @ w.T, gain**2 * torch.eye(32), atol=1e-5)
    else:
        assert w.std().item() == pytest.approx(expected_std[kind], rel=0.05)
        assert abs(w.mean().item()) < 0.1 * expected_std[kind]
    stem = net.model[1]
    assert stem.bias is None or torch.all(stem.bias == 0)
    bn = net.model[2]  # batch norm scale ~ N(1, gain), shift 0
    assert torch.all(bn.bias == 0) and bn.weight.std().item() > 0 and abs(bn.weight.mean().item() - 1) < 4 * gain
    out_conv = net.model[-2]
    assert torch.all(out_conv.bias == 0)


def test_build_from_config():
    cfg = load_config(None, ["model.generator.ngf=8", "model.generator.n_blocks=2"])
    assert count_parameters(build_generator(cfg.model)) == count_parameters(ResnetGenerator(3, 3, 8, 2))


# ---------------------------------------------------------------------------------- reference layout


class RefResnetBlock(nn.Module):
    """The reference's block layout, written out independently of ours."""

    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


def reference_generator(ngf, n_blocks):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=True), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for i in range(2):
        m = 2**i
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1, bias=True), nn.InstanceNorm2d(ngf * m * 2), nn.ReLU(True)]
    layers += [RefResnetBlock(ngf * 4) for _ in range(n_blocks)]
    for i in range(2):
        m = 2 ** (2 - i)
        layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, output_padding=1, bias=True),
                   nn.InstanceNorm2d(ngf * m // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    net = nn.Module()
    net.model = nn.Sequential(*layers)
    return net


@pytest.mark.parametrize("n_blocks, ups, last", [(9, (19, 22), 26), (6, (16, 19), 23)])
def test_reference_state_dict_loads_and_matches(n_blocks, ups, last):
    torch.manual_seed(0)
    ref = reference_generator(8, n_blocks)
    for p in ref.parameters():
        nn.init.normal_(p, 0, 0.1)
    sd = OrderedDict(ref.state_dict())
    assert f"model.{ups[0]}.weight" in sd and f"model.{ups[1]}.weight" in sd and f"model.{last}.weight" in sd
    assert "model.10.conv_block.1.weight" in sd and "model.10.conv_block.5.weight" in sd
    # Files from old PyTorch versions carry InstanceNorm running stats: they must be dropped, not rejected.
    sd["model.2.running_mean"] = torch.zeros(8)
    sd["model.2.running_var"] = torch.ones(8)
    sd["model.2.num_batches_tracked"] = torch.tensor(0)
    net, gcfg = load_reference_generator(sd)
    assert (gcfg.ngf, gcfg.n_blocks) == (8, n_blocks)
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net.eval()(x), ref.model(x))  # bit for bit: the zoo translates exactly as before


def test_reference_loader_rejects_other_files():
    with pytest.raises(GanError, match="not a reference CycleGAN ResnetGenerator"):
        load_reference_generator({"weight": torch.zeros(3)})


def test_the_recommended_generator_takes_a_flat_crop_with_a_finite_gradient():
    """A perfectly flat crop (blank sky or paper) must not blow the gradient up. With reflect padding every feature
    map stays flat, every instance norm sees zero variance and scales the gradient by 1/sqrt(eps): it overflowed
    after the residual blocks, which is why the recommended recipe keeps zero padding."""
    def grad_size(padding):
        cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "photo2painting.yaml",
                          ["model.generator.ngf=8", "model.generator.n_blocks=4", f"model.generator.padding={padding}"])
        torch.manual_seed(0)
        g = build_generator(cfg.model)
        with torch.no_grad():  # a generator some steps into training: its residual branch no longer zero
            for p in g.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        flat = torch.full((1, 3, 64, 64), 0.2)
        g(flat).square().mean().backward()
        return max(float(p.grad.abs().max()) for p in g.parameters() if p.grad is not None)

    assert grad_size("zeros") < 1e4  # the recipe as it is
    assert not grad_size("reflect") < 1e4  # what it avoids (inf, or far above)
