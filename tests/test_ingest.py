"""The ingestion job: states, idempotence, locking, Parquet parts and kill -9 resumability."""
from __future__ import annotations

import collections
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _signals import future_stopped_after_release  # noqa: E402
from fastdicom import testing
from fastdicom.ingest import (IngestLockedError, SCHEMA_VERSION, STATES, ingest, demo_ingest,
                              export_parquet)

ROOT = Path(__file__).resolve().parents[1]


def _tiny_bytes(k: int, *, study: int, series: int, instance_number=None) -> bytes:
    els = _BASE[:]
    uid = testing.uid_from(("inst", k))
    out = []
    for tag, vr, value in els:
        if tag == 0x00080018:
            value = uid
        elif tag == 0x0020000D:
            value = testing.uid_from(("study", study))
        elif tag == 0x0020000E:
            value = testing.uid_from(("series", study, series))
        elif tag == 0x00200013:
            value = str(instance_number if instance_number is not None else k)
        elif tag == 0x00100020:
            value = "PAT%03d" % (study % 7)
        out.append((tag, vr, value))
    buf = io.BytesIO()
    testing.write_file(buf, out)
    return buf.getvalue()


_BASE = testing.ct_instance_elements(rows=16, columns=16, private=False, sequences=True)


def make_tree(root: Path, n_valid: int = 1800, seed: int = 0) -> dict:
    """n_valid instances in nested dirs, 40 identical copies, 20 conflicting copies, junk."""
    rng = random.Random(seed)
    info = {"valid": [], "duplicates": [], "conflicts": [], "junk": [], "symlinks": []}
    for k in range(n_valid):
        study, series = k // 300, (k // 60) % 5
        d = root / f"st{study:02d}" / f"se{series}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"IM{k:05d}.dcm"
        p.write_bytes(_tiny_bytes(k, study=study, series=series))
        info["valid"].append(p)
    dup_dir = root / "zz_copies"
    dup_dir.mkdir()
    for j, k in enumerate(rng.sample(range(n_valid), 60)):
        src = info["valid"][k]
        if j < 40:
            p = dup_dir / f"dup{j:03d}.dcm"
            p.write_bytes(src.read_bytes())
            info["duplicates"].append(p)
        else:
            study, series = k // 300, (k // 60) % 5
            # "a" sorts before "st..": some conflicting copies win the race for the UID
            p = (root / ("a_conflict%03d.dcm" % j)) if j % 2 else dup_dir / f"conf{j:03d}.dcm"
            p.write_bytes(_tiny_bytes(k, study=study, series=series, instance_number=99999))
            info["conflicts"].append(p)
    for s in range(6):
        paths = testing.write_junk(root / f"junk{s}", seed=s)
        for kind, p in paths.items():
            if kind == "valid":
                continue
            info["junk"].append(p)
    os.symlink(info["valid"][0], root / "link_to_file.dcm")
    os.symlink(root, root / "st00" / "loop")
    info["symlinks"] = [root / "link_to_file.dcm", root / "st00" / "loop"]
    return info


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    info = make_tree(root)
    return root, info


def _dump(db):
    con = sqlite3.connect(db)
    try:
        inst = con.execute("SELECT * FROM instances ORDER BY sop_instance_uid").fetchall()
        files = con.execute("SELECT path, size, mtime_ns, state, sop_instance_uid, sha256"
                            " FROM files"
                            " ORDER BY path").fetchall()
        copies = con.execute("SELECT path, state, sop_instance_uid FROM instance_copies"
                             " ORDER BY path").fetchall()
        fails = con.execute("SELECT path, error_type FROM failures ORDER BY path").fetchall()
        series = con.execute("SELECT * FROM series ORDER BY 1").fetchall()
        studies = con.execute("SELECT * FROM studies ORDER BY 1").fetchall()
        patients = con.execute("SELECT * FROM patients ORDER BY 1").fetchall()
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    return dict(inst=inst, files=files, copies=copies, fails=fails, series=series,
                studies=studies, patients=patients)


def test_states_and_rerun(tree, tmp_path):
    root, info = tree
    db = str(tmp_path / "index.sqlite")
    r = ingest([root], db, workers=2, batch_size=200)
    c = r.counts()
    assert sum(c[s] for s in STATES) == c["files"]
    n_files = sum(1 for p in root.rglob("*") if p.is_file() or p.is_symlink())
    assert c["files"] == n_files
    assert c["skipped"] == 2
    assert c["failed"] == len(info["junk"])
    # distinct instances: valid + the junk "valid" file (identical for every seed or not)
    d = _dump(db)
    assert {Path(os.fsdecode(p)) for p, _ in d["fails"]} == set(info["junk"])
    uids = {row[0] for row in d["inst"]}
    assert len(uids) == c["indexed"]
    assert (c["conflict"], c["duplicate"]) == (20, 40)
    # conflicting copies whose path sorts first won the race
    con = sqlite3.connect(db)
    winners = {os.fsdecode(p) for (p,) in con.execute("SELECT path FROM instances")}
    con.close()
    for p in info["conflicts"]:
        assert (str(p) in winners) == p.name.startswith("a_conflict")
    # re-run: nothing parsed, nothing written
    before = _dump(db)
    mtime = os.stat(db).st_mtime_ns
    r2 = ingest([root], db, workers=2, batch_size=200)
    assert r2.indexed == 0 and r2.unchanged == c["indexed"]
    assert r2.files == c["files"] and r2.failed == c["failed"]
    assert _dump(db) == before
    assert os.stat(db).st_mtime_ns == mtime or _dump(db) == before


