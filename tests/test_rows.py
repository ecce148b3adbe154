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


def test_stat_paths_equals_os_stat_and_lstat(tmp_path):
    """The batch stat of a re-run: size and mtime_ns as os.stat / os.lstat give them, the
    errno of a path that cannot be stat'ed, and a NUL in a path refused."""
    import errno
    import os

    import numpy as np

    from fastdicom._rows import stat_paths

    f = tmp_path / "a.dcm"
    f.write_bytes(b"x" * 1234)
    os.utime(f, ns=(1, 1_700_000_000_123_456_789))
    link = tmp_path / "link"
    link.symlink_to(f)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    paths = [f, link, tmp_path / "gone", loop, tmp_path, tmp_path / "a.dcm" / "x"]
    keys = [os.fsencode(p) for p in paths]
    for follow, stat in ((True, os.stat), (False, os.lstat)):
        size, mtime, err = stat_paths(keys, follow)
        assert size.dtype == mtime.dtype == err.dtype == np.int64
        for i, p in enumerate(paths):
            try:
                st = stat(p)
            except OSError as exc:
                assert (size[i], mtime[i], err[i]) == (-1, -1, exc.errno), p
            else:
                assert (size[i], mtime[i], err[i]) == (st.st_size, st.st_mtime_ns, 0), p
    assert stat_paths([keys[0]], True)[1][0] == 1_700_000_000_123_456_789
    assert stat_paths([keys[3]], True)[2][0] == errno.ELOOP
    assert len(stat_paths([], True)[0]) == 0
    with pytest.raises(ValueError):
        stat_paths([keys[0] + b"\0x"], True)
    with pytest.raises(TypeError):
        stat_paths([str(f)], True)


def test_sqlite_insert_keys_inserts_each_pair_and_reports_errors(tmp_path):
    """The C executemany of (blob, int) pairs: every pair stored as sqlite3 would, in the
    caller's transaction; an SQL error raised as OperationalError, lengths checked."""
    import sqlite3

    import numpy as np

    from fastdicom import _rows

    db = str(tmp_path / "x.sqlite")
    con = sqlite3.connect(db, isolation_level=None)
    if not _rows.sqlite_connection_ok(con, db):
        pytest.skip("the C SQLite writer is not available here")
    con.execute("CREATE TABLE seen(path BLOB PRIMARY KEY, not_read INTEGER)")
    keys = [b"/a", b"/b\xff\x00c", b"", b"/a"]
    flags = np.array([1, 0, 1, 0], np.uint8)
    con.execute("BEGIN")
    _rows.sqlite_insert_keys(con, db, "INSERT OR IGNORE INTO seen VALUES(?, ?)", keys, flags)
    con.execute("ROLLBACK")
    assert con.execute("SELECT count(*) FROM seen").fetchone()[0] == 0   # the caller's txn
    con.execute("BEGIN")
    _rows.sqlite_insert_keys(con, db, "INSERT OR IGNORE INTO seen VALUES(?, ?)", keys, flags)
    con.execute("COMMIT")
    got = sorted(con.execute("SELECT path, not_read, typeof(path) FROM seen"))
    assert got == [(b"", 1, "blob"), (b"/a", 1, "blob"), (b"/b\xff\x00c", 0, "blob")]
    with pytest.raises(sqlite3.OperationalError, match="UNIQUE"):
        _rows.sqlite_insert_keys(con, db, "INSERT INTO seen VALUES(?, ?)", [b"/a"],
                                 np.zeros(1, np.uint8))
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        _rows.sqlite_insert_keys(con, db, "INSERT INTO nope VALUES(?, ?)", [b"/z"],
                                 np.zeros(1, np.uint8))
    with pytest.raises(ValueError):
        _rows.sqlite_insert_keys(con, db, "INSERT INTO seen VALUES(?, ?)", [b"/z"],
                                 np.zeros(2, np.uint8))
    assert con.execute("SELECT count(*) FROM seen").fetchone()[0] == 3
