"""Temporal smoothing along the motion (gan.inference.temporal): what it removes, what it must leave alone."""

import numpy as np
import pytest

from gan.inference.temporal import TemporalSmoother


def scene(h=64, w=96, seed=0) -> np.ndarray:
    """A smooth random picture, larger than a frame (a camera pans over it)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 6, w // 6, 3), dtype=np.uint8)
    return cv2.resize(small, (w * 2, h), interpolation=cv2.INTER_CUBIC)


def pan(n=12, h=64, w=96, step=2, shimmer=12.0, seed=0):
    """Input frames of a camera moving `step` px to the right per frame, and "translations" of them: the frame
    darkened, plus independent per-frame noise of std `shimmer` (the strokes that crawl from frame to frame)."""
    world = scene(h, w, seed)
    rng = np.random.default_rng(seed + 1)
    ins, outs, clean = [], [], []
    for t in range(n):
        img = world[:, t * step: t * step + w]
        ins.append(np.ascontiguousarray(img))
        clean.append(img.astype(np.float32) * 0.7)
        outs.append(np.clip(clean[-1] + rng.normal(0, shimmer, img.shape), 0, 255).round().astype(np.uint8))
    return ins, outs, clean


def flicker(frames, step=2, margin=8) -> float:
    """Mean |frame[t+1] moved back by the camera - frame[t]|, away from the borders."""
    f = [x.astype(np.float32) for x in frames]
    return float(np.mean([np.abs(f[t + 1][:, margin: -margin - step] - f[t][:, margin + step: -margin]).mean()
                          for t in range(len(f) - 1)]))


def test_smoothing_removes_shimmer_along_the_motion():
    ins, outs, clean = pan()
    smoother = TemporalSmoother(0.7)
    res = [smoother(i, o) for i, o in zip(ins, outs)]
    assert res[0] is outs[0]  # the first frame has no past: passed through
    assert flicker(res) < 0.5 * flicker(outs)
    # ... by averaging along the motion, not by blurring or ghosting: closer to the clean translation.
    err_raw = np.mean([np.abs(o.astype(np.float32) - c)[:, 8:-8].mean() for o, c in zip(outs[4:], clean[4:])])
    err_smooth = np.mean([np.abs(r.astype(np.float32) - c)[:, 8:-8].mean() for r, c in zip(res[4:], clean[4:])])
    assert err_smooth < 0.75 * err_raw
    # Stronger smoothing, steadier output.
    strong = TemporalSmoother(0.9)
    assert flicker([strong(i, o) for i, o in zip(ins, outs)]) < flicker(res)


def test_what_the_motion_does_not_explain_is_left_as_translated():
    ins, outs, _ = pan(n=6)
    other_in, other_out, _ = pan(n=1, seed=7)  # a scene cut: nothing of the previous frame is in this one
    smoother = TemporalSmoother(0.7)
    for i, o in zip(ins, outs):
        smoother(i, o)
    cut = smoother(other_in[0], other_out[0])
    assert np.abs(cut.astype(np.float32) - other_out[0]).mean() < 1.0
    # An object appearing on a static background: the background is smoothed, the object is not.
    bg_in, bg_out = ins[0], outs[0]
    smoother = TemporalSmoother(0.7)
    smoother(bg_in, bg_out)
    obj_in = bg_in.copy()
    obj_in[20:40, 30:60] = (250, 250, 30)
    obj_out = np.clip(outs[1].astype(np.int16) + 0, 0, 255).astype(np.uint8)
    obj_out[20:40, 30:60] = (40, 40, 200)
    res = smoother(obj_in, obj_out).astype(np.float32)
    inside = np.abs(res[24:36, 34:56] - obj_out[24:36, 34:56]).mean()
    background = np.abs(res[45:, :] - obj_out[45:, :].astype(np.float32)).mean()
    assert inside < 1.0 and background > 3.0


def test_off_first_frames_and_size_changes_pass_through():
    ins, outs, _ = pan(n=3)
    off = TemporalSmoother(0.0)
    assert all(off(i, o) is o for i, o in zip(ins, outs))
    smoother = TemporalSmoother(0.7)
    smoother(ins[0], outs[0])
    small_in, small_out = ins[1][:32, :48].copy(), outs[1][:32, :48].copy()
    assert smoother(small_in, small_out) is small_out  # a new size starts over
    assert smoother(ins[2][:, :, ::-1].copy()[:10], outs[2]) is outs[2]  # input and output sizes differ
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\)"):
        TemporalSmoother(1.0)


def test_big_frames_take_the_flow_at_reduced_size():
    from gan.inference import temporal

    ins, outs, _ = pan(n=4, h=96, w=128, step=4)
    full = TemporalSmoother(0.7)
    r_full = [full(i, o) for i, o in zip(ins, outs)]
    old = temporal.FLOW_SIDE
    try:
        temporal.FLOW_SIDE = 64  # the flow computed at half size and scaled back up
        half = TemporalSmoother(0.7)
        r_half = [half(i, o) for i, o in zip(ins, outs)]
    finally:
        temporal.FLOW_SIDE = old
    assert flicker(r_half, step=4) < 0.7 * flicker(outs, step=4)
    assert np.abs(r_half[-1].astype(np.float32) - r_full[-1]).mean() < 4.0


def test_pixels_whose_motion_comes_from_outside_the_frame_are_not_blended(monkeypatch):
    flat_in = np.full((32, 48, 3), 120, np.uint8)  # the input explains any motion here (no warp error)
    out0, out1 = np.full_like(flat_in, 200), np.full_like(flat_in, 100)
    smoother = TemporalSmoother(0.7)
    # Every pixel was 6 px to its right in the previous frame: the 6 rightmost columns come from outside.
    monkeypatch.setattr(smoother, "_flow_to_prev", lambda g, p: np.full(g.shape + (2,), (6.0, 0.0), np.float32))
    smoother(flat_in, out0)
    res = smoother(flat_in, out1).astype(np.float32)
    assert np.allclose(res[:, :40], 100 + 0.7 * (200 - 100), atol=1)  # blended with the moved previous result
    assert np.allclose(res[:, 43:], 100, atol=1)  # from outside: as translated


def test_trust_comes_from_the_inputs_not_the_outputs():
    """A still input whose translation flickers is exactly what smoothing is for: the input explains the
    (absent) motion perfectly, so the previous result is trusted fully however much the outputs differ. A trust
    computed from the outputs would see a large error and blend nothing."""
    rng = np.random.default_rng(0)
    still = np.ascontiguousarray(np.repeat(np.repeat(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), 4, 0), 4, 1))
    smoother = TemporalSmoother(0.7)
    first = np.full_like(still, 50)
    assert np.array_equal(smoother(still, first), first)
    second = smoother(still, np.full_like(still, 200))
    assert np.abs(second.astype(float) - (200 + 0.7 * (50 - 200))).max() <= 2  # 95: the blend, everywhere
