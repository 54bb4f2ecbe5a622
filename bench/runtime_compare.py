#!/usr/bin/env python3
"""End-to-end img/s of a default-model scan, old runtime vs new, side by side in one run on the
same files: a vislint CLI built from before the move to OpenVINO (OpenCV DNN, f32) against this
tree's CLI at --precision f32 and auto, at each thread count. Runs are interleaved (old, new f32,
new auto, then the next repeat) so a noisy machine hits each alike; the best of the repeats is
kept. Each run is a fresh work dir: files in -> findings out, wall clock including start-up.

    python bench/runtime_compare.py --old PATH/TO/OLD/vislint [--new .venv/bin/vislint]
                                    [--n 1000] [--threads 1,2] [--repeat 2] [--write-docs]

The corpus is bench_scan.py's (vislint.testing.make_throughput_corpus, 256 px JPEGs made from
Debian's openclipart-png) in build/bench/corpus-<n>. With --write-docs a dated section is added
to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "build" / "bench"
DOCS = REPO / "docs" / "benchmarks.md"


def cpu_flags():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in have]
    return []


def run(exe, corpus, work, threads, extra):
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    p = subprocess.run([str(exe), "scan", str(corpus), "-o", str(work), "--quiet", "--no-report",
                        "--threads", str(threads), *extra], capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{exe} failed:\n{p.stderr[-2000:]}")
    run_json = json.loads((work / "run.json").read_text())
    return secs, run_json


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="vislint CLI built from before OpenVINO (OpenCV DNN)")
    ap.add_argument("--new", default=str(REPO / ".venv" / "bin" / "vislint"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    import vislint.testing as t  # the installed package (make install)

    corpus = BENCH / f"corpus-{args.n}"
    n = t.make_throughput_corpus(corpus, n=args.n, size=256)
    configs = [("OpenCV 4.6 DNN (before)", args.old, []),
               ("OpenVINO --precision f32", args.new, ["--precision", "f32"]),
               ("OpenVINO --precision auto", args.new, ["--precision", "auto"])]
    best = {}
    for threads in [int(x) for x in args.threads.split(",")]:
        for rep in range(args.repeat):
            for label, exe, extra in configs:
                secs, rj = run(exe, corpus, BENCH / "rt-work", threads, extra)
                prec = rj.get("inference", {}).get("precision", "f32")
                key = (label, threads)
                if key not in best or secs < best[key][0]:
                    best[key] = (secs, prec)
                print(f"{label:28s} threads {threads} rep {rep}: {secs:6.2f} s  {n / secs:6.1f} img/s  ({prec})",
                      flush=True)
    thread_list = sorted({k[1] for k in best})
    lines = [f"## OpenCV DNN vs OpenVINO, default-model scan end to end ({_dt.date.today().isoformat()})", "",
             f"`python bench/runtime_compare.py --old OLD_VISLINT` on {os.cpu_count()} cores shared with other "
             f"builds (noisy: best of {args.repeat} interleaved runs); corpus: {n} distinct 256x256 JPEGs "
             f"(`{os.path.relpath(corpus, REPO)}`); `vislint scan CORPUS -o WORK --quiet --no-report "
             f"--threads T`, fresh work dir, wall clock including start-up. CPU flags: "
             f"{', '.join(cpu_flags()) or 'none of avx2 / avx512f / avx512_bf16 / amx_bf16'}.", "",
             "| runtime | precision that ran | " + " | ".join(f"{th} thread{'s' if th > 1 else ''} img/s" for th in thread_list)
             + " | vs before |",
             "|---|---|" + "---:|" * len(thread_list) + "---:|"]
    for label, _, _ in configs:
        cells = [f"{n / best[(label, th)][0]:.0f}" for th in thread_list]
        ratio = " / ".join(f"{best[(configs[0][0], th)][0] / best[(label, th)][0]:.2f}x" for th in thread_list)
        lines.append(f"| {label} | {best[(label, thread_list[0])][1]} | " + " | ".join(cells) + f" | {ratio} |")
    section = "\n".join(lines)
    print(section)
    (BENCH / f"runtime_compare_{n}.json").write_text(json.dumps(
        [{"runtime": k[0], "threads": k[1], "seconds": v[0], "precision": v[1]} for k, v in best.items()], indent=1) + "\n")
    if args.write_docs:
        DOCS.write_text(DOCS.read_text().rstrip("\n") + "\n\n" + section + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
