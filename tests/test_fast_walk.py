"""The nogil header walks of ``scan`` (fastdicom._batch) and of the series reader
(fastdicom._series) never accept a file that the general reader refuses, nor read one
differently.  They pass over sequences without indexing them; the general reader scans every
sequence but defined-length ones of DEFER_SQ_BYTES or more.  So the walks check the structure
of what they pass over, and leave anything doubtful (and any unknown VR) to the general
reader.  Oracle: the general reader itself (dcmread, scan's per-file reader, scan_instance),
on hand-built damage and on random byte mutations inside sequences."""
from __future__ import annotations

import dataclasses
import random
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastdicom
from _data import require_shared
from fastdicom import batch, testing
from fastdicom.dataset import DEFER_SQ_BYTES
from fastdicom.series import InstanceHeader, find_series, scan_instance

_series = pytest.importorskip("fastdicom._series")
_batch = pytest.importorskip("fastdicom._batch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import oracle  # noqa: E402  (fuzz/oracle.py: shared with the fuzz harnesses)

TAGS = tuple(batch.DEFAULT_TAGS)
SYNTAXES = [testing.EXPLICIT_LE, testing.IMPLICIT_LE]


def _slice(k: int, *, undefined: bool, big_item: int = 0) -> list:
    """A 4x4 CT slice with a two-level sequence (two items, the inner one with a nested
    sequence) ahead of the image tags; ``big_item`` adds that many bytes of OB to an item."""
    inner = [(0x00080100, "SH", "T-D0050"), (0x00080102, "SH", "SRT"),
             (0x00080104, "LO", "Tissue")]
    item = [(0x00081150, "UI", testing.CT_IMAGE_STORAGE), (0x00081155, "UI", f"1.2.9.{k}"),
            (0x00089215, "SQ", [inner, inner])]
    items = [item, item + ([(0x00091010, "OB", b"\x01" * big_item)] if big_item else [])]
    return [
        (0x00080008, "CS", ["ORIGINAL", "PRIMARY", "AXIAL"]),
        (0x00080016, "UI", testing.CT_IMAGE_STORAGE), (0x00080018, "UI", f"1.2.826.0.1.{k}"),
        (0x00080060, "CS", "CT"),
        (0x00081140, "SQ", items, {"undefined_length": undefined}),
        (0x00100020, "LO", "PAT1"),
        (0x0020000D, "UI", "1.2.826.0.1.7"), (0x0020000E, "UI", "1.2.826.0.1.7.1"),
        (0x00200013, "IS", k + 1), (0x00200032, "DS", [0, 0, float(k)]),
        (0x00200037, "DS", [1, 0, 0, 0, 1, 0]), (0x00200052, "UI", "1.2.826.0.1.7.2"),
        (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"), (0x00280010, "US", 4),
        (0x00280011, "US", 4), (0x00280030, "DS", [1, 1]), (0x00280100, "US", 16),
        (0x00280101, "US", 16), (0x00280102, "US", 15), (0x00280103, "US", 0),
        (0x7FE00010, "OW", np.full(16, k, np.uint16).tobytes()),
    ]


def _write(path, k=0, ts=testing.EXPLICIT_LE, undefined=False, big_item=0):
    testing.write_file(path, _slice(k, undefined=undefined, big_item=big_item),
                       transfer_syntax=ts)
    return path


def _patch(path, old: bytes, new: bytes) -> None:
    """Replace the one occurrence of ``old`` in the file."""
    data = path.read_bytes()
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))


def _sq_span(data: bytes, ts: str) -> tuple:
    """(start, end) of the Referenced Image Sequence element in ``data``."""
    start = data.index(b"\x08\x00\x40\x11")
    end = data.index(b"\x10\x00\x20\x00", start)        # PatientID follows it
    return start, end


_general_row = oracle.general_row
_outcome = oracle.outcome


def _agree(path) -> bool:
    """The walks agree with the general reader on ``path`` (fuzz/oracle.py, which the
    fuzz_walk harness runs too); True when the series walk took the file itself."""
    pytest.importorskip("fsspec")       # (the dask reader is compared too, never left out)
    return oracle.walks_agree(path)


def test_check_threshold_is_the_general_readers():
    assert _batch.SQ_CHECK_DEFER_BYTES == _series.SQ_CHECK_DEFER_BYTES == DEFER_SQ_BYTES


