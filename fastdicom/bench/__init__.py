"""The fastdicom benchmark suite (``fastdicom bench``; ``benches/`` wraps the same code for pytest).

Groups (:mod:`fastdicom.bench.groups`): ``scan`` (batch headers), ``read`` (one instance),
``pixels`` (native, RLE, JPEG-LS), ``frame`` (random frame of a big multi-frame), ``volume``
(series → volume, scaling with series size) and ``ingest``.  Every task is timed for fastdicom,
a raw floor (:mod:`~fastdicom.bench.floors`) and each installed peer
(:mod:`~fastdicom.bench.peers`) in the same run, on the same cached synthetic files
(:mod:`~fastdicom.bench.datagen`), by :mod:`~fastdicom.bench.runner`; :mod:`~fastdicom.bench.report`
writes Markdown, JSON and PNG charts.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

__all__ = ["register_cli", "run", "main"]


def _log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def run(size: Any = "1GiB", groups: Sequence[str] | None = None, outdir: Any = "report",
        quick: bool = False, cold: bool = True, log: Optional[Callable[[str], None]] = _log,
        command: str = "") -> dict[str, Path]:
    """Generate (or reuse) the data, run ``groups`` and write the report into ``outdir``."""
    from . import datagen
    from .groups import GROUPS, build_group
    from .report import write_report
    from .runner import RunConfig, run_task

    t_start = time.perf_counter()
    nbytes = datagen.parse_size(size)
    plan = datagen.Plan(size=nbytes, quick=quick)
    groups = list(groups or GROUPS)
    cfg = RunConfig.quick() if quick else RunConfig()
    cfg.cold = cold
    cfg.log = log
    tasks, results = [], []
    extra_goals: list = []
    for name in groups:
        t0 = time.perf_counter()
        if log:
            log(f"[{name}] preparing data in {datagen.cache_dir()} ...")
        group_tasks = build_group(name, plan)
        if log:
            log(f"[{name}] data ready in {time.perf_counter() - t0:.1f} s; "
                f"{len(group_tasks)} tasks")
        for task in group_tasks:
            for label, why in task.missing.items():
                if log:
                    log(f"  {task.name}: {label}: {why}")
            results.extend(run_task(task, cfg))
            tasks.append(task)
        if name == "ingest":
            # (not a timing: a goal of its own, measured in fresh processes)
            from .memory import failed_row, rss_goal
            try:
                extra_goals.append(rss_goal(*plan.rss_files, log=log))
            except Exception as exc:    # (a failing measurement must not stop the run)
                if log:
                    log(f"[ingest] peak RSS not measured: {type(exc).__name__}: {exc}")
                extra_goals.append(failed_row(*plan.rss_files, exc))
        if log:
            log(f"[{name}] done in {time.perf_counter() - t0:.1f} s")
    config = {"command": command or f"fastdicom bench --size {size}", "size": nbytes,
              "size_text": datagen.format_size(nbytes), "groups": groups, "quick": quick,
              "cold": cold, "cache_dir": str(datagen.cache_dir()),
              "elapsed_s": time.perf_counter() - t_start,
              "runner": {k: v for k, v in vars(cfg).items() if k != "log"},
              "extra_goals": extra_goals}
    return write_report(Path(outdir), tasks, results, config)


def _cmd(args: argparse.Namespace) -> int:
    from .groups import GROUPS
    groups = [g.strip() for g in args.groups.split(",") if g.strip()] if args.groups else None
    for g in groups or ():
        if g not in GROUPS:
            _log(f"fastdicom bench: unknown group {g!r}; choose from {','.join(GROUPS)}")
            return 2
    if args.cache_dir:
        os.environ["FASTDICOM_BENCH_DIR"] = str(args.cache_dir)
    argv = " ".join(sys.argv[1:]) if sys.argv and sys.argv[0] else ""
    written = run(args.size, groups, args.output, quick=args.quick, cold=not args.no_cold,
                  command="fastdicom " + argv if argv.startswith("bench") else "")
    md = written["report.md"].read_text()
    start = md.find("## Ratios")
    end = md.find("\n## ", start + 5)
    sys.stdout.write(md[start:end if end > 0 else None].strip() + "\n\n")
    for name, path in written.items():
        sys.stdout.write(f"wrote {path}\n")
    return 0


def _size_arg(text: str) -> str:
    """``--size`` checked when parsed (a bad one is a usage error, exit 2)."""
    from .datagen import parse_size
    try:
        if parse_size(text) <= 0:
            raise ValueError(f"not a positive size: {text!r}")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def register_cli(subparsers: Any) -> None:
    """Add ``fastdicom bench`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "bench", help="run the benchmark suite and write a report",
        description="Run the benchmark suite against the raw floor and installed peers; write "
                    "report.md, report.json and PNG charts.")
    p.add_argument("--size", default="1GiB", type=_size_arg,
                   help="CT series size (default 1GiB; 'tiny' for a smoke run); the multi-frame"
                        " and scaling data derive from it")
    p.add_argument("--groups", default=None,
                   help="comma-separated subset of scan,read,pixels,frame,volume,ingest")
    p.add_argument("-o", "--output", default="report", help="report folder (default ./report)")
    p.add_argument("--quick", action="store_true", help="fewer rounds, smaller header sets")
    p.add_argument("--no-cold", action="store_true", help="skip the cold-cache rounds")
    p.add_argument("--cache-dir", default=None,
                   help="data cache (default $FASTDICOM_BENCH_DIR or ~/.cache/fastdicom-bench)")
    p.set_defaults(func=_cmd)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m fastdicom.bench``)."""
    parser = argparse.ArgumentParser(prog="fastdicom")
    sub = parser.add_subparsers(dest="command", required=True)
    register_cli(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
