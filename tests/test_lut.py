"""fastdicom.pixels.lut against pydicom 3's pixel processing functions (the oracle)."""
from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.pixels import processing as oracle  # noqa: E402
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian  # noqa: E402

from fastdicom.errors import PixelDataError  # noqa: E402
from fastdicom.pixels import lut  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "corpus"
# pydicom's SIGMOID overflows np.exp for far-away values (we silence ours)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
HYPOTHESIS = settings(max_examples=60, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])


def assert_same(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def image(bits_stored=12, signed=False, photometric="MONOCHROME2", big_endian=False):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian if big_endian else ExplicitVRLittleEndian
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = 16 if bits_stored > 8 else 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    return ds


def stored_values(rng, shape, bits_stored, signed):
    dtype = f"{'i' if signed else 'u'}{2 if bits_stored > 8 else 1}"
    low, high = (-(1 << (bits_stored - 1)), 1 << (bits_stored - 1)) if signed \
        else (0, 1 << bits_stored)
    return rng.integers(low, high, size=shape).astype(dtype)


def lut_item(descriptor, entries, as_bytes, big_endian=False):
    item = Dataset()
    item.add_new("LUTDescriptor", "SS" if descriptor[1] < 0 else "US", list(descriptor))
    if as_bytes:
        fmt = ">" if big_endian else "<"
        item.add_new("LUTData", "OW", struct.pack(f"{fmt}{len(entries)}H", *entries))
    else:
        item.add_new("LUTData", "US", list(entries))
    return item


# ---------------------------------------------------------------------------------------------
# modality LUT / rescale

@HYPOTHESIS
@given(seed=st.integers(0, 2**32 - 1), bits=st.sampled_from([8, 10, 12, 16]),
       signed=st.booleans(),
       slope=st.floats(-4, 4, allow_nan=False).filter(lambda s: s != 0),
       intercept=st.floats(-2048, 2048, allow_nan=False))
def test_rescale_matches_pydicom(seed, bits, signed, slope, intercept):
    rng = np.random.default_rng(seed)
    ds = image(bits, signed)
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    arr = stored_values(rng, (7, 9), bits, signed)
    assert_same(lut.apply_modality_lut(arr, ds), oracle.apply_modality_lut(arr, ds))


def test_no_modality_transform_returns_input():
    ds = image()
    arr = np.arange(10, dtype="u2")
    assert lut.apply_modality_lut(arr, ds) is arr


@HYPOTHESIS
@given(seed=st.integers(0, 2**32 - 1), signed=st.booleans(), depth=st.sampled_from([8, 16]),
       nr_entries=st.integers(2, 600), first_map=st.integers(-300, 300),
       as_bytes=st.booleans())
def test_modality_lut_matches_pydicom(seed, signed, depth, nr_entries, first_map, as_bytes):
    if not signed:
        first_map = abs(first_map)   # pydicom overflows on unsigned data with a negative one
    rng = np.random.default_rng(seed)
    ds = image(12, signed)
    entries = rng.integers(0, 1 << depth, size=nr_entries).tolist()
    ds.ModalityLUTSequence = [lut_item([nr_entries, first_map, depth], entries,
                                       as_bytes=as_bytes)]
    arr = stored_values(rng, (5, 11), 12, signed)
    # make sure values below, inside and past the LUT occur
    arr.flat[:3] = np.clip([first_map - 1, first_map, first_map + nr_entries + 5],
                           np.iinfo(arr.dtype).min, np.iinfo(arr.dtype).max)
    assert_same(lut.apply_modality_lut(arr, ds), oracle.apply_modality_lut(arr, ds))


def test_modality_lut_single_entry():
    """pydicom fails here (a one-value US LUT Data decodes to a scalar); we map everything."""
    ds = image(12, False)
    ds.ModalityLUTSequence = [lut_item([1, 0, 16], [77], as_bytes=False)]
    out = lut.apply_modality_lut(np.array([0, 5, 4095], dtype="u2"), ds)
    assert out.dtype == np.uint16 and out.tolist() == [77, 77, 77]


def test_modality_lut_65536_entries_and_clamping():
    ds = image(16, False)
    entries = (np.arange(65536) // 2).tolist()
    ds.ModalityLUTSequence = [lut_item([0, 0, 16], entries, as_bytes=True)]
    arr = np.array([0, 1, 65535, 4000], dtype="u2")
    assert_same(lut.apply_modality_lut(arr, ds), oracle.apply_modality_lut(arr, ds))


@pytest.mark.parametrize("depth", [7, 17, 65535])
def test_window_over_a_modality_lut_of_unusable_depth_raises_pixel_data_error(depth):
    """The window's output range is the Modality LUT's (2**depth - 1): an impossible depth
    was an OverflowError there (2**65535 as a float), and 17 bits passed unchecked."""
    ds = image(12, False)
    ds.ModalityLUTSequence = [lut_item([4, 0, depth], [1, 2, 3, 4], as_bytes=False)]
    ds.WindowCenter, ds.WindowWidth = 2, 2
    arr = np.array([[0, 1], [2, 3]], dtype=np.float64)
    for apply in (lut.apply_windowing, lut.apply_voi_lut, lut.apply_modality_lut):
        with pytest.raises(PixelDataError, match=f"entries of {depth} bits") as info:
            apply(arr, ds)
        assert info.value.tag == 0x00283002


def test_modality_lut_first_map_decoded_unsigned_is_read_signed():
    ds = image(12, True)
    ds.ModalityLUTSequence = [lut_item([4, 0, 8], [10, 20, 30, 40], as_bytes=False)]
    ds.ModalityLUTSequence[0].LUTDescriptor = [4, 0xFFFE, 8]   # -2 decoded as US
    arr = np.array([-3, -2, -1, 0, 1, 2], dtype="i2")
    assert lut.apply_modality_lut(arr, ds).tolist() == [10, 10, 20, 30, 40, 40]


def test_modality_lut_short_data_raises():
    ds = image(12, False)
    ds.ModalityLUTSequence = [lut_item([8, 0, 16], [1, 2, 3], as_bytes=True)]
    with pytest.raises(PixelDataError):
        lut.apply_modality_lut(np.zeros(4, "u2"), ds)


# ---------------------------------------------------------------------------------------------
# windowing

WINDOW_FUNCTIONS = [None, "LINEAR", "LINEAR_EXACT", "SIGMOID"]


@HYPOTHESIS
@given(seed=st.integers(0, 2**32 - 1), bits=st.sampled_from([8, 12, 16]),
       signed=st.booleans(), function=st.sampled_from(WINDOW_FUNCTIONS),
       centers=st.lists(st.floats(-3000, 3000, allow_nan=False), min_size=1, max_size=3),
       width_seed=st.lists(st.floats(1, 5000, allow_nan=False), min_size=3, max_size=3),
       index=st.integers(0, 2), rescale=st.booleans(), mono1=st.booleans(),
       modality_lut=st.booleans())
def test_windowing_matches_pydicom(seed, bits, signed, function, centers, width_seed, index,
                                   rescale, mono1, modality_lut):
    rng = np.random.default_rng(seed)
    ds = image(bits, signed, "MONOCHROME1" if mono1 else "MONOCHROME2")
    widths = width_seed[:len(centers)]
    ds.WindowCenter = centers if len(centers) > 1 else centers[0]
    ds.WindowWidth = widths if len(widths) > 1 else widths[0]
    if function is not None:
        ds.VOILUTFunction = function
    if rescale:
        ds.RescaleSlope = 0.5
        ds.RescaleIntercept = -1024
    if modality_lut:
        ds.ModalityLUTSequence = [lut_item([256, 0, 16], list(range(0, 512, 2)), False)]
    index = min(index, len(centers) - 1)
    arr = stored_values(rng, (6, 8), bits, signed)
    values = oracle.apply_modality_lut(arr, ds)
    ours = lut.apply_windowing(values, ds, index)
    assert_same(ours, oracle.apply_windowing(values, ds, index))
    assert_same(lut.apply_voi_lut(values, ds, index), oracle.apply_voi_lut(values, ds, index))


@pytest.mark.parametrize("function,width", [("LINEAR", 0.5), ("LINEAR_EXACT", 0),
                                            ("SIGMOID", -1), ("CUBIC", 10)])
def test_bad_window_raises_value_error(function, width):
    ds = image()
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 100, width, function
    arr = np.arange(10, dtype="u2")
    with pytest.raises(ValueError):
        oracle.apply_windowing(arr, ds)
    with pytest.raises(PixelDataError):
        lut.apply_windowing(arr, ds)


def test_windowing_needs_monochrome():
    ds = image(photometric="RGB")
    ds.WindowCenter, ds.WindowWidth = 100, 50
    with pytest.raises(PixelDataError):
        lut.apply_windowing(np.zeros(3, "u2"), ds)


def test_empty_window_is_absent():
    ds = image()
    ds.WindowCenter = None
    ds.WindowWidth = None
    arr = np.arange(10, dtype="u2")
    assert lut.apply_windowing(arr, ds) is arr
    assert lut.apply_voi_lut(arr, ds) is arr
    assert oracle.apply_voi_lut(arr, ds) is arr


# ---------------------------------------------------------------------------------------------
# VOI LUT sequence

@HYPOTHESIS
@given(seed=st.integers(0, 2**32 - 1), depth=st.sampled_from([8, 10, 12, 16]),
       nr_entries=st.integers(2, 4096), first_map=st.integers(-200, 200),
       as_bytes=st.booleans(), signed=st.booleans(), n_items=st.integers(1, 3),
       prefer_lut=st.booleans(), with_window=st.booleans(), data=st.data())
def test_voi_lut_matches_pydicom(seed, depth, nr_entries, first_map, as_bytes, signed,
                                 n_items, prefer_lut, with_window, data):
    if not signed:
        first_map = abs(first_map)
    if depth == 8:
        # pydicom keeps 8-bit-LUT indices in uint8 (wrapping past 255): stay inside that
        nr_entries = min(nr_entries, 256 + min(first_map, 0))
    rng = np.random.default_rng(seed)
    ds = image(12, signed)
    items = []
    for _ in range(n_items):
        entries = rng.integers(0, 1 << depth, size=nr_entries).tolist()
        items.append(lut_item([nr_entries, first_map, depth], entries, as_bytes))
    ds.VOILUTSequence = items
    if with_window:
        ds.WindowCenter, ds.WindowWidth = 300.0, 600.0
    index = data.draw(st.integers(0, n_items - 1))
    arr = stored_values(rng, (9, 5), 12, signed)
    if depth == 8:
        arr = np.clip(arr, None, first_map + 255).astype(arr.dtype)
    arr.flat[:2] = [max(first_map - 1, np.iinfo(arr.dtype).min), first_map]
    assert_same(lut.apply_voi(arr, ds, index), oracle.apply_voi(arr, ds, index))
    assert_same(lut.apply_voi_lut(arr, ds, index, prefer_lut),
                oracle.apply_voi_lut(arr, ds, index, prefer_lut))


def test_voi_lut_8bit_entries_clamp_instead_of_wrapping():
    """Deliberate divergence: pydicom wraps index 300 to 44 for an 8-bit-entry LUT."""
    ds = image(12, False)
    entries = [min(255, i // 16) for i in range(4096)]
    ds.VOILUTSequence = [lut_item([1024, 0, 8], entries[:1024], as_bytes=False)]
    arr = np.array([0, 300, 1023, 4000], dtype="u2")
    ours = lut.apply_voi(arr, ds)
    assert ours.dtype == np.uint8
    assert ours.tolist() == [0, 300 // 16, 1023 // 16, 1023 // 16]
    assert oracle.apply_voi(arr, ds).tolist()[1] == 44 // 16   # the wrap we do not copy


def test_voi_lut_float_input_and_unsupported_depth():
    ds = image(12, False)
    ds.VOILUTSequence = [lut_item([16, 0, 16], list(range(0, 160, 10)), False)]
    arr = np.array([0.0, 1.7, 2.2, 15.9, 40.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same(lut.apply_voi(arr, ds), oracle.apply_voi(arr, ds))
    ds.VOILUTSequence[0].LUTDescriptor = [16, 0, 9]
    with pytest.raises(NotImplementedError):
        lut.apply_voi(arr.astype("u2"), ds)


def test_voi_lut_short_bytes_raise():
    ds = image(12, False)
    ds.VOILUTSequence = [lut_item([100, 0, 16], list(range(10)), as_bytes=True)]
    with pytest.raises(PixelDataError):
        lut.apply_voi(np.zeros(3, "u2"), ds)


# ---------------------------------------------------------------------------------------------
# palette colour

def palette_image(nr_entries, first_map, depth, channels, segmented=False, big_endian=False,
                  bits=8, entry_bytes=None):
    ds = image(bits, False, "PALETTE COLOR", big_endian)
    fmt = ">" if big_endian else "<"
    for name, values in zip(("Red", "Green", "Blue", "Alpha"), channels):
        ds.add_new(f"{name}PaletteColorLookupTableDescriptor" if name != "Alpha" else
                   "AlphaPaletteColorLookupTableDescriptor", "US",
                   [nr_entries & 0xFFFF, first_map, depth])
        size = entry_bytes or (1 if depth == 8 else 2)
        code = "B" if size == 1 else "H"
        raw = struct.pack(f"{fmt}{len(values)}{code}", *values)
        if segmented:
            ds.add_new(f"Segmented{name}PaletteColorLookupTableData", "OW", raw)
        else:
            ds.add_new(f"{name}PaletteColorLookupTableData", "OW", raw)
    return ds


@HYPOTHESIS
@given(seed=st.integers(0, 2**32 - 1), depth=st.sampled_from([8, 16]),
       nr_entries=st.integers(2, 512), first_map=st.integers(0, 40), alpha=st.booleans(),
       big_endian=st.booleans())
def test_palette_matches_pydicom(seed, depth, nr_entries, first_map, alpha, big_endian):
    if depth == 8:
        nr_entries = min(nr_entries, 256) & ~1   # 8-bit entries: even count, indices < 256
        nr_entries = max(nr_entries, 2)
    rng = np.random.default_rng(seed)
    channels = [rng.integers(0, 1 << depth, size=nr_entries).tolist()
                for _ in range(4 if alpha else 3)]
    ds = palette_image(nr_entries, first_map, depth, channels, big_endian=big_endian)
    arr = rng.integers(0, 256 if depth == 8 else 700, size=(4, 6)).astype(
        "u1" if depth == 8 else "u2")
    ours = lut.apply_color_lut(arr, ds)
    expected = np.stack([np.asarray(c)[np.clip(arr.astype(int) - first_map, 0,
                                               nr_entries - 1)] for c in channels], -1)
    np.testing.assert_array_equal(ours, expected)
    assert ours.dtype == np.dtype(f"uint{depth}")
    if not big_endian or depth == 8:   # pydicom reads palette words in native order
        assert_same(ours, oracle.apply_color_lut(arr, ds))


def test_palette_8bit_in_16bit_words_matches_pydicom():
    ds = palette_image(256, 0, 8, [list(range(256))] * 3, entry_bytes=2)
    arr = np.arange(256, dtype="u1").reshape(16, 16)
    assert_same(lut.apply_color_lut(arr, ds), oracle.apply_color_lut(arr, ds))


def test_palette_indices_out_of_range_clamp():
    ds = palette_image(16, 4, 16, [list(range(100, 116))] * 3)
    arr = np.array([0, 3, 4, 19, 20, 65535], dtype="u2")
    ours = lut.apply_color_lut(arr, ds)
    assert ours[..., 0].tolist() == [100, 100, 100, 115, 115, 115]
    assert_same(ours, oracle.apply_color_lut(arr, ds))


def test_palette_8bit_entries_clamp_instead_of_wrapping():
    """Deliberate divergence: pydicom wraps index 300 to 44 for 8-bit palette entries."""
    ds = palette_image(512, 0, 8, [[i // 2 for i in range(512)]] * 3)
    arr = np.array([10, 300, 600], dtype="u2")
    assert lut.apply_color_lut(arr, ds)[:, 0].tolist() == [5, 150, 255]
    assert oracle.apply_color_lut(arr, ds)[:, 0].tolist() == [5, 22, 44]


def test_palette_inconsistent_length_raises():
    ds = palette_image(16, 0, 16, [list(range(16))] * 3)
    ds.RedPaletteColorLookupTableData = ds.RedPaletteColorLookupTableData[:20]
    with pytest.raises(PixelDataError):
        lut.apply_color_lut(np.zeros(4, "u1"), ds)
    with pytest.raises((ValueError, TypeError)):   # pydicom: TypeError 'uint10'
        oracle.apply_color_lut(np.zeros(4, "u1"), ds)


def test_palette_requires_module():
    with pytest.raises(PixelDataError):
        lut.apply_color_lut(np.zeros(4, "u1"), image())
    with pytest.raises(ValueError):
        lut.apply_color_lut(np.zeros(4, "u1"))


def segments(rng, depth, nr_segments, little_endian=True):
    """Random segmented LUT words using discrete, linear and indirect segments.

    Indirect segments copy one or two earlier consecutive non-indirect segments.
    """
    top = (1 << depth) - 1
    words = [0, 3] + rng.integers(1, top, size=3).tolist()   # opening discrete segment
    layout = [(0, "discrete")]          # (word offset, kind) of each segment
    for _ in range(nr_segments):
        kind = str(rng.choice(["discrete", "linear", "indirect"]))
        start = len(words)
        if kind == "discrete":
            n = int(rng.integers(1, 6))
            words += [0, n] + rng.integers(1, top, size=n).tolist()
        elif kind == "linear":
            words += [1, int(rng.integers(1, 40)), int(rng.integers(1, top))]
        else:
            plain = [i for i, (_, k) in enumerate(layout) if k != "indirect"]
            first = int(rng.choice(plain))
            count = 2 if first + 1 < len(layout) and layout[first + 1][1] != "indirect" \
                and rng.random() < 0.5 else 1
            target = layout[first][0]
            b0, b1, b2, b3 = (target & 0xFF, (target >> 8) & 0xFF, (target >> 16) & 0xFF,
                              target >> 24)
            if depth == 8 and little_endian:
                words += [2, count, b0, b1, b2, b3]
            elif depth == 8:   # pydicom's (and our) big-endian reading of 8-bit offsets
                words += [2, count, b1, b0, b3, b2]
            else:
                words += [2, count, target & 0xFFFF, target >> 16]
        layout.append((start, kind))
    return words


@HYPOTHESIS
@given(seed=st.integers(0, 2**32 - 1), depth=st.sampled_from([8, 16]),
       nr_segments=st.integers(1, 12), big_endian=st.booleans())
def test_segmented_palette_matches_pydicom(seed, depth, nr_segments, big_endian):
    rng = np.random.default_rng(seed)
    words = segments(rng, depth, nr_segments, not big_endian)
    expanded = lut._expand_segmented(words, depth == 8, not big_endian)
    if depth == 8 and len(words) % 2:
        words.append(0)                      # pad to an even length as OW demands
    nr_entries = len(expanded)
    ds = palette_image(nr_entries, 0, depth, [words] * 3, segmented=True,
                       big_endian=big_endian)
    # pydicom keeps 8-bit-palette indices in uint8 (wrapping past 255): stay inside that
    top = nr_entries + 3 if depth == 16 else min(nr_entries + 3, 256)
    arr = rng.integers(0, top, size=(5, 5)).astype("u2")
    ours = lut.apply_color_lut(arr, ds)
    assert ours.dtype == np.dtype(f"uint{depth}")
    assert_same(ours, oracle.apply_color_lut(arr, ds))


def test_segmented_palette_all_segment_types():
    # discrete 0,10 ; linear to 50 over 4 ; indirect copying the 2 segments at offset 0
    words = [0, 2, 0, 10, 1, 4, 50, 2, 2, 0, 0]
    ds = palette_image(12, 0, 16, [words] * 3, segmented=True)
    arr = np.arange(16, dtype="u2")
    ours = lut.apply_color_lut(arr, ds)
    assert ours[:, 0].tolist() == [0, 10, 20, 30, 40, 50, 0, 10, 20, 30, 40, 50, 50, 50, 50, 50]
    assert_same(ours, oracle.apply_color_lut(arr, ds))


def test_segmented_palette_self_reference_is_bounded():
    words = [0, 1, 7, 2, 1, 3, 0]   # indirect segment pointing at itself
    ds = palette_image(4, 0, 16, [words] * 3, segmented=True)
    with pytest.raises(PixelDataError):
        lut.apply_color_lut(np.zeros(2, "u2"), ds)


def test_segmented_palette_shorter_than_descriptor_clamps():
    words = [0, 3, 5, 6, 7]
    ds = palette_image(100, 0, 16, [words] * 3, segmented=True)
    arr = np.array([0, 2, 50, 99], dtype="u2")
    assert lut.apply_color_lut(arr, ds)[:, 0].tolist() == [5, 7, 7, 7]


# ---------------------------------------------------------------------------------------------
# MONOCHROME1, presentation, display

def test_invert_monochrome1():
    ds = image(12, False, "MONOCHROME1")
    arr = np.array([0, 1, 4095, 5000], dtype="u2")
    assert lut.invert_monochrome1(arr, ds).tolist() == [4095, 4094, 0, 0]
    ds = image(12, True, "MONOCHROME1")
    arr = np.array([-2048, -1, 0, 2047], dtype="i2")
    out = lut.invert_monochrome1(arr, ds)
    assert out.dtype == arr.dtype and out.tolist() == [2047, 0, -1, -2048]
    assert lut.invert_monochrome1(arr, image(12, True)) is arr


def test_presentation_lut_shape_matches_pydicom():
    ds = image()
    ds.PresentationLUTShape = "INVERSE"
    arr = np.arange(20, dtype="u2").reshape(4, 5)
    assert_same(lut.apply_presentation_lut(arr, ds), oracle.apply_presentation_lut(arr, ds))


def test_display_uint8():
    ds = image(12, False)
    arr = np.array([[0, 1000], [2000, 4095]], dtype="u2")
    out = lut.to_display_uint8(arr, ds)
    assert out.dtype == np.uint8 and out.tolist() == [[0, 62], [125, 255]]
    out = lut.to_display_uint8(arr, ds, window=(1000, 1000))
    assert out.tolist()[0][0] == 0 and out.tolist()[1][1] == 255
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    expected = np.rint(oracle.apply_voi_lut(arr, ds) / 4095 * 255).astype("u1")
    assert_same(lut.to_display_uint8(arr, ds), expected)
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert_same(lut.to_display_uint8(arr, ds), 255 - expected)
    flat = lut.to_display_uint8(np.full((2, 2), 7, "u2"), image(12, False))
    assert flat.tolist() == [[0, 0], [0, 0]]


def test_display_uint8_colour_and_frames():
    ds = image(16, False, "RGB")
    ds.SamplesPerPixel = 3
    rgb = np.array([[[0, 32768, 65535]]], dtype="u2")
    assert lut.to_display_uint8(rgb, ds).tolist() == [[[0, 128, 255]]]
    pal = palette_image(4, 0, 16, [[0, 100, 65535, 257]] * 3)
    frames = np.array([[[0, 1]], [[2, 3]]], dtype="u1")
    out = lut.to_display_uint8(frames, pal, frame=1)
    assert out.dtype == np.uint8 and out[..., 0].tolist() == [[255, 1]]


# ---------------------------------------------------------------------------------------------
# corpus

def _corpus_or_skip() -> Path:
    if not CORPUS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared test data missing at {CORPUS}")
        pytest.skip(f"shared test data not present at {CORPUS}")
    return CORPUS


def _corpus_files():
    root = _corpus_or_skip()
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:
            continue
        if "PixelData" in ds or "Rows" in ds:
            kinds = {k for k in ("ModalityLUTSequence", "VOILUTSequence", "WindowCenter",
                                 "RescaleSlope") if k in ds}
            if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
                kinds.add("palette")
            if kinds:
                found.append((path, kinds))
    return found


def _pixels(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
        try:
            return ds, ds.pixel_array
        except Exception as exc:   # no decoder / broken file: not this module's concern
            return ds, exc


def test_corpus_matches_pydicom():
    files = _corpus_files()
    assert files, "expected LUT-bearing files in the corpus"
    checked = {"palette": 0, "ModalityLUTSequence": 0, "VOILUTSequence": 0, "WindowCenter": 0}
    failures = []
    for path, kinds in files:
        ds, arr = _pixels(path)
        if isinstance(arr, Exception):
            continue
        name = path.relative_to(CORPUS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if "palette" in kinds:
                try:
                    theirs = oracle.apply_color_lut(arr, ds)
                except Exception:
                    theirs = None
                ours = lut.apply_color_lut(arr, ds)
                if theirs is not None and not big_endian_palette(ds):
                    if ours.dtype != theirs.dtype or not np.array_equal(ours, theirs):
                        failures.append(f"{name}: palette")
                checked["palette"] += 1
                assert lut.to_display_uint8(arr, ds).dtype == np.uint8
                continue
            if ds.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2"):
                continue
            try:
                theirs_m = oracle.apply_modality_lut(arr, ds)
            except Exception:
                continue
            ours_m = lut.apply_modality_lut(arr, ds)
            if ours_m.dtype != theirs_m.dtype or not np.array_equal(ours_m, theirs_m):
                failures.append(f"{name}: modality")
                continue
            checked["ModalityLUTSequence"] += "ModalityLUTSequence" in kinds
            try:
                theirs_v = oracle.apply_voi_lut(theirs_m, ds)
            except Exception:
                theirs_v = None
            if theirs_v is None:
                with pytest.raises(ValueError):
                    lut.apply_voi_lut(ours_m, ds)
            else:
                ours_v = lut.apply_voi_lut(ours_m, ds)
                if ours_v.dtype != theirs_v.dtype or not np.array_equal(
                        ours_v, theirs_v, equal_nan=True):
                    failures.append(f"{name}: voi")
                checked["VOILUTSequence"] += "VOILUTSequence" in kinds
                checked["WindowCenter"] += "WindowCenter" in kinds
            out = lut.to_display_uint8(arr, ds, frame=0 if arr.ndim == 3 else None)
            assert out.dtype == np.uint8 and out.ndim == 2
    assert not failures, failures
    assert checked["palette"] and checked["ModalityLUTSequence"] and checked["WindowCenter"]


def big_endian_palette(ds) -> bool:
    """pydicom reads non-segmented palette words in native order even from big-endian files."""
    return ("RedPaletteColorLookupTableData" in ds
            and getattr(ds, "original_encoding", (None, True))[1] is False
            and len(ds.RedPaletteColorLookupTableData) != ds.RedPaletteColorLookupTableDescriptor[0])


def test_corpus_big_endian_palette_equals_little_endian_twin():
    root = _corpus_or_skip()
    little, big = root / "pydicom-data/OBXXXX1A.dcm", root / "pydicom-data/OBXXXX1A_expb.dcm"
    if not (little.exists() and big.exists()):
        pytest.skip("OBXXXX1A pair not in the corpus")
    (ds_l, arr_l), (ds_b, arr_b) = _pixels(little), _pixels(big)
    np.testing.assert_array_equal(lut.apply_color_lut(arr_l, ds_l),
                                  lut.apply_color_lut(arr_b, ds_b))


# ---------------------------------------------------------------------------------------------
# rescale / window values that are not one number: PixelDataError, never TypeError/ValueError

def _fastdicom_mono(extra):
    import io

    import fastdicom
    from fastdicom import testing
    els = [(0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"), (0x00280010, "US", 2),
           (0x00280011, "US", 2), (0x00280100, "US", 16), (0x00280101, "US", 12),
           (0x00280103, "US", 0)] + list(extra) + [(0x7FE00010, "OW", bytes(8))]
    buffer = io.BytesIO()
    testing.write_file(buffer, els)
    return fastdicom.dcmread(buffer.getvalue())


@pytest.mark.parametrize("extra,message", [
    ([(0x00281052, "DS", "0"), (0x00281053, "DS", ["1", "2"])],
     "Rescale Slope must hold one value, found 2"),
    ([(0x00281052, "DS", "0"), (0x00281053, "DS", b"abc ")], "Rescale Slope is not a number"),
    ([(0x00281052, "DS", b"1e999 "), (0x00281053, "DS", "1")],
     "Rescale Intercept is not a finite number"),
])
def test_bad_rescale_values_raise_pixel_data_error(extra, message):
    ds = _fastdicom_mono(extra)
    arr = np.arange(4, dtype=np.uint16).reshape(2, 2)
    with pytest.raises(PixelDataError, match=message) as info:
        lut.apply_modality_lut(arr, ds)
    assert info.value.tag in (0x00281052, 0x00281053)
    ds_window = _fastdicom_mono(extra + [(0x00281050, "DS", "40"), (0x00281051, "DS", "80")])
    with pytest.raises(PixelDataError, match=message):      # the output range needs it too
        lut.apply_windowing(arr, ds_window)


@pytest.mark.parametrize("extra,index,message", [
    ([(0x00281050, "DS", b"abc "), (0x00281051, "DS", "100")], 0, "Window Center is not"),
    ([(0x00281050, "DS", "40"), (0x00281051, "DS", b"wide")], 0, "Window Width is not"),
    ([(0x00281050, "DS", ["40", "x"]), (0x00281051, "DS", ["80", "90"])], 1,
     "Window Center is not"),
])
def test_bad_window_values_raise_pixel_data_error(extra, index, message):
    ds = _fastdicom_mono(extra)
    arr = np.arange(4, dtype=np.uint16).reshape(2, 2)
    for apply in (lut.apply_windowing, lut.apply_voi_lut):
        with pytest.raises(PixelDataError, match=message):
            apply(arr, ds, index)
    if index:
        # Window Center/Width are VM 1-n: the other, readable window is used
        out = lut.apply_windowing(np.array([[0, 4095]], dtype=np.uint16), ds, 0)
        assert out.tolist() == [[0.0, 4095.0]]


def test_lut_data_as_us_shorter_than_its_descriptor_raises():
    # US LUT Data of 3 entries under a descriptor of 10 was clamped (OW data raised)
    ds = image(12, False)
    ds.ModalityLUTSequence = [lut_item([10, 0, 16], [10, 20, 30], as_bytes=False)]
    with pytest.raises(PixelDataError, match="holds 3 entries"):
        lut.apply_modality_lut(np.zeros(4, "u2"), ds)
    ds = image(12, False)
    ds.VOILUTSequence = [lut_item([10, 0, 16], [10, 20, 30], as_bytes=False)]
    with pytest.raises(PixelDataError, match="holds 3 entries"):
        lut.apply_voi_lut(np.zeros(4, "u2"), ds)


@pytest.mark.parametrize("segmented", [False, True])
def test_palette_without_all_three_colour_tables_raises(segmented):
    # red and blue without green gave a 2-channel (grey + alpha) image; pydicom fails too
    ds = palette_image(4, 0, 16, [[1, 2, 3, 4], [5, 6, 7, 8]], segmented=segmented)
    green = ("Segmented" if segmented else "") + "GreenPaletteColorLookupTableData"
    ds.add_new(green.replace("Green", "Blue"), "OW", ds[green].value)
    del ds[green]
    if segmented:
        for name in ("Red", "Blue"):
            ds[f"Segmented{name}PaletteColorLookupTableData"].value = struct.pack(
                "<6H", 0, 4, 1, 2, 3, 4)
    with pytest.raises(PixelDataError, match="of its red, green and blue"):
        lut.apply_color_lut(np.zeros((2, 2), "u2"), ds)


def test_segmented_palette_of_indirect_loops_is_refused_quickly():
    # indirect segments re-reading 65,535 empty segments each add no entry: K of them took
    # K x 30 ms (29 s for an 811 KB file); the segments read are bounded in all
    import time
    k, m = 1000, 65535
    target = 3 + 4 * k
    words = [0, 1, 5] + [2, 65535, target & 0xFFFF, target >> 16] * k + [0, 0] * m
    raw = struct.pack(f"<{len(words)}H", *words)
    ds = palette_image(16, 0, 16, [[0]] * 3, segmented=True)
    for name in ("Red", "Green", "Blue"):
        ds[f"Segmented{name}PaletteColorLookupTableData"].value = raw
    t = time.perf_counter()
    with pytest.raises(PixelDataError, match="segments read"):
        lut.apply_color_lut(np.zeros((2, 2), "u1"), ds)
    assert time.perf_counter() - t < 5


# ---------------------------------------------------------------------------------------------
# errors name the element at fault: its tag, the offset of its tag in the file, the file

def _mono_on_disk(tmp_path, extra, photometric="MONOCHROME2",
                  bits_stored=(0x00280101, "US", 12)):
    from fastdicom import testing
    els = [(0x00080018, "UI", "1.2.3"), (0x00280002, "US", 1),
           (0x00280004, "CS", photometric), (0x00280010, "US", 2), (0x00280011, "US", 2),
           (0x00280100, "US", 16), bits_stored, (0x00280103, "US", 0)] + list(extra) \
        + [(0x7FE00010, "OW", bytes(8))]
    path = tmp_path / "lut.dcm"
    testing.write_file(path, els)
    return path, path.read_bytes()


def _tag_offset(raw: bytes, tag: int, vr: str) -> int:
    """Offset of the (only) explicit VR LE header of `tag` with `vr` in `raw` (the oracle)."""
    header = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    assert raw.count(header) == 1
    return raw.find(header)


def _assert_names(err, path, raw, tag, vr):
    assert isinstance(err, PixelDataError)
    assert err.tag == tag
    assert err.offset == _tag_offset(raw, tag, vr)
    assert err.path == str(path)
    assert f"tag ({tag >> 16:04X},{tag & 0xFFFF:04X})" in str(err)


SQ_MODALITY, SQ_VOI = 0x00283000, 0x00283010


@pytest.mark.parametrize("extra,apply,tag,vr,message", [
    # Modality LUT Data shorter than its descriptor
    ([(SQ_MODALITY, "SQ", [[(0x00283002, "US", [10, 0, 16]), (0x00283006, "US", [1, 2, 3])]])],
     lut.apply_modality_lut, 0x00283006, "US", "holds 3 entries"),
    # Modality LUT OW data of the wrong length
    ([(SQ_MODALITY, "SQ", [[(0x00283002, "US", [4, 0, 16]), (0x00283006, "OW", bytes(6))]])],
     lut.apply_modality_lut, 0x00283006, "OW", "holds 6 bytes"),
    # a Modality LUT descriptor of 2 values
    ([(SQ_MODALITY, "SQ", [[(0x00283002, "US", [4, 0]), (0x00283006, "US", [1, 2, 3, 4])]])],
     lut.apply_modality_lut, 0x00283002, "US", "needs 3 values"),
    # Modality LUT entries of 17 bits
    ([(SQ_MODALITY, "SQ", [[(0x00283002, "US", [4, 0, 17]), (0x00283006, "US", [1, 2, 3, 4])]])],
     lut.apply_modality_lut, 0x00283002, "US", "17 bits"),
    # VOI LUT data holding values past its 8-bit entries
    ([(SQ_VOI, "SQ", [[(0x00283002, "US", [2, 0, 8]), (0x00283006, "US", [1, 300])]])],
     lut.apply_voi_lut, 0x00283006, "US", "do not fit uint8"),
    # a window of width 0 (LINEAR needs at least 1)
    ([(0x00281050, "DS", "40"), (0x00281051, "DS", "0")], lut.apply_voi_lut, 0x00281051, "DS",
     "at least 1"),
    # an unknown VOI LUT Function
    ([(0x00281050, "DS", "40"), (0x00281051, "DS", "80"), (0x00281056, "CS", "CUBIC")],
     lut.apply_windowing, 0x00281056, "CS", "VOI LUT Function"),
    # two Rescale Slopes (VM 1): the tag was given, not the offset or the file
    ([(0x00281052, "DS", "0"), (0x00281053, "DS", ["1", "2"])], lut.apply_modality_lut,
     0x00281053, "DS", "must hold one value"),
    # a Window Center that is not finite
    ([(0x00281050, "DS", b"1e999 "), (0x00281051, "DS", "80")], lut.apply_voi_lut, 0x00281050,
     "DS", "not a finite number"),
])
def test_lut_and_window_errors_name_the_element(tmp_path, extra, apply, tag, vr, message):
    import fastdicom
    path, raw = _mono_on_disk(tmp_path, extra)
    ds = fastdicom.dcmread(path)
    with pytest.raises(PixelDataError, match=message) as info:
        apply(np.arange(4, dtype=np.uint16).reshape(2, 2), ds)
    _assert_names(info.value, path, raw, tag, vr)


def test_windowing_needs_monochrome_names_photometric(tmp_path):
    import fastdicom
    path, raw = _mono_on_disk(tmp_path, [(0x00281050, "DS", "40"), (0x00281051, "DS", "80")],
                              photometric="RGB")
    with pytest.raises(PixelDataError, match="MONOCHROME1 or MONOCHROME2") as info:
        lut.apply_windowing(np.zeros((2, 2), "u2"), fastdicom.dcmread(path))
    _assert_names(info.value, path, raw, 0x00280004, "CS")


def test_unsupported_voi_lut_depth_is_a_pixel_data_error_naming_its_descriptor(tmp_path):
    # was a bare NotImplementedError; it stays one (as pydicom raises) and is a PixelDataError
    import fastdicom
    path, raw = _mono_on_disk(tmp_path, [(SQ_VOI, "SQ", [[(0x00283002, "US", [4, 0, 9]),
                                                          (0x00283006, "US", [1, 2, 3, 4])]])])
    with pytest.raises(NotImplementedError, match="bits per LUT entry") as info:
        lut.apply_voi(np.zeros((2, 2), "u2"), fastdicom.dcmread(path))
    _assert_names(info.value, path, raw, 0x00283002, "US")


def test_bits_stored_of_two_values_is_a_pixel_data_error(tmp_path):
    # int([12, 12]) raised a bare TypeError
    import fastdicom
    path, raw = _mono_on_disk(tmp_path, [(0x00281050, "DS", "40"), (0x00281051, "DS", "80")],
                              bits_stored=(0x00280101, "US", [12, 12]))
    ds = fastdicom.dcmread(path)
    with pytest.raises(PixelDataError, match="Bits Stored must hold one value") as info:
        lut.apply_windowing(np.zeros((2, 2), "u2"), ds)
    _assert_names(info.value, path, raw, 0x00280101, "US")


def test_window_center_and_width_of_different_counts_raise_pixel_data_error(tmp_path):
    # 2 centres and 3 widths: window 2 gave a bare IndexError from the centres
    import fastdicom
    path, raw = _mono_on_disk(tmp_path, [(0x00281050, "DS", ["40", "50"]),
                                         (0x00281051, "DS", ["10", "20", "30"])])
    ds = fastdicom.dcmread(path)
    with pytest.raises(PixelDataError, match="window 2 is missing") as info:
        lut.apply_voi_lut(np.zeros((2, 2), "u2"), ds, index=2)
    _assert_names(info.value, path, raw, 0x00281050, "DS")
    lut.apply_voi_lut(np.zeros((2, 2), "u2"), ds, index=1)     # present in both: applies
    with pytest.raises(IndexError):                              # in neither: the caller's
        lut.apply_voi_lut(np.zeros((2, 2), "u2"), ds, index=3)


def test_errors_on_a_pydicom_dataset_name_its_file(tmp_path):
    # a pydicom data set knows its file, not the offsets of its elements
    path, _ = _mono_on_disk(tmp_path, [(SQ_MODALITY, "SQ", [[(0x00283002, "US", [10, 0, 16]),
                                                              (0x00283006, "US", [1, 2, 3])]])])
    ds = pydicom.dcmread(path)
    with pytest.raises(PixelDataError, match="holds 3 entries") as info:
        lut.apply_modality_lut(np.zeros((2, 2), "u2"), ds)
    err = info.value
    assert (err.tag, err.offset, err.path) == (0x00283006, None, str(path))


def _palette_on_disk(tmp_path, channels, segmented=False, extra=()):
    """A PALETTE COLOR file; `channels` maps Red/Green/Blue/Alpha to their OW data."""
    from fastdicom import testing
    base = {"Red": 0x1201, "Green": 0x1202, "Blue": 0x1203, "Alpha": 0x1204}
    els = [(0x00080018, "UI", "1.2.3"), (0x00280002, "US", 1),
           (0x00280004, "CS", "PALETTE COLOR"), (0x00280010, "US", 2), (0x00280011, "US", 2),
           (0x00280100, "US", 8), (0x00280101, "US", 8), (0x00280103, "US", 0)] + list(extra)
    for name in ("Red", "Green", "Blue", "Alpha"):
        els.append((0x00280000 | (base[name] - 0x100), "US", [4, 0, 16]))
    for name, data in channels.items():
        els.append((0x00280000 | (base[name] + (0x20 if segmented else 0)), "OW", data))
    els.append((0x7FE00010, "OW", bytes(4)))
    path = tmp_path / "palette.dcm"
    testing.write_file(path, sorted(els, key=lambda e: e[0]))
    return path, path.read_bytes()


def test_palette_errors_name_the_channel(tmp_path):
    import fastdicom
    entries = struct.pack("<4H", 0, 100, 200, 300)
    arr = np.zeros((2, 2), "u1")
    # green data of another length than red's
    path, raw = _palette_on_disk(tmp_path, {"Red": entries, "Green": entries[:6],
                                            "Blue": entries})
    with pytest.raises(PixelDataError, match="same length") as info:
        lut.apply_color_lut(arr, fastdicom.dcmread(path))
    _assert_names(info.value, path, raw, 0x00281202, "OW")
    # red data of neither 8 nor 16 bits per entry
    path, raw = _palette_on_disk(tmp_path, {"Red": entries[:6], "Green": entries[:6],
                                            "Blue": entries[:6]})
    with pytest.raises(PixelDataError, match="bit depth") as info:
        lut.apply_color_lut(arr, fastdicom.dcmread(path))
    _assert_names(info.value, path, raw, 0x00281201, "OW")
    # a segmented blue LUT of an unknown segment type
    good = struct.pack("<6H", 0, 4, 1, 2, 3, 4)
    path, raw = _palette_on_disk(tmp_path, {"Red": good, "Green": good,
                                            "Blue": struct.pack("<6H", 7, 4, 1, 2, 3, 4)},
                                 segmented=True)
    with pytest.raises(PixelDataError, match="unknown segment type") as info:
        lut.apply_color_lut(arr, fastdicom.dcmread(path))
    _assert_names(info.value, path, raw, 0x00281223, "OW")
    # a segmented green LUT expanding to another length than red's
    path, raw = _palette_on_disk(tmp_path, {"Red": good, "Blue": good,
                                            "Green": struct.pack("<5H", 0, 3, 1, 2, 3)},
                                 segmented=True)
    with pytest.raises(PixelDataError, match="same length") as info:
        lut.apply_color_lut(arr, fastdicom.dcmread(path))
    _assert_names(info.value, path, raw, 0x00281222, "OW")


def test_palette_of_red_green_and_alpha_without_blue_raises(tmp_path):
    # three LUTs passed the count check: alpha became the blue of an RGB image
    import fastdicom
    entries = struct.pack("<4H", 0, 100, 200, 300)
    path, raw = _palette_on_disk(tmp_path, {"Red": entries, "Green": entries,
                                            "Alpha": entries})
    with pytest.raises(PixelDataError, match="2 of its red, green and blue") as info:
        lut.apply_color_lut(np.zeros((2, 2), "u1"), fastdicom.dcmread(path))
    err = info.value
    assert (err.tag, err.offset, err.path) == (0x00281203, None, str(path))   # it is absent


def test_supplemental_palette_is_a_pixel_data_error(tmp_path):
    # a bare ValueError; still one (PixelDataError is a ValueError)
    import fastdicom
    entries = struct.pack("<4H", 0, 100, 200, 300)
    path, raw = _palette_on_disk(tmp_path, {"Red": entries, "Green": entries, "Blue": entries},
                                 extra=[(0x00089205, "CS", "COLOR")])
    with pytest.raises(PixelDataError, match="Supplemental Palette") as info:
        lut.apply_color_lut(np.zeros((2, 2), "u1"), fastdicom.dcmread(path))
    _assert_names(info.value, path, raw, 0x00089205, "CS")


@pytest.mark.parametrize("depth", [10, 12, 15])
def test_modality_lut_of_10_to_15_bit_entries_applies(depth):
    # PS3.3 C.11.1.1.1 allows 8 to 16 bits per Modality LUT entry (16-bit words above 8);
    # 12-bit entries raised (pydicom fails on numpy's 'uint12')
    ds = image(12, False)
    top = (1 << depth) - 1
    ds.ModalityLUTSequence = [lut_item([4, 10, depth], [0, 7, top // 2, top], as_bytes=False)]
    out = lut.apply_modality_lut(np.array([0, 10, 11, 12, 13, 4000], "u2"), ds)
    assert out.dtype == np.uint16
    assert out.tolist() == [0, 0, 7, top // 2, top, top]
    ds.ModalityLUTSequence = [lut_item([4, 10, depth], [0, 7, top // 2, top], as_bytes=True)]
    assert lut.apply_modality_lut(np.array([12], "u2"), ds).tolist() == [top // 2]
    # the window maps the LUT's output range, 0 .. 2**depth - 1
    ds.WindowCenter, ds.WindowWidth = (top + 1) / 2, top + 1
    assert lut.apply_voi_lut(np.array([0.0, float(top)]), ds).tolist() == [0.0, float(top)]


def test_window_output_range_without_pixel_representation_is_unsigned():
    # the pixels of such a data set are read as unsigned, but the window mapped them onto
    # the signed range -128..127 (pydicom raises AttributeError)
    ds = image(8, False)
    del ds.PixelRepresentation
    ds.WindowCenter, ds.WindowWidth = 128, 256
    arr = np.array([0, 128, 255], "u1")
    assert lut.apply_windowing(arr, ds).tolist() == [0.0, 128.0, 255.0]
    ds.PixelRepresentation = 0
    assert_same(lut.apply_windowing(arr, ds), oracle.apply_windowing(arr, ds))


@pytest.mark.parametrize("tag", [0x00283000, 0x00283010])
@pytest.mark.parametrize("vr, value", [("US", 1), ("DS", [1.5]), ("PN", "1"), ("AT", 0x00100010)])
def test_a_lut_sequence_of_another_vr_is_named(tmp_path, tag, vr, value):
    # a Modality or VOI LUT Sequence written as US (a number, a name...) raised TypeError
    # ("'int' object is not subscriptable") out of render and load_series(rescale=True)
    from fastdicom import testing
    from fastdicom.render import render
    path = tmp_path / "f.dcm"
    testing.write_file(path, [
        (0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", "1.2.3.4"),
        (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"), (0x00280010, "US", 4),
        (0x00280011, "US", 4), (0x00280100, "US", 16), (0x00280101, "US", 16),
        (0x00280102, "US", 15), (0x00280103, "US", 0),
        (0x7FE00010, "OW", np.arange(16, dtype=np.uint16).tobytes()), (tag, vr, value)])
    name = "ModalityLUTSequence" if tag == 0x00283000 else "VOILUTSequence"
    with pytest.raises(PixelDataError, match=f"{name} is not a sequence") as info:
        render(path)
    assert info.value.tag == tag and info.value.path == str(path)
    assert info.value.offset is not None
