import pytest
import torch

from gan import GanError
from gan.nn import losses
from gan.config import load_config
from gan.models.cyclegan import CycleGAN
from gan.models.image_pool import ImagePool
from tests.helpers import write_images


def test_lsgan():
    pred = torch.tensor([[0.5, 1.0], [0.0, 2.0]])
    assert losses.gan_loss(pred, True, "lsgan").item() == pytest.approx((0.25 + 0 + 1 + 1) / 4)
    assert losses.gan_loss(pred, False, "lsgan").item() == pytest.approx((0.25 + 1 + 0 + 4) / 4)
    assert losses.generator_adv_loss(pred, "lsgan").item() == pytest.approx((0.25 + 0 + 1 + 1) / 4)


def test_vanilla_is_bce_with_logits():
    pred = torch.tensor([0.0, 2.0])
    expected_real = -torch.log(torch.sigmoid(pred)).mean()
    expected_fake = -torch.log(1 - torch.sigmoid(pred)).mean()
    assert losses.gan_loss(pred, True, "vanilla").item() == pytest.approx(expected_real.item(), rel=1e-5)
    assert losses.gan_loss(pred, False, "vanilla").item() == pytest.approx(expected_fake.item(), rel=1e-5)


def test_hinge():
    pred = torch.tensor([-2.0, 0.5, 3.0])
    assert losses.gan_loss(pred, True, "hinge").item() == pytest.approx((3 + 0.5 + 0) / 3)
    assert losses.gan_loss(pred, False, "hinge").item() == pytest.approx((0 + 1.5 + 4) / 3)
    assert losses.generator_adv_loss(pred, "hinge").item() == pytest.approx(-0.5)


def test_discriminator_loss_is_halved():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    # lsgan: real part (0 + 1)/2 = 0.5, fake part (0 + 1)/2 = 0.5 -> 0.5 * 1.0
    assert losses.discriminator_loss(real, fake, "lsgan").item() == pytest.approx(0.5)


def test_cycle_and_identity_are_mean_l1():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    assert losses.cycle_loss(a, b).item() == pytest.approx(0.5)
    assert losses.identity_loss(b, a).item() == pytest.approx(0.5)


def test_gram_matrix_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # c=2, h=1, w=2
    g = losses.gram_matrix(f)
    expected = torch.tensor([[1 + 4, 3 + 8], [3 + 8, 9 + 16]], dtype=torch.float32) / (2 * 1 * 2)
    assert torch.allclose(g[0], expected)


def test_content_and_style_losses_zero_on_identical_features():
    f = {"relu1_1": torch.rand(2, 4, 5, 5)}
    assert losses.content_loss(f, f).item() == 0
    grams = {"relu1_1": losses.gram_matrix(f["relu1_1"])}
    assert losses.style_loss({"relu1_1": f["relu1_1"][:1].expand(2, -1, -1, -1)}, {"relu1_1": grams["relu1_1"][:1]}).item() == 0
    assert losses.style_loss(f, {"relu1_1": torch.zeros(1, 4, 4)}).item() > 0


def test_vgg_features_without_weights():
    vgg = losses.VGGFeatures(["relu1_1", "relu4_2"], weights="none")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    x0 = x.clone()
    feats = vgg(x)
    assert set(feats) == {"relu1_1", "relu4_2"}
    assert feats["relu1_1"].shape == (1, 64, 32, 32) and feats["relu4_2"].shape == (1, 512, 4, 4)
    assert torch.equal(x, x0)  # input untouched (no in-place normalisation)
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    assert len(vgg.features) == 23  # built only up to relu4_2


def test_vgg_local_weights_file(tmp_path):
    sd = {"features.0.weight": torch.randn(64, 3, 3, 3), "features.0.bias": torch.randn(64),
          "classifier.0.weight": torch.zeros(1)}  # the rest of a vgg19 file is not needed for relu1_1
    path = tmp_path / "vgg19.pth"
    torch.save(sd, path)
    vgg = losses.VGGFeatures(["relu1_1"], weights=str(path))
    assert torch.equal(vgg.features[0].weight, sd["features.0.weight"])
    with pytest.raises(GanError, match=r"missing feature layers \['10.bias'"):
        losses.VGGFeatures(["relu3_1"], weights=str(path))
    with pytest.raises(GanError, match="loss.vgg.weights: file not found"):
        losses.VGGFeatures(["relu1_1"], weights=str(tmp_path / "missing.pth"))


