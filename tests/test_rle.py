"""RLE Lossless decoder/encoder (fastdicom.pixels._rle) against pydicom and pylibjpeg-rle."""
from __future__ import annotations

import csv
import os
import struct
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastdicom.errors import DicomError, DicomWarning, PixelDataError, RLEDecodeError
from fastdicom.pixels.rle import (
    MAX_FRAME_BYTES,
    rle_check_frame,
    rle_decode_frame,
    rle_decode_frame_into,
    rle_encode_frame,
)

pydicom = pytest.importorskip("pydicom")
rle_utils = pytest.importorskip("rle.utils")

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate, generate_frames  # noqa: E402
from pydicom.pixels.decoders.rle import _rle_decode_frame, _rle_decode_segment  # noqa: E402
from pydicom.pixels.encoders import RLELosslessEncoder  # noqa: E402
from pydicom.pixels.encoders.native import _encode_frame as pydicom_native_encode  # noqa: E402
from pydicom.uid import RLELossless  # noqa: E402

CORPUS = Path(os.environ.get("FASTDICOM_CORPUS", "/work/shared/data/corpus"))
RLE_UID = "1.2.840.10008.1.2.5"

# (dtype, samples per pixel) for every layout pydicom's pixel_array decodes (<= 15 segments)
LAYOUTS = [
    (dtype, spp)
    for dtype in ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8")
    for spp in (1, 3)
    if spp * np.dtype(dtype).itemsize <= 15
]


# ----------------------------------------------------------------------------- oracles

def pydicom_encode(arr: np.ndarray) -> bytes:
    """Encode one frame with pydicom's own RLE encoder."""
    rows, columns = arr.shape[:2]
    spp = 1 if arr.ndim == 2 else arr.shape[2]
    bits = arr.dtype.itemsize * 8
    signed = int(arr.dtype.kind == "i")
    if bits <= 16 and not (spp == 3 and signed):
        return RLELosslessEncoder.encode(
            arr, encoding_plugin="pydicom", rows=rows, columns=columns,
            samples_per_pixel=spp, bits_allocated=bits, bits_stored=bits,
            pixel_representation=signed, number_of_frames=1, planar_configuration=0,
            photometric_interpretation="RGB" if spp == 3 else "MONOCHROME2",
        )
    # Layouts outside pydicom's encoding profiles (> 16 bits, signed RGB): call its
    # frame encoder directly.
    runner = SimpleNamespace(bits_allocated=bits, samples_per_pixel=spp, columns=columns,
                             get_option=lambda name, default=None: default)
    little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return pydicom_native_encode(little.tobytes(), runner)


def make_dataset(frames: list[bytes], rows: int, columns: int, spp: int, bits: int,
                 signed: int, photometric: str | None = None) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, spp
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = signed
    ds.PhotometricInterpretation = photometric or ("RGB" if spp == 3 else "MONOCHROME2")
    if spp == 3:
        ds.PlanarConfiguration = 0
    ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    return ds


def pydicom_pixel_array(frame: bytes, arr: np.ndarray) -> np.ndarray:
    """pydicom's ds.pixel_array for a one-frame RLE dataset shaped like arr."""
    spp = 1 if arr.ndim == 2 else arr.shape[2]
    ds = make_dataset([frame], arr.shape[0], arr.shape[1], spp, arr.dtype.itemsize * 8,
                      int(arr.dtype.kind == "i"))
    return ds.pixel_array


def planar1_to_array(decoded: bytes, arr: np.ndarray) -> np.ndarray:
    """Reshape little-endian planar-configuration-1 bytes to arr's layout."""
    spp = 1 if arr.ndim == 2 else arr.shape[2]
    flat = np.frombuffer(bytes(decoded), dtype=arr.dtype.newbyteorder("<"))
    planes = flat.reshape(spp, arr.shape[0], arr.shape[1])
    return planes[0] if arr.ndim == 2 else np.moveaxis(planes, 0, -1)


