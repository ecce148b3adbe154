"""fastdicom.open: header from a pread prefix, file mapped only on need.

The prefix path must give exactly the data set a full read gives (elements, values, pixels,
warnings), and fall back to the full read whenever the prefix cannot hold the whole header.
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

import fastdicom
from fastdicom import testing
from fastdicom.filereader import HEADER_CHUNK

from _data import CORPUS, require_shared  # noqa: E402


def _mf(tmp_path, name="mf.dcm", n=5, rows=40, cols=30, **kw):
    return testing.write_multiframe(tmp_path / name, n, rows, cols, dtype=np.uint16,
                                    fill="random", seed=11, **kw)


def _full(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fastdicom.dcmread(path, mode="read")


def test_frame_copy_needs_no_map(tmp_path):
    path = _mf(tmp_path)
    expected = _full(path).pixel_array
    with fastdicom.open(path) as f:
        ds = f.dataset
        for k in (4, 0, 2):
            np.testing.assert_array_equal(ds.frame(k), expected[k])
        assert ds.Rows == 40 and ds.NumberOfFrames == 5
        assert not f.buffer.mapped            # header from pread, frames with pread
        # the pixel value lies past the prefix: reading it maps the file, same bytes
        raw = ds.PixelData
        assert f.buffer.mapped
        assert raw == expected.tobytes()
        assert np.shares_memory(f.frame(1), np.frombuffer(f.buffer, dtype=np.uint8))


def test_same_elements_as_full_read(tmp_path):
    path = _mf(tmp_path)
    ref = _full(path)
    with fastdicom.open(path) as f:
        assert not f.buffer.mapped
        assert [e.tag for e in f.dataset] == [e.tag for e in ref]
        assert f.dataset.to_json_dict() == ref.to_json_dict()
        assert f.dataset.file_meta.to_json_dict() == ref.file_meta.to_json_dict()
        pe, re = f.dataset[0x7FE00010], ref[0x7FE00010]
        assert (pe.VR, pe.offset, pe.length) == (re.VR, re.offset, re.length)


def test_implicit_vr_prefix(tmp_path):
    els = testing.ct_instance_elements(rows=64, columns=64)
    path = tmp_path / "implicit.dcm"
    testing.write_file(path, els, transfer_syntax="1.2.840.10008.1.2")
    ref = _full(path)
    with fastdicom.open(path) as f:
        np.testing.assert_array_equal(f.dataset.frame(0), ref.pixel_array)
        assert not f.buffer.mapped
        assert f.dataset.to_json_dict() == ref.to_json_dict()


def test_header_past_first_chunk_uses_a_larger_prefix(tmp_path):
    # a 20 KiB private value before the pixels: beyond the first pread, within the second
    big = [(0x00090010, "LO", "FASTDICOM"), (0x00091001, "OB", b"\x01" * 20000)]
    els = testing.ct_instance_elements(rows=256, columns=256) + big
    path = tmp_path / "big.dcm"
    testing.write_file(path, els)
    assert os.path.getsize(path) > HEADER_CHUNK
    ref = _full(path)
    with fastdicom.open(path) as f:
        assert not f.buffer.mapped
        np.testing.assert_array_equal(f.dataset.frame(0), ref.pixel_array)
        assert f.dataset.to_json_dict() == ref.to_json_dict()


def test_huge_header_falls_back_to_the_map(tmp_path):
    big = [(0x00090010, "LO", "FASTDICOM"), (0x00091001, "OB", b"\x02" * 200_000)]
    path = tmp_path / "huge.dcm"
    testing.write_file(path, testing.ct_instance_elements(rows=32, columns=32) + big)
    ref = _full(path)
    with fastdicom.open(path) as f:
        assert f.buffer.mapped
        np.testing.assert_array_equal(f.dataset.frame(0), ref.pixel_array)
        assert f.dataset.to_json_dict() == ref.to_json_dict()


def test_element_after_pixel_data_falls_back(tmp_path):
    path = _mf(tmp_path)
    with open(path, "ab") as fh:   # Data Set Trailing Padding (FFFC,FFFC) OB, 4 bytes
        fh.write(bytes.fromhex("fcfffcff") + b"OB\0\0" + (4).to_bytes(4, "little") + b"\0" * 4)
    ref = _full(path)
    with fastdicom.open(path) as f:
        assert 0xFFFCFFFC in f.dataset
        assert f.dataset.to_json_dict() == ref.to_json_dict()
        np.testing.assert_array_equal(f.dataset.frame(3), ref.pixel_array[3])


def test_truncated_pixels_same_as_full_read(tmp_path):
    path = _mf(tmp_path)
    os.truncate(path, os.path.getsize(path) - 1000)
    with pytest.warns(fastdicom.DicomWarning) as full_warnings:
        ref = fastdicom.dcmread(path, mode="read")
    with pytest.warns(fastdicom.DicomWarning) as open_warnings:
        f = fastdicom.open(path)
    assert [str(w.message) for w in open_warnings] == [str(w.message) for w in full_warnings]
    with f:
        assert f.dataset.to_json_dict() == ref.to_json_dict()
        with pytest.raises(fastdicom.PixelDataError):
            f.dataset.frame(0)


def test_lenient_header_warns_once(tmp_path):
    # an odd-length value in the header: reported by the full read only, never twice
    els = testing.ct_instance_elements(rows=16, columns=16)
    path = tmp_path / "odd.dcm"
    testing.write_file(path, els)
    data = path.read_bytes()
    pos = data.index(bytes.fromhex("e07f1000"))          # before the Pixel Data element
    odd = bytes.fromhex("29000110") + b"OB\0\0" + (3).to_bytes(4, "little") + b"abc"
    path.write_bytes(data[:pos] + odd + data[pos:])
    with warnings.catch_warnings(record=True) as w_full:
        warnings.simplefilter("always")
        fastdicom.dcmread(path, mode="read")
    with warnings.catch_warnings(record=True) as w_open:
        warnings.simplefilter("always")
        fastdicom.open(path).close()
    assert any("odd value length" in str(w.message) for w in w_full)
    assert [str(w.message) for w in w_open] == [str(w.message) for w in w_full]


def test_polyglot_warning_obeys_validation(tmp_path):
    path = _mf(tmp_path)
    data = bytearray(path.read_bytes())
    data[:4] = b"\x7fELF"
    path.write_bytes(bytes(data))
    with pytest.warns(fastdicom.DicomWarning, match="ELF"):
        fastdicom.open(path).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fastdicom.open(path, validation="ignore") as f:
            assert f.dataset.preamble_kind == "elf"
            assert not f.buffer.mapped


def test_replaced_file_after_close_is_detected(tmp_path):
    path = _mf(tmp_path)
    f = fastdicom.open(path)
    ds = f.dataset
    f.close()
    np.testing.assert_array_equal(ds.frame(1), _full(path).pixel_array[1])  # reopened, same
    os.replace(_mf(tmp_path, "other.dcm", n=6), path)
    with pytest.raises(fastdicom.FileChangedError):
        ds.frame(1)


def test_descriptor_closed_on_close(tmp_path):
    path = _mf(tmp_path)
    before = len(os.listdir("/proc/self/fd"))
    files = [fastdicom.open(path) for _ in range(20)]
    assert len(os.listdir("/proc/self/fd")) >= before + 20
    for f in files:
        f.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_corpus_open_equals_full_read():
    """Every corpus file: fastdicom.open gives the data set (and native pixels) of a full
    read, whichever path it takes; the prefix path is taken for some of them."""
    require_shared()
    import csv
    with open(CORPUS / "MANIFEST.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    n_prefix = n_files = 0
    for row in rows:
        path = CORPUS / row["path"]
        try:
            ref = _full(path)
        except fastdicom.DicomError:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pytest.raises(fastdicom.DicomError):
                    fastdicom.open(path).close()
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = fastdicom.open(path)
        with f, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n_files += 1
            prefix = not f.buffer.mapped
            n_prefix += prefix
            if prefix:  # native pixels, read with pread: equal to the full read's
                try:
                    expected_pixels = ref.pixel_array
                except fastdicom.DicomError as exc:
                    with pytest.raises(type(exc)):
                        f.dataset.pixel_array
                else:
                    np.testing.assert_array_equal(f.dataset.pixel_array, expected_pixels)
            try:
                expected = ref.to_json_dict()
            except fastdicom.DicomError:
                continue
            assert f.dataset.to_json_dict() == expected, path
    assert n_files > 400 and n_prefix > 50, (n_files, n_prefix)


# ------------------------------------------------------------------------------------------
# the Image Pixel module decoded in C (ElementIndex.pixel_module) equals the general path

from hypothesis import given, settings, strategies as st  # noqa: E402

from fastdicom.pixels.locator import _module_general  # noqa: E402


def _compare_module(ds):
    d = ds.__dict__
    fast = d["_index"].pixel_module(d["_item"])
    if fast is None:
        return False
    general = _module_general(ds, None)
    if not fast[2]:   # implicit VR: the element resolves the pixel VR
        fast = fast[:2] + (general[2],) + fast[3:]
    assert fast == general
    assert all(type(a) is type(b) for a, b in zip(fast, general))
    return True


_US = st.one_of(st.none(), st.integers(0, 0xFFFF))


@settings(max_examples=150, deadline=None)
@given(rows=_US, columns=_US, bits=st.sampled_from([None, 1, 8, 12, 16, 32]), spp=_US,
       stored=_US, representation=_US, planar=_US,
       photometric=st.one_of(st.none(), st.sampled_from(
           ["MONOCHROME2", "RGB ", " YBR_FULL", "", "A\\B", "PALETTE COLOR"])),
       frames=st.one_of(st.none(), st.sampled_from(
           ["1", "7 ", " 12", "0", "-3", "+4", "1.0", "", "2\\3", "0005", "1234567890"])),
       ts=st.sampled_from(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1",
                           "1.2.840.10008.1.2.2"]))
def test_pixel_module_c_equals_general(tmp_path_factory, rows, columns, bits, spp, stored,
                                       representation, planar, photometric, frames, ts):
    els = [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", "1.2.3")]
    for tag, vr, value in ((0x00280002, "US", spp), (0x00280004, "CS", photometric),
                           (0x00280006, "US", planar), (0x00280008, "IS", frames),
                           (0x00280010, "US", rows), (0x00280011, "US", columns),
                           (0x00280100, "US", bits), (0x00280101, "US", stored),
                           (0x00280103, "US", representation)):
        if value is not None:
            els.append((tag, vr, value))
    els.append((0x7FE00010, "OW", b"\0" * 64))
    path = tmp_path_factory.mktemp("pm") / "m.dcm"
    testing.write_file(path, els, transfer_syntax=ts)
    ds = _full(path)
    d = ds.__dict__
    fast = d["_index"].pixel_module(d["_item"])
    try:
        general = _module_general(ds, None)
    except fastdicom.DicomError:
        # the general path rejects it: the C path must not call it plain
        assert fast is None, fast
        return
    if fast is not None:
        assert _compare_module(ds)


def test_pixel_module_c_equals_general_on_corpus():
    require_shared()
    import csv
    with open(CORPUS / "MANIFEST.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    n_fast = 0
    for row in rows:
        try:
            ds = _full(CORPUS / row["path"])
        except fastdicom.DicomError:
            continue
        if "_index" not in ds.__dict__:
            continue
        try:
            _module_general(ds, None)
        except fastdicom.DicomError:
            d = ds.__dict__
            assert d["_index"].pixel_module(d["_item"]) is None, row["path"]
            continue
        n_fast += _compare_module(ds)
    assert n_fast > 300


def test_close_under_concurrent_reads_never_reads_another_file(tmp_path):
    """close() while other threads pread frames: the kept descriptor is closed by the last
    reader, so its number is never reused under a read in flight (a read must never return
    bytes of another file); later reads reopen the file by path."""
    import threading
    path = _mf(tmp_path, n=8, rows=64, cols=64)
    expected = _full(path).pixel_array
    others = [_mf(tmp_path, f"o{k}.dcm", n=8, rows=64, cols=64) for k in range(3)]
    for k, o in enumerate(others):   # same layout, different pixels
        data = bytearray(o.read_bytes())
        data[-expected.nbytes:] = bytes([k + 1]) * expected.nbytes
        o.write_bytes(bytes(data))
    f = fastdicom.open(path)
    ds = f.dataset
    errors, bad = [], []
    stop = threading.Event()

    def reader(seed):
        import random
        rng = random.Random(seed)
        while not stop.is_set():
            k = rng.randrange(8)
            try:
                got = ds.frame(k)
            except Exception as exc:  # noqa: BLE001 - recorded, asserted below
                errors.append(exc)
                return
            if not np.array_equal(got, expected[k]):
                bad.append(k)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    import time
    try:
        time.sleep(0.05)
        f.close()
        t_end = time.time() + 0.3
        while time.time() < t_end:   # reuse descriptor numbers as fast as possible
            for o in others:
                with fastdicom.open(o) as g:
                    g.dataset.frame(0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors and not bad


def test_closed_dicomfile_says_so(tmp_path):
    path = _mf(tmp_path)
    f = fastdicom.open(path)
    f.close()
    for call in (lambda: f.frame(0), lambda: f.encapsulated_frame(0), lambda: f.pixel_array,
                 lambda: f.buffer):
        with pytest.raises(ValueError, match="closed"):
            call()
    # the data set itself stays usable: the file is opened again (and checked) when needed
    np.testing.assert_array_equal(f.dataset.frame(2), _full(path).pixel_array[2])


def test_dcmread_maps_nothing_for_header_and_pixels(tmp_path):
    """dcmread(path) in its default mode reads the header from a pread prefix and native
    pixels with pread: the file is never mapped, no descriptor is kept per data set, and a
    file truncated after the read keeps its header values and raises FileChangedError for
    its pixels (a map would give zeros, or SIGBUS past the last page)."""
    from fastdicom.errors import FileChangedError
    from fastdicom.pixels import _ctx
    path = _mf(tmp_path, n=40, rows=64, cols=64)
    assert os.path.getsize(path) > 8 * HEADER_CHUNK
    ref = _full(path)
    fds = len(os.listdir("/proc/self/fd"))
    kept = [fastdicom.dcmread(path) for _ in range(50)]
    assert len(os.listdir("/proc/self/fd")) == fds
    ds = kept[0]
    np.testing.assert_array_equal(ds.pixel_array, ref.pixel_array)
    np.testing.assert_array_equal(ds.frame(7), ref.pixel_array[7])
    assert not _ctx(ds).owner.mapped
    assert kept[1].to_json_dict() == ref.to_json_dict()     # Pixel Data's value: mapped
    assert _ctx(kept[1]).owner.mapped
    with open(path, "r+b") as fh:
        fh.truncate(1000)
    ds = kept[2]
    assert (ds.Rows, ds.Columns, ds.NumberOfFrames) == (64, 64, 40)
    assert ds.SOPInstanceUID == ref.SOPInstanceUID
    with pytest.raises(FileChangedError):
        ds.pixel_array


def test_dcmread_small_file_is_read_whole(tmp_path):
    """A file no longer than the first pread prefix is read whole into memory: its pixels
    are there even after the file is removed."""
    path = _mf(tmp_path, n=1, rows=8, cols=8)
    assert os.path.getsize(path) <= HEADER_CHUNK
    ref = _full(path)
    ds = fastdicom.dcmread(path)
    os.remove(path)
    np.testing.assert_array_equal(ds.pixel_array, ref.pixel_array)
    assert ds.to_json_dict() == ref.to_json_dict()


def _state(ds):
    """Everything a header read decides: elements and values (JSON model), file meta,
    preamble, encoding, transfer syntax -- and the warnings or error their decoding gives
    (values are decoded lazily, so a damaged one speaks only here)."""
    ctx = ds._ctx
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # as JSON text: a NaN value equals itself there (a damaged FL is often one)
            state = (json.dumps([ds.to_json_dict(), ds.file_meta.to_json_dict()],
                                sort_keys=True, default=str),
                     [e.tag for e in ds], [(e.offset, e.length) for e in ds])
        except fastdicom.DicomError as exc:
            state = (type(exc).__name__, str(exc))
    return (state, [str(w.message) for w in caught], ds.preamble, ctx.is_little_endian,
            ctx.is_implicit_VR, ctx.transfer_syntax, ds.transfer_syntax_guessed)


def _general(data, size, path, validation="warn"):
    from fastdicom.filereader import read_buffer
    return read_buffer(data, path=path, stop_before_pixels=True, validation=validation,
                       partial_size=size if len(data) < size else -1)


def test_one_call_header_equals_the_general_reader(tmp_path):
    # dcmread(path, stop_before_pixels=True) reads a clean header in one C call
    # (read_header_prefix); on every corpus file, synthetic syntax and mutated header it
    # either declines (None) or gives exactly what the general reader gives, warnings and
    # errors included (declined files take the general path)
    import random
    from fastdicom.filereader import _read_clean_header, read_file
    shared = require_shared()
    files = sorted(p for p in (shared / "corpus").rglob("*") if p.is_file())
    for ts in (testing.EXPLICIT_LE, testing.IMPLICIT_LE, testing.EXPLICIT_BE,
               testing.DEFLATED_LE):
        files += testing.write_ct_series(tmp_path / ts, 1, 8, 8, transfer_syntax=ts)
    rng = random.Random(7)
    base = [p.read_bytes() for p in files[-4:]]
    for k in range(300):         # damage in the meta group or the first body elements
        data = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(128, min(len(data), 700))] = rng.randrange(256)
        p = tmp_path / f"mut{k}.dcm"
        p.write_bytes(bytes(data))
        files.append(p)
    taken = declined = 0
    for p in files:
        path = str(p)
        try:
            data, size, _ = read_file(path, HEADER_CHUNK)
        except OSError:
            continue
        for validation in ("warn", "raise"):
            with warnings.catch_warnings(record=True) as fast_w:
                warnings.simplefilter("always")
                try:
                    fast = _read_clean_header(data, size, path, True, validation, None)
                except fastdicom.DicomError as exc:
                    raise AssertionError(f"{path}: the one-call path raised {exc!r}")
            if fast is None:
                declined += 1
                continue
            taken += 1
            assert not fast_w, (path, [str(w.message) for w in fast_w])
            with warnings.catch_warnings(record=True) as gen_w:
                warnings.simplefilter("always")
                general = _general(data, size, path, validation)
            assert not gen_w, (path, [str(w.message) for w in gen_w])
            assert _state(fast) == _state(general), path
    assert taken > 100 and declined > 50, (taken, declined)


def _header_past_first_chunk(path, pad: int, pixels: bool):
    """A file whose header runs past HEADER_CHUNK in elements of 14 bytes (as a large
    private header does), with or without Pixel Data after it: as ``pad`` moves the cut, the
    first read ends inside an element, at an element boundary, or with fewer bytes than an
    element header left."""
    els = [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.88.11"), (0x00080018, "UI", "1.2.3.4"),
           (0x00080060, "CS", "SR"), (0x00100010, "PN", "X" * (pad + 2)),
           (0x00110010, "LO", "FDTEST")]
    els += [(0x00111000 + k, "LO", f"V{k:04d}") for k in range(HEADER_CHUNK // 14 + 100)]
    els.append((0x00200013, "IS", 7))
    if pixels:
        els += [(0x00280010, "US", 2), (0x00280011, "US", 2), (0x00280100, "US", 16),
                (0x7FE00010, "OW", b"\x01\x00" * 4)]
    testing.write_file(path, els)
    assert path.stat().st_size > HEADER_CHUNK
    return path


@pytest.mark.parametrize("pixels", [False, True])
@pytest.mark.parametrize("pad", range(0, 28, 2))
def test_header_read_of_a_prefix_cut_at_an_element_boundary(tmp_path, pad, pixels):
    """dcmread(stop_before_pixels=True) read the first 8 KiB of a file and, when the cut
    fell at an element boundary or left fewer than 8 bytes before Pixel Data (or without
    any), returned the elements up to it as the whole data set: 8 of these 14 cuts lost
    InstanceNumber and about 150 other elements, silently.  The same in scan's per-file reader and
    fastdicom.dask's prefix reads."""
    from fastdicom import batch
    p = _header_past_first_chunk(tmp_path / "f.dcm", pad, pixels)
    full = fastdicom.dcmread(p)
    want = [e.tag for e in full if e.tag != 0x7FE00010]
    for kw in ({}, {"force": True}, {"validation": "ignore"}):
        ds = fastdicom.dcmread(p, stop_before_pixels=True, **kw)
        assert [e.tag for e in ds] == want, kw
    ds = fastdicom.dcmread(p, stop_before_pixels=True, specific_tags=["InstanceNumber"])
    assert ds.InstanceNumber == 7
    plan = batch._Plan(["InstanceNumber"])
    row = batch.read_header_row(str(p), plan.tag_list)
    assert row["error"] is None and 0x00200013 in row["values"]
    size = p.stat().st_size
    data = p.read_bytes()
    for first in (HEADER_CHUNK, 2 * HEADER_CHUNK - 6):
        got = batch._row_from_buffer(data[:first], str(p), size, 0, plan)
        assert got is None or 0x00200013 in got["values"], first