def test_vgg_offline_error_names_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    from torchvision.models import VGG19_Weights

    def offline(*a, **k):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(VGG19_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(GanError) as e:
        losses.VGGFeatures(["relu1_1"], weights="imagenet")
    msg = str(e.value)
    assert "vgg19-dcbb9e9d.pth" in msg and str(tmp_path) in msg and "loss.vgg.weights" in msg


# ------------------------------------------------------------------------------------------ CycleGAN

TINY = ["model.generator.ngf=4", "model.generator.n_blocks=1", "model.discriminator.ndf=4",
        "model.discriminator.n_layers=2"]


def build_cyclegan(cfg, vgg_weights=None):
    return CycleGAN.build(cfg, torch.device("cpu"), vgg_weights=vgg_weights)


def test_cyclegan_terms_and_shapes():
    cfg = load_config(None, TINY)
    m = build_cyclegan(cfg)
    assert m.vgg is None  # both VGG weights 0: no VGG at all
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    total, terms, images = m.generator_loss(a, b)
    assert set(terms) == {"adv_ab", "adv_ba", "cycle_a", "cycle_b", "idt_a", "idt_b"}
    assert images["fake_b"].shape == a.shape and images["rec_a"].shape == a.shape
    loss_d, terms_d = m.discriminator_loss(a, b, images["fake_a"], images["fake_b"])
    assert set(terms_d) == {"d_a", "d_b"}  # values: test_objective_matches_a_hand_computation


class RecordingContext:
    """A StepContext that backpropagates but never steps, recording what each update saw."""

    step = 0  # (R1, when on, applies at steps that are multiples of loss.r1_every: step 0 is one)

    def __init__(self, model):
        self.model, self.seen = model, {}

    def autocast(self):
        import contextlib

        return contextlib.nullcontext()

    def update(self, name, loss, terms):
        loss.backward()
        grads = {n: any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
                 for n, net in self.model.nets.items()}
        self.seen[name] = (loss.detach(), {k: v.detach() for k, v in terms.items()}, grads)
        for net in self.model.nets.values():
            net.zero_grad(set_to_none=True)


def _pool_that_swaps(pool, stored: torch.Tensor) -> None:
    """Fill a size-1 pool with `stored` and seed it so its next query swaps (returns `stored`)."""
    for seed in range(100):
        g = torch.Generator().manual_seed(seed)
        if torch.rand((), generator=g).item() > 0.5:
            break
    pool.images = [stored.clone()]
    pool.generator = torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("hybrid", [False, True, "fm_r1"])
def test_objective_matches_a_hand_computation(hybrid):
    """Every term of L_G and L_D recomputed here from the nets and the equations in the CycleGAN docstring,
    with unusual weights, so a dropped or misplaced weight, a D fed the fresh fakes instead of the pool's,
    or a missing 0.5 makes this fail (also feature matching and R1, with their weights)."""
    extra = ["loss.lambda_content=0.7", "loss.lambda_style=30", "loss.vgg.content_layers=[relu1_2]",
             "loss.vgg.style_layers=[relu1_1, relu2_1]"] if hybrid is True else []
    if hybrid == "fm_r1":
        extra = ["loss.lambda_fm=0.3", "loss.fm=moments", "loss.r1_gamma=2", "loss.r1_every=4"]
    cfg = load_config(None, TINY + ["model.cyclegan.lambda_cycle=3", "model.cyclegan.lambda_identity=0.25", "train.pool_size=1"] + extra)
    torch.manual_seed(0)
    m = build_cyclegan(cfg, vgg_weights="none")
    a, b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    z_a, z_b = torch.full((1, 3, 16, 16), 0.3), torch.full((1, 3, 16, 16), -0.6)
    _pool_that_swaps(m.pool_a, z_a)
    _pool_that_swaps(m.pool_b, z_b)

    ctx = RecordingContext(m)
    m.training_step({"A": a, "B": b}, ctx)

    l1 = lambda x, y: (x - y).abs().mean()  # noqa: E731
    ls = lambda pred, t: ((pred - t) ** 2).mean()  # noqa: E731
    with torch.no_grad():
        fake_b, fake_a = m.g_ab(a), m.g_ba(b)
        rec_a, rec_b = m.g_ba(fake_b), m.g_ab(fake_a)
        want_g = {
            "adv_ab": ls(m.d_b(fake_b), 1.0), "adv_ba": ls(m.d_a(fake_a), 1.0),
            "cycle_a": 3 * l1(rec_a, a), "cycle_b": 3 * l1(rec_b, b),
            "idt_a": 0.25 * 3 * l1(m.g_ba(a), a), "idt_b": 0.25 * 3 * l1(m.g_ab(b), b),
        }
        if hybrid == "fm_r1":
            def moments(d, fake, real):  # per layer: means and standard deviations over batch and positions
                _, ff = d(fake, features=True)
                _, fr = d(real, features=True)
                per = [((f.mean((0, 2, 3)) - r.mean((0, 2, 3))) ** 2).mean()
                       + ((f.transpose(0, 1).flatten(1).std(1) - r.transpose(0, 1).flatten(1).std(1)) ** 2).mean()
                       for f, r in zip(ff, fr)]
                assert len(per) == 3  # TINY's two-layer PatchGAN: three convs before the logits
                return sum(per) / len(per)

            want_g["fm_ab"] = 0.3 * moments(m.d_b, fake_b, b)
            want_g["fm_ba"] = 0.3 * moments(m.d_a, fake_a, a)
        if hybrid is True:
            fa, fb, ffa, ffb = m.vgg(a), m.vgg(b), m.vgg(fake_a), m.vgg(fake_b)
            gram = lambda f: torch.einsum("nchw,ndhw->ncd", f, f) / f[0].numel()  # noqa: E731
            want_g["content_ab"] = 0.7 * ((ffb["relu1_2"] - fa["relu1_2"]) ** 2).mean()
            want_g["content_ba"] = 0.7 * ((ffa["relu1_2"] - fb["relu1_2"]) ** 2).mean()
            want_g["style_ab"] = 30 * sum(((gram(ffb[k]) - gram(fb[k]).mean(0)) ** 2).mean()
                                          for k in ("relu1_1", "relu2_1"))
            want_g["style_ba"] = 30 * sum(((gram(ffa[k]) - gram(fa[k]).mean(0)) ** 2).mean()
                                          for k in ("relu1_1", "relu2_1"))
        # D's fakes come through the pools: a size-1 pool primed like the model's, fed the same fakes.
        d_in_a, d_in_b = _replay_pool(z_a, fake_a), _replay_pool(z_b, fake_b)
        assert torch.equal(d_in_a[:1], z_a) and torch.equal(d_in_b[:1], z_b)  # the primed swap happened
        want_d = {"d_a": 0.5 * (ls(m.d_a(a), 1.0) + ls(m.d_a(d_in_a), 0.0)),
                  "d_b": 0.5 * (ls(m.d_b(b), 1.0) + ls(m.d_b(d_in_b), 0.0))}
    if hybrid == "fm_r1":  # gamma / 2 x every x E |d mean_patches D(y) / dy|^2, on the real images
        for name, d, y in (("r1_a", m.d_a, a), ("r1_b", m.d_b, b)):
            y = y.clone().requires_grad_(True)
            grad, = torch.autograd.grad(d(y).flatten(1).mean(1).sum(), y)
            want_d[name] = 2 / 2 * 4 * grad.square().flatten(1).sum(1).mean()

    loss_g, terms_g, grads_g = ctx.seen["g"]
    loss_d, terms_d, grads_d = ctx.seen["d"]
    assert set(terms_g) == set(want_g) and set(terms_d) == set(want_d)
    for k, v in want_g.items():
        assert terms_g[k].item() == pytest.approx(v.item(), rel=1e-5, abs=1e-7), k
    assert loss_g.item() == pytest.approx(sum(v.item() for v in want_g.values()), rel=1e-5)
    for k, v in want_d.items():
        assert terms_d[k].item() == pytest.approx(v.item(), rel=1e-5), k
    assert loss_d.item() == pytest.approx(sum(v.item() for v in want_d.values()), rel=1e-5)
    # The G update reaches only the generators, the D update only the discriminators.
    assert grads_g == {"g_ab": True, "g_ba": True, "d_a": False, "d_b": False}
    assert grads_d == {"g_ab": False, "g_ba": False, "d_a": True, "d_b": True}


def _replay_pool(stored: torch.Tensor, fakes: torch.Tensor) -> torch.Tensor:
    """What a size-1 pool primed with `stored` (as in the test) returns for `fakes`."""
    from gan.models.image_pool import ImagePool

    pool = ImagePool(1)
    _pool_that_swaps(pool, stored)
    return pool.query(fakes)


def test_identity_weight_follows_reference_convention():
    cfg = load_config(None, TINY + ["model.cyclegan.lambda_identity=0.5", "model.cyclegan.lambda_cycle=10"])
    m = build_cyclegan(cfg)
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    torch.manual_seed(0)
    _, terms, _ = m.generator_loss(a, b)
    with torch.no_grad():
        raw = losses.identity_loss(m.g_ba(a), a)
    assert terms["idt_a"].item() == pytest.approx(5.0 * raw.item(), rel=1e-5)
    _, terms0, _ = build_cyclegan(load_config(None, TINY + ["model.cyclegan.lambda_identity=0"])).generator_loss(a, b)
    assert "idt_a" not in terms0


def test_hybrid_terms_with_random_vgg(tmp_path):
    cfg = load_config(None, TINY + ["loss.lambda_content=1", "loss.lambda_style=10"])
    m = build_cyclegan(cfg, vgg_weights="none")
    assert m.vgg is not None
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    total, terms, _ = m.generator_loss(a, b)
    assert {"content_ab", "content_ba", "style_ab", "style_ba"} <= set(terms)
    total.backward()
    assert m.g_ab.model[1].weight.grad is not None
    assert not any(p.grad is not None for p in m.vgg.parameters())
    # Fixed style images: their grams replace the B batch's.
    write_images(tmp_path / "style", 2, size=(32, 32))
    fixed = build_cyclegan(load_config(None, TINY + ["loss.lambda_content=1", "loss.lambda_style=10",
                                                     f"loss.vgg.style_images={tmp_path / 'style'}"]), "none")
    _, terms_fixed, _ = fixed.generator_loss(a, b)
    assert terms_fixed["style_ab"].item() != pytest.approx(terms["style_ab"].item())


# ----------------------------------------------------------------------------------------- ImagePool


def test_pool_fills_then_swaps_half():
    pool = ImagePool(size=4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 4
    returned_old = 0
    for i in range(200):
        x = torch.full((1, 1, 1, 1), 100.0 + i)
        out = pool.query(x)
        returned_old += int(out.item() != x.item())
    assert 70 < returned_old < 130  # about half swapped
    assert len(pool) == 4


def test_pool_size_zero_passes_through():
    x = torch.rand(3, 1, 2, 2)
    assert ImagePool(0).query(x) is x


def test_pool_state_round_trip(tmp_path):
    pool = ImagePool(size=3, seed=1)
    for i in range(5):
        pool.query(torch.full((1, 1, 2, 2), float(i)))
    torch.save(pool.state_dict(), tmp_path / "pool.pt")
    restored = ImagePool(size=3, seed=99)
    restored.load_state_dict(torch.load(tmp_path / "pool.pt", weights_only=True))
    for i in range(10):
        x = torch.full((1, 1, 2, 2), 50.0 + i)
        assert torch.equal(pool.query(x), restored.query(x))


def test_sliced_wasserstein_feature_matching_has_its_known_values():
    """SWD of a set with itself is 0, and of a set moved by a constant vector v it is the mean over the
    directions u_k of (u_k . v)^2 (every quantile moves by u_k . v): computed here with the same directions."""
    g = torch.Generator().manual_seed(3)
    f = torch.randn(2, 5, 6, 7, generator=g)
    v = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.3])
    assert losses.feature_matching_loss([f], [f], "swd", torch.Generator().manual_seed(1)).item() == pytest.approx(0)
    moved = f + v[None, :, None, None]
    got = losses.feature_matching_loss([f], [moved], "swd", torch.Generator().manual_seed(1)).item()
    u = torch.nn.functional.normalize(torch.randn(5, 5, generator=torch.Generator().manual_seed(1)), dim=1)
    assert got == pytest.approx(((u @ v) ** 2).mean().item(), rel=1e-5)
    # a real set of another size: its quantiles resampled (the same distribution, twice the samples: ~0)
    assert losses.feature_matching_loss([f], [torch.cat([f, f])], "swd", g).item() < 1e-3
    # moments: only means and standard deviations count
    assert losses.feature_matching_loss([f], [moved], "moments").item() == pytest.approx((v ** 2).mean().item(),
                                                                                          rel=1e-5)


def test_r1_penalty_of_a_linear_discriminator():
    """D(y) = <w, y> per patch: the gradient of the mean patch logit is w / patches... here one patch, so |w|^2."""
    w = torch.randn(1, 3, 4, 4)
    y = torch.rand(2, 3, 4, 4, requires_grad=True)
    pred = (y * w).sum((1, 2, 3)).reshape(2, 1, 1, 1)
    assert losses.r1_penalty(pred, y).item() == pytest.approx(w.square().sum().item(), rel=1e-5)
