"""The Cython scanner against hand-built byte strings and a pure-Python walker oracle."""
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastdicom._scan import scan
from fastdicom.errors import status_error, TruncatedError, MalformedElementError, NestingTooDeepError
from fastdicom.testing import encode_dataset, encode_element

from walker import walk, ITEM


def entries(index):
    arr = index.to_numpy()
    out = []
    for row in arr:
        vr = "" if row["vr"] == 0 else chr(row["vr"] >> 8) + chr(row["vr"] & 0xFF)
        out.append((int(row["tag"]), vr, int(row["value_offset"]), int(row["length"]), int(row["depth"])))
    return out


def el(tag, vr, value):
    return (tag, vr, value)


SAMPLE = [
    el(0x00080005, "CS", "ISO_IR 100"),
    el(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2"),
    el(0x00100010, "PN", "Doe^John"),
    el(0x00101010, "AS", "042Y"),
    el(0x00181150, "IS", 12),
    el(0x00200032, "DS", [1.5, -2.25, 3.0]),
    el(0x00280010, "US", 4),
    el(0x00280011, "US", 2),
    el(0x00280030, "DS", [0.5, 0.5]),
    el(0x00081115, "SQ", [[el(0x00081150, "UI", "1.2.3"), el(0x00081155, "UI", "1.2.3.4")],
                         [el(0x00081150, "UI", "1.2.5"),
                          el(0x00081199, "SQ", [[el(0x00081150, "UI", "9.9")]])]]),
    el(0x00091010, "LO", "FASTDICOM TEST"),
    el(0x00091001, "OB", b"\x01\x02\x03\x04"),
    el(0x7FE00010, "OW", bytes(range(16))),
]
SQ_TAGS = {0x00081115, 0x00081199}


@pytest.mark.parametrize("explicit,little", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("undefined", [False, True])
def test_scan_matches_walker(explicit, little, undefined):
    elements = sorted(SAMPLE)
    if undefined:
        elements = [(t, vr, v) for t, vr, v in elements]
    buf = b"".join(encode_element(t, vr, v, explicit=explicit, little_endian=little,
                                  undefined_length=undefined and vr == "SQ")
                   for t, vr, v in sorted(elements))
    index = scan(buf, explicit=explicit, little_endian=little)
    assert index.status == 0
    expected = walk(buf, explicit=explicit, little=little, sq_tags=SQ_TAGS)
    got = entries(index)
    assert [(t, o, ln, d) for t, _, o, ln, d in got] == [(t, o, ln, d) for t, _, o, ln, d in expected]
    if explicit:
        assert [vr for _, vr, *_ in got] == [vr for _, vr, *_ in expected]


def test_find_and_children():
    buf = encode_dataset(SAMPLE)
    index = scan(buf)
    seq = index.find(0x00081115)
    assert seq >= 0
    items = index.children(seq)
    assert len(items) == 2
    assert index.find(0x00081150, items[1]) >= 0
    assert index.find(0x00081155, items[1]) == -1
    assert index.find(0x00100010) >= 0
    assert index.find(0x00100011) == -1
    assert index.child_tags(-1) == sorted(t for t, _, _ in SAMPLE)


def test_encapsulated_fragments():
    frags = [b"", b"\xff\xd8abcd\xff\xd9", b"\xff\xd8ef\xff\xd9"]
    body = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(f)) + f for f in frags)
    body += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    buf = encode_element(0x00280010, "US", 2) + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF) + body
    index = scan(buf)
    assert index.status == 0
    pix = index.find(0x7FE00010)
    kids = index.children(pix)
    assert [index.value(k) for k in kids] == frags
    assert index.info(pix)[4] == len(body) - 8


def test_stop_before_pixels_and_stop_tag():
    buf = encode_dataset(SAMPLE)
    index = scan(buf, stop_before_pixels=True)
    assert index.find(0x7FE00010) == -1
    assert buf[index.stop_offset:index.stop_offset + 4] == b"\xe0\x7f\x10\x00"
    index = scan(buf, stop_tag=0x00100010)
    assert index.child_tags(-1)[-1] == 0x00100010


def test_length_past_end_is_truncated_or_clipped():
    buf = encode_element(0x00100010, "PN", "Doe^John")[:-2]
    strict = scan(buf, allow_clip=False)
    assert isinstance(status_error(strict.status), TruncatedError)
    assert strict.error_offset == 0 and strict.error_tag == 0x00100010
    lenient = scan(buf)
    assert lenient.status == 0 and lenient.n_clipped == 1


def test_wraparound_length():
    # offset + length would wrap a 32-bit sum; the check must still catch it
    buf = struct.pack("<HH2s2sI", 0x0009, 0x1001, b"OB", b"\0\0", 0xFFFFFFF0) + b"abcd"
    index = scan(buf, allow_clip=False)
    assert isinstance(status_error(index.status), TruncatedError)


def test_nesting_limit():
    depth = 200
    inner = b""
    for _ in range(depth):
        inner = (struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF)
                 + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner
                 + struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    index = scan(inner, max_depth=64)
    assert isinstance(status_error(index.status), NestingTooDeepError)
    assert scan(inner, max_depth=300).status == 0


