from pathlib import Path

import pytest

from gan import ConfigError
from gan.config import Config, dump_config, load_config, replace, save_config
from tests.helpers import HANG_GUARD

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_reference_recipe():
    cfg = load_config(None)
    assert cfg.data.load_size == 286 and cfg.data.crop_size == 256
    assert cfg.model.generator.ngf == 64 and cfg.model.generator.n_blocks == 9
    assert cfg.train.lr == 0.0002 and cfg.train.beta1 == 0.5 and cfg.train.pool_size == 50
    assert cfg.model.options.lambda_cycle == 10.0 and cfg.model.options.lambda_identity == 0.5


RUN_CONFIGS = [p for p in sorted((ROOT / "configs").glob("*.yaml")) if not p.name.startswith("sweep")]


def test_config_folder_is_complete():
    names = {p.name for p in (ROOT / "configs").glob("*.yaml")}
    assert {"quickstart.yaml", "photo2monet.yaml", "hybrid_vgg.yaml", "sweep_quickstart.yaml"} <= names
    # sweep_*.yaml are W&B sweep definitions: their parameters are validated in test_tracking.


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_every_config_file_loads_and_round_trips(path, tmp_path):
    cfg = load_config(path)
    out = tmp_path / "saved.yaml"
    save_config(cfg, out)
    assert load_config(out) == cfg


def test_photo2monet_matches_the_paper():
    cfg = load_config(ROOT / "configs/photo2monet.yaml")
    assert (cfg.data.load_size, cfg.data.crop_size, cfg.data.batch_size) == (286, 256, 1)
    assert (cfg.model.generator.ngf, cfg.model.discriminator.ndf, cfg.model.generator.n_blocks) == (64, 64, 9)
    assert (cfg.train.epochs, cfg.train.epochs_decay, cfg.train.lr_policy) == (100, 100, "linear")
    assert (cfg.model.options.lambda_cycle, cfg.model.options.lambda_identity, cfg.train.pool_size) == (10.0, 0.5, 50)


def test_hybrid_config_turns_on_vgg_terms():
    cfg = load_config(ROOT / "configs/hybrid_vgg.yaml")
    assert cfg.loss.lambda_content > 0 and cfg.loss.lambda_style > 0


def test_overrides_are_parsed_as_yaml():
    cfg = load_config(None, ["train.lr=1e-4", "data.batch_size=4", "data.preprocess=crop",
                             "tracking.wandb.tags=[a, b]", "train.max_steps=null", "data.flip=false"])
    assert cfg.train.lr == 1e-4 and cfg.data.batch_size == 4 and cfg.tracking.wandb.tags == ("a", "b")
    assert cfg.train.max_steps is None and cfg.data.flip is False