def pylibjpeg_decode(frame: bytes, arr: np.ndarray) -> np.ndarray:
    decoded = rle_utils.decode_frame(frame, arr.shape[0] * arr.shape[1],
                                     arr.dtype.itemsize * 8, "<")
    return planar1_to_array(decoded, arr)


def our_decode(frame, arr: np.ndarray, **kwargs) -> np.ndarray:
    spp = 1 if arr.ndim == 2 else arr.shape[2]
    return rle_decode_frame(frame, arr.shape[0], arr.shape[1], spp, arr.dtype.itemsize * 8,
                            int(arr.dtype.kind == "i"), **kwargs)


def random_image(rng: np.random.Generator, dtype: str, spp: int, rows: int, columns: int):
    info = np.iinfo(dtype)
    shape = (rows, columns) if spp == 1 else (rows, columns, spp)
    arr = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    # add runs of every length class: short, 128, >128, whole rows
    flat = arr.reshape(-1)
    for start, length in ((3, 2), (20, 3), (40, 128), (200, 129), (400, 300)):
        if start + length <= flat.size:
            flat[start:start + length] = flat[start]
    if rows > 2:
        arr[rows // 2] = arr[rows // 2].reshape(-1)[0]
    return arr


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("dtype,spp", LAYOUTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decode_matches_pydicom_and_pylibjpeg(dtype, spp, seed):
    rng = np.random.default_rng(seed)
    rows, columns = [(1, 1), (7, 13), (64, 300)][seed]
    arr = random_image(rng, dtype, spp, rows, columns)
    frame = pydicom_encode(arr)
    ours = our_decode(frame, arr)
    assert_same(ours, arr)
    assert ours.dtype.byteorder in ("<", "=", "|")
    assert_same(ours, pydicom_pixel_array(frame, arr))
    assert_same(ours, pylibjpeg_decode(frame, arr))


@pytest.mark.parametrize("dtype,spp", LAYOUTS)
def test_our_encoder_decodes_with_pydicom_and_pylibjpeg(dtype, spp):
    rng = np.random.default_rng(42)
    arr = random_image(rng, dtype, spp, 31, 517)
    frame = rle_encode_frame(arr)
    assert len(frame) % 2 == 0
    n_segments, *offsets = struct.unpack("<16L", frame[:64])
    assert n_segments == spp * arr.dtype.itemsize
    used = offsets[:n_segments] + [len(frame)]
    assert all((b - a) % 2 == 0 for a, b in zip(used, used[1:]))
    assert offsets[n_segments:] == [0] * (15 - n_segments)
    assert_same(pydicom_pixel_array(frame, arr), arr)
    assert_same(planar1_to_array(_rle_decode_frame(frame, 31, 517, spp, arr.dtype.itemsize * 8),
                                 arr), arr)
    assert_same(pylibjpeg_decode(frame, arr), arr)
    assert_same(our_decode(frame, arr), arr)


def test_encoder_compresses_runs():
    arr = np.zeros((256, 256), dtype=np.uint16)
    frame = rle_encode_frame(arr)
    assert len(frame) < 64 + 2 * 256 * 6
    assert_same(pydicom_pixel_array(frame, arr), arr)


def test_encoder_accepts_big_endian_and_non_contiguous_input():
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 65535, size=(40, 50), dtype=np.uint16)
    big = arr.astype(">u2")
    assert_same(our_decode(rle_encode_frame(big), arr), arr)
    view = arr[::2, ::3]
    assert_same(our_decode(rle_encode_frame(view), view), view)


def test_encoder_rejects_unsupported_arrays():
    with pytest.raises(TypeError):
        rle_encode_frame(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError):
        rle_encode_frame(np.zeros((2, 2, 3), dtype=np.uint64))   # 24 segments
    with pytest.raises(ValueError):
        rle_encode_frame(np.zeros((2,), dtype=np.uint8))


image_shapes = st.tuples(st.integers(1, 40), st.integers(1, 300))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=st.sampled_from(LAYOUTS), shape=image_shapes,
       seed=st.integers(0, 2**32 - 1), palette=st.integers(1, 6))
