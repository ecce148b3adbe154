"""The embedded SQLite index and the resumable ingestion job (``fastdicom ingest``).

Model (real world): Patient > Study > Series > Instance, keyed by StudyInstanceUID /
SeriesInstanceUID / SOPInstanceUID.  PatientID is not globally unique: patients are keyed by
(IssuerOfPatientID, PatientID) and studies keep IssuerOfPatientID and AccessionNumber.

Tables (schema version in ``PRAGMA user_version``):

* ``files``: the ledger, one row per path seen.  ``path`` (BLOB, the exact bytes of the
  absolute path, primary key), ``display`` (text), ``size``, ``mtime_ns``, ``state``,
  ``reason``, ``sop_instance_uid``, ``sha256`` (the contents' hash, computed only when a
  SOPInstanceUID collides and kept only while it does: NULL for a file alone with its UID).
* ``instances``: one row per SOPInstanceUID, from the smallest path holding it (path,
  display_path, size, mtime_ns, UIDs, transfer syntax, rows, columns, frames, pixel
  offset/length) and a column per requested tag, and per tag the derived tables need
  (:data:`INDEX_TAGS`: the values of the series, studies and patients tables, so these are
  complete whatever tags a job asks for), named by its keyword (``x00091001`` for a tag
  without one), holding the value :func:`fastdicom.scan` reads: text, integer, real, blob;
  a list (multi-valued tags) as its JSON text (``json.dumps``); a UV value past 2**63 - 1
  as its decimal text; NaN as NULL.
  A job asking for tags the index lacks adds their columns (NULL in earlier rows and in
  the rows of files it finds unchanged, until a job with ``reread`` reads them again; at
  most 1,985 tags in all: SQLite's column limit, a ``ValueError`` before anything is
  written); the tags
  held by a fixed column (SOPInstanceUID, SOPClassUID, SeriesInstanceUID, StudyInstanceUID,
  Rows, Columns) have none.  Version 2 kept the tags in an ``attributes`` JSON object; such
  an index (and a version-1 one) is migrated in place by the next job (``export`` reads a
  version-2 index as it is).
* ``instance_copies``: every other file holding an indexed SOPInstanceUID, with its own row
  and ``state`` ``duplicate`` (identical bytes) or ``conflict`` (different bytes).
* ``series``, ``studies``, ``patients``: derived, recomputed for what each batch touches.
* ``failures`` (path, display, error type, message without element values, offset, tag,
  time),
  ``dir_errors`` (unreadable directories), ``batches`` (committed batches and their Parquet
  part), ``meta``.

States, one per input file: ``indexed``; ``unchanged`` (indexed, and the same path, size
and mtime_ns as in the ledger — nothing is read; a copy or a failure found unchanged keeps
its state: ``duplicate``, ``conflict``, ``failed``, ``skipped``); ``duplicate``; ``conflict``; ``skipped`` (symlinks, not
followed by default; sockets/fifos/devices); ``failed`` (empty, not DICOM, truncated,
malformed, unreadable, vanished, changed while read, no SOPInstanceUID); ``missing`` (in the
ledger under an input root, or matched by an input glob, but gone; its instance row is
removed and a copy, if any, takes its place).  When copies of one instance race, the
smallest path (bytes order) wins.

Atomicity: each batch is one ``BEGIN IMMEDIATE`` … ``COMMIT``; its Parquet part is written
to ``part-<batch>.parquet.tmp``, fsynced, renamed and the directory fsynced inside that
transaction; parts not referenced by ``batches`` and ``*.tmp`` files are deleted at start.
A part never keeps a row that is no longer an instance row (and when every job wrote parts,
they hold the instance rows, each once, as ``scan`` types them): a batch that
removes rows indexed by earlier batches (a file changed, gone, failed now, or outdone by a
copy with a smaller path) writes those parts again without them, under new names recorded
in the same transaction (the replaced files are deleted after it; looking for them reads
the ``path`` and ``SOPInstanceUID`` columns of the earlier parts, newest first, and matches
both: a display path alone is lossy), and a copy it promotes to the
instance row joins its own part.
A job killed at any point and re-run with the same command ends with the same index.
One job per database at a time (an exclusive ``flock`` on ``<db>.lock``, beside the real
file when ``db`` is reached through a symlink).  The job's own files (the database, its
``-wal``/``-shm``/``-journal``/``.lock`` files and the Parquet directory) are not inputs: a
walk over a tree that holds them passes over them.

Throughput: a pipeline -- the calling thread walks, reads the ledger (through a second,
read-only connection), scans and assembles batch k+1 while a single writer thread commits
batch k; every write goes through that thread, in order.  The common case of a batch (a
file new, parsed, with a SOPInstanceUID not yet indexed) is written by
:func:`fastdicom._rows.sqlite_insert_new`: two prepared statements bound straight from the
Arrow columns of the scan, the whole loop without the GIL (binding each parameter through the
sqlite3 module holds the GIL the scanning threads need), on the writer's own connection and
transaction, with the functions of the SQLite library the sqlite3 module itself uses.  A UID
it finds indexed (by an earlier batch or an earlier file of the batch) is left to the
per-file logic.  Where that C writer is not available (another interpreter, SQLite not
reachable), the same rows go through ``executemany``.  The JSON text of list values is made
in C by the scanning threads (:func:`fastdicom._rows.json_cells`, the same text as
``json.dumps(..., ensure_ascii=False)``); only files already in the ledger are ``stat``-ed; a
file costs four B-tree inserts (ledger, instance row, SOPInstanceUID and series indexes).
New databases use 16 KiB pages.  With the default batch size, consecutive batches share a
transaction (see :func:`_auto_commit_files`): with random SOPInstanceUIDs a commit rewrites
nearly every leaf of a large UID index, so on a large index a commit per batch of 2,000
files wrote ~9 KB per file (200,000 tiny files) for ~1.2 KB of index.

Exit codes of ``fastdicom ingest``: 0 the job finished (even with failed files), 1 fatal
error (database unwritable or full, or locked by another job), 2 bad usage, 130 / 143
interrupted by SIGINT / SIGTERM (the batches written so far are committed and kept; the same
command resumes; a second signal while the job stops is ignored, SIGKILL ends it at once; a
signal during start-up: see :mod:`fastdicom._early`).  The last
stdout line is a JSON object: the counts, which sum to ``files``, or
``{"error": ..., "message": ...}`` when the job did not finish (``"usage"`` for exit code 2).  A write that fails ends the
job with its own error; the writes queued after it are not made.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import json
import logging
import os
import shlex
import sqlite3
import stat
import sys
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter
from dataclasses import dataclass, asdict
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

from . import _batch, _early, _rows
from ._stop import STOPS as _STOPS, Terminated as _Terminated, \
    raised_as_itself as _stop_raised_as_itself, stop_signal_in as _stop_signal_in
from .batch import (DEFAULT_TAGS, WalkEntry, _Plan, _scan_chunk, _walk_one, _has_magic,
                    _array_or_convert, _bool_array, checked_workers, iglob, iter_files,
                    _display_path, _exc_text, _SKIPPED,
                    _int64_array, _int64_values, _string_lengths, _valid_mask)
from .batch import schema as scan_schema
from .filereader import NO_PREAMBLE
from .errors import Limits

__all__ = ["ingest", "ingest_tables", "IngestResult", "IngestLockedError", "NotAnIndexError",
           "SCHEMA_VERSION", "APPLICATION_ID",
           "INDEX_TAGS", "STATES", "register_cli", "demo_ingest", "export_parquet"]

log = logging.getLogger("fastdicom")

SCHEMA_VERSION = 3
STATES = ("indexed", "unchanged", "duplicate", "conflict", "skipped", "failed", "missing")
# files per atomic commit.  With random SOPInstanceUIDs nearly every leaf page of the UID
# index is rewritten by a commit once the index is large: larger batches share those writes
# (200,000 tiny files: 28.5 us/file with 1000, 21 with 2000; peak RSS +14 MiB)
DEFAULT_BATCH_SIZE = 2000
# by default the batches grow with the index past 200,000 instances (1/100 of it) up to this:
# once the UID index has more leaves than a batch has files, a commit rewrites about one leaf
# per file (1,000,000 tiny files: 42 s with batches of 2,000, 25 s with 8,000 and 20 s with
# 16,000; peak RSS 244, 255 and 330 MB), while jobs up to 200,000 files keep the memory of
# small batches (a batch in flight holds ~4 KB per file: Arrow columns, JSON cells)
MAX_BATCH_SIZE = 16000
_GROWTH_DIVISOR = 100


def _auto_batch_size(instances: int) -> int:
    """The default batch size for an index of about ``instances`` rows."""
    return max(DEFAULT_BATCH_SIZE, min(MAX_BATCH_SIZE, instances // _GROWTH_DIVISOR))


# With the default batch size, one commit spans consecutive batches: at least a batch, and
# past 40,000 instances a twentieth of the index (up to MAX_COMMIT_FILES), so that the UID
# index leaves a commit rewrites are shared by ~20 files each, not one, while a batch in
# flight keeps the memory of a small one; a commit is due anyway once its transaction has
# been open for COMMIT_SECONDS (the work a kill can undo stays bounded on slow storage).
MAX_COMMIT_FILES = 100_000
COMMIT_SECONDS = 5.0
_COMMIT_DIVISOR = 20


def _auto_commit_files(instances: int) -> int:
    """Files per commit, by default, for an index of about ``instances`` rows."""
    return max(_auto_batch_size(instances), min(MAX_COMMIT_FILES, instances // _COMMIT_DIVISOR))


class IngestLockedError(RuntimeError):
    """Another ingestion job holds the database."""


@dataclass
class IngestResult:
    """The counts of one job; the states sum to ``files``."""
    files: int = 0
    indexed: int = 0
    unchanged: int = 0
    duplicate: int = 0
    conflict: int = 0
    skipped: int = 0
    failed: int = 0
    missing: int = 0
    dir_errors: int = 0
    batches: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    db: str = ""

    def counts(self) -> dict:
        d = {"files": self.files}
        for s in STATES:
            d[s] = getattr(self, s)
        d["dir_errors"] = self.dir_errors
        return d

    def as_dict(self) -> dict:
        return asdict(self)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files(
    path BLOB PRIMARY KEY, display TEXT NOT NULL, size INTEGER, mtime_ns INTEGER,
    state TEXT NOT NULL, reason TEXT, sop_instance_uid TEXT, sha256 BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failures(
    path BLOB PRIMARY KEY, display TEXT NOT NULL, error_type TEXT, message TEXT,
    offset INTEGER, tag INTEGER, time REAL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dir_errors(
    path BLOB PRIMARY KEY, display TEXT NOT NULL, error_type TEXT, message TEXT,
    errno INTEGER, time REAL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS instances(
    sop_instance_uid TEXT PRIMARY KEY, path BLOB NOT NULL, display_path TEXT NOT NULL,
    size INTEGER, mtime_ns INTEGER, sop_class_uid TEXT, series_instance_uid TEXT,
    study_instance_uid TEXT, transfer_syntax_uid TEXT, rows INTEGER, columns INTEGER,
    frames INTEGER, pixel_offset INTEGER, pixel_length INTEGER/*tags*/);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_instance_uid, sop_instance_uid);
CREATE TABLE IF NOT EXISTS instance_copies(
    path BLOB PRIMARY KEY, state TEXT NOT NULL, sop_instance_uid TEXT NOT NULL,
    display_path TEXT NOT NULL, size INTEGER, mtime_ns INTEGER, sop_class_uid TEXT,
    series_instance_uid TEXT, study_instance_uid TEXT, transfer_syntax_uid TEXT,
    rows INTEGER, columns INTEGER, frames INTEGER, pixel_offset INTEGER,
    pixel_length INTEGER/*tags*/) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS copies_sop ON instance_copies(sop_instance_uid);
CREATE TABLE IF NOT EXISTS series(
    series_instance_uid TEXT PRIMARY KEY, study_instance_uid TEXT, modality TEXT,
    series_number INTEGER, series_description TEXT, num_instances INTEGER,
    first_sop_instance_uid TEXT);
CREATE INDEX IF NOT EXISTS series_study ON series(study_instance_uid);
CREATE TABLE IF NOT EXISTS studies(
    study_instance_uid TEXT PRIMARY KEY, patient_key TEXT, patient_id TEXT,
    issuer_of_patient_id TEXT, patient_name TEXT, accession_number TEXT, study_date TEXT,
    study_time TEXT, study_id TEXT, study_description TEXT, num_series INTEGER,
    num_instances INTEGER);
CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_key);
CREATE TABLE IF NOT EXISTS patients(
    patient_key TEXT PRIMARY KEY, patient_id TEXT, issuer_of_patient_id TEXT,
    patient_name TEXT, patient_birth_date TEXT, patient_sex TEXT, num_studies INTEGER);
CREATE TABLE IF NOT EXISTS batches(id INTEGER PRIMARY KEY, part TEXT, files INTEGER,
    time REAL);
"""

_ROW_COLS = ("sop_instance_uid", "path", "display_path", "size", "mtime_ns", "sop_class_uid",
             "series_instance_uid", "study_instance_uid", "transfer_syntax_uid", "rows",
             "columns", "frames", "pixel_offset", "pixel_length")
_COPY_COLS = ("path", "state", "sop_instance_uid", "display_path", "size", "mtime_ns",
              "sop_class_uid", "series_instance_uid", "study_instance_uid",
              "transfer_syntax_uid", "rows", "columns", "frames", "pixel_offset",
              "pixel_length")
_LEDGER_SQL = (
    "INSERT INTO files(path, display, size, mtime_ns, state, reason, sop_instance_uid,"
    " sha256) VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET"
    " display=excluded.display, size=excluded.size, mtime_ns=excluded.mtime_ns,"
    " state=excluded.state, reason=excluded.reason,"
    " sop_instance_uid=excluded.sop_instance_uid, sha256=excluded.sha256")
# the keywords whose values are a fixed column of the instance rows (no tag column of their
# own; SQLite's names are case-insensitive: "Rows" would be "rows")
_FIXED_KEYWORDS = {"SOPInstanceUID": "sop_instance_uid", "SOPClassUID": "sop_class_uid",
                   "SeriesInstanceUID": "series_instance_uid",
                   "StudyInstanceUID": "study_instance_uid", "Rows": "rows",
                   "Columns": "columns"}
# the statement of the C writer (fastdicom._rows.sqlite_insert_new) for the ledger; its
# instance statement is the layout's (a UID already indexed leaves the file to the per-file
# logic)
_C_LEDGER_SQL = _LEDGER_SQL.replace("VALUES(?,?,?,?,?,?,?,?)",
                                    "VALUES(?1,?2,?3,?4,'indexed',NULL,?5,NULL)")
#: the ledger reason of a file failed only for want of a preamble (``force`` reads it again)
_NO_PREAMBLE_REASON = "InvalidDicomError: " + NO_PREAMBLE
_C_COLUMNS = ("size", "mtime_ns", "SOPInstanceUID", "SOPClassUID", "SeriesInstanceUID",
              "StudyInstanceUID", "transfer_syntax", "Rows", "Columns", "num_frames",
              "pixel_offset", "pixel_length", "path")

# the instance values a series, a study and a patient row take (from their first instance)
_SERIES_KEYWORDS = ("Modality", "SeriesNumber", "SeriesDescription")
_STUDY_KEYWORDS = ("PatientID", "IssuerOfPatientID", "PatientName", "AccessionNumber",
                   "StudyDate", "StudyTime", "StudyID", "StudyDescription")
_PATIENT_KEYWORDS = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate",
                     "PatientSex")
#: the tags an index always reads beside those asked for: the UIDs, Rows/Columns and the
#: values of the patients, studies and series tables.  Rows scanned elsewhere for
#: :func:`ingest_tables` (``fastdicom.dask.read_headers(paths, tags)``) need them among their
#: tags (``DEFAULT_TAGS`` has them), else those columns and tables stay empty.
INDEX_TAGS = tuple(dict.fromkeys(
    ("SOPInstanceUID", "SOPClassUID", "SeriesInstanceUID", "StudyInstanceUID", "Rows",
     "Columns") + _SERIES_KEYWORDS + _STUDY_KEYWORDS + _PATIENT_KEYWORDS))
_REQUIRED_TAGS = INDEX_TAGS