@pytest.mark.parametrize("ts", SYNTAXES)
@pytest.mark.parametrize("undefined", [False, True])
def test_clean_sequences_stay_on_the_fast_walks(tmp_path, ts, undefined):
    p = _write(tmp_path / "a.dcm", ts=ts, undefined=undefined)
    assert _agree(p)
    assert batch.scan([p]).column("error_type").to_pylist() == [None]


def _damage_item_tag(data, start, end):
    i = data.index(b"\xfe\xff\x00\xe0", start)
    return data[:i] + b"\x08\x00\x50\x11" + data[i + 4:]


def _damage_inner_length(data, start, end):
    # the length of (0008,0104) inside the nested item grows past its item
    i = data.index(b"\x08\x00\x04\x01", start)
    if data[i + 4:i + 6] == b"LO":
        return data[:i + 6] + struct.pack("<H", 0x4000) + data[i + 8:]
    return data[:i + 4] + struct.pack("<I", 0x4000) + data[i + 8:]


def _damage_item_length(data, start, end):
    # the first item claims more bytes than its sequence holds
    i = data.index(b"\xfe\xff\x00\xe0", start)
    return data[:i + 4] + struct.pack("<I", end - start + 64) + data[i + 8:]


@pytest.mark.parametrize("ts", SYNTAXES)
@pytest.mark.parametrize("undefined", [False, True])
@pytest.mark.parametrize("damage", [_damage_item_tag, _damage_inner_length,
                                    _damage_item_length])
def test_damage_inside_a_sequence_is_judged_by_the_general_reader(tmp_path, ts, undefined,
                                                                   damage):
    """The walks skipped defined-length sequences (and defined-length items of undefined-
    length ones) by their length: a slice dcmread refuses was loaded, and scan() gave it a
    clean row."""
    good = [_write(tmp_path / f"{k}.dcm", k, ts=ts, undefined=undefined) for k in range(3)]
    p = good[1]
    data = p.read_bytes()
    start, end = _sq_span(data, ts)
    p.write_bytes(damage(data, start, end))
    _agree(p)
    # the series reader keeps the slice exactly when its general path reads it
    kept = isinstance(_outcome(scan_instance, str(p)), InstanceHeader)
    assert [s.num_instances for s in _outcome(find_series, tmp_path)] == [3 if kept else 2]


def test_item_tag_damage_is_refused_in_explicit_vr(tmp_path):
    """The case that was accepted: an explicit VR file whose small defined-length sequence
    holds a non-item tag where an item belongs."""
    for k in range(3):
        _write(tmp_path / f"{k}.dcm", k)
    p = tmp_path / "1.dcm"
    data = p.read_bytes()
    p.write_bytes(_damage_item_tag(data, *_sq_span(data, testing.EXPLICIT_LE)))
    with pytest.raises(fastdicom.MalformedElementError):
        fastdicom.dcmread(p)
    assert _series.scan_headers([str(p)], InstanceHeader) == [False]
    assert batch.scan([p]).column("error_type").to_pylist() == ["MalformedElementError"]
    vol = fastdicom.load_series(tmp_path, errors="skip")
    assert vol.shape == (2, 4, 4)


@pytest.mark.parametrize("undefined", [False, True])
def test_unknown_vr_is_left_to_the_general_reader(tmp_path, undefined):
    """VR bytes of two upper-case letters that name no VR: the general reader reads that
    element as implicit VR (its length from the next four bytes); the walks read a 16-bit
    length and went on as if nothing were wrong."""
    p = _write(tmp_path / "a.dcm", undefined=undefined)
    data = p.read_bytes()
    root = data.replace(b"\x60\x00CS", b"\x60\x00QQ", 1)            # Modality, at the root
    start, _ = _sq_span(data, testing.EXPLICIT_LE)
    i = data.index(b"\x08\x00\x50\x11UI", start)                   # in an item
    nested = data[:i + 4] + b"QQ" + data[i + 6:]
    for name, raw in (("root", root), ("item", nested)):
        q = tmp_path / f"{name}.dcm"
        q.write_bytes(raw)
        assert _series.scan_headers([str(q)], InstanceHeader) == [False], name
        _agree(q)