def test_hypothesis_round_trips(layout, shape, seed, palette):
    """Few distinct values give long runs; many give literals; both directions checked."""
    dtype, spp = layout
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    values = rng.integers(info.min, info.max, size=2 ** palette, dtype=dtype, endpoint=True)
    full = shape if spp == 1 else shape + (spp,)
    arr = values[rng.integers(0, values.size, size=full)]
    if rng.random() < 0.5:
        arr = np.sort(arr, axis=1)          # long runs
    theirs = pydicom_encode(arr)
    assert_same(our_decode(theirs, arr), arr)
    ours = rle_encode_frame(arr)
    assert_same(pylibjpeg_decode(ours, arr), arr)
    assert_same(planar1_to_array(
        _rle_decode_frame(ours, arr.shape[0], arr.shape[1], spp, arr.dtype.itemsize * 8), arr),
        arr)


# ----------------------------------------------------------------------------- buffers

def test_accepts_any_buffer():
    rng = np.random.default_rng(9)
    arr = random_image(rng, "u2", 3, 20, 30)
    frame = rle_encode_frame(arr)
    padded = b"xx" + frame + b"yy"
    for src in (frame, bytearray(frame), memoryview(frame), np.frombuffer(frame, np.uint8),
                memoryview(padded)[2:-2], np.frombuffer(padded, np.uint8)[2:-2]):
        assert_same(our_decode(src, arr), arr)


def test_decode_into_volume_slice():
    rng = np.random.default_rng(3)
    frames = [random_image(rng, "i2", 1, 16, 24) for _ in range(4)]
    volume = np.zeros((4, 16, 24), dtype="<i2")
    for index, arr in enumerate(frames):
        assert rle_decode_frame_into(rle_encode_frame(arr), volume[index], 16, 24, 1, 16) is None
    assert_same(volume, np.stack(frames))
    # a raw bytearray works as well
    raw = bytearray(16 * 24 * 2)
    rle_decode_frame_into(rle_encode_frame(frames[0]), raw, 16, 24, 1, 16)
    assert bytes(raw) == frames[0].astype("<i2").tobytes()


def test_decode_into_wrong_size_or_readonly():
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    frame = rle_encode_frame(arr)
    with pytest.raises(ValueError):
        rle_decode_frame_into(frame, bytearray(11), 3, 4, 1, 8)
    with pytest.raises(ValueError):
        rle_decode_frame_into(frame, bytes(12), 3, 4, 1, 8)


def test_signedness_from_pixel_representation():
    arr = np.array([[-1, 0, 1, -32768]], dtype=np.int16)
    frame = rle_encode_frame(arr)
    assert_same(rle_decode_frame(frame, 1, 4, 1, 16, 1), arr)
    assert_same(rle_decode_frame(frame, 1, 4, 1, 16, 0), arr.view(np.uint16))


# ----------------------------------------------------------------------------- bad input

def build_frame(segments: list[bytes], count: int | None = None,
                offsets: list[int] | None = None, unused: int = 0) -> bytes:
    if offsets is None:
        offsets, position = [], 64
        for segment in segments:
            offsets.append(position)
            position += len(segment)
    count = len(segments) if count is None else count
    header = [count] + offsets + [unused] * (15 - len(offsets))
    return struct.pack("<16L", *header[:16]) + b"".join(segments)


def decode_gray(frame, rows=2, columns=2, **kwargs):
    return rle_decode_frame(frame, rows, columns, 1, 8, **kwargs)


def test_header_shorter_than_64_bytes():
    with pytest.raises(RLEDecodeError):
        decode_gray(b"")
    with pytest.raises(RLEDecodeError):
        decode_gray(build_frame([b"\x03abcd"])[:63])


@pytest.mark.parametrize("count", [0, 16, 0xFFFFFFFF])
def test_segment_count_out_of_range(count):
    frame = struct.pack("<16L", count, *([64] * 15)) + b"\x03abcd"
    with pytest.raises(RLEDecodeError):
        decode_gray(frame)


