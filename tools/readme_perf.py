#!/usr/bin/env python3
"""Copy the tables of a `fastdicom bench` report into README.md's Performance section.

    python tools/readme_perf.py REPORT_DIR [README.md]

Replaces everything between `<!-- perf:start -->` and `<!-- perf:end -->` with the report's
header lines, ratio table and goals table, verbatim: no number in that section is typed by hand.
"""
import re
import sys
from pathlib import Path

START, END = "<!-- perf:start -->", "<!-- perf:end -->"


def section(report_md: str) -> str:
    lines = report_md.splitlines()
    header = [ln for ln in lines[:12] if ln.startswith("- ")]
    body = "\n".join(lines)
    ratios = re.search(r"## Ratios\n\n(\|.*?)\n\n", body, re.S)
    goals = re.search(r"## Goals[^\n]*\n\n(\|.*?)(\n\n|\Z)", body, re.S)
    if not ratios:
        raise SystemExit("report has no '## Ratios' table")
    out = ["Generated from `report.md` of the run below by `tools/readme_perf.py`.", ""]
    out += header + ["", ratios.group(1), ""]
    if goals:
        out += ["Goals of issues 3–6 in the same run:", "", goals.group(1), ""]
    return "\n".join(out)


def main() -> None:
    report = Path(sys.argv[1]) / "report.md"
    readme = Path(sys.argv[2] if len(sys.argv) > 2 else "README.md")
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + START + "\n" + section(report.read_text()) + "\n" + END + tail)


if __name__ == "__main__":
    main()
