"""The GPU paths, where a GPU exists (skipped elsewhere; benchmarks/gpu.sh runs this file with the GPU
benchmarks): fp16 and bf16 channels-last training with exact resume, compile, bands on CUDA against the untiled
result, video on CUDA, and each kind's export from a CUDA-trained checkpoint."""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = ["train.device=cuda", "train.channels_last=true"]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_channels_last_amp_training_resumes_bitwise(tiny_overrides, tmp_path, precision):
    from tests.test_train import straight_and_resumed, weights

    over = [o for o in tiny_overrides if not o.startswith("train.device")] + CUDA + [
        f"train.precision={precision}", "train.max_steps=6", "train.save_every=100"]
    straight, resumed = straight_and_resumed(over, tmp_path, stop_at=3)
    assert straight.device.type == "cuda"
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    if precision == "fp16":  # the scalers' state came back too
        assert straight.scalers["g"].get_scale() == resumed.scalers["g"].get_scale()


def test_compiled_training_on_cuda(tiny_overrides, tmp_path):
    from gan.config import load_config
    from gan.training.trainer import Trainer, prepare_run_dir

    over = [o for o in tiny_overrides if not o.startswith("train.device")] + CUDA + [
        "train.compile=true", "train.precision=bf16", "train.max_steps=3"]
    cfg = load_config(None, over)
    t = Trainer(cfg, prepare_run_dir(cfg))
    t.fit()
    state = torch.load(t.run_dir / "latest.pt", weights_only=True)
    assert not any("_orig_mod" in k for k in state["nets"]["g_ab"])


@pytest.mark.parametrize("kw", [{}, {"antialias": True}, {"skip": "color", "upsample": "resize_conv"}])
def test_bands_on_cuda_match_the_untiled_result(kw):
    from gan.inference.engine import Engine
    from gan.runtime import Runtime
    from gan.nn.networks import ResnetGenerator
    from tests.test_tiling import image, psnr

    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, ngf=16, n_blocks=3, **kw).cuda().eval()
    x = image(517, 389)
    with torch.no_grad():
        full = net(x.cuda().float() / 127.5 - 1).float().cpu()
    out = Engine(net, Runtime.resolve("cuda", "fp32"), tile=128).image(x[0])
    assert psnr(out, full[0]) > 60
    out16 = Engine(net, Runtime.resolve("cuda", "bf16"), tile=128).image(x[0])
    assert psnr(out16, full[0]) > 35


def test_video_on_cuda(tmp_path):
    pytest.importorskip("av")
    from gan.inference.engine import Engine
    from gan.runtime import Runtime
    from gan.nn.networks import ResnetGenerator
    from gan.inference.video import VideoOptions, translate_video
    from tests.test_video import moving_square, read_frames, write_video

    write_video(tmp_path / "clip.mp4", moving_square(8), audio_s=None)
    net = ResnetGenerator(3, 3, ngf=8, n_blocks=2).cuda().eval().to(memory_format=torch.channels_last)
    n = translate_video(Engine(net, Runtime.resolve("cuda", "auto")), tmp_path / "clip.mp4", tmp_path / "out.mp4",
                        VideoOptions(stats="running"), progress=False)
    assert n == 8 and read_frames(tmp_path / "out.mp4").shape[0] == 8


@pytest.mark.parametrize("kind", ["cyclegan", "cut", "style", "adain"])
def test_each_kinds_cuda_checkpoint_exports(tiny_overrides, tmp_path, kind):
    from gan.config import load_config
    from gan.commands.export import main as export_main
    from gan.training.trainer import Trainer, prepare_run_dir

    extra = {"cyclegan": [], "cut": ["model.kind=cut", "model.cut.nce_layers=[0,4]", "model.cut.num_patches=16"],
             "style": ["model.kind=style", "loss.lambda_style=1", "loss.vgg.weights=none"],
             "adain": ["model.kind=adain", "loss.lambda_content=1", "loss.lambda_style=1", "loss.vgg.weights=none",
                       "loss.vgg.style_layers=[relu1_1,relu2_1]"]}[kind]
    over = [o for o in tiny_overrides if not o.startswith("train.device")] + CUDA + extra + [
        "train.max_steps=2", f"name={kind}"]
    cfg = load_config(None, over)
    Trainer(cfg, prepare_run_dir(cfg)).fit()
    for fmt in ("onnx", "torchscript"):
        assert export_main(["--checkpoint", str(tmp_path / "runs" / kind), "--format", fmt,
                            "--output", str(tmp_path / f"{kind}.{fmt}")]) == 0