def test_segment_count_not_samples_times_bytes():
    frame = build_frame([b"\x03abcd", b"\x03abcd"])
    with pytest.raises(RLEDecodeError, match="expected 1"):
        decode_gray(frame)
    with pytest.raises(RLEDecodeError, match="expected 2"):
        rle_decode_frame(build_frame([b"\x03abcd"]), 2, 2, 1, 16)


def test_offsets_invalid():
    good = [b"\x03abcd", b"\x03efgh"]
    with pytest.raises(RLEDecodeError, match="past the end"):
        rle_decode_frame(build_frame(good, offsets=[64, 500]), 2, 2, 1, 16)
    with pytest.raises(RLEDecodeError, match="not after"):
        rle_decode_frame(build_frame(good, offsets=[70, 64]), 2, 2, 1, 16)
    with pytest.raises(RLEDecodeError, match="at least 64"):
        rle_decode_frame(build_frame(good, offsets=[10, 70]), 2, 2, 1, 16)
    with pytest.raises(RLEDecodeError):
        rle_decode_frame(build_frame(good, offsets=[64, 64]), 2, 2, 1, 16)


def test_unused_offsets_nonzero_is_lenient():
    frame = build_frame([b"\x03abcd"], unused=7)
    with pytest.warns(DicomWarning):
        out = decode_gray(frame)
    assert out.tobytes() == b"abcd"
    with pytest.raises(RLEDecodeError):
        decode_gray(frame, validation="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_gray(frame, validation="ignore").tobytes() == b"abcd"


@pytest.mark.parametrize("segment", [
    b"\x05abcdef",          # literal run of 6 into a 4-byte plane
    b"\x01ab\xfdz",         # replicate run of 4 after 2 bytes
    b"\x03abcd\x00e",       # a whole surplus run after the plane is full
])
def test_overrun_warns_and_truncates(segment):
    frame = build_frame([segment])
    with pytest.warns(DicomWarning, match="surplus"):
        out = decode_gray(frame)
    assert out.shape == (2, 2) and out.dtype == np.uint8
    assert out.tobytes() == bytes(_rle_decode_segment(segment)[:4])
    with pytest.raises(RLEDecodeError):
        decode_gray(frame, validation="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decode_gray(frame, validation="ignore")


def test_trailing_padding_is_not_overrun():
    frame = build_frame([b"\x03abcd\x00", b"\x03efgh\x80"])   # pad byte, no-op
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = rle_decode_frame(frame, 2, 2, 1, 16)
    assert out.tobytes() == bytes([ord(c) for pair in zip("efgh", "abcd") for c in pair])


@pytest.mark.parametrize("segment", [
    b"\x02abc",             # 3 of 4 bytes
    b"\x09abc",             # literal claims 10, only 3 present
    b"\x02abc\xfd",         # replicate header without its byte
    b"",                    # empty segment
])
def test_underrun_raises(segment):
    frame = build_frame([segment]) if segment else struct.pack("<16L", 1, 64, *([0] * 14))
    with pytest.raises(RLEDecodeError, match="expected 4") as info:
        decode_gray(frame, path="x.dcm", offset=1234)
    assert info.value.path == "x.dcm" and info.value.offset == 1234
    assert info.value.tag == 0x7FE00010


def test_huge_dimensions_rejected_before_allocation():
    frame = build_frame([b"\x03abcd"])
    with pytest.raises(PixelDataError):
        rle_decode_frame(frame, 2**21, 2**21, 1, 8)
    with pytest.raises(PixelDataError):
        rle_decode_frame(frame, 0xFFFFFFFF, 0xFFFFFFFF, 3, 32)
    assert MAX_FRAME_BYTES == 2**40


@pytest.mark.parametrize("rows,columns,spp,bits", [
    (0, 2, 1, 8), (2, -1, 1, 8), (2, 2, 2, 8), (2, 2, 4, 8), (2, 2, 0, 8),
    (2, 2, 1, 1), (2, 2, 1, 12), (2, 2, 1, 0), (2, 2, 1, 128),
])
def test_bad_geometry(rows, columns, spp, bits):
    with pytest.raises(PixelDataError):
        rle_decode_frame(build_frame([b"\x03abcd"]), rows, columns, spp, bits)


def test_validation_mode_checked():
    with pytest.raises(ValueError):
        decode_gray(build_frame([b"\x03abcd"]), validation="loose")


@settings(max_examples=400, deadline=None)
@given(data=st.binary(min_size=0, max_size=64), pixels=st.integers(1, 40))
def test_random_segment_matches_pydicom_segment_decoder(data, pixels):
    """Differential: any segment either decodes to pydicom's bytes (truncated) or underruns."""
    frame = build_frame([data]) if data else struct.pack("<16L", 1, 64, *([0] * 14))
    expected = bytes(_rle_decode_segment(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DicomWarning)
        if len(expected) < pixels:
            with pytest.raises(RLEDecodeError):
                rle_decode_frame(frame, 1, pixels, 1, 8)
        else:
            assert rle_decode_frame(frame, 1, pixels, 1, 8).tobytes() == expected[:pixels]


@settings(max_examples=400, deadline=None)
@given(data=st.binary(min_size=0, max_size=200), spp=st.sampled_from([1, 3]),
       bits=st.sampled_from([8, 16, 32]), rows=st.integers(1, 5), columns=st.integers(1, 5))
def test_garbage_raises_only_dicom_errors(data, spp, bits, rows, columns):
    try:
        rle_decode_frame(data, rows, columns, spp, bits, validation="raise")
    except DicomError:
        pass


# ----------------------------------------------------------------------------- corpus

def corpus_rle_rows() -> list[dict]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with open(manifest, newline="") as handle:
        return [row for row in csv.DictReader(handle, delimiter="\t")
                if row["transfer_syntax_uid"] == RLE_UID]


def test_corpus_present():
    if not (CORPUS / "MANIFEST.tsv").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"corpus missing at {CORPUS} in CI")
        pytest.skip(f"corpus not present at {CORPUS}")
    assert corpus_rle_rows(), "manifest lists no RLE Lossless files"


@pytest.mark.parametrize("row", corpus_rle_rows() or [None],
                         ids=lambda row: row["path"] if row else "no-corpus")
def test_corpus_frames_match_pydicom(row):
    if row is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"corpus missing at {CORPUS} in CI")
        pytest.skip(f"corpus not present at {CORPUS}")
    from pydicom.pixels import pixel_array
    from fastdicom.pixels._color import ybr_full_to_rgb

    path = CORPUS / row["path"]
    ds = pydicom.dcmread(path)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.SamplesPerPixel)
    frames = list(generate_frames(ds.PixelData, number_of_frames=n_frames))
    assert len(frames) == n_frames
    try:
        expected = pixel_array(ds, raw=True)
    except Exception:   # pydicom cannot decode it (e.g. 1-bit RLE): neither do we, cleanly
        with pytest.raises(DicomError):
            for frame in frames:
                rle_decode_frame(frame, ds.Rows, ds.Columns, spp, ds.BitsAllocated,
                                 ds.PixelRepresentation, path=str(path))
        return
    if n_frames == 1:
        expected = expected[None]
    ours = np.stack([
        rle_decode_frame(frame, ds.Rows, ds.Columns, spp, ds.BitsAllocated,
                         ds.PixelRepresentation, path=str(path))
        for frame in frames])
    assert_same(ours, expected)
    if ds.PhotometricInterpretation in ("YBR_FULL", "YBR_FULL_422"):
        # pydicom's pixel_array converts to RGB by default
        converted = ybr_full_to_rgb(ours)
        assert_same(converted if n_frames > 1 else converted[0], ds.pixel_array)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 8),
       layout=st.sampled_from([("u1", 1), ("u2", 1), ("u1", 3), ("u2", 3)]))
