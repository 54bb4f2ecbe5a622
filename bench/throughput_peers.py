#!/usr/bin/env python3
"""End-to-end throughput, side by side in one run on the same files: vislint (hash-only, and the
default model at each --precision) vs fastdup (default run), each at 1 thread and at all cores, on
the 256-px JPEG corpus of bench_scan.py.

Each tool runs in its own process; wall seconds include start-up and writing results (files in ->
findings out). Peak RSS is the process's (and for fastdup its largest child's, as reported by its
adapter). Ratios are vislint / fastdup from the same run.

    python bench/throughput_peers.py [--n 20000] [--threads 1,2] [--precisions f32,auto,int8] [--write-docs]
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


def cpu_flags():
    """The /proc/cpuinfo flags that decide the inference kernels (what vislint's run.json lists)."""
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration):
        return []
    return [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
            if f in flags]


def run_vislint(exe, corpus, work, extra):
    shutil.rmtree(work, ignore_errors=True)
    # A fresh process per tool, so ru_maxrss of RUSAGE_CHILDREN is this tool's alone.
    out = subprocess.run([sys.executable, "-c", (
        "import resource,subprocess,sys,time,json;t=time.perf_counter();"
        "subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL);"
        "print(json.dumps([time.perf_counter()-t,resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024]))"),
        str(exe), "scan", str(corpus), "-o", str(work), "--quiet", *extra],
        capture_output=True, text=True, check=True).stdout
    secs, rss = json.loads(out)
    inference = json.loads((work / "run.json").read_text()).get("inference", {})
    return secs, rss, inference.get("precision", "none")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}",
                    help="comma-separated thread counts to run every tool at (default 1 and all cores)")
    ap.add_argument("--precisions", default="f32,auto,int8",
                    help="vislint --precision values to run with the default model (int8 is skipped "
                         "when the model cache has no int8 model)")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    import vislint.testing as t

    corpus = BENCH / f"corpus-{args.n}"
    n = t.make_throughput_corpus(corpus, n=args.n, size=256)
    threads = [int(x) for x in args.threads.split(",")]
    rows = []
    exe = REPO / ".venv" / "bin" / "vislint"
    variants = [("vislint --model none", ["--model", "none"])]
    for prec in args.precisions.split(","):
        variants.append((f"vislint --precision {prec}", ["--precision", prec]))
    py = REPO / "build" / "peers" / "fastdup-venv" / "bin" / "python"
    for th in threads:
        for label, extra in variants:
            work = BENCH / "tp-work" / (label.split()[-1] + f"-t{th}")
            try:
                secs, rss, prec = run_vislint(exe, corpus, work, [*extra, "--threads", str(th)])
            except subprocess.CalledProcessError as e:
                print(f"{label} --threads {th}: not run: {e.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            rows.append({"tool": label, "threads": th, "precision": prec, "seconds": secs, "rss_mb": rss,
                         "command": f"vislint scan {os.path.relpath(corpus, REPO)} -o WORK --quiet "
                                    f"{' '.join(extra)} --threads {th}"})
            print(rows[-1], flush=True)
        if py.exists():
            out_json = BENCH / "tp-work" / f"fastdup-t{th}.json"
            t0 = time.perf_counter()
            subprocess.run([str(py), str(REPO / "bench" / "peers" / "run_fastdup.py"), "--input", str(corpus),
                            "--out", str(out_json), "--threads", str(th)], check=True, capture_output=True,
                           env={**os.environ, "SENTRY_OPT_OUT": "1"})
            secs = time.perf_counter() - t0
            j = json.loads(out_json.read_text())
            rows.append({"tool": f"fastdup {j.get('version')}", "threads": th, "precision": "(its own)",
                         "seconds": secs, "rss_mb": j.get("peak_rss_mb"), "peer_seconds": j.get("seconds"),
                         "command": f"python bench/peers/run_fastdup.py --input CORPUS --threads {th} "
                                    "(fastdup.create(...).run(num_threads=N), otherwise defaults)"})
            print(rows[-1], flush=True)
    fd = {r["threads"]: r for r in rows if r["tool"].startswith("fastdup")}
    lines = ["## Throughput side by side (`python bench/throughput_peers.py`)", "",
             f"- Date: {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}; {os.cpu_count()} cores; "
             f"CPU flags: {', '.join(cpu_flags()) or 'none of the listed'}; "
             f"corpus: {n} distinct 256x256 JPEGs (`{os.path.relpath(corpus, REPO)}`); each tool fresh, "
             "files in -> findings out, wall clock including start-up; one run, in the order listed.", "",
             "| tool | threads | precision that ran | seconds | img/s | img/s per core | peak RSS MB | vs fastdup at the same threads |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ips = n / r["seconds"]
        f = fd.get(r["threads"])
        ratio = f"{(f['seconds'] / r['seconds']):.2f}x" if f else "—"
        lines.append(f"| {r['tool']} | {r['threads']} | {r['precision']} | {r['seconds']:.1f} | {ips:.0f} | "
                     f"{ips / r['threads']:.0f} | "
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
