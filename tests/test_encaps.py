"""Encapsulated pixel data: BOT / EOT / fragment -> frame mapping, validation, codecs."""
from __future__ import annotations

import struct
import sys
import warnings

import numpy as np
import pytest

import fastdicom
from fastdicom.errors import (EncapsulationError, MissingCodecError, PixelDataError,
                              DicomError)
from fastdicom.pixels._rle import rle_encode_frame
from fastdicom.testing import encode_dataset, encode_file_meta

RLE = "1.2.840.10008.1.2.5"
ROWS, COLS, N = 6, 5, 4


def _frames(n=N):
    rng = np.random.default_rng(7)
    return rng.integers(0, 4000, size=(n, ROWS, COLS)).astype(np.uint16)


def _header(n=N, extra=()):
    return [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", "1.2.3"),
            (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"),
            (0x00280008, "IS", str(n)), (0x00280010, "US", ROWS), (0x00280011, "US", COLS),
            (0x00280100, "US", 16), (0x00280101, "US", 16), (0x00280102, "US", 15),
            (0x00280103, "US", 0)] + list(extra)


def _pad(b):
    return b + b"\0" * (len(b) % 2)


def _file(items, *, n=N, extra=(), ts=RLE):
    """A Part 10 file whose pixel data items are exactly ``items`` (BOT value first)."""
    body = encode_dataset(_header(n, extra) + [(0x7FE00010, "OB", items,
                                                {"undefined_length": True})])
    meta = encode_file_meta(transfer_syntax=ts, sop_class_uid="1.2", sop_instance_uid="1.3")
    return b"\0" * 128 + b"DICM" + meta + body


def _encoded(frames):
    return [_pad(rle_encode_frame(f)) for f in frames]


def _offsets(fragments):
    pos, out = 0, []
    for f in fragments:
        out.append(pos)
        pos += 8 + len(f)
    return out


def _read(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fastdicom.dcmread(data)


def test_empty_bot_one_fragment_per_frame():
    frames = _frames()
    ds = _read(_file([b""] + _encoded(frames)))
    np.testing.assert_array_equal(ds.pixel_array, frames)
    assert isinstance(ds.encapsulated_frame(2), memoryview)
    assert bytes(ds.encapsulated_frame(2)) == _encoded(frames)[2]


def test_bot_with_split_fragments():
    frames = _frames()
    frags, bot = [], []
    pos = 0
    for enc in _encoded(frames):
        half = (len(enc) // 2) & ~1
        parts = [enc[:half], enc[half:]]
        bot.append(pos)
        for p in parts:
            frags.append(p)
            pos += 8 + len(p)
    ds = _read(_file([struct.pack(f"<{len(bot)}I", *bot)] + frags))
    np.testing.assert_array_equal(ds.pixel_array, frames)
    assert isinstance(ds.encapsulated_frame(1), bytes)
    np.testing.assert_array_equal(ds.frame(3), frames[3])
    # the table is built once and cached
    assert ds.__dict__["_pixel_cache"]["frame_table"] is not None


def _bot_case(bot):
    frags = _encoded(_frames())
    return _read(_file([struct.pack(f"<{len(bot)}I", *bot)] + frags))


@pytest.mark.parametrize("kind", ["past_end", "not_increasing", "not_boundary", "first_not_0",
                                  "wrong_count"])
def test_bad_bot(kind):
    offs = _offsets(_encoded(_frames()))
    bot = {"past_end": offs[:3] + [10 ** 6],
           "not_increasing": [offs[0], offs[2], offs[1], offs[3]],
           "not_boundary": [offs[0], offs[1] + 2, offs[2], offs[3]],
           "first_not_0": [8] + offs[1:],
           "wrong_count": offs[:3]}[kind]
    ds = _bot_case(bot)
    with pytest.raises(EncapsulationError):
        ds.pixel_array
    with pytest.raises(EncapsulationError):
        ds.frame(0)


def test_bot_length_not_multiple_of_4():
    ds = _read(_file([b"\0\0\0\0\0\0"] + _encoded(_frames())))
    with pytest.raises(EncapsulationError):
        ds.pixel_array


def _eot(offsets, lengths):
    return [(0x7FE00001, "OV", struct.pack(f"<{len(offsets)}Q", *offsets)),
            (0x7FE00002, "OV", struct.pack(f"<{len(lengths)}Q", *lengths))]


def test_eot_valid():
    frames = _frames()
    enc = _encoded(frames)
    ds = _read(_file([b""] + enc, extra=_eot(_offsets(enc), [len(e) for e in enc])))
    np.testing.assert_array_equal(ds.pixel_array, frames)


@pytest.mark.parametrize("kind", ["length", "count", "boundary", "missing_lengths"])
def test_eot_inconsistent(kind):
    enc = _encoded(_frames())
    offs, lens = _offsets(enc), [len(e) for e in enc]
    if kind == "length":
        extra = _eot(offs, lens[:-1] + [lens[-1] + 2])
    elif kind == "count":
        extra = _eot(offs[:3], lens[:3])
    elif kind == "boundary":
        extra = _eot([offs[0], offs[1] + 4] + offs[2:], lens)
    else:
        extra = _eot(offs, lens)[:1]
    ds = _read(_file([b""] + enc, extra=extra))
    with pytest.raises(EncapsulationError):
        ds.pixel_array


def test_codestream_boundaries_without_bot():
    """More fragments than frames and no offset table: frames end at EOI markers (FFD9)."""
    imagecodecs = pytest.importorskip("imagecodecs")
    frames = (_frames() // 16).astype(np.uint8)
    codestreams = [_pad(bytes(imagecodecs.jpeg8_encode(f, level=95))) for f in frames]
    frags = []
    for enc in codestreams:
        cut = (len(enc) // 2) & ~1
        frags += [enc[:cut], enc[cut:]]
    extra = [(0x00280100, "US", 8), (0x00280101, "US", 8), (0x00280102, "US", 7)]
    header = [e for e in _header() if e[0] not in (0x00280100, 0x00280101, 0x00280102)]
    body = encode_dataset(header + extra + [(0x7FE00010, "OB", [b""] + frags,
                                             {"undefined_length": True})])
    meta = encode_file_meta(transfer_syntax="1.2.840.10008.1.2.4.50", sop_class_uid="1.2",
                            sop_instance_uid="1.3")
    ds = _read(b"\0" * 128 + b"DICM" + meta + body)
    for k in range(N):
        assert bytes(ds.encapsulated_frame(k)) == codestreams[k]
    arr = ds.pixel_array
    assert arr.shape == (N, ROWS, COLS)
    for k in range(N):
        np.testing.assert_array_equal(arr[k], imagecodecs.jpeg8_decode(codestreams[k]))


def test_fewer_fragments_than_frames():
    enc = _encoded(_frames())
    ds = _read(_file([b""] + enc[:2]))
    with pytest.raises(EncapsulationError):
        ds.pixel_array


def test_fragment_past_end_is_detected_by_scanner():
    enc = _encoded(_frames())
    data = _file([b""] + enc)
    # cut the file inside the last fragment (and drop the sequence delimiter)
    cut = data[:len(data) - 8 - 5]
    with pytest.raises(DicomError):
        ds = fastdicom.dcmread(cut, validation="raise")
        ds.pixel_array
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = fastdicom.dcmread(cut)
        with pytest.raises(PixelDataError):
            ds.pixel_array   # the last frame is cut short: RLE decoding fails


def test_wrong_decoded_size_rle():
    """RLE segments longer than Rows x Columns: RLEDecodeError under validation="raise";
    a warning and the surplus discarded otherwise (pydicom's leniency)."""
    from fastdicom.errors import DicomWarning, RLEDecodeError
    big = np.zeros((ROWS + 2, COLS), dtype=np.uint16)
    data = _file([b""] + [_pad(rle_encode_frame(big))] * N)
    with pytest.raises(RLEDecodeError):
        fastdicom.dcmread(data, validation="raise").pixel_array
    with pytest.warns(DicomWarning):
        fastdicom.dcmread(data).pixel_array
    small = np.zeros((ROWS - 2, COLS), dtype=np.uint16)
    data = _file([b""] + [_pad(rle_encode_frame(small))] * N)
    with pytest.raises(PixelDataError):
        _read(data).pixel_array


def test_wrong_decoded_size_jpeg():
    imagecodecs = pytest.importorskip("imagecodecs")
    img = np.zeros((ROWS + 3, COLS), dtype=np.uint8)
    enc = _pad(bytes(imagecodecs.jpeg8_encode(img)))
    extra = [(0x00280100, "US", 8), (0x00280101, "US", 8), (0x00280102, "US", 7)]
    body = encode_dataset([e for e in _header(1) if e[0] not in (0x00280100, 0x00280101,
                                                                 0x00280102)] + extra +
                          [(0x7FE00010, "OB", [b"", enc], {"undefined_length": True})])
    meta = encode_file_meta(transfer_syntax="1.2.840.10008.1.2.4.50", sop_class_uid="1.2",
                            sop_instance_uid="1.3")
    ds = _read(b"\0" * 128 + b"DICM" + meta + body)
    with pytest.raises(PixelDataError):
        ds.pixel_array


def test_missing_imagecodecs(monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    body = encode_dataset(_header(1) + [(0x7FE00010, "OB", [b"", b"\xff\xd8\xff\xd9"],
                                         {"undefined_length": True})])
    meta = encode_file_meta(transfer_syntax="1.2.840.10008.1.2.4.50", sop_class_uid="1.2",
                            sop_instance_uid="1.3")
    ds = _read(b"\0" * 128 + b"DICM" + meta + body)
    with pytest.raises(MissingCodecError) as info:
        ds.pixel_array
    assert "1.2.840.10008.1.2.4.50" in str(info.value)
    assert "fastdicom[codecs]" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_deflated_image_frame_compression():
    import zlib
    frames = _frames()
    frags = []
    for f in frames:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        frags.append(_pad(c.compress(f.astype("<u2").tobytes()) + c.flush()))
    ds = _read(_file([b""] + frags, ts="1.2.840.10008.1.2.8.1"))
    np.testing.assert_array_equal(ds.pixel_array, frames)


def test_encapsulated_uncompressed():
    frames = _frames()
    ds = _read(_file([b""] + [f.astype("<u2").tobytes() for f in frames],
                     ts="1.2.840.10008.1.2.1.98"))
    np.testing.assert_array_equal(ds.pixel_array, frames)


def _one_frame_file(ts, enc, bits=8):
    extra = [(0x00280100, "US", bits), (0x00280101, "US", bits), (0x00280102, "US", bits - 1)]
    body = encode_dataset([e for e in _header(1) if e[0] not in (0x00280100, 0x00280101,
                                                                 0x00280102)] + extra +
                          [(0x7FE00010, "OB", [b"", _pad(enc)], {"undefined_length": True})])
    meta = encode_file_meta(transfer_syntax=ts, sop_class_uid="1.2", sop_instance_uid="1.3")
    return b"\0" * 128 + b"DICM" + meta + body


def _spy(monkeypatch, module, name: str) -> list:
    """Wrap ``module.name`` to record its calls (one item each) in the list returned."""
    called: list = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: called.append(1) or real(*a, **k))
    return called


def _patch_sof(enc: bytes, width: int) -> bytes:
    """The width of the first SOF (JPEG, JPEG-LS) set to ``width``."""
    from fastdicom.pixels.codecs import _SOF_MARKERS
    pos = 2
    while enc[pos] == 0xFF and enc[pos + 1] not in _SOF_MARKERS:
        pos += 2 + struct.unpack_from(">H", enc, pos + 2)[0]
    return enc[:pos + 7] + struct.pack(">H", width) + enc[pos + 9:]


@pytest.mark.parametrize("codec", ["jpeg", "jpegls", "j2k"])
def test_declared_codestream_size_checked_before_decoding(codec, monkeypatch):
    """A codestream whose header declares another size than Rows x Columns x Samples is
    refused before the codec allocates from it (a garbage width is a memory bomb); the
    codec is not even called.  The unpatched stream decodes."""
    imagecodecs = pytest.importorskip("imagecodecs")
    img = (np.arange(ROWS * COLS, dtype=np.uint8) * 3).reshape(ROWS, COLS)
    if codec == "jpeg":
        ts, name = "1.2.840.10008.1.2.4.70", "jpeg8_decode"
        enc = bytes(imagecodecs.jpeg8_encode(img, lossless=True))
        bad = _patch_sof(enc, 60000)
    elif codec == "jpegls":
        ts, name = "1.2.840.10008.1.2.4.80", "jpegls_decode"
        enc = bytes(imagecodecs.jpegls_encode(img))
        bad = _patch_sof(enc, 60000)
    else:
        ts, name = "1.2.840.10008.1.2.4.90", "jpeg2k_decode"
        enc = bytes(imagecodecs.jpeg2k_encode(img, level=0, codecformat="J2K"))
        assert enc[:4] == b"\xff\x4f\xff\x51"
        bad = enc[:8] + struct.pack(">I", 0x00AB0280) + enc[12:]   # Xsiz: 11 million
    np.testing.assert_array_equal(_read(_one_frame_file(ts, enc)).pixel_array, img)
    called = _spy(monkeypatch, imagecodecs, name)
    with pytest.raises(PixelDataError, match="declares"):
        _read(_one_frame_file(ts, bad)).pixel_array
    assert not called
    # no frame header at all: refused the same way
    with pytest.raises(PixelDataError, match="no frame header"):
        _read(_one_frame_file(ts, b"\xff\xd8\xff\xd9" if codec != "j2k" else b"\xff\x4f\xff\xd9"
                              )).pixel_array
    assert not called


def test_jpegls_stream_cut_short_is_refused_before_charls(monkeypatch):
    """CharLS spends seconds on some JPEG-LS streams cut short (it fails on all of them: it
    needs the end-of-image marker), so a stream without FFD9 near its end never reaches it.
    Every cut of a real stream is refused; the whole stream, and the stream with padding after
    its EOI, decode."""
    imagecodecs = pytest.importorskip("imagecodecs")
    img = (np.arange(ROWS * COLS, dtype=np.uint16) * 37 % 4096).reshape(ROWS, COLS)
    ts = "1.2.840.10008.1.2.4.80"
    enc = bytes(imagecodecs.jpegls_encode(img))
    assert enc.endswith(b"\xff\xd9")
    for good in (enc, enc + b"\0" * 6):
        np.testing.assert_array_equal(_read(_one_frame_file(ts, good, 16)).pixel_array, img)
    called = []
    real = imagecodecs.jpegls_decode
    monkeypatch.setattr(imagecodecs, "jpegls_decode",
                        lambda *a, **k: called.append(1) or real(*a, **k))
    header_end = enc.index(b"\xff\xda") + 2
    for cut in range(header_end + 12, len(enc) - 1, max(1, (len(enc) - header_end) // 40)):
        with pytest.raises(PixelDataError, match="end-of-image"):
            _read(_one_frame_file(ts, enc[:cut], 16)).pixel_array
    assert not called


def test_jp2_size_is_read_from_the_codestream_the_decoder_reads(monkeypatch):
    """A JP2 file whose first SOC SIZ sits in a box before the Contiguous Codestream box (an
    XML box holding a decoy SIZ of the header's size) passed the size check, and openjpeg
    then allocated the real codestream's image (a 2 KB file: 1.9 GB).  The size is the
    ``jp2c`` box's now; a JP2 file whose codestream agrees with the header decodes."""
    imagecodecs = pytest.importorskip("imagecodecs")
    ts = "1.2.840.10008.1.2.4.90"
    img = (np.arange(ROWS * COLS, dtype=np.uint8) * 3).reshape(ROWS, COLS)
    big = np.zeros((40, 30), np.uint8)
    good = bytes(imagecodecs.jpeg2k_encode(img, level=0, codecformat="JP2"))
    bad = bytes(imagecodecs.jpeg2k_encode(big, level=0, codecformat="JP2"))
    decoy = bytes(imagecodecs.jpeg2k_encode(img, level=0, codecformat="J2K"))[:60]
    xml = struct.pack(">I4s", 8 + len(decoy), b"xml ") + decoy
    sig_end = 12                  # after the JP2 signature box
    assert good[:sig_end] == bad[:sig_end] == b"\x00\x00\x00\x0cjP  \r\n\x87\n"
    bad = bad[:sig_end] + xml + bad[sig_end:]
    np.testing.assert_array_equal(_read(_one_frame_file(ts, good)).pixel_array, img)
    called = _spy(monkeypatch, imagecodecs, "jpeg2k_decode")
    with pytest.raises(PixelDataError, match="declares 40 x 30 x 1 samples"):
        _read(_one_frame_file(ts, bad)).pixel_array
    # a JP2 file without a codestream box, or a box length past the end: no frame header
    for broken in (good[:sig_end] + xml, good[:sig_end] + struct.pack(">I4s", 1 << 30, b"jp2h")):
        with pytest.raises(PixelDataError, match="no frame header"):
            _read(_one_frame_file(ts, broken)).pixel_array
    assert not called


@pytest.mark.parametrize("container", [False, True])
def test_jpegxl_declared_size_checked_before_decoding(monkeypatch, container):
    """libjxl allocates the image its header declares: a 41 KB frame declaring 20000 x 20000
    under Rows = Columns = 1 made 384 MB before the size was compared after decoding."""
    imagecodecs = pytest.importorskip("imagecodecs")
    if not imagecodecs.JPEGXL.available:
        pytest.skip("imagecodecs without JPEG XL")
    ts = "1.2.840.10008.1.2.4.110"
    img = (np.arange(ROWS * COLS, dtype=np.uint8) * 3).reshape(ROWS, COLS)
    good = bytes(imagecodecs.jpegxl_encode(img, lossless=True, usecontainer=container))
    bad = bytes(imagecodecs.jpegxl_encode(np.zeros((300, 200), np.uint8), lossless=True,
                                          usecontainer=container))
    np.testing.assert_array_equal(_read(_one_frame_file(ts, good)).pixel_array, img)
    called = _spy(monkeypatch, imagecodecs, "jpegxl_decode")
    with pytest.raises(PixelDataError, match="declares 300 x 200 pixels"):
        _read(_one_frame_file(ts, bad)).pixel_array
    with pytest.raises(PixelDataError, match="no size header"):
        _read(_one_frame_file(ts, b"\xff\x0a")).pixel_array
    assert not called


def test_jpegxl_size_header_parsed_as_libjxl_reads_it():
    # every SizeHeader form (small multiples of 8, the four U32 ranges, the ratio codes)
    imagecodecs = pytest.importorskip("imagecodecs")
    if not imagecodecs.JPEGXL.available:
        pytest.skip("imagecodecs without JPEG XL")
    from fastdicom.pixels.codecs import jpegxl_parameters
    sizes = [(8, 8), (256, 256), (1, 1), (64, 48), (90, 160), (100, 120), (300, 400),
             (96, 72), (513, 700), (3, 1000), (1000, 3), (600, 1200), (9000, 2)]
    for h, w in sizes:
        enc = imagecodecs.jpegxl_encode(np.zeros((h, w), np.uint8), lossless=True)
        assert jpegxl_parameters(enc) == {"width": w, "height": h}, (h, w)


# ---------------------------------------------------------------------------------------------
# many fragments: memory bounded by the data, not a Python object per fragment

_ITEM = b"\xfe\xff\x00\xe0"
_SEQ_DELIM = b"\xfe\xff\xdd\xe0\0\0\0\0"


def _raw_fragments_file(fragments: list, *, n=1, ts=RLE, bot=b""):
    """A Part 10 file whose encapsulated pixel data is ``bot`` then ``fragments`` (bytes,
    each written as one item), the items appended by hand (fast for millions of items)."""
    body = encode_dataset(_header(n) + [(0x7FE00010, "OB", [bot], {"undefined_length": True})])
    assert body.endswith(_SEQ_DELIM)
    items = b"".join(_ITEM + struct.pack("<I", len(f)) + f for f in fragments)
    meta = encode_file_meta(transfer_syntax=ts, sop_class_uid="1.2", sop_instance_uid="1.3")
    return b"\0" * 128 + b"DICM" + meta + body[:-8] + items + _SEQ_DELIM


def test_many_empty_fragments_cost_memory_bounded_by_the_data():
    """One RLE frame of 256 x 256 in two fragments with 300 000 empty ones between them (a
    2.5 MB file).  The fragments and the frame table were Python tuples (and the frame a join
    over a list of 300 000 memoryviews): about 470 bytes a fragment, 140 MB.  They are int64
    arrays now, taken from the element index in one pass (16 bytes a fragment, under 2 times
    the file; a copy of the index's 48-byte entries took 7.6 times), and the frame is joined
    into one allocation of its size."""
    import tracemalloc

    from fastdicom.pixels.encaps import encapsulated_frame, frame_head, frame_table
    rows = cols = 256
    frame = np.random.default_rng(3).integers(0, 4000, size=(rows, cols)).astype(np.uint16)
    enc = _encoded([frame])[0]
    half = len(enc) // 2 & ~1
    count = 300_000
    header = [e for e in _header(1) if e[0] not in (0x00280010, 0x00280011)]
    header += [(0x00280010, "US", rows), (0x00280011, "US", cols)]
    body = encode_dataset(header + [(0x7FE00010, "OB", [b""], {"undefined_length": True})])
    meta = encode_file_meta(transfer_syntax=RLE, sop_class_uid="1.2", sop_instance_uid="1.3")
    data = b"".join([b"\0" * 128, b"DICM", meta, body[:-8],
                     _ITEM, struct.pack("<I", half), enc[:half],
                     (_ITEM + b"\0\0\0\0") * count,
                     _ITEM, struct.pack("<I", len(enc) - half), enc[half:], _SEQ_DELIM])
    size = len(data)
    ds = _read(data)
    del data
    tracemalloc.start()
    try:
        table = frame_table(ds)
        head, length = frame_head(ds, 0)
        table_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        encoded = encapsulated_frame(ds, 0)
        join_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert table_peak < 3 * size, f"{table_peak} bytes allocated for a {size}-byte file"
    assert join_peak < 2 * len(enc) + (1 << 20), \
        f"{join_peak} bytes allocated to join a {len(enc)}-byte frame"
    assert isinstance(encoded, bytes) and encoded == enc
    assert length == len(enc) and bytes(head) == enc[:64]
    assert len(table) == 1 and len(table[0]) == count + 2
    np.testing.assert_array_equal(ds.pixel_array, frame)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_frames_of_many_fragments_join_as_their_bytes(seed):
    """Frames cut into fragments of every size (empty, tiny, over 512 bytes) under a Basic
    Offset Table: each frame's bytes are its fragments' bytes in order, and its head the
    first 64 of them."""
    from fastdicom.pixels.encaps import encapsulated_frame, frame_head
    rng = np.random.default_rng(seed)
    streams = [rng.integers(0, 256, size=int(size), dtype=np.uint8).tobytes()
               for size in (3000, 1, 0, 700, 40)]
    fragments, bot, pos = [], [], 0
    for stream in streams:
        bot.append(pos)
        cuts = np.sort(rng.integers(0, len(stream) + 1, size=int(rng.integers(1, 60))))
        cuts = [0] + [int(c) for c in cuts] + [len(stream)]
        for a, b in zip(cuts[:-1], cuts[1:]):
            fragments.append(stream[a:b])
            pos += 8 + b - a
        if rng.integers(0, 2):
            fragments.append(b"")
            pos += 8
    ds = _read(_raw_fragments_file(fragments, n=len(streams),
                                   bot=struct.pack(f"<{len(bot)}I", *bot)))
    for k, stream in enumerate(streams):
        assert bytes(encapsulated_frame(ds, k)) == stream
        head, length = frame_head(ds, k)
        assert (bytes(head), length) == (stream[:64], len(stream))


def _old_codestream_groups(fragments: list) -> list:
    """pydicom's rule, as the tuple-based code applied it: a frame ends with the fragment
    holding FFD9 in its last 10 bytes."""
    groups, current = [], []
    for frag in fragments:
        current.append(frag)
        if b"\xff\xd9" in frag[-10:]:
            groups.append(b"".join(current))
            current = []
    if current:
        groups.append(b"".join(current))
    return groups


def test_codestream_ends_found_in_the_last_10_bytes_of_each_fragment():
    """Fragments of many lengths with FFD9 inside, straddling and outside the last 10 bytes
    (and split across two fragments): frames end where the rule says."""
    rng = np.random.default_rng(5)
    fragments = []
    for _ in range(400):
        size = int(rng.integers(0, 30)) * 2
        frag = bytearray(rng.integers(0, 0xF0, size=size, dtype=np.uint8).tobytes())
        if size >= 2 and rng.integers(0, 2):
            at = int(rng.integers(0, size - 1))
            frag[at:at + 2] = b"\xff\xd9"
        elif size and rng.integers(0, 4) == 0:
            frag[-1] = 0xFF          # FF here, D9 opening the next fragment
        fragments.append(bytes(frag))
    groups = _old_codestream_groups(fragments)
    assert 10 < len(groups) < len(fragments)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = fastdicom.dcmread(_raw_fragments_file(fragments, n=len(groups)))
        for k, group in enumerate(groups):
            assert bytes(ds.encapsulated_frame(k)) == group


# ---------------------------------------------------------------------------------------------
# errors carry the offset of what is at fault

def _pixel_header_offset(data: bytes) -> int:
    return data.rindex(b"\xe0\x7f\x10\x00OB\0\0\xff\xff\xff\xff")


def test_bot_errors_carry_the_offset_of_the_bot_item():
    enc = _encoded(_frames())
    offs = _offsets(enc)
    data = _file([struct.pack("<4I", offs[0], offs[1] + 2, offs[2], offs[3])] + enc)
    bot_item = _pixel_header_offset(data) + 12
    assert data[bot_item:bot_item + 4] == _ITEM
    for read in (lambda ds: ds.pixel_array, lambda ds: ds.frame(0)):
        with pytest.raises(EncapsulationError, match="not at a fragment item boundary") as info:
            read(_read(data))
        assert info.value.offset == bot_item and info.value.tag == 0x7FE00010


def test_fragment_count_errors_carry_the_offset_of_the_pixel_element():
    enc = _encoded(_frames())
    data = _file([b""] + enc[:2])
    with pytest.raises(EncapsulationError, match="2 fragments for 4 frames") as info:
        _read(data).pixel_array
    assert info.value.offset == _pixel_header_offset(data)
    assert info.value.tag == 0x7FE00010


def test_eot_errors_carry_the_offset_of_the_table_element():
    enc = _encoded(_frames())
    offs, lens = _offsets(enc), [len(e) for e in enc]
    for bad_lengths, tag in ((False, 0x7FE00001), (True, 0x7FE00002)):
        extra = _eot([offs[0], offs[1] + 4] + offs[2:], lens) if not bad_lengths else \
            _eot(offs, lens[:-1] + [lens[-1] + 2])
        ds = _read(_file([b""] + enc, extra=extra))
        with pytest.raises(EncapsulationError) as info:
            ds.pixel_array
        assert info.value.tag == tag
        assert info.value.offset == ds[tag].header_offset > 0


def test_a_frame_that_fails_to_decode_carries_its_first_fragment_offset():
    """An RLE frame whose segment is cut short: the error points at the frame's first
    fragment item (the third frame of four, in two fragments), from pixel_array and
    frame()."""
    frames = _frames()
    enc = _encoded(frames)
    enc[2] = enc[2][:64] + b"\x05ab"       # header intact, the first segment cut short
    fragments, bot, pos = [], [], 0
    for e in enc:
        bot.append(pos)
        for part in (e[:64], e[64:]):
            fragments.append(_pad(part))
            pos += 8 + len(_pad(part))
    data = _file([struct.pack("<4I", *bot)] + fragments)
    first_item = _pixel_header_offset(data) + 12 + 8 + 16 + bot[2]
    assert data[first_item:first_item + 4] == _ITEM
    for read in (lambda ds: ds.pixel_array, lambda ds: ds.frame(2)):
        with pytest.raises(PixelDataError) as info:
            read(_read(data))
        assert info.value.offset == first_item and info.value.tag == 0x7FE00010
    np.testing.assert_array_equal(_read(data).frame(3), frames[3])


@pytest.mark.parametrize("name", ["rtdose_rle.dcm", "SC_rgb_rle_2frame.dcm",
                                  "SC_rgb_rle_16bit_2frame.dcm", "MR_small_RLE.dcm"])
@pytest.mark.parametrize("with_bot", [False, True])
def test_encapsulated_pixel_data_set_in_memory_decodes(name, with_bot):
    """``ds.PixelData = encapsulate(frames)`` (pydicom's encoder, the oracle) under an
    encapsulated transfer syntax decodes to the pixels of the file the frames came from, frame
    by frame and whole, as pydicom decodes such a value; so does a deep copy of the file."""
    import copy
    pydicom = pytest.importorskip("pydicom")
    from pydicom.encaps import encapsulate
    from _data import require_shared
    path = require_shared() / "corpus" / "pydicom" / "test_files" / name
    if not path.exists():
        pytest.skip(f"{name} not in the corpus")
    ds = fastdicom.dcmread(path)
    expected = pydicom.dcmread(str(path)).pixel_array
    np.testing.assert_array_equal(ds.pixel_array, expected)
    frames = [bytes(ds.encapsulated_frame(i)) for i in range(ds.num_frames)]
    for value in (encapsulate(frames, has_bot=with_bot),
                  encapsulate(frames, has_bot=with_bot) + b"\xfe\xff\xdd\xe0\0\0\0\0"):
        mem = fastdicom.dcmread(path)
        mem.PixelData = value
        np.testing.assert_array_equal(mem.pixel_array, expected)
        for i in range(mem.num_frames):
            assert bytes(mem.encapsulated_frame(i)) == frames[i]
            np.testing.assert_array_equal(mem.frame(i), expected[i] if mem.num_frames > 1
                                          else expected)
    np.testing.assert_array_equal(copy.deepcopy(ds).pixel_array, expected)


def test_encapsulated_pixel_data_set_in_memory_that_is_not_items_is_an_error():
    from _data import require_shared
    path = require_shared() / "corpus" / "pydicom" / "test_files" / "MR_small_RLE.dcm"
    ds = fastdicom.dcmread(path)
    ds.PixelData = b"\x01\x02\x03\x04" * 16
    with pytest.raises(EncapsulationError, match="not a sequence of items"):
        ds.pixel_array