def test_mutated_frames_decode_or_raise_dicom_errors(seed, flips, layout):
    dtype, spp = layout
    rng = np.random.default_rng(seed)
    arr = random_image(rng, dtype, spp, 6, 9)
    frame = bytearray(rle_encode_frame(arr))
    for _ in range(flips):
        frame[int(rng.integers(0, len(frame)))] = int(rng.integers(0, 256))
    if rng.random() < 0.3:
        frame = frame[:int(rng.integers(0, len(frame)))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DicomWarning)
        try:
            out = our_decode(bytes(frame), arr)
        except DicomError:
            return
    assert out.shape == arr.shape and out.dtype == arr.dtype


def test_concurrent_decoding_in_threads():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(11)
    images = [random_image(rng, "u2", 1, 128, 128) for _ in range(16)]
    frames = [rle_encode_frame(arr) for arr in images]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda frame: rle_decode_frame(frame, 128, 128, 1, 16), frames))
    for result, arr in zip(results, images):
        assert_same(result, arr)


@pytest.fixture
def no_scratch():
    """Force the strided path that frames above the scratch threshold take."""
    from fastdicom.pixels import _rle

    previous = _rle._set_scratch_limit(0)
    yield
    _rle._set_scratch_limit(previous)


@pytest.mark.parametrize("dtype,spp", LAYOUTS)
def test_strided_path_for_large_frames(no_scratch, dtype, spp):
    rng = np.random.default_rng(21)
    arr = random_image(rng, dtype, spp, 33, 70)
    frame = pydicom_encode(arr)
    assert_same(our_decode(frame, arr), arr)
    with pytest.raises(RLEDecodeError):
        our_decode(frame[:len(frame) - 40], arr)


