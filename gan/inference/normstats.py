"""Where each norm layer takes its statistics from at inference.

Instance normalisation divides every feature map by its mean and standard deviation over one image. At
inference "one image" is a choice, and the right one depends on the input:

    own        each input its own statistics: what training did; a video translated frame by frame
    fixed      statistics given from outside: the whole image while it is computed in bands (gan.inference.tiling),
               a whole clip (gan.inference.video)
    pooled     the pooled statistics of every input seen so far, each normalised with the estimate that
               includes it (gathering a clip's statistics from some of its frames)
    running    an exponential moving average over the inputs seen so far: follows slow changes (video)

Statistics are kept per channel as (count, mean, sum of squared deviations) in float64 and pooled with Chan et
al.'s formula, so estimates from different inputs, tiles or bands combine exactly into those of their union.
Measuring and applying them use PyTorch's fused batch-norm kernels (one pass over the activation, in its own
dtype, statistics in float32): the band runner applies them to whole-image-sized activations many times.

The norm layers are the net's `InstanceNorm2d` modules without running statistics (the generators' norms, and
AdaIN's content normalisation), in forward order (module order, which is forward order for every net here).
`NormStats(net)` holds one entry per layer; `with stats.applied(net, mode):` makes the net's forward take its
statistics from there (forward hooks, removed on exit). gan.inference.tiling uses `accumulate` / `freeze` / `normalize`
directly on bands; the hooks are for whole forwards (video frames).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("own", "fixed", "pooled", "running")


def norm_layers(net: nn.Module) -> list[nn.InstanceNorm2d]:
    """The layers whose statistics come from their input: InstanceNorm2d without running statistics."""
    if not isinstance(net, nn.Module):
        return []
    return [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d) and not m.track_running_stats]


def moments(x: torch.Tensor, per_sample: bool = False) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-channel (mean, biased var) over positions (and the batch, unless per_sample: then (N, C) each),
    in float64, and the count of values behind each."""
    x = x.detach()
    n, c = x.shape[:2]
    flat = x.reshape(1, n * c, *x.shape[2:]) if per_sample and n > 1 else x
    ch = flat.shape[1]
    ones = torch.ones(ch, device=x.device)  # float weights: the mixed-precision kernel, float32 statistics
    _, mean, invstd = torch.native_batch_norm(flat, ones, torch.zeros_like(ones), None, None, True, 0.0, 1e-30)
    var = (1.0 / invstd.double().square() - 1e-30).clamp_min(0)
    mean = mean.double()
    count = float(x.shape[2] * x.shape[3] * (1 if per_sample else n))
    if per_sample and n > 1:
        return mean.view(n, c), var.view(n, c), count
    return (mean.view(1, c), var.view(1, c), count) if per_sample else (mean, var, count)


def _pool(a: tuple | None, b: tuple) -> tuple:
    """Chan et al.: (count, mean, M2) of the union of two sets from theirs."""
    if a is None:
        return b
    na, ma, sa = a
    nb, mb, sb = b
    n = na + nb
    d = mb - ma
    return n, ma + d * (nb / n), sa + sb + d * d * (na * nb / n)


class NormStats:
    """One statistics slot per norm layer of `net`: an accumulator (sums over everything added) and the
    statistics in use (mean, var), plus the running estimate of `running` mode.

    `momentum` (running mode): new estimate = momentum * old + (1 - momentum) * this input's."""

    def __init__(self, net: nn.Module, momentum: float = 0.9):
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.layers = norm_layers(net)
        self.momentum = momentum
        self.reset()

    def __len__(self) -> int:
        return len(self.layers)

    def reset(self) -> None:
        n = len(self.layers)
        self._acc: list[tuple | None] = [None] * n  # (count, mean, M2) per channel, float64
        self.fixed: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n  # (mean, var) (C,) float64
        self.running: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n  # (mean, E[x^2])

    # ---------------------------------------------------------------------------- pooled accumulation

    def accumulate(self, i: int, x: torch.Tensor) -> None:
        """Add every position of x (N, C, H, W) to layer i's pool."""
        mean, var, n = moments(x)
        self._acc[i] = _pool(self._acc[i], (n, mean, var * n))

    def pooled(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer i's pooled (mean, var) so far."""
        n, mean, m2 = self._acc[i]
        return mean, m2 / n

    def freeze(self, i: int) -> None:
        """From now on layer i uses its pooled statistics (fixed mode, and `normalize`)."""
        if self._acc[i] is None:
            raise RuntimeError(f"norm layer {i}: nothing accumulated")
        self.fixed[i] = self.pooled(i)

    def freeze_all(self) -> None:
        for i in range(len(self.layers)):
            self.freeze(i)

    # ------------------------------------------------------------------------------- normalisation

    def normalize(self, i: int, x: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None = None
                  ) -> torch.Tensor:
        """(x - mean) / sqrt(var + eps) with layer i's fixed statistics, or `stats` = (mean, var) of shape (C,)
        (all samples) or (N, C) (one per sample); one fused pass, in x's dtype."""
        mean, var = stats if stats is not None else self.fixed[i]
        eps = self.layers[i].eps
        mean, var = mean.float().to(x.device), var.float().to(x.device)
        if mean.dim() == 2 and x.shape[0] > 1:  # per-sample statistics: samples x channels as channels
            n, c = x.shape[:2]
            y = F.batch_norm(x.reshape(1, n * c, *x.shape[2:]), mean.reshape(-1), var.reshape(-1), None, None,
                             False, 0.0, eps)
            return y.view_as(x)
        return F.batch_norm(x, mean.reshape(-1), var.reshape(-1), None, None, False, 0.0, eps)

    def _per_sample(self, i: int, x: torch.Tensor, mode: str) -> torch.Tensor:
        """pooled / running: the samples of a batch are taken in order, each normalised with the estimate that
        includes it (the same result as one sample at a time)."""
        mean, var, count = moments(x, per_sample=True)
        used_mean, used_var = torch.empty_like(mean), torch.empty_like(var)
        for k in range(x.shape[0]):
            if mode == "pooled":
                self._acc[i] = _pool(self._acc[i], (count, mean[k], var[k] * count))
                used_mean[k], used_var[k] = self.pooled(i)
            else:  # running: moving averages of the mean and of E[x^2]
                sq = var[k] + mean[k] * mean[k]
                prev = self.running[i]
                m = self.momentum
                now = (mean[k], sq) if prev is None else (m * prev[0] + (1 - m) * mean[k], m * prev[1] + (1 - m) * sq)
                self.running[i] = now
                used_mean[k], used_var[k] = now[0], (now[1] - now[0] * now[0]).clamp_min(0)
        return self.normalize(i, x, (used_mean, used_var))

    @contextlib.contextmanager
    def applied(self, mode: str):
        """Within the block, the norm layers' forward takes its statistics from here, by `mode` (see the
        module docstring). "own" changes nothing."""
        if mode not in MODES:
            raise ValueError(f"unknown statistics mode {mode!r} (known: {', '.join(MODES)})")
        if mode == "fixed" and any(f is None for f in self.fixed):
            raise RuntimeError("fixed statistics requested before every layer has them")
        handles = []
        if mode != "own":
            for i, layer in enumerate(self.layers):
                handles.append(layer.register_forward_hook(self._hook(i, mode)))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def _hook(self, i: int, mode: str):
        def hook(module, inputs, output):
            x = inputs[0]
            if mode == "fixed":
                return self.normalize(i, x)
            return self._per_sample(i, x, mode)

        return hook
