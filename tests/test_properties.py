"""Property-based tests (hypothesis).

1. Random valid data sets, serialized by the small independent writer below in every native
   transfer syntax (implicit LE, explicit LE, explicit BE, deflated), scan back identically:
   same tags, VRs (explicit syntaxes) and values, nested sequences included.
2. Random byte mutations of valid files only ever raise DicomError, through dcmread + full
   value decoding of every element (recursively) + to_json_dict + pixel_array.
3. The scanner never reports more elements than len(buffer) / 8.
"""
from __future__ import annotations

import struct
import sys
import warnings
import zlib
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import fastdicom  # noqa: E402
from fastdicom._scan import scan  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import oracle  # noqa: E402

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
SYNTAXES = (IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED)
LONG_VRS = {"OB", "OW", "SQ", "UN", "UT", "UC", "UR", "OD", "OF", "OL", "OV", "SV", "UV"}

# private tags (group 0x0009, creator "HYPO" in slot 0x10) with a fixed VR each, so implicit VR
# data sets carry no VR and the values compare as bytes there
PRIVATE_VRS = ["LO", "SH", "CS", "DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "OB", "OW",
               "UT", "DA", "TM", "UI", "AT"]


def _text(alphabet: str, max_size: int):
    return st.text(alphabet=alphabet, min_size=0, max_size=max_size)


UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _"
TEXTISH = UPPER + "abcdefghijklmnopqrstuvwxyz^.-"


def value_strategy(vr: str):
    if vr in ("LO", "SH", "UT"):
        return _text(TEXTISH, 40 if vr != "UT" else 300).map(lambda s: s.strip())
    if vr == "CS":
        return st.lists(_text(UPPER.replace(" ", ""), 10), min_size=1, max_size=3)
    if vr == "DS":
        return st.lists(st.integers(-99999, 99999).map(lambda i: f"{i / 100:.2f}"), min_size=1, max_size=3)
    if vr == "IS":
        return st.lists(st.integers(-(2**31), 2**31 - 1).map(str), min_size=1, max_size=3)
    if vr in ("US", "SS", "UL", "SL"):
        lo, hi = {"US": (0, 65535), "SS": (-32768, 32767), "UL": (0, 2**32 - 1),
                  "SL": (-(2**31), 2**31 - 1)}[vr]
        return st.lists(st.integers(lo, hi), min_size=1, max_size=4)
    if vr in ("FL", "FD"):
        return st.lists(st.floats(width=32 if vr == "FL" else 64, allow_nan=False), min_size=1, max_size=4)
    if vr in ("OB", "OW"):
        return st.binary(min_size=0, max_size=64).map(lambda b: b + b"\0" * (len(b) & 1))
    if vr == "DA":
        return st.dates().map(lambda d: [d.strftime("%Y%m%d")])
    if vr == "TM":
        return st.times().map(lambda t: [t.strftime("%H%M%S")])
    if vr == "UI":
        return st.lists(st.integers(1, 2**63).map(lambda i: f"1.2.{i}"), min_size=1, max_size=2)
    if vr == "AT":
        return st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3)
    raise AssertionError(vr)


def encode_value(vr: str, value, le: bool) -> bytes:
    e = "<" if le else ">"
    if vr in ("US", "SS", "UL", "SL", "FL", "FD"):
        code = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}[vr]
        return struct.pack(f"{e}{len(value)}{code}", *value)
    if vr == "AT":
        return b"".join(struct.pack(e + "HH", t >> 16, t & 0xFFFF) for t in value)
    if vr in ("OB", "OW"):
        if vr == "OW" and not le:
            return b"".join(value[i:i + 2][::-1] for i in range(0, len(value), 2))
        return value
    text = value if isinstance(value, str) else "\\".join(value)
    raw = text.encode("ascii")
    if len(raw) & 1:
        raw += b"\0" if vr == "UI" else b" "
    return raw


def header(tag: int, vr: str, length: int, explicit: bool, le: bool) -> bytes:
    e = "<" if le else ">"
    t = struct.pack(e + "HH", tag >> 16, tag & 0xFFFF)
    if not explicit:
        return t + struct.pack(e + "I", length)
    if vr in LONG_VRS:
        return t + vr.encode() + b"\0\0" + struct.pack(e + "I", length)
    return t + vr.encode() + struct.pack(e + "H", length)


def encode_dataset(elements, explicit: bool, le: bool) -> bytes:
    """elements: sorted list of (tag, vr, value); SQ values are (undefined, [items])."""
    out = []
    for tag, vr, value in elements:
        if vr == "SQ":
            undefined, items = value
            e = "<" if le else ">"
            body = b""
            for it in items:
                inner = encode_dataset(it, explicit, le)
                item_tag = struct.pack(e + "HH", 0xFFFE, 0xE000)
                if undefined:
                    body += item_tag + struct.pack(e + "I", 0xFFFFFFFF) + inner \
                        + struct.pack(e + "HHI", 0xFFFE, 0xE00D, 0)
                else:
                    body += item_tag + struct.pack(e + "I", len(inner)) + inner
            if undefined:
                out.append(header(tag, "SQ", 0xFFFFFFFF, explicit, le) + body
                           + struct.pack(e + "HHI", 0xFFFE, 0xE0DD, 0))
            else:
                out.append(header(tag, "SQ", len(body), explicit, le) + body)
            continue
        raw = encode_value(vr, value, le)
        out.append(header(tag, vr, len(raw), explicit, le) + raw)
    return b"".join(out)


