"""DDP on the CPU with gloo and 2 processes."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gan.config import load_config
from gan.training.trainer import Trainer, prepare_run_dir, train
from tests.helpers import HANG_GUARD

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, overrides: list[str], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), WANDB_MODE="disabled")
    torch.set_num_threads(1)
    from gan import distributed

    cfg = load_config(None, overrides)
    distributed.init("cpu")
    try:
        trainer = Trainer(cfg, prepare_run_dir(cfg))
        trainer.fit()
        torch.save({k: v for n, net in trainer.nets.items() for k, v in
                    ((f"{n}.{k}", v) for k, v in net.state_dict().items())}, Path(out) / f"rank{rank}.pt")
        distributed.barrier()  # as gan.training.trainer.train does: both ranks done before the group is torn down
    finally:
        distributed.shutdown()


def weights_of(trainer) -> dict:
    return {f"{n}.{k}": v for n, net in trainer.nets.items() for k, v in net.state_dict().items()}


def test_two_ranks_match_each_other_and_a_single_process_run(tiny_overrides, tmp_path):
    common = tiny_overrides + ["train.pool_size=0", "train.max_steps=4", "train.save_every=2", "train.log_every=1",
                               "train.sample_every=2"]
    mp.spawn(_worker, args=(2, free_port(), common + ["data.batch_size=1", "name=ddp"], str(tmp_path)), nprocs=2,
             join=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # DDP keeps the ranks identical

    torch.set_num_threads(1)
    cfg = load_config(None, common + ["data.batch_size=2", "name=single"])
    untrained = weights_of(Trainer(cfg, tmp_path / "unused"))  # the same seed: the weights both runs start from
    single = Trainer(cfg, prepare_run_dir(cfg))
    single.fit()
    # The same global batch of 2 per step, so the same gradients up to the order of float additions. That is all
    # the comparison guarantees: Adam divides each gradient by its own running magnitude, so a gradient that is
    # zero up to rounding (conv biases right before an instance norm, say) becomes a full step of either sign,
    # and how large such differences grow in 4 steps depends on the CPU's kernels. So the runs are compared
    # through what the nets compute, against how far training moved them: a DDP that trained on other data
    # (every rank the same shard, no gradient averaging across different images) is as far from the single run
    # as training itself went; one that matches is a small fraction of it.
    w = weights_of(single)
    from gan.nn.networks import build_discriminator, build_generator

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for name, build in (("g_ab", build_generator), ("d_b", lambda m: build_discriminator(m, 3))):
        outs = []
        for weights in (untrained, w, r0):
            net = build(cfg.model).eval()
            net.load_state_dict({k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith(name + ".")})
            with torch.no_grad():
                outs.append(net(x))
        trained = (outs[1] - outs[0]).abs().max().item()
        diff = (outs[1] - outs[2]).abs().max().item()
        assert trained > 0 and diff < 0.25 * trained, (name, diff, trained)

    # Only rank 0 wrote: every file once, every step logged once.
    run = tmp_path / "runs" / "ddp"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000002.pt", "step_0000004.pt"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    steps = [line for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 4
    state = torch.load(run / "latest.pt", weights_only=True)
    assert len(state["rank_state"]) == 2 and len(state["rng"]) == 2 and state["position"]["world_size"] == 2
    assert not any(k.startswith("module.") for k in state["nets"]["g_ab"])  # unwrapped state

    # Resume the 2-process run in one process (another world size): it continues.
    last = train(None, resume=run, overrides=["train.max_steps=6"])
    assert torch.load(last, weights_only=True)["step"] == 6


def test_torchrun_cli_and_resume_across_world_sizes(tiny_overrides, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    # one process first, then continue with two
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), *tiny_overrides, "train.max_steps=2"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "tiny"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", str(free_port()), str(ROOT / "train.py"), "--resume", str(run),
                        "train.max_steps=5", "train.scale_lr=sqrt"], capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr[-3000:]
    state = torch.load(run / "latest.pt", weights_only=True)
    assert state["step"] == 5 and state["position"]["world_size"] == 2
    assert state["schedule"]["base_lr"] == pytest.approx(0.0002 * 2**0.5)  # scale_lr=sqrt with two processes
    assert "2 process(es)" in r.stderr and r.stderr.count("resuming at step 2") == 1  # rank 0 alone prints


def test_too_few_images_for_the_ranks(tiny_overrides, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", str(free_port()), str(ROOT / "train.py"), *tiny_overrides,
                        "data.batch_size=4"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=HANG_GUARD)
    assert r.returncode != 0
    assert "data.batch_size=4 x 2 process(es) needs at least 8 images per domain; the larger domain has 6" in r.stderr


def _scan_worker(rank: int, world: int, port: int, folder: str, out: str) -> None:
    import json
    import logging

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    from gan import distributed
    from gan.data import datasets as data  # scan_domain and the check_image it calls

    checked, warned = [], []
    real_check = data.check_image
    data.check_image = lambda p: checked.append(p.name) or real_check(p)

    class Collect(logging.Handler):
        def emit(self, record):
            warned.append(record.getMessage())

    logging.getLogger("gan").addHandler(Collect(level=logging.WARNING))
    distributed.init("cpu")
    try:
        dom = data.scan_domain(folder, "data.train_a", distributed.get_rank(), distributed.get_world_size())
        Path(out, f"scan{rank}.json").write_text(json.dumps(
            {"checked": checked, "warned": warned, "paths": [p.name for p in dom.paths]}))
    finally:
        distributed.shutdown()


def test_each_rank_decodes_its_share_and_rank_0_warns(tmp_path):
    import json

    from tests.helpers import write_images

    folder = tmp_path / "imgs"
    write_images(folder, 7)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    mp.spawn(_scan_worker, args=(2, free_port(), str(folder), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"scan{r}.json").read_text()) for r in (0, 1))
    assert sorted(r0["checked"] + r1["checked"]) == sorted(p.name for p in folder.iterdir())
    assert not set(r0["checked"]) & set(r1["checked"]) and len(r0["checked"]) == 4 and len(r1["checked"]) == 4
    assert r0["paths"] == r1["paths"] and len(r0["paths"]) == 7
    assert len(r0["warned"]) == 1 and "broken.png" in r0["warned"][0] and r1["warned"] == []