@pytest.mark.parametrize("ts", SYNTAXES)
def test_large_defined_sequence_is_left_for_first_access(tmp_path, ts):
    """A defined-length sequence of DEFER_SQ_BYTES or more is indexed only when accessed (by
    dcmread too): damage inside it does not make the walks fall back."""
    p = _write(tmp_path / "a.dcm", ts=ts, big_item=DEFER_SQ_BYTES)
    data = p.read_bytes()
    start, end = _sq_span(data, ts)
    assert end - start > DEFER_SQ_BYTES
    # an element of a nested item runs past its item
    p.write_bytes(_damage_inner_length(data, start, end))
    ds = fastdicom.dcmread(p, stop_before_pixels=True)
    assert ds.Modality == "CT"
    # ... and the damage shows on access: an error (explicit VR), or the value kept as
    # bytes with a warning (implicit VR, where the SQ came from the dictionary)
    if ts == testing.EXPLICIT_LE:
        with pytest.raises(fastdicom.MalformedElementError):
            len(ds.ReferencedImageSequence)
    else:
        with pytest.warns(fastdicom.DicomWarning, match="not a sequence"):
            assert isinstance(ds.ReferencedImageSequence, bytes)
    assert _agree(p)


def _mutate(rng, data: bytearray, start: int, end: int) -> None:
    """Overwrite 1-3 places of ``data[start:end]`` with a random byte, a structural word
    (item and delimiter tags, lengths, the Pixel Data tag) or a VR code."""
    for _ in range(rng.choice((1, 1, 2, 3))):
        i = rng.randrange(start, max(start + 1, end))
        kind = rng.random()
        if kind < 0.5:
            data[i] = rng.randrange(256)
        elif kind < 0.8:
            data[i:i + 4] = rng.choice((
                b"\xfe\xff\x00\xe0", b"\xfe\xff\x0d\xe0", b"\xfe\xff\xdd\xe0", b"\xff\xff\xff\xff",
                b"\xe0\x7f\x10\x00", b"\0\0\0\0", struct.pack("<I", rng.randrange(64))))
        else:
            data[i:i + 2] = rng.choice((b"SQ", b"UN", b"QQ", b"OB", b"OW", b"UT", b"xx"))


def _mutants(tmp_path, n: int, seed: int, anywhere: bool):
    """``n`` mutated slices: places inside the sequence (or ``anywhere``, then sometimes
    also cut short) overwritten by :func:`_mutate`."""
    rng = random.Random(seed)
    for k in range(n):
        # (the sequence is found by its little endian bytes; anywhere: every native syntax)
        ts = rng.choice(SYNTAXES + ([testing.EXPLICIT_BE, testing.DEFLATED_LE] if anywhere
                                    else []))
        p = _write(tmp_path / f"m{k}.dcm", k, ts=ts, undefined=rng.random() < 0.5)
        data = bytearray(p.read_bytes())
        start, end = (0, len(data) - 4) if anywhere else _sq_span(bytes(data), ts)
        _mutate(rng, data, start, end)
        if anywhere and rng.random() < 0.1:
            data = data[:rng.randrange(len(data))]
        p.write_bytes(bytes(data))
        yield p


@pytest.mark.parametrize("anywhere", [False, True])
def test_random_damage_agrees_with_the_general_reader(tmp_path, anywhere):
    """Mutated slices: scan's row and the series header equal the general reader's.  (Runs
    of 2,000-3,000 files per seed found, besides the sequences: a Pixel Data header with a
    short VR read with a 32-bit length by scan's per-file reader; a value past the end of
    the file taken for trailing padding; a meta that says implicit VR over an explicit VR
    body, read by the series walk as the meta says; truncated encapsulated pixel data
    reported as a TruncatedError where the general reader finds an EncapsulationError.)"""
    taken = 0
    mutants = list(_mutants(tmp_path, 400, seed=20261127 + anywhere, anywhere=anywhere))
    for p in mutants:
        taken += _agree(p)
    # both branches were exercised: files the walk took itself and files it left
    assert 0 < taken < len(mutants)


def test_random_damage_to_corpus_files_agrees_with_the_general_reader(tmp_path):
    """The same on real files of other projects (every syntax, private tags, deflated,
    encapsulated, multi-frame...), mutated in their first 8 KiB or anywhere."""
    corpus = require_shared() / "corpus"
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv"
                   and 16 <= p.stat().st_size < 300_000)
    rng = random.Random(20261127)
    for k in range(300):
        data = bytearray(rng.choice(files).read_bytes())
        _mutate(rng, data, 0, min(len(data), rng.choice((8192, len(data)))) - 4)
        if rng.random() < 0.1:
            data = data[:rng.randrange(len(data))]
        p = tmp_path / f"c{k}.dcm"
        p.write_bytes(bytes(data))
        _agree(p)


# ---------------------------------------------------------------------------------------------
# what the mutation runs found besides the sequences