# ----------------------------------------------------------------------------- size bounds

def _rle_file(tmp_path, frames, rows, columns, bits=16, spp=1, name="rle.dcm", **kwargs):
    import fastdicom.testing as testing
    els = [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", "1.2.3.4"),
           (0x00280002, "US", spp),
           (0x00280004, "CS", "MONOCHROME2" if spp == 1 else "RGB"),
           (0x00280010, "US", rows), (0x00280011, "US", columns), (0x00280100, "US", bits),
           (0x00280101, "US", bits), (0x00280103, "US", 0)]
    if spp > 1:
        els.append((0x00280006, "US", 0))
    if len(frames) > 1:
        els.append((0x00280008, "IS", str(len(frames))))
    path = tmp_path / name
    testing.write_file(path, els + [(0x7FE00010, "OB", list(frames))],
                       transfer_syntax=RLE_UID, **kwargs)
    return path


@pytest.mark.parametrize("pairs,pixels,ok", [(1, 128, True), (1, 129, False), (2, 256, True),
                                             (2, 257, False)])
def test_segment_capacity_is_128_bytes_per_2_input_bytes(pairs, pixels, ok):
    """n bytes of a segment decode to at most 128 * (n // 2): a shorter segment cannot fill
    its plane and is refused before the output is allocated, naming that bound."""
    segment = b"\x81\x07" * pairs          # each pair: replicate 0x07 128 times
    frame = build_frame([segment])
    if ok:
        assert rle_decode_frame(frame, 1, pixels, 1, 8).tobytes() == b"\x07" * pixels
        rle_check_frame(frame[:64], len(frame), 1, pixels, 1, 8)
    else:
        for check in (lambda: rle_decode_frame(frame, 1, pixels, 1, 8),
                      lambda: rle_check_frame(frame[:64], len(frame), 1, pixels, 1, 8)):
            with pytest.raises(RLEDecodeError, match=f"at most {len(segment) // 2 * 128} "
                                                     f"bytes, expected {pixels}"):
                check()


def test_tiny_file_declaring_a_huge_frame_is_refused_before_allocating(tmp_path):
    """A 68-byte RLE frame for 8192 x 8192 x 16 bits (128 MiB) could make at most 128 bytes
    per segment: RLEDecodeError before any output array is allocated."""
    import tracemalloc

    import fastdicom
    frame = struct.pack("<III", 2, 64, 66) + bytes(52) + b"\x81\0\x81\0"
    path = _rle_file(tmp_path, [frame], 8192, 8192)
    assert path.stat().st_size < 1000
    for read in (lambda ds: ds.pixel_array, lambda ds: ds.frame(0)):
        ds = fastdicom.dcmread(path)
        tracemalloc.start()
        try:
            with pytest.raises(RLEDecodeError, match="at most 128 bytes") as info:
                read(ds)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20, f"{peak} bytes allocated"
        assert info.value.path == str(path) and info.value.tag == 0x7FE00010


