"""Shared fixtures for the pytest-benchmark wrappers of :mod:`fastdicom.bench`.

Each ``bench_<group>.py`` sets ``GROUP = "<group>"`` and takes the ``bench_case`` fixture: one
test per (task, impl) of that group, built by ``fastdicom.bench.groups.build_group`` on data
from ``fastdicom.bench.datagen`` (cached under ``$FASTDICOM_BENCH_DIR`` or
``~/.cache/fastdicom-bench``).  Size from ``$FASTDICOM_BENCH_SIZE`` (default ``tiny``, which
is what CI runs with ``--benchmark-disable``).  Missing peers and not-yet-built features skip
with their reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pytest

from fastdicom.bench import datagen

_TASKS: dict[str, list] = {}


def bench_plan() -> datagen.Plan:
    return datagen.Plan(size=datagen.bench_size())


def _tasks(group: str) -> list:
    if group not in _TASKS:
        from fastdicom.bench.groups import build_group
        _TASKS[group] = build_group(group, bench_plan())
    return _TASKS[group]


@dataclass
class BenchCase:
    task: Any
    impl: Any = None
    missing: Optional[str] = None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bench_case" not in metafunc.fixturenames:
        return
    group = getattr(metafunc.module, "GROUP")
    cases, ids = [], []
    for task in _tasks(group):
        for impl in task.impls:
            cases.append(BenchCase(task, impl))
            ids.append(f"{task.name}|{impl.label}")
        for label, why in task.missing.items():
            cases.append(BenchCase(task, None, why))
            ids.append(f"{task.name}|{label}")
    metafunc.parametrize("bench_case", cases, ids=ids)


@pytest.fixture(scope="session")
def plan() -> datagen.Plan:
    return bench_plan()


@pytest.fixture
def run_case(benchmark):
    """Time one (task, impl) with pytest-benchmark and check its result."""
    def run(case: BenchCase) -> Any:
        if case.impl is None:
            pytest.skip(case.missing)
        task, impl = case.task, case.impl
        benchmark.group = task.name
        benchmark.extra_info.update(kind=impl.kind, threads=impl.threads, unit=task.unit,
                                    items=task.items)
        if impl.max_rounds:
            value = benchmark.pedantic(impl.fn, rounds=impl.max_rounds, iterations=1,
                                       warmup_rounds=0)
        else:
            value = benchmark(impl.fn)
        if value is None:  # pytest-benchmark disabled still returns the value
            value = impl.fn()
        if task.check is not None:
            task.check(impl.label, value)
        return value
    return run
