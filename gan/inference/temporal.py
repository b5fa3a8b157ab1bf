"""Temporal smoothing of translated video frames: blend each output with the previous one, moved by the motion.

    smoother = TemporalSmoother(strength=0.7)
    for inp, out in frames:                      # uint8 HWC, in display order, same size
        out = smoother(inp, out)

A generator translates each frame on its own, and its textures do not follow small motions of the input: strokes
appear, vanish and crawl from frame to frame (benchmarks/video.py measures it; the norm statistics modes of
gan.inference.video cannot remove it, because it is not a statistics effect). This follows the usual blind
temporal-consistency recipe (Bonneel et al. 2015; Lai et al. 2018):

    flow      dense optical flow from the current input frame to the previous one (OpenCV's DIS, on grey
              frames; at most FLOW_SIDE pixels on the long side, then scaled up)
    warp      the previous *result* moved to the current frame along that flow
    trust     c = exp(-(e / sigma)^2), e the (slightly blurred) error of the same warp applied to the previous
              *input*: where the motion is explained (static background, camera pan) c is near 1; where it is
              not (occlusions, objects entering, scene cuts, pixels from outside the frame) c is near 0
    blend     result = out + strength * c * (warp(prev_result) - out)

Blending with the previous *result* makes it recursive: each output is an exponentially weighted average along
the motion path, with about 1 / (1 - strength) frames of memory where the motion is trusted. The first frame,
and any frame after a size change, is passed through as it is.
"""

from __future__ import annotations

import numpy as np

FLOW_SIDE = 640  # long side of the frames the flow is computed on (DIS is linear in pixels; flow is smooth)
MEAN_RGB = np.full((1, 3), 1 / 3, np.float32)  # (for cv2.transform: the channel mean)
SIGMA = 20.0  # warp error (8-bit levels) at which trust falls to 1/e: above sensor noise, below real change


class TemporalSmoother:
    def __init__(self, strength: float, sigma: float = SIGMA):
        import cv2

        if not 0 <= strength < 1:
            raise ValueError(f"temporal smoothing strength must be in [0, 1), got {strength}")
        self.strength, self.sigma = strength, sigma
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # grey input, input, result (float)
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        self._prev = None

    def __call__(self, inp: np.ndarray, out: np.ndarray) -> np.ndarray:
        """inp, out: uint8 HxWx3 of the same size (the frame and its translation). Returns the blended output."""
        import cv2

        if self.strength == 0 or inp.shape != out.shape:
            self._prev = None
            return out
        grey = _grey(inp)
        fin, fout = inp.astype(np.float32), out.astype(np.float32)
        if self._prev is None or self._prev[0].shape != grey.shape:
            self._prev = grey, fin, fout
            return out
        prev_grey, prev_in, prev_res = self._prev
        mx, my = self._sample_points(self._flow_to_prev(grey, prev_grey))
        # Pixels whose motion comes from outside the frame get -1 and no trust.
        warped = cv2.remap(prev_res, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(-1, -1, -1))
        moved_in = cv2.remap(prev_in, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = cv2.GaussianBlur(cv2.transform(cv2.absdiff(moved_in, fin), MEAN_RGB), (0, 0), 1.5)
        weight = np.exp(-np.square(err * (1 / self.sigma))) * (warped[..., 0] >= 0) * self.strength
        res = cv2.add(fout, cv2.multiply(cv2.subtract(warped, fout), cv2.merge([weight] * 3)))
        self._prev = grey, fin, res
        return cv2.convertScaleAbs(res)  # rounded and saturated to uint8 (res >= 0: a blend of images)

    def _flow_to_prev(self, grey: np.ndarray, prev_grey: np.ndarray) -> np.ndarray:
        """HxWx2 flow: pixel p of the current frame was at p + flow[p] in the previous one."""
        import cv2

        h, w = grey.shape
        scale = min(1.0, FLOW_SIDE / max(h, w))
        if scale == 1.0:
            return self._flow.calc(grey, prev_grey, None)
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        small = self._flow.calc(cv2.resize(grey, size, interpolation=cv2.INTER_AREA),
                                cv2.resize(prev_grey, size, interpolation=cv2.INTER_AREA), None)
        flow = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= w / size[0]
        flow[..., 1] *= h / size[1]
        return flow

    def _sample_points(self, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = flow.shape[:2]
        if self._grid is None or self._grid[0].shape != (h, w):
            self._grid = tuple(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
        return self._grid[0] + flow[..., 0], self._grid[1] + flow[..., 1]


def _grey(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
