"""The fastdicom command line."""
import json
import sqlite3
import re
import subprocess
import sys

import pytest

from fastdicom.cli import main
from fastdicom.testing import write_ct_series


def test_dump_text_and_json(tmp_path, capsys):
    paths = write_ct_series(tmp_path, n_slices=1, rows=16, columns=16)
    assert main(["dump", str(paths[0]), "--depth", "0"]) == 0
    out = capsys.readouterr().out
    assert "(0010,0020) LO PatientID" in out and "TransferSyntaxUID" in out
    assert main(["dump", str(paths[0]), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dataset"]["00280010"] == {"vr": "US", "Value": [16]}


def test_bad_usage_and_bad_file(tmp_path, capsys):
    assert main(["no-such-command"]) == 2
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom")
    assert main(["dump", str(bad)]) == 1
    assert "error" in capsys.readouterr().err


def test_demo_runs(tmp_path):
    import os
    from pathlib import Path
    import fastdicom
    env = dict(os.environ, PYTHONPATH=str(Path(fastdicom.__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-m", "fastdicom", "demo", "--slices", "8",
                           "--rows", "64", "--columns", "64"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "8 instances" in proc.stdout and "demo finished" in proc.stdout
    # the Dataset API and the batch scan, each next to the raw floor
    assert re.search(r"headers: [\d,]+ files/s .*ratio [\d.]+x", proc.stdout)
    assert re.search(r"scan to Arrow: [\d,]+ files/s .*one thread; ratio [\d.]+x", proc.stdout)


def test_demo_runs_without_optional_codecs(tmp_path):
    # the README's first command installs only the runtime dependencies: the demo must finish
    import os
    from pathlib import Path
    import fastdicom
    env = dict(os.environ, PYTHONPATH=str(Path(fastdicom.__file__).resolve().parents[1]))
    code = ("import sys; sys.modules['imagecodecs'] = None; sys.modules['PIL'] = None\n"
            "from fastdicom.demo import run_demo\n"
            "sys.exit(run_demo(n_slices=6, rows=32, columns=32))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "not written" in proc.stdout and "demo finished" in proc.stdout


def test_interrupted_command_exits_130_without_traceback(tmp_path, capsys, monkeypatch):
    """Ctrl-C in a command: one line on stderr and exit 130, not a traceback."""
    import fastdicom.series as series

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(series, "_find_series", interrupted)
    assert main(["series", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "fastdicom: interrupted"


def test_export_that_cannot_replace_its_output_leaves_no_temp_file(tmp_path, capsys):
    """The final rename failed after the data was written (OUT is a directory): exit 1, and
    OUT.tmp was left behind."""
    from fastdicom.ingest import export_parquet, ingest
    write_ct_series(tmp_path / "t", n_slices=2, rows=16, columns=16)
    db = str(tmp_path / "i.sqlite")
    ingest([tmp_path / "t"], db)
    out = tmp_path / "out.parquet"
    out.mkdir()
    listing = ["i.sqlite", "i.sqlite.lock", "out.parquet", "t"]
    assert main(["export", db, str(out)]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
    err = capsys.readouterr().err
    assert err.startswith("fastdicom export: ") and "Is a directory" in err
    assert repr(str(out)) in err and ".tmp" not in err      # names OUT, not its temp file
    with pytest.raises(IsADirectoryError):
        export_parquet(db, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
    assert list(out.iterdir()) == []
    assert main(["export", db, str(tmp_path / "ok.parquet")]) == 0   # a file: written


def test_ingest_into_a_directory_fails_and_leaves_nothing(tmp_path, capsys):
    """``--db`` naming a folder: SQLite's "unable to open database file", and a stray
    ``<dir>.lock`` beside the folder."""
    from fastdicom.ingest import ingest
    write_ct_series(tmp_path / "t", n_slices=1, rows=16, columns=16)
    target = tmp_path / "index"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    for db in (target, tmp_path / "link"):
        assert main(["ingest", str(tmp_path / "t"), "--db", str(db), "--json"]) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "link", "t"]
        captured = capsys.readouterr()
        last = json.loads(captured.out.strip().splitlines()[-1])
        assert last["error"] == "IsADirectoryError" and str(db) in last["message"]
        assert "is a directory" in captured.err
        with pytest.raises(IsADirectoryError):
            ingest([tmp_path / "t"], db)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "link", "t"]
    assert list(target.iterdir()) == []


def test_ingest_into_a_file_that_is_not_sqlite_fails_and_leaves_no_lock(tmp_path, capsys):
    # SQLite's "file is not a database" came after the <db>.lock file was made
    from fastdicom.ingest import ingest
    write_ct_series(tmp_path / "t", n_slices=1, rows=16, columns=16)
    db = tmp_path / "index.sqlite"
    db.write_bytes(b"not an SQLite database, but a text file\n")
    assert main(["ingest", str(tmp_path / "t"), "--db", str(db), "--json"]) == 1
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["error"] == "DatabaseError" and "not a database" in last["message"]
    with pytest.raises(sqlite3.DatabaseError):
        ingest([tmp_path / "t"], db)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.sqlite", "t"]
    assert db.read_bytes() == b"not an SQLite database, but a text file\n"
    db.write_bytes(b"")                 # an empty file is a new database
    assert ingest([tmp_path / "t"], db, progress=False).indexed == 1


@pytest.mark.parametrize("args", [["bench", "--size", "x"], ["bench", "--size", "0"],
                                  ["demo", "--slices", "0"], ["demo", "--rows", "-3"],
                                  ["demo", "--columns", "many"]])
def test_bad_arguments_of_bench_and_demo_are_usage_errors(args):
    # "bench --size x" ended in a ValueError traceback, "demo --slices 0" in a
    # ZeroDivisionError, both with exit code 1; usage errors exit 2 with a message
    r = subprocess.run([sys.executable, "-m", "fastdicom", *args], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and f"argument {args[1]}" in r.stderr


@pytest.mark.parametrize("args, name", [
    (["load", "x.dcm", "-o", "y.npz", "--workers", "0"], "--workers"),
    (["load", "x.dcm", "-o", "y.npz", "--workers", "-1"], "--workers"),
    (["dump", "x.dcm", "--depth", "-1"], "--depth")])
def test_bad_counts_of_load_and_dump_are_usage_errors(args, name):
    """load --workers 0 ended in a ValueError traceback (exit 1) after the scan; dump
    --depth -1 printed no sequence items, silently."""
    r = subprocess.run([sys.executable, "-m", "fastdicom", *args], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and f"argument {name}" in r.stderr


def test_dump_to_a_stream_that_cannot_encode_the_text(tmp_path):
    """A PatientName in Japanese dumped to an ASCII stdout raised UnicodeEncodeError (a
    traceback, exit 1): it is written with backslash escapes."""
    import os
    from fastdicom.testing import ct_instance_elements, write_file
    els = [(t, vr, "Yamada^Tarou=\u5c71\u7530^\u592a\u90ce" if t == 0x00100010 else
            ("ISO_IR 192" if t == 0x00080005 else v))
           for t, vr, v in ct_instance_elements(rows=2, columns=2)]
    path = tmp_path / "ja.dcm"
    write_file(path, els)
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    for fmt in ("text", "json"):
        r = subprocess.run([sys.executable, "-m", "fastdicom", "dump", str(path), "--format",
                            fmt], capture_output=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        out = r.stdout.decode("ascii")
        assert "Traceback" not in r.stderr.decode()
        if fmt == "text":
            assert "Yamada^Tarou=\\u5c71\\u7530^\\u592a\\u90ce" in out
        else:
            assert json.loads(out)["dataset"]["00100010"]["Value"] == [
                {"Alphabetic": "Yamada^Tarou", "Ideographic": "\u5c71\u7530^\u592a\u90ce"}]


def test_render_names_an_output_it_cannot_write(tmp_path):
    """render -o /dev/full said only '[Errno 28] No space left on device'."""
    import os
    import stat
    if not os.path.exists("/dev/full") or not stat.S_ISCHR(os.stat("/dev/full").st_mode):
        pytest.skip("no /dev/full")
    paths = write_ct_series(tmp_path / "s", n_slices=1, rows=8, columns=8)
    r = subprocess.run([sys.executable, "-m", "fastdicom", "render", str(paths[0]), "-o",
                        "/dev/full"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "/dev/full" in r.stderr and "No space left on device" in r.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.parametrize("command", ["ls", "export"])
def test_ls_and_export_of_a_folder_say_so(tmp_path, capsys, command):
    """A folder given as the index gave SQLite's 'disk I/O error'."""
    folder = tmp_path / "not-a-db"
    folder.mkdir()
    args = [command, str(folder)] + ([str(tmp_path / "o.parquet")] if command == "export"
                                     else [])
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "is a directory, not an index" in err and "disk I/O" not in err
