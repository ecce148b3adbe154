"""fastdicom._rows.json_cells: the same text as json.dumps, for every Arrow value it takes."""
from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from fastdicom._rows import json_cells

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
_INT = st.integers(-2**63, 2**63 - 1)
_KINDS = {
    "str": (pa.string(), _TEXT), "int": (pa.int64(), _INT), "float": (pa.float64(), _FLOAT),
    "uint": (pa.uint64(), st.integers(0, 2**64 - 1)),     # UV columns
}


@st.composite
def _columns(draw):
    n = draw(st.integers(0, 8))
    names = draw(st.lists(st.text(min_size=1, max_size=6), min_size=0, max_size=5,
                          unique=True))
    cols = []
    for _ in names:
        kind = draw(st.sampled_from(sorted(_KINDS)))
        typ, values = _KINDS[kind]
        is_list = draw(st.booleans())
        item = st.one_of(st.none(), values)
        if is_list:
            item = st.one_of(st.none(), st.lists(st.one_of(st.none(), values), max_size=4))
            typ = pa.list_(typ)
        pad = draw(st.integers(0, 2))        # sliced arrays: a non-zero offset
        data = draw(st.lists(item, min_size=n + pad, max_size=n + pad))
        cols.append(pa.array(data, typ).slice(pad))
    return names, cols, n


def _expected(col):
    return [None if v is None else json.dumps(v, ensure_ascii=False) for v in col.to_pylist()]


@settings(max_examples=300, deadline=None)
@given(_columns())
def test_json_cells_equal_json_dumps(spec):
    _names, cols, n = spec
    for col in cols:
        got = json_cells(col)
        assert got.type == pa.large_string() and len(got) == n
        assert got.to_pylist() == _expected(col)
        assert got.null_count == col.null_count


def test_special_values():
    cols = [pa.array(['a"\\\b\f\n\r\t\x00\x1f\x7f é \u2028 😀', None]),
            pa.array([-0.0, math.inf]), pa.array([[math.nan, -math.inf], [None]],
                                                 pa.list_(pa.float64()))]
    for col in cols:
        assert json_cells(col).to_pylist() == _expected(col)
    assert json.loads(json_cells(cols[0])[0].as_py()) == cols[0][0].as_py()


def test_uint64_extremes():
    cols = [pa.array([0, 2**63, 2**64 - 1, None], pa.uint64()),
            pa.array([[2**64 - 1, None], None, [], [1]], pa.list_(pa.uint64()))]
    for col in cols:
        assert json_cells(col).to_pylist() == _expected(col)


def test_unsupported_type_raises_type_error():
    for col in (pa.array([b"\x00"]), pa.array([[b"\x00"]]), pa.array([1], pa.int32())):
        with pytest.raises(TypeError):
            json_cells(col)


def test_sql_arrays_fallback_for_lists_of_bytes():
    """A list column the C encoder does not take (lists of bytes) is encoded in Python: the
    text is still json.dumps's, bytes as hex; other columns pass as they are."""
    from fastdicom.ingest import _sql_arrays
    batch = pa.RecordBatch.from_arrays(
        [pa.array([[b"\x01\xff", None], None]), pa.array([b"\x01", None]),
         pa.array([1, 2], pa.int64())], names=["L", "B", "A"])
    lists, blobs, ints = _sql_arrays(batch, ["L", "B", "A"])
    assert lists.to_pylist() == [json.dumps(["01ff", None]), None]
    assert blobs.equals(batch.column("B")) and ints.equals(batch.column("A"))


def test_float_text_cache_never_mixes_values():
    """json_cells keeps the repr of recent doubles by their bits: many distinct values (more
    than its slots, so they collide), repeated, negative zero and subnormals still come out
    exactly as json.dumps writes them."""
    import random
    rng = random.Random(3)
    base = [0.0, -0.0, 5e-324, -2.2250738585072014e-308, 1e16, 1e-05, 0.1, 1024.0]
    base += [rng.uniform(-1e6, 1e6) for _ in range(3000)] + [rng.random() for _ in range(3000)]
    values = base + base[::-1] + rng.sample(base, 2000)
    got = json_cells(pa.array(values, pa.float64())).to_pylist()
    assert got == [json.dumps(v) for v in values]
    lists = pa.array([values[k:k + 7] for k in range(0, len(values), 7)],
                     pa.list_(pa.float64()))
    assert json_cells(lists).to_pylist() == _expected(lists)


def test_cells_of_the_corpus_equal_json_dumps():
    """The tag cells ingest stores for every real file of the corpus (the default tags:
    names with escapes, multi-valued numbers, nulls): a list as json.dumps of its values,
    anything else the scan's value itself."""
    import os
    from pathlib import Path
    from fastdicom.batch import DEFAULT_TAGS, scan
    from fastdicom.ingest import _REQUIRED_TAGS, _sql_arrays
    corpus = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus"
    if not corpus.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"test data missing: {corpus}")
        pytest.skip(f"test data not found at {corpus}")
    tags = list(DEFAULT_TAGS) + [t for t in _REQUIRED_TAGS if t not in DEFAULT_TAGS]
    table = scan(corpus, tags, force=True).combine_chunks()
    keywords = [f.name for f in table.schema][3:3 + len(set(tags))]
    batch = table.to_batches()[0]
    cells = dict(zip(keywords, _sql_arrays(batch, keywords)))
    assert table.num_rows > 100
    lists = 0
    for k, col in cells.items():
        values = batch.column(k).to_pylist()
        if pa.types.is_list(batch.column(k).type):
            lists += 1
            want = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        else:
            want = values
        assert col.to_pylist() == want, k
    assert lists >= 5