@pytest.mark.parametrize("little", [True, False])
@pytest.mark.parametrize("vr", ["OB", "OW", "UN", "SQ", "UT", "SV", "UV", "UC", "UR", "OD",
                                "SH", "US", "AT", "DS", "QQ", "xx"])
def test_element_header_reads_as_the_scanner(vr, little):
    """filereader.element_header (scan's per-file reader uses it on the Pixel Data header
    the scan stopped at; the series reader too) reads an element as the scanner does: long
    VRs with a 32-bit length, the other VRs of PS3.5 with a 16-bit one, an unknown VR as
    implicit VR.  scan's reader had its own VR list and read any other VR's length from
    bytes 4-8 -- a 16-bit length field plus the VR."""
    from fastdicom._scan import scan as scan_index
    from fastdicom.filereader import element_header
    order = "little" if little else "big"
    tag = (0x0019).to_bytes(2, order) + (0x1001).to_bytes(2, order)
    value = b"\x00" * 6
    long = vr in ("OB", "OW", "UN", "SQ", "UT", "SV", "UV", "UC", "UR", "OD")
    if long:
        raw = tag + vr.encode() + b"\0\0" + len(value).to_bytes(4, order) + value
    else:
        raw = tag + vr.encode() + len(value).to_bytes(2, order) + value
    if vr == "SQ":
        value = b""
        raw = tag + b"SQ\0\0" + (0).to_bytes(4, order)
    raw += b"\x00" * 4     # so that a misread length cannot fit
    index = scan_index(raw, explicit=True, little_endian=little)
    i = index.find(0x00191001, -1)
    assert i >= 0
    entry = index.to_numpy()[i]
    tag, hdr_len, length = element_header(raw[:12], True, little)
    assert (tag, hdr_len) == (0x00191001, int(entry["value_offset"]))
    if entry["flags"] & 64:     # clipped: the scanner read a length past the data too
        assert vr in ("QQ", "xx") and length > len(raw) - hdr_len
    else:
        assert length == int(entry["length"]) == len(value), vr


def _rewrite_pixel_header(data: bytes, new_header: bytes) -> bytes:
    i = data.rindex(b"\xe0\x7f\x10\x00OW\x00\x00")
    return data[:i] + new_header + data[i + 12:]


def test_pixel_data_with_a_short_vr(tmp_path):
    """Pixel Data whose VR bytes say SS (a 16-bit length): scan's own walk and its per-file
    reader both read 32 bytes of pixels (the reader used to call the file truncated)."""
    p = _write(tmp_path / "a.dcm")
    p.write_bytes(_rewrite_pixel_header(p.read_bytes(), b"\xe0\x7f\x10\x00SS\x20\x00"))
    row = batch.scan([p], tags=TAGS).to_pylist()[0]
    assert row == _general_row(p)
    assert row["error_type"] is None and row["pixel_length"] == 32
    _agree(p)


@pytest.mark.parametrize("cut", [4, 12, 20])
def test_truncated_encapsulated_pixel_data(tmp_path, cut):
    """Encapsulated Pixel Data cut short inside its items: scan's row names the error the
    general reader finds (an item past the end is an EncapsulationError, a missing
    delimiter a TruncatedError); the walk called both a TruncatedError."""
    frame = bytes(range(64))
    p = tmp_path / "e.dcm"
    testing.write_file(p, [(0x00080016, "UI", testing.CT_IMAGE_STORAGE),
                           (0x00080018, "UI", "1.2.3.4"), (0x00280002, "US", 1),
                           (0x00280010, "US", 8), (0x00280011, "US", 8),
                           (0x00280100, "US", 8), (0x7FE00010, "OB", [frame])],
                       transfer_syntax=testing.JPEG_BASELINE)
    data = p.read_bytes()
    p.write_bytes(data[:len(data) - cut])
    row = batch.scan([p], tags=TAGS).to_pylist()[0]
    assert row == _general_row(p)
    assert row["error_type"] in ("EncapsulationError", "TruncatedError")


