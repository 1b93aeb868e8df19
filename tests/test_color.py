import numpy as np
import pytest

from vcm.video.color import rgb_to_yuv420, yuv420_to_rgb
from tests.conftest import moving_frames


def test_known_values_bt601_limited():
    rgb = np.zeros((1, 3, 2, 2), np.uint8)
    rgb[..., 0, :] = 255  # top row white, bottom row black
    y, u, v = rgb_to_yuv420(rgb)
    assert y[0, 0].tolist() == [235, 235] and y[0, 1].tolist() == [16, 16]
    assert u.item() == 128 and v.item() == 128
    red = np.zeros((1, 3, 2, 2), np.uint8)
    red[:, 0] = 255
    y, u, v = rgb_to_yuv420(red)
    assert y.flat[0] == 81 and u.item() == 90 and v.item() == 240  # BT.601 limited-range red


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_yuv_rgb_yuv_round_trip_is_near_identity(bit_depth):
    rng = np.random.default_rng(1)
    scale = 1 << (bit_depth - 8)
    h, w = 8, 10
    y = rng.integers(60 * scale, 180 * scale, (2, h, w))
    u = rng.integers(110 * scale, 150 * scale, (2, h // 2, w // 2))
    v = rng.integers(110 * scale, 150 * scale, (2, h // 2, w // 2))
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    y, u, v = y.astype(dtype), u.astype(dtype), v.astype(dtype)
    y2, u2, v2 = rgb_to_yuv420(yuv420_to_rgb(y, u, v, bit_depth), bit_depth)
    # 8-bit RGB in the middle: the only loss is RGB rounding (≤ ~1 code value at 8 bit).
    tol = 1 * scale + (scale // 2)
    assert np.abs(y2.astype(int) - y).max() <= tol + scale
    assert np.abs(u2.astype(int) - u).max() <= tol + scale
    assert np.abs(v2.astype(int) - v).max() <= tol + scale


def test_rgb_round_trip_error_on_natural_content(carphone):
    from vcm.video import open_video

    frames = open_video(carphone, "0:4").frames_u8  # decoded from a 4:2:0 source: exact chroma fits
    back = yuv420_to_rgb(*rgb_to_yuv420(frames))
    err = np.abs(back.astype(int) - frames)
    assert err.mean() < 0.5 and np.percentile(err, 99) <= 2
    odd = moving_frames(t=2, h=33, w=45, noise=0)  # odd sizes exercise the chroma padding
    assert yuv420_to_rgb(*rgb_to_yuv420(odd)).shape == odd.shape


def test_odd_sizes_give_ceil_chroma():
    frames = moving_frames(t=1, h=7, w=9)
    y, u, v = rgb_to_yuv420(frames)
    assert y.shape == (1, 7, 9) and u.shape == (1, 4, 5) and v.shape == (1, 4, 5)


@pytest.mark.parametrize("bit_depth, size", [(8, (7, 9)), (10, (24, 32))])
def test_a_clip_converted_a_few_frames_at_a_time_is_the_clip_converted_at_once(monkeypatch, bit_depth, size):
    """Converting a whole clip at once held about 26 bytes a pixel of float maps (over 6 GB for BQMall's 600 frames);
    it now goes a few frames at a time, to the same bytes."""
    import vcm.video.color as color

    h, w = size
    rng = np.random.default_rng(bit_depth)
    top = 1 << bit_depth
    y = rng.integers(0, top, (11, h, w)).astype(np.uint16 if bit_depth > 8 else np.uint8)
    u, v = (rng.integers(0, top, (11, (h + 1) // 2, (w + 1) // 2)).astype(y.dtype) for _ in range(2))
    whole = yuv420_to_rgb(y, u, v, bit_depth)
    chunks = []
    monkeypatch.setattr(color, "CHUNK_PIXELS", 3 * h * w)  # three frames at a time, the last chunk two
    monkeypatch.setattr(color, "_yuv420_to_rgb", lambda y, *a, real=color._yuv420_to_rgb: chunks.append(len(y))
                        or real(y, *a))
    assert np.array_equal(yuv420_to_rgb(y, u, v, bit_depth), whole) and whole.shape == (11, 3, h, w)
    assert chunks == [3, 3, 3, 2]
