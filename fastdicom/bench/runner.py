"""A small timing harness, independent of pytest.

A :class:`Task` is one job ("read 8 header values of a 512x512 CT instance") done by several
:class:`Impl`\\ s: fastdicom, the raw floor, and peers.  :func:`run_task` times every impl in the
same process, on the same files:

* one untimed warm-up call per impl (its result goes to ``Task.check``);
* warm rounds: each round calls the impl ``number`` times (calibrated so a round lasts at least
  ``target_round_s``); rounds are capped by count *and* by a time budget, and interleaved
  across impls (one round of each in turn), so drift during the run hits every impl alike.
  Before each round (untimed) ``gc.collect()`` runs: the cyclic garbage one impl leaves (a
  pydicom round leaves many data sets) is not collected inside, and charged to, the next
  impl's round; each impl still pays for the collections its own allocations cause;
* cold rounds (when ``Task.cold``): before each round every file of the task is dropped from
  the page cache with ``posix_fadvise(POSIX_FADV_DONTNEED)``; one call per round.

Figures are medians over rounds, per item (``Task.items`` items per call: files, frames...).
Nothing is cached between rounds by the harness: impls open their files afresh on every call.
"""
from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

__all__ = ["Impl", "Task", "Goal", "Result", "RunConfig", "run_task", "drop_caches",
           "thread_pool", "parallel_map", "chunks"]


@dataclass
class Impl:
    """One way of doing a task. ``kind`` is ``"ours"``, ``"floor"`` or ``"peer"``."""

    label: str
    fn: Callable[[], Any]
    kind: str = "ours"
    threads: int = 1
    peer: Optional[str] = None
    cold: bool = True          # also time it cold (if the task does)
    max_rounds: Optional[int] = None
    floor: Optional[str] = None  # label of the floor it is compared with (default: same threads)


@dataclass
class Goal:
    """An acceptance goal: ``time(numerator) / time(denominator) <op> value``.

    ``op`` is ``"<="``, ``">="`` or ``"within"`` (``|ratio - 1| <= value``).  With no
    denominator the numerator's time per item (seconds) is compared with ``value``.
    """

    text: str
    numerator: str
    denominator: Optional[str]
    op: str
    value: float
    mode: str = "warm"
    issue: Optional[int] = None


@dataclass
class Task:
    group: str
    name: str
    title: str
    unit: str                       # what one item is: "file", "frame", "call", "series"...
    items: int                      # items per call
    impls: list[Impl]
    nbytes: int = 0                 # bytes per call (for MB/s)
    files: Sequence[Path] = ()      # files to drop before a cold round
    cold: bool = False
    missing: dict[str, str] = field(default_factory=dict)   # peer label -> reason
    goals: list[Goal] = field(default_factory=list)
    check: Optional[Callable[[str, Any], None]] = None
    notes: list[str] = field(default_factory=list)
    series_size: Optional[int] = None   # for the scaling plot
    in_ratio_chart: bool = True         # False for the extra points of the scaling plot
    ours: str = "fastdicom"             # the impl whose ratio and speedups are the headline


@dataclass
class Result:
    task: str
    group: str
    impl: str
    kind: str
    threads: int
    mode: str                      # "warm" / "cold"
    per_item: list[float]          # seconds per item, one value per round
    number: int
    items: int
    nbytes: int
    error: Optional[str] = None

    @property
    def median(self) -> float:
        return statistics.median(self.per_item) if self.per_item else float("nan")

    @property
    def best(self) -> float:
        return min(self.per_item) if self.per_item else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "group": self.group, "impl": self.impl, "kind": self.kind,
                "threads": self.threads, "mode": self.mode, "median_s_per_item": self.median,
                "best_s_per_item": self.best, "rounds": len(self.per_item),
                "calls_per_round": self.number, "items_per_call": self.items,
                "bytes_per_call": self.nbytes, "per_item_s": self.per_item, "error": self.error}


@dataclass
class RunConfig:
    max_rounds: int = 25
    min_rounds: int = 3
    budget_s: float = 2.0          # per impl and mode, warm
    cold_rounds: int = 3
    cold_budget_s: float = 8.0   # per impl (cold rounds are interleaved)
    target_round_s: float = 0.03
    cold: bool = True
    log: Optional[Callable[[str], None]] = None

    @classmethod
    def quick(cls) -> "RunConfig":
        return cls(max_rounds=3, min_rounds=1, budget_s=0.3, cold_rounds=1, cold_budget_s=1.0,
                   target_round_s=0.01, cold=True)


_FADV_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)