def test_missing_changed_and_lock(tmp_path):
    root = tmp_path / "t"
    paths = testing.write_ct_series(root, 6, 16, 16)
    db = str(tmp_path / "i.sqlite")
    r = ingest([root], db, workers=1)
    assert r.indexed == 6
    paths[0].unlink()
    data = bytearray(paths[1].read_bytes())
    paths[1].write_bytes(bytes(data[: len(data) - 100]))   # now truncated in Pixel Data
    r = ingest([root], db, workers=1)
    assert (r.missing, r.failed, r.unchanged, r.files) == (1, 1, 4, 6)
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM instances").fetchone()[0] == 4
    states = dict(con.execute("SELECT state, count(*) FROM files GROUP BY state").fetchall())
    con.close()
    assert states == {"indexed": 4, "failed": 1, "missing": 1}
    # a second job at once: clear error
    from fastdicom.ingest import _Lock
    lock = _Lock(db)
    try:
        with pytest.raises(IngestLockedError):
            ingest([root], db)
        out = subprocess.run([sys.executable, "-m", "fastdicom.ingest", "ingest", str(root),
                              "--db", db, "--quiet"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=str(ROOT))
        assert out.returncode == 1
        assert "another ingest job" in out.stderr
        assert json.loads(out.stdout.strip().splitlines()[-1])["error"] == "locked"
    finally:
        lock.release()


def test_cli_json_parquet_export(tmp_path):
    root = tmp_path / "t"
    testing.write_ct_series(root, 5, 16, 16)
    testing.write_junk(root / "junk")
    db = str(tmp_path / "i.sqlite")
    parts = tmp_path / "parts"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (parts).mkdir()
    (parts / "part-99999999.parquet.tmp").write_bytes(b"junk")
    (parts / "part-00000777.parquet").write_bytes(b"orphan")
    out = subprocess.run([sys.executable, "-m", "fastdicom.ingest", "ingest", str(root),
                          "--db", db, "--parquet", str(parts)], capture_output=True,
                         text=True, env=env, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert sum(counts[s] for s in STATES) == counts["files"] == 13
    assert counts["indexed"] == 6 and counts["failed"] == 7
    assert "files in" in out.stderr
    names = sorted(os.listdir(parts))
    assert names == ["part-00000001.parquet"]
    t = pq.read_table(parts / names[0])
    assert t.num_rows == 6 and "SOPInstanceUID" in t.column_names
    assert export_parquet(db, tmp_path / "all.parquet") == 6
    bad = subprocess.run([sys.executable, "-m", "fastdicom.ingest", "ingest", "--db"],
                         capture_output=True, text=True, env=env, cwd=str(ROOT))
    assert bad.returncode == 2
    ls = subprocess.run([sys.executable, "-m", "fastdicom.ingest", "ls", db, "--failures"],
                        capture_output=True, text=True, env=env, cwd=str(ROOT))
    assert ls.returncode == 0 and len(ls.stdout.strip().splitlines()) == 1 + 7
    assert ls.stdout.splitlines()[0] == "path\terror_type\tmessage\toffset\ttag"
    # browsing and exporting leave no -wal/-shm files beside the index
    assert sorted(p.name for p in tmp_path.glob("i.sqlite*")) == ["i.sqlite", "i.sqlite.lock"]


def test_cli_output_to_a_closed_pipe_is_not_an_error(tmp_path, monkeypatch, capsys):
    """`fastdicom ls ... | head -1`: the reader going away ends the command quietly, exit 0."""
    from fastdicom import cli
    root = tmp_path / "t"
    testing.write_junk(root)
    db = str(tmp_path / "i.sqlite")
    ingest([root], db, workers=1)
    r, w = os.pipe()

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            return w
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    try:
        assert cli.main(["ls", db, "--failures"]) == 0
    finally:
        os.close(r)
        os.close(w)
    assert "error" not in capsys.readouterr().err


def test_non_utf8_path_and_demo(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    data = _tiny_bytes(1, study=1, series=1)
    name = os.fsencode(str(root)) + b"/caf\xe9.dcm"
    with open(name, "wb") as fh:
        fh.write(data)
    db = str(tmp_path / "i.sqlite")
    r = demo_ingest(root, db)
    assert r.indexed == 1
    con = sqlite3.connect(db)
    (p,) = con.execute("SELECT path FROM files").fetchone()
    con.close()
    assert p == name


def _count(db):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT count(*) FROM files").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


# the CLI with the default batch size, its batches of 50 files sharing commits of 170 (the
# sizes a job takes on a large index, scaled down)
_GROUPED_CLI = ("import sys, fastdicom.ingest as I; I._auto_batch_size = lambda n: 50; "
                "I._auto_commit_files = lambda n: 170; sys.exit(I.main(sys.argv[1:]))")


@pytest.mark.parametrize("commits", ["per batch", "shared"])
def test_kill9_resume_matches_uninterrupted(tree, tmp_path, commits):
    """SIGKILL at random points, then the same command: the index ends as an uninterrupted
    run's, with a commit per batch (``--batch-size``) and with batches sharing commits (the
    default batch size on a large index)."""
    root, info = tree
    ref_db = str(tmp_path / "ref.sqlite")
    ref = ingest([root], ref_db, workers=2, batch_size=50)
    total = ref.files
    db = str(tmp_path / "killed.sqlite")
    parts = tmp_path / "parts"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["ingest", str(root), "--db", db, "--workers", "2", "--quiet", "--parquet",
            str(parts)]
    cmd = [sys.executable, "-m", "fastdicom.ingest"] + args[:-2] + ["--batch-size", "50"] + \
        args[-2:] if commits == "per batch" else [sys.executable, "-c", _GROUPED_CLI] + args
    rng = random.Random(1234)
    landed = 0
    for attempt in range(4):
        proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        before = _count(db)
        t_end = time.time() + 30
        while time.time() < t_end and proc.poll() is None and _count(db) <= before:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.08))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        n = _count(db)
        if proc.returncode == -signal.SIGKILL and 0 < n < total:
            landed += 1
    assert landed >= 1, "no kill landed mid-run"
    out = subprocess.run(cmd[:-2] + ["--parquet", str(parts)], env=env, cwd=str(ROOT),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert counts["files"] == total
    assert sum(counts[s] for s in STATES) == total
    a, b = _dump(ref_db), _dump(db)
    assert a["inst"] == b["inst"]
    assert a["files"] == b["files"]
    assert a["copies"] == b["copies"]
    assert a["fails"] == b["fails"]
    assert (a["series"], a["studies"], a["patients"]) == (b["series"], b["studies"],
                                                         b["patients"])
    assert {Path(os.fsdecode(p)) for p, _ in b["fails"]} == set(info["junk"])
    # Parquet: no temp or orphan parts, every part readable, every row once
    con = sqlite3.connect(db)
    referenced = {r[0] for r in con.execute("SELECT part FROM batches WHERE part IS NOT NULL")}
    con.close()
    names = set(os.listdir(parts))
    assert names == referenced
    # ...and together they hold the instance rows, each once (a copy outdone by a later
    # batch's smaller path left its row in its part)
    got, inst, _ = _parts_and_index(db, parts)
    assert got == inst and len(inst) == len(a["inst"])


def test_default_batches_share_commits(tree, tmp_path, monkeypatch):
    """With the default batch size, consecutive batches share one transaction (a commit is
    due after ``_auto_commit_files`` files, or once it has been open ``COMMIT_SECONDS``): the
    index and the counts are those of a commit per batch.  A job interrupted between
    batches keeps the batches written (committed as it stops), and the same command then
    ends with the same index."""
    from fastdicom import ingest as I
    assert [I._auto_commit_files(n) for n in (0, 40_000, 200_000, 10**6, 10**8)] == \
        [2000, 2000, 10_000, 50_000, 100_000]
    root = str(tree[0])
    ref_db = str(tmp_path / "ref.sqlite")
    ref = ingest([root], ref_db, workers=2, batch_size=50)
    monkeypatch.setattr(I, "_auto_batch_size", lambda n: 50)
    monkeypatch.setattr(I, "_auto_commit_files", lambda n: 170)
    commits: list = []
    commit = I._Txn.commit

    def counting(self, *args):
        if self.open:
            commits.append(self.batches)
        return commit(self, *args)
    monkeypatch.setattr(I._Txn, "commit", counting)

    def same(r, db):
        assert {k: v for k, v in r.as_dict().items() if k not in ("db", "seconds", "batches")} \
            == {k: v for k, v in ref.as_dict().items() if k not in ("db", "seconds", "batches")}
        assert _full_dump(db) == _full_dump(ref_db)
    db = str(tmp_path / "shared.sqlite")
    r = ingest([root], db, workers=2)
    same(r, db)
    # batches of 32 and 50 files: a commit once 170 are written
    assert sum(commits) == r.batches and max(commits) == 4 and \
        len(commits) <= -(-r.files // 170), commits
    # due by time: a commit per batch
    commits.clear()
    monkeypatch.setattr(I, "COMMIT_SECONDS", 0.0)
    db = str(tmp_path / "timed.sqlite")
    r = ingest([root], db, workers=2)
    same(r, db)
    assert set(commits) == {1} and len(commits) == r.batches
    monkeypatch.setattr(I, "COMMIT_SECONDS", 3600.0)
    # interrupted as the 5th batch is prepared: the batches handed to the writer (the 4th
    # still waits for its scan) are committed in one commit, and nothing after them
    commits.clear()
    prepare, calls = I._prepare, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return prepare(*args, **kwargs)
    monkeypatch.setattr(I, "_prepare", interrupted)
    db = str(tmp_path / "stopped.sqlite")
    with pytest.raises(KeyboardInterrupt):
        ingest([root], db, workers=2)
    con = sqlite3.connect(db)
    written = con.execute("SELECT count(*), coalesce(sum(files), 0) FROM batches").fetchone()
    ledger = con.execute("SELECT count(*) FROM files").fetchone()[0]
    con.close()
    assert commits == [written[0]] and 0 < ledger == written[1] < ref.files, \
        (commits, written, ledger)
    monkeypatch.setattr(I, "_prepare", prepare)
    r = ingest([root], db, workers=2)
    assert _full_dump(db) == _full_dump(ref_db)
    assert r.files == ref.files and 0 < r.unchanged < ledger, r


def test_schema_v1_is_migrated(tmp_path):
    """A version-1 index (three more indexes, no series.first_sop_instance_uid) is upgraded in
    place and then ends exactly like an index built by this version."""
    root = tmp_path / "tree"
    for k in range(120):
        d = root / f"st{k // 60}" / f"se{(k // 20) % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"IM{k:04d}.dcm").write_bytes(_tiny_bytes(k, study=k // 60, series=(k // 20) % 3))
    part = [p for p in sorted(root.rglob("*.dcm"))][:70]
    staged = tmp_path / "staged"
    for p in part:
        q = staged / p.relative_to(root)
        q.parent.mkdir(parents=True, exist_ok=True)
        q.write_bytes(p.read_bytes())
        os.utime(q, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns))
    old_db = str(tmp_path / "old.sqlite")
    ingest([staged], old_db, workers=1)
    _as_version_2(old_db)
    con = sqlite3.connect(old_db)
    con.executescript("""
        CREATE INDEX files_sop ON files(sop_instance_uid);
        CREATE INDEX instances_study ON instances(study_instance_uid, sop_instance_uid);
        CREATE INDEX instances_path ON instances(path);
        ALTER TABLE series DROP COLUMN first_sop_instance_uid;
        PRAGMA user_version=1;""")
    con.close()
    # the same tree grows: the upgraded index and a fresh one must agree
    for p in sorted(root.rglob("*.dcm")):
        q = staged / p.relative_to(root)
        if not q.exists():
            q.parent.mkdir(parents=True, exist_ok=True)
            q.write_bytes(p.read_bytes())
    r = ingest([staged], old_db, workers=1)
    assert r.unchanged == 70 and r.indexed == 50
    new_db = str(tmp_path / "new.sqlite")
    ingest([staged], new_db, workers=1)
    old, new = _dump(old_db), _dump(new_db)
    for key in ("inst", "files", "series", "studies", "patients"):
        assert old[key] == new[key], key
    con = sqlite3.connect(old_db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert not names & {"files_sop", "instances_study", "instances_path"}
    studies = dict(con.execute("SELECT study_instance_uid, num_instances FROM studies"))
    assert sorted(studies.values()) == [60, 60]
    con.close()


def _as_version_2(db):
    """Rewrite an index of this version as schema version 2 wrote it: no tag columns, every
    row's tags (the keywords of the fixed columns too) in an ``attributes`` JSON object, the
    text ``json.dumps(..., sort_keys=True, ensure_ascii=False)``, bytes as hex."""
    from fastdicom.batch import schema as scan_schema
    from fastdicom.ingest import _FIXED_KEYWORDS, _tag_columns
    con = sqlite3.connect(db, isolation_level=None)
    tags = _tag_columns(con)
    con.execute("BEGIN")
    for table, key in (("instances", "sop_instance_uid"), ("instance_copies", "path")):
        con.execute(f"ALTER TABLE {table} ADD COLUMN attributes TEXT")
        cols = [key] + list(_FIXED_KEYWORDS.values()) + tags
        for row in con.execute("SELECT " + ", ".join(f'"{c}"' for c in cols) +
                               f" FROM {table}").fetchall():
            attrs = dict(zip(_FIXED_KEYWORDS, row[1:1 + len(_FIXED_KEYWORDS)]))
            for t, v in zip(tags, row[1 + len(_FIXED_KEYWORDS):]):
                if isinstance(v, str) and pa.types.is_list(scan_schema([t]).field(t).type):
                    v = json.loads(v)
                elif isinstance(v, bytes):
                    v = v.hex()
                attrs[t] = v
            con.execute(f"UPDATE {table} SET attributes=? WHERE {key}=?",
                        (json.dumps(attrs, sort_keys=True, ensure_ascii=False), row[0]))
        for t in tags:
            con.execute(f'ALTER TABLE {table} DROP COLUMN "{t}"')
    con.execute("PRAGMA user_version=2")
    con.execute("COMMIT")
    con.close()


def test_schema_v2_is_migrated(tree, tmp_path):
    """A version-2 index (the tags in an ``attributes`` JSON object), with duplicates,
    conflicts and failures in it, is upgraded in place to a column per tag, then ends exactly
    like an index built by this version: same rows, same values, same column order.  Until
    then ``export`` reads it as it is."""
    root, _ = tree
    part = tmp_path / "part"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for p in files[: len(files) // 2]:
        q = part / p.relative_to(root)
        q.parent.mkdir(parents=True, exist_ok=True)
        q.write_bytes(p.read_bytes())
        os.utime(q, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns))
    old_db, new_db = str(tmp_path / "old.sqlite"), str(tmp_path / "new.sqlite")
    ingest([part], old_db, workers=2, batch_size=50)
    export_parquet(old_db, tmp_path / "before.parquet")
    _as_version_2(old_db)
    con = sqlite3.connect(old_db)
    assert con.execute("SELECT count(*) FROM instance_copies WHERE attributes IS NOT NULL"
                       ).fetchone()[0] > 0
    con.close()
    export_parquet(old_db, tmp_path / "v2.parquet")
    assert pq.read_table(tmp_path / "v2.parquet").equals(pq.read_table(tmp_path / "before.parquet"))
    for p in files[len(files) // 2:]:
        q = part / p.relative_to(root)
        q.parent.mkdir(parents=True, exist_ok=True)
        q.write_bytes(p.read_bytes())
        os.utime(q, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns))
    ingest([part], old_db, workers=2, batch_size=50)
    ingest([part], new_db, workers=2, batch_size=50)
    old, new = _full_dump(old_db), _full_dump(new_db)
    assert old == new
    assert len(old["instances"]) > 100 and old["instance_copies"]
    con = sqlite3.connect(old_db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 3
    assert "attributes" not in {r[1] for r in con.execute("PRAGMA table_info(instances)")}
    con.close()
    # a damaged attributes text fails the migration, naming the instance; nothing changes
    ingest([part], db := str(tmp_path / "bad.sqlite"), workers=1)
    _as_version_2(db)
    con = sqlite3.connect(db)
    sop = con.execute("SELECT sop_instance_uid FROM instances ORDER BY 1 LIMIT 1").fetchone()[0]
    con.execute("UPDATE instances SET attributes='[1]' WHERE sop_instance_uid=?", (sop,))
    con.commit()
    con.close()
    before = Path(db).read_bytes()
    with pytest.raises(sqlite3.DatabaseError, match=f"instance {sop}: attributes are not"):
        ingest([part], db, workers=1)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    con.close()
    assert Path(db).read_bytes() == before


def test_future_schema_version_is_refused(tmp_path):
    db = str(tmp_path / "future.sqlite")
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version=99")
    con.close()
    with pytest.raises(RuntimeError, match="version 99"):
        ingest([tmp_path], db, workers=1)


def test_overlapping_inputs_count_each_file_once(tmp_path):
    """A directory and a file inside it (either order), or a directory twice: each file is
    seen once and ends in exactly one state."""
    root = tmp_path / "d"
    (root / "sub").mkdir(parents=True)
    for k in range(6):
        (root / ("sub" if k % 2 else "") / f"IM{k}.dcm").write_bytes(
            _tiny_bytes(k, study=0, series=0))
    one = root / "IM0.dcm"
    for n, paths in enumerate(([root, one], [one, root], [root, root / "sub", root],
                               [root / "sub", str(root) + "/../d"])):
        r = ingest([str(p) for p in paths], str(tmp_path / f"i{n}.sqlite"), workers=1)
        c = r.counts()
        assert c["files"] == 6 and c["indexed"] == 6, (paths, c)


def _full_dump(db):
    """Every row of the index but times (``failures.time``, ``batches``, ``meta``)."""
    con = sqlite3.connect(db)
    try:
        out = {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
               for t in ("files", "instances", "instance_copies", "series", "studies",
                         "patients")}
        out["failures"] = con.execute("SELECT path, display, error_type, message, offset, tag"
                                      " FROM failures ORDER BY 1").fetchall()
    finally:
        con.close()
    return out


def test_c_writer_matches_python_binding(tree, tmp_path, monkeypatch):
    """The rows the C writer binds from the Arrow columns equal those the sqlite3 module binds,
    on a first ingest and on a second one whose new files collide with indexed UIDs (earlier
    batches and the same batch), in small and large batches."""
    from fastdicom import _rows
    if not _rows.sqlite_available():
        if os.environ.get("CI") == "true":
            pytest.fail("the C writer is not available on this interpreter")
        pytest.skip("the C writer is not available on this interpreter")
    root, info = tree
    extra = tmp_path / "extra"
    extra.mkdir()
    # an identical copy and a conflicting copy of indexed instances, a path that sorts first
    # (it takes the UID over), and two new files sharing one new UID
    (extra / "0first.dcm").write_bytes(_tiny_bytes(5, study=0, series=0, instance_number=7))
    (extra / "dup.dcm").write_bytes(info["valid"][6].read_bytes())
    (extra / "twin_a.dcm").write_bytes(_tiny_bytes(90001, study=9, series=1))
    (extra / "twin_b.dcm").write_bytes(_tiny_bytes(90001, study=9, series=1,
                                                   instance_number=3))
    (extra / "new.dcm").write_bytes(_tiny_bytes(90002, study=9, series=1))
    dumps = {}
    for force in (False, True):
        monkeypatch.setattr(_rows, "FORCE_PYTHON", force)
        for bs in (37, 1000):
            db = str(tmp_path / f"i{int(force)}_{bs}.sqlite")
            first = ingest([root], db, workers=2, batch_size=bs)
            second = ingest([root, extra], db, workers=2, batch_size=bs)
            dumps[force, bs] = (_full_dump(db), first.as_dict(), second.as_dict())
    ref = dumps[True, 1000]
    for k, (d, c1, c2) in dumps.items():
        assert d == ref[0], k
        for a, b in ((c1, ref[1]), (c2, ref[2])):
            assert {s: a[s] for s in STATES} == {s: b[s] for s in STATES}, k
    d, _, counts = ref
    assert counts["duplicate"] >= 1 and counts["conflict"] >= 1
    state = {Path(os.fsdecode(r[0])): r[4] for r in d["files"]}
    # the extra folder's paths sort before the tree's: they win their UIDs
    assert str(extra) < str(root)
    assert (state[extra / "0first.dcm"], state[info["valid"][5]]) == ("indexed", "conflict")
    assert (state[extra / "dup.dcm"], state[info["valid"][6]]) == ("indexed", "duplicate")
    assert (state[extra / "twin_a.dcm"], state[extra / "twin_b.dcm"]) == ("indexed",
                                                                          "conflict")
    assert state[extra / "new.dcm"] == "indexed"


_C_TAGS = ("T", "L", "B", "I", "U", "F")


def _c_table(db):
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("CREATE TABLE instances(sop_instance_uid TEXT PRIMARY KEY, path BLOB,"
                " display_path TEXT, size INTEGER, mtime_ns INTEGER, sop_class_uid TEXT,"
                " series_instance_uid TEXT, study_instance_uid TEXT, transfer_syntax_uid TEXT,"
                " rows INTEGER, columns INTEGER, frames INTEGER, pixel_offset INTEGER,"
                " pixel_length INTEGER, T TEXT, L TEXT, B BLOB, I INTEGER, U, F REAL)")
    con.execute("CREATE TABLE files(path BLOB PRIMARY KEY, display TEXT, size INTEGER,"
                " mtime_ns INTEGER, state TEXT, reason TEXT, sop_instance_uid TEXT,"
                " sha256 BLOB)")
    return con


def _c_sql(tags=_C_TAGS):
    from fastdicom.ingest import _ROW_COLS
    cols = _ROW_COLS + tuple(tags)
    return ("INSERT INTO instances(" + ", ".join(cols) + ") VALUES(" + ",".join("?" * len(cols))
            + ") ON CONFLICT(sop_instance_uid) DO NOTHING")


def test_sqlite_insert_new_binds_arrow_values_exactly(tmp_path):
    """Hand-built Arrow columns (nulls, sliced arrays, non-ASCII text, a repeated UID; tag
    columns of every type the writer takes: text, JSON cells, blobs, int64, uint64 past
    2**63 - 1, float64) come back from SQLite value for value; bad inputs are refused before
    anything is written."""
    import numpy as np
    import pyarrow as pa
    from fastdicom import _rows
    from fastdicom.ingest import _C_LEDGER_SQL
    if not _rows.sqlite_available():
        pytest.skip("the C writer is not available on this interpreter")
    db = str(tmp_path / "c.sqlite")
    con = _c_table(db)
    sql = _c_sql()
    assert _rows.sqlite_connection_ok(con, db)
    assert not _rows.sqlite_connection_ok(con, str(tmp_path / "other.sqlite"))
    assert not _rows.sqlite_connection_ok(object(), db)
    n = 4
    ints = lambda *v: pa.array(list(v), pa.int64())
    uids = pa.array(["x", "1.2", "1.3", "1.4", "1.2"]).slice(1)      # sliced: offset 1
    cols = [ints(10, None, 30, 40), ints(1, 2, 3, -(2 ** 63)), uids,
            pa.array(["c", None, "c", "c"]), pa.array(["s1", "s1", "s2", "s2"]),
            pa.array(["st", "st", "st", "st"]), pa.array(["1.2.840.10008.1.2.1"] * n),
            ints(512, 0, None, 1), ints(512, 0, None, 1), ints(1, 1, 1, 1),
            ints(100, None, 300, 400), ints(2 ** 40, 0, 3, 4),
            pa.array(["/d/a", "/d/Müller", "/d/c", "/d/d"])]
    lists = pa.array([None, [1.5, None], [], [2.0]], pa.list_(pa.float64()))
    tags = [pa.array(["x", "Jürgen", None, "y", "z"]).slice(1),
            _rows.json_cells(lists),
            pa.array([b"\x00\xff", None, b"", b"a"], pa.binary()),
            ints(-5, None, 2 ** 63 - 1, 0),
            pa.array([0, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1], pa.uint64()),
            pa.array([1.25, None, float("inf"), -0.0], pa.float64())]
    arrays = cols + tags
    keys = [b"/d/a", "/d/Müller".encode(), b"/d/c\xff", b"/d/d"]
    con.execute("BEGIN")
    out = _rows.sqlite_insert_new(con, db, sql, _C_LEDGER_SQL, keys, arrays,
                                  np.arange(n, dtype=np.int64))
    con.execute("COMMIT")
    # row 3 repeats the UID of row 0: not written, anywhere
    assert out.tolist() == [1, 1, 1, 0]
    got = con.execute("SELECT * FROM instances ORDER BY rowid").fetchall()
    assert got == [
        ("1.2", b"/d/a", "/d/a", 10, 1, "c", "s1", "st", "1.2.840.10008.1.2.1", 512, 512, 1,
         100, 2 ** 40, "Jürgen", None, b"\x00\xff", -5, 0, 1.25),
        ("1.3", "/d/Müller".encode(), "/d/Müller", None, 2, None, "s1", "st",
         "1.2.840.10008.1.2.1", 0, 0, 1, None, 0, None, "[1.5, null]", None, None,
         2 ** 63 - 1, None),
        ("1.4", b"/d/c\xff", "/d/c", 30, 3, "c", "s2", "st", "1.2.840.10008.1.2.1", None,
         None, 1, 300, 3, "y", "[]", b"", 2 ** 63 - 1, str(2 ** 63), float("inf"))]
    assert con.execute("SELECT typeof(U) FROM instances ORDER BY rowid").fetchall() == [
        ("integer",), ("integer",), ("text",)]
    assert con.execute("SELECT path, display, size, mtime_ns, state, reason, sop_instance_uid,"
                       " sha256 FROM files ORDER BY path").fetchall() == [
        ("/d/Müller".encode(), "/d/Müller", None, 2, "indexed", None, "1.3", None),
        (b"/d/a", "/d/a", 10, 1, "indexed", None, "1.2", None),
        (b"/d/c\xff", "/d/c", 30, 3, "indexed", None, "1.4", None)]
    # the largest uint64 through a new row
    con.execute("BEGIN")
    u = pa.array([None, None, None, 2 ** 64 - 1], pa.uint64())
    _rows.sqlite_insert_new(con, db, _c_sql(["U"]), _C_LEDGER_SQL,
                            [b"/e/a", b"/e/b", b"/e/c", b"/e/d"],
                            cols[:2] + [pa.array(["9.1", "9.2", "9.3", "9.4"])] + cols[3:] + [u],
                            np.array([3], np.int64))
    con.execute("COMMIT")
    assert con.execute("SELECT U FROM instances WHERE sop_instance_uid='9.4'").fetchone() == (
        str(2 ** 64 - 1),)
    rows = np.arange(n, dtype=np.int64)
    before = con.total_changes
    with pytest.raises(IndexError):
        _rows.sqlite_insert_new(con, db, sql, _C_LEDGER_SQL, keys, arrays,
                                np.array([0, n], np.int64))
    with pytest.raises(TypeError):       # a fixed column of another type
        _rows.sqlite_insert_new(con, db, sql, _C_LEDGER_SQL, keys,
                                cols[:7] + [pa.array(["1"] * n)] + cols[8:] + tags, rows)
    with pytest.raises(TypeError):       # a list column (the caller makes its JSON cells)
        _rows.sqlite_insert_new(con, db, sql, _C_LEDGER_SQL, keys,
                                cols + tags[:1] + [lists] + tags[2:], rows)
    with pytest.raises(TypeError):       # keys must be bytes
        _rows.sqlite_insert_new(con, db, sql, _C_LEDGER_SQL,
                                [k.decode("latin-1") for k in keys], arrays, rows)
    with pytest.raises(TypeError):       # lengths disagree
        _rows.sqlite_insert_new(con, db, sql, _C_LEDGER_SQL, keys[:2], arrays, rows[:2])
    with pytest.raises(ValueError):      # fewer columns than the fixed ones
        _rows.sqlite_insert_new(con, db, sql, _C_LEDGER_SQL, keys, cols[:12], rows)
    with pytest.raises(sqlite3.OperationalError):    # more columns than the statement takes
        _rows.sqlite_insert_new(con, db, _c_sql(_C_TAGS[:3]), _C_LEDGER_SQL, keys, arrays,
                                rows)
    with pytest.raises(RuntimeError):    # not the connection of that file
        _rows.sqlite_insert_new(con, str(tmp_path / "other.sqlite"), sql, _C_LEDGER_SQL,
                                keys, arrays, rows)
    with pytest.raises(TypeError):
        _rows.sqlite_insert_new(object(), db, sql, _C_LEDGER_SQL, keys, arrays, rows)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        _rows.sqlite_insert_new(con, db, sql.replace("instances", "nope"), _C_LEDGER_SQL,
                                keys, arrays, rows)
    assert con.total_changes == before
    con.close()
    with pytest.raises((ValueError, sqlite3.ProgrammingError)):
        _rows.sqlite_insert_new(con, db, sql, _C_LEDGER_SQL, keys, arrays, rows)


def test_wal_stays_bounded_when_checkpoints_lag(tree, tmp_path, monkeypatch):
    """Checkpoints run beside the writer; when they lag (slowed down here), the writer waits
    for them once the WAL passes its limit, so the WAL starts over instead of growing with
    the job -- and the index is the same."""
    import fastdicom.ingest as I
    root, _ = tree
    limit = 256 << 10
    monkeypatch.setattr(I, "_WAL_LIMIT", limit)
    slow = I._Checkpointer._checkpoint

    def lagging(self):
        time.sleep(0.05)
        slow(self)
    monkeypatch.setattr(I._Checkpointer, "_checkpoint", lagging)
    sizes = []
    poke = I._Checkpointer.poke

    def record(self):
        sizes.append(os.path.getsize(self.wal))
        poke(self)
    monkeypatch.setattr(I._Checkpointer, "poke", record)
    db = str(tmp_path / "w.sqlite")
    r = ingest([root], db, workers=1, batch_size=40)
    assert r.batches >= 40 and len(sizes) == r.batches
    # the WAL file keeps its high-water mark when SQLite starts it over: that mark stays
    # within the limit plus the commit that crossed it (a 40-file commit writes < 1 MiB of
    # pages here); without the wait it passes 15 MiB on this tree
    assert max(sizes) <= limit + (1 << 20)
    assert _full_dump(db) == _full_dump(_ref_index(root, tmp_path))


def _ref_index(root, tmp_path):
    db = str(tmp_path / "ref.sqlite")
    ingest([root], db, workers=1, batch_size=40)
    return db


def test_relative_db_path_uses_the_c_writer(tmp_path, monkeypatch):
    """A database named relative to the working directory still gets the C writer (its
    connection is matched by absolute path), and the rows are complete."""
    import fastdicom.ingest as I
    from fastdicom import _rows
    if not _rows.sqlite_available():
        pytest.skip("the C writer is not available on this interpreter")
    src = tmp_path / "src"
    src.mkdir()
    for k in range(30):
        (src / f"f{k}.dcm").write_bytes(_tiny_bytes(k, study=1, series=1))
    calls = []
    real = _rows.sqlite_insert_new

    def spy(*a, **k):
        calls.append(len(a[-1]))
        return real(*a, **k)
    monkeypatch.setattr(I._rows, "sqlite_insert_new", spy)
    monkeypatch.chdir(tmp_path)
    r = ingest(["src"], "rel.sqlite", workers=1)
    assert r.indexed == 30 and sum(calls) == 30
    con = sqlite3.connect(tmp_path / "rel.sqlite")
    assert con.execute("SELECT count(*) FROM instances").fetchone()[0] == 30
    assert con.execute("SELECT count(*) FROM files WHERE state='indexed'").fetchone()[0] == 30
    con.close()


def test_c_writer_matches_python_binding_on_corpus(tmp_path, monkeypatch):
    """The conformance corpus (real files from other projects: many syntaxes, character sets,
    odd UIDs, duplicates, broken files) gives the same index through the C writer as through
    the sqlite3 module's binding, in one job and in a job over two halves."""
    from fastdicom import _rows
    from _data import require_shared
    if not _rows.sqlite_available():
        pytest.skip("the C writer is not available on this interpreter")
    corpus = require_shared() / "corpus"
    files = sorted(str(p) for p in corpus.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")
    dumps = []
    for force in (False, True):
        monkeypatch.setattr(_rows, "FORCE_PYTHON", force)
        db = str(tmp_path / f"c{int(force)}.sqlite")
        half = len(files) // 2
        ingest(files[half:], db, workers=2, batch_size=64)
        r = ingest(files, db, workers=2, batch_size=64)
        dumps.append((_full_dump(db), {s: getattr(r, s) for s in STATES}))
    assert dumps[0] == dumps[1]
    counts = dumps[0][1]
    # the second job re-reads only the first half: the indexed files of the second half are
    # unchanged (its failed and duplicate files keep their states)
    assert sum(counts.values()) == len(files) and counts["unchanged"] > 100
    assert len(dumps[0][0]["instances"]) > 300


def test_absolute_equals_abspath():
    """The pruning's shortcut for paths that are already absolute and normal gives exactly
    os.path.abspath, for any mix of slashes, dots and names."""
    from hypothesis import given, settings, strategies as st
    from fastdicom.ingest import _absolute

    @settings(max_examples=3000, deadline=None)
    @given(st.text(alphabet="/.a", max_size=14))
    def check(p):
        assert _absolute(p) == os.path.abspath(p)
    check()


def test_c_writer_matches_python_binding_through_changes(tmp_path, monkeypatch):
    """Three jobs over a tree that changes between them -- files rewritten with a new UID or
    with other contents under the same UID, files deleted, new copies that sort first and
    last for indexed UIDs -- end in the same index through the C writer and through the
    sqlite3 module's binding (the same changes and the same mtimes on both trees)."""
    from fastdicom import _rows
    if not _rows.sqlite_available():
        pytest.skip("the C writer is not available on this interpreter")
    base = 1_700_000_000 * 10 ** 9
    dumps = []
    for force in (False, True):
        monkeypatch.setattr(_rows, "FORCE_PYTHON", force)
        root = tmp_path / f"tree{int(force)}"

        def put(p, data, stamp):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            os.utime(p, ns=(stamp, stamp))
        files = {}
        for k in range(240):
            files[k] = root / f"s{k % 3}" / f"f{k:04d}.dcm"
            put(files[k], _tiny_bytes(k, study=k % 2, series=k % 3), base)
        db = str(tmp_path / f"i{int(force)}.sqlite")
        states = [ingest([root], db, workers=2, batch_size=50).as_dict()]
        r = random.Random(11)          # the same changes on both trees
        for step in (1, 2):
            stamp = base + step * 10 ** 9
            for k in r.sample(sorted(files), 30):
                kind = r.randrange(4)
                p = files[k]
                if kind == 0:          # rewritten with a new UID
                    put(p, _tiny_bytes(10_000 + k + 1000 * step, study=1, series=1), stamp)
                elif kind == 1:        # other contents, same UID
                    put(p, _tiny_bytes(k, study=k % 2, series=k % 3,
                                       instance_number=500 + step), stamp)
                elif kind == 2:        # deleted
                    if p.exists():
                        p.unlink()
                else:                  # copies of the UID that sort first and last
                    data = p.read_bytes() if p.exists() else _tiny_bytes(k, study=0, series=0)
                    put(root / f"a{k}_{step}.dcm", data, stamp)
                    put(root / "s2" / f"z{k}_{step}.dcm",
                        _tiny_bytes(k, study=0, series=0, instance_number=7), stamp)
            states.append(ingest([root], db, workers=2, batch_size=50).as_dict())
        con = sqlite3.connect(db)
        con.execute("UPDATE failures SET time = 0")
        con.commit()
        con.close()
        # paths differ by the tree's folder: compare them relative to it
        text = repr(_full_dump(db)).replace(repr(os.fsencode(str(root)))[2:-1], "<root>")
        dumps.append((text.replace(str(root), "<root>"),
                      [{s: c[s] for s in STATES} for c in states]))
    assert dumps[0][1] == dumps[1][1]
    assert dumps[0][0] == dumps[1][0]
    final = dumps[0][1][-1]
    assert final["missing"] > 0 and final["conflict"] > 0 and final["duplicate"] > 0
    assert final["unchanged"] > 100 and final["indexed"] > 0


def test_force_reads_raw_data_sets_and_retries_only_what_it_changes(tmp_path):
    """Without ``force`` a raw data set (no preamble, no DICM) fails; a re-run with
    ``force`` (an unchanged tree) reads it again and indexes it, while text files it still
    refuses stay failed and are not read again by the next forced run."""
    root = tmp_path / "tree"
    root.mkdir()
    els = testing.ct_instance_elements(rows=8, columns=8, private=False)
    raw = root / "raw.dcm"
    testing.write_file(raw, els, transfer_syntax=testing.IMPLICIT_LE, preamble=None,
                       write_meta=False)
    ok = root / "ok.dcm"
    testing.write_file(ok, testing.ct_instance_elements(rows=8, columns=8, private=False,
                                                        study_seed="other", series_seed="o"))
    (root / "notes.txt").write_bytes(b"just text\n" * 20)
    db = tmp_path / "i.sqlite"
    r1 = ingest([root], db, progress=False)
    assert (r1.files, r1.indexed, r1.failed) == (3, 1, 2)
    r2 = ingest([root], db, progress=False)
    assert (r2.unchanged, r2.failed) == (1, 2)
    con = sqlite3.connect(db)
    before = dict(con.execute("SELECT display, time FROM failures"))
    con.close()
    r3 = ingest([root], db, progress=False, force=True)
    assert (r3.files, r3.unchanged, r3.indexed, r3.failed) == (3, 1, 1, 1), r3.counts()
    con = sqlite3.connect(db)
    uid = con.execute("SELECT sop_instance_uid FROM instances WHERE display_path=?",
                      (str(raw),)).fetchone()[0]
    import pydicom
    assert uid == str(pydicom.dcmread(raw, force=True).SOPInstanceUID)
    assert con.execute("SELECT state, reason FROM files WHERE display=?",
                       (str(raw),)).fetchone() == ("indexed", None)
    fails = dict(con.execute("SELECT display, time FROM failures"))
    assert list(fails) == [str(root / "notes.txt")]
    assert "first bytes" in con.execute("SELECT message FROM failures").fetchone()[0]
    con.close()
    # the next forced run over the unchanged tree reads nothing again
    r4 = ingest([root], db, progress=False, force=True)
    assert (r4.unchanged, r4.failed, r4.indexed) == (2, 1, 0)
    con = sqlite3.connect(db)
    assert dict(con.execute("SELECT display, time FROM failures")) == fails
    con.close()
    assert before[str(root / "notes.txt")] != fails[str(root / "notes.txt")]
    # and from the command line
    db2 = tmp_path / "j.sqlite"
    out = subprocess.run([sys.executable, "-m", "fastdicom", "ingest", str(root), "--db",
                          str(db2), "--force", "--json"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert (counts["indexed"], counts["failed"]) == (2, 1)


def test_long_list_of_paths_matches_the_walk(tmp_path):
    """A long list of paths is taken as files without an lstat each; the scan finds the
    directories (walked then), symlinks, fifos and missing paths among them.  The index
    equals that of walking the tree, in any order of the list, and a re-run changes nothing."""
    root = tmp_path / "tree"
    root.mkdir()
    info = make_tree(root, n_valid=300, seed=3)
    os.mkfifo(root / "a_fifo")
    os.symlink(root / "st00", root / "link_to_dir")
    (root / "empty_dir").mkdir()
    walked_db = str(tmp_path / "walked.sqlite")
    rw = ingest([str(root)], walked_db, workers=1, batch_size=64)
    listed = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if rel[0].startswith("junk") or rel[0] == "st00" and "loop" in rel:
            continue                      # junk dirs are listed as directories
        if rel[0] == "zz_copies" and p.name.startswith("dup00"):
            continue                      # listed as a glob
        if p.is_symlink() or not p.is_dir() or p.name == "empty_dir":
            listed.append(str(p))
    listed += [str(root / f"junk{s}") for s in range(6)]
    # a glob, and a file it matches listed too: each file is seen once
    listed += [str(root / "st00" / "loop"), str(root / "zz_copies" / "dup00*.dcm"),
               str(root / "zz_copies" / "dup001.dcm")]
    missing = str(root / "not_there.dcm")
    listed.append(missing)
    random.Random(5).shuffle(listed)
    assert len(listed) > 64
    for workers in (1, 2, 3):      # 3: two scanning threads
        db = str(tmp_path / f"listed{workers}.sqlite")
        r = ingest(listed, db, workers=workers, batch_size=64)
        c, cw = r.counts(), rw.counts()
        assert sum(c[s] for s in STATES) == c["files"]
        assert c["files"] == cw["files"] + 1 and c["failed"] == cw["failed"] + 1, (c, cw)
        for s in ("indexed", "duplicate", "conflict", "skipped", "unchanged", "missing"):
            assert c[s] == cw[s], (s, c, cw)
        assert cw["skipped"] == 4     # links to a file and a dir, the loop, the fifo
        got = _full_dump(db)
        key = os.fsencode(missing)
        row = [f for f in got["files"] if f[0] == key]
        assert len(row) == 1 and row[0][4] == "failed", row
        fail = [f for f in got["failures"] if f[0] == key]
        assert len(fail) == 1 and fail[0][2] == "FileNotFoundError", fail
        got["files"] = [f for f in got["files"] if f[0] != key]
        got["failures"] = [f for f in got["failures"] if f[0] != key]
        assert got == _full_dump(walked_db)
        before = _full_dump(db)
        r2 = ingest(listed, db, workers=workers, batch_size=64)
        c2 = r2.counts()
        assert c2["indexed"] == 0 and c2["files"] == c["files"]
        assert c2["unchanged"] == c["indexed"] and c2["skipped"] == c["skipped"]
        assert _full_dump(db) == before
    # the counts are the final states: a copy of an indexed file whose path sorts first,
    # listed last, outdoes the original, which was counted unchanged when it was seen
    first = root / "0_copy.dcm"
    original = info["valid"][7]
    first.write_bytes(original.read_bytes())
    r3 = ingest(listed + [str(first)], db, workers=1, batch_size=64)
    c3 = r3.counts()
    assert (c3["indexed"], c3["duplicate"], c3["unchanged"]) == \
        (1, c["duplicate"] + 1, c["indexed"] - 1), c3
    con = sqlite3.connect(db)
    states = dict(con.execute("SELECT path, state FROM files").fetchall())
    con.close()
    assert states[os.fsencode(str(first))] == "indexed"
    assert states[os.fsencode(str(original))] == "duplicate"
    counted = {s: n for s, n in c3.items() if s in STATES and n}
    counted["indexed"] += counted.pop("unchanged")
    assert counted == dict(collections.Counter(states.values()))


def test_paths_are_stored_absolute(tmp_path, monkeypatch):
    """The same files ingested through a relative path, then an absolute one, then from
    another working directory: one ledger row each, with its absolute path, unchanged on the
    later runs."""
    data = tmp_path / "data"
    paths = testing.write_ct_series(data / "s1", 3, 16, 16, seed=1)
    db = str(tmp_path / "i.sqlite")
    monkeypatch.chdir(tmp_path)
    r1 = ingest(["data"], db, workers=1)
    assert r1.indexed == 3
    r2 = ingest([str(data)], db, workers=1)
    assert (r2.unchanged, r2.indexed, r2.duplicate) == (3, 0, 0)
    monkeypatch.chdir(data / "s1")
    r3 = ingest(["../s1/" + Path(p).name for p in paths] + ["."], db, workers=1)
    assert (r3.files, r3.unchanged) == (3, 3)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT path, display, state FROM files ORDER BY path").fetchall()
    inst = [p for (p,) in con.execute("SELECT path FROM instances ORDER BY path")]
    con.close()
    want = sorted(os.fsencode(os.path.abspath(p)) for p in paths)
    assert [r[0] for r in rows] == want and inst == want
    assert {r[2] for r in rows} == {"indexed"}


def test_own_database_and_parquet_in_the_tree_are_not_inputs(tmp_path, monkeypatch):
    """``fastdicom ingest . --db index.sqlite --parquet parts``: the index, its WAL, shared
    memory and lock files and the Parquet parts are the job's own, not failed inputs."""
    testing.write_ct_series(tmp_path / "s1", 4, 16, 16, seed=2)
    (tmp_path / "notes.txt").write_text("not DICOM")
    monkeypatch.chdir(tmp_path)
    for run in range(2):
        r = ingest(["."], "index.sqlite", parquet="parts", workers=1)
        c = r.counts()
        assert c["files"] == 5 and c["failed"] == 1, c
        assert c["indexed" if run == 0 else "unchanged"] == 4, c
    assert os.path.exists("index.sqlite.lock") and os.listdir("parts")
    con = sqlite3.connect("index.sqlite")
    names = sorted(os.path.basename(os.fsdecode(p)) for (p,) in con.execute(
        "SELECT path FROM files"))
    con.close()
    assert names == ["IM00000.dcm", "IM00001.dcm", "IM00002.dcm", "IM00003.dcm", "notes.txt"]


def test_cli_files_from(tmp_path):
    """``--files-from FILE`` (lines, or NUL-separated as ``find -print0`` writes them, or
    ``-`` for stdin) ingests the listed paths, a non-UTF-8 name included; with neither PATH
    nor ``--files-from`` the usage error exits 2."""
    root = tmp_path / "t"
    paths = [os.fsencode(p) for p in testing.write_ct_series(root, 4, 16, 16, seed=4)]
    odd = os.fsencode(str(root)) + b"/caf\xe9 line.dcm"
    with open(odd, "wb") as f:
        f.write(_tiny_bytes(1, study=9, series=9))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(args, stdin=None):
        return subprocess.run([sys.executable, "-m", "fastdicom", "ingest", *args],
                              input=stdin, capture_output=True, env=env, cwd=str(ROOT))
    lines = b"\n".join(paths[:2]) + b"\n\n"
    (tmp_path / "list.txt").write_bytes(lines)
    (tmp_path / "list0").write_bytes(b"\0".join(paths[2:] + [odd]) + b"\0")
    out = run(["--db", str(tmp_path / "a.sqlite"), "--json",
               "--files-from", str(tmp_path / "list.txt")])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["indexed"] == 2
    out = run(["--db", str(tmp_path / "a.sqlite"), "--json", "--files-from", "-"],
              stdin=(tmp_path / "list0").read_bytes())
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout.splitlines()[-1])
    assert (c["files"], c["indexed"]) == (3, 3), c
    con = sqlite3.connect(tmp_path / "a.sqlite")
    keys = sorted(p for (p,) in con.execute("SELECT path FROM instances"))
    con.close()
    assert keys == sorted(paths + [odd])
    assert run(["--db", str(tmp_path / "b.sqlite")]).returncode == 2
    assert run(["--db", str(tmp_path / "b.sqlite"), "--files-from",
                str(tmp_path / "nope")]).returncode == 2
    for bad in (["--workers", "-1"], ["--batch-size", "0"]):
        out = run(["--db", str(tmp_path / "b.sqlite"), str(tmp_path)] + bad)
        assert out.returncode == 2 and b"at least 1" in out.stderr, bad
    assert not (tmp_path / "b.sqlite").exists()


def test_ingest_tables_matches_the_walk(tree, tmp_path):
    """Rows scanned elsewhere and written to Parquet parts index to the same index as the
    walk (failures with their offset and tag); a part given twice counts once; a re-run, or
    a run after the walk, finds everything unchanged; the CLI does the same with
    --from-parquet.  Rows without error_offset/error_tag columns (written before they
    existed) give failures without offset or tag."""
    from fastdicom.batch import scan_batches
    from fastdicom.ingest import ingest_tables
    root, info = tree
    walked = str(tmp_path / "walked.sqlite")
    rw = ingest([root], walked, workers=1, batch_size=300)
    parts = tmp_path / "parts"
    parts.mkdir()
    for k, b in enumerate(scan_batches([str(root)], batch_size=400)):
        t = pa.Table.from_batches([b])
        if k == 1:   # as dask may write them: large strings, a column less, one more
            t = t.cast(pa.schema([pa.field(f.name, pa.large_string())
                                  if f.type == pa.string() else f for f in t.schema]))
            t = t.drop_columns(["BodyPartExamined"]).append_column(
                "__null_dask_index__", pa.array(range(t.num_rows)))
        pq.write_table(t, parts / f"part.{k}.parquet")
    (parts / "_metadata").write_bytes(b"not a part")
    db = str(tmp_path / "tables.sqlite")
    r = ingest_tables(parts, db, batch_size=250)
    assert r.counts() == rw.counts()
    assert _full_dump(db) == _full_dump(walked)
    assert any(f[4] is not None and f[5] is not None for f in _full_dump(db)["failures"])
    old_db = str(tmp_path / "old.sqlite")
    ingest_tables([pq.read_table(p).drop_columns(["error_offset", "error_tag"])
                   for p in sorted(parts.glob("*.parquet"))], old_db)

    def no_offsets(d):
        d["failures"] = [f[:4] for f in d["failures"]]
        return d
    assert no_offsets(_full_dump(old_db)) == no_offsets(_full_dump(walked))
    assert all(f[4] is None and f[5] is None for f in _full_dump(old_db)["failures"])
    again = ingest_tables([pq.read_table(p) for p in sorted(parts.glob("*.parquet"))] * 2, db)
    c = again.counts()
    assert (c["files"], c["indexed"], c["unchanged"]) == (rw.files, 0, rw.indexed), c
    after_walk = ingest_tables(parts, walked).counts()
    assert (after_walk["indexed"], after_walk["unchanged"]) == (0, rw.indexed)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "fastdicom", "ingest", "--from-parquet",
                          str(parts), "--db", str(tmp_path / "cli.sqlite"), "--json"],
                         capture_output=True, text=True, env=env, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == rw.counts()
    bad = subprocess.run([sys.executable, "-m", "fastdicom", "ingest", "--from-parquet",
                          str(parts), str(root), "--db", str(tmp_path / "x.sqlite")],
                         capture_output=True, text=True, env=env, cwd=str(ROOT))
    assert bad.returncode == 2
    with pytest.raises(ValueError, match="no 'path' column"):
        ingest_tables(pa.table({"SOPInstanceUID": ["1.2.3"]}), str(tmp_path / "y.sqlite"))


def test_prefetch_order_errors_and_early_exit():
    """The reader thread of ``ingest_tables`` hands over items in order, raises the
    iterator's exception where its item would have come, and stops when left early."""
    from fastdicom.ingest import _Prefetch

    def items(n, fail_at=None, log=None):
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"bad part {i}")
            if log is not None:
                log.append(i)
            yield i

    with _Prefetch(items(50), depth=2) as p:
        assert list(p) == list(range(50))
    got = []
    with pytest.raises(ValueError, match="bad part 7"):
        with _Prefetch(items(20, fail_at=7)) as p:
            for x in p:
                got.append(x)
    assert got == list(range(7))
    produced: list = []
    gen = items(10_000, log=produced)
    with _Prefetch(gen, depth=2) as p:
        for x in p:
            if x == 3:
                break
    assert not p._thread.is_alive()
    assert len(produced) <= 3 + 1 + 2 + 1      # the items taken, those queued, one more
    assert gen.gi_frame is None                  # closed


def test_disk_full_reports_sqlite_error_and_resumes(tree, tmp_path, monkeypatch):
    """A database that cannot grow (SQLITE_FULL, as on a full disk) ends the job with that
    error -- not with a failed ROLLBACK of the transaction SQLite has already rolled back --
    and a re-run once there is room ends with the index of an uninterrupted job."""
    import fastdicom.ingest as mod
    root, _ = tree
    ref = str(tmp_path / "ref.sqlite")
    ingest([root], ref, batch_size=100)
    real = mod._connect

    def capped(db):
        con = real(db)
        con.execute("PRAGMA max_page_count=60")      # 60 pages of 16 KiB: ~400 instances
        return con
    monkeypatch.setattr(mod, "_connect", capped)
    db = str(tmp_path / "full.sqlite")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        ingest([root], db, batch_size=100)
    monkeypatch.undo()
    con = sqlite3.connect(db)
    n = con.execute("SELECT count(*) FROM files").fetchone()[0]
    con.close()
    assert 0 < n < len(_full_dump(ref)["files"])     # stopped mid-run, its batches kept
    r = ingest([root], db, batch_size=100)
    assert sum(r.counts()[s] for s in STATES) == r.files
    assert _full_dump(db) == _full_dump(ref)


def test_parquet_part_that_cannot_be_written(tree, tmp_path, monkeypatch):
    """A part whose write fails (ENOSPC) fails the job with that error, leaves no ``.tmp``
    behind, and the re-run writes every part."""
    import errno
    root, _ = tree
    parts = tmp_path / "parts"
    db = str(tmp_path / "p.sqlite")
    real = pq.write_table
    calls = []

    def failing(table, where, **kw):
        calls.append(1)
        if len(calls) == 3:
            where.write(b"PAR1 half a part")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, **kw)
    monkeypatch.setattr(pq, "write_table", failing)
    with pytest.raises(OSError, match=r"No space left on device: .*part-\d+\.parquet"):
        ingest([root], db, batch_size=300, parquet=str(parts))
    monkeypatch.undo()

    def committed():
        con = sqlite3.connect(db)
        try:
            return (con.execute("SELECT count(*) FROM instances").fetchone()[0],
                    {p for (p,) in con.execute("SELECT part FROM batches WHERE part NOT NULL")})
        finally:
            con.close()
    n_inst, named = committed()
    assert len(named) == 2 and set(os.listdir(parts)) == named    # no .tmp left
    r = ingest([root], db, batch_size=300, parquet=str(parts))
    assert r.files and r.indexed
    n_inst, named = committed()
    assert set(os.listdir(parts)) == named
    assert pq.read_table(parts).num_rows == n_inst


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_interrupted_stops_cleanly_and_resumes(tree, tmp_path, sig):
    """SIGINT or SIGTERM mid-run: no traceback, a JSON last line saying so, exit 130 / 143,
    no WAL left behind, and the same command then ends with the uninterrupted index."""
    root, _ = tree
    ref_db = str(tmp_path / "ref.sqlite")
    ingest([root], ref_db, batch_size=20)
    total = len(_full_dump(ref_db)["files"])
    db = str(tmp_path / "stopped.sqlite")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "fastdicom", "ingest", str(root), "--db", db,
           "--batch-size", "20", "-q"]
    landed = False
    for attempt in range(5):
        # (SIGINT back to its default in the child: a runner that starts the tests in the
        # background may ignore it, and Python then keeps it ignored)
        proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        before = _count(db)
        t_end = time.time() + 30
        while time.time() < t_end and proc.poll() is None and _count(db) <= before:
            time.sleep(0.002)
        proc.send_signal(sig)
        out, err = proc.communicate()
        if proc.returncode == 0:
            continue                     # finished before the signal
        assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
        assert "Traceback" not in err and "interrupted" in err
        last = json.loads(out.strip().splitlines()[-1])
        assert last["error"] == "interrupted" and last["signal"] == sig.name
        assert not os.path.exists(db + "-wal")
        if 0 < _count(db) < total:
            landed = True
            break
    assert landed, "no signal landed mid-run"
    done = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _full_dump(db) == _full_dump(ref_db)


def test_second_interrupt_waits_for_the_writers_batch(tree, tmp_path, monkeypatch):
    """Two Ctrl-C's in a row through the Python API (each raises KeyboardInterrupt): the
    first stops the job while the writer thread is in a batch, the second lands while the
    job waits for that batch.  In CPython 3.11 a ``Thread.join`` interrupted that way takes
    the thread for ended, so the next join returned at once and the job committed the shared
    transaction under the writer, half a batch in it.  Now it waits: the batches kept are
    whole, and a re-run ends with the uninterrupted index."""
    import threading
    import fastdicom.ingest as I
    root, _ = tree
    ref_db = str(tmp_path / "ref.sqlite")
    ingest([root], ref_db)
    total = len(_full_dump(ref_db)["files"])
    real = I._insert_new_c
    calls = []
    main_id = threading.main_thread().ident

    def insert_then_interrupts(*a, **k):
        out = real(*a, **k)         # this batch's new rows, in the open transaction
        calls.append(1)
        if len(calls) == 2:
            for pause in (0.3, 0.6):
                signal.pthread_kill(main_id, signal.SIGUSR1)
                time.sleep(pause)
        return out

    def interrupt(signum, frame):
        raise KeyboardInterrupt
    monkeypatch.setattr(I, "_insert_new_c", insert_then_interrupts)
    old = signal.signal(signal.SIGUSR1, interrupt)
    db = str(tmp_path / "i.sqlite")
    try:
        with pytest.raises(KeyboardInterrupt):
            ingest([root], db, workers=2)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert len(calls) == 2
    assert not os.path.exists(db + "-wal")
    assert 0 < _count(db) < total
    monkeypatch.undo()
    assert ingest([root], db).files == total
    assert _full_dump(db) == _full_dump(ref_db)


def test_a_job_run_while_handling_ctrl_c_keeps_its_own_errors(tmp_path):
    """A job started from an ``except KeyboardInterrupt`` block (say, to index what is
    there before exiting) fails with its own error, not with that earlier interrupt."""
    d = tmp_path / "tree"
    testing.write_ct_series(d, 2, 8, 8, seed=3)
    (tmp_path / "dir.sqlite").mkdir()
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        with pytest.raises(IsADirectoryError):
            ingest([d], str(tmp_path / "dir.sqlite"))
        assert ingest([d], str(tmp_path / "i.sqlite")).indexed == 2


def _stop_in_a_futures_wait(monkeypatch, stop, at_batch=3):
    """At the ``at_batch``-th batch, the calling thread waits on a Future that ``stop()``
    hits as :func:`future_stopped_after_release` says."""
    import fastdicom.ingest as I
    real_collect = I._collect
    calls = []

    def collect(prep, layout):
        calls.append(1)
        if len(calls) == at_batch:
            future_stopped_after_release(stop).result()
        return real_collect(prep, layout)
    monkeypatch.setattr(I, "_collect", collect)
    return calls


def test_stop_signal_in_a_futures_wait_still_stops_the_job(tree, tmp_path, monkeypatch,
                                                           capsys):
    """A SIGINT / SIGTERM landing in ``Future.result`` just after its condition released its
    lock: CPython raises RuntimeError("cannot release un-acquired lock") there, with the
    signal's exception as its context (CI saw ``fastdicom ingest`` exit 1, "fatal", on a
    SIGTERM).  ``ingest`` raises the signal's own exception, the command exits 143 with its
    interrupted JSON line, and a re-run ends with the uninterrupted index."""
    from fastdicom.cli import main
    root, _ = tree
    ref_db = str(tmp_path / "ref.sqlite")
    ingest([root], ref_db, batch_size=20)
    total = len(_full_dump(ref_db)["files"])

    def interrupt():
        raise KeyboardInterrupt

    # the standard library's behaviour this guards against
    with pytest.raises(BaseException) as info:
        future_stopped_after_release(interrupt).result()
    assert info.type is KeyboardInterrupt or (
        info.type is RuntimeError and isinstance(info.value.__context__, KeyboardInterrupt))

    db = str(tmp_path / "api.sqlite")
    calls = _stop_in_a_futures_wait(monkeypatch, interrupt)
    with pytest.raises(KeyboardInterrupt):
        ingest([root], db, batch_size=20, workers=2)
    assert not os.path.exists(db + "-wal")      # (before _count: a reader may make one)
    assert len(calls) == 3 and 0 < _count(db) < total

    db2 = str(tmp_path / "cli.sqlite")
    calls = _stop_in_a_futures_wait(monkeypatch, lambda: signal.raise_signal(signal.SIGTERM))
    old = signal.getsignal(signal.SIGTERM)
    code = main(["ingest", str(root), "--db", db2, "--batch-size", "20", "-q"])
    assert signal.getsignal(signal.SIGTERM) is old
    out, err = capsys.readouterr()
    assert code == 143, err
    assert json.loads(out.strip().splitlines()[-1])["signal"] == "SIGTERM"
    assert "fatal" not in err and "interrupted" in err
    assert not os.path.exists(db2 + "-wal")
    assert len(calls) == 3 and 0 < _count(db2) < total
    monkeypatch.undo()
    for d in (db, db2):
        assert ingest([root], d, batch_size=20).files == total
        assert _full_dump(d) == _full_dump(ref_db)


# a module whose import sends the process a signal, as a script may at any moment
_SIGNAL_ON_IMPORT = """
import os, signal, sys
class _Hook:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["SIGNAL_ON_IMPORT"]:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL_NAME"]))
        return None
sys.meta_path.insert(0, _Hook())
"""


@pytest.mark.parametrize("module,sig", [("numpy", "SIGTERM"), ("pyarrow", "SIGINT"),
                                        ("fastdicom.ingest", "SIGTERM")])
def test_cli_signal_during_start_up_still_ends_with_json(tmp_path, module, sig):
    """A signal while ``fastdicom ingest`` imports numpy and pyarrow (its first ~0.4 s, before
    the job's own handlers): the process was killed with no JSON line.  Now: the interrupted
    JSON line, exit 130 / 143, no index created.  ``python -m fastdicom`` and the console
    script (when installed) both; the signal comes from a ``sitecustomize`` import hook."""
    root = tmp_path / "t"
    testing.write_ct_series(root, 3, 8, 8, seed=5)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SIGNAL_ON_IMPORT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)]),
           "SIGNAL_ON_IMPORT": module, "SIGNAL_NAME": sig}
    script = Path(sys.executable).parent / "fastdicom"
    starts = [[sys.executable, "-m", "fastdicom", "-v"],
              [sys.executable, "-Bmfastdicom", "-vv"],
              [sys.executable, "-X", "dev", "-Bm", "fastdicom.__main__", "--verb"]] + \
        ([[str(script), "-v"]] if script.exists() else [])
    for k, start in enumerate(starts):
        db = tmp_path / f"{k}.sqlite"
        proc = subprocess.run(start + ["ingest", str(root), "--db", str(db)], env=env,
                              cwd=str(tmp_path), capture_output=True, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert proc.returncode == (130 if sig == "SIGINT" else 143), (start, proc.stderr)
        last = json.loads(proc.stdout.strip().splitlines()[-1])
        assert last["error"] == "interrupted" and last["signal"] == sig
        assert "Traceback" not in proc.stderr and "interrupted" in proc.stderr
        assert not db.exists()
    # the hook does not touch other programs, nor the other commands (the default action)
    proc = subprocess.run([sys.executable, "-m", "fastdicom", "dump", str(next(root.iterdir()))],
                          env={**env, "SIGNAL_ON_IMPORT": "numpy", "SIGNAL_NAME": "SIGTERM"},
                          cwd=str(tmp_path), capture_output=True, text=True)
    assert proc.returncode == -signal.SIGTERM and not proc.stdout


def test_cli_json_line_is_out_before_the_interpreter_exits(tmp_path):
    """The JSON line was left in stdout's buffer (a pipe) until the interpreter's shutdown,
    and the signal handlers were the default ones again by then: a SIGTERM after the job
    killed the process, its JSON line lost and its exit code -15.  The signal here is sent
    by an ``atexit`` callback (run before the standard streams are flushed): the JSON line
    is out and the exit code is the job's."""
    root = tmp_path / "t"
    testing.write_ct_series(root, 3, 8, 8, seed=5)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import atexit, os, signal\n"
        "atexit.register(lambda: [os.kill(os.getpid(), s) for s in"
        " (signal.SIGTERM, signal.SIGINT)])\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)])}
    for extra, key, code in (([], "files", 0), (["--workers", "0"], "error", 2),
                             (["--no-such-option"], "error", 2)):
        proc = subprocess.run([sys.executable, "-m", "fastdicom", "ingest", str(root), "--db",
                               str(tmp_path / "i.sqlite"), "-q"] + extra, env=env,
                              capture_output=True, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert proc.returncode == code, proc.stderr
        assert key in json.loads(proc.stdout.strip().splitlines()[-1])
        assert "Traceback" not in proc.stderr


def test_cli_handlers_after_the_job(tmp_path):
    """When the job's handlers end: the ``fastdicom ingest`` process ignores SIGINT/SIGTERM
    until it exits (its JSON line is written; neither the start-up handler nor the default
    action may follow it); a program that calls the command gets its handlers back."""
    root = tmp_path / "t"
    testing.write_ct_series(root, 2, 8, 8, seed=5)
    cli = ("import signal, sys; sys.argv = ['fastdicom', 'ingest']; import fastdicom;"
           "from fastdicom import _early; from fastdicom.ingest import _StopOnSignals;"
           "assert signal.getsignal(signal.SIGTERM) is _early._stop;"
           "s = _StopOnSignals(); s.__enter__(); s.__exit__(None, None, None);"
           "print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN,"
           " signal.getsignal(signal.SIGINT) is signal.SIG_IGN)")
    program = ("import signal; from fastdicom.cli import main;"
               f"rc = main(['ingest', {str(root)!r}, '--db', {str(tmp_path / 'p.sqlite')!r},"
               " '-q']);"
               "print(rc == 0, signal.getsignal(signal.SIGTERM) is signal.SIG_DFL,"
               " signal.getsignal(signal.SIGINT) is signal.default_int_handler)")
    for code, expect in ((cli, ["True", "True"]), (program, ["True", "True", "True"])):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=str(tmp_path),
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[-len(expect):] == expect, proc.stdout


# the ingest command, run with a signal sent to itself at a chosen moment: WHERE=counts when
# the job's counts are asked for (the job has returned: its JSON line is next), WHERE=exit
# right after the job's handlers end
_SIGNAL_AT = """
import os, signal, sys
sys.argv = ["fastdicom"] + sys.argv[1:]
import fastdicom.ingest as I
sig = getattr(signal, os.environ["SIGNAL_NAME"])
if os.environ["WHERE"] == "counts":
    counts = I.IngestResult.counts
    def hooked(self):
        os.kill(os.getpid(), sig)
        return counts(self)
    I.IngestResult.counts = hooked
else:
    end = I._StopOnSignals.__exit__
    def hooked(self, *a):
        end(self, *a)
        os.kill(os.getpid(), sig)
    I._StopOnSignals.__exit__ = hooked
from fastdicom.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize("where", ["counts", "exit"])
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_cli_signal_after_the_job_keeps_its_result(tmp_path, where, sig):
    """A signal after the job returned, before its counts line (a traceback, exit 1, no JSON
    line with SIGTERM; exit 130 and no line with SIGINT), or after the job's handlers ended
    (killed, or 130): the counts line and exit 0."""
    root = tmp_path / "t"
    testing.write_ct_series(root, 3, 8, 8, seed=5)
    script = tmp_path / "at.py"
    script.write_text(_SIGNAL_AT)
    proc = subprocess.run([sys.executable, str(script), "ingest", str(root), "--db",
                           str(tmp_path / "i.sqlite")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "WHERE": where,
                               "SIGNAL_NAME": sig},
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["indexed"] == 3
    assert "Traceback" not in proc.stderr


def test_cli_exit_code_with_a_reader_gone(tmp_path):
    """stdout a pipe whose reader has gone (``| true``): the flushed JSON line raised
    BrokenPipeError, which ``cli.main`` turned into exit 0 for a usage error, a fatal error,
    an argparse error (a traceback) alike.  The exit code is the command's."""
    root = tmp_path / "t"
    testing.write_ct_series(root, 2, 8, 8, seed=5)
    (tmp_path / "dir.sqlite").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "fastdicom", "ingest", str(root), "-q"]
    for extra, code in ((["--db", str(tmp_path / "ok.sqlite")], 0),
                        (["--db", str(tmp_path / "u.sqlite"), "--workers", "0"], 2),
                        (["--db", str(tmp_path / "dir.sqlite")], 1),
                        (["--db", str(tmp_path / "a.sqlite"), "--bogus"], 2)):
        r, w = os.pipe()
        os.close(r)
        try:
            proc = subprocess.run(base + extra, stdout=w, stderr=subprocess.PIPE, text=True,
                                  env=env)
        finally:
            os.close(w)
        assert proc.returncode == code, (extra, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr


def test_cli_tags_as_keywords_and_tag_numbers(tmp_path):
    """``--tags`` takes keywords, ``ggggeeee`` and ``(gggg,eeee)`` (its comma is not a
    separator), repeated or comma-separated; an unknown keyword is a usage error."""
    from fastdicom.ingest import _split_tags
    assert _split_tags("(0010,0010),Modality, 00200013 ,(0008, 0060)") == [
        "(0010,0010)", "Modality", "00200013", "(0008, 0060)"]
    root = tmp_path / "t"
    testing.write_ct_series(root, 3, 8, 8, seed=5)
    db = tmp_path / "t.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "fastdicom", "ingest", str(root), "--db", str(db), "--quiet"]
    out = subprocess.run(cmd + ["--tags", "(0010,0010),Modality", "--tags", "00200013"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    con = sqlite3.connect(db)
    row = con.execute("SELECT PatientName, Modality, InstanceNumber FROM instances ORDER BY"
                      " InstanceNumber").fetchone()
    cols = {r[1] for r in con.execute("PRAGMA table_info(instances)")}
    con.close()
    assert row[1:] == ("CT", 1) and row[0]
    assert "PatientName" in cols and "ImagePositionPatient" not in cols
    bad = subprocess.run(cmd + ["--tags", "NoSuchKeyword"], capture_output=True, text=True,
                         env=env)
    assert bad.returncode == 2
    assert "bad --tags: unknown DICOM keyword: 'NoSuchKeyword'" in bad.stderr


def test_export_streams_typed_columns(tmp_path, monkeypatch):
    """``export_parquet`` writes every instance row, in chunks, with one column per tag
    typed as the scan types it, equal to what the scan reads from the files (binary values as
    binary, as the scan gives them: they were hex text; ``path`` the file name's bytes; tags
    a job did not ask for are null); a value that does not fit that type (here
    written into the index by hand) turns that column to text instead of failing or losing
    it."""
    import math
    import fastdicom.ingest as mod
    from fastdicom.batch import scan
    root = tmp_path / "t"
    testing.write_ct_series(root / "a", 23, 8, 8, seed=1)
    db = str(tmp_path / "i.sqlite")
    ingest([root], db)
    testing.write_ct_series(root / "b", 4, 8, 8, seed=2)
    tags_b = ["PatientName", "ImagePositionPatient", "00091001"]
    ingest([root], db, tags=tags_b)
    monkeypatch.setattr(mod, "_EXPORT_ROWS", 5)          # several chunks
    out = tmp_path / "all.parquet"
    assert export_parquet(db, out) == 27
    t = pq.read_table(out)
    assert pq.ParquetFile(out).metadata.num_row_groups == 6
    assert t.schema.field("ImagePositionPatient").type == pa.list_(pa.float64())
    assert t.schema.field("InstanceNumber").type == pa.int64()
    assert t.schema.field("x00091001").type == pa.binary()   # as the scan types it
    assert t.schema.field("path").type == pa.binary()
    # the oracle: the scan of each folder with the tags its job read (those asked for and
    # those the hierarchy needs)
    want = {}
    for folder, tags in (("a", list(mod.DEFAULT_TAGS)), ("b", tags_b)):
        tags = tags + [k for k in mod._REQUIRED_TAGS if k not in tags]
        for r in scan(root / folder, tags).to_pylist():
            vals = {k: v for k, v in r.items()
                    if k in t.column_names and k not in mod._EXPORT_FIXED.names}
            want[r["SOPInstanceUID"]] = (r["path"], vals)
    got = {r["sop_instance_uid"]: r for r in t.to_pylist()}
    assert set(got) == set(want)
    for uid, (path, vals) in want.items():
        assert got[uid]["path"] == os.fsencode(path) and got[uid]["display_path"] == path
        for k in t.column_names[len(mod._EXPORT_FIXED):]:
            g, v = got[uid][k], vals.get(k)
            assert g == v or (isinstance(v, float) and math.isnan(v) and math.isnan(g)), k
    assert sum(got[u]["InstanceNumber"] is None for u in got) == 4   # not asked of batch b
    assert sum(got[u]["x00091001"] is None for u in got) == 23       # not asked of batch a
    # a value of another type; a list cell that is not JSON
    con = sqlite3.connect(db)
    uid = sorted(want)[0]
    con.execute("UPDATE instances SET InstanceNumber = 'not a number',"
                " ImagePositionPatient = '{bad' WHERE sop_instance_uid = ?", (uid,))
    con.commit()
    con.close()
    assert export_parquet(db, out) == 27
    t = pq.read_table(out)
    assert t.schema.field("InstanceNumber").type == pa.string()
    assert t.schema.field("ImagePositionPatient").type == pa.string()
    vals = {r["sop_instance_uid"]: r for r in t.to_pylist()}
    assert vals[uid]["InstanceNumber"] == "not a number"
    assert vals[uid]["ImagePositionPatient"] == "{bad"
    other = next(u for u in sorted(want)[1:] if want[u][1].get("InstanceNumber") is not None)
    assert vals[other]["InstanceNumber"] == str(want[other][1]["InstanceNumber"])
    assert json.loads(vals[other]["ImagePositionPatient"]) == \
        want[other][1]["ImagePositionPatient"]
    assert not os.path.exists(str(out) + ".tmp")


def test_ls_and_export_of_what_is_not_an_index(tmp_path):
    """``ls`` and ``export`` of a missing database exit 2; of a file that is no SQLite
    database, or a database without the index's tables, exit 1 with one line naming it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 300)
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t(x)")
    con.close()
    alike = tmp_path / "alike.sqlite"     # tables of the index's names, other columns
    con = sqlite3.connect(alike)
    for t in ("files", "series", "studies", "failures", "instances"):
        con.execute(f"CREATE TABLE {t}(x)")
    con.close()

    def run(*args):
        return subprocess.run([sys.executable, "-m", "fastdicom", *map(str, args)],
                              capture_output=True, text=True, env=env)
    for cmd in (["ls"], ["ls", "--series"], ["export"]):
        extra = [tmp_path / "out.parquet"] if cmd == ["export"] else []
        out = run(cmd[0], tmp_path / "missing.sqlite", *cmd[1:], *extra)
        assert out.returncode == 2 and "no such database" in out.stderr, cmd
        folder = tmp_path / "a_folder.sqlite"
        folder.mkdir(exist_ok=True)
        for db, says in ((junk, "file is not a database"),
                         (other, "not a fastdicom index"),
                         (alike, "not a fastdicom index"),
                         (folder, "is a directory, not an index")):
            out = run(cmd[0], db, *cmd[1:], *extra)
            assert out.returncode == 1, (cmd, out.stderr)
            assert "Traceback" not in out.stderr
            assert says in out.stderr, out.stderr
            assert str(db) in out.stderr
    assert not list(tmp_path.glob("out.parquet*"))


def test_lock_follows_the_database_through_symlinks(tmp_path):
    """A job on the database through a symlink (to the file, or to its folder) and a job on
    its real path exclude each other: the lock lies beside the real file; a walk over the
    folder holding the symlink does not take the database's files for inputs."""
    from fastdicom.ingest import _Lock
    root = tmp_path / "t"
    testing.write_ct_series(root, 3, 8, 8, seed=6)
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    db = real_dir / "i.sqlite"
    ingest([root], str(db))
    (tmp_path / "via").symlink_to(real_dir)
    (root / "link.sqlite").symlink_to(db)
    for other in (tmp_path / "via" / "i.sqlite", root / "link.sqlite"):
        lock = _Lock(str(db))
        try:
            with pytest.raises(IngestLockedError):
                ingest([root], str(other))
        finally:
            lock.release()
    r = ingest([root], str(root / "link.sqlite"))
    assert (r.unchanged, r.indexed, r.failed, r.skipped) == (3, 0, 0, 0), r.counts()


def test_export_of_an_empty_index(tmp_path):
    (tmp_path / "empty").mkdir()
    db = str(tmp_path / "i.sqlite")
    ingest([tmp_path / "empty"], db)
    assert export_parquet(db, tmp_path / "o.parquet") == 0
    t = pq.read_table(tmp_path / "o.parquet")
    assert t.num_rows == 0 and t.column_names[:3] == ["sop_instance_uid", "path", "display_path"]


@pytest.mark.parametrize("bad", ["{bad", "[1, 2]", "7"])
def test_export_of_damaged_attributes_names_the_instance(tmp_path, capsys, bad):
    """An ``attributes`` text (an index of schema version 2) that is not a JSON object (an
    index edited by hand) fails the export with an error naming the instance (it was a
    JSONDecodeError traceback, or an AttributeError), and no partial output is left."""
    from fastdicom import cli
    testing.write_ct_series(tmp_path / "s", 4, 8, 8)
    db = str(tmp_path / "i.sqlite")
    ingest([tmp_path / "s"], db)
    _as_version_2(db)
    con = sqlite3.connect(db)
    sop = con.execute("SELECT sop_instance_uid FROM instances ORDER BY sop_instance_uid"
                      " LIMIT 1 OFFSET 2").fetchone()[0]
    con.execute("UPDATE instances SET attributes=? WHERE sop_instance_uid=?", (bad, sop))
    con.commit()
    con.close()
    out = tmp_path / "o.parquet"
    with pytest.raises(sqlite3.DatabaseError, match=f"instance {sop}: attributes are not"):
        export_parquet(db, out)
    assert cli.main(["export", db, str(out)]) == 1
    assert f"instance {sop}: attributes are not a JSON object" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "o.parquet.tmp").exists()


def test_default_batches_grow_with_the_index(tree, tmp_path, monkeypatch):
    """With the default batch size, batches grow with the index (a hundredth of it past
    200,000 instances, up to 16,000): the index at the start and the files indexed so far
    both count.  Scaled down here through the size function; the index is the same as with
    fixed batches."""
    from fastdicom import ingest as I
    assert [I._auto_batch_size(n) for n in (0, 200_000, 400_000, 800_000, 10**7)] == \
        [2000, 2000, 4000, 8000, 16000]
    from fastdicom.ingest import ingest_tables
    with pytest.raises(ValueError):
        ingest([str(tree[0])], str(tmp_path / "x.sqlite"), batch_size=0)
    with pytest.raises(ValueError):
        ingest_tables(pa.table({"path": ["x"]}), str(tmp_path / "y.sqlite"), batch_size=0)
    monkeypatch.setattr(I, "_auto_batch_size", lambda n: 100 if n < 250 else 400)
    seen: list = []
    commit = I._commit

    def counting(con, prep, *args):
        seen.append(len(prep.entries))
        return commit(con, prep, *args)
    monkeypatch.setattr(I, "_commit", counting)

    def sizes():
        got = list(seen)
        seen.clear()
        return got
    db = str(tmp_path / "grow.sqlite")
    r = ingest([str(tree[0])], db, workers=2)
    got = sizes()
    # a ramp (32, 64) to 100-file batches until 250 are indexed, then doubling to 400
    assert got[:3] == [32, 64, 100] and max(got) == 400 and sum(got) == r.files, got
    big = got.index(200)
    assert set(got[2:big]) == {100} and got[big + 1] == 400, got
    fixed = str(tmp_path / "fixed.sqlite")
    ingest([str(tree[0])], fixed, workers=2, batch_size=250)
    assert _full_dump(db) == _full_dump(fixed)
    # an index of 300 instances at the start: 400 is the target from the first batch on
    again = str(tmp_path / "again.sqlite")
    ingest([str(tree[0] / "st00")], again, workers=1, batch_size=300)
    sizes()
    ingest([str(tree[0])], again, workers=2)
    got = sizes()
    assert got[:5] == [32, 64, 128, 256, 400], got


def test_paths_with_a_nul_byte_fail_and_count(tmp_path):
    # a NUL byte cuts a C string short: such a path must fail, never index the file its
    # prefix names (as a short list, walked, and as a long one, scanned without a walk)
    testing.write_ct_series(tmp_path / "s", 1, 8, 8)
    real = str(next((tmp_path / "s").iterdir()))
    for paths in ([real + "\0x"], [real + f"\0x{i}" for i in range(70)] + [real]):
        db = tmp_path / f"nul{len(paths)}.sqlite"
        for run in range(2):
            r = ingest(paths, str(db), progress=False)
            assert r.files == len(paths) and r.failed == len(paths) - (len(paths) > 1)
            assert r.indexed + r.unchanged == (len(paths) > 1)
        con = sqlite3.connect(db)
        assert con.execute("SELECT error_type, message, count(*) FROM failures").fetchone() \
            == ("ValueError", "embedded null byte", r.failed)
        assert con.execute("SELECT count(*) FROM instances").fetchone()[0] == r.indexed + \
            r.unchanged
        con.close()


@pytest.mark.parametrize("python_binding", [False, True])
def test_uv_values_above_int64_through_index_parts_and_export(tmp_path, monkeypatch,
                                                              python_binding):
    # UV columns are uint64: 2**64 - 1 survives the index (as its decimal text: past
    # SQLite's integers), the Parquet parts and the export (read back typed as the scan
    # types them), through the C writer and the sqlite3 module's binding alike, and through
    # the per-file logic (a copy that wins its UID from the indexed file)
    from fastdicom import _rows
    from fastdicom.batch import scan
    monkeypatch.setattr(_rows, "FORCE_PYTHON", python_binding)
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        testing.write_file(d / f"f{i}.dcm", [
            (0x00080016, "UI", "1.2.3"), (0x00080018, "UI", f"1.2.3.{i}"),
            (0x0020000D, "UI", "1.2"), (0x0020000E, "UI", "1.2.1"),
            (0x00080428, "UV", (1 << 64) - 1 - i), (0x00720083, "UV", [1 << 63, i])],
            transfer_syntax=testing.EXPLICIT_LE)
    tags = ["SOPInstanceUID", "TotalNumberOfStudyRecords", "SelectorUVValue"]
    r = ingest([d], tmp_path / "i.sqlite", tags=tags, progress=False,
               parquet=str(tmp_path / "parts"))
    assert r.indexed == 3
    expected = scan(sorted(str(p) for p in d.iterdir()), tags=tags)
    want = sorted(zip(expected.column("TotalNumberOfStudyRecords").to_pylist(),
                      expected.column("SelectorUVValue").to_pylist()))
    assert want[0] == ((1 << 64) - 3, [1 << 63, 2])
    con = sqlite3.connect(tmp_path / "i.sqlite")
    got = con.execute("SELECT TotalNumberOfStudyRecords, SelectorUVValue FROM instances"
                      ).fetchall()
    con.close()
    assert all(type(a) is str for a, _ in got)
    assert sorted((int(a), json.loads(b)) for a, b in got) == want
    export_parquet(tmp_path / "i.sqlite", tmp_path / "out.parquet")
    for t in (pq.read_table(tmp_path / "out.parquet"), pq.read_table(tmp_path / "parts")):
        assert t.schema.field("TotalNumberOfStudyRecords").type == pa.uint64()
        assert sorted(zip(t.column("TotalNumberOfStudyRecords").to_pylist(),
                          t.column("SelectorUVValue").to_pylist())) == want
    # a copy with a smaller path takes the UID of f0.dcm: the per-file logic moves the row
    (d / "a0.dcm").write_bytes((d / "f0.dcm").read_bytes())
    r = ingest([d], tmp_path / "i.sqlite", tags=tags, progress=False)
    assert (r.indexed, r.unchanged) == (1, 2), r.counts()
    con = sqlite3.connect(tmp_path / "i.sqlite")
    assert con.execute("SELECT TotalNumberOfStudyRecords, state FROM instance_copies"
                       ).fetchall() == [(str((1 << 64) - 1), "duplicate")]
    assert con.execute("SELECT TotalNumberOfStudyRecords FROM instances WHERE display_path LIKE"
                       " '%a0.dcm'").fetchall() == [(str((1 << 64) - 1),)]
    con.close()


def _prune_roots_reference(paths):
    """The straightforward pruning (per path: glob check, abspath, prefix test against every
    directory given), against which the vectorised one is checked."""
    import glob
    expanded = []
    for p in paths:
        if any(c in p for c in "*?[") and not os.path.lexists(p):
            expanded.extend(sorted(glob.glob(p, recursive=True)))
        else:
            expanded.append(p)
    absolute = [os.path.abspath(p) for p in expanded]
    dirs = {a for a in absolute if os.path.isdir(a) and not os.path.islink(a)}
    out, seen = [], set()
    for a in absolute:
        if a in seen or any(a != d and a.startswith(d.rstrip("/") + "/") for d in dirs):
            continue
        seen.add(a)
        out.append(a)
    return out


def test_prune_roots_equals_reference(tmp_path, monkeypatch):
    from fastdicom.ingest import _prune_roots
    monkeypatch.chdir(tmp_path)
    for d in ("a/b/c", "a/bb", "x", "g[1]"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    for f in ("a/b/c/f.dcm", "a/b/f.dcm", "a/bb/f.dcm", "x/f.dcm", "a/b.dcm", "g[1]/f.dcm"):
        (tmp_path / f).write_bytes(b"x")
    os.symlink(tmp_path / "a", tmp_path / "link")
    pool = ["a", "a/", "a/b", "a/b/", "a/b/c", "a/b/c/f.dcm", "a/b/f.dcm", "a/bb",
            "a/bb/f.dcm", "a/b.dcm", "x/f.dcm", "x", "./x/f.dcm", "a/../x/f.dcm", "a//b/f.dcm",
            "missing.dcm", "link", "link/b/f.dcm", "x/*.dcm", "a/**/f.dcm", "g[1]",
            "g[1]/f.dcm", "no*match", str(tmp_path / "a/b/f.dcm"), str(tmp_path / "x"),
            str(tmp_path / "x") + "/", str(tmp_path / "a/b/c/.."), "bad\0name"]
    rng = random.Random(3)
    for _ in range(400):
        paths = [rng.choice(pool) for _ in range(rng.randint(0, 8))]
        if rng.random() < 0.3:      # a long manifest of absolute files
            paths += [str(tmp_path / f) for f in ("a/b/c/f.dcm", "x/f.dcm", "a/b.dcm")] * 30
        assert _prune_roots(paths) == _prune_roots_reference(paths), paths
    assert _prune_roots(["/", "/etc/hostname", "/etc"]) == ["/"]


def test_files_changing_during_the_job(tmp_path):
    """Files truncated, appended to, rewritten in place, replaced, flipped, turned to junk
    and deleted while a job runs: the job ends (exit 0, its counts adding up), and the
    same command run again gives the index of a fresh job over the final tree, bar the
    files gone (``missing``)."""
    rng = random.Random(77)
    root = tmp_path / "tree"
    paths = []
    for s in range(3):
        paths += [str(p) for p in testing.write_ct_series(root / f"s{s}", 200, 8, 8,
                                                          seed=700 + s)]
    spare = [Path(p).read_bytes() for p in testing.write_ct_series(tmp_path / "spare", 20, 8,
                                                                   8, seed=799)]
    db = str(tmp_path / "live.sqlite")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cmd(db):
        return [sys.executable, "-m", "fastdicom", "ingest", str(root), "--db", db,
                "--batch-size", "25", "--workers", "2", "--json"]
    proc = subprocess.Popen(cmd(db), env=env, cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t_end = time.time() + 60
    while not os.path.exists(db) and proc.poll() is None and time.time() < t_end:
        time.sleep(0.001)
    during = 0
    while proc.poll() is None and during < 400:
        f = rng.choice(paths)
        op = rng.randrange(7)
        try:
            if op == 0:
                os.truncate(f, rng.randrange(os.path.getsize(f)))
            elif op == 1:
                with open(f, "ab") as fh:
                    fh.write(os.urandom(rng.randrange(1, 3000)))
            elif op == 2:
                with open(f, "r+b") as fh:      # rewritten in place, maybe while read
                    data = rng.choice(spare)
                    fh.write(data)
                    fh.truncate(len(data))
            elif op == 3:               # (written beside the tree: the walk must not see it)
                (tmp_path / "new.tmp").write_bytes(rng.choice(spare))
                os.replace(tmp_path / "new.tmp", f)
            elif op == 4:
                with open(f, "r+b") as fh:
                    fh.seek(rng.randrange(max(1, os.path.getsize(f))))
                    fh.write(bytes([rng.randrange(256)]))
            elif op == 5:
                Path(f).write_bytes(os.urandom(rng.randrange(3000)))
            else:
                os.unlink(f)
        except FileNotFoundError:
            continue
        during += 1
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert during >= 20, f"only {during} changes landed while the job ran"
    live = json.loads(out.strip().splitlines()[-1])
    assert sum(live[s] for s in STATES) == live["files"]
    again = subprocess.run(cmd(db), env=env, cwd=str(ROOT), capture_output=True, text=True)
    fresh_db = str(tmp_path / "fresh.sqlite")
    fresh = subprocess.run(cmd(fresh_db), env=env, cwd=str(ROOT), capture_output=True,
                           text=True)
    assert again.returncode == fresh.returncode == 0, again.stderr + fresh.stderr
    a = json.loads(again.stdout.strip().splitlines()[-1])
    b = json.loads(fresh.stdout.strip().splitlines()[-1])
    gone = {p for p in paths if not os.path.exists(p)}
    con = sqlite3.connect(db)
    missing = {os.fsdecode(p) for (p,) in con.execute(
        "SELECT path FROM files WHERE state='missing'")}
    con.close()
    # (a file deleted before the job's walk reached it was never seen)
    assert len(missing) == a["missing"] and missing <= gone and b["missing"] == 0
    assert a["files"] == b["files"] + a["missing"]
    for s in ("duplicate", "conflict", "failed"):
        assert a[s] == b[s], s
    assert a["indexed"] + a["unchanged"] == b["indexed"]
    x, y = _dump(db), _dump(fresh_db)
    x["files"] = [r for r in x["files"] if r[3] != "missing"]
    assert x == y


# ------------------------------------------------------------------ found by an independent review

def test_cli_second_signal_while_stopping_is_ignored(tree, tmp_path):
    # a second SIGINT (or SIGTERM) while the job wound down interrupted the wait for the
    # writer thread; the connection was then closed under it: a segfault, 1 run in ~10, or a
    # traceback without the JSON line.  Now: exit 130/143, the JSON line, and a resumable
    # index.
    root, _ = tree
    ref_db = str(tmp_path / "ref.sqlite")
    ingest([root], ref_db, batch_size=20)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # (the second signal 1-3 ms after the first: during the wind-down; 60 ms: often after
    # it, while the interpreter shuts down, which printed a KeyboardInterrupt traceback)
    for k, (first, second, delay) in enumerate([(signal.SIGINT, signal.SIGINT, 0.001),
                                                (signal.SIGINT, signal.SIGTERM, 0.002),
                                                (signal.SIGTERM, signal.SIGINT, 0.003),
                                                (signal.SIGINT, signal.SIGINT, 0.06)]):
        db = str(tmp_path / f"double{k}.sqlite")
        cmd = [sys.executable, "-m", "fastdicom", "ingest", str(root), "--db", db,
               "--batch-size", "3", "-q"]
        proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        t_end = time.time() + 30
        while time.time() < t_end and proc.poll() is None and _count(db) < 50:
            time.sleep(0.002)
        proc.send_signal(first)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(second)
        out, err = proc.communicate()
        # (two signals that both arrive before the main thread next checks for them are
        # handled in signal-number order, SIGINT first, whatever order they were sent in:
        # one CI run under load had SIGTERM then SIGINT 3 ms later exit 130)
        codes = {130 if s == signal.SIGINT else 143 for s in (first, second)}
        assert proc.returncode in codes, err
        assert "Traceback" not in err
        assert json.loads(out.strip().splitlines()[-1])["error"] == "interrupted"
        done = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert _full_dump(db) == _full_dump(ref_db)


def _one(k, **kw):
    return _tiny_bytes(k, study=0, series=0, **kw)


def test_follow_symlinks_reads_links_to_files(tmp_path):
    # with follow_symlinks a link to a file was opened with O_NOFOLLOW: "failed: Too many
    # levels of symbolic links"
    root = tmp_path / "r"
    root.mkdir()
    (root / "a.dcm").write_bytes(_one(1))
    (tmp_path / "outside.dcm").write_bytes(_one(2))
    os.symlink(tmp_path / "outside.dcm", root / "link.dcm")
    db = str(tmp_path / "i.sqlite")
    r = ingest([root], db, follow_symlinks=False)
    assert (r.indexed, r.skipped) == (1, 1)
    r = ingest([root], db, follow_symlinks=True)     # the skipped link is read now
    assert (r.indexed, r.unchanged, r.skipped, r.failed) == (1, 1, 0, 0), r
    con = sqlite3.connect(db)
    assert sorted(os.path.basename(p) for (p,) in con.execute(
        "SELECT display_path FROM instances")) == ["a.dcm", "link.dcm"]
    con.close()
    r = ingest([root], db, follow_symlinks=True)
    assert r.unchanged == 2 and r.indexed == 0
    # the target changed: read again through the link
    (tmp_path / "outside.dcm").write_bytes(_one(3))
    os.utime(tmp_path / "outside.dcm", ns=(1, 1))
    r = ingest([root], db, follow_symlinks=True)
    assert (r.indexed, r.unchanged) == (1, 1)


def test_file_replaced_by_a_folder_of_its_name_is_missing(tmp_path):
    # the ledger row and instance row stayed (os.path.lexists is true for the folder), and
    # the identical copy was never promoted
    root = tmp_path / "r"
    (root / "b").mkdir(parents=True)
    (root / "a.dcm").write_bytes(_one(1))
    (root / "b" / "copy.dcm").write_bytes(_one(1))
    db = str(tmp_path / "i.sqlite")
    r = ingest([root], db)
    assert (r.indexed, r.duplicate) == (1, 1)
    (root / "a.dcm").unlink()
    (root / "a.dcm").mkdir()
    (root / "a.dcm" / "inner.dcm").write_bytes(_one(5))
    r = ingest([root], db)
    # (the copy, promoted, counts as indexed in this run)
    assert (r.missing, r.indexed, r.unchanged, r.duplicate) == (1, 2, 0, 0), r
    con = sqlite3.connect(db)
    assert sorted(os.path.relpath(os.fsdecode(p), root) for (p,) in con.execute(
        "SELECT path FROM instances")) == ["a.dcm/inner.dcm", "b/copy.dcm"]
    assert con.execute("SELECT state FROM files WHERE display=?",
                       (str(root / "a.dcm"),)).fetchone()[0] == "missing"
    con.close()


def test_input_folder_that_was_absent_and_is_back_leaves_no_missing_row(tmp_path):
    # the absent input path failed (FileNotFoundError: no size); back as a folder, its
    # ledger row was marked missing ("file is gone") on every later run: one missing file
    # that never was a file
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.dcm").write_bytes(_one(1))
    (root / "b.dcm").write_bytes(_one(2))
    db = str(tmp_path / "i.sqlite")
    assert ingest([root], db).indexed == 2
    root.rename(tmp_path / "away")
    r = ingest([root], db)
    assert (r.files, r.failed, r.missing) == (3, 1, 2), r
    (tmp_path / "away").rename(root)
    r = ingest([root], db)
    assert r.counts() == {**dict.fromkeys(r.counts(), 0), "files": 2, "indexed": 2}, r
    con = sqlite3.connect(db)
    assert sorted((os.path.basename(os.fsdecode(p)), s) for p, s in con.execute(
        "SELECT path, state FROM files")) == [("a.dcm", "indexed"), ("b.dcm", "indexed")]
    assert con.execute("SELECT count(*) FROM failures").fetchone()[0] == 0
    con.close()
    assert ingest([root], db).counts()["unchanged"] == 2


def test_parquet_part_holds_the_instance_rows_of_its_batch_only(tmp_path):
    # a copy displaced within the batch (a smaller path of the same UID came later in it)
    # stayed in the part
    root = tmp_path / "r"
    (root / "b").mkdir(parents=True)
    (root / "c.dcm").write_bytes(_one(1))          # walked first, then displaced by b/x.dcm
    (root / "b" / "x.dcm").write_bytes(_one(1))
    for k in range(2, 6):
        (root / f"d{k}.dcm").write_bytes(_one(k))
    db, parts = str(tmp_path / "i.sqlite"), tmp_path / "parts"
    ingest([root / "c.dcm", root / "b", *sorted(root.glob("d*.dcm"))], db, parquet=str(parts),
           batch_size=100)
    rows = pa.concat_tables([pq.read_table(p) for p in sorted(parts.glob("*.parquet"))])
    con = sqlite3.connect(db)
    inst = sorted(os.fsdecode(p) for (p,) in con.execute("SELECT path FROM instances"))
    con.close()
    assert sorted(rows.column("path").to_pylist()) == inst
    assert str(root / "c.dcm") not in inst


def test_paths_given_as_an_iterator(tmp_path):
    # all(type(p) is str for p in paths) consumed a generator: 0 of 3 files were ingested
    for k in range(3):
        (tmp_path / f"f{k}.dcm").write_bytes(_one(k))
    r = ingest((str(p) for p in sorted(tmp_path.glob("*.dcm"))), str(tmp_path / "i.sqlite"))
    assert r.indexed == 3 and r.files == 3
    r = ingest(tmp_path.glob("*.dcm"), str(tmp_path / "j.sqlite"))
    assert r.indexed == 3


def test_rerun_over_the_same_failures_changes_no_row(tmp_path):
    # a listed path that does not exist (or a file that cannot be opened: no size) was
    # written again on every run: a new batches row and a new failures.time
    (tmp_path / "a.dcm").write_bytes(_one(1))
    db = str(tmp_path / "i.sqlite")
    args = ([str(tmp_path / "a.dcm"), str(tmp_path / "nope.dcm")], db)
    ingest(*args)

    def rows():
        con = sqlite3.connect(db)
        try:
            return [con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                    for t in ("files", "failures", "batches", "instances")]
        finally:
            con.close()
    before = rows()
    r = ingest(*args)
    assert (r.failed, r.unchanged, r.batches) == (1, 1, 0)
    assert rows() == before


def test_db_must_be_a_file(tmp_path, capsys):
    from fastdicom.ingest import main
    (tmp_path / "a.dcm").write_bytes(_one(1))
    for db in ("", ":memory:"):
        with pytest.raises(ValueError, match="must be a file"):
            ingest([tmp_path], db)
        assert main(["ingest", str(tmp_path), "--db", db]) == 2
        last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert last["error"] == "usage" and "--db" in last["message"]


def test_usage_errors_end_with_a_json_line(tmp_path, capsys):
    from fastdicom.ingest import main
    db = str(tmp_path / "i.sqlite")
    for argv in (["ingest", "--db", db],
                 ["ingest", str(tmp_path), "--db", db, "--tags", "NoSuchKeyword"],
                 ["ingest", "--db", db, "--files-from", str(tmp_path / "missing.txt")],
                 ["ingest", str(tmp_path), "--db", db, "--workers", "0"]):
        assert main(argv) == 2
        last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert last["error"] == "usage", argv
    # argparse's own errors too (an unknown option, a bad number, no --db)
    for argv in (["ingest", str(tmp_path), "--db", db, "--no-such-option"],
                 ["ingest", str(tmp_path), "--db", db, "--workers", "two"],
                 ["ingest", str(tmp_path)]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        captured = capsys.readouterr()
        assert json.loads(captured.out.strip().splitlines()[-1])["error"] == "usage", argv
        assert "usage:" in captured.err


def test_another_programs_database_is_left_as_it_is(tmp_path):
    # the job created its tables, set the schema version and switched the file to WAL
    # before refusing it
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE files(x)")
    con.execute("INSERT INTO files VALUES (1)")
    con.commit()
    con.close()
    before = other.read_bytes()
    (tmp_path / "a.dcm").write_bytes(_one(1))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "fastdicom", "ingest", str(tmp_path / "a.dcm"),
                          "--db", str(other)], capture_output=True, text=True, env=env)
    assert out.returncode == 1, out.stderr
    assert "not a fastdicom index" in json.loads(out.stdout.strip().splitlines()[-1])["message"]
    assert other.read_bytes() == before
    assert not os.path.exists(str(other) + "-wal")


def test_own_files_reached_through_another_spelling_are_not_inputs(tmp_path):
    # the database, its -wal/-shm/.lock files and the Parquet parts were ingested (failed)
    # when the tree was given through a symlinked folder
    tree_dir = tmp_path / "t"
    tree_dir.mkdir()
    (tree_dir / "a.dcm").write_bytes(_one(1))
    os.symlink(tmp_path, tmp_path / "alias")
    db, parts = str(tree_dir / "index.db"), str(tree_dir / "parts")
    for _ in range(2):
        r = ingest([tmp_path / "alias" / "t"], db, parquet=parts)
        assert r.failed == 0 and r.files == 1, r
    # and by the path itself, as before
    r = ingest([tree_dir], db, parquet=parts)
    assert r.failed == 0 and r.files == 1, r


def test_dir_errors_of_folders_listed_now_are_cleared(tmp_path):
    # a folder an earlier job could not list kept its dir_errors row after it became
    # readable (the job's own count said 0).  As root no folder is unreadable here: the
    # earlier job's rows are written by hand.
    root = tmp_path / "r"
    (root / "ok").mkdir(parents=True)
    (root / "ok" / "a.dcm").write_bytes(_one(1))
    db = str(tmp_path / "i.sqlite")
    ingest([root], db)
    con = sqlite3.connect(db)
    rows = [(os.fsencode(root / "ok"), "readable now"), (os.fsencode(root / "gone"), "gone"),
            (os.fsencode(tmp_path / "elsewhere"), "outside the roots")]
    (tmp_path / "elsewhere").mkdir()
    con.executemany("INSERT INTO dir_errors(path, display, error_type, message, errno, time)"
                    " VALUES(?, ?, 'PermissionError', 'denied', 13, 0)", rows)
    con.commit()
    r = ingest([root], db)
    assert r.dir_errors == 0 and r.unchanged == 1
    left = [os.fsdecode(p) for (p,) in con.execute("SELECT path FROM dir_errors")]
    con.close()
    assert left == [str(tmp_path / "elsewhere")]


def test_v2_migration_of_nan_infinity_binaries_and_hand_edited_keys(tmp_path):
    """Version 2 wrote NaN and Infinity into the attributes JSON (SQLite's JSON functions
    refuse them: every job failed with "malformed JSON") and binary values as hex text (they
    stayed text in BLOB columns); keys edited in by hand that name a fixed column ("Size",
    "path", "") broke the migration for good.  Now the migrated index holds what a fresh
    one does, and such keys are left out."""
    inf, nan = float("inf"), float("nan")
    d = tmp_path / "in"
    d.mkdir()
    for i, (tr, key) in enumerate([([inf, 1.0], b"\x00\x01"), ([nan, -inf], b"\xff"),
                                   (None, None)]):
        elems = [(0x00080016, "UI", testing.CT_IMAGE_STORAGE), (0x00080018, "UI", f"1.9.{i}"),
                 (0x0020000D, "UI", "1.9"), (0x0020000E, "UI", "1.9.1")]
        if tr is not None:
            elems += [(0x00081163, "FD", tr), (0x0008041B, "OB", key), (0x00091001, "LO", "pv")]
        testing.write_file(d / f"f{i}.dcm", elems, transfer_syntax=testing.EXPLICIT_LE)
    tags = ["TimeRange", "RecordKey", "x00091001", "SliceThickness"]
    old_db, new_db = str(tmp_path / "old.sqlite"), str(tmp_path / "new.sqlite")
    ingest([d], old_db, tags=tags, workers=1)
    ingest([d], new_db, tags=tags, workers=1)
    _as_version_2(old_db)
    con = sqlite3.connect(old_db)
    text = con.execute("SELECT attributes FROM instances WHERE sop_instance_uid='1.9.0'"
                       ).fetchone()[0]
    assert "Infinity" in text and '"RecordKey": "0001"' in text
    edited = dict(json.loads(text), Size=1, path="x", **{"": 2, "COLUMNS": 3})
    con.execute("UPDATE instances SET attributes=? WHERE sop_instance_uid='1.9.0'",
                (json.dumps(edited),))
    con.commit()
    con.close()
    r = ingest([d], old_db, tags=tags, workers=1)
    assert r.unchanged == 3
    old, new = _full_dump(old_db), _full_dump(new_db)
    assert old == new
    con = sqlite3.connect(old_db)
    assert con.execute("SELECT quote(RecordKey), TimeRange FROM instances ORDER BY 1"
                       ).fetchall() == [("NULL", None), ("X'0001'", "[Infinity, 1.0]"),
                                        ("X'FF00'", "[NaN, -Infinity]")]
    assert con.execute("SELECT size FROM instances WHERE sop_instance_uid='1.9.0'"
                       ).fetchone()[0] == os.path.getsize(d / "f0.dcm")
    con.close()


def test_more_tags_than_sqlite_columns_is_a_usage_error(tmp_path):
    """SQLite tables hold at most 2,000 columns: a job that would pass it fails before
    anything is written, with a ValueError (exit 2 in the CLI), not SQLite's "too many
    columns on sqlite_altertab_instance_copies"; the index stays usable."""
    from fastdicom._dictionary import KEYWORD_TO_TAG
    from fastdicom.batch import _Plan
    kws = []
    for k in KEYWORD_TO_TAG:
        try:
            _Plan([k])
        except ValueError:
            continue
        kws.append(k)
        if len(kws) == 2100:
            break
    testing.write_ct_series(tmp_path / "s", 2, 8, 8)
    db = str(tmp_path / "i.sqlite")
    with pytest.raises(ValueError, match="at most 1985 tags"):
        ingest([tmp_path / "s"], db, tags=kws)
    assert ingest([tmp_path / "s"], db, tags=kws[:1900]).indexed == 2
    before = _full_dump(db)
    with pytest.raises(ValueError, match="at most 1985 tags"):
        ingest([tmp_path / "s"], db, tags=kws[1900:])
    assert _full_dump(db) == before
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "fastdicom", "ingest", str(tmp_path / "s"),
                          "--db", db, "-q", "--tags", ",".join(kws[1900:])],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["error"] == "usage"
    assert ingest([tmp_path / "s"], db, tags=kws[:10]).unchanged == 2


def _by_name(db):
    """:func:`_full_dump` with the rows of the instance tables as {column: value} (their tag
    columns are in the order jobs added them)."""
    out = _full_dump(db)
    con = sqlite3.connect(db)
    for t in ("instances", "instance_copies"):
        cur = con.execute(f"SELECT * FROM {t} ORDER BY 1")
        names = [d[0] for d in cur.description]
        out[t] = [dict(zip(names, r)) for r in cur]
    con.close()
    return out


def test_reread_fills_the_columns_of_tags_added_since(tree, tmp_path):
    """A job asking for a new tag leaves its column NULL for the files it finds unchanged;
    ``reread`` (CLI ``--reread``) reads them again, and the index then equals one built with
    every tag from the start (copies, conflicts and failures included)."""
    root, _ = tree
    first = ["PatientName", "Modality"]
    more = first + ["InstanceNumber", "ImagePositionPatient"]
    grown, fresh = str(tmp_path / "grown.sqlite"), str(tmp_path / "fresh.sqlite")
    ingest([root], grown, tags=first, batch_size=40)
    r = ingest([root], grown, tags=more, batch_size=40)
    assert r.indexed == 0 and r.unchanged > 100
    con = sqlite3.connect(grown)
    assert con.execute("SELECT count(InstanceNumber) FROM instances").fetchone()[0] == 0
    con.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "fastdicom", "ingest", str(root), "--db", grown,
                          "-q", "--reread", "--batch-size", "40", "--tags", ",".join(more)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout.splitlines()[-1])
    assert counts["unchanged"] == 0 and counts["indexed"] == r.unchanged
    ingest([root], fresh, tags=more, batch_size=40)
    want = _by_name(fresh)
    assert want["instance_copies"] and want["failures"]
    assert _by_name(grown) == want
    con = sqlite3.connect(grown)
    assert con.execute("SELECT count(*) - count(InstanceNumber) FROM instances").fetchone()[0] == 0
    con.close()
    # without --reread, the next job reads nothing again
    again = ingest([root], grown, tags=more, batch_size=40)
    assert again.indexed == 0 and again.unchanged == r.unchanged


def _unprivileged(cmd: list) -> list:
    """``cmd`` run so that file permissions apply to it: as is for a user, and for root
    without the capabilities that bypass them (``setpriv``); None when that is not possible
    (root without setpriv)."""
    if os.geteuid() != 0:
        return cmd
    import shutil
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    probe = subprocess.run([setpriv, "--bounding-set=-dac_override,-dac_read_search", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        return None
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"] + cmd


def test_cli_permission_errors_are_counted_and_cleared(tmp_path):
    """Unreadable files and folders, as a user meets them (root runs the job without the
    capabilities that bypass permissions): a file without read permission and the files of
    a folder without search permission are ``failed`` with PermissionError; folders that
    cannot be listed are ``dir_errors``; the counts add up.  Once the permissions are
    fixed, the same command indexes them all and clears both tables."""
    root = tmp_path / "tree"
    for k, name in enumerate(("ok", "noread", "nosearch", "nolist", "files")):
        testing.write_ct_series(root / name, 3, 8, 8, seed=40 + k)
    locked = sorted((root / "files").iterdir())[0]
    modes = {root / "noread": 0o000, root / "nosearch": 0o644, root / "nolist": 0o311,
             locked: 0o000}
    db = str(tmp_path / "i.sqlite")
    cmd = _unprivileged([sys.executable, "-m", "fastdicom", "ingest", str(root), "--db", db,
                         "-q"])
    if cmd is None:
        pytest.skip("root without setpriv: permissions cannot apply")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        for p, m in modes.items():
            os.chmod(p, m)
        first = subprocess.run(cmd, env=env, capture_output=True, text=True)
    finally:
        for p in modes:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    assert first.returncode == 0, first.stderr
    counts = json.loads(first.stdout.strip().splitlines()[-1])
    assert sum(counts[s] for s in STATES) == counts["files"] == 3 + 3 + 3
    assert counts["indexed"] == 5 and counts["failed"] == 4 and counts["dir_errors"] == 2
    con = sqlite3.connect(db)
    failed = {(os.path.relpath(d, root), t) for d, t in con.execute(
        "SELECT display, error_type FROM failures")}
    assert failed == {(os.path.relpath(locked, root), "PermissionError")} | {
        (f"nosearch/{p.name}", "PermissionError") for p in (root / "nosearch").iterdir()}
    assert {(os.path.relpath(d, root), t) for d, t in con.execute(
        "SELECT display, error_type FROM dir_errors")} == {("noread", "PermissionError"),
                                                         ("nolist", "PermissionError")}
    con.close()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    counts = json.loads(again.stdout.strip().splitlines()[-1])
    assert counts["files"] == counts["indexed"] + counts["unchanged"] == 15
    assert counts["unchanged"] == 5 and counts["dir_errors"] == 0
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM failures").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM dir_errors").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM instances").fetchone()[0] == 15
    con.close()


def test_import_without_sys_argv():
    """An embedded interpreter may have no ``sys.argv``: the start-up check of the ingest
    CLI (run at ``import fastdicom``) must not fail the import."""
    proc = subprocess.run([sys.executable, "-c", "import sys; del sys.argv; import fastdicom;"
                           "print(fastdicom._early.is_cli())"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False"]


def test_cli_read_only_index(tmp_path):
    """An index its user cannot write: a re-run over the unchanged tree changes nothing, so it
    finishes (exit 0, every file unchanged) without the warning of a checkpoint it could
    not write (each batch asked for one, writes or not); once a file changed, the job ends
    with exit 1 and its JSON line."""
    root = tmp_path / "tree"
    testing.write_ct_series(root, 4, 8, 8, seed=61)
    db = tmp_path / "i.sqlite"
    ingest([str(root)], str(db), progress=False)
    cmd = _unprivileged([sys.executable, "-m", "fastdicom", "ingest", str(root), "--db",
                         str(db), "-q"])
    if cmd is None:
        pytest.skip("root without setpriv: permissions cannot apply")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = db.read_bytes()
    os.chmod(db, 0o444)
    try:
        same = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert same.returncode == 0, same.stderr
        assert json.loads(same.stdout.strip().splitlines()[-1])["unchanged"] == 4
        assert "checkpoint" not in same.stderr and "WARNING" not in same.stderr, same.stderr
        assert db.read_bytes() == before
        changed = sorted(root.iterdir())[0]
        changed.write_bytes(changed.read_bytes() + b"\0\0")
        fails = subprocess.run(cmd, env=env, capture_output=True, text=True)
    finally:
        os.chmod(db, 0o644)
    assert fails.returncode == 1, fails.stderr
    assert "readonly" in json.loads(fails.stdout.strip().splitlines()[-1])["message"]


def _parts_and_index(db, parts):
    """The rows of the referenced Parquet parts (as scan rows) and the instance table."""
    con = sqlite3.connect(db)
    try:
        names = [n for (n,) in con.execute("SELECT part FROM batches WHERE part IS NOT NULL")]
        inst = sorted(con.execute("SELECT display_path, sop_instance_uid FROM instances"))
    finally:
        con.close()
    assert sorted(p.name for p in parts.glob("*.parquet")) == sorted(names)  # none stale
    tables = [pq.read_table(parts / n) for n in names]
    rows = pa.concat_tables(tables) if tables else None
    got = [] if rows is None else sorted(zip(rows.column("path").to_pylist(),
                                             rows.column("SOPInstanceUID").to_pylist()))
    return got, inst, rows


def test_parquet_parts_follow_rows_removed_or_promoted_by_later_batches(tmp_path):
    # a part kept the row of a file that a later batch or job re-indexed (changed), marked
    # missing, failed, or outdid with a copy of a smaller path; a copy promoted to the
    # instance row was in no part: the parts no longer equalled the instance table
    from fastdicom import scan
    root = tmp_path / "r"
    root.mkdir()
    for k in range(6):
        (root / f"f{k}.dcm").write_bytes(_one(k))
    (root / "z_copy.dcm").write_bytes(_one(1))         # a duplicate of f1 (larger path)
    (root / "y_copy.dcm").write_bytes(_one(2, instance_number=77))    # a conflict of f2
    db, parts = str(tmp_path / "i.sqlite"), tmp_path / "parts"

    def run(*paths):
        ingest(list(paths) or [root], db, parquet=str(parts), batch_size=2)
        got, inst, rows = _parts_and_index(db, parts)
        assert got == inst
        return rows

    run()
    # a smaller path of f3's UID, given after the rest (a later batch): f3 is outdone
    (root / "a_first.dcm").write_bytes(_one(3))
    run(*sorted(root.glob("f*.dcm")), *sorted(root.glob("[yz]*.dcm")), root / "a_first.dcm")
    # f0 changed (re-indexed), f1 gone (its duplicate takes its place), f2 not DICOM now
    # (its conflicting copy takes its place)
    (root / "f0.dcm").write_bytes(_one(0, instance_number=5))
    os.unlink(root / "f1.dcm")
    (root / "f2.dcm").write_bytes(b"not dicom")
    rows = run()
    con = sqlite3.connect(db)
    states = dict((os.path.basename(d), s) for d, s in con.execute(
        "SELECT display, state FROM files"))
    con.close()
    assert (states["f1.dcm"], states["z_copy.dcm"], states["f2.dcm"],
            states["y_copy.dcm"], states["f3.dcm"]) == \
        ("missing", "indexed", "failed", "indexed", "duplicate")
    # the promoted copies' rows are their files' scan rows (oracle: scan itself)
    for name in ("z_copy.dcm", "y_copy.dcm", "f0.dcm"):
        mine = rows.filter(pa.compute.equal(rows.column("path"), str(root / name)))
        ref = scan([root / name], list(rows.schema.names[3:-8]))
        assert mine.num_rows == 1
        for col in rows.schema.names:
            if col not in ("mtime_ns",):
                assert mine.column(col).to_pylist() == ref.column(col).to_pylist(), col


def test_copy_with_a_smaller_path_in_another_series_leaves_no_stale_series(tmp_path):
    # the displaced winner's series and study kept their rows (num_instances 1, no
    # instance in them): the hierarchy depended on the walk and batch order
    root = tmp_path / "t"
    (root / "a").mkdir(parents=True)
    (root / "b.dcm").write_bytes(_tiny_bytes(1, study=2, series=2))
    (root / "a" / "x.dcm").write_bytes(_tiny_bytes(1, study=1, series=1))   # same UID
    db = str(tmp_path / "i.sqlite")
    ingest([root], db, batch_size=1)         # b.dcm is walked (and indexed) first
    con = sqlite3.connect(db)
    try:
        series = con.execute("SELECT series_instance_uid, num_instances FROM series").fetchall()
        inst = con.execute("SELECT series_instance_uid, count(*) FROM instances"
                           " GROUP BY 1").fetchall()
        studies = con.execute("SELECT count(*) FROM studies").fetchone()[0]
        patients = con.execute("SELECT sum(num_studies) FROM patients").fetchone()[0]
    finally:
        con.close()
    assert sorted(series) == sorted(inst) and len(inst) == 1
    assert studies == patients == 1


def test_parquet_parts_keep_rows_of_other_files_with_the_same_display_path(tmp_path):
    # two undecodable names display alike: removing one file's row removed both from
    # the parts
    root = tmp_path / "t"
    root.mkdir()
    base = os.fsencode(str(root))
    with open(base + b"/a\xff.dcm", "wb") as fh:
        fh.write(_one(1))
    with open(base + b"/a\xfe.dcm", "wb") as fh:
        fh.write(_one(2))
    db, parts = str(tmp_path / "i.sqlite"), tmp_path / "parts"
    ingest([root], db, parquet=str(parts))
    os.unlink(base + b"/a\xfe.dcm")
    ingest([root], db, parquet=str(parts))
    got, inst, _ = _parts_and_index(db, parts)
    assert got == inst and len(inst) == 1


def test_counts_do_not_depend_on_the_order_of_inputs_or_batches(tmp_path):
    # a copy promoted by an earlier batch of the job (its original now fails) was counted
    # "unchanged" when its own batch read the ledger after that commit, "indexed" when
    # before: the counts depended on the order of the paths and on the batch size
    results = {}
    for order in ("original first", "copy first", "walk"):
        for batch_size in (1, 100):
            root = tmp_path / f"{order.replace(' ', '_')}{batch_size}"
            (root / "a").mkdir(parents=True)
            (root / "b").mkdir()
            (root / "a" / "x.dcm").write_bytes(_one(1))
            (root / "b" / "x.dcm").write_bytes(_one(1))       # an identical copy
            fillers = []
            for k in range(2, 10):
                fillers.append(root / f"f{k}.dcm")
                fillers[-1].write_bytes(_one(k))
            db = str(root / "i.sqlite")
            r = ingest([root], db, workers=1)
            assert (r.indexed, r.duplicate) == (9, 1)
            (root / "a" / "x.dcm").write_bytes(b"not dicom")    # the copy takes its place
            paths = {"original first": [root / "a" / "x.dcm", *fillers, root / "b" / "x.dcm"],
                     "copy first": [root / "b" / "x.dcm", *fillers, root / "a" / "x.dcm"],
                     "walk": [root]}[order]
            r = ingest(paths, db, workers=1, batch_size=batch_size)
            con = sqlite3.connect(db)
            states = sorted((os.path.relpath(os.fsdecode(p), root), s) for p, s in
                            con.execute("SELECT path, state FROM files"))
            inst = [os.path.relpath(os.fsdecode(p), root) for (p,) in con.execute(
                "SELECT path FROM instances WHERE sop_instance_uid=?",
                (testing.uid_from(("inst", 1)),))]
            con.close()
            results[order, batch_size] = (r.counts(), states, inst)
    counts, states, inst = results["walk", 100]
    # the promoted copy counts as indexed, as when the original is gone
    assert (counts["files"], counts["indexed"], counts["unchanged"], counts["failed"]) == \
        (10, 1, 8, 1), counts
    assert dict(states)["b/x.dcm"] == "indexed" and dict(states)["a/x.dcm"] == "failed"
    assert inst == ["b/x.dcm"]
    for key, got in results.items():
        assert got == results["walk", 100], key


def test_glob_input_marks_vanished_files_missing(tmp_path, monkeypatch, capsys):
    # the glob was expanded before the job and only its expansion was the job's scope: a
    # file it matched last time and gone now stayed "indexed" (a folder input marks it
    # missing)
    from fastdicom.ingest import main
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "d"
    (d / "s.dcm").mkdir(parents=True)      # a folder the glob matches: walked
    for k in range(3):
        (d / f"f{k}.dcm").write_bytes(_one(k))
    (d / "s.dcm" / "inner.dcm").write_bytes(_one(5))
    (d / "other.txt").write_bytes(_one(7))
    (d / ".hidden.dcm").write_bytes(_one(8))
    db = str(tmp_path / "i.sqlite")
    r = ingest([d / "other.txt", d / ".hidden.dcm"], db)
    assert r.indexed == 2
    assert main(["ingest", "d/*.dcm", "--db", db, "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (last["files"], last["indexed"]) == (4, 4), last
    con = sqlite3.connect(db)
    # folders an earlier job could not list (written by hand: root lists every folder)
    con.executemany("INSERT INTO dir_errors(path, display, error_type, message, errno, time)"
                    " VALUES(?, ?, 'PermissionError', 'denied', 13, 0)",
                    [(os.fsencode(d / "gone.dcm"), "matched by the glob, gone"),
                     (os.fsencode(d / "gone"), "not matched by the glob")])
    con.commit()
    con.close()
    # gone: a file the glob matched, a folder it matched, and files outside its scope
    (d / "f1.dcm").unlink()
    (d / "s.dcm" / "inner.dcm").unlink()
    (d / "s.dcm").rmdir()
    (d / "other.txt").unlink()
    (d / ".hidden.dcm").unlink()
    assert main(["ingest", "d/*.dcm", "--db", db, "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (last["files"], last["unchanged"], last["missing"]) == (4, 2, 2), last
    con = sqlite3.connect(db)
    states = {os.path.relpath(os.fsdecode(p), d): s
              for p, s in con.execute("SELECT path, state FROM files")}
    inst = sorted(os.path.relpath(os.fsdecode(p), d)
                  for (p,) in con.execute("SELECT path FROM instances"))
    left = [os.fsdecode(p) for (p,) in con.execute("SELECT path FROM dir_errors")]
    con.close()
    assert states == {"f0.dcm": "indexed", "f1.dcm": "missing", "f2.dcm": "indexed",
                      "s.dcm/inner.dcm": "missing", "other.txt": "indexed",
                      ".hidden.dcm": "indexed"}
    assert inst == [".hidden.dcm", "f0.dcm", "f2.dcm", "other.txt"]
    assert left == [str(d / "gone")]
    # the same glob as the API takes it, absolute: nothing more to mark
    r = ingest([str(d / "*.dcm")], db)
    assert (r.files, r.unchanged, r.missing) == (2, 2, 0)


def test_listed_file_with_glob_characters_in_its_name_is_marked_missing(tmp_path):
    # a listed "a[1].dcm" that is gone is taken for a glob (glob characters, no such path):
    # the glob matches "a1.dcm", not the file's own name, so it stayed indexed
    d = tmp_path / "d"
    d.mkdir()
    odd, plain = d / "a[1].dcm", d / "a1.dcm"
    odd.write_bytes(_one(1))
    plain.write_bytes(_one(2))
    db = str(tmp_path / "i.sqlite")
    assert ingest([odd, plain], db).indexed == 2
    odd.unlink()
    r = ingest([odd, plain], db)
    assert (r.files, r.unchanged, r.missing) == (2, 1, 1), r.counts()
    con = sqlite3.connect(db)
    states = {os.fsdecode(p): s for p, s in con.execute("SELECT path, state FROM files")}
    con.close()
    assert states == {str(odd): "missing", str(plain): "indexed"}


def test_followed_link_winner_and_its_identical_copies_are_duplicates(tmp_path):
    # with follow_symlinks a link read through wins (smallest path); its hash was taken
    # without following it (None), so its identical target and copy became "conflict"
    t = tmp_path / "tree"
    (t / "real").mkdir(parents=True)
    (t / "real" / "b.dcm").write_bytes(_one(1))
    (t / "real" / "c.dcm").write_bytes(_one(1))
    (t / "real" / "d.dcm").write_bytes(_one(1, instance_number=99))   # same UID, other bytes
    os.symlink(t / "real" / "b.dcm", t / "a_link.dcm")
    db = str(tmp_path / "i.sqlite")
    r = ingest([t], db, follow_symlinks=True)
    assert (r.indexed, r.duplicate, r.conflict) == (1, 2, 1), r.counts()
    con = sqlite3.connect(db)
    states = {os.path.relpath(os.fsdecode(p), t): s
              for p, s in con.execute("SELECT path, state FROM files")}
    con.close()
    assert states == {"a_link.dcm": "indexed", "real/b.dcm": "duplicate",
                      "real/c.dcm": "duplicate", "real/d.dcm": "conflict"}


def test_export_keeps_file_names_that_are_not_utf8(tmp_path):
    # "caf\xe9.dcm" and "caf\xe8.dcm" both became "caf\ufffd.dcm" in the exported path: two
    # files, one path.  path holds the exact bytes now (display_path the text form)
    root = tmp_path / "t"
    root.mkdir()
    names = [b"caf\xe9.dcm", b"caf\xe8.dcm", b"plain.dcm"]
    for k, name in enumerate(names):
        with open(os.path.join(os.fsencode(root), name), "wb") as fh:
            fh.write(_one(k))
    db = str(tmp_path / "i.sqlite")
    assert ingest([root], db).indexed == 3
    out = tmp_path / "o.parquet"
    assert export_parquet(db, out) == 3
    t = pq.read_table(out)
    got = sorted(t.column("path").to_pylist())
    assert got == sorted(os.path.join(os.fsencode(root), n) for n in names)
    assert str(root / "plain.dcm") in t.column("display_path").to_pylist()


def test_ls_views_header_tags_and_escapes(tmp_path, capsys):
    """`fastdicom ls`: a header line naming the columns (--no-header: none), a line per
    patient, study, series, instance or failure, tags as (GGGG,EEEE), and a tab or line
    break inside a value escaped, so that every row is one line of as many cells."""
    from fastdicom import cli
    root = tmp_path / "t"
    testing.write_ct_series(root / "s", 3, 8, 8, seed=4)
    bad = root / "bad.dcm"
    data = bytearray((root / "s").joinpath(sorted(os.listdir(root / "s"))[0]).read_bytes())
    bad.write_bytes(bytes(data[:-40]))      # cut inside the Pixel Data value
    tabbed = root / "tab\tand\nline.dcm"
    tabbed.write_bytes(b"not dicom")
    db = str(tmp_path / "i.sqlite")
    r = ingest([root], db, workers=1, progress=False)
    assert (r.indexed, r.failed) == (3, 2)
    con = sqlite3.connect(db)
    want_fail = {os.fsdecode(p): (t, o, g) for p, t, o, g in con.execute(
        "SELECT path, error_type, offset, tag FROM failures")}
    con.close()

    def ls(*opts):
        assert cli.main(["ls", db, *opts]) == 0
        return capsys.readouterr().out.splitlines()
    out = ls()
    assert out[0] == "state\tfiles" and sorted(out[1:]) == ["failed\t2", "indexed\t3"]
    assert ls("--no-header") == out[1:]
    for opt, n in (("--patients", 1), ("--studies", 1), ("--series", 1), ("--instances", 3),
                   ("--failures", 2)):
        lines = ls(opt)
        width = len(lines[0].split("\t"))
        assert len(lines) == 1 + n, opt
        assert all(len(line.split("\t")) == width for line in lines), opt
    inst = ls("--instances")
    assert inst[0].split("\t")[:3] == ["sop_instance_uid", "series_instance_uid", "path"]
    assert sorted(line.split("\t")[2] for line in inst[1:]) == sorted(
        str(root / "s" / n) for n in os.listdir(root / "s"))
    rows = {line.split("\t")[0]: line.split("\t") for line in ls("--failures")[1:]}
    assert str(tabbed).replace("\t", "\\t").replace("\n", "\\n") in rows
    etype, offset, tag = want_fail[str(bad)]
    assert etype == "TruncatedError" and tag == 0x7FE00010
    assert rows[str(bad)][1:] == [etype, rows[str(bad)][2], str(offset), "(7FE0,0010)"]
    assert rows[str(tabbed).replace("\t", "\\t").replace("\n", "\\n")][4] == ""


def test_ledger_lookup_by_range_equals_lookup_by_key(tmp_path):
    """The ledger rows of a batch's paths, read by one range scan of the primary key, are
    exactly those a lookup of each path gives: contiguous keys, keys with many other
    paths sorting between them (the range is given up), repeated keys, few keys."""
    from fastdicom.ingest import _ledger_of
    con = sqlite3.connect(str(tmp_path / "l.sqlite"), isolation_level=None)
    con.execute("CREATE TABLE files(path BLOB PRIMARY KEY, display TEXT, size INTEGER,"
                " mtime_ns INTEGER, state TEXT, reason TEXT) WITHOUT ROWID")
    rng = random.Random(5)
    paths = sorted({b"/d/%06d/%s" % (rng.randrange(10**6), bytes([rng.randrange(1, 256)]))
                    for _ in range(3000)})
    con.executemany("INSERT INTO files VALUES(?,?,?,?,?,?)",
                    [(p, "", i, i * 7, rng.choice(["indexed", "failed"]), None)
                     for i, p in enumerate(paths)])

    def by_key(keys):
        return {k: r for k in set(keys) for r in con.execute(
            "SELECT path, size, mtime_ns, state, reason FROM files WHERE path=?", (k,))}
    absent = [b"/d/none%d" % i for i in range(50)]
    cases = {
        "contiguous": paths[100:1100],
        "contiguous, shuffled, with absent": rng.sample(paths[500:900] + absent, 450),
        "sparse": paths[::20],                     # 150 keys, 3000 rows in their range
        "repeated": paths[10:200] * 2,
        "few": paths[7:30],
        "none indexed": absent * 2,
        "empty": [],
    }
    for name, keys in cases.items():
        got = _ledger_of(con, keys)
        assert got == by_key(keys), name
        assert all(isinstance(v, tuple) and len(v) == 5 for v in got.values()), name


def test_reread_keeps_the_columns_of_tags_it_does_not_read(tmp_path):
    """A job with ``reread`` and another tag list NULLed the columns of the tags an earlier
    job indexed, for files that had not changed (ImageType of every row).  An unchanged file
    keeps them; a changed one does not (its old values may be stale); a copy keeps its own."""
    d = tmp_path / "d"
    paths = testing.write_ct_series(d, 3, 8, 8)
    copy = tmp_path / "z" / "copy.dcm"          # a byte-identical copy: a duplicate row
    copy.parent.mkdir()
    copy.write_bytes(paths[0].read_bytes())
    db = str(tmp_path / "i.sqlite")
    ingest([str(d), str(copy.parent)], db, tags=["SOPInstanceUID", "ImageType"], workers=1)
    ingest([str(d), str(copy.parent)], db, tags=["SOPInstanceUID", "StudyDate"], workers=1)
    # one file changes (its contents and mtime): its ImageType is not known any more
    data = bytearray(paths[1].read_bytes())
    i = data.index(b"ORIGINAL")
    data[i:i + 8] = b"DERIVED "
    paths[1].write_bytes(bytes(data))
    st = paths[1].stat()
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    r = ingest([str(d), str(copy.parent)], db, tags=["SOPInstanceUID", "StudyDate"],
               workers=1, reread=True)
    assert (r.indexed, r.duplicate) == (3, 1)
    con = sqlite3.connect(db)
    rows = dict(con.execute("SELECT path, ImageType FROM instances").fetchall())
    dates = {v for (v,) in con.execute("SELECT StudyDate FROM instances")}
    assert dates == {"20160407"}
    keep = '["ORIGINAL", "PRIMARY", "AXIAL"]'
    assert rows == {os.fsencode(os.path.abspath(paths[0])): keep,
                    os.fsencode(os.path.abspath(paths[1])): None,
                    os.fsencode(os.path.abspath(paths[2])): keep}
    assert con.execute("SELECT ImageType, StudyDate FROM instance_copies").fetchall() == \
        [(keep, "20160407")]


def test_ingest_tables_warns_about_rows_scanned_without_the_index_tags(tmp_path):
    """Rows scanned with a tag list of their own (read_headers(paths, ["SOPInstanceUID",
    "Rows"])) gave an index with NULL UIDs and empty series/studies tables, silently (ingest
    reads INDEX_TAGS whatever it is asked)."""
    import warnings
    from fastdicom.batch import DEFAULT_TAGS, scan
    from fastdicom.ingest import INDEX_TAGS, ingest_tables
    assert set(INDEX_TAGS) <= set(DEFAULT_TAGS)
    d = tmp_path / "d"
    testing.write_ct_series(d, 2, 4, 4)
    few = scan(str(d), ["SOPInstanceUID", "Rows"])
    with pytest.warns(UserWarning, match="no SOPClassUID, SeriesInstanceUID.*INDEX_TAGS"):
        ingest_tables(few, str(tmp_path / "few.sqlite"))
    full = scan(str(d), list(INDEX_TAGS) + ["ImageType"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = ingest_tables(full, str(tmp_path / "full.sqlite"))
    assert r.indexed == 2
    ref = str(tmp_path / "ref.sqlite")
    ingest([str(d)], ref, tags=["ImageType"], workers=1)
    q = ("SELECT sop_instance_uid, series_instance_uid, study_instance_uid, sop_class_uid,"
         " columns, PatientID, ImageType FROM instances ORDER BY 1")
    assert sqlite3.connect(str(tmp_path / "full.sqlite")).execute(q).fetchall() == \
        sqlite3.connect(ref).execute(q).fetchall()
    for t in ("series", "studies", "patients"):
        assert sqlite3.connect(str(tmp_path / "full.sqlite")).execute(
            f"SELECT count(*) FROM {t}").fetchone()[0] == 1


def test_ingest_tables_keys_a_name_that_is_not_utf8_as_ingest_does(tmp_path):
    """scan's path column shows a name that is not UTF-8 with U+FFFD; ingest_tables keyed the
    file by that text, so its ledger row named no file (a local ingest has the real bytes)
    and a byte-identical copy could not be hashed: 'conflict' instead of 'duplicate'.  The
    real name is now found in the folder's listing; two names that show alike cannot be told
    apart and keep the text."""
    from fastdicom.batch import scan
    from fastdicom.ingest import ingest_tables
    root = os.fsencode(tmp_path)
    os.makedirs(root + b"/d\xff")
    els = testing.ct_instance_elements(rows=4, columns=4)
    testing.write_file(root + b"/d\xff/a.dcm", els)
    with open(root + b"/d\xff/a.dcm", "rb") as f:
        data = f.read()
    for name in (b"/d\xff/caf\xe9.dcm", b"/d\xff/z.dcm"):
        with open(root + name, "wb") as f:
            f.write(data)
    folder = os.fsdecode(root + b"/d\xff")
    ref = str(tmp_path / "ref.sqlite")
    r1 = ingest([folder], ref, workers=1)
    assert (r1.indexed, r1.duplicate) == (1, 2)
    table = scan([folder])
    assert all("\ufffd" in p for p in table.column("path").to_pylist())
    db = str(tmp_path / "t.sqlite")
    assert ingest_tables(table, db).counts() == r1.counts()
    q = "SELECT path, state, display FROM files ORDER BY path"
    assert sqlite3.connect(db).execute(q).fetchall() == sqlite3.connect(ref).execute(q).fetchall()
    # two names that show alike: kept as written (one path)
    for name in (b"/d\xff/x\xe9.dcm", b"/d\xff/x\xe8.dcm"):
        with open(root + name, "wb") as f:
            f.write(b"not dicom")
    r3 = ingest_tables(scan([folder]), str(tmp_path / "t3.sqlite"))
    assert (r3.files, r3.failed) == (4, 1)
    shown = root + b"/d\xef\xbf\xbd/x\xef\xbf\xbd.dcm"
    assert sqlite3.connect(str(tmp_path / "t3.sqlite")).execute(
        "SELECT path FROM files WHERE state = 'failed'").fetchall() == [(shown,)]


def test_export_into_a_missing_folder_names_the_output(tmp_path):
    """The error named the temporary file ('o.parquet.tmp'), not the output asked for."""
    (tmp_path / "empty").mkdir()
    db = str(tmp_path / "i.sqlite")
    ingest([tmp_path / "empty"], db)
    out = tmp_path / "nodir" / "o.parquet"
    with pytest.raises(FileNotFoundError) as e:
        export_parquet(db, out)
    assert e.value.filename == str(out) and ".tmp" not in str(e.value)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "fastdicom", "export", db, str(out)],
                       capture_output=True, text=True, env=env, cwd=str(ROOT))
    assert r.returncode == 1 and str(out) in r.stderr and ".tmp" not in r.stderr
    assert not (tmp_path / "nodir").exists()


def test_files_of_a_folder_that_cannot_be_searched_are_not_missing(tmp_path, monkeypatch):
    """A folder that may no longer be listed or searched (EACCES) hides its files; they were
    marked ``missing`` and their instance rows deleted (``os.path.lexists`` is False on
    EACCES).  They are kept, and the folder is a ``dir_errors`` row."""
    import errno
    from fastdicom import batch
    root = tmp_path / "t"
    testing.write_ct_series(root / "locked", 3, 4, 4, seed=1)
    testing.write_ct_series(root / "ok", 2, 4, 4, seed=2)
    db = str(tmp_path / "i.sqlite")
    assert ingest([str(root)], db, workers=1).indexed == 5
    locked = str(root / "locked")

    def denied(p):
        p = os.fsdecode(p)
        return p == locked or p.startswith(locked + "/")
    real_listing, real_lstat, real_stat = batch._dir_listing, os.lstat, os.stat

    def listing(d):
        if denied(d):
            raise PermissionError(errno.EACCES, "Permission denied", d)
        return real_listing(d)

    def lstat(p, *a, **kw):     # (the folder itself may be looked at, not what is in it)
        if denied(p) and os.fsdecode(p) != locked:
            raise PermissionError(errno.EACCES, "Permission denied", p)
        return real_lstat(p, *a, **kw)

    def stat_(p, *a, **kw):
        if denied(p) and os.fsdecode(p) != locked:
            raise PermissionError(errno.EACCES, "Permission denied", p)
        return real_stat(p, *a, **kw)
    monkeypatch.setattr(batch, "_dir_listing", listing)
    monkeypatch.setattr(os, "lstat", lstat)
    monkeypatch.setattr(os, "stat", stat_)
    r = ingest([str(root)], db, workers=1)
    assert (r.missing, r.dir_errors, r.unchanged) == (0, 1, 2), r.counts()
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM instances").fetchone()[0] == 5
    assert con.execute("SELECT count(*) FROM files WHERE state = 'indexed'").fetchone()[0] == 5
    monkeypatch.undo()
    r = ingest([str(root)], db, workers=1)
    assert (r.unchanged, r.missing, r.dir_errors) == (5, 0, 0)
    # a folder really gone: its files are missing
    import shutil
    shutil.rmtree(root / "locked")
    r = ingest([str(root)], db, workers=1)
    assert (r.unchanged, r.missing) == (2, 3)


def test_export_does_not_replace_a_fifo_a_folder_or_a_symlink(tmp_path):
    """The export is written to out.tmp and renamed over out: a fifo (and, run as root, a
    device such as /dev/full) given as the output was replaced by a regular file, and a
    symlink by the file itself.  A symlink is now written through; the others are refused."""
    d = tmp_path / "d"
    testing.write_ct_series(d, 2, 4, 4)
    db = str(tmp_path / "i.sqlite")
    ingest([str(d)], db, workers=1)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        export_parquet(db, fifo)
    assert fifo.is_fifo() and not (tmp_path / "fifo.tmp").exists()
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(IsADirectoryError):
        export_parquet(db, folder)
    assert folder.is_dir() and not list(folder.iterdir())
    target = tmp_path / "target.parquet"
    link = tmp_path / "link.parquet"
    link.symlink_to(target)
    assert export_parquet(db, link) == 2
    assert link.is_symlink() and pq.read_table(link).num_rows == 2
    assert pq.read_table(target).num_rows == 2
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "fastdicom", "export", db, str(fifo)],
                       capture_output=True, text=True, env=env, cwd=str(ROOT))
    assert r.returncode == 1 and "not a regular file" in r.stderr and fifo.is_fifo()


@pytest.mark.parametrize("version, app", [(3, 0), (1, 0), (2, 0), (7, 0), (0, 0x12345678),
                                          (3, 0x12345678)])
def test_another_programs_database_with_a_schema_version_is_left_as_it_is(tmp_path, version,
                                                                         app):
    # only a version-0 database with tables was refused: with user_version 3 the job put its
    # tables in beside the other program's and indexed into it (exit 0); with 1 or 2 it
    # failed on a missing table, after switching the file to WAL; and the refusal left a
    # <db>.lock file beside it
    from fastdicom.ingest import NotAnIndexError
    db = tmp_path / "app.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO accounts VALUES (1, 'alice')")
    con.execute(f"PRAGMA user_version={version}")
    con.execute(f"PRAGMA application_id={app}")
    con.commit()
    con.close()
    before = db.read_bytes()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.dcm").write_bytes(_one(1))
    with pytest.raises(NotAnIndexError, match="not a fastdicom index.*left as it is"):
        ingest([tmp_path / "in"], str(db), workers=1)
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "in"]


def test_an_index_carries_the_application_id(tmp_path):
    # an index made before the application id (schema 3, the index's tables) is still one,
    # and gets it from its next job
    from fastdicom.ingest import APPLICATION_ID
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.dcm").write_bytes(_one(1))
    db = str(tmp_path / "i.sqlite")
    ingest([tmp_path / "in"], db, workers=1)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    con.execute("PRAGMA application_id=0")
    con.commit()
    con.close()
    (tmp_path / "in" / "b.dcm").write_bytes(_one(2))
    r = ingest([tmp_path / "in"], db, workers=1)
    assert (r.unchanged, r.indexed) == (1, 1)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    con.close()
    # a lock file that was there before a refusal stays (only the job's own is removed)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t(x)")
    con.close()
    (tmp_path / "other.db.lock").write_bytes(b"")
    with pytest.raises(RuntimeError, match="not a fastdicom index"):
        ingest([tmp_path / "in"], str(other), workers=1)
    assert (tmp_path / "other.db.lock").exists()


def test_the_parquet_parts_stay_in_one_folder(tmp_path, caplog):
    # a job given another --parquet folder wrote its part there and left the rows it removed
    # in the earlier parts, which it never saw (silently)
    import logging
    import pyarrow.parquet as pq
    root = tmp_path / "in"
    root.mkdir()
    for k in range(6):
        (root / f"{k}.dcm").write_bytes(_one(k))
    db = str(tmp_path / "i.sqlite")
    a, b = tmp_path / "A", tmp_path / "B"
    ingest([root], db, workers=1, parquet=str(a), batch_size=2)
    (root / "0.dcm").unlink()
    with pytest.raises(RuntimeError, match=r"Parquet parts are in .*A', not in .*B"):
        ingest([root], db, workers=1, parquet=str(b))
    assert not b.exists()
    a.rename(b)                 # moved: the parts are all there
    r = ingest([root], db, workers=1, parquet=str(b))
    assert r.missing == 1
    rows = pq.read_table(b).column("path").to_pylist()
    assert sorted(rows) == sorted(str(root / f"{k}.dcm") for k in range(1, 6))
    (root / "1.dcm").unlink()
    with caplog.at_level(logging.WARNING, logger="fastdicom"):
        ingest([root], db, workers=1)
    assert f"Parquet parts in {os.path.realpath(b)} as they are" in caplog.text


def test_hashes_follow_the_collisions_a_fresh_job_would_see(tmp_path):
    """``files.sha256`` holds a hash only for files whose SOPInstanceUID collides (the only
    time contents are hashed).  When copies go (deleted, or changed to another UID), the file
    left alone with its UID drops its hash, so a re-run ends with the ledger a fresh job over
    the final tree writes, hashes included."""
    import hashlib
    root = tmp_path / "tree"
    root.mkdir()
    names = {}
    for k in range(6):
        data = _tiny_bytes(k, study=1, series=1)
        names[k] = root / f"f{k}.dcm"
        names[k].write_bytes(data)
    # copies: k=0 twice identical (a0 < f0: a0 wins), k=1 in conflict, k=2 three ways
    (root / "a0.dcm").write_bytes(names[0].read_bytes())
    (root / "z1.dcm").write_bytes(names[1].read_bytes() + b"\0\0")
    (root / "b2.dcm").write_bytes(names[2].read_bytes())
    (root / "c2.dcm").write_bytes(names[2].read_bytes() + b"\0\0")

    def hashes(db):
        con = sqlite3.connect(db)
        try:
            return {os.fsdecode(p): h for p, h in con.execute(
                "SELECT path, sha256 FROM files WHERE state != 'missing'")}
        finally:
            con.close()
    db = str(tmp_path / "grown.sqlite")
    ingest([root], db, batch_size=3)
    first = hashes(db)
    hashed = {os.path.basename(p) for p, h in first.items() if h is not None}
    assert hashed == {"a0.dcm", "f0.dcm", "f1.dcm", "z1.dcm", "b2.dcm", "c2.dcm", "f2.dcm"}
    for p, h in first.items():
        if h is not None:
            assert h == hashlib.sha256(Path(p).read_bytes()).digest()
    # the winner's copy goes, a loser goes, one copy of three goes, one gets another UID
    (root / "a0.dcm").unlink()
    (root / "z1.dcm").write_bytes(_tiny_bytes(33, study=1, series=1) + b"\0\0")
    (root / "c2.dcm").unlink()
    r = ingest([root], db, batch_size=3)
    assert (r.missing, r.indexed) == (2, 2)      # (f0 promoted, z1 of a new UID)
    fresh = str(tmp_path / "fresh.sqlite")
    ingest([root], fresh, batch_size=3)
    assert hashes(db) == hashes(fresh)
    assert {os.path.basename(p) for p, h in hashes(fresh).items() if h is not None} == \
        {"b2.dcm", "f2.dcm"}
    assert _dump(db)["inst"] == _dump(fresh)["inst"]


def test_cli_names_absent_inputs_and_where_failures_are(tmp_path):
    """A path named on the command line that does not exist is said on stderr before the job
    (and counted as one failed file, as before); a glob that matches nothing is said too; the
    summary of a job with failed files says where their reasons are.  --quiet says none."""
    root = tmp_path / "t"
    testing.write_ct_series(root, 2, 16, 16, seed=5)
    (root / "junk.dcm").write_bytes(b"not dicom")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    db = tmp_path / "a b.sqlite"
    absent = tmp_path / "typo"
    args = [str(root), str(absent), str(tmp_path / "*.nothing"), "--db", str(db)]
    out = subprocess.run([sys.executable, "-m", "fastdicom", "ingest", *args],
                         capture_output=True, text=True, env=env, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout.splitlines()[-1])
    assert counts["files"] == 4 and counts["indexed"] == 2 and counts["failed"] == 2, counts
    err = out.stderr
    assert f"{str(absent)!r} does not exist (counted as a failed file)" in err
    assert f"{str(tmp_path / '*.nothing')!r} matches no path" in err
    assert f"the reasons of the 2 failed: fastdicom ls '{db}' --failures" in err
    assert str(root) + "'" not in err      # the existing folder is not named
    failures = _count_failures(db)
    assert failures == {str(absent): "FileNotFoundError",
                        str(root / "junk.dcm"): "InvalidDicomError"}, failures
    quiet = subprocess.run([sys.executable, "-m", "fastdicom", "ingest", *args, "--quiet"],
                           capture_output=True, text=True, env=env, cwd=str(ROOT))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def _count_failures(db) -> dict:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT display, error_type FROM failures"))
    finally:
        con.close()


def test_hierarchy_tables_are_complete_whatever_tags_are_asked(tmp_path):
    """The series, studies and patients tables take their values from instance tags; asked
    for a few tags (``--tags ImageType``), a job left series_description, study_date,
    study_time, study_id, study_description, patient_birth_date and patient_sex NULL although
    every file has them.  Oracle: pydicom's reading of the first instance."""
    pydicom = pytest.importorskip("pydicom")
    d = tmp_path / "d"
    testing.write_ct_series(d, 3, 4, 4, seed=7)
    db = str(tmp_path / "i.sqlite")
    ingest([str(d)], db, tags=["ImageType"], workers=1, progress=False)
    con = sqlite3.connect(db)
    first = con.execute("SELECT first_sop_instance_uid FROM series").fetchone()[0]
    path = con.execute("SELECT display_path FROM instances WHERE sop_instance_uid=?",
                       (first,)).fetchone()[0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.SeriesDescription and ds.StudyDate and ds.PatientSex      # (the oracle has them)
    assert con.execute("SELECT modality, series_number, series_description FROM series"
                       ).fetchone() == (ds.Modality, int(ds.SeriesNumber), ds.SeriesDescription)
    assert con.execute(
        "SELECT patient_id, patient_name, accession_number, study_date, study_time, study_id,"
        " study_description FROM studies").fetchone() == (
        ds.PatientID, str(ds.PatientName), ds.AccessionNumber, ds.StudyDate, ds.StudyTime,
        ds.StudyID, ds.StudyDescription)
    assert con.execute("SELECT patient_id, patient_name, patient_birth_date, patient_sex"
                       " FROM patients").fetchone() == (
        ds.PatientID, str(ds.PatientName), ds.PatientBirthDate, ds.PatientSex)


def test_index_in_a_missing_folder_names_the_folder(tmp_path, capsys):
    """An index path whose folder does not exist was refused with the error of the job's
    lock file (``No such file or directory: '.../x.sqlite.lock'``), a file the user never
    named; the error names the missing folder, and nothing is created."""
    from fastdicom import cli
    d = tmp_path / "d"
    testing.write_ct_series(d, 1, 4, 4)
    db = tmp_path / "no" / "such" / "x.sqlite"
    with pytest.raises(FileNotFoundError, match="no such folder for the index") as ei:
        ingest([str(d)], str(db), workers=1, progress=False)
    assert ei.value.filename == str(db.parent)
    assert cli.main(["ingest", str(d), "--db", str(db), "--quiet"]) == 1
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["error"] == "FileNotFoundError"
    assert str(db.parent) in last["message"] and ".lock" not in last["message"]
    assert not (tmp_path / "no").exists()


def test_ingest_of_a_recursive_glob_over_a_symlink_loop_ends(tmp_path):
    """'**' followed folder symlinks (glob.glob's way): with two links to parents the
    expansion of the job's input never ended.  Without --follow-symlinks no link is entered
    (the file is indexed once); with it, each folder once."""
    d = tmp_path / "t" / "d"
    d.mkdir(parents=True)
    testing.write_file(d / "x.dcm", [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
                                     (0x00080018, "UI", "1.2.3")])
    (d / "up").symlink_to("..")
    (d / "up2").symlink_to("../..")
    for follow in (False, True):
        r = ingest([f"{tmp_path}/t/**/*.dcm"], str(tmp_path / f"i{follow}.sqlite"),
                   follow_symlinks=follow)
        assert (r.files, r.indexed) == (1, 1), r.as_dict()
