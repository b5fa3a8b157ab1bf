"""Test helpers: tiny configs and generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# A subprocess that has not finished after this long has hung: a hang guard only, never a speed requirement (a busy
# 2-core host runs the suite 5-30x slower than a quiet one, and no test may fail for that).
HANG_GUARD = 3600

# What the trainer says early about the whole run's length (`_RunEstimate`): "about 42 s", "10 min", "1.6 h", "3.0 days".
ESTIMATE = r"about \d+(\.\d)? (s|min|h|days)"

TINY = [
    "model.generator.ngf=4", "model.generator.n_blocks=1", "model.discriminator.ndf=4",
    "model.discriminator.n_layers=2", "data.preprocess=resize_and_crop", "data.load_size=36",
    "data.crop_size=32", "data.num_workers=0", "train.log_every=2", "train.sample_every=4",
    "train.save_every=4", "train.pool_size=4", "tracking.wandb.mode=disabled", "train.device=cpu",
]


def write_images(folder: Path, n: int, size=(40, 48), seed: int = 0, prefix: str = "img") -> list[Path]:
    """n random smooth RGB images (h, w) = size as PNG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, (size[0] // 8 + 1, size[1] // 8 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size[1], size[0]), Image.BILINEAR)
        p = folder / f"{prefix}_{i:03d}.png"
        img.save(p)
        paths.append(p)
    return paths


class LocalServer:
    """An HTTP server on 127.0.0.1 (a free port) in a daemon thread, answering with `handler` (a
    BaseHTTPRequestHandler class): what the network tests talk to instead of the internet."""

    def __init__(self, handler):
        import threading
        from http.server import ThreadingHTTPServer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def in_bands(net, image, opts=None, **kw):
    """net(image) computed by the band runner (gan.inference.tiling.BandPlan) in fp32 on the CPU; `kw`: the run's
    progress, cache and out."""
    import torch

    from gan.inference.tiling import BandOptions, BandPlan
    from gan.runtime import Precision

    return BandPlan(net).run(image, opts or BandOptions(), Precision("fp32", "cpu"), torch.device("cpu"), **kw)