def drop_caches(paths: Iterable[Path]) -> bool:
    """Evict ``paths`` from the page cache (fdatasync + posix_fadvise DONTNEED). True if done."""
    if _FADV_DONTNEED is None:
        return False
    ok = True
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            ok = False
            continue
        try:
            try:
                os.fdatasync(fd)
            except OSError:
                pass
            os.posix_fadvise(fd, 0, 0, _FADV_DONTNEED)
        except OSError:
            ok = False
        finally:
            os.close(fd)
    return ok


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def thread_pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``n`` threads (created once, outside any timed region)."""
    with _POOL_LOCK:
        pool = _POOLS.get(n)
        if pool is None:
            pool = _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix=f"fdbench{n}")
        return pool


def chunks(items: Sequence[Any], n: int) -> list[Sequence[Any]]:
    """Split ``items`` into ``n`` contiguous, nearly equal parts."""
    k, r = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        stop = start + k + (1 if i < r else 0)
        out.append(items[start:stop])
        start = stop
    return out


def parallel_map(fn: Callable[[Sequence[Any]], Any], items: Sequence[Any], threads: int) -> list:
    """Run ``fn`` on ``threads`` contiguous chunks of ``items`` in parallel; list of results."""
    if threads <= 1:
        return [fn(items)]
    pool = thread_pool(threads)
    return list(pool.map(fn, chunks(items, threads)))


def _time_calls(fn: Callable[[], Any], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - t0


def _log(cfg: RunConfig, msg: str) -> None:
    if cfg.log is not None:
        cfg.log(msg)


def _calibrate(task: Task, impl: Impl, cfg: RunConfig) -> Result:
    """One untimed warm-up call (its value goes to ``task.check``) and the number of calls
    per round; the Result carries the error when the impl fails."""
    res = Result(task.name, task.group, impl.label, impl.kind, impl.threads, "warm", [], 1,
                 task.items, task.nbytes)
    try:
        t0 = time.perf_counter()
        value = impl.fn()                               # warm-up + correctness
        first = time.perf_counter() - t0
        if task.check is not None:
            task.check(impl.label, value)
        del value
        if first < cfg.target_round_s:
            res.number = max(1, min(100_000, int(cfg.target_round_s / max(first, 1e-7))))
    except Exception as exc:  # a failing peer must not stop the run; it is reported
        res.error = f"{type(exc).__name__}: {exc}"
    return res


def _warm_rounds(task: Task, cfg: RunConfig, runs: list) -> None:
    """Warm rounds interleaved across impls (round-robin): a machine whose speed drifts
    during the run (other tenants, frequency, memory state) moves every impl alike, so the
    ratios of one run compare like with like.  Each impl stops at its round cap, or once it
    has spent ``budget_s`` and has ``min_rounds`` rounds."""
    active = [(impl, res, [0.0]) for impl, res in runs if res.error is None]
    while active:
        for item in list(active):
            impl, res, spent = item
            cap = min(cfg.max_rounds, impl.max_rounds or cfg.max_rounds)
            gc.collect()
            try:
                dt = _time_calls(impl.fn, res.number)
            except Exception as exc:
                res.error, res.per_item = f"{type(exc).__name__}: {exc}", []
                active.remove(item)
                continue
            spent[0] += dt
            res.per_item.append(dt / (res.number * task.items))
            if len(res.per_item) >= cap or (spent[0] >= cfg.budget_s
                                            and len(res.per_item) >= cfg.min_rounds):
                active.remove(item)


def _prewarm(files) -> None:
    """Read every file of a task once so its pages are in the page cache."""
    buf = bytearray(16 << 20)
    view = memoryview(buf)
    for path in files or ():
        try:
            with open(path, "rb", buffering=0) as fh:
                while fh.readinto(view):
                    pass
        except OSError:
            continue


def _cold_round(task: Task, impl: Impl, res: Result) -> None:
    gc.collect()                  # release mappings of earlier rounds: mapped pages stay cached
    drop_caches(task.files)
    t0 = time.perf_counter()
    impl.fn()
    res.per_item.append((time.perf_counter() - t0) / task.items)


def run_task(task: Task, cfg: RunConfig) -> list[Result]:
    """Time every impl of ``task``: warm rounds, then (when asked) cold rounds, both
    interleaved across impls (round-robin, so drifting conditions hit all alike)."""
    _prewarm(task.files)  # "warm" means warm for every impl, not only for the later ones
    runs = [(impl, _calibrate(task, impl, cfg)) for impl in task.impls]
    _warm_rounds(task, cfg, runs)
    results = [r for _, r in runs]
    for r in results:
        _report(cfg, task, r)
    if not (task.cold and cfg.cold and _FADV_DONTNEED is not None and task.files):
        return results
    cold = [(impl, Result(task.name, task.group, impl.label, impl.kind, impl.threads, "cold",
                          [], 1, task.items, task.nbytes))
            for impl in task.impls if impl.cold]
    t_start = time.perf_counter()
    for k in range(cfg.cold_rounds):
        for impl, r in cold:
            if r.error is None and len(r.per_item) < min(cfg.cold_rounds,
                                                         impl.max_rounds or cfg.cold_rounds):
                try:
                    _cold_round(task, impl, r)
                except Exception as exc:
                    r.error, r.per_item = f"{type(exc).__name__}: {exc}", []
        if time.perf_counter() - t_start > cfg.cold_budget_s * len(cold) and k >= 0:
            break
    for impl, r in cold:
        results.append(r)
        _report(cfg, task, r)
    return results


def _report(cfg: RunConfig, task: Task, r: Result) -> None:
    if r.error:
        _log(cfg, f"  {task.name} [{r.mode}] {r.impl}: ERROR {r.error}")
    else:
        _log(cfg, f"  {task.name} [{r.mode}] {r.impl}: "
                  f"{fmt_time(r.median)}/{task.unit} ({len(r.per_item)} rounds)")


def fmt_time(s: float) -> str:
    """Seconds as ns/µs/ms/s with 3 significant digits."""
    if s != s:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"
