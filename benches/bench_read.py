"""pytest-benchmark wrapper of the "read" group (the tasks live in fastdicom.bench.groups.read).

Run: `pytest benches/bench_read.py` (timed) or `pytest benches --benchmark-disable` (CI, tiny)."""
GROUP = "read"


def test_read(bench_case, run_case):
    run_case(bench_case)


def test_bench_command_writes_report(tmp_path):
    """``fastdicom bench`` end to end on the read group, quick: report, JSON and chart."""
    import json

    from fastdicom.bench import run
    written = run("tiny", ["read"], tmp_path, quick=True, log=None)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert {"machine", "config", "summary", "results"} <= set(doc)
    assert doc["machine"]["cores"] and doc["machine"]["python"]
    md = (tmp_path / "report.md").read_text()
    assert "## Ratios" in md and "read: header + 8 values" in md
    if "ratios.png" in written:
        assert (tmp_path / "ratios.png").stat().st_size > 1000
