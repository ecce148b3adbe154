"""pytest-benchmark wrapper of the "pixels" group (the tasks live in fastdicom.bench.groups.pixels).

Run: `pytest benches/bench_pixels.py` (timed) or `pytest benches --benchmark-disable` (CI, tiny)."""
GROUP = "pixels"


def test_pixels(bench_case, run_case):
    run_case(bench_case)
