"""Benchmark report: JSON (everything), Markdown (tables), PNG charts (matplotlib, Agg).

Definitions used throughout:

* **time** — median over rounds of the time per item (per file, frame, access, series...).
* **ratio to the floor** — an impl's time divided by its raw floor's time, same run, same files
  (1.0 = costs nothing beyond the system calls; see :mod:`fastdicom.bench.floors`).
* **speedup vs a peer** — the peer's time divided by fastdicom's time (> 1: fastdicom faster).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any, Optional, Sequence

from .runner import Goal, Result, Task, fmt_time

__all__ = ["machine_info", "summarize", "write_report", "ratios_table"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total() -> Optional[int]:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    from fastdicom import __version__
    from .peers import versions
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
        "memory_bytes": _mem_total(), "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "fastdicom": __version__, "versions": versions(),
    }


# ------------------------------------------------------------------------------------ numbers

def _index(results: Sequence[Result]) -> dict[tuple[str, str, str], Result]:
    return {(r.task, r.mode, r.impl): r for r in results}


def _floor_for(task: Task, impl_label: str) -> Optional[str]:
    impl = next((i for i in task.impls if i.label == impl_label), None)
    if impl is None or impl.kind == "floor":
        return None
    if impl.floor:
        return impl.floor
    floors = [i for i in task.impls if i.kind == "floor"]
    same = [i for i in floors if i.threads == impl.threads]
    pick = same or [i for i in floors if i.threads == 1] or floors
    return pick[0].label if pick else None


def _ours_label(task: Task) -> Optional[str]:
    return task.ours if any(i.label == task.ours for i in task.impls) else None


def _goal_value(goal: Goal, idx: dict, task: Task) -> Optional[float]:
    num = idx.get((task.name, goal.mode, goal.numerator))
    if num is None or not num.per_item:
        return None
    if goal.denominator is None:
        return num.median
    den = idx.get((task.name, goal.mode, goal.denominator))
    if den is None or not den.per_item:
        return None
    return num.median / den.median


def _goal_met(goal: Goal, value: Optional[float]) -> Optional[bool]:
    if value is None or value != value:
        return None
    if goal.op == "<=":
        return value <= goal.value
    if goal.op == ">=":
        return value >= goal.value
    if goal.op == "within":
        return abs(value - 1.0) <= goal.value
    raise ValueError(goal.op)


def summarize(tasks: Sequence[Task], results: Sequence[Result]) -> list[dict[str, Any]]:
    """Per task: every result with its ratio to the floor and fastdicom's speedup over it."""
    idx = _index(results)
    out = []
    for task in tasks:
        ours = _ours_label(task)
        modes = []
        for mode in ("warm", "cold"):
            rows = []
            for impl in task.impls:
                r = idx.get((task.name, mode, impl.label))
                if r is None:
                    continue
                floor = _floor_for(task, impl.label)
                fr = idx.get((task.name, mode, floor)) if floor else None
                ratio = (r.median / fr.median if fr is not None and fr.per_item and r.per_item
                         else None)
                o = idx.get((task.name, mode, ours)) if ours else None
                speedup = (r.median / o.median if impl.kind == "peer" and o is not None
                           and o.per_item and r.per_item else None)
                mbps = (task.nbytes / task.items / r.median / 1e6
                        if task.nbytes and r.per_item else None)
                rows.append({"impl": impl.label, "kind": impl.kind, "threads": impl.threads,
                             "time_s": r.median if r.per_item else None,
                             "best_s": r.best if r.per_item else None,
                             "rounds": len(r.per_item), "MBps": mbps,
                             "floor": floor, "ratio_to_floor": ratio,
                             "fastdicom_speedup": speedup, "error": r.error})
            if rows:
                modes.append({"mode": mode, "rows": rows})
        goals = []
        for g in task.goals:
            v = _goal_value(g, idx, task)
            goals.append({"goal": g.text, "issue": g.issue, "mode": g.mode,
                          "numerator": g.numerator,
                          "denominator": g.denominator, "op": g.op, "target": g.value,
                          "measured": v, "met": _goal_met(g, v)})
        out.append({"group": task.group, "task": task.name, "title": task.title,
                    "unit": task.unit, "items_per_call": task.items,
                    "bytes_per_call": task.nbytes, "series_size": task.series_size,
                    "in_ratio_chart": task.in_ratio_chart,
                    "ours": ours, "missing": dict(task.missing), "notes": list(task.notes),
                    "modes": modes, "goals": goals})
    return out


