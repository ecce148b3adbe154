"""pytest-benchmark wrapper of the "frame" group (the tasks live in fastdicom.bench.groups.frame).

Run: `pytest benches/bench_frame.py` (timed) or `pytest benches --benchmark-disable` (CI, tiny)."""
GROUP = "frame"


def test_frame(bench_case, run_case):
    run_case(bench_case)