@pytest.mark.parametrize("size,fragments", [(2048, 1), (4, 12)])
def test_every_frame_checked_before_the_output_is_allocated(tmp_path, size, fragments):
    """Multi-frame: frame 2 of 3 is short; nothing is allocated for the 3 frames first.  A
    frame split in fragments shorter than its 64-byte header is checked the same way."""
    import tracemalloc

    import fastdicom
    good = rle_encode_frame(np.zeros((size, size), dtype="<u2"))
    # two segments of 2 bytes (128 bytes at most), or of 1 byte (nothing at most)
    step, bound = (2, 128) if size > 8 else (1, 0)
    bad = struct.pack("<III", 2, 64, 64 + step) + bytes(52) + b"\x81\0\x81\0"[:2 * step]
    path = _rle_file(tmp_path, [good, bad, good], size, size, fragments_per_frame=fragments,
                     offset_table="bot")
    ds = fastdicom.dcmread(path)
    tracemalloc.start()
    try:
        with pytest.raises(RLEDecodeError,
                           match=f"at most {bound} bytes, expected {size * size}"):
            ds.pixel_array
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak} bytes allocated"   # 3 frames of 2048^2 would be 24 MiB
    np.testing.assert_array_equal(ds.frame(2), np.zeros((size, size)))


@pytest.mark.parametrize("fragments", [1, 3, 40])
def test_pixel_array_decodes_rle_into_its_output(tmp_path, fragments):
    """pixel_array decodes each frame straight into its own array, and frame(k) into the array
    it returns (no second frame-sized array copied over), whatever the fragmentation."""
    import tracemalloc

    import fastdicom
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 4, (2, 1024, 512, 3), dtype=np.uint16)   # 3 MiB a frame
    arr[1, :, :100] = 7
    frames = [rle_encode_frame(a) for a in arr]
    path = _rle_file(tmp_path, frames, 1024, 512, spp=3, fragments_per_frame=fragments,
                     offset_table="bot")
    ds = fastdicom.dcmread(path)
    for read, expected in ((lambda: ds.pixel_array, arr), (lambda: ds.frame(1), arr[1])):
        tracemalloc.start()
        try:
            out = read()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        np.testing.assert_array_equal(out, expected)
        assert peak < out.nbytes + (2 << 20), f"{peak} bytes for a {out.nbytes}-byte result"


@pytest.mark.parametrize("api", ["get_frame", "pixel_array"])
def test_lenient_frame_warning_names_file_item_offset_and_tag(tmp_path, api):
    """A recovery made while decoding a frame of a file (unused segment offsets that are not
    zero) is warned with where it is: the file, the offset of the frame's fragment item (as
    the errors of that frame give it) and (7FE0,0010)."""
    import fastdicom
    from fastdicom.pixels import frame_offset, get_frame
    frames = [build_frame([b"\x03abcd"]), build_frame([b"\x03efgh"], unused=7)]
    path = _rle_file(tmp_path, frames, 2, 2, bits=8)
    ds = fastdicom.dcmread(path)
    expected = frame_offset(ds, 1)
    # frame 2's item is where frame_offset says (checked on the bytes)
    raw = path.read_bytes()
    assert raw[expected:expected + 4] == b"\xfe\xff\x00\xe0"
    assert raw[expected + 8:expected + 8 + len(frames[1])] == frames[1]
    with pytest.warns(DicomWarning) as caught:
        if api == "get_frame":
            assert get_frame(ds, 1).tobytes() == b"efgh"
        else:
            out = ds.pixel_array
            assert out[0].tobytes() == b"abcd" and out[1].tobytes() == b"efgh"
    texts = [str(w.message) for w in caught if "unused segments" in str(w.message)]
    assert len(texts) == 1, [str(w.message) for w in caught]
    assert f"offset {expected}," in texts[0]
    assert "tag (7FE0,0010)" in texts[0]
    assert repr(str(path)) in texts[0]