def _quote(name: str) -> str:
    """``name`` as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _sql_type(t: pa.DataType) -> str:
    """The declared type of a tag column holding values of the scan's Arrow type ``t``:
    lists are JSON text; uint64 has none (values past 2**63 - 1 are stored as their decimal
    text, which an INTEGER column would turn into an inexact REAL)."""
    if pa.types.is_list(t) or pa.types.is_string(t):
        return "TEXT"
    if t == pa.uint64():
        return ""
    if pa.types.is_integer(t):
        return "INTEGER"
    if pa.types.is_floating(t):
        return "REAL"
    if pa.types.is_binary(t):
        return "BLOB"
    return "TEXT"


def _keyword_type(keyword: str) -> pa.DataType:
    """The Arrow type :func:`fastdicom.scan` gives ``keyword``'s column (a name that is no
    keyword or tag: string)."""
    try:
        return scan_schema([keyword]).field(keyword).type
    except (ValueError, KeyError):
        return pa.string()


def _plan_types(plan) -> dict:
    """keyword -> Arrow type of the columns of ``plan``."""
    return {s.keyword: plan.schema.field(s.keyword).type for s in plan.specs}


def _tag_columns(con, table: str = "instances") -> list:
    """The tag columns of ``table``, in table order (its fixed columns and the ``attributes``
    column of an index migrated by an SQLite without DROP COLUMN excluded)."""
    fixed = {c.lower() for c in _COPY_COLS} | {"attributes"}
    return [r[1] for r in con.execute(f"PRAGMA table_info({table})")
            if r[1].lower() not in fixed]


class _Layout:
    """The tag columns of a job: ``tags`` (the keywords the job writes, each a column named
    by it, in plan order; keywords held by a fixed column excluded), ``all_tags`` (every tag
    column of the index, earlier jobs' included) and the statements that follow."""

    def __init__(self, plan, con):
        self.tags = [s.keyword for s in plan.specs if s.keyword not in _FIXED_KEYWORDS]
        self.all_tags = _tag_columns(con)
        self.row_cols = _ROW_COLS + tuple(self.all_tags)
        self.copy_cols = _COPY_COLS + tuple(self.all_tags)
        self.c_instance_sql = (_insert_sql("instances", _ROW_COLS + tuple(self.tags)) +
                               " ON CONFLICT(sop_instance_uid) DO NOTHING")
        self.insert_sql = _insert_sql("instances", self.row_cols)
        self.copy_sql = _insert_sql("instance_copies", self.copy_cols, "INSERT OR REPLACE")
        self.present = {c.lower() for c in self.all_tags}

    def col(self, keyword: str) -> str:
        """``keyword``'s column in a SELECT (NULL when the index has none)."""
        return _quote(keyword) if keyword.lower() in self.present else "NULL"


def _insert_sql(table: str, cols, verb: str = "INSERT") -> str:
    return (f"{verb} INTO {table}(" + ", ".join(map(_quote, cols)) + ") VALUES(" +
            ",".join("?" * len(cols)) + ")")


def _add_tag_columns(con, types: dict) -> None:
    """Add to ``instances`` and ``instance_copies`` a column for each keyword of ``types``
    (keyword -> Arrow type) they lack (inside the caller's transaction)."""
    have = {r[1].lower() for r in con.execute("PRAGMA table_info(instance_copies)")}
    new = [(k, t) for k, t in types.items()
           if k not in _FIXED_KEYWORDS and k.lower() not in have]
    if not new:
        return
    _check_column_count(con, len(have) + len(new))
    for k, t in new:
        for table in ("instances", "instance_copies"):
            con.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(k)} {_sql_type(t)}")


class _TooManyTags(ValueError):
    """More tags than an SQLite table has columns for (bad usage in the CLI)."""


def _check_column_count(con, n: int) -> None:
    """A ``ValueError`` when a table of ``n`` columns passes SQLite's limit (2,000 by
    default: about 1,980 tags), before SQLite's own error ("too many columns on
    sqlite_altertab_instance_copies")."""
    try:
        limit = con.getlimit(sqlite3.SQLITE_LIMIT_COLUMN)
    except AttributeError:                   # Python < 3.11
        limit = 2000
    if n > limit:
        raise _TooManyTags(f"the index can hold at most {limit - len(_COPY_COLS)} tags (SQLite's "
                         f"column limit); this job would make it {n - len(_COPY_COLS)}")


def _migrate_2_to_3(con) -> None:
    """Version 2 -> 3: the requested tags move from the ``attributes`` JSON object to a
    column each, holding what a job of this version writes (a list as its JSON text, a
    uint64 past 2**63 - 1 as its decimal text, a binary value -- hex text in version 2 --
    as its bytes); the ``attributes`` column is then dropped (emptied where the SQLite has
    no DROP COLUMN).  The JSON is read in Python (version 2 wrote NaN and Infinity, which
    SQLite's JSON functions refuse), 5,000 rows at a time, twice: the keys, then the values.
    Keys that are no column name of their own (a fixed column's, in any case; empty) are
    left out.  A text that is not a JSON object fails the migration naming its instance
    (nothing is changed: one transaction)."""
    tables = (("instances", "sop_instance_uid"), ("instance_copies", "path"))

    def rows_of(table, key):
        last = None
        while True:
            rows = con.execute(
                f"SELECT {key}, attributes, sop_instance_uid FROM {table}" +
                ("" if last is None else f" WHERE {key} > ?") + f" ORDER BY {key} LIMIT 5000",
                () if last is None else (last,)).fetchall()
            if not rows:
                return
            yield [(kv, _attributes(text, uid)) for kv, text, uid in rows]
            last = rows[-1][0]
    keys: set = set()
    for table, key in tables:
        for chunk in rows_of(table, key):
            for _, a in chunk:
                keys.update(a)
    reserved = {c.lower() for c in _COPY_COLS} | {"attributes", ""}
    types: dict = {}
    for k in sorted(keys - set(_FIXED_KEYWORDS)):
        if k.lower() in reserved:
            continue
        reserved.add(k.lower())         # (two keys differing in case: the first one)
        types[k] = _keyword_type(k)
    _add_tag_columns(con, types)
    moved = list(types)
    binary = {k for k, t in types.items() if pa.types.is_binary(t)}

    def cell(k, v):
        if isinstance(v, (list, dict)):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, int) and not -2 ** 63 <= v < 2 ** 63:
            return str(v)
        if k in binary and isinstance(v, str):
            try:
                return bytes.fromhex(v)
            except ValueError:
                return v
        return v
    for table, key in tables:
        if moved:
            update = (f"UPDATE {table} SET " + ", ".join(f"{_quote(k)} = ?" for k in moved) +
                      f" WHERE {key} = ?")
            for chunk in rows_of(table, key):
                con.executemany(update, [[cell(k, a.get(k)) for k in moved] + [kv]
                                         for kv, a in chunk])
        try:
            con.execute(f"ALTER TABLE {table} DROP COLUMN attributes")
        except sqlite3.OperationalError:      # SQLite < 3.35
            con.execute(f"UPDATE {table} SET attributes = NULL")


# ----------------------------------------------------------------------------- database

def _db_file(db) -> str:
    """``db`` as a path; SQLite's names of temporary databases ("", ":memory:") are refused:
    a job into one would report files indexed and keep nothing."""
    db = os.fsdecode(os.fspath(db))
    if db in ("", ":memory:"):
        raise ValueError(f"the index must be a file, not {db!r} (a temporary database)")
    return db


#: ``PRAGMA application_id`` of an index ("FDCM"; set since schema version 3 by every job)
APPLICATION_ID = 0x4644434D
# the tables every index has had, from schema version 1 on (an index written before the
# application id is known by them)
_CORE_TABLES = frozenset({"meta", "files", "failures", "instances", "series", "studies",
                          "patients", "batches"})


class NotAnIndexError(RuntimeError):
    """An SQLite database that is not a fastdicom index (refused, left as it is)."""


def _refuse_foreign(con, db: str) -> None:
    """Raise :class:`NotAnIndexError` unless the database of ``con`` is empty or an index:
    its application id, else (an index from before it) its schema version with the index's
    tables.  Reads only: another program's database is left as it is."""
    app = con.execute("PRAGMA application_id").fetchone()[0]
    version = con.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if app not in (0, APPLICATION_ID):
        why = f"application id {app:#010x}"
    elif app == 0 and tables and version == 0:
        why = "tables, no schema version"
    elif app == 0 and tables and not _CORE_TABLES <= tables:
        why = f"schema version {version}, other tables"
    else:
        return
    raise NotAnIndexError(f"{db}: an SQLite database that is not a fastdicom index ({why}):"
                           " left as it is")


def _connect(db: str) -> sqlite3.Connection:
    con = sqlite3.connect(db, isolation_level=None, timeout=5.0, check_same_thread=False)
    try:
        # another program's database is refused before anything is changed in it (the
        # journal mode too)
        _refuse_foreign(con, db)
    except BaseException:
        con.close()
        raise
    # larger pages for a new database (fewer page writes per batch; ignored for an existing
    # one) and a bounded page cache big enough for a batch
    con.execute("PRAGMA page_size=16384")
    con.execute("PRAGMA cache_size=-32768")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA temp_store=FILE")
    return con


_WAL_LIMIT = 64 << 20     # bytes of WAL past which the writer waits for the checkpoint


class _Checkpointer:
    """Copies the WAL into the database file on its own thread and connection (passive
    checkpoints: they neither wait for nor block the writer), so that the writer, whose
    automatic checkpoints are off, does not wait for a checkpoint's page copies and fsyncs.
    A checkpoint that fails loses nothing (the WAL keeps the commits); it is logged and tried
    again after the next commit.

    SQLite starts the WAL over only when a write transaction begins with every frame copied
    back; a writer that always begins while a checkpoint runs would grow it without bound.
    So once the WAL passes ``wal_limit`` bytes, :meth:`settle` (called by the writer before
    it begins) finishes the checkpoint first: the WAL stays within about that size."""

    def __init__(self, db: str, wal_limit: Optional[int] = None):
        self.con = sqlite3.connect(db, isolation_level=None, timeout=5.0,
                                   check_same_thread=False)
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="fastdicom-ingest-checkpoint")
        self.pending = None
        self.wal = db + "-wal"
        self.wal_limit = _WAL_LIMIT if wal_limit is None else wal_limit

    def poke(self) -> None:
        """Start a checkpoint unless one is running (called after each commit)."""
        if self.pending is None or self.pending.done():
            self.pending = self.pool.submit(self._checkpoint)

    def settle(self) -> None:
        """Before a write transaction: when the WAL is past its limit, wait for the running
        checkpoint and copy what is left, so that the transaction starts the WAL over."""
        try:
            if os.stat(self.wal).st_size < self.wal_limit:
                return
        except OSError:
            return
        if self.pending is not None:
            self.pending.result()
        self.pending = self.pool.submit(self._checkpoint)
        self.pending.result()

    def _checkpoint(self) -> None:
        try:
            self.con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed (tried again after the next commit): %s", exc)

    def close(self) -> None:
        stop = _run_out(self.pool)
        self.con.close()
        if stop is not None:
            raise stop


def _uninterrupted(wait) -> None:
    """Call ``wait`` (for threads that use a connection about to be closed) until it
    returns, whatever signals interrupt it (SIGINT, SIGTERM in the CLI); the first
    interruption is raised afterwards."""
    first = None
    while True:
        try:
            wait()
            break
        except BaseException as exc:          # KeyboardInterrupt, _Terminated
            if not isinstance(exc, _STOPS):
                raise
            if first is None:
                first = exc
    if first is not None:
        raise first


def _run_out(executor: ThreadPoolExecutor) -> Optional[BaseException]:
    """Shut ``executor`` (one thread) down once every task submitted to it has run, whatever
    signals interrupt the wait; returns the first interruption's exception (SIGINT,
    SIGTERM in the CLI), or None.  Not by ``Thread.join``: in CPython 3.11, a join that a
    signal's exception interrupts takes the thread for ended, and the next join returns at
    once while the thread still runs (it could be writing a batch on a connection about to
    be committed or closed)."""
    first = last = None
    while last is None:
        try:
            last = executor.submit(int)     # runs after every task queued before it
        except _STOPS as exc:
            first = first or exc
    while True:
        try:
            last.result()
            break
        except _STOPS as exc:
            first = first or exc
        except RuntimeError as exc:
            # the signal landed just after the wait released its lock (see fastdicom._stop)
            stop = _stop_signal_in(exc)
            if stop is None:
                raise
            first = first or stop
    executor.shutdown(wait=False)
    return first


# version 1 -> 2: three secondary indexes dropped (each cost a B-tree insert per file; the
# lookups they served go through files.path and series.study_instance_uid instead) and
# series.first_sop_instance_uid added (a study's first instance without a study index)
_MIGRATE_1_TO_2 = """
DROP INDEX IF EXISTS files_sop;
DROP INDEX IF EXISTS instances_study;
DROP INDEX IF EXISTS instances_path;
ALTER TABLE series ADD COLUMN first_sop_instance_uid TEXT;
UPDATE series SET first_sop_instance_uid = (SELECT min(sop_instance_uid) FROM instances i
    WHERE i.series_instance_uid = series.series_instance_uid)
"""


def _ro_uri(db, mode: str = "ro") -> str:
    """A SQLite URI for ``db`` opened with ``mode`` (percent-encoded: any path works)."""
    from pathlib import Path
    return Path(os.path.abspath(os.fspath(db))).as_uri() + "?mode=" + mode


def _connect_browse(db) -> sqlite3.Connection:
    """A connection for reading an index outside a job (``ls``, ``export``).  Read-write
    with ``query_only`` where allowed, because a read-only connection to a WAL database
    leaves its ``-wal``/``-shm`` files behind when it closes last; read-only otherwise; and
    ``immutable`` on a read-only medium, where no ``-shm`` file can be made beside a WAL
    database (and no one can be writing it).  Each is tried with a first read (SQLite opens
    the file lazily)."""
    error = None
    for mode in ("rw", "ro", "ro&immutable=1"):
        try:
            con = sqlite3.connect(_ro_uri(db, mode), uri=True)
        except sqlite3.OperationalError as exc:
            error = exc
            continue
        try:
            if mode == "rw":
                con.execute("PRAGMA query_only=ON")
            con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return con
        except sqlite3.OperationalError as exc:
            con.close()
            error = exc
    raise error


def _connect_reader(db: str) -> sqlite3.Connection:
    """A second connection for the ledger lookups of the walking thread (WAL: it reads the
    last committed state while the writer thread writes)."""
    con = sqlite3.connect(_ro_uri(db), uri=True, isolation_level=None, timeout=5.0,
                          check_same_thread=False)
    con.execute("PRAGMA cache_size=-8192")
    return con


def _init_schema(con: sqlite3.Connection, types: dict) -> None:
    """Create or migrate the schema and add the tag columns of ``types`` (keyword -> the
    scan's Arrow type), in one transaction."""
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, 1, 2, SCHEMA_VERSION):
        raise RuntimeError(f"index schema version {version} is not supported "
                           f"(this fastdicom writes version {SCHEMA_VERSION})")
    con.execute("BEGIN IMMEDIATE")
    try:
        if version == 1:
            for stmt in _MIGRATE_1_TO_2.strip().split(";"):
                con.execute(stmt)
        if version in (1, 2):
            # the job's tag columns first (in its order, as a new index has them), then the
            # other keys of the attributes
            _add_tag_columns(con, types)
            _migrate_2_to_3(con)
        # a new index gets its tag columns with its tables (80 ALTER TABLEs took 15 ms)
        new = [(k, t) for k, t in types.items() if k not in _FIXED_KEYWORDS]
        if not version:
            _check_column_count(con, len(_COPY_COLS) + len(new))
        tags = "".join(f", {_quote(k)} {_sql_type(t)}" for k, t in new)
        for stmt in _SCHEMA.replace("/*tags*/", tags).strip().split(";"):
            if stmt.strip():
                con.execute(stmt)
        _add_tag_columns(con, types)
        if version != SCHEMA_VERSION:
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if con.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            con.execute(f"PRAGMA application_id={APPLICATION_ID}")
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise


def _rollback(con: sqlite3.Connection) -> None:
    """Roll back the open transaction unless SQLite already has (it does on its own after
    SQLITE_FULL, SQLITE_IOERR and the like): the error that led here is the one to report,
    not a failed ROLLBACK."""
    if con.in_transaction:
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("ROLLBACK failed: %s", exc)


