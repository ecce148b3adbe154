"""YBR_FULL <-> RGB conversion (fastdicom.pixels._color) against pydicom 3."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastdicom.pixels._color import rgb_to_ybr_full, ybr_full_422_to_rgb, ybr_full_to_rgb

pytest.importorskip("pydicom")
from pydicom.pixels.processing import convert_color_space  # noqa: E402

CONVERSIONS = [
    (ybr_full_to_rgb, "YBR_FULL", "RGB"),
    (ybr_full_422_to_rgb, "YBR_FULL_422", "RGB"),
    (rgb_to_ybr_full, "RGB", "YBR_FULL"),
]


def all_triplets() -> np.ndarray:
    values = np.arange(1 << 24, dtype=np.uint32)
    return np.stack([values >> 16, (values >> 8) & 255, values & 255],
                    axis=-1).astype(np.uint8).reshape(4096, 4096, 3)


@pytest.mark.parametrize("function,current,desired", CONVERSIONS)
@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (256, 256, 3), (4, 32, 48, 3),
                                   (1, 300, 3)])
def test_matches_pydicom(function, current, desired, shape):
    rng = np.random.default_rng(sum(shape))
    arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
    expected = convert_color_space(arr, current, desired)
    ours = function(arr)
    assert ours.dtype == np.uint8 and ours.shape == arr.shape
    np.testing.assert_array_equal(ours, expected)
    assert ours is not arr


@pytest.mark.parametrize("function,current,desired", CONVERSIONS)
def test_extremes_match_pydicom(function, current, desired):
    """Every combination of the channel values that clip or sit at the centre."""
    edges = np.array([0, 1, 2, 126, 127, 128, 129, 130, 253, 254, 255], dtype=np.uint8)
    grid = np.stack(np.meshgrid(edges, edges, edges, indexing="ij"), -1).reshape(-1, 11, 3)
    np.testing.assert_array_equal(function(grid), convert_color_space(grid, current, desired))


@pytest.mark.skipif(os.environ.get("FASTDICOM_SLOW") != "1",
                    reason="exhaustive 2**24 check is slow; set FASTDICOM_SLOW=1")
@pytest.mark.parametrize("function,current,desired", CONVERSIONS[::2])
def test_exhaustive_matches_pydicom(function, current, desired):
    arr = all_triplets()
    np.testing.assert_array_equal(function(arr), convert_color_space(arr, current, desired))


@settings(max_examples=100, deadline=None)
@given(rows=st.integers(1, 20), columns=st.integers(1, 20), seed=st.integers(0, 2**32 - 1),
       conversion=st.sampled_from(CONVERSIONS))
def test_hypothesis_matches_pydicom(rows, columns, seed, conversion):
    function, current, desired = conversion
    arr = np.random.default_rng(seed).integers(0, 256, size=(rows, columns, 3), dtype=np.uint8)
    np.testing.assert_array_equal(function(arr), convert_color_space(arr, current, desired))


@pytest.mark.parametrize("function,current,desired", CONVERSIONS)
def test_in_place(function, current, desired):
    arr = np.random.default_rng(1).integers(0, 256, size=(3, 40, 50, 3), dtype=np.uint8)
    expected = convert_color_space(arr, current, desired)
    result = function(arr, out=arr)
    assert result is arr
    np.testing.assert_array_equal(arr, expected)


@pytest.mark.parametrize("function,current,desired", CONVERSIONS)
def test_out_parameter(function, current, desired):
    arr = np.random.default_rng(2).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    original = arr.copy()
    out = np.empty_like(arr)
    result = function(arr, out=out)
    assert result is out
    np.testing.assert_array_equal(out, convert_color_space(arr, current, desired))
    np.testing.assert_array_equal(arr, original)       # input untouched


def test_non_contiguous_input_and_overlapping_out():
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    view = big[::2, ::3]
    np.testing.assert_array_equal(ybr_full_to_rgb(view),
                                  convert_color_space(np.ascontiguousarray(view), "YBR_FULL", "RGB"))
    # out overlapping the input at a shifted position: the input is read before it is written
    buffer = rng.integers(0, 256, size=(2 * 10 * 3 + 3,), dtype=np.uint8)
    source = buffer[3:].reshape(2, 10, 3)
    expected = convert_color_space(source.copy(), "YBR_FULL", "RGB")
    out = buffer[:-3].reshape(2, 10, 3)
    ybr_full_to_rgb(source, out=out)
    np.testing.assert_array_equal(out, expected)


def test_round_trip_is_close():
    arr = np.random.default_rng(4).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    back = ybr_full_to_rgb(rgb_to_ybr_full(arr))
    assert np.abs(back.astype(int) - arr).max() <= 2


def test_empty_array():
    arr = np.empty((0, 5, 3), dtype=np.uint8)
    assert ybr_full_to_rgb(arr).shape == (0, 5, 3)


@pytest.mark.parametrize("bad", [
    np.zeros((4, 4, 3), dtype=np.uint16),
    np.zeros((4, 4, 3), dtype=np.float32),
    np.zeros((4, 4), dtype=np.uint8),
    np.zeros((4, 4, 4), dtype=np.uint8),
])
def test_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        ybr_full_to_rgb(bad)
    with pytest.raises(ValueError):
        rgb_to_ybr_full(bad)


@pytest.mark.parametrize("out", [
    np.zeros((4, 4, 3), dtype=np.uint16),
    np.zeros((4, 5, 3), dtype=np.uint8),
    np.zeros((4, 8, 3), dtype=np.uint8)[:, ::2],
])
def test_rejects_bad_out(out):
    with pytest.raises(ValueError):
        ybr_full_to_rgb(np.zeros((4, 4, 3), dtype=np.uint8), out=out)


def test_rejects_readonly_out():
    out = np.zeros((4, 4, 3), dtype=np.uint8)
    out.flags.writeable = False
    with pytest.raises(ValueError):
        ybr_full_to_rgb(np.zeros((4, 4, 3), dtype=np.uint8), out=out)


def test_wide_ybr_samples_take_their_offset_from_bits_stored(tmp_path):
    # 16-bit YBR_FULL with BitsStored 12: the chroma offset was 2**15 and the range 16 bits,
    # so a grey pixel (Cb = Cr = 2048) came out [0, 34510, 0] (pydicom converts 8-bit only)
    import fastdicom
    from fastdicom import testing
    ybr = np.array([[[2000, 2048, 2048], [4095, 2048, 2048]],
                    [[1000, 3000, 1500], [0, 0, 4095]]], "<u2")
    p = tmp_path / "ybr16.dcm"
    testing.write_file(p, [
        (0x00080018, "UI", "1.2"), (0x00280002, "US", 3), (0x00280004, "CS", "YBR_FULL"),
        (0x00280006, "US", 0), (0x00280010, "US", 2), (0x00280011, "US", 2),
        (0x00280100, "US", 16), (0x00280101, "US", 12), (0x00280102, "US", 11),
        (0x00280103, "US", 0), (0x7FE00010, "OW", ybr.tobytes())])
    rgb = fastdicom.dcmread(p).pixel_array
    y, cb, cr = (ybr[..., k].astype(float) for k in range(3))
    cb, cr = cb - 2048, cr - 2048       # PS3.3 C.7.6.3.1.2: offset 2**(BitsStored - 1)
    want = np.stack([y + 1.402 * cr, y - 0.114 * 1.772 / 0.587 * cb - 0.299 * 1.402 / 0.587 * cr,
                     y + 1.772 * cb], -1)
    want = np.clip(np.floor(want + 0.5), 0, 4095)
    assert rgb.dtype == np.uint16
    assert np.abs(rgb.astype(float) - want).max() <= 1      # (float32 arithmetic)
    assert rgb[0, 0].tolist() == [2000] * 3 and rgb[0, 1].tolist() == [4095] * 3
