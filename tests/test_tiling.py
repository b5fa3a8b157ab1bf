"""Big images in bands with whole-image norm statistics (gan.inference.tiling) and the statistics modes (gan.inference.normstats)."""

import math

import pytest
import torch

from gan.nn import losses
from gan.models.adain import ENCODER_LAYERS, AdaINNet, Decoder, adain, init_decoder
from gan.nn.networks import ResnetGenerator, pad_to_multiple
from gan.inference.normstats import NormStats, moments
from gan.inference.tiling import BandOptions, BandPlan, Cache, translate_tiles
from gan.inference.engine import Engine
from gan.inference.tiling import why_not
from gan.runtime import Precision
from tests.helpers import in_bands


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a - b) ** 2).mean().item()  # images in [-1, 1]: peak-to-peak 2
    return 10 * math.log10(4 / mse) if mse > 0 else float("inf")


def generator(seed=0, **kw) -> ResnetGenerator:
    torch.manual_seed(seed)
    net = ResnetGenerator(3, 3, ngf=8, n_blocks=2, **kw).eval()
    if kw.get("skip", "none") != "none":
        with torch.no_grad():  # off the identity start, so the residual branch matters
            net.model[-1].weight.normal_(0, 0.05)
    return net


def image(h=123, w=97, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=g), size=(h, w),
                                             mode="bicubic", align_corners=False)
    noise = torch.rand(1, 3, h, w, generator=g) * 0.2
    return ((smooth * 0.8 + noise).clamp(0, 1) * 255).round().to(torch.uint8)


@pytest.mark.parametrize("kw", [{}, {"upsample": "resize_conv", "skip": "color"}, {"skip": "identity"}, {"antialias": True},
                                {"norm": "batch"}, {"norm": "none"}, {"dropout": True}])
@pytest.mark.parametrize("tile", [16, 37, 400])
def test_bands_give_the_untiled_result(kw, tile):
    net = generator(**kw)
    x = image()  # odd sizes: padded to a multiple of 4 and cropped back like the net's own forward
    with torch.no_grad():
        full = net(x.float() / 127.5 - 1)
    out = in_bands(net, x, BandOptions(tile=tile, cache_mb=64, store_dtype=torch.float32))
    assert out.shape == full.shape
    assert (out - full).abs().max() < 1e-4
    # a float input is the same as its uint8 version
    out_f = in_bands(net, x.float() / 127.5 - 1, BandOptions(tile=tile, store_dtype=torch.float32))
    assert (out_f - out).abs().max() < 1e-5


def test_reduced_precision_stores_and_per_tile_statistics():
    net = generator(upsample="resize_conv", skip="color")
    x = image(160, 120)
    with torch.no_grad():
        full = net(x.float() / 127.5 - 1)
        # what tiles normalised on their own give: two halves through the plain net, stitched
        stitched = torch.cat([net(x[..., :80, :].float() / 127.5 - 1), net(x[..., 80:, :].float() / 127.5 - 1)], 2)
    fp16 = in_bands(net, x, BandOptions(tile=40, store_dtype=torch.float16))
    bf16 = in_bands(net, x, BandOptions(tile=40, store_dtype=torch.bfloat16))
    assert psnr(fp16, full) > 60 and psnr(bf16, full) > 45
    assert psnr(stitched, full) < 40


def test_adain_with_fixed_styles_runs_in_bands():
    torch.manual_seed(0)
    net = AdaINNet(losses.VGGFeatures(ENCODER_LAYERS, "none"), init_decoder(Decoder())).eval()
    styles = [torch.rand(1, 3, 40, 56) * 2 - 1, torch.rand(1, 3, 64, 48) * 2 - 1]
    st = net.stylizer(styles, [1.0, 3.0], 0.7)
    x = image(150, 101)
    with torch.no_grad():
        full = st(x.float() / 127.5 - 1)
        # the paper's formula written out: t = a * sum_i w_i AdaIN(f(c), f(s_i)) + (1 - a) f(c), w = (1/4, 3/4)
        c = pad_to_multiple(x.float() / 127.5 - 1, 8, minimum=16)
        fc = net.encoder(c)["relu4_1"]
        fs = [net.encoder(s)["relu4_1"] for s in styles]
        t = 0.7 * (0.25 * adain(fc, fs[0]) + 0.75 * adain(fc, fs[1])) + 0.3 * fc
        want = net.decoder(t)[..., :150, :101]
        assert (full - want).abs().max() < 1e-4 * want.abs().max()
    out = in_bands(st, x, BandOptions(tile=48, store_dtype=torch.float32))
    assert (out - full).abs().max() < 1e-4 * full.abs().max()
    assert BandPlan(st).summary(150, 101, 48, Precision("fp32", "cpu"))[0] == 2  # the content statistics, then the output


def test_the_cache_respects_its_memory_bound(tmp_path):
    net = generator()
    x = image(96, 64)
    with torch.no_grad():
        full = net(x.float() / 127.5 - 1)
    # Each stored quarter-resolution activation here is 32 x 24 x 16 values x 2 bytes = 24 KiB.
    on_disk = Cache(0, str(tmp_path))
    out = in_bands(net, x, BandOptions(tile=24, store_dtype=torch.float16), cache=on_disk)
    assert on_disk.peak_ram == 0 and on_disk.disk_stores > 0 and psnr(out, full) > 60
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone
    bounded = Cache(50_000, str(tmp_path))
    in_bands(net, x, BandOptions(tile=24, store_dtype=torch.float16), cache=bounded)
    assert 0 < bounded.peak_ram <= 50_000 and bounded.disk_stores > 0
    roomy = Cache(2**30, str(tmp_path))
    in_bands(net, x, BandOptions(tile=24, store_dtype=torch.float16), cache=roomy)
    assert roomy.disk_stores == 0 and bounded.peak_ram < roomy.peak_ram


