#!/usr/bin/env python3
"""End-to-end throughput, side by side in one run on the same files: vislint (hash-only and
default model) vs fastdup (default run) on the 256-px JPEG corpus of bench_scan.py.

Each tool runs in its own process; wall seconds include start-up and writing results (files in ->
findings out). Peak RSS is the process's (and for fastdup its largest child's, as reported by its
adapter). Ratios are vislint / fastdup from the same run.

    python bench/throughput_peers.py [--n 20000] [--write-docs]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "build" / "bench"
DOCS = REPO / "docs" / "benchmarks.md"


def timed(cmd, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{p.stderr[-2000:]}")
    return secs, rss


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    import vislint.testing as t

    corpus = BENCH / f"corpus-{args.n}"
    n = t.make_throughput_corpus(corpus, n=args.n, size=256)
    rows = []
    exe = REPO / ".venv" / "bin" / "vislint"
    for label, extra in (("vislint --model none", ["--model", "none"]), ("vislint (default model)", [])):
        work = BENCH / "tp-work" / label.split()[-1].strip("()")
        shutil.rmtree(work, ignore_errors=True)
        # A fresh process per tool, so ru_maxrss of RUSAGE_CHILDREN is this tool's alone.
        out = subprocess.run([sys.executable, "-c", (
            "import resource,subprocess,sys,time,json;t=time.perf_counter();"
            "subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL);"
            "print(json.dumps([time.perf_counter()-t,resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024]))"),
            str(exe), "scan", str(corpus), "-o", str(work), "--quiet", *extra],
            capture_output=True, text=True, check=True).stdout
        secs, rss = json.loads(out)
        rows.append({"tool": label, "seconds": secs, "rss_mb": rss,
                     "command": f"vislint scan {os.path.relpath(corpus, REPO)} -o WORK --quiet {' '.join(extra)}".strip()})
        print(rows[-1], flush=True)
    py = REPO / "build" / "peers" / "fastdup-venv" / "bin" / "python"
    if py.exists():
        out_json = BENCH / "tp-work" / "fastdup.json"
        t0 = time.perf_counter()
        subprocess.run([str(py), str(REPO / "bench" / "peers" / "run_fastdup.py"), "--input", str(corpus),
                        "--out", str(out_json)], check=True, capture_output=True,
                       env={**os.environ, "SENTRY_OPT_OUT": "1"})
        secs = time.perf_counter() - t0
        j = json.loads(out_json.read_text())
        rows.append({"tool": f"fastdup {j.get('version')}", "seconds": secs, "rss_mb": j.get("peak_rss_mb"),
                     "peer_seconds": j.get("seconds"),
                     "command": "python bench/peers/run_fastdup.py --input CORPUS (fastdup.create(...).run(), defaults)"})
        print(rows[-1], flush=True)
    cores = os.cpu_count()
    fd = next((r for r in rows if r["tool"].startswith("fastdup")), None)
    lines = ["## Throughput side by side (`python bench/throughput_peers.py`)", "",
             f"- Date: {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}; {cores} cores; "
             f"corpus: {n} distinct 256x256 JPEGs (`{os.path.relpath(corpus, REPO)}`); each tool fresh, "
             "files in -> findings out, wall clock including start-up.", "",
             "| tool | seconds | img/s | img/s per core | peak RSS MB | vs fastdup |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ips = n / r["seconds"]
        ratio = f"{(fd['seconds'] / r['seconds']):.2f}x" if fd else "—"
        lines.append(f"| {r['tool']} | {r['seconds']:.1f} | {ips:.0f} | {ips / cores:.0f} | "
                     f"{r['rss_mb'] if r['rss_mb'] is None else round(r['rss_mb'])} | {ratio} |")
    lines += ["", "Commands: " + "; ".join(f"`{r['command']}`" for r in rows)]
    section = "\n".join(lines)
    print(section)
    (BENCH / f"throughput_peers_{args.n}.json").write_text(json.dumps(rows, indent=1) + "\n")
    if args.write_docs:
        tag = "throughput_peers" if args.n == 20000 else f"throughput_peers_{args.n}"
        BEGIN, END = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
        text = DOCS.read_text()
        block = f"{BEGIN}\n{section}\n{END}"
        i, j = text.find(BEGIN), text.find(END)
        text = text[:i] + block + text[j + len(END):] if i != -1 and j > i else text.rstrip("\n") + "\n\n" + block + "\n"
        DOCS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
