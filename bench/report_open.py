#!/usr/bin/env python3
"""How fast the HTML report opens with ~100 k issue rows, in Debian's chromium (Playwright).

Uses the Fashion-MNIST default-model scan of bench/labels.py (12 k images; about 83 k
near-duplicate pairs, 12 k grayscale flags, label issues and leaks: ~100 k issue rows), copies its
database into build/bench/report-open/work, writes the report with `vislint report` (timed:
thumbnails and JSON), then opens it from file:// three times and reports the wall-clock time from
navigation to the first rendered card, and the time of a type switch and of a search over all rows.

    python bench/report_open.py [--work build/bench/labels-fashion-10000/vislint-default] [--write-docs]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "build" / "bench"
BEGIN, END = "<!-- report_open:begin -->", "<!-- report_open:end -->"
CHROMIUM = "/usr/bin/chromium"
sys.dont_write_bytecode = True
sys.path.insert(0, str(REPO / "bench"))
from labels import machine  # noqa: E402
from quality import write_docs  # noqa: E402


def open_times(page_url: str, runs: int = 3) -> dict:
    from playwright.sync_api import sync_playwright

    out = {"open_s": [], "switch_ms": [], "search_ms": [], "errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for _ in range(runs):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("pageerror", lambda e: out["errors"].append(str(e)))
                t0 = time.perf_counter()
                page.goto(page_url)
                page.wait_for_selector(".card")
                out["open_s"].append(time.perf_counter() - t0)
                t1 = time.perf_counter()
                page.select_option("#type-filter", "near_duplicate")
                page.wait_for_selector('.card[data-type="near_duplicate"]')
                out["switch_ms"].append(1e3 * (time.perf_counter() - t1))
                t2 = time.perf_counter()
                page.fill("#search", "img_00")
                page.wait_for_function("document.getElementById('result-count').textContent.length > 0")
                page.wait_for_timeout(0)
                out["search_ms"].append(1e3 * (time.perf_counter() - t2))
                page.close()
        finally:
            browser.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(BENCH / "labels-fashion-10000" / "vislint-default"))
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    src = Path(args.work)
    if not (src / "vislint.db").is_file():
        print(f"no scan in {src}: run bench/labels.py first", file=sys.stderr)
        return 2
    work = BENCH / "report-open" / "work"
    shutil.rmtree(work.parent, ignore_errors=True)
    work.mkdir(parents=True)
    for name in ("vislint.db", "run.json"):
        shutil.copy(src / name, work / name)
    rows = sqlite3.connect(work / "vislint.db").execute("SELECT count(*) FROM issues").fetchone()[0]
    vislint = Path(sys.executable).parent / "vislint"
    cmd = [str(vislint), "report", str(work), "-q"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    again = time.perf_counter() - t0
    page = work / "report" / "index.html"
    thumbs = len(list((work / "report" / "thumbs").iterdir()))
    t = open_times(page.resolve().as_uri())
    result = {
        "date": _dt.date.today().isoformat(), "machine": machine(), "issue_rows": rows,
        "page_mb": round(page.stat().st_size / 2**20, 1), "thumbnails": thumbs,
        "report_first_s": round(first, 2), "report_again_s": round(again, 2),
        "open_s": [round(x, 2) for x in t["open_s"]], "open_median_s": round(statistics.median(t["open_s"]), 2),
        "switch_ms": [round(x) for x in t["switch_ms"]], "search_ms": [round(x) for x in t["search_ms"]],
        "page_errors": t["errors"], "command": " ".join(["python", "bench/report_open.py"]),
    }
    (BENCH / "report_open.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    if args.write_docs:
        section = "\n".join([
            "## Report with ~100 k issue rows (`python bench/report_open.py`)",
            "",
            f"- Date: {result['date']}; machine: {result['machine']}; chromium {CHROMIUM}, headless, file://",
            f"- Work dir: the Fashion-MNIST default-model scan of bench/labels.py: {rows:,} issue rows "
            f"(mostly near-duplicate pairs and grayscale flags), page {result['page_mb']} MB, "
            f"{thumbs:,} thumbnails.",
            "",
            "| measure | result |",
            "|---|---|",
            f"| `vislint report`, first run (makes the thumbnails) | {result['report_first_s']} s |",
            f"| `vislint report` again (thumbnails reused) | {result['report_again_s']} s |",
            f"| open from disk to the first rendered card (3 runs) | {', '.join(map(str, result['open_s']))} s |",
            f"| switch the gallery type | {', '.join(map(str, result['switch_ms']))} ms |",
            f"| search all rows by file name | {', '.join(map(str, result['search_ms']))} ms |",
            f"| page errors | {len(result['page_errors'])} |",
            "",
            "Target: opens in under 2 s and stays responsive (galleries render 60 cards per page).",
        ])
        write_docs(section, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