def _refuse_other_file(db: str) -> None:
    """Raise ``sqlite3.DatabaseError`` when ``db`` is a file that is not an SQLite database
    (before the lock, whose ``<db>.lock`` file would be left beside it)."""
    try:
        with open(db, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return          # absent (created), or SQLite gives its own error
    if head and head != b"SQLite format 3\x00"[:len(head)]:
        raise sqlite3.DatabaseError("file is not a database")


class _Lock:
    """An exclusive ``flock`` on ``<db>.lock``, beside the database file itself: a database
    reached through a symlink, or another spelling of its path, takes the same lock."""

    def __init__(self, db: str):
        self.path = os.path.realpath(db) + ".lock"
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                              0o644)
            self.made = True
        except FileExistsError:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self.made = False
        except FileNotFoundError:
            # (the lock file is not what the user named: say which folder is missing)
            folder = os.path.dirname(self.path)
            if os.path.isdir(folder):
                raise
            raise FileNotFoundError(errno.ENOENT, "no such folder for the index",
                                    os.path.dirname(os.path.abspath(db))) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise IngestLockedError(f"another ingest job is running on {db!r} "
                                    f"(lock {self.path!r} is held)") from None

    def release(self, remove: bool = False):
        """Unlock; ``remove``: also delete the lock file when this job made it (a database
        refused as another program's keeps nothing of the job beside it)."""
        if self.fd >= 0:
            if remove and self.made:
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


def _fsync_dir(d: str) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_parts_folder(con, parquet: Optional[str]) -> None:
    """The Parquet parts of the index stay in one folder (``meta`` key ``parquet_dir``): a
    job given another one raises, unless every part is there (moved), since the parts it
    does not see would keep the rows it removes; a job without ``--parquet`` warns that it
    leaves them as they are."""
    row = con.execute("SELECT value FROM meta WHERE key='parquet_dir'").fetchone()
    old = row[0] if row else None
    names = [r[0] for r in con.execute("SELECT part FROM batches WHERE part IS NOT NULL")]
    if parquet is None:
        if names and old is not None:
            log.warning("this job leaves the index's %d Parquet parts in %s as they are: "
                        "the rows it changes or removes stay in them (--parquet %s keeps "
                        "them in step)", len(names), old, old)
        return
    new = os.path.realpath(parquet)
    if names and old is not None and old != new and \
            not all(os.path.exists(os.path.join(new, n)) for n in names):
        raise RuntimeError(f"the index's {len(names)} Parquet parts are in {old!r}, not in "
                           f"{parquet!r}: give --parquet {old} (or move the parts first)")
    if old != new:
        con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('parquet_dir', ?)", (new,))


def _clean_parts(con, parquet_dir: str) -> None:
    os.makedirs(parquet_dir, exist_ok=True)
    referenced = {r[0] for r in con.execute("SELECT part FROM batches WHERE part IS NOT NULL")}
    removed = False
    for name in os.listdir(parquet_dir):
        if name.endswith(".tmp") or (name.startswith("part-") and name.endswith(".parquet")
                                     and name not in referenced):
            os.unlink(os.path.join(parquet_dir, name))
            removed = True
    if removed:
        _fsync_dir(parquet_dir)


def _write_part(parquet_dir: str, batch_id: int, table: pa.Table,
                name: Optional[str] = None) -> str:
    import pyarrow.parquet as pq
    name = name or f"part-{batch_id:08d}.parquet"
    final = os.path.join(parquet_dir, name)
    tmp = final + ".tmp"
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        pq.read_metadata(tmp)          # footer check
        os.replace(tmp, final)
    except BaseException as exc:
        # (a job killed here leaves the .tmp to the next one's start, which deletes it)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, final) from exc     # name the part
        raise
    _fsync_dir(parquet_dir)
    return name


# ----------------------------------------------------------------------------- per-row logic

def _sha256(path_bytes: bytes) -> Optional[bytes]:
    """The hash of a file's bytes (None when it cannot be read).  A symbolic link is read
    through: it is in the index only when a job that follows links read it so (its hash
    was None, and its identical copies were recorded as conflicts)."""
    try:
        data, size, mtime, changed = _batch.read_checked(path_bytes, -1, True)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            return None
        try:
            data, size, mtime, changed = _batch.read_checked(path_bytes, -1, False)
        except OSError:
            return None
    return hashlib.sha256(data).digest()


class _Writer:
    """Applies scanned rows to the database inside one transaction."""

    def __init__(self, con, layout):
        self.con = con
        self.layout = layout
        self.touched_series: set = set()
        self.touched_studies: set = set()
        self.new_instance_rows: list = []
        # instance rows removed since (a copy that won, a file gone): not in the batch's part
        self.dropped_rows: set = set()
        # (display path, SOPInstanceUID) of every instance row deleted (they leave the Parquet
        # parts of earlier batches) and the copies promoted to instance rows (their rows
        # join this batch's part): see _sync_parts
        self.removed: set = set()
        self.promoted: list = []

    def ledger(self, path, display, size, mtime, state, reason=None, uid=None, sha=None):
        self.con.execute(_LEDGER_SQL, (path, display, size, mtime, state, reason, uid, sha))

    def set_state(self, path, state):
        self.con.execute("UPDATE files SET state=? WHERE path=? AND state IS NOT ?",
                         (state, path, state))

    def fail(self, path, display, size, mtime, etype, msg, offset=None, tag=None):
        self.unindex(path)
        self.ledger(path, display, size, mtime, "failed", f"{etype}: {msg}")
        self.con.execute(
            "INSERT INTO failures(path, display, error_type, message, offset, tag, time)"
            " VALUES(?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET display=excluded.display,"
            " error_type=excluded.error_type, message=excluded.message,"
            " offset=excluded.offset, tag=excluded.tag, time=excluded.time",
            (path, display, etype, msg, offset, tag, time.time()))

    def clear_failure(self, path):
        self.con.execute("DELETE FROM failures WHERE path=?", (path,))

    def _touch(self, series, study):
        if series:
            self.touched_series.add(series)
        if study:
            self.touched_studies.add(study)

    def _hash_of(self, path):
        r = self.con.execute("SELECT sha256 FROM files WHERE path=?", (path,)).fetchone()
        if r is not None and r[0] is not None:
            return r[0]
        h = _sha256(path)
        self.con.execute("UPDATE files SET sha256=? WHERE path=?", (h, path))
        return h

    def kept_tags(self, path) -> dict:
        """The values, in the row ``path`` holds now (instance row or copy), of the tag
        columns the job does not read."""
        mine = {k.lower() for k in self.layout.tags}
        other = [c for c in self.layout.all_tags if c.lower() not in mine]
        if not other:
            return {}
        sel = ", ".join(map(_quote, other))
        r = self.con.execute(
            f"SELECT {', '.join('i.' + _quote(c) for c in other)} FROM files f JOIN"
            " instances i ON i.sop_instance_uid = f.sop_instance_uid AND i.path = f.path"
            " WHERE f.path=?", (path,)).fetchone() or self.con.execute(
            f"SELECT {sel} FROM instance_copies WHERE path=?", (path,)).fetchone()
        return dict(zip(other, r)) if r is not None else {}

    def unindex(self, path):
        """Remove whatever ``path`` contributed to instances/copies; promote a copy."""
        con = self.con
        r = con.execute("SELECT i.sop_instance_uid, i.series_instance_uid,"
                        " i.study_instance_uid, i.display_path FROM files f JOIN instances i"
                        " ON i.sop_instance_uid = f.sop_instance_uid AND i.path = f.path"
                        " WHERE f.path=?", (path,)).fetchone()
        if r is not None:
            uid = r[0]
            con.execute("DELETE FROM instances WHERE sop_instance_uid=?", (uid,))
            self.dropped_rows.add(path)
            self.removed.add((r[3], uid))
            self._touch(r[1], r[2])
            self._promote(uid)
        else:
            r = con.execute("SELECT sop_instance_uid FROM instance_copies WHERE path=?",
                            (path,)).fetchone()
            if r is not None:
                con.execute("DELETE FROM instance_copies WHERE path=?", (path,))
                self._unpair(r[0])

    def _unpair(self, uid):
        """``uid`` lost a copy: when one file is left with it, that file drops its hash, as
        a fresh job over the same tree (which hashes only colliding files) would leave it."""
        con = self.con
        if con.execute("SELECT 1 FROM instance_copies WHERE sop_instance_uid=? LIMIT 1",
                       (uid,)).fetchone() is None:
            con.execute("UPDATE files SET sha256=NULL WHERE path=(SELECT path FROM instances"
                        " WHERE sop_instance_uid=?) AND sha256 IS NOT NULL", (uid,))

    def _promote(self, uid):
        con = self.con
        cols = self.layout.copy_cols
        r = con.execute("SELECT " + ", ".join(map(_quote, cols)) + " FROM instance_copies"
                        " WHERE sop_instance_uid=? ORDER BY path LIMIT 1", (uid,)).fetchone()
        if r is None:
            return
        row = dict(zip(cols, r))
        con.execute("DELETE FROM instance_copies WHERE path=?", (row["path"],))
        row.pop("state")
        self._insert_instance(row)
        self.promoted.append(row)
        self.set_state(row["path"], "indexed")
        self.con.execute("INSERT OR IGNORE INTO temp.promoted(path) VALUES(?)", (row["path"],))
        self._unpair(uid)
        self._restate_copies(uid, row["path"])

    def _restate_copies(self, uid, winner):
        copies = self.con.execute("SELECT path FROM instance_copies WHERE"
                                  " sop_instance_uid=?", (uid,)).fetchall()
        if not copies:
            return          # (a file alone with its UID is not hashed)
        h = self._hash_of(winner)
        for (p,) in copies:
            hp = self._hash_of(p)
            st = "duplicate" if (h is not None and hp == h) else "conflict"
            self.con.execute("UPDATE instance_copies SET state=? WHERE path=? AND state!=?",
                             (st, p, st))
            self.set_state(p, st)

    def _insert_instance(self, row):
        self.con.execute(self.layout.insert_sql,
                         tuple(row.get(c) for c in self.layout.row_cols))
        self._touch(row["series_instance_uid"], row["study_instance_uid"])
        self.new_instance_rows.append(row["path"])
        self.dropped_rows.discard(row["path"])

    def place(self, row) -> str:
        """Index one parsed file; return its state."""
        con = self.con
        uid, path = row["sop_instance_uid"], row["path"]
        cur = con.execute("SELECT path FROM instances WHERE sop_instance_uid=?",
                          (uid,)).fetchone()
        if cur is None:
            self._insert_instance(row)
            return "indexed"
        other = cur[0]
        if other == path:
            con.execute("DELETE FROM instances WHERE sop_instance_uid=?", (uid,))
            self.removed.add((row["display_path"], uid))
            self._insert_instance(row)
            return "indexed"
        mine = self._hash_of(path)
        if path < other:
            # the new file wins: the old winner becomes a copy
            lay = self.layout
            old = con.execute("SELECT " + ", ".join(map(_quote, lay.row_cols)) +
                              " FROM instances WHERE sop_instance_uid=?", (uid,)).fetchone()
            old = dict(zip(lay.row_cols, old))
            con.execute("DELETE FROM instances WHERE sop_instance_uid=?", (uid,))
            self.dropped_rows.add(other)
            self.removed.add((old["display_path"], uid))
            # (the old winner's series and study may have no instance left)
            self._touch(old["series_instance_uid"], old["study_instance_uid"])
            self._insert_instance(row)
            old["state"] = "conflict"
            con.execute(lay.copy_sql, tuple(old.get(c) for c in lay.copy_cols))
            self._restate_copies(uid, path)
            return "indexed"
        theirs = self._hash_of(other)
        state = "duplicate" if (mine is not None and mine == theirs) else "conflict"
        copy = dict(row)
        copy["state"] = state
        con.execute(self.layout.copy_sql, tuple(copy.get(c) for c in self.layout.copy_cols))
        return state

    def refresh_hierarchy(self):
        """Recompute the series, studies and patients the batch touched.  A series belongs
        to the study of its first instance (smallest SOPInstanceUID); a study's values come
        from its first instance, found through its series (no per-study instance index)."""
        con = self.con
        col = self.layout.col
        patients = set()
        studies = set(self.touched_studies)
        for s in sorted(self.touched_series):
            old = con.execute("SELECT study_instance_uid FROM series WHERE"
                              " series_instance_uid=?", (s,)).fetchone()
            if old is not None and old[0] is not None:
                studies.add(old[0])
            r = con.execute("SELECT study_instance_uid, sop_instance_uid, " +
                            ", ".join(col(k) for k in _SERIES_KEYWORDS) + " FROM"
                            " instances WHERE series_instance_uid=? ORDER BY sop_instance_uid"
                            " LIMIT 1", (s,)).fetchone()
            if r is None:
                con.execute("DELETE FROM series WHERE series_instance_uid=?", (s,))
                continue
            n = con.execute("SELECT count(*) FROM instances WHERE series_instance_uid=?",
                            (s,)).fetchone()[0]
            vals = (s, r[0], _as_text(r[2]), _as_int(r[3]), _as_text(r[4]), n, r[1])
            _upsert(con, "series", ("series_instance_uid", "study_instance_uid", "modality",
                                    "series_number", "series_description", "num_instances",
                                    "first_sop_instance_uid"), vals)
        for st in sorted(x for x in studies if x):
            old = con.execute("SELECT patient_key FROM studies WHERE study_instance_uid=?",
                              (st,)).fetchone()
            if old is not None:
                patients.add(old[0])
            ns, ni, first = con.execute(
                "SELECT count(*), sum(num_instances), min(first_sop_instance_uid) FROM series"
                " WHERE study_instance_uid=?", (st,)).fetchone()
            r = None if first is None else con.execute(
                "SELECT " + ", ".join(col(k) for k in _STUDY_KEYWORDS) +
                " FROM instances WHERE sop_instance_uid=?", (first,)).fetchone()
            if r is None:
                con.execute("DELETE FROM studies WHERE study_instance_uid=?", (st,))
                continue
            pid, issuer, name, accession, date, stime, sid, desc = map(_as_text, r)
            key = f"{issuer or ''}\x1f{pid or ''}"
            patients.add(key)
            vals = (st, key, pid, issuer, name, accession, date, stime, sid, desc, ns, ni)
            _upsert(con, "studies", ("study_instance_uid", "patient_key", "patient_id",
                                     "issuer_of_patient_id", "patient_name",
                                     "accession_number", "study_date", "study_time",
                                     "study_id", "study_description", "num_series",
                                     "num_instances"), vals)
        for key in sorted(patients):
            r = con.execute("SELECT study_instance_uid FROM studies WHERE patient_key=?"
                            " ORDER BY study_instance_uid LIMIT 1", (key,)).fetchone()
            if r is None:
                con.execute("DELETE FROM patients WHERE patient_key=?", (key,))
                continue
            n = con.execute("SELECT count(*) FROM studies WHERE patient_key=?",
                            (key,)).fetchone()[0]
            a = con.execute("SELECT " + ", ".join("i." + col(k) if col(k) != "NULL" else "NULL"
                                                  for k in _PATIENT_KEYWORDS) +
                            " FROM series s JOIN instances i ON"
                            " i.sop_instance_uid = s.first_sop_instance_uid WHERE"
                            " s.study_instance_uid=? ORDER BY s.first_sop_instance_uid LIMIT 1",
                            (r[0],)).fetchone()
            vals = (key, *map(_as_text, a or (None,) * len(_PATIENT_KEYWORDS)), n)
            _upsert(con, "patients", ("patient_key", "patient_id", "issuer_of_patient_id",
                                      "patient_name", "patient_birth_date", "patient_sex",
                                      "num_studies"), vals)
        self.touched_series.clear()
        self.touched_studies.clear()


def _as_text(v):
    """A tag column's value as the text of a hierarchy row (a blob: its hex, as the
    attributes JSON of schema version 2 held it)."""
    if isinstance(v, bytes):
        return v.hex()
    return v


def _as_int(v):
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _upsert(con, table, cols, vals):
    key = cols[0]
    sets = ", ".join(f"{c}=excluded.{c}" for c in cols[1:])
    changed = " OR ".join(f"{c} IS NOT excluded.{c}" for c in cols[1:])
    con.execute(f"INSERT INTO {table}({', '.join(cols)}) VALUES({','.join('?' * len(cols))})"
                f" ON CONFLICT({key}) DO UPDATE SET {sets} WHERE {changed}", vals)


# ----------------------------------------------------------------------------- the job

class _Prepared:
    """A batch of the job's files, prepared: ``future`` holds, per part of its files to
    scan, the part's RecordBatches (or (batch, SQL columns) pairs), or a Future of them."""
    __slots__ = ("entries", "ledger", "scan_paths", "future", "batch", "scanned", "tables",
                 "chunks")