def test_stray_delimiter_and_wrong_item_tag():
    stray = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    assert isinstance(status_error(scan(stray).status), MalformedElementError)
    wrong = struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, 8) + struct.pack("<HHI", 0x0010, 0x0010, 0)
    index = scan(wrong)
    assert isinstance(status_error(index.status), MalformedElementError)
    assert index.error_offset == 12


def test_undefined_length_on_non_sq_rejected():
    buf = struct.pack("<HH2s2sI", 0x0010, 0x0010, b"UT", b"\0\0", 0xFFFFFFFF) + b"x" * 16
    index = scan(buf)
    assert isinstance(status_error(index.status), MalformedElementError)


# --- property test: random nested data sets scan back identically ---------------------------
_leaf = st.one_of(
    st.tuples(st.sampled_from([0x00100010, 0x00100020, 0x00081030]), st.just("LO"),
              st.text(alphabet="ABCDEFGH ^", max_size=20)),
    st.tuples(st.sampled_from([0x00280010, 0x00280011]), st.just("US"), st.integers(0, 65535)),
    st.tuples(st.just(0x00091001), st.just("OB"), st.binary(max_size=40)),
)


def _dataset(children):
    return st.lists(st.one_of(_leaf, st.tuples(st.just(0x00081115), st.just("SQ"),
                                               st.lists(children, max_size=3))),
                    max_size=5).map(lambda els: sorted({t: (t, vr, v) for t, vr, v in els}.values()))


_datasets = st.recursive(st.lists(_leaf, max_size=4).map(
    lambda els: sorted({t: (t, vr, v) for t, vr, v in els}.values())), _dataset, max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(_datasets, st.sampled_from([(True, True), (False, True), (True, False)]), st.booleans())
def test_random_datasets_scan_like_walker(elements, enc, undefined):
    explicit, little = enc
    buf = b"".join(encode_element(t, vr, v, explicit=explicit, little_endian=little,
                                  undefined_length=undefined and vr == "SQ") for t, vr, v in elements)
    index = scan(buf, explicit=explicit, little_endian=little)
    assert index.status == 0
    expected = walk(buf, explicit=explicit, little=little, sq_tags={0x00081115})
    got = entries(index)
    assert [(t, o, ln, d) for t, _, o, ln, d in got] == [(t, o, ln, d) for t, _, o, ln, d in expected]
    assert len(index) <= len(buf) // 8 + 1


def test_element_index_rejects_out_of_range_parents():
    """A parent index past the entries (or below the root) is refused, never read."""
    from fastdicom import testing
    index = scan(encode_dataset(testing.ct_instance_elements(rows=4, columns=4)))
    assert index.status == 0 and index.count > 10
    assert index.find(0x00100010, -1) >= 0
    for parent in (index.count, index.count + 10, 2**31 - 1, -2, -(2**31)):
        assert index.find(0x00100010, parent) == -1
        assert index.pixel_module(parent) is None
        with pytest.raises(IndexError):
            index.children(parent)
        with pytest.raises(IndexError):
            index.child_tags(parent)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0x00020010, 0x00080005, 0x00080016, 0x00080018, 0x00100010,
                                 0x00200013, 0x00280010, 0x00280011, 0x7FE00010]),
                min_size=0, max_size=9),
       st.booleans())
def test_find_equals_first_match_in_any_order(tags, sort):
    # find() stops at the first tag past the one asked for when the top level ascends
    # (decided once per index) and walks everything otherwise: the first element with
    # the tag, in file order, or -1 -- whatever the order and repeats
    if sort:
        tags = sorted(tags)
    data = b"".join(encode_element(t, "UL", 7) for t in tags)
    idx = scan(data)
    assert idx.status == 0 and len(idx) == len(tags)
    for probe in (0x00020010, 0x00080005, 0x00080006, 0x00100010, 0x00280011, 0x7FE00010,
                  0xFFFFFFFF, 0):
        expected = tags.index(probe) if probe in tags else -1
        assert idx.find(probe) == expected, (tags, hex(probe))


def test_child_extents_are_the_children_header_offsets_and_lengths():
    """ElementIndex.child_extents(parent): the header offsets and value lengths of the direct
    children of ``parent``, as children() + info() give them one by one."""
    from fastdicom import testing
    elements = [(0x00080016, "UI", "1.2"), (0x00080018, "UI", "1.3"),
                (0x00081110, "SQ", [[(0x00081150, "UI", "1.2.3")],
                                    [(0x00081155, "UI", "1.2.3.4"),
                                     (0x00081110, "SQ", [[(0x00081150, "UI", "9")]])],
                                    []]),
                (0x00100010, "PN", "A^B")]
    for undefined in (False, True):
        buf = testing.encode_dataset(elements, undefined_length=undefined)
        index = scan(buf)
        assert index.status == 0
        for parent in range(len(index)):
            want = [(index.info(i)[5], index.info(i)[4]) for i in index.children(parent)]
            hoffs, lengths = index.child_extents(parent)
            assert hoffs.dtype == lengths.dtype == np.int64
            assert list(zip(hoffs.tolist(), lengths.tolist())) == want
        assert len(index.child_extents(2)[0]) == 3          # the three items
        with pytest.raises(IndexError):
            index.child_extents(len(index))
        with pytest.raises(IndexError):
            index.child_extents(-1)