def file_bytes(elements, ts: str) -> bytes:
    explicit, le = ts != IMPLICIT_LE, ts != EXPLICIT_BE
    body = encode_dataset(elements, explicit, le)
    if ts == DEFLATED:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = c.compress(body) + c.flush()
    uid = ts.encode() + b"\0" * (len(ts) & 1)
    meta = header(0x00020010, "UI", len(uid), True, True) + uid
    meta = header(0x00020000, "UL", 4, True, True) + struct.pack("<I", len(meta)) + meta
    return b"\0" * 128 + b"DICM" + meta + body


@st.composite
def element_lists(draw, depth: int = 0):
    """A sorted list of private elements of group 0009 (plus creator) and maybe sequences."""
    slots = draw(st.lists(st.integers(0, len(PRIVATE_VRS) - 1), unique=True, max_size=8))
    elements = [(0x00090010, "LO", "HYPO")]
    for s in sorted(slots):
        vr = PRIVATE_VRS[s]
        elements.append((0x00091000 | s, vr, draw(value_strategy(vr))))
    if depth < 3 and draw(st.booleans()):
        n_items = draw(st.integers(0, 3))
        undefined = draw(st.booleans())
        items = [draw(element_lists(depth + 1)) for _ in range(n_items)]
        # a public SQ tag, so implicit VR knows it is a sequence
        elements.append((0x00081110, "SQ", (undefined, items)))
    return sorted(elements, key=lambda e: e[0])


def _expected(vr: str, value):
    if isinstance(value, list) and value == [""]:
        return []  # a single empty string encodes as an empty value
    if vr in ("OB", "OW"):
        return value
    if vr == "AT":
        return [int(t) for t in value]
    if vr in ("FL",):
        return [struct.unpack("<f", struct.pack("<f", v))[0] for v in value]
    if vr in ("US", "SS", "UL", "SL", "FD"):
        return list(value)
    if vr in ("LO", "SH", "UT"):
        return value
    return list(value)


def _normalize(vr: str, got):
    if vr in ("OB", "OW") and got is None:
        return b""  # pydicom's empty value for the binary VRs
    if vr in ("OB", "OW", "LO", "SH", "UT"):
        if isinstance(got, str):
            return got.rstrip(" ")
        return got
    if got is None or got == "":
        return []
    if isinstance(got, list):
        return [_scalar(vr, x) for x in got]
    return [_scalar(vr, got)]


def _scalar(vr, x):
    if vr in ("DS", "IS", "CS", "DA", "TM", "UI"):
        return str(x)
    return x


def check_same(ds, elements, explicit: bool, le: bool):
    assert [e.tag for e in ds] == [t for t, _, _ in elements]
    for tag, vr, value in elements:
        elem = ds[tag]
        if explicit or vr == "SQ":
            assert elem.VR == vr, (hex(tag), elem.VR, vr)
        if vr == "SQ":
            items = elem.value
            assert len(items) == len(value[1])
            for got, want in zip(items, value[1]):
                check_same(got, want, explicit, le)
            continue
        raw = elem.raw_value
        assert raw == encode_value(vr, value, le), hex(tag)
        if vr in ("OB", "OW"):
            # bytes as stored (pydicom does not swap OW of big endian files)
            assert (elem.value or b"") == raw
        elif explicit or tag == 0x00090010:
            want = _expected(vr, value)
            got = _normalize(vr, elem.value)
            if vr in ("LO", "SH", "UT"):
                assert got == want.rstrip(" "), (got, want)
            else:
                assert got == want, (hex(tag), vr, got, want)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(elements=element_lists(), ts=st.sampled_from(SYNTAXES))
def test_round_trip_every_transfer_syntax(elements, ts):
    data = file_bytes(elements, ts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = fastdicom.dcmread(data, validation="raise")
    explicit, le = ts != IMPLICIT_LE, ts != EXPLICIT_BE
    assert ds.is_implicit_VR == (not explicit) and ds.is_little_endian == le
    check_same(ds, elements, explicit, le)


def _valid_files():
    import make_seeds
    return [v for _, v in sorted(make_seeds.seeds().items())]


VALID = None


def valid_files():
    global VALID
    if VALID is None:
        VALID = _valid_files()
    return VALID


@st.composite
def mutated(draw):
    files = valid_files()
    data = bytearray(files[draw(st.integers(0, len(files) - 1))])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 3))
        i = draw(st.integers(0, len(data) - 1)) if data else 0
        if op == 0 and data:
            data[i] = draw(st.integers(0, 255))
        elif op == 1 and data:
            v = draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF]))
            data[i:i + 4] = v.to_bytes(4, "little")
        elif op == 2:
            del data[i:]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=12))
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_mutations_raise_only_dicom_errors(data):
    for mode in ("warn", "raise"):
        result = oracle.exercise(data, validation=mode)
        assert isinstance(result, (fastdicom.Dataset, fastdicom.DicomError))


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=512), mutated()),
       explicit=st.booleans(), little=st.booleans())
def test_element_count_bounded(data, explicit, little):
    index = scan(data, explicit=explicit, little_endian=little)
    assert len(index) <= len(data) // 8 + 1
    # every entry lies inside the buffer
    arr = index.to_numpy()
    if len(arr):
        assert (arr["value_offset"] >= 0).all() and (arr["value_offset"] <= len(data)).all()
        assert (arr["length"] >= 0).all()
        assert (arr["value_offset"] + arr["length"] <= len(data)).all()
