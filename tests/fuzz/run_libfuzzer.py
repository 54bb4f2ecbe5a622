#!/usr/bin/env python3
"""Runs the libFuzzer target decode_fuzz for a bounded time and summarises what it found.

libFuzzer runs in fork mode with -ignore_crashes / -ignore_timeouts / -ignore_ooms, so one finding
does not end the run: every crashing, hanging (-timeout) or memory-hungry (-rss_limit_mb) input is
saved under --crashes and fuzzing goes on. Each saved input is then run once more on its own to
read its reason (the sanitizer's SUMMARY line or decode_fuzz's FINDING line); reasons are grouped
so that one bug hit by a hundred inputs reads as one bug.

Usage: run_libfuzzer.py --binary decode_fuzz --seeds DIR --corpus DIR --crashes DIR
                        --seconds S [--json F]
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

RSS_LIMIT_MB = 2048
TIMEOUT_S = 10
MAX_REPRODUCED = 40  # saved inputs re-run to read their reason (each costs about a second)

STATS = re.compile(r"^#(\d+): cov: (\d+) ft: (\d+) corp: (\d+) exec/s:? (\d+) "
                   r"oom/timeout/crash: (\d+)/(\d+)/(\d+) time: (\d+)s")


def reason(binary, path, env):
    """The one-line reason a saved input fails, with its run-specific details trimmed."""
    kind = os.path.basename(path).split("-", 1)[0]  # crash / timeout / oom / leak
    try:
        p = subprocess.run([binary, f"-timeout={TIMEOUT_S}", f"-rss_limit_mb={RSS_LIMIT_MB}", path],
                           capture_output=True, text=True, errors="replace", env=env,
                           timeout=TIMEOUT_S * 3)
        log = p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        return f"{kind}: does not finish when re-run"
    for pattern in (r"decode_fuzz: FINDING: (.*)", r"(\S+:\d+:\d+: runtime error: .*)",
                    r"SUMMARY: (AddressSanitizer: .*)", r"SUMMARY: (libFuzzer: .*)"):
        m = re.search(pattern, log)
        if m:
            text = m.group(1).strip()
            if pattern.startswith("decode_fuzz"):
                text = re.sub(r"'[^']*'", "'...'", text)  # the input-specific messages it quotes
            return text
    if p.returncode == 0:
        return f"{kind}: does not reproduce when run alone"
    return f"{kind}: exit {p.returncode}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--seeds", required=True)
    ap.add_argument("--corpus", required=True, help="grows across runs (kept)")
    ap.add_argument("--crashes", required=True, help="emptied, then holds this run's findings")
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--log", help="libFuzzer's own output (default: next to --json)")
    ap.add_argument("--json", help="write the summary here")
    args = ap.parse_args()

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"run_libfuzzer.py: fuzz target not built: {binary}")
    shutil.rmtree(args.crashes, ignore_errors=True)
    os.makedirs(args.crashes)
    os.makedirs(args.corpus, exist_ok=True)
    log_path = args.log or os.path.join(os.path.dirname(os.path.abspath(args.json or ".")), "libfuzzer.log")
    env = dict(os.environ, OPENCV_LOG_LEVEL="ERROR")
    # halt_on_error / abort_on_error: a sanitizer report ends the child (and is saved) right away.
    env.setdefault("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:abort_on_error=1:print_stacktrace=1")

    cmd = [binary, "-fork=1", "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1",
           f"-max_total_time={args.seconds}", f"-rss_limit_mb={RSS_LIMIT_MB}",
           f"-timeout={TIMEOUT_S}", "-print_final_stats=1",
           "-artifact_prefix=" + os.path.join(os.path.abspath(args.crashes), ""),
           os.path.abspath(args.corpus), os.path.abspath(args.seeds)]
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    print("run_libfuzzer.py: " + " ".join(cmd), flush=True)
    with open(log_path, "w") as log:
        # The children's output goes to libFuzzer's own logs; a hard cap keeps a wedged parent
        # from holding up `make fuzz`.
        try:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                timeout=args.seconds + 120).returncode
        except subprocess.TimeoutExpired:
            rc = "killed after the time limit"
    seconds = time.monotonic() - t0

    last = None
    with open(log_path, errors="replace") as f:
        for line in f:
            m = STATS.match(line)
            if m:
                last = m
    execs = int(last.group(1)) if last else 0
    cov = int(last.group(2)) if last else 0
    corpus = int(last.group(4)) if last else 0
    oom, timeouts, crashes = (int(last.group(i)) for i in (6, 7, 8)) if last else (0, 0, 0)

    saved = sorted(os.listdir(args.crashes))
    groups = {}
    for name in saved[:MAX_REPRODUCED]:
        r = reason(binary, os.path.join(args.crashes, name), env)
        g = groups.setdefault(r, {"reason": r, "inputs": 0, "example": name})
        g["inputs"] += 1
    summary = {
        "date": started,
        "seconds": round(seconds, 1),
        "exit": rc,
        "executions": execs,
        "coverage": cov,
        "corpus": corpus,
        "crashes": crashes,
        "hangs": timeouts,
        "ooms": oom,
        "saved_inputs": len(saved),
        "reproduced": min(len(saved), MAX_REPRODUCED),
        "findings": sorted(groups.values(), key=lambda g: -g["inputs"]),
        "crash_dir": args.crashes,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    print(f"run_libfuzzer.py: {execs} executions in {seconds:.0f} s, coverage {cov}, corpus {corpus}; "
          f"crashes {crashes}, hangs {timeouts}, out-of-memory {oom}; {len(saved)} inputs saved in "
          f"{args.crashes}")
    for g in summary["findings"]:
        print(f"  {g['inputs']} x {g['reason']} (e.g. {g['example']})")
    if rc not in (0,):
        print(f"run_libfuzzer.py: libFuzzer exit: {rc} (see {log_path})")


if __name__ == "__main__":
    main()