def test_round_trip_with_overrides(tmp_path):
    cfg = load_config(None, ["train.lr=3e-4", "data.extra_transforms=[{name: ColorJitter, params: {brightness: 0.1}}]"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert replace(cfg, []) == cfg


@pytest.mark.parametrize("override, message", [
    ("train.lrr=0.1", "train.lrr: unknown key; did you mean train.lr?"),
    ("model.generator.nfg=8", "model.generator.nfg: unknown key; did you mean model.generator.ngf?"),
    ("trian.lr=0.1", "trian: unknown key; did you mean train?"),
    ("train.lr=-1", "train.lr: invalid value -1.0; expected a number > 0"),
    ("train.lr=fast", "train.lr: invalid value 'fast'; expected a number"),
    ("data.batch_size=2.5", "data.batch_size: invalid value 2.5; expected an integer"),
    ("data.flip=maybe", "data.flip: invalid value 'maybe'; expected true or false"),
    ("loss.gan_mode=wgan", "loss.gan_mode: invalid value 'wgan'; expected one of 'lsgan', 'vanilla', 'hinge'"),
    ("data.crop_size=300", "data.crop_size: invalid value 300; expected at most data.load_size (286)"),
    ("model.generator.upsample=bilinear", "model.generator.upsample: invalid value 'bilinear'"),
    ("loss.vgg.style_layers=[relu9_9]", "loss.vgg.style_layers[0]: invalid value 'relu9_9'"),
    ("eval.best=fid_ab", "eval.best: invalid value 'fid_ab'; expected one of kid_ab, kid_ba"),
    ("train.device=gpu", "train.device: invalid value 'gpu'; expected auto, cpu, cuda or cuda:N"),
    ("lr", "override 'lr': expected key=value"),
])
def test_bad_values_name_path_value_and_allowed(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert message in str(e.value)


def test_fp16_is_accepted_where_cuda_may_be():
    # auto/cuda may resolve to a GPU: the config keeps fp16 (the trainer refuses it once the device is known).
    assert load_config(None, ["train.precision=fp16"]).train.precision == "fp16"
    assert load_config(None, ["train.precision=fp16", "train.device=cuda:1"]).train.device == "cuda:1"


def test_fp16_on_cpu_is_refused():
    with pytest.raises(ConfigError, match=r"train.precision: invalid value 'fp16'; expected fp32 or bf16 on the CPU"):
        load_config(None, ["train.device=cpu", "train.precision=fp16"])


def test_unknown_key_in_file_and_nested(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  root: x\n  crop_sise: 3\n")
    with pytest.raises(ConfigError, match=r"data.crop_sise: unknown key; did you mean data.crop_size\?"):
        load_config(p)


def test_missing_file_and_malformed_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ntrain:\n  lr: [1, 2\n  epochs: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "bad.yaml, line 4" in str(e.value) and "malformed YAML" in str(e.value)


def test_top_level_must_be_mapping(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(p)


def test_section_given_a_scalar():
    with pytest.raises(ConfigError, match="train: invalid value 3; expected a mapping"):
        load_config(None, ["train=3"])


def test_extra_transforms_checked_when_the_pipeline_is_built():
    from gan.data.datasets import build_transform

    cfg = load_config(None, ["data.extra_transforms=[{name: ColourJitter}]"])
    with pytest.raises(ConfigError, match=r"data.extra_transforms\[0\]: unknown albumentations transform "
                                          r"'ColourJitter'; did you mean ColorJitter"):
        build_transform(cfg.data)
    cfg = load_config(None, ["data.extra_transforms=[{name: ColorJitter, params: {brightness: lots}}]"])
    with pytest.raises(ConfigError, match=r"data.extra_transforms\[0\]: ColorJitter\(brightness='lots'\): invalid"):
        build_transform(cfg.data)


def test_bad_extra_transform_stops_train_py_before_anything_is_written(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "train.py"), f"train.output_dir={tmp_path / 'runs'}",
                        f"data.root={tmp_path / 'nowhere'}", "data.extra_transforms=[{name: ColourJitter}]"],
                       capture_output=True, text=True, cwd=root, timeout=HANG_GUARD)
    assert r.returncode == 2 and "error: data.extra_transforms[0]: unknown albumentations transform" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_batching_needs_equal_sizes():
    with pytest.raises(ConfigError, match="data.batch_size: invalid value 4; expected 1 with preprocess none"):
        load_config(None, ["data.preprocess=none", "data.batch_size=4"])


def test_dump_is_plain_yaml():
    text = dump_config(Config())
    assert "!!python" not in text and "photo2monet" in text


# ------------------------------------------------------------------------ keys that moved into a kind's section


def test_a_config_with_the_old_cyclegan_keys_loads_them_into_the_kinds_section(tmp_path, caplog):
    """loss.lambda_cycle, lambda_identity and cycle_lowpass are CycleGAN's own keys now (model.cyclegan.*): a YAML
    file written before still loads, with one line saying where they live now."""
    import logging

    old = tmp_path / "old.yaml"
    old.write_text("loss:\n  gan_mode: hinge\n  lambda_cycle: 3.0\n  lambda_identity: 0.0\n  cycle_lowpass: 2\n")
    with caplog.at_level(logging.INFO, logger="gan"):
        logging.getLogger("gan").propagate = True
        cfg = load_config(old)
    o = cfg.model.options
    assert (o.lambda_cycle, o.lambda_identity, o.cycle_lowpass, cfg.loss.gan_mode) == (3.0, 0.0, 2, "hinge")
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "loss.lambda_cycle is now model.cyclegan.lambda_cycle" in said[0]
    assert "loss.cycle_lowpass is now model.cyclegan.cycle_lowpass" in said[0]
    # written back in today's layout, which loads silently to the same config
    save_config(cfg, tmp_path / "new.yaml")
    assert "lambda_cycle" not in (tmp_path / "new.yaml").read_text().split("loss:")[1].split("train:")[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gan"):
        assert load_config(tmp_path / "new.yaml") == cfg
    assert not caplog.records
    with pytest.raises(ConfigError, match="loss.lambda_cycle and model.cyclegan.lambda_cycle are the same key"):
        load_config(old, ["model.cyclegan.lambda_cycle=4"])
    assert load_config(None, ["loss.lambda_tv=0.5", "model.kind=style", "loss.lambda_style=1"]
                       ).model.options.lambda_tv == 0.5


def test_another_kinds_old_keys_are_not_its_rules(caplog):
    """The defect: a CUT config refused by a CycleGAN rule (loss.lambda_identity with one channel), although CUT never
    reads that key. Old CUT checkpoints and YAML files carry the key (its default): dropped silently; set to
    something else, one line says it is ignored."""
    import logging

    logging.getLogger("gan").propagate = True
    with caplog.at_level(logging.INFO, logger="gan"):
        cfg = load_config(ROOT / "configs" / "cut.yaml", ["loss.lambda_identity=0.5", "loss.lambda_cycle=10"])
    assert cfg.model.kind == "cut" and not caplog.records
    with caplog.at_level(logging.INFO, logger="gan"):
        load_config(ROOT / "configs" / "cut.yaml", ["loss.lambda_cycle=5"])
    assert "loss.lambda_cycle=5 is a key of model kind cyclegan (now model.cyclegan.lambda_cycle); ignored for kind " \
           "cut" in caplog.text


@pytest.mark.parametrize("over, message", [
    # the issue's two commands: the first was refused by a CycleGAN rule, the second ended in a traceback
    (["model.in_channels=1"], "model.out_channels: invalid value 3; expected 1 (= model.in_channels): model kind "
                              "cut translates between images of the same channels"),
    (["model.kind=cut", "model.in_channels=1", "model.cut.nce_idt=false"], "model kind cut translates between"),
    (["model.kind=style", "loss.lambda_style=1", "model.out_channels=1"],
     "model.out_channels: invalid value 1; expected 3: model kind style takes RGB images"),
    (["model.kind=adain", "loss.lambda_style=1", "model.in_channels=1"],
     "model.in_channels: invalid value 1; expected 3: model kind adain takes RGB images"),
])
def test_each_kind_states_the_channel_layouts_it_trains(over, message):
    config = ROOT / "configs" / "cut.yaml" if over == ["model.in_channels=1"] else None
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(config, over)
    # one channel each way trains with CUT and CycleGAN, grey -> colour with CycleGAN
    assert load_config(ROOT / "configs" / "cut.yaml", ["model.in_channels=1", "model.out_channels=1"])
    assert load_config(None, ["model.in_channels=1", "model.cyclegan.lambda_identity=0"])


def test_train_py_names_the_channel_rule_for_the_issues_cut_commands(tmp_path):
    import subprocess
    import sys

    for args in (["--config", "configs/cut.yaml", "model.in_channels=1"],
                 ["model.kind=cut", "model.in_channels=1", "model.cut.nce_idt=false"]):  # on the quickstart
        r = subprocess.run([sys.executable, str(ROOT / "train.py"), *args, f"train.output_dir={tmp_path}"],
                           capture_output=True, text=True, cwd=ROOT, timeout=HANG_GUARD)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "model kind cut translates between images of the same channels" in r.stderr
        assert "lambda_identity" not in r.stderr and not any(tmp_path.iterdir())


def test_the_configuration_reference_documents_every_key():
    """docs/configuration.md has a row for every key of every section, the kinds' own sections included (a key
    added without its documentation fails here)."""
    import dataclasses

    from gan.config.schema import all_keys
    from gan.models import KINDS

    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    documented = set()
    for row in rows:
        first = row.split("|")[1]
        names = [n.strip().strip("`") for n in first.split(",")]
        section = names[0].rsplit(".", 1)[0] if "." in names[0] else ""
        documented |= {names[0]} | {f"{section}.{n}" if section and "." not in n else n for n in names[1:]}
    keys = [k for k in all_keys() if not any(k2.startswith(k + ".") for k2 in all_keys())]  # leaves
    for kind, cls in KINDS.items():
        if cls.Section is not None:
            keys += [f"model.{kind}.{f.name}" for f in dataclasses.fields(cls.Section)]
    missing = [k for k in keys if k not in documented and not any(k.startswith(d + ".") for d in documented)]
    assert not missing, missing


@pytest.mark.parametrize("kind, key", [("cut", "loss.lambda_patch=1"), ("cut", "loss.g_steps=2"),
                                       ("cut", "loss.d_steps=2"), ("style", "loss.lambda_fm=1"),
                                       ("style", "loss.r1_gamma=1"), ("adain", "model.discriminator.recon=1"),
                                       ("adain", "model.discriminator.batch=2")])
def test_a_shared_feature_a_kind_does_not_read_is_refused_not_ignored(kind, key):
    """Every kind declares the shared features it implements (`reads`); turning on another is an error naming the
    key, never a run that silently trains without it."""
    base = {"cut": ["--"], "style": ["loss.lambda_style=1"], "adain": ["loss.lambda_style=1"]}[kind]
    over = [f"model.kind={kind}"] + [o for o in base if o != "--"] + [key]
    with pytest.raises(ConfigError, match=f"{key.split('=')[0]}: invalid value .*; expected .*: model kind {kind} "
                                          "does not read it"):
        load_config(ROOT / "configs" / "cut.yaml" if kind == "cut" else None, over)
    assert load_config(None, ["model.kind=cyclegan", key])  # CycleGAN reads them all
