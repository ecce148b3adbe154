"""fastdicom._rows.json_objects: the same text as json.dumps, for every Arrow value it takes."""
from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from fastdicom import _rows
from fastdicom._rows import json_objects

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


def _expected(names, cols, n):
    rows = []
    for i in range(n):
        obj = {k: c[i].as_py() for k, c in zip(names, cols)}
        rows.append(json.dumps(obj, ensure_ascii=False))
    return rows


@settings(max_examples=300, deadline=None)
@given(_columns())
def test_json_objects_equals_json_dumps(spec):
    names, cols, n = spec
    if not cols:
        return
    assert json_objects(names, cols) == _expected(names, cols, n)


def test_special_values():
    cols = [pa.array(['a"\\\b\f\n\r\t\x00\x1f\x7f é \u2028 😀', None]),
            pa.array([-0.0, math.inf]), pa.array([[math.nan, -math.inf], [None]],
                                                 pa.list_(pa.float64()))]
    names = ["s", "f", "l"]
    assert json_objects(names, cols) == _expected(names, cols, 2)
    assert json.loads(json_objects(names, cols)[0])["s"] == cols[0][0].as_py()


def test_uint64_extremes():
    cols = [pa.array([0, 2**63, 2**64 - 1, None], pa.uint64()),
            pa.array([[2**64 - 1, None], None, [], [1]], pa.list_(pa.uint64()))]
    assert json_objects(["u", "l"], cols) == _expected(["u", "l"], cols, 4)


def test_unsupported_type_raises_type_error():
    with pytest.raises(TypeError):
        json_objects(["b"], [pa.array([b"\x00"])])


def test_json_rows_offsets_and_split():
    """json_rows gives one UTF-8 text with row offsets; split_rows gives back the rows, equal
    to json_objects; bad offsets are refused."""
    import numpy as np
    keys = ["a", "é"]
    arrays = [pa.array(["x", None, "ü\"q"]), pa.array([[1.5, None], None, []],
                                                      pa.list_(pa.float64()))]
    data, off = _rows.json_rows(keys, arrays)
    assert off.dtype == np.int64 and off[0] == 0 and off[-1] == len(data)
    rows = [data[off[i]:off[i + 1]].decode() for i in range(3)]
    assert rows == [json.dumps({"a": "x", "é": [1.5, None]}, ensure_ascii=False),
                    json.dumps({"a": None, "é": None}, ensure_ascii=False),
                    json.dumps({"a": "ü\"q", "é": []}, ensure_ascii=False)]
    assert _rows.split_rows(data, off) == rows == _rows.json_objects(keys, arrays)
    with pytest.raises(ValueError):
        _rows.split_rows(data[:-1], off)
    with pytest.raises(ValueError):
        _rows.split_rows(data, off[::-1].copy())


def test_attributes_json_arrow_fallback_matches_json_dumps():
    """A column the C encoder does not take (binary) goes through the Arrow kernels; the text
    is still json.dumps's, bytes as hex."""
    import numpy as np
    from fastdicom.ingest import _attributes_json
    batch = pa.RecordBatch.from_arrays(
        [pa.array([b"\x01\xff", None]), pa.array([1, 2], pa.int64())], names=["B", "A"])
    data, off = _attributes_json(batch, ["B", "A"])
    rows = [data[off[i]:off[i + 1]].decode() for i in range(2)]
    assert rows == [json.dumps({"A": 1, "B": "01ff"}, sort_keys=True),
                    json.dumps({"A": 2, "B": None}, sort_keys=True)]


def test_float_text_cache_never_mixes_values():
    """json_rows keeps the repr of recent doubles by their bits: many distinct values (more
    than its slots, so they collide), repeated, negative zero and subnormals still come out
    exactly as json.dumps writes them."""
    import random
    rng = random.Random(3)
    base = [0.0, -0.0, 5e-324, -2.2250738585072014e-308, 1e16, 1e-05, 0.1, 1024.0]
    base += [rng.uniform(-1e6, 1e6) for _ in range(3000)] + [rng.random() for _ in range(3000)]
    values = base + base[::-1] + rng.sample(base, 2000)
    arrays = [pa.array(values, pa.float64())]
    data, off = _rows.json_rows(["v"], arrays)
    got = [data[off[i]:off[i + 1]].decode() for i in range(len(values))]
    assert got == [json.dumps({"v": v}) for v in values]


def test_attributes_of_the_corpus_equal_json_dumps():
    """The attributes text ingest stores for every real file of the corpus (the default tags:
    names with escapes, multi-valued numbers, nulls) is json.dumps of the row's values."""
    import os
    from pathlib import Path
    from fastdicom.batch import DEFAULT_TAGS, scan
    from fastdicom.ingest import _REQUIRED_TAGS, _attributes_json, _json_value
    corpus = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus"
    if not corpus.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"test data missing: {corpus}")
        pytest.skip(f"test data not found at {corpus}")
    tags = list(DEFAULT_TAGS) + [t for t in _REQUIRED_TAGS if t not in DEFAULT_TAGS]
    table = scan(corpus, tags, force=True).combine_chunks()
    keywords = [f.name for f in table.schema][3:3 + len(set(tags))]
    batch = table.to_batches()[0]
    data, off = _attributes_json(batch, keywords)
    assert table.num_rows > 100
    for i, row in enumerate(batch.to_pylist()):
        want = json.dumps({k: _json_value(row[k]) for k in keywords}, sort_keys=True,
                          ensure_ascii=False)
        assert data[off[i]:off[i + 1]].decode() == want, row["path"]