# ----------------------------------------------------------------------------------- markdown

def _x(v: Optional[float], digits: int = 2) -> str:
    if v is None or v != v:
        return "—"
    if v < 0.1:
        return f"{v:.2g}×"
    return f"{v:.{digits}f}×" if v < 100 else f"{v:.0f}×"


def _goal_measured(g: dict[str, Any]) -> str:
    v = g["measured"]
    if v is None:
        return "not measured"
    if g["denominator"] is None:
        return fmt_time(v)
    return f"{v:.2f}×"


def ratios_table(summary: Sequence[dict[str, Any]]) -> str:
    """The headline table: per task (warm cache), fastdicom's time, its ratio to the floor
    and its speedup against each peer."""
    peer_names: list[str] = []
    for t in summary:
        for m in t["modes"]:
            for r in m["rows"]:
                if r["kind"] == "peer" and r["impl"] not in peer_names:
                    peer_names.append(r["impl"])
        for name in t["missing"]:
            if name not in peer_names and not name.startswith("fastdicom"):
                peer_names.append(name)
    head = (["task", "cache", "fastdicom", "floor", "ratio to floor"]
            + [f"vs {p}" for p in peer_names])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in summary:
        for m in t["modes"]:
            rows = {r["impl"]: r for r in m["rows"]}
            o = rows.get(t["ours"]) if t["ours"] else None
            if o is None:
                why = t["missing"].get("fastdicom", "not available")
                cells = [t["task"], m["mode"], why.split(":")[0], "—", "—"]
            else:
                fr = rows.get(o["floor"]) if o["floor"] else None
                cells = [t["task"], m["mode"],
                         f"{fmt_time(o['time_s'])}/{t['unit']}" if o["time_s"] else "error",
                         fmt_time(fr["time_s"]) if fr and fr["time_s"] else "—",
                         _x(o["ratio_to_floor"])]
            for p in peer_names:
                if p in rows:
                    sp = rows[p]["fastdicom_speedup"]
                    cells.append(_x(sp) if sp is not None else
                                 ("error" if rows[p]["error"] else "—"))
                elif p in t["missing"]:
                    cells.append("missing")
                else:
                    cells.append("")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _markdown(info: dict[str, Any], config: dict[str, Any], summary: Sequence[dict[str, Any]],
              charts: dict[str, str]) -> str:
    v = info["versions"]
    mem = info.get("memory_bytes")
    out = [
        "# fastdicom benchmark report", "",
        f"- date: {info['date']}",
        f"- command: `{config['command']}`",
        f"- machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)"
        + (f", {mem / 2 ** 30:.0f} GiB RAM" if mem else "") + f", {info['os']}",
        f"- {info['python']}, fastdicom {info['fastdicom']}",
        "- peers: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- series size: {config['size_text']}; groups: {', '.join(config['groups'])};"
        f" wall time {config['elapsed_s']:.0f} s",
        "",
        "Times are medians per item over rounds; the rounds of a task's implementations are "
        "interleaved (one round of each in turn). *ratio to floor* = time ÷ the raw floor's time "
        "(the same system calls from Python: `os.open` + `os.pread`/`readinto` of the same bytes "
        "+ `close`), measured in the same run on the same files. *vs X* = X's time ÷ fastdicom's "
        "time (above 1: fastdicom is faster). Cold = page cache dropped "
        "(`posix_fadvise(DONTNEED)`) before every round.", "",
        "## Ratios", "", ratios_table(summary), "",
    ]
    goals = [(t["task"], g, _goal_measured(g)) for t in summary for g in t["goals"]]
    # goals that are not timings (the ingest job's peak RSS), measured by the run itself
    goals += [(g["task"], g, g["measured"]) for g in config.get("extra_goals", ())]
    if goals:
        out += ["## Goals (issues 3–6)", "", "| issue | task | goal | measured | met |",
                "|---|---|---|---|---|"]
        for task, g, measured in goals:
            met = {True: "yes", False: "**no**", None: "not measured"}[g["met"]]
            mode = f" ({g['mode']})" if g["mode"] else ""
            out.append(f"| {g['issue'] or ''} | {task}{mode} | {g['goal']} | "
                       f"{measured} | {met} |")
        out.append("")
    for name, file in charts.items():
        out += [f"![{name}]({file})", ""]
    out += ["## Details", ""]
    for t in summary:
        out += [f"### {t['task']}", "", t["title"] + ".", ""]
        for note in t["notes"]:
            out += [f"- {note}"]
        for name, why in t["missing"].items():
            out += [f"- **{name}**: {why}"]
        if t["notes"] or t["missing"]:
            out.append("")
        for m in t["modes"]:
            out += [f"{m['mode']} cache:", "",
                    f"| impl | threads | time/{t['unit']} | best | rounds | MB/s | ratio to floor"
                    " | fastdicom speedup |", "|---|---|---|---|---|---|---|---|"]
            for r in m["rows"]:
                if r["error"]:
                    out.append(f"| {r['impl']} | {r['threads']} | error: {r['error'][:120]} |"
                               " | | | | |")
                    continue
                out.append(
                    f"| {r['impl']} | {r['threads']} | {fmt_time(r['time_s'])} | "
                    f"{fmt_time(r['best_s'])} | {r['rounds']} | "
                    f"{'%.0f' % r['MBps'] if r['MBps'] else ''} | {_x(r['ratio_to_floor'])} | "
                    f"{_x(r['fastdicom_speedup'])} |")
            out.append("")
    return "\n".join(out)