class _Columns(dict):
    """The Python values of a scanned RecordBatch's columns, converted on first use (the C
    writer reads the Arrow columns; only files taking the per-file logic need these), and
    the values of the layout's tag columns as SQLite takes them (:func:`_sql_arrays`), made
    by the scanning thread (or on first use).  ``cols[("sql", k)]``: the Python values of
    tag column ``k``."""
    __slots__ = ("batch", "layout", "_sql")

    def __init__(self, batch, layout, sql=None):
        super().__init__()
        self.batch = batch
        self.layout = layout
        self._sql = sql

    @property
    def sql(self) -> list:
        """The Arrow arrays of the layout's tag columns, in ``layout.tags`` order."""
        if self._sql is None:
            self._sql = _sql_arrays(self.batch, self.layout.tags)
        return self._sql

    def __missing__(self, name):
        if type(name) is tuple:
            arr = self.sql[self.layout.tags.index(name[1])]
            v = arr.to_pylist()
            if arr.type == pa.uint64():     # past SQLite's integers: the decimal text
                v = [str(x) if x is not None and x > _INT64_MAX else x for x in v]
            self[name] = v
        else:
            v = self[name] = self.batch.column(name).to_pylist()
        return v


_INT64_MAX = 2 ** 63 - 1
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _path_key(p: str) -> bytes:
    """``os.fsencode(p)`` of a str path (without its two Python-level calls)."""
    return p.encode(_FS_ENCODING, _FS_ERRORS)


def ingest(paths, db, *, workers: Optional[int] = None, tags: Sequence = DEFAULT_TAGS,
           parquet: Optional[str] = None, batch_size: Optional[int] = None,
           follow_symlinks: bool = False, progress: Optional[bool] = None,
           force: bool = False, reread: bool = False,
           limits: Optional[Limits] = None) -> IngestResult:
    """Ingest ``paths`` (files, directories, globs) into the SQLite index ``db``.

    Resumable and idempotent (see the module docstring); returns an :class:`IngestResult`
    whose state counts sum to ``files``.  Raises :class:`IngestLockedError` when another job
    holds ``db``, :class:`NotAnIndexError` when ``db`` is another program's SQLite database
    (left as it is) and :class:`sqlite3.Error` / :class:`OSError` when it cannot be written.
    ``workers`` counts the job's threads besides the calling one: the writer thread and
    ``workers - 1`` scanning threads (with 1, the calling thread scans); the default is the
    number of cores (at most 9).
    ``batch_size``: files per batch and atomic commit.  By default batches of 2,000 files,
    growing with the index past 200,000 instances (a hundredth of it) up to 16,000, share
    commits: a commit is due after at least a batch and a twentieth of the index (up to
    100,000 files), or once its transaction has been open 5 s.
    ``progress`` (default: stderr is a terminal) shows a tqdm bar on stderr.
    ``force`` also reads files without the preamble and ``DICM`` (see
    :func:`fastdicom.scan`); files an earlier job failed for that reason alone are then read
    again even when unchanged.
    ``reread`` reads every file again, unchanged ones too (they then count as ``indexed``,
    ``duplicate`` or ``conflict``, not ``unchanged``): it fills the columns of tags the index
    gained since a file was read, which a job otherwise leaves NULL for unchanged files; the
    columns of tags the job does not read keep their values (a file that changed has them
    NULL: its earlier values may be stale).
    ``limits`` bounds the header reads as in :func:`fastdicom.scan` (a file past them is
    ``failed``).
    """
    db = _db_file(db)
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    paths = list(paths)         # (an iterator is read once)
    if not all(type(p) is str for p in paths):
        paths = [os.fsdecode(os.fspath(p)) for p in paths]
    globs = _glob_inputs(paths)
    paths = _prune_roots(paths, follow_symlinks)
    # the writer thread is one of the workers (it needs a core of its own): the others scan
    # (2 workers: the writer and 1 scanning thread, 10.5-11.4 us/file on 20,000 tiny files
    # against 12.2-13.9 with 2 scanning threads; with 1, the calling thread scans)
    workers = max(1, min(os.cpu_count() or 1, 9)) if workers is None \
        else checked_workers(workers)
    if batch_size is not None and batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    scanners = workers - 1
    dir_keys: set = set()       # the folders this job could not list
    with _stop_raised_as_itself(), _Job(db, tags, parquet, progress, force, reread,
                                        limits) as job:
        pool = ThreadPoolExecutor(scanners) if scanners else None
        rcon = _connect_reader(db) if job.track_seen else None
        try:
            _run(job.con, rcon, job.plan, job.layout, paths, follow_symlinks, batch_size,
                 pool, max(1, scanners), parquet, job.result, job.bar, job.track_seen,
                 job.ckpt, job.c_db, _own_files(db, parquet), dir_keys)
            scope = _Scope(paths, globs)
            if job.track_seen:
                _mark_missing(job.con, job.layout, scope, job.result, parquet,
                              job.plan.schema)
            _clear_dir_errors(job.con, scope, dir_keys)
        finally:
            if rcon is not None:
                rcon.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    return job.result


_FIXED_COLUMNS = frozenset({"path", "size", "mtime_ns", "transfer_syntax", "pixel_offset",
                            "pixel_length", "num_frames", "error_type", "error_message",
                            "error_offset", "error_tag"})


def ingest_tables(source, db, *, tags: Optional[Sequence] = None,
                  batch_size: Optional[int] = None,
                  progress: Optional[bool] = None) -> IngestResult:
    """Index header rows scanned elsewhere -- by :func:`fastdicom.scan` /
    :func:`~fastdicom.batch.scan_batches`, or on a cluster by
    :func:`fastdicom.dask.read_headers` and written to Parquet -- without reading the files
    again: the second half of the cluster recipe (each partition to Parquet, then index).

    ``source``: a Parquet file or a directory of them (read part by part), a
    :class:`pyarrow.Table` or ``RecordBatch``, or an iterable of those, with the columns of
    :func:`fastdicom.batch.schema` (types are cast; absent tags are null).  ``tags``: the
    keyword columns to index (default: those the source has).  Every row is a file and ends
    in one state as with :func:`ingest`: a row whose path the ledger holds with the same size
    and mtime_ns is ``unchanged``; a path given twice counts once; rows that record a skipped
    symlink or a special file are ``skipped``, other error rows ``failed``.  Paths are taken
    as written (a cluster's URLs included), but for a name that is not UTF-8, which the rows
    show with U+FFFD: it is looked up in its folder, when this machine sees it, and keyed by
    its bytes as :func:`ingest` keys it (names that show alike stay as written, one path);
    nothing is marked missing.  When SOPInstanceUIDs
    collide the contents are hashed from the path: a file this machine cannot read is
    recorded as a ``conflict``, never as a ``duplicate``.
    """
    db = _db_file(db)
    if batch_size is not None and batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    batch_size = batch_size or DEFAULT_BATCH_SIZE
    batches = _source_batches(source, batch_size)
    first = next(batches, None)
    names = first.schema.names if first is not None else []
    if tags is None:
        tags = [n for n in names if n not in _FIXED_COLUMNS and not n.startswith("__")]
    lacking = [t for t in INDEX_TAGS if t not in names]
    if first is not None and lacking and "path" in names:     # (no path: an error below)
        # (scanned with a tag list of its own: ingest would have read these)
        warnings.warn(f"ingest_tables: the rows have no {', '.join(lacking)} column(s): "
                      "their index columns stay NULL"
                      + (" and the series/studies/patients tables empty"
                         if {"SeriesInstanceUID", "StudyInstanceUID"} & set(lacking)
                         else "") +
                      "; scan them with fastdicom.ingest.INDEX_TAGS among the tags",
                      UserWarning, stacklevel=2)
    with _stop_raised_as_itself(), _Job(db, tags, None, progress, False) as job:
        job.track_seen = True     # paths may repeat across parts: the seen table tells
        if first is not None:
            schema = job.plan.schema
            # the parts are read, decoded and conformed on a thread of their own while
            # this one commits (Parquet decoding and casts run without the GIL)
            ahead = _Prefetch(_conform(b, schema) for b in
                              _rebatched(itertools.chain([first], batches), batch_size))
            with ahead:
                for b in ahead:
                    _commit_table(job, b)
    return job.result