def test_body_vr_encoding_disagreeing_with_the_meta(tmp_path):
    """A meta that says implicit VR over an explicit VR body: the general reader follows the
    bytes (as pydicom does); the series walk read the body as the meta said (the first tag,
    read with a 32-bit length of b"CS\\n\\0", ran past the end: "no image")."""
    p = tmp_path / "a.dcm"
    testing.write_file(p, [(0x00080005, "CS", "ISO_IR 100")] + _slice(0, undefined=False))
    _patch(p, b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2\x00\x00\x00")
    assert _series.scan_headers([str(p)], InstanceHeader) == [False]
    _agree(p)
    assert isinstance(scan_instance(str(p)), InstanceHeader)


@pytest.mark.parametrize("present", [16, 64])
def test_last_element_past_the_end_of_the_file(tmp_path, present):
    """A file without Pixel Data whose last element, past where Pixel Data would be, claims
    64 bytes: exactly there it is trailing padding; cut short, the general reader reports a
    truncation (scan) -- the walks took it for padding either way."""
    p = tmp_path / "a.dcm"
    els = [e for e in _slice(0, undefined=False) if e[0] != 0x7FE00010]
    testing.write_file(p, els + [(0xFFFCFFFC, "OB", b"\0" * 64)])
    p.write_bytes(p.read_bytes()[:len(p.read_bytes()) - 64 + present])
    row = batch.scan([p], tags=TAGS).to_pylist()[0]
    assert row == _general_row(p)
    assert row["error_type"] == (None if present == 64 else "TruncatedError")
    _agree(p)


@pytest.mark.parametrize("cut", [0, 2, 31])
def test_native_frames_cut_short(tmp_path, cut):
    """Native multi-frame Pixel Data (3 frames of 4x4x16 bits) cut short by ``cut`` bytes:
    the series walk takes the file without checking NumberOfFrames against the bytes
    present; find_series checks its header and leaves the file out with the PixelDataError
    of scan_instance (the fuzz_walk oracle once compared the walk's header without that
    check and called the walk wrong)."""
    p = tmp_path / "mf.dcm"
    els = [e for e in _slice(0, undefined=False) if e[0] != 0x7FE00010]
    testing.write_file(p, els + [(0x00280008, "IS", 3),
                                 (0x7FE00010, "OW", np.arange(48, dtype=np.uint16).tobytes())])
    p.write_bytes(p.read_bytes()[:p.stat().st_size - cut])
    walked = _series.scan_headers([str(p)], InstanceHeader)[0]
    assert isinstance(walked, InstanceHeader) and walked.n_frames == 3
    assert _agree(p) is True
    if cut:
        with pytest.raises(fastdicom.PixelDataError, match="NumberOfFrames"):
            scan_instance(str(p))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert find_series([str(p)]) == []
    else:
        assert dataclasses.asdict(walked) == dataclasses.asdict(scan_instance(str(p)))
        assert [len(s.instances) for s in find_series([str(p)])] == [1]


def test_sequence_in_the_file_meta(tmp_path):
    """A meta element whose VR bytes were damaged into SQ (here File Meta Information
    Version, 2 bytes): the general reader scans it as a sequence and finds it truncated; the
    series walk passed over it."""
    p = _write(tmp_path / "a.dcm")
    _patch(p, b"\x02\x00\x01\x00OB\x00\x00\x02\x00\x00\x00",
           b"\x02\x00\x01\x00SQ\x00\x00\x02\x00\x00\x00")
    assert _series.scan_headers([str(p)], InstanceHeader) == [False]
    _agree(p)


def test_float_pixel_data_is_pixel_data(tmp_path):
    """Float Pixel Data (7FE0,0008): scan's walk gave no pixel offset/length, its per-file
    reader (and dcmread) do."""
    p = tmp_path / "f.dcm"
    values = np.arange(16, dtype="<f4")
    testing.write_file(p, [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.30"),
                           (0x00080018, "UI", "1.2.3.4"), (0x00280002, "US", 1),
                           (0x00280010, "US", 4), (0x00280011, "US", 4),
                           (0x00280100, "US", 32), (0x7FE00008, "OF", values.tobytes())])
    row = batch.scan([p], tags=TAGS).to_pylist()[0]
    assert row == _general_row(p)
    assert row["pixel_length"] == 64
    assert p.read_bytes()[row["pixel_offset"]:row["pixel_offset"] + 64] == values.tobytes()


@pytest.mark.parametrize("damage", ["cut", "corrupt"])
@pytest.mark.parametrize("pixels", [True, False])
def test_deflated_stream_damaged_behind_the_header(tmp_path, damage, pixels):
    """A deflated file whose stream is cut short or corrupt behind the header.  dcmread
    inflates the whole data set and refuses it.  scan() does not inflate Pixel Data to check
    it: behind a Pixel Data header, both its paths give a clean row (the per-file reader
    used to refuse the file); a job that checks (ingest) refuses it on both paths.  Without
    Pixel Data the damage is in the data set: both refuse it (the walk, which had inflated
    only as far as it read, gave a clean row)."""
    p = tmp_path / "d.dcm"
    els = [e for e in _slice(0, undefined=False) if e[0] != 0x7FE00010]
    noise = np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    tail_tag = 0x7FE00010 if pixels else 0x00991010
    testing.write_file(p, els + [(tail_tag, "OB", noise)], transfer_syntax=testing.DEFLATED_LE)
    data = bytearray(p.read_bytes())
    if damage == "cut":
        data = data[:len(data) - 2000]
    else:
        for i in range(len(data) - 4000, len(data) - 3000):
            data[i] ^= 0x5A
    p.write_bytes(bytes(data))
    with pytest.raises(fastdicom.DicomError):
        fastdicom.dcmread(p, stop_before_pixels=True)
    row = batch.scan([p], tags=TAGS).to_pylist()[0]
    assert row == _general_row(p)
    assert (row["error_type"] is None) == pixels
    if pixels:
        assert row["pixel_length"] == 20000 and row["pixel_offset"] is None
    checked = batch._Plan(TAGS)
    assert checked.check_deflated
    fast = batch._scan_table(checked, [str(p)], False).to_pylist()[0]
    assert fast == _general_row(p, checked)
    assert fast["error_type"] is not None


def test_deflated_value_past_the_end_of_the_data_set(tmp_path):
    """In a deflated file, a sequence whose length runs past the end of the inflated data
    set: the general reader scans what is there and finds the damage; scan's walk, which
    cannot compare a length with the file size there, passed over it as if deferred."""
    import zlib
    p = tmp_path / "d.dcm"
    els = [e for e in _slice(0, undefined=False) if e[0] != 0x7FE00010]
    testing.write_file(p, els, transfer_syntax=testing.DEFLATED_LE)
    data = p.read_bytes()
    assert data[132:140] == b"\x02\x00\x00\x00UL\x04\x00"
    body_at = 144 + int.from_bytes(data[140:144], "little")    # after the meta group
    inflater = zlib.decompressobj(-15)
    body = bytearray(inflater.decompress(data[body_at:]))
    i = body.index(b"\x08\x00\x40\x11SQ\x00\x00")
    body[i + 8:i + 12] = (0x363233FF).to_bytes(4, "little")   # ~900 MB, and an item damaged
    j = body.index(b"\xfe\xff\x00\xe0", i)
    body[j:j + 4] = b"\x08\x00\x50\x11"
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    p.write_bytes(data[:body_at] + deflater.compress(bytes(body)) + deflater.flush())
    row = batch.scan([p], tags=TAGS).to_pylist()[0]
    assert row == _general_row(p)
    assert row["error_type"] == "MalformedElementError"


def _load_all(directory):
    """find_series + load_series (errors="skip", without and with rescale) of a folder: the
    stacks' volumes, paths and skipped files, or the error class."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = []
            for stack in find_series(directory):
                for rescale in (False, True):
                    try:
                        v = fastdicom.load_series(stack, errors="skip", rescale=rescale)
                    except fastdicom.DicomError as exc:
                        out.append(type(exc).__name__)
                        continue
                    out.append((stack.num_instances, v.array.dtype.str, v.array.shape,
                                v.array.tobytes(), v.affine.tobytes(), sorted(v.paths),
                                sorted(map(str, v.skipped))))
            return out
        except fastdicom.DicomError as exc:
            return type(exc).__name__


def test_load_series_fast_paths_agree_with_the_general_paths(tmp_path, monkeypatch):
    """Series with mutated slices load the same through the nogil header scan and bulk
    slice reader as through the general reader (the module turned off)."""
    import fastdicom.series as series_module
    rng = random.Random(20261127)
    for k in range(400):
        d = tmp_path / f"s{k}"
        paths = testing.write_ct_series(d, 4, 8, 8, seed=k,
                                        transfer_syntax=rng.choice(SYNTAXES))
        for _ in range(rng.choice((1, 2))):
            p = rng.choice(paths)
            data = bytearray(p.read_bytes())
            _mutate(rng, data, 0, len(data) - 4)
            if rng.random() < 0.1:
                data = data[:rng.randrange(len(data))]
            p.write_bytes(bytes(data))
        fast = _load_all(d)
        with monkeypatch.context() as m:
            m.setattr(series_module, "_series", None)
            general = _load_all(d)
        assert fast == general, d