# -------------------------------------------------------------------------------------- charts

_COLORS = {"ours": "#1f6fb4", "floor": "#7f7f7f", "peer": "#e07b39"}


def _ratio_chart(summary: Sequence[dict[str, Any]], path: Path) -> bool:
    """Horizontal bars: every impl's time ÷ floor (warm), log scale, one block per task."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = []  # (task, impl, kind, ratio)
    for t in summary:
        if not t["in_ratio_chart"]:
            continue  # extra scaling points go to the scaling plot only
        warm = next((m for m in t["modes"] if m["mode"] == "warm"), None)
        if warm is None:
            continue
        block = [(t["task"], r["impl"], r["kind"], r["ratio_to_floor"]) for r in warm["rows"]
                 if r["kind"] != "floor" and r["ratio_to_floor"]]
        if block:
            rows.append(None)
            rows.extend(block)
    if not rows:
        return False
    rows = rows[1:]
    height = 0.32 * len(rows) + 1.6
    fig, ax = plt.subplots(figsize=(10, height))
    y, labels, ticks, headers = 0, [], [], []
    for row in rows:
        if row is None:
            y += 1.2
            continue
        task, impl, kind, ratio = row
        if not headers or headers[-1][0] != task:
            headers.append((task, y))
        ax.barh(y, ratio, color=_COLORS[kind], height=0.8)
        ax.text(ratio * 1.04, y, f"{ratio:.2f}×" if ratio < 100 else f"{ratio:.0f}×",
                va="center", fontsize=8)
        labels.append(impl)
        ticks.append(y)
        y += 1
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", lw=1, ls="--")
    ratios = [r[3] for r in rows if r is not None]
    ax.set_xlim(min(0.5, min(ratios) / 1.5), max(ratios) * 3)
    floor_of = {t["task"]: next((r["floor"] for m in t["modes"] for r in m["rows"]
                                 if r["impl"] == t["ours"] and r["floor"]), None)
                for t in summary}
    for task, ypos in headers:
        fl = floor_of.get(task)
        ax.text(0.005, ypos - 0.72, f"{task}", fontsize=9, fontweight="bold", va="bottom",
                ha="left", transform=ax.get_yaxis_transform())
        if fl:
            ax.text(0.995, ypos - 0.72, "floor = " + fl.removeprefix("floor: "), fontsize=7,
                    color="#555555", va="bottom", ha="right",
                    transform=ax.get_yaxis_transform())
    ax.set_xlabel("time ÷ raw floor (same syscalls from Python), warm cache — lower is better;"
                  " 1 = floor")
    ax.set_title("fastdicom vs peers, as multiples of the raw I/O floor")
    ax.legend(handles=[Patch(color=_COLORS["ours"], label="fastdicom"),
                       Patch(color=_COLORS["peer"], label="peer")], loc="lower right",
              fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _scaling_chart(summary: Sequence[dict[str, Any]], path: Path) -> bool:
    """Time per series against series size, log-log, one line per impl (warm cache)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[float, float, str]]] = {}
    for t in summary:
        if t["series_size"] is None:
            continue
        warm = next((m for m in t["modes"] if m["mode"] == "warm"), None)
        if warm is None:
            continue
        for r in warm["rows"]:
            if r["time_s"]:
                series.setdefault(r["impl"], []).append(
                    (t["series_size"] / 2 ** 20, r["time_s"] * t["items_per_call"], r["kind"]))
    if not series:
        return False
    series = {k: v for k, v in series.items() if len(v) >= 2}   # lines, not lone points
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(9, 5.6))
    markers = "osD^v<>p*h"
    peer_colors = iter(["#e07b39", "#2ca02c", "#9467bd", "#8c564b", "#d62728", "#bcbd22"])
    ours_colors = iter(["#1f6fb4", "#17becf", "#08306b"])

    def order(item):
        return ({"ours": 0, "floor": 1, "peer": 2}[item[1][0][2]], item[0])

    for k, (impl, pts) in enumerate(sorted(series.items(), key=order)):
        pts.sort()
        kind = pts[0][2]
        style = {"ours": "-", "floor": "--", "peer": ":"}[kind]
        color = {"ours": lambda: next(ours_colors, None), "floor": lambda: "#555555",
                 "peer": lambda: next(peer_colors, None)}[kind]()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker=markers[k % len(markers)],
                label=impl, lw=2.2 if kind == "ours" else 1.5, color=color)
    sizes = sorted({p[0] for pts in series.values() for p in pts})
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [f"{s:.0f} MiB" if s < 1024 else f"{s / 1024:.0f} GiB" for s in sizes])
    ax.set_xlabel("series size (512×512 int16 CT slices)")
    ax.set_ylabel("seconds to load the series into one volume (warm cache)")
    ax.set_title("Cost against series size (straight line of slope 1 = linear)")
    ax.grid(which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(outdir: Path, tasks: Sequence[Task], results: Sequence[Result],
                 config: dict[str, Any]) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``ratios.png`` and ``scaling.png`` into
    ``outdir``; return their paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    summary = summarize(tasks, results)
    charts: dict[str, str] = {}
    written: dict[str, Path] = {}
    try:
        if _ratio_chart(summary, outdir / "ratios.png"):
            charts["ratios to the floor"] = "ratios.png"
            written["ratios.png"] = outdir / "ratios.png"
        if _scaling_chart(summary, outdir / "scaling.png"):
            charts["scaling"] = "scaling.png"
            written["scaling.png"] = outdir / "scaling.png"
    except ImportError as exc:
        config.setdefault("notes", []).append(f"charts not drawn: matplotlib missing ({exc})")
    doc = {"machine": info, "config": config, "summary": summary,
           "results": [r.as_dict() for r in results]}
    (outdir / "report.json").write_text(json.dumps(doc, indent=1, default=str))
    (outdir / "report.md").write_text(_markdown(info, config, summary, charts))
    written["report.json"] = outdir / "report.json"
    written["report.md"] = outdir / "report.md"
    return written