class _Prefetch:
    """Iterate ``items`` on a daemon thread, at most ``depth`` items ahead; the consumer
    gets them in order, and an exception of the iterator where the item would have been.
    Leaving the ``with`` block early stops the thread (and closes the iterator) after the
    item it is working on."""
    _END = object()

    def __init__(self, items, depth: int = 2):
        import queue
        import threading
        self._queue: "queue.Queue" = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(items,), daemon=True,
                                        name="fastdicom-ingest-reader")
        self._thread.start()

    def _put(self, item) -> bool:
        import queue
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, items) -> None:
        try:
            for item in items:
                if not self._put((item, None)):
                    break
            else:
                self._put((self._END, None))
        except BaseException as exc:     # handed to the consumer, raised there
            self._put((self._END, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        while True:
            item, exc = self._queue.get()
            if exc is not None:
                raise exc
            if item is self._END:
                return
            yield item

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()


def _source_batches(source, batch_size):
    import pyarrow.parquet as pq
    if isinstance(source, (str, bytes, os.PathLike)):
        source = os.fsdecode(os.fspath(source))
        if os.path.isdir(source):
            files = sorted(os.path.join(d, f) for d, _, fs in os.walk(source) for f in fs
                           if f.endswith(".parquet") and not f.startswith(("_", ".")))
        else:
            files = [source]
        for f in files:
            yield from pq.ParquetFile(f).iter_batches(batch_size=batch_size)
        return
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        source = [source]
    for t in source:
        if isinstance(t, pa.Table):
            yield from t.to_batches(max_chunksize=batch_size)
        elif isinstance(t, pa.RecordBatch):
            yield t
        else:
            raise TypeError(f"ingest_tables: expected pyarrow Tables or RecordBatches, "
                            f"got {type(t).__name__}")


def _rebatched(batches, size):
    for b in batches:
        for k in range(0, b.num_rows, size):
            yield b.slice(k, size)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with the columns of ``schema``: cast, or null when absent."""
    arrays = []
    for field in schema:
        i = batch.schema.get_field_index(field.name)
        if i < 0:
            if field.name == "path":
                raise ValueError("ingest_tables: the rows have no 'path' column")
            arrays.append(pa.nulls(batch.num_rows, field.type))
            continue
        col = batch.column(i)
        try:
            arrays.append(col if col.type == field.type else col.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise TypeError(f"ingest_tables: column {field.name!r} of type {col.type} does "
                            f"not convert to {field.type}: {exc}") from None
    if arrays[0].null_count:
        raise ValueError("ingest_tables: a row has no path")
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _commit_table(job, batch: pa.RecordBatch) -> None:
    """One batch of rows: the ledger decides what is new or changed, then the same commit
    as a scanned batch."""
    con = job.con
    paths = batch.column("path").to_pylist()
    listings: dict = {}
    keys = [_path_key(p) if "\ufffd" not in p else _lossless_key(p, listings) for p in paths]
    sizes = batch.column("size").to_pylist()
    mtimes = batch.column("mtime_ns").to_pylist()
    etypes = batch.column("error_type").to_pylist()
    emsgs = batch.column("error_message").to_pylist()
    ledger = _ledger_of(con, keys)
    seen = {p for (p,) in _where_path_in(con, "SELECT path FROM temp.seen", keys)}
    entries, rows, scan_idx = [], [], []
    for i, (path, key) in enumerate(zip(paths, keys)):
        if key in seen:
            continue              # given again (another part, or this one)
        seen.add(key)
        if etypes[i] == _SKIPPED:
            kind = "symlink"
        elif etypes[i] == "IsADirectoryError" and emsgs[i] == "not a regular file":
            kind = "special"
        else:
            kind = "file"
        e = WalkEntry(path, kind)
        e.key = key
        old = ledger.get(key)
        if kind == "file" and not (old is not None and old[1] == sizes[i]
                                   and old[2] == mtimes[i] and old[3] != "missing"):
            rows.append(i)
            scan_idx.append(len(entries))
        entries.append(e)
    prep = _Prepared()
    prep.entries, prep.ledger, prep.scan_paths = entries, ledger, scan_idx
    prep.batch = None
    prep.future = None
    if rows:
        prep.future = [[batch.take(_int64_array(np.asarray(rows, np.int64)))]]
    if not entries:
        return
    _collect(prep, job.layout)
    _commit(con, prep, job.plan, job.layout, None, job.result, job.bar, True, job.ckpt,
            job.c_db)


def _lossless_key(p: str, listings: dict) -> bytes:
    """The bytes of the path that ``p`` shows when ``p`` is the display text of a path that
    is not UTF-8 (``scan``'s ``path`` column: its bytes as U+FFFD): each component holding a
    U+FFFD is looked up in its folder's listing (``listings`` caches them), as a local ingest
    would key the file.  The key as written when a component is not there or not the only
    one that shows so (a path this machine does not see)."""
    key = _path_key(p)
    parts = key.split(b"/")
    out: list = []
    for part in parts:
        if "\ufffd".encode() in part:
            folder = b"/".join(out) or (b"/" if out else b".")
            names = listings.get(folder)
            if names is None:
                try:
                    names = os.listdir(folder)
                except (OSError, ValueError):
                    names = []
                by_text: dict = {}
                for n in names:
                    by_text.setdefault(n.decode("utf-8", "replace"), []).append(n)
                names = listings[folder] = by_text
            match = names.get(part.decode("utf-8", "replace"), [])
            if len(match) != 1:
                return key
            part = match[0]
        out.append(part)
    return b"/".join(out)


class _Job:
    """One job on the index ``db``: the lock, the writer connection with its schema, the
    checkpointer, the progress bar and the result; on a normal exit, the final counts."""

    def __init__(self, db, tags, parquet, progress, force, reread=False, limits=None):
        self.db, self.parquet, self.progress = db, parquet, progress
        tags = list(tags)
        for t in _REQUIRED_TAGS:
            if t not in tags:
                tags.append(t)
        self.tags = tags
        self.plan = _Plan(tags, force=force, limits=limits)
        self.plan.reread = bool(reread)      # (this job's own plan)
        self.layout = None
        self.con = self.ckpt = self.bar = None

    def __enter__(self):
        self.t0 = time.perf_counter()
        if os.path.isdir(self.db):
            # (before the lock: its <db>.lock file would be left beside the folder)
            raise IsADirectoryError(errno.EISDIR, "the index is a directory, not a file",
                                    self.db)
        _refuse_other_file(self.db)
        self.lock = _Lock(self.db)
        try:
            self.con = con = _connect(self.db)
            _init_schema(con, _plan_types(self.plan))
            self.layout = _Layout(self.plan, con)
            _check_parts_folder(con, self.parquet)
            if self.parquet:
                _clean_parts(con, self.parquet)
            con.execute("CREATE TEMP TABLE IF NOT EXISTS seen(path BLOB PRIMARY KEY,"
                        " not_read INT) WITHOUT ROWID")
            # the copies this job promoted to instance rows (indexed, not unchanged)
            con.execute("CREATE TEMP TABLE IF NOT EXISTS promoted(path BLOB PRIMARY KEY)"
                        " WITHOUT ROWID")
            # with an empty ledger at the start, every ledger row is written by this job for
            # a path it saw: nothing can be missing, so the paths seen need not be kept
            self.track_seen = con.execute("SELECT 1 FROM files LIMIT 1").fetchone() is not None
            self.result = IngestResult(db=self.db)
            progress = sys.stderr.isatty() if self.progress is None else self.progress
            if progress:
                try:
                    from tqdm import tqdm
                    self.bar = tqdm(unit=" files", file=sys.stderr, dynamic_ncols=True,
                                    smoothing=0.1)
                except ImportError:
                    self.bar = None
            con.execute("PRAGMA wal_autocheckpoint=0")
            self.ckpt = _Checkpointer(self.db)
            # the C writer, when it can run on this connection (else executemany)
            self.c_db = os.path.abspath(self.db)
            if not _rows.sqlite_connection_ok(con, self.c_db):
                self.c_db = None
        except BaseException as exc:
            self._close(forget=isinstance(exc, NotAnIndexError))
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                _final_counts(self.con, self.result, self.track_seen)
                self.result.seconds = time.perf_counter() - self.t0
        finally:
            self._close()
        return False

    def _close(self, forget: bool = False):
        try:
            if self.ckpt is not None:
                self.ckpt.close()
            if self.bar is not None:
                self.bar.close()
        finally:
            if self.con is not None:
                self.con.close()
            self.lock.release(remove=forget)


def _prune_roots(paths: list, follow: bool = False) -> list:
    """The input paths, made absolute (the ledger holds absolute paths: the same file
    ingested from another working directory is the same row, and the index can be used from
    anywhere), without repeats and without those inside a directory also given
    (``d`` and ``d/x.dcm``, in either order): the walk would yield their files twice, and a
    file must end in exactly one state.  Globs are expanded here (sorted, as the walk did),
    so that what they match is pruned the same way (``d/*.dcm`` and ``d/x.dcm``); a path with
    glob characters that exists is taken literally.  A long list of files costs a few
    C-level passes over its text and no system call (it was 2.3 us per path, before the
    job's pipeline starts)."""
    text = "\0".join(paths)
    plain = text.count("\0") == len(paths) - 1 if paths else True    # no NUL inside a path
    if not plain or _has_magic(text):
        expanded = []
        for p in paths:
            if _has_magic(p) and not os.path.lexists(p):
                expanded.extend(sorted(iglob(p, follow)))
            else:
                expanded.append(p)
        paths = expanded
        text = "\0".join(paths)
        plain = text.count("\0") == len(paths) - 1 if paths else True
    if plain and _absolute_and_normal(text, len(paths)):
        absolute = paths          # all absolute and normal already (the usual manifest)
    else:
        absolute = [_absolute(p) for p in paths]
    unique = list(dict.fromkeys(absolute))
    # only an input that is an ancestor directory of another can hold it: those alone are
    # stat-ed.  The ancestors of every input, from the distinct parents (few) upwards:
    ancestors = set()
    for parent in {a.rpartition(os.sep)[0] for a in unique}:
        while parent not in ancestors:
            ancestors.add(parent)
            if not parent:
                break
            parent = parent.rpartition(os.sep)[0]
    dirs = [a for a in unique if a.rstrip(os.sep) in ancestors
            and os.path.isdir(a) and not os.path.islink(a)]
    if not dirs:
        return unique
    heads = [d.rstrip(os.sep) + os.sep for d in dirs]
    return [a for a in unique
            if not any(a != d and a.startswith(h) for d, h in zip(dirs, heads))]


def _absolute_and_normal(text: str, n: int) -> bool:
    """Each of the ``n`` NUL-separated paths of ``text`` starts with ``/`` and has no
    ``//``, ``/./`` or ``/../`` and no trailing ``/``, ``/.`` or ``/..`` (what
    :func:`_absolute` keeps as is): one pass of array compares over the bytes, instead of a
    text search per pattern (those were 9 ms for 20,000 paths)."""
    b = np.frombuffer(("\0" + text + "\0").encode("utf-8", "surrogatepass"), np.uint8)
    nul, slash, dot = b == 0, b == 0x2F, b == 0x2E
    if np.count_nonzero(nul[:-1] & slash[1:]) != n:
        return False
    end = slash | nul            # what may follow a path component
    return not ((slash[:-1] & end[1:]).any()
                or (slash[:-2] & dot[1:-1] & end[2:]).any()
                or (slash[:-3] & dot[1:-2] & dot[2:-1] & end[3:]).any())


def _absolute(p: str) -> str:
    """``os.path.abspath(p)``; a path that is already absolute and normal is kept as is
    (normalising thousands of listed files costs more than the rest of the pruning)."""
    if (p.startswith("/") and not p.endswith(("/", "/.", "/..")) and "//" not in p
            and "/./" not in p and "/../" not in p):
        return p
    return os.path.abspath(p)


def _where_path_in(con, select: str, keys: list):
    """The rows of ``select`` (a query on a table with a ``path`` column) for the paths
    ``keys``, 500 per query."""
    for k in range(0, len(keys), 500):
        part = keys[k:k + 500]
        yield from con.execute(f"{select} WHERE path IN ({','.join('?' * len(part))})", part)


def _ledger_of(con, keys: list) -> dict:
    """``{path: (path, size, mtime_ns, state, reason)}`` of the ledger rows of ``keys``.

    The keys of a batch come from one stretch of a sorted walk: the ledger rows between the
    smallest and the largest are read in one range scan of its primary key (a re-run over
    an unchanged tree spent most of its time in 500-key ``IN`` lookups).  When that range
    holds many more rows than the batch has keys (other paths sort between them), the keys
    are looked up one by one instead."""
    select = "SELECT path, size, mtime_ns, state, reason FROM files"
    if len(keys) >= 64:
        limit = 2 * len(keys) + 256
        rows = con.execute(f"{select} WHERE path >= ? AND path <= ? LIMIT ?",
                           (min(keys), max(keys), limit)).fetchall()
        if len(rows) < limit:
            found = dict(zip(map(itemgetter(0), rows), rows))
            want = set(keys)
            if not found.keys() <= want:      # other paths in the range
                found = {p: r for p, r in found.items() if p in want}
            return found
    return {r[0]: r for r in _where_path_in(con, select, keys)}


def _prepare(rcon, entries, plan, layout, pool, scanners, follow=False):
    """Ledger lookup (none when ``rcon`` is None: the ledger was empty at the start) and the
    scan of what is new or changed, started on ``pool`` (or run here).  With ``follow``, a
    file entry may be a symbolic link the walk followed: it is read through it."""
    prep = _Prepared()
    prep.entries = entries
    keys = [_path_key(e.path) for e in entries]
    ledger = _ledger_of(rcon, keys) if rcon is not None else {}
    prep.ledger = ledger
    for e, k in zip(entries, keys):
        e.key = k
    # only a file already in the ledger needs a stat (to be found unchanged), all of them in
    # one call without the GIL; a new one is scanned at once (a vanished file gives its
    # error row there)
    known = [i for i, k in enumerate(keys) if k in ledger and entries[i].kind == "file"] \
        if ledger else []
    skip = set()
    if known:
        try:
            sizes, mtimes, errs = _rows.stat_paths([keys[i] for i in known], follow)
        except ValueError:      # a NUL in a path: os.stat tells which
            sizes = mtimes = errs = None
        force, reread = plan.force, getattr(plan, "reread", False)
        for j, i in enumerate(known):
            e = entries[i]
            if errs is None or errs[j]:
                try:
                    st = os.stat(e.path, follow_symlinks=follow)
                except (OSError, ValueError) as exc:    # ValueError: a NUL in the path
                    e.kind, e.error = "error", exc
                    skip.add(i)
                    continue
                size, mtime = st.st_size, st.st_mtime_ns
            else:
                size, mtime = int(sizes[j]), int(mtimes[j])
            old = ledger[keys[i]]
            # (a link "skipped" by a job that did not follow links is read now)
            if old[1] == size and old[2] == mtime and old[3] not in ("missing", "skipped") \
                    and not (force and old[4] == _NO_PREAMBLE_REASON) and not reread:
                skip.add(i)
    scan_idx = [i for i, e in enumerate(entries) if e.kind == "file" and i not in skip]
    prep.scan_paths = scan_idx
    prep.batch = None
    prep.future = None
    if scan_idx:
        plist = [entries[i].path for i in scan_idx]
        chunk = max(16, -(-len(plist) // scanners))
        parts = [plist[k:k + chunk] for k in range(0, len(plist), chunk)]
        if pool is not None:
            # the tag columns' JSON cells too (without the GIL), off the writer thread
            prep.future = [pool.submit(_scan_chunk_sql, plan, layout, p, not follow)
                           for p in parts]
        else:
            prep.future = [_scan_chunk(plan, p, not follow) for p in parts]
    return prep


def _run(con, rcon, plan, layout, paths, follow, batch_size, pool, scanners, parquet, result,
         bar, track_seen=True, ckpt=None, c_db=None, own=None, dir_keys=None):
    """The pipeline: this thread walks, looks up the ledger (through ``rcon``, a second
    connection: no earlier batch writes the ledger rows of a batch's paths, so the
    committed state is exact for them), scans and assembles batch k+1 while the writer
    thread writes batch k.  Every database write goes through the single writer thread, in
    order."""
    # walks of listed paths the scan found not to be regular files (see _walk_inputs)
    carry: deque = deque()
    visited: set = set()
    walker = _walk_inputs(paths, follow, carry)
    if own is not None:
        walker = _without_own(walker, *own)
    pending: deque = deque()
    inflight: deque = deque()
    writer = ThreadPoolExecutor(1, thread_name_prefix="fastdicom-ingest-writer")

    failed: list = []

    def in_order(fn, *args):
        # on the writer thread: once a write has failed, the writes queued after it are not
        # made (the job ends with that error; a re-run resumes from the committed batches)
        if failed:
            return None
        try:
            return fn(*args)
        except BaseException:
            failed.append(True)
            raise

    def submit(fn, *args):
        inflight.append(writer.submit(in_order, fn, *args))
        while len(inflight) > 1:
            inflight.popleft().result()   # at most one commit in flight: memory stays bounded

    # the index's size at the start (max rowid: a cheap estimate) for the default batch size
    start = 0 if batch_size is not None else \
        con.execute("SELECT coalesce(max(rowid), 0) FROM instances").fetchone()[0]

    def target():
        # (result.indexed is updated by the writer thread after each commit)
        return batch_size or _auto_batch_size(start + result.indexed)

    # the default batches share commits (see _auto_commit_files); a batch size given is the
    # files per commit
    txn = None if batch_size else _Txn(
        lambda: _auto_commit_files(start + result.indexed + txn.counts["indexed"]))

    def entries_batches(source):
        # the first batches are small and each is twice the last, up to the target: the
        # writer starts early, so a small job is pipelined too
        size = min(target(), max(32, target() // 16))
        buf = []
        for e in source:
            if e.kind == "error" and e.is_dir:
                submit(_record_dir_error, con, e, result, dir_keys)
                continue
            buf.append(e)
            if len(buf) >= size:
                yield buf
                buf = []
                size = min(target(), 2 * size)
        if buf:
            yield buf

    def commit(prep):
        _collect(prep, layout)
        _reclassify_listed(prep, carry, visited)
        submit(_commit, con, prep, plan, layout, parquet, result, bar, track_seen, ckpt,
               c_db, txn)

    def drain():
        while carry:
            yield from carry.popleft()

    try:
        source = walker
        while True:
            for entries in entries_batches(source):
                pending.append(_prepare(rcon, entries, plan, layout, pool, scanners, follow))
                if len(pending) >= 2:
                    commit(pending.popleft())
            if not pending:
                break
            commit(pending.popleft())
            source = drain()      # listed directories found by the last batches
        if txn is not None:
            submit(txn.commit, con, parquet, result, ckpt)
        while inflight:
            inflight.popleft().result()
    finally:
        for f in inflight:
            f.cancel()
        # the connection is closed next: the writer must be done with it, even when a second
        # signal interrupts the wait (it segfaulted 1 in ~10 double Ctrl-C)
        stop = _run_out(writer)
        if txn is not None and txn.open and not failed:
            # interrupted (or an error here, not in a write): the batches written are whole
            # and are kept, as a commit per batch kept them
            _uninterrupted(lambda: txn.commit(con, parquet, result, ckpt))
        if stop is not None:
            raise stop


def _own_files(db: str, parquet: Optional[str]) -> tuple:
    """The job's own files, which are not inputs when a walk passes over them: the database
    with its -wal, -shm, -journal and .lock files, and the Parquet directory.  By path, and
    by the identity (device, inode) of their folders for the names they have, so that
    another spelling of the tree (a symlinked folder, a bind mount) passes over them too."""
    names = {base + suffix for base in {os.path.abspath(db), os.path.realpath(db)}
             for suffix in ("", "-wal", "-shm", "-journal", ".lock")}
    prefix = os.path.abspath(parquet).rstrip(os.sep) + os.sep if parquet else None
    folders: dict = {}      # (st_dev, st_ino) of a folder -> own names in it (None: all)
    for n in names:
        d, _, base = n.rpartition(os.sep)
        ident = _identity(d or os.sep)
        if ident is not None:
            folders.setdefault(ident, set()).add(base)
    if parquet:
        ident = _identity(parquet)
        if ident is not None:
            folders[ident] = None
    return names, prefix, folders


def _identity(path) -> Optional[tuple]:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _without_own(entries, names: set, prefix: Optional[str], folders: Optional[dict] = None):
    bases = {n.rpartition(os.sep)[2] for n in names}
    for e in entries:
        if e.path in names or (prefix is not None and e.path.startswith(prefix)):
            continue
        if folders:
            d, _, base = e.path.rpartition(os.sep)
            if base in bases or base.startswith("part-"):
                # a name of ours (a stat of its folder, only then): in one of our folders?
                own = folders.get(_identity(d or os.sep), ())
                if own is None or base in own:
                    continue
        yield e


def _walk_inputs(paths, follow, carry):
    """The walk of the inputs.  A long list of paths (as from a manifest: more than 64, not
    following symlinks) is taken as regular files without an ``lstat`` each (on the
    critical path of the job, it cost as much as the scan); the scan's open(O_NOFOLLOW) +
    fstat find the others (see :func:`_reclassify_listed`).  (Globs were expanded by
    :func:`_prune_roots`; a path with glob characters left is a name that exists: walked.)
    Between entries, the walks of listed directories found so far (``carry``) come first."""
    if follow or len(paths) <= 64:
        yield from iter_files(paths, follow_symlinks=follow)
        return
    magic = _has_magic("".join(paths))      # one pass over the text, not one call per path
    for p in paths:
        if magic and _has_magic(p):
            yield from iter_files([p], follow_symlinks=follow)
        else:
            yield WalkEntry(p, "file", listed=True)
        while carry:
            yield from carry.popleft()


def _reclassify_listed(prep, carry, visited):
    """Listed entries whose scan failed (not a regular file, a symlink: ELOOP, missing...)
    get the kind the walk would have given them; a directory becomes the walk of its files
    (queued in ``carry``, for the next batches) and leaves this batch as ``"expanded"``."""
    scanned = prep.scanned
    if all(cols.batch.column("error_type").null_count == cols.batch.num_rows
           for cols, _ in prep.chunks):
        return                        # no scan error: every listed entry is a regular file
    for idx, e in enumerate(prep.entries):
        if not e.listed or idx not in scanned:
            continue
        cols, i = scanned[idx]
        if cols["error_type"][i] is None:
            continue
        e.listed = False
        walk = _walk_one(e.path, False, visited)
        first = next(walk, None)
        if first is None:             # a directory already walked
            del scanned[idx]
            e.kind = "expanded"
            continue
        if first.kind == "file" and not first.is_dir and first.path == e.path:
            continue                  # a regular file: the scan's error stands
        del scanned[idx]
        if first.path == e.path and not first.is_dir:
            e.kind, e.error = first.kind, first.error
            continue
        e.kind = "expanded"
        carry.append(itertools.chain([first], walk))


def _record_dir_error(con, e, result, dir_keys=None):
    result.dir_errors += 1
    exc = e.error
    key = _path_key(e.path)
    if dir_keys is not None:
        dir_keys.add(key)
    old = con.execute("SELECT error_type, message, errno FROM dir_errors WHERE path=?",
                      (key,)).fetchone()
    new = (type(exc).__name__, _exc_text(exc), getattr(exc, "errno", None))
    if old is not None and tuple(old) == new:
        return
    con.execute("INSERT OR REPLACE INTO dir_errors(path, display, error_type, message, errno,"
                " time) VALUES(?,?,?,?,?,?)", (key, _display_path(e.path), *new, time.time()))


def _sql_arrays(batch: pa.RecordBatch, tags) -> list:
    """The columns ``tags`` of ``batch`` as SQLite stores them: a list column as the JSON
    text of each list (``json.dumps(value, ensure_ascii=False)``, in C without the GIL:
    :func:`fastdicom._rows.json_cells`), any other column as it is."""
    out = []
    for k in tags:
        col = batch.column(k)
        if pa.types.is_list(col.type):
            try:
                col = _rows.json_cells(col)
            except TypeError:       # values the C encoder does not cover (bytes): Python
                enc = json.JSONEncoder(ensure_ascii=False).encode
                col = pa.array([None if v is None else enc([x.hex() if isinstance(x, bytes)
                                                           else x for x in v])
                                for v in col.to_pylist()], pa.large_string())
        out.append(col)
    return out



def _row_from(batch_cols, i, layout, key, display) -> dict:
    """The instance row of scanned row ``i``: the fixed columns and the job's tag columns."""
    row = {
        "sop_instance_uid": batch_cols["SOPInstanceUID"][i],
        "path": key, "display_path": display,
        "size": batch_cols["size"][i], "mtime_ns": batch_cols["mtime_ns"][i],
        "sop_class_uid": batch_cols["SOPClassUID"][i],
        "series_instance_uid": batch_cols["SeriesInstanceUID"][i],
        "study_instance_uid": batch_cols["StudyInstanceUID"][i],
        "transfer_syntax_uid": batch_cols["transfer_syntax"][i],
        "rows": batch_cols["Rows"][i], "columns": batch_cols["Columns"][i],
        "frames": batch_cols["num_frames"][i],
        "pixel_offset": batch_cols["pixel_offset"][i],
        "pixel_length": batch_cols["pixel_length"][i],
    }
    for k in layout.tags:
        row[k] = batch_cols[("sql", k)][i]
    return row


def _bulk_batch(prep, scanned, indexed_uids, layout):
    """Column-wise ledger and instance rows when every entry of the batch is a new path,
    parsed without error, with a SOPInstanceUID not indexed and not repeated in the batch;
    else None (the per-file logic then runs)."""
    entries = prep.entries
    n = len(entries)
    if prep.ledger or len(scanned) != n or not n:
        return None
    parts = []
    prev = None
    for idx in range(n):
        cols, i = scanned[idx]
        if cols is not prev:
            parts.append((cols, i))
            prev = cols
        elif entries[idx].kind != "file":
            return None
    if any(e.kind != "file" for e in entries):
        return None

    def col(name):
        out = []
        for cols, start in parts:
            out.extend(cols[name][start:])
        return out
    if any(v is not None for v in col("error_type")):
        return None
    uids = col("SOPInstanceUID")
    if not all(uids) or len(set(uids)) != n or not indexed_uids.isdisjoint(uids):
        return None
    keys = [e.key for e in entries]
    displays = [_display_path(e.path) for e in entries]
    size, mtime = col("size"), col("mtime_ns")
    series, studies = col("SeriesInstanceUID"), col("StudyInstanceUID")
    ledger_rows = list(zip(keys, displays, size, mtime, ["indexed"] * n, [None] * n, uids,
                           [None] * n))
    # (the rows bind every column of the index: the tag columns of earlier jobs are null)
    nulls = [None] * n
    inst_rows = list(zip(uids, keys, displays, size, mtime, col("SOPClassUID"), series, studies,
                         col("transfer_syntax"), col("Rows"), col("Columns"), col("num_frames"),
                         col("pixel_offset"), col("pixel_length"),
                         *(col(("sql", k)) if k in layout.tags else nulls
                           for k in layout.all_tags)))
    nbytes = sum(min(x or 0, 8192) for x in size)
    return keys, series, studies, ledger_rows, inst_rows, nbytes


def _scan_chunk_sql(plan, layout, paths, nofollow=True):
    """A chunk's scanned batches, each with its tag columns as SQLite stores them."""
    return [(batch, _sql_arrays(batch, layout.tags))
            for batch in _scan_chunk(plan, paths, nofollow)]


def _collect(prep, layout):
    """The scan results of a prepared batch as rows (``prep.scanned``) and Arrow tables."""
    scanned = {}
    tables = []
    chunks = []
    if prep.future:
        # (each part: its batches, or its (batch, SQL columns) pairs, in order)
        done = [d for f in prep.future for d in (f.result() if hasattr(f, "result") else f)]
        sqls = [d[1] if isinstance(d, tuple) else None for d in done]
        tables = [d[0] if isinstance(d, tuple) else d for d in done]
        k = 0
        for b, sql in zip(tables, sqls):
            cols = _Columns(b, layout, sql)
            n = b.num_rows
            idx = prep.scan_paths[k:k + n]
            chunks.append((cols, idx))
            # {entry index: (cols, row)} built by C-level loops (a Python loop per file
            # here held the GIL the scanning and writing threads need)
            scanned.update(zip(idx, zip(itertools.repeat(cols, n), range(n))))
            k += n
    prep.scanned, prep.tables, prep.chunks = scanned, tables, chunks


class _Txn:
    """The write transaction that consecutive batches share (on the writer thread): what
    its batches did is added to the job's result, and the Parquet parts they replaced are
    deleted, only once it is committed.  ``files_due()``: the files after which a commit is
    due."""

    def __init__(self, files_due):
        self.files_due = files_due
        self._reset()

    def _reset(self):
        self.open = False
        self.since = 0.0
        self.files = 0
        self.batches = 0
        self.writes = False
        self.stale: list = []
        self.counts = dict.fromkeys(STATES, 0)

    def begin(self, con, ckpt) -> None:
        if self.open:
            return
        if ckpt is not None:
            ckpt.settle()
        con.execute("BEGIN IMMEDIATE")
        self.open = True
        self.since = time.monotonic()

    def add(self, files, batches, writes, stale, counts) -> None:
        self.files += files
        self.batches += batches
        self.writes = self.writes or writes
        self.stale += stale
        for k, n in counts.items():
            self.counts[k] += n

    def due(self) -> bool:
        return self.files >= self.files_due() or \
            time.monotonic() - self.since >= COMMIT_SECONDS

    def rollback(self, con) -> None:
        _rollback(con)
        self._reset()

    def commit(self, con, parquet, result, ckpt) -> None:
        """Commit (when open), then add its counts to ``result``."""
        if not self.open:
            return
        try:
            con.execute("COMMIT")
        except BaseException:
            self.rollback(con)
            raise
        _remove_parts(parquet, self.stale)
        if ckpt is not None and self.writes:   # (nothing changed: nothing to copy)
            ckpt.poke()
        result.files += self.files
        result.batches += self.batches
        for k, n in self.counts.items():
            setattr(result, k, getattr(result, k) + n)
        self._reset()


def _commit(con, prep, plan, layout, parquet, result, bar, track_seen=True, ckpt=None,
            c_db=None, txn=None):
    """Write one collected batch (on the writer thread): in a transaction of its own, or in
    ``txn``, which is then committed when due."""
    entries, ledger = prep.entries, prep.ledger
    scanned, tables = prep.scanned, prep.tables
    in_c = bool(scanned) and c_db is not None
    # UIDs of this batch already indexed: one query per 500 instead of one per file (the C
    # writer finds them itself)
    indexed_uids = set()
    if scanned and not in_c:
        uids = list({c["SOPInstanceUID"][i] for c, i in scanned.values()
                     if c["SOPInstanceUID"][i]})
        for k in range(0, len(uids), 500):
            part = uids[k:k + 500]
            indexed_uids.update(r[0] for r in con.execute(
                "SELECT sop_instance_uid FROM instances WHERE sop_instance_uid IN (%s)"
                % ",".join("?" * len(part)), part))
    bulk_ledger: list = []
    bulk_inst: list = []

    def flush():
        if bulk_ledger:
            con.executemany(_LEDGER_SQL, bulk_ledger)
            bulk_ledger.clear()
        if bulk_inst:
            con.executemany(layout.insert_sql, bulk_inst)
            bulk_inst.clear()
    counts = {s: 0 for s in STATES}
    w = _Writer(con, layout)
    writes = False
    stale: list = []
    if txn is None:
        txn = _Txn(lambda: 0)       # a transaction of its own: due after this batch
    txn.begin(con, ckpt)
    batches = 0
    try:
        if track_seen:
            # (not the ledger state read by _prepare: an earlier batch of this job may have
            # changed it since, e.g. promoted the file; _final_counts decides)
            _insert_seen(con, c_db, entries, scanned)
        done: set = set()
        if in_c:
            done = _insert_new_c(con, c_db, prep, result, w, layout)
            counts["indexed"] += len(done)
            writes = writes or bool(done)
        fast = None if in_c else _bulk_batch(prep, scanned, indexed_uids, layout)
        if fast is not None:
            # every file new, parsed and of a new UID: column-wise rows, two executemany
            keys, series, studies, ledger_rows, inst_rows, nbytes = fast
            con.executemany(_LEDGER_SQL, ledger_rows)
            con.executemany(layout.insert_sql, inst_rows)
            w.touched_series.update(x for x in series if x)
            w.touched_studies.update(x for x in studies if x)
            w.new_instance_rows.extend(keys)
            counts["indexed"] += len(keys)
            result.bytes_read += nbytes
            writes = True
        # the entries the C writer did not write (in order; a set difference, not a Python
        # test per file)
        rest = () if fast is not None else (
            enumerate(entries) if not done else
            ((idx, entries[idx]) for idx in sorted(set(range(len(entries))) - done)))
        for idx, e in rest:
            if e.kind == "expanded":  # a listed directory: its files come in later batches
                continue
            key = e.key
            old = ledger.get(key)
            if e.kind == "file" and idx not in scanned:
                st = old[3]
                counts["unchanged" if st == "indexed" else st] += 1
                continue
            display = _display_path(e.path)
            if e.kind in ("symlink", "special"):
                try:
                    lst = os.lstat(e.path)
                    size, mtime = lst.st_size, lst.st_mtime_ns
                except OSError:
                    size = mtime = None
                counts["skipped"] += 1
                if old is not None and old[1] == size and old[2] == mtime and old[3] == "skipped":
                    continue
                writes = True
                w.unindex(key)
                w.clear_failure(key)
                w.ledger(key, display, size, mtime, "skipped",
                         "symbolic link not followed" if e.kind == "symlink"
                         else "not a regular file")
                continue
            if e.kind == "error":
                exc = e.error
                counts["failed"] += 1
                etype, emsg = type(exc).__name__, _exc_text(exc)
                if _failed_alike(old, None, None, etype, emsg):
                    continue        # a re-run over the same failure changes no row
                writes = True
                w.fail(key, display, None, None, etype, emsg)
                continue
            cols, i = scanned[idx]
            size, mtime = cols["size"][i], cols["mtime_ns"][i]
            result.bytes_read += min(size or 0, 8192)
            etype = cols["error_type"][i]
            if etype is None and not cols["SOPInstanceUID"][i]:
                etype, emsg = "InvalidDicomError", "no SOP Instance UID (0008,0018)"
                eoff = etag = None
            else:
                emsg = cols["error_message"][i]
                eoff, etag = cols["error_offset"][i], cols["error_tag"][i]
            if etype is not None:
                counts["failed"] += 1
                if _failed_alike(old, size, mtime, etype, emsg):
                    continue        # (a file that could not be opened has no size: read again)
                writes = True
                w.fail(key, display, size, mtime, etype, emsg, eoff, etag)
                continue
            writes = True
            row = _row_from(cols, i, layout, key, display)
            uid = row["sop_instance_uid"]
            if not in_c and old is None and uid not in indexed_uids:
                # the common case: a new file with a new UID, written in bulk
                indexed_uids.add(uid)
                bulk_ledger.append((key, display, size, mtime, "indexed", None, uid, None))
                bulk_inst.append(tuple(row.get(c) for c in layout.row_cols))
                w._touch(row["series_instance_uid"], row["study_instance_uid"])
                w.new_instance_rows.append(key)
                counts["indexed"] += 1
                continue
            flush()
            indexed_uids.add(uid)
            if old is not None:
                if old[1] == size and old[2] == mtime and old[3] != "failed":
                    # an unchanged file read again (``reread``): the columns of the tags
                    # this job does not read keep their values
                    row.update(w.kept_tags(key))
                w.unindex(key)
                w.clear_failure(key)
            w.ledger(key, display, size, mtime, "indexed", None, row["sop_instance_uid"], None)
            state = w.place(row)
            if state != "indexed":
                w.set_state(key, state)
            counts[state] += 1
        flush()
        if w.touched_series or w.touched_studies:
            w.refresh_hierarchy()
        if writes:
            bid = (con.execute("SELECT coalesce(max(id), 0) + 1 FROM batches").fetchone()[0])
            part = None
            if parquet:
                scan_keys = [entries[j].key for j in prep.scan_paths]
                part, stale = _sync_parts(con, parquet, bid, tables, scan_keys,
                                          set(w.new_instance_rows) - w.dropped_rows, w,
                                          plan.schema)
            con.execute("INSERT INTO batches(id, part, files, time) VALUES(?,?,?,?)",
                        (bid, part, len(entries), time.time()))
            batches = 1
    except BaseException:
        txn.rollback(con)
        raise
    files = sum(e.kind != "expanded" for e in entries)
    txn.add(files, batches, writes, stale, counts)
    if txn.due():
        txn.commit(con, parquet, result, ckpt)
    if bar is not None:
        bar.update(files)
        bar.set_postfix(MB_s="%.1f" % (result.bytes_read / 1e6 / max(bar.format_dict.get(
            "elapsed", 1) or 1, 1e-3)), refresh=False)


_SEEN_SQL = "INSERT OR IGNORE INTO seen(path, not_read) VALUES(?, ?)"


def _insert_seen(con, c_db, entries, scanned) -> None:
    """Record the paths of a batch in the job's ``seen`` table, with ``not_read`` for the
    files found unchanged (not scanned); in C without the GIL when the connection allows."""
    kinds = [e.kind for e in entries]
    keys = [e.key for e in entries]
    not_read = np.fromiter((k == "file" for k in kinds), np.uint8, len(kinds))
    if scanned:
        not_read[np.fromiter(scanned, np.int64, len(scanned))] = 0
    if "expanded" in kinds:     # a listed directory: its files come in later batches
        keep = [i for i, k in enumerate(kinds) if k != "expanded"]
        keys = [keys[i] for i in keep]
        not_read = np.ascontiguousarray(not_read[keep])
    if c_db is not None:
        _rows.sqlite_insert_keys(con, c_db, _SEEN_SQL, keys, not_read)
    else:
        con.executemany(_SEEN_SQL, zip(keys, not_read.tolist()))


def _failed_alike(old, size, mtime, etype, emsg) -> bool:
    """The ledger row ``old`` records this very failure (same size, mtime and reason)."""
    return old is not None and old[3] == "failed" and old[1] == size and old[2] == mtime \
        and old[4] == f"{etype}: {emsg}"


def _insert_new_c(con, db_path, prep, result, w, layout) -> set:
    """Write, without the GIL, the files of the batch that are new paths, parsed, with a
    SOPInstanceUID; returns the entry indices written.  A UID already indexed (by an earlier
    batch or an earlier file of this one) is left to the per-file logic, which decides
    between the copies."""
    import pyarrow.compute as pc
    done: set = set()
    entries, ledger = prep.entries, prep.ledger
    for cols, eidx in prep.chunks:
        b = cols.batch
        uid = b.column("SOPInstanceUID")
        # (numpy over the buffers: compute kernels with scalar arguments import pandas)
        mask = ~_valid_mask(b.column("error_type")) & _valid_mask(uid) & \
            (_string_lengths(uid) > 0)
        keys = [entries[k].key for k in eidx]
        if ledger:
            mask &= np.fromiter((k not in ledger for k in keys), bool, len(keys))
        rows = np.flatnonzero(mask).astype(np.int64)
        if not len(rows):
            continue
        written = _rows.sqlite_insert_new(
            con, db_path, layout.c_instance_sql, _C_LEDGER_SQL, keys,
            [b.column(c) for c in _C_COLUMNS] + cols.sql, rows)
        rows = rows[written.astype(bool)]
        if not len(rows):
            continue
        sel = _int64_array(rows)
        for name, touched in (("SeriesInstanceUID", w.touched_series),
                              ("StudyInstanceUID", w.touched_studies)):
            touched.update(x for x in pc.unique(b.column(name).take(sel)).to_pylist() if x)
        picked = rows.tolist()
        w.new_instance_rows.extend([keys[i] for i in picked])
        done.update([eidx[i] for i in picked])
        size = _int64_values(b.column("size"), 0)[rows]
        result.bytes_read += int(np.minimum(size, 8192).sum())
    return done


def _sync_parts(con, parquet, bid, tables, scan_keys, winners: set, w, schema) -> tuple:
    """The Parquet part of batch ``bid`` and the parts of earlier batches rewritten so that
    together they hold the instance rows and nothing else: this batch's part has the scan
    rows of the files that became instance rows in it and the rows of the copies it promoted
    (from the index, as the scan types them); an earlier part holding a row the batch
    removed (a file changed, gone, failed now, or outdone by a copy with a smaller path) is
    written again without it, under a new name recorded in ``batches`` in the batch's
    transaction.  Returns (the part's name or None, the replaced files, to delete once the
    transaction is committed: a job killed before leaves them unreferenced, and the next
    job's start deletes them)."""
    tables = [pa.Table.from_batches([b]) for b in tables if b.num_rows]
    if tables and winners:
        table = pa.concat_tables(tables)
        table = table.filter(_bool_array(np.fromiter((k in winners for k in scan_keys), bool,
                                                     len(scan_keys))))
        if table.num_rows:
            tables = [table.cast(schema) if table.schema != schema else table]
        else:
            tables = []
    else:
        tables = []
    scanned = set(scan_keys) & winners
    promoted = [r for r in w.promoted if r["path"] not in scanned and con.execute(
        "SELECT 1 FROM instances WHERE sop_instance_uid=? AND path=?",
        (r["sop_instance_uid"], r["path"])).fetchone()]
    if promoted:
        tables.append(_part_rows(promoted, schema))
    part = None
    if tables:
        part = _write_part(parquet, bid, pa.concat_tables(tables) if len(tables) > 1
                           else tables[0])
    stale = []
    gone = set(w.removed)
    if gone:
        import pyarrow.parquet as pq
        for old_id, name in con.execute("SELECT id, part FROM batches WHERE part IS NOT NULL"
                                        " AND id < ? ORDER BY id DESC", (bid,)).fetchall():
            path = os.path.join(parquet, name)
            try:
                # (display path, UID): a display path alone is lossy (undecodable names)
                t = pq.read_table(path, columns=["path", "SOPInstanceUID"])
                held = set(zip(t.column("path").to_pylist(),
                               t.column("SOPInstanceUID").to_pylist()))
            except FileNotFoundError:
                continue        # (removed by hand: nothing to keep consistent)
            hits = held & gone
            if not hits:
                continue
            table = pq.read_table(path)
            keep = _bool_array(np.fromiter((p not in hits for p in zip(
                table.column("path").to_pylist(), table.column("SOPInstanceUID").to_pylist())),
                bool, table.num_rows))
            table = table.filter(keep)
            new = None if table.num_rows == 0 else \
                _write_part(parquet, old_id, table, f"part-{old_id:08d}-{bid:08d}.parquet")
            con.execute("UPDATE batches SET part=? WHERE id=?", (new, old_id))
            stale.append(name)
            gone -= hits
            if not gone:
                break
    return part, stale


def _part_rows(rows: list, schema: pa.Schema) -> pa.Table:
    """Instance rows of the index (dicts of its columns) as rows of the scan's ``schema``:
    lists from their JSON text, a UV value past 2**63 - 1 from its decimal text; a value the
    column's type cannot hold (an index edited by hand) is null."""
    source = {"path": "display_path", "transfer_syntax": "transfer_syntax_uid",
              "num_frames": "frames", **_FIXED_KEYWORDS}
    arrays = []
    for f in schema:
        values = [r.get(source.get(f.name, f.name)) for r in rows]
        try:
            if f.name not in source:
                values = _export_values(values, f.type, f.name)
            arrays.append(_array_or_convert(values, f.type))
        except (_ExportRetype, pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError,
                OverflowError):
            arrays.append(pa.nulls(len(rows), f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _remove_parts(parquet, names) -> None:
    """Delete the part files a committed transaction replaced."""
    if not parquet or not names:
        return
    for name in names:
        try:
            os.unlink(os.path.join(parquet, name))
        except FileNotFoundError:
            pass
    _fsync_dir(parquet)


def _final_counts(con, result, track_seen) -> None:
    """The counts of the job from the ledger: the final state of every file it saw.  Counted
    as it goes, a file indexed by one batch and outdone by a copy with a smaller path in a
    later one (input not in path order), or a copy promoted when the indexed file is gone,
    would keep the state it had first.  ``unchanged``: not read, and indexed since before
    the job (not a copy this job promoted), whatever the order of the inputs and batches."""
    counts = dict.fromkeys(STATES, 0)
    if track_seen:
        rows = con.execute("SELECT f.state, s.not_read AND NOT EXISTS (SELECT 1 FROM"
                           " temp.promoted p WHERE p.path = s.path), count(*) FROM temp.seen s"
                           " JOIN files f ON f.path = s.path GROUP BY 1, 2").fetchall()
    else:   # the ledger was empty at the start: all of it is this job's
        rows = con.execute("SELECT state, 0, count(*) FROM files GROUP BY 1").fetchall()
    for state, unchanged, n in rows:
        if state == "indexed" and unchanged:
            state = "unchanged"
        if state == "missing":
            continue      # (a path this job saw is never left missing)
        counts[state] += n
    counts["missing"] = result.missing
    total = sum(counts.values())
    if total != result.files:
        log.warning("ingest: %d files counted, %d in the ledger", result.files, total)
        return
    for state, n in counts.items():
        setattr(result, state, n)


def _under(path: bytes, roots: set) -> bool:
    """``path`` is one of ``roots`` or below one (roots without trailing slashes; ``/``)."""
    q = path
    while q:
        if q in roots:
            return True
        i = q.rfind(b"/")
        if i < 0:
            return False
        q = q[:i] if i else (b"/" if q != b"/" else b"")
    return False


def _gone(path: bytes) -> Optional[str]:
    """What a ledger path names now when it names no file: ``"absent"`` (nothing is there)
    or ``"folder"`` (a file replaced by a folder of its name; its files are walked as new
    paths); None while it names a file.  A path that cannot be looked at (a folder on the
    way that may not be searched: EACCES; an I/O error) is not gone: its folder is in
    ``dir_errors`` and may hide it."""
    try:
        return "folder" if stat.S_ISDIR(os.lstat(path).st_mode) else None
    except ValueError:          # (a NUL in it: no file has that name)
        return "absent"
    except OSError as exc:
        return "absent" if exc.errno in (errno.ENOENT, errno.ENOTDIR) else None


def _rootset(roots) -> set:
    # a ledger path is under an input root when it or one of its parents is one (a set
    # lookup per path component: a job may have a million listed roots)
    rootset = set()
    for r in roots:
        for k in (os.fsencode(r), os.fsencode(os.path.abspath(r))):
            rootset.add(k.rstrip(b"/") or b"/")
    return rootset


def _glob_inputs(paths: list) -> list:
    """The inputs :func:`_prune_roots` expands as globs (glob characters, no such path),
    made absolute."""
    if not _has_magic("\0".join(paths)):
        return []
    return [os.path.abspath(p) for p in paths if _has_magic(p) and not os.path.lexists(p)]


class _Scope:
    """The ledger paths a job's inputs cover (for ``missing`` and ``dir_errors``): those
    under an input root (globs expanded), and those a glob input matches, or under a
    folder it matches, now or not (a file gone is no longer in the glob's expansion)."""

    def __init__(self, roots, globs=()):
        # (a glob input taken literally too: a listed file named "a[1].dcm" that is gone is
        # no longer found as such, so it is taken for a glob; its own path is in scope)
        self.rootset = _rootset(list(roots) + list(globs))
        self.globs = [g.split("/") for g in globs]
        # the folders before each glob's first component with glob characters
        heads = set()
        for parts in self.globs:
            k = next((i for i, c in enumerate(parts) if _has_magic(c)), len(parts))
            heads.add(os.fsencode("/".join(parts[:k])) or b"/")
        self.heads = heads

    def __contains__(self, path: bytes) -> bool:
        if _under(path, self.rootset):
            return True
        if not self.globs or not _under(path, self.heads):
            return False
        parts = os.fsdecode(path).split("/")
        return any(_glob_covers(parts, g) for g in self.globs)


def _glob_covers(parts: list, pattern: list) -> bool:
    """The path split into ``parts`` is one the glob split into ``pattern`` matches as
    ``glob.glob(pattern, recursive=True)`` does, or lies below one: a component with glob
    characters matches a name by ``fnmatchcase``, not a hidden one (leading ``.``) unless
    it starts with ``.`` itself; ``**`` matches zero or more names, none hidden."""
    import fnmatch
    n = len(pattern)

    def closed(states):         # ("**" also matches no name)
        todo = list(states)
        while todo:
            j = todo.pop()
            if j < n and pattern[j] == "**" and j + 1 not in states:
                states.add(j + 1)
                todo.append(j + 1)
        return states
    states = closed({0})
    for name in parts:
        if n in states:
            return True
        nxt = set()
        hidden = name.startswith(".")
        for j in states:
            q = pattern[j]
            if q == "**":
                if not hidden:
                    nxt.add(j)
            elif not _has_magic(q):
                if name == q:
                    nxt.add(j + 1)
            elif (not hidden or q.startswith(".")) and fnmatch.fnmatchcase(name, q):
                nxt.add(j + 1)
        if not nxt:
            return False
        states = closed(nxt)
    return n in states


def _clear_dir_errors(con, scope: _Scope, recorded: set) -> None:
    """Remove the ``dir_errors`` rows, in the job's scope, of folders this job did not
    record: a folder that can be listed now, or is gone (its files are walked, or missing)."""
    rows = con.execute("SELECT path FROM dir_errors").fetchall()
    if not rows:
        return
    stale = []
    for (p,) in rows:
        if p in recorded or p not in scope:
            continue
        try:
            with os.scandir(p):
                pass
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            continue            # (not recorded: the walk did not reach it)
        stale.append((p,))
    if stale:
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany("DELETE FROM dir_errors WHERE path=?", stale)
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise


def _mark_missing(con, layout, scope: _Scope, result, parquet=None, schema=None):
    cand = con.execute("SELECT f.path, f.display, f.size, f.mtime_ns, f.state FROM files f"
                       " WHERE f.state != 'missing' AND NOT EXISTS (SELECT 1 FROM temp.seen s"
                       " WHERE s.path = f.path)").fetchall()
    gone, forget = [], []
    for p, d, s, m, state in cand:
        now = _gone(p) if p in scope else None
        if now == "folder" and state == "failed" and s is None:
            # a path that failed before it could be looked at (an input path that did not
            # exist) and is a folder now: never a file, so not a missing one; its files are
            # walked as paths of their own
            forget.append(p)
        elif now is not None:
            gone.append((p, d, s, m))
    stale: list = []
    if gone or forget:
        w = _Writer(con, layout)
        con.execute("BEGIN IMMEDIATE")
        try:
            for p in forget:
                w.clear_failure(p)
                con.execute("DELETE FROM files WHERE path=?", (p,))
            for p, d, s, m in gone:
                w.unindex(p)
                w.clear_failure(p)
                w.ledger(p, d, s, m, "missing", "file is gone")
            if w.touched_series or w.touched_studies:
                w.refresh_hierarchy()
            if parquet and (w.removed or w.promoted):
                # (a batch of its own: the promoted copies' part, the earlier parts rewritten)
                bid = con.execute("SELECT coalesce(max(id), 0) + 1 FROM batches").fetchone()[0]
                part, stale = _sync_parts(con, parquet, bid, [], [], set(), w, schema)
                con.execute("INSERT INTO batches(id, part, files, time) VALUES(?,?,?,?)",
                            (bid, part, 0, time.time()))
                result.batches += 1
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        _remove_parts(parquet, stale)
    result.missing += len(gone)
    result.files += len(gone)


# ----------------------------------------------------------------------------- export / demo

_EXPORT_FIXED = pa.schema([
    ("sop_instance_uid", pa.string()), ("path", pa.binary()), ("display_path", pa.string()),
    ("size", pa.int64()), ("mtime_ns", pa.int64()), ("sop_class_uid", pa.string()),
    ("series_instance_uid", pa.string()), ("study_instance_uid", pa.string()),
    ("transfer_syntax_uid", pa.string()), ("rows", pa.int64()), ("columns", pa.int64()),
    ("frames", pa.int64()), ("pixel_offset", pa.int64()), ("pixel_length", pa.int64())])
_EXPORT_ROWS = 5000


def export_parquet(db, out) -> int:
    """Write the whole ``instances`` table to the Parquet file ``out``: its fixed columns
    (``path`` as the file name's exact bytes, binary, and ``display_path`` as text) and its
    tag columns, each typed as :func:`scan` types that keyword (lists from their JSON text;
    a column it cannot type, or whose values do not fit that type, is exported as text,
    binary values then as hex).  An index of schema version 2 not yet
    migrated (its tags in an ``attributes`` JSON object) is exported the same way.  Streams
    ``_EXPORT_ROWS`` rows at a time from one read transaction (a consistent snapshot while a
    job writes); ``out`` appears complete or not at all (written to ``out.tmp``, renamed over
    it: a symlink ``out`` is written through, to its target; a fifo, a device or a folder is
    refused with OSError).  Returns the number of rows."""
    import pyarrow.parquet as pq
    out = os.fspath(out)
    if os.path.islink(out):
        out = os.path.realpath(out)         # written through the link, not over it
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        # the temporary file renamed over it would replace a fifo, a device or a folder
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), out) \
            if stat.S_ISDIR(mode) else \
            OSError(errno.EINVAL, "not a regular file: the export would replace it", out)
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        # (the write of the temporary file would fail naming it, not ``out``)
        raise FileNotFoundError(errno.ENOENT, "no such folder for the export", out)
    con = _connect_browse(db)
    tmp = out + ".tmp"
    try:
        con.execute("BEGIN")
        columns = [c for c in _tag_columns(con) if c not in _EXPORT_FIXED.names]
        legacy = any(r[1] == "attributes" for r in con.execute("PRAGMA table_info(instances)"))
        keys = sorted(set(columns) | set(_attribute_keys(con) if legacy else ()))
        types = {}
        for k in keys:
            types[k] = _keyword_type(k)
        while True:     # once more for each column whose values do not fit its type
            try:
                n = _write_export(con, tmp, keys, columns, legacy, types, pq)
                break
            except _ExportRetype as exc:
                types[exc.key] = pa.string()
        con.execute("ROLLBACK")
        try:
            os.replace(tmp, out)
        except OSError as exc:      # (e.g. ``out`` is a directory): name ``out``, not tmp
            raise OSError(exc.errno, exc.strerror, os.fspath(out)) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        con.close()
    return n


class _ExportRetype(Exception):
    def __init__(self, key):
        super().__init__(key)
        self.key = key


def _attributes(text, sop) -> dict:
    """The ``attributes`` (schema version 2) of instance ``sop`` as a dict ({} for NULL);
    text that is not a JSON object (an index edited or damaged by hand) is a
    ``sqlite3.DatabaseError`` naming the instance, not a traceback from the JSON parser."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        value = None
    if not isinstance(value, dict):
        raise sqlite3.DatabaseError(f"instance {sop}: attributes are not a JSON object")
    return value


def _attribute_keys(con) -> list:
    """The keys of every row's ``attributes`` (schema version 2), sorted; the keywords held
    by fixed columns excluded."""
    try:
        keys = {k for (k,) in con.execute(
            "SELECT DISTINCT j.key FROM instances, json_each(instances.attributes) AS j"
            " WHERE json_type(instances.attributes) = 'object'")}
    except sqlite3.OperationalError:          # an SQLite without JSON functions
        keys = set()
        for a, sop in con.execute("SELECT attributes, sop_instance_uid FROM instances"):
            keys.update(_attributes(a, sop))
    return sorted(k for k in keys if k not in _EXPORT_FIXED.names and k not in _FIXED_KEYWORDS)


def _export_text(v):
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return v.hex()
    return json.dumps(v, ensure_ascii=False)


def _export_values(values: list, t: pa.DataType, key: str) -> list:
    """A tag column's SQLite values as Python values of the Arrow type ``t``: a list type
    from its JSON text, uint64 from the decimal text of values past 2**63 - 1.  A text that
    is not JSON (an index edited by hand) exports the column as text."""
    if pa.types.is_list(t):
        out = []
        for v in values:
            if isinstance(v, str):
                try:
                    v = json.loads(v)
                except ValueError:
                    raise _ExportRetype(key) from None
            out.append(v)
        return out
    if t == pa.uint64():
        return [int(v) if isinstance(v, str) and v.isdigit() else v for v in values]
    return values


def _write_export(con, tmp, keys, columns, legacy, types, pq) -> int:
    schema = pa.schema(list(_EXPORT_FIXED) + [pa.field(k, types[k]) for k in keys])
    select = list(_ROW_COLS) + columns + (["attributes"] if legacy else [])
    cur = con.execute("SELECT " + ", ".join(map(_quote, select)) + " FROM instances ORDER BY"
                      " sop_instance_uid")
    nfixed = len(_ROW_COLS)
    where = {c: nfixed + i for i, c in enumerate(columns)}
    n = 0
    with pq.ParquetWriter(tmp, schema) as writer:     # (no rows: a file with the schema)
        for rows in iter(lambda: cur.fetchmany(_EXPORT_ROWS), []):
            cols = [list(c) for c in zip(*rows)]
            sop = cols[0]
            attrs = [_attributes(a, uid) for a, uid in zip(cols[-1], sop)] if legacy else None
            # (path: the file name's exact bytes, display_path its text)
            arrays = [_array_or_convert(c, f.type) for c, f in
                      zip([cols[0], [bytes(p) for p in cols[1]]] + cols[2:nfixed],
                          _EXPORT_FIXED)]
            for k in keys:
                values = cols[where[k]] if k in where else [None] * len(rows)
                if attrs is not None:     # (a migrated index keeps its column's value)
                    values = [a.get(k) if v is None else v for v, a in zip(values, attrs)]
                if types[k] == pa.string():
                    values = [_export_text(v) for v in values]
                else:
                    values = _export_values(values, types[k], k)
                try:
                    arrays.append(_array_or_convert(values, types[k]))
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
                    raise _ExportRetype(k) from None
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            n += len(rows)
    return n


def demo_ingest(directory, db_path) -> IngestResult:
    """Ingest ``directory`` into ``db_path`` quietly (used by ``fastdicom demo``)."""
    return ingest([directory], db_path, progress=False)


def summary_text(r: IngestResult) -> str:
    rate = r.files / r.seconds if r.seconds > 0 else 0.0
    parts = ", ".join(f"{getattr(r, s)} {s}" for s in STATES)
    text = f"{r.files} files in {r.seconds:.2f} s ({rate:,.0f} files/s): {parts}"
    if r.dir_errors:
        text += f"; {r.dir_errors} unreadable directories (see dir_errors)"
    return text


# ----------------------------------------------------------------------------- CLI

def _read_path_list(name: str) -> list:
    """The paths listed in file ``name`` (``-``: stdin): NUL-separated when it holds a NUL
    byte, else one per line; bytes are decoded as the file system does (undecodable bytes
    survive as surrogates, so such paths reach the ledger intact); empty entries skipped."""
    if name == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(name, "rb") as f:
            data = f.read()
    if b"\0" in data:
        parts = data.split(b"\0")
    else:
        parts = data.split(b"\n")
        parts = [p[:-1] if p.endswith(b"\r") else p for p in parts]
    return [os.fsdecode(p) for p in parts if p]


def _split_tags(text: str) -> list:
    """Keywords and tags separated by commas; a tag written ``(gggg,eeee)`` keeps its comma."""
    import re
    return [t.strip() for t in re.findall(r"\([^)]*\)|[^,]+", text) if t.strip()]


def _cmd_ingest(args) -> int:
    try:
        return _cmd_ingest_checked(args)
    finally:
        _early.finished()


def _cmd_ingest_checked(args) -> int:
    try:
        _db_file(args.db)
    except ValueError as exc:
        return _usage_error(f"--db: {exc}")
    tags = list(DEFAULT_TAGS)
    if args.tags:
        extra = _split_tags(",".join(args.tags))
        try:
            _Plan(extra)
        except (ValueError, KeyError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            return _usage_error(f"bad --tags: {msg}")
        tags = extra
    paths = list(args.paths)
    if (args.workers is not None and args.workers < 1) or \
            (args.batch_size is not None and args.batch_size < 1):
        return _usage_error("--workers and --batch-size must be at least 1")
    if args.from_parquet and (paths or args.files_from or args.parquet or args.reread):
        return _usage_error("--from-parquet takes no PATH, --files-from, --parquet or --reread")
    if args.files_from:
        try:
            paths += _read_path_list(args.files_from)
        except OSError as exc:
            return _usage_error(f"--files-from: {exc}")
    if not paths and not args.from_parquet:
        return _usage_error("no PATH, --files-from or --from-parquet")
    progress = (not args.quiet and not args.json) and sys.stderr.isatty()
    with _StopOnSignals() as stopper:
        return _run_cli_job(args, paths, tags, progress, stopper)


def _argparse_error(parser, message: str):
    """``ArgumentParser.error`` of ``fastdicom ingest``: argparse's usage and message on
    stderr, then the JSON line of a usage error, exit code 2."""
    _early.finished()
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    _json_line({"error": "usage", "message": message})
    sys.exit(2)


def _usage_error(msg: str) -> int:
    """Exit code 2, with the message on stderr and, as the last stdout line, as JSON."""
    _early.finished()
    print(f"fastdicom ingest: {msg}", file=sys.stderr)
    _json_line({"error": "usage", "message": msg})
    return 2


def _json_line(obj) -> None:
    """Print the command's last stdout line, ``obj`` as JSON, and flush it at once (a kill
    after it cannot lose it in stdout's buffer).  A reader that went away (EPIPE) does not
    change the exit code (:func:`fastdicom.cli.discard_stdout`)."""
    try:
        print(json.dumps(obj), flush=True)
    except BrokenPipeError:
        from .cli import discard_stdout
        discard_stdout()


class _StopOnSignals:
    """SIGTERM raises :class:`_Terminated` and SIGINT KeyboardInterrupt in the main thread,
    once: a second signal while the job winds down (a double Ctrl-C) is ignored, so that the
    wind-down and the last JSON line are not cut short.  After :meth:`quiet` (the job is
    over: its JSON line is next) signals are ignored too.  When the block ends, the
    ``fastdicom ingest`` process ignores them until it exits (its JSON line is written: a
    signal in the interpreter's shutdown would turn its exit code into a kill); a program
    that called the command gets its own handlers back."""

    def __enter__(self):
        import signal
        import threading
        self.old = {}
        self.fired: list = []
        if threading.current_thread() is threading.main_thread():
            fired = self.fired

            def stop(signum, frame):
                if fired:
                    return
                fired.append(signum)
                raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
            for sig in (signal.SIGTERM, signal.SIGINT):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    # (in the CLI, the start-up handler of fastdicom._early: not restored)
                    self.old[sig] = signal.signal(sig, stop)
        return self

    def quiet(self) -> None:
        """Ignore the signals from now on (the job is over, its JSON line is next)."""
        self.fired.append(0)

    def __exit__(self, *exc_info):
        import signal
        for sig, old in self.old.items():
            signal.signal(sig, signal.SIG_IGN if _early.is_cli() else old)


def _run_cli_job(args, paths, tags, progress, stopper) -> int:
    # every way out starts with stopper.quiet(): a signal while the JSON line is written
    # is ignored (it raised there, with a traceback and no JSON line)
    try:
        if args.from_parquet:
            if not os.path.exists(args.from_parquet):
                return _usage_error(f"no such file or directory {args.from_parquet!r}")
            try:
                r = ingest_tables(args.from_parquet, args.db, tags=tags if args.tags else None,
                                  batch_size=args.batch_size, progress=progress)
            except _TooManyTags:
                raise
            except (ValueError, TypeError) as exc:   # rows that are not scan rows
                raise RuntimeError(f"{args.from_parquet}: {exc}") from None
        else:
            if not args.quiet:
                _warn_absent_roots(args.paths)
            r = ingest(paths, args.db, workers=args.workers, tags=tags, parquet=args.parquet,
                       batch_size=args.batch_size, follow_symlinks=args.follow_symlinks,
                       force=args.force, reread=args.reread, progress=progress)
        stopper.quiet()
    except _TooManyTags as exc:
        stopper.quiet()
        return _usage_error(f"bad --tags: {exc}")
    except IngestLockedError as exc:
        stopper.quiet()
        print(f"fastdicom ingest: {exc}", file=sys.stderr)
        _json_line({"error": "locked", "message": str(exc)})
        return 1
    except (sqlite3.Error, OSError, RuntimeError) as exc:
        stopper.quiet()
        msg = _db_error(args.db, exc)
        print(f"fastdicom ingest: fatal: {msg}", file=sys.stderr)
        _json_line({"error": type(exc).__name__, "message": msg})
        return 1
    except _STOPS as exc:
        stopper.quiet()
        name = "SIGINT" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
        msg = ("interrupted: the batches committed so far are kept; the same command "
               "resumes the job")
        print(f"fastdicom ingest: {msg} ({name})", file=sys.stderr)
        _json_line({"error": "interrupted", "signal": name, "message": msg})
        return 130 if name == "SIGINT" else 143
    if not args.quiet and not args.json:
        print(summary_text(r), file=sys.stderr)
        if r.failed:
            print(f"fastdicom ingest: the reasons of the {r.failed} failed: fastdicom ls "
                  f"{shlex.quote(args.db)} --failures", file=sys.stderr)
    _json_line(r.counts())
    return 0


def _warn_absent_roots(roots) -> None:
    """Say on stderr which paths named on the command line do not exist, and which globs
    match nothing (a typo shows before the job, not only in the counts of its summary)."""
    for root in roots:
        if os.path.lexists(root):
            continue
        text = os.fsdecode(root)
        if _has_magic(text):
            if next(iglob(text), None) is None:
                print(f"fastdicom ingest: {text!r} matches no path", file=sys.stderr)
        else:
            print(f"fastdicom ingest: {text!r} does not exist (counted as a failed file)",
                  file=sys.stderr)


# what ``fastdicom ls`` shows: (columns, query); the columns name the output's header line
_LS_VIEWS = {
    "files": (("state", "files"),
              "SELECT state, count(*) FROM files GROUP BY state ORDER BY state"),
    "patients": (("patient_key", "patient_id", "issuer_of_patient_id", "patient_name",
                  "patient_birth_date", "patient_sex", "num_studies"),
                 "SELECT patient_key, patient_id, issuer_of_patient_id, patient_name,"
                 " patient_birth_date, patient_sex, num_studies FROM patients"
                 " ORDER BY patient_id, patient_key"),
    "studies": (("study_instance_uid", "patient_id", "accession_number", "study_date",
                 "study_description", "num_series", "num_instances"),
                "SELECT study_instance_uid, patient_id, accession_number, study_date,"
                " study_description, num_series, num_instances FROM studies ORDER BY"
                " patient_id, study_date, study_instance_uid"),
    "series": (("series_instance_uid", "study_instance_uid", "modality", "series_number",
                "series_description", "num_instances"),
               "SELECT series_instance_uid, study_instance_uid, modality, series_number,"
               " series_description, num_instances FROM series ORDER BY study_instance_uid,"
               " series_number, series_instance_uid"),
    "instances": (("sop_instance_uid", "series_instance_uid", "path", "rows", "columns",
                   "frames", "transfer_syntax_uid"),
                  "SELECT sop_instance_uid, series_instance_uid, display_path, rows, columns,"
                  " frames, transfer_syntax_uid FROM instances ORDER BY series_instance_uid,"
                  " path"),
    "failures": (("path", "error_type", "message", "offset", "tag"),
                 "SELECT display, error_type, message, offset, tag FROM failures"
                 " ORDER BY path"),
}
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _tsv_cell(column: str, v) -> str:
    """A value as one TSV cell: NULL empty, a tag as (GGGG,EEEE), and a backslash, tab or
    line break escaped (a message or description holding them stays on its line)."""
    if v is None:
        return ""
    if column == "tag" and isinstance(v, int):
        return f"({v >> 16:04X},{v & 0xFFFF:04X})"
    return str(v).translate(_TSV_ESCAPES)


def _cmd_ls(args) -> int:
    if not os.path.exists(args.db):
        print(f"fastdicom ls: no such database {args.db!r}", file=sys.stderr)
        return 2
    try:
        con = _connect_browse(args.db)
    except sqlite3.Error as exc:      # e.g. a directory
        print(f"fastdicom ls: {_db_error(args.db, exc)}", file=sys.stderr)
        return 1
    view = next((v for v in _LS_VIEWS if getattr(args, v, False)), "files")
    columns, q = _LS_VIEWS[view]
    try:
        try:
            rows = con.execute(q)
            if not args.no_header:
                print("\t".join(columns))
            for row in rows:
                print("\t".join(_tsv_cell(c, v) for c, v in zip(columns, row)))
        except sqlite3.Error as exc:
            print(f"fastdicom ls: {_db_error(args.db, exc)}", file=sys.stderr)
            return 1
    finally:
        con.close()
    return 0


def _db_error(db, exc: Exception) -> str:
    """The message of an error met on the index ``db``: SQLite's messages do not name the
    database, so it is put in front; a database without the index's tables is said to be no
    fastdicom index.  Other errors (OSError) name their file already."""
    if not isinstance(exc, sqlite3.Error):
        return str(exc)
    if os.path.isdir(db):       # (SQLite says "disk I/O error" or "unable to open")
        return f"{db}: is a directory, not an index"
    msg = str(exc)
    if msg.startswith(("no such table", "no such column")):
        msg = f"not a fastdicom index ({msg})"
    return f"{db}: {msg}"


def _cmd_export(args) -> int:
    if not os.path.exists(args.db):
        print(f"fastdicom export: no such database {args.db!r}", file=sys.stderr)
        return 2
    try:
        n = export_parquet(args.db, args.out)
    except (sqlite3.Error, OSError) as exc:
        print(f"fastdicom export: {_db_error(args.db, exc)}", file=sys.stderr)
        return 1
    print(f"{n} instances written to {args.out}", file=sys.stderr)
    return 0


def register_cli(subparsers) -> None:
    """Add ``ingest``, ``ls`` and ``export`` to the ``fastdicom`` command."""
    p = subparsers.add_parser(
        "ingest", help="index DICOM headers into SQLite (resumable)",
        epilog="The last stdout line is one JSON object: the counts, or an error. Exit codes: "
               "0 the job finished (even with failed files), 1 fatal error (database "
               "unwritable, full or locked), 2 bad usage, 130/143 interrupted by "
               "SIGINT/SIGTERM (committed batches are kept; the same command resumes).")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--from-parquet", metavar="DIR",
                   help="index the header rows of Parquet parts written by a cluster "
                        "(fastdicom.dask.read_headers(...).to_parquet) instead of reading "
                        "files")
    p.add_argument("--files-from", metavar="FILE",
                   help="also ingest the paths listed in FILE ('-': stdin), one per line, or "
                        "NUL-separated when FILE holds a NUL byte (find -print0)")
    p.add_argument("--db", required=True, help="SQLite index to create or update")
    p.add_argument("--workers", type=int, default=None,
                   help="threads: the writer and N-1 scanning threads (default: the number "
                        "of cores, at most 9)")
    p.add_argument("--tags", action="append",
                   help="keywords or tags (ggggeeee or (gggg,eeee)) to index, comma-separated "
                        "or repeated (default: fastdicom.DEFAULT_TAGS)")
    p.add_argument("--parquet", metavar="DIR", help="also write one Parquet part per batch")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"files per batch and atomic commit (default: batches of "
                        f"{DEFAULT_BATCH_SIZE}, growing with the index past 200,000 instances "
                        f"up to {MAX_BATCH_SIZE}, sharing commits of a twentieth of the index "
                        f"up to {MAX_COMMIT_FILES:,} files or {COMMIT_SECONDS:g} s)")
    p.add_argument("--follow-symlinks", action="store_true")
    p.add_argument("--force", action="store_true",
                   help="also read files without the 128-byte preamble and DICM (raw data "
                        "sets, ACR-NEMA)")
    p.add_argument("--reread", action="store_true",
                   help="read every file again, unchanged ones too (they then count as "
                        "indexed, duplicate or conflict): fills the columns of tags added to "
                        "the index since")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary text")
    p.add_argument("--json", action="store_true", help="only the JSON summary line")
    p.set_defaults(func=_cmd_ingest, usage_error=p)
    p.error = _argparse_error.__get__(p)    # usage errors of argparse end with JSON too
    p = subparsers.add_parser(
        "ls", help="browse an index",
        description="Print a table of the index as tab-separated values, with a header "
                    "line: by default the number of files in each ledger state.")
    p.add_argument("db", help="the SQLite index written by 'fastdicom ingest'")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--patients", action="store_true", help="one line per patient")
    g.add_argument("--studies", action="store_true", help="one line per study")
    g.add_argument("--series", action="store_true", help="one line per series")
    g.add_argument("--instances", action="store_true", help="one line per indexed instance")
    g.add_argument("--failures", action="store_true",
                   help="the files that failed, with their error, byte offset and tag")
    p.add_argument("--no-header", action="store_true", help="no header line")
    p.set_defaults(func=_cmd_ls)
    p = subparsers.add_parser("export", help="export the instance table to Parquet")
    p.add_argument("db")
    p.add_argument("out")
    p.set_defaults(func=_cmd_export)


def main(argv=None) -> int:
    """Standalone entry point (``python -m fastdicom.ingest ingest ...``)."""
    import argparse
    parser = argparse.ArgumentParser(prog="fastdicom")
    sub = parser.add_subparsers(dest="command", required=True)
    register_cli(sub)
    from .cli import parse_cli
    args = parse_cli(parser, argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())


class _CallableModule(__import__("types").ModuleType):
    """``fastdicom.ingest(paths, db, ...)`` calls :func:`ingest`; the module stays importable."""

    def __call__(self, *args, **kwargs):
        return ingest(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