def test_progress_reaches_the_end_in_order():
    seen = []
    in_bands(generator(), image(64, 64), BandOptions(tile=16), progress=lambda f, what: seen.append((f, what)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert seen[0][1].startswith("pass 1/") and "band 1/" in seen[0][1]


def test_exported_models_get_blended_tiles():
    net = generator(norm="none")  # no per-image statistics: tiles are exact but for the blend
    x = image(150, 198)
    opaque = lambda t: net(t)  # noqa: E731 (a callable with no modules: no band program)
    with torch.no_grad():
        full = net(x.float() / 127.5 - 1)
    out = Engine(opaque, tile=96, tile_overlap=32).image(x[0])
    assert out.shape == full.shape[1:] and psnr(out, full[0]) > 40
    assert psnr(translate_tiles(opaque, x, 96, 32), full) > 40
    assert "an exported model" in why_not(opaque)


class _Lying(ResnetGenerator):
    """A generator whose declared band program leaves out its last layer: the self-check must catch it."""

    def band_program(self, norms):
        prog = super().band_program(norms)
        prog.ops = prog.ops[:-1]
        return prog


class _Undeclared(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def test_band_programs_are_checked_against_the_forward_and_fail_closed():
    torch.manual_seed(0)
    assert BandPlan(generator()).runs_in_bands and why_not(generator()) == ""
    lying = _Lying(3, 3, ngf=8, n_blocks=1).eval()
    assert not BandPlan(lying).runs_in_bands
    assert "band program does not reproduce its forward" in why_not(lying)
    x = image(64, 48)
    with torch.no_grad():
        full = lying(x.float() / 127.5 - 1)
    out = Engine(lying, tile=32, tile_overlap=8).image(x[0])  # blended tiles, never the wrong program
    assert psnr(out, full[0]) > 20
    assert why_not(_Undeclared()) == "_Undeclared declares no band program"
    # a layer the runner cannot compute over rows is named
    corners = generator(upsample="resize_conv")
    at = next(i for i, m in enumerate(corners.model) if isinstance(m, torch.nn.Upsample))
    corners.model[at] = torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
    assert "align_corners=True" in why_not(corners) and not BandPlan(corners).runs_in_bands


def test_video_statistics_modes():
    net = generator()
    frames = torch.stack([image(32, 32, seed=i)[0] for i in range(4)]).float() / 127.5 - 1
    stats = NormStats(net, momentum=0.5)
    with torch.no_grad():
        own = net(frames)
        with stats.applied("own"):  # each frame its own statistics: the layers' own, nothing hooked in
            assert all(not layer._forward_hooks for layer in stats.layers)
        # which is one frame at a time, and the per-sample statistics the other modes are built from
        assert torch.allclose(own, torch.cat([net(f[None]) for f in frames]), atol=1e-5)
        x = net.model[:2](frames)
        mean, var, _ = moments(x, per_sample=True)
        assert torch.allclose(stats.normalize(0, x, (mean, var)), stats.layers[0](x), atol=1e-5)
        # running, a batch at once == one frame at a time
        with stats.applied("running"):
            batch = net(frames)
        stats.reset()
        with stats.applied("running"):
            single = torch.cat([net(f[None]) for f in frames])
        assert torch.allclose(batch, single, atol=1e-5)
        assert torch.allclose(batch[0], own[0], atol=1e-5) and not torch.allclose(batch[1:], own[1:], atol=1e-3)
        # pooled over all frames, then fixed == the statistics of the frames side by side (one big image)
        stats.reset()
        with stats.applied("pooled"):
            net(frames)
        stats.freeze_all()
        first = net.model[:2](frames).double()  # the first norm layer's input does not depend on any norm
        assert torch.allclose(stats.fixed[0][0], first.mean((0, 2, 3)), atol=1e-6)
        assert torch.allclose(stats.fixed[0][1], first.var((0, 2, 3), unbiased=False), rtol=1e-4)
        with stats.applied("fixed"):
            fixed = net(frames)
        assert not torch.allclose(fixed, own, atol=1e-3)
    with pytest.raises(ValueError, match="unknown statistics mode"):
        with stats.applied("clip"):
            pass


def test_pooled_and_running_statistics_follow_their_equations():
    net = torch.nn.Sequential(torch.nn.InstanceNorm2d(3))
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64).float() * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + 1
    stats = NormStats(net, momentum=0.75)
    with torch.no_grad():
        with stats.applied("pooled"):
            pooled = net(x)
        stats.reset()
        with stats.applied("running"):
            running = net(x)
    mean_sq = None
    for k in range(4):
        seen = x[: k + 1].double()  # pooled: everything up to and including frame k
        m, v = seen.mean((0, 2, 3)).view(1, 3, 1, 1), seen.var((0, 2, 3), unbiased=False).view(1, 3, 1, 1)
        assert torch.allclose(pooled[k:k + 1].double(), (x[k:k + 1] - m) / torch.sqrt(v + 1e-5), atol=1e-4)
        # running: m_k = 0.75 m_{k-1} + 0.25 mean(x_k), likewise E[x^2]
        now = (x[k].double().mean((1, 2)), x[k].double().square().mean((1, 2)))
        mean_sq = now if mean_sq is None else tuple(0.75 * a + 0.25 * b for a, b in zip(mean_sq, now))
        rm, rv = mean_sq[0].view(1, 3, 1, 1), (mean_sq[1] - mean_sq[0] ** 2).view(1, 3, 1, 1)
        assert torch.allclose(running[k:k + 1].double(), (x[k:k + 1] - rm) / torch.sqrt(rv + 1e-5), atol=1e-4)
