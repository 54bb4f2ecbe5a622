#!/usr/bin/env python3
"""Throughput benchmark for ``vislint scan --model none``.

Builds (or reuses) a corpus of distinct JPEGs with
``vislint.testing.make_throughput_corpus`` in ``build/bench/corpus-<n>``, then
for every thread count runs::

    vislint scan CORPUS -o WORKDIR --model none --quiet --threads T

once on a fresh (deleted) work dir ("fresh") and once more on the same work
dir with all files unchanged ("warm re-run", i.e. the resume / skip path).
Each run is started by a small separate Python wrapper process that times the
child with ``time.perf_counter`` and takes peak RSS from that child's own
rusage (``os.wait4``), so every run is measured separately and is not inflated
by this script's memory (the wrapper's ~10 MB floor is recorded too).  Note that "fresh" refers to the work dir only: the
corpus is usually in the OS page cache (it was just written or read).

Results are printed as a table and written to ``build/bench/bench_scan.json``;
with ``--write-docs`` the section between ``<!-- bench_scan:begin -->`` and
``<!-- bench_scan:end -->`` in ``docs/benchmarks.md`` is rewritten.

Usage (from anywhere)::

    python bench/bench_scan.py [--n 20000] [--threads 1,2] [--repeat 1]
                               [--vislint .venv/bin/vislint] [--write-docs]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "build" / "bench"
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN = "<!-- bench_scan:begin -->"
END = "<!-- bench_scan:end -->"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def import_testing():
    """Import vislint.testing from <repo>/python without installing the package.

    Falls back to loading the file directly if the package ``__init__`` cannot
    be imported (e.g. the compiled core has not been built yet)."""
    sys.path.insert(0, str(REPO / "python"))
    try:
        from vislint import testing  # type: ignore
        return testing
    except Exception:  # noqa: BLE001
        path = REPO / "python" / "vislint" / "testing.py"
        spec = importlib.util.spec_from_file_location("vislint_testing", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["vislint_testing"] = mod  # needed by multiprocessing pickling
        spec.loader.exec_module(mod)
        return mod


def rel(p: Path) -> str:
    """Path relative to the repo root if inside it (for readable commands)."""
    p = Path(p)
    try:
        return p.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(p)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, val = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model", "Hardware"):
                    return val.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def mem_total_gb():
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def cmd_output(cmd, timeout=15):
    try:
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        out = (r.stdout or r.stderr).strip()
        return out.splitlines()[0] if r.returncode == 0 and out else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_rev():
    rev = cmd_output(["git", "rev-parse", "--short", "HEAD"])
    if rev is None:
        return None
    dirty = cmd_output(["git", "status", "--porcelain", "--untracked-files=no"])
    return rev + ("-dirty" if dirty else "")


# A small, separate Python process starts the measured command and reports
# that child's own rusage.  Measuring directly from this (large: numpy, Pillow)
# process would be wrong: on Linux a child's ru_maxrss includes the parent's
# RSS high-water mark inherited through fork/vfork before exec.  The wrapper's
# floor (~10 MB) is recorded as "rss_floor_mb" by running /bin/true.
_WRAPPER = r"""
import json, os, subprocess, sys, time
cmd = json.loads(sys.argv[1])
t0 = time.perf_counter()
p = subprocess.Popen(cmd)
try:
    _pid, status, ru = os.wait4(p.pid, 0)
except BaseException:
    p.kill(); p.wait(); raise
wall = time.perf_counter() - t0
scale = 1024 * 1024 if sys.platform == "darwin" else 1024
with open(sys.argv[2], "w") as fh:
    json.dump({"seconds": wall, "cpu_seconds": ru.ru_utime + ru.ru_stime,
               "peak_rss_mb": ru.ru_maxrss / scale,
               "returncode": os.waitstatus_to_exitcode(status)}, fh)
"""


def run_measured(cmd, log_path: Path) -> dict:
    """Run *cmd* (cwd = repo, output to *log_path*) in a fresh wrapper process
    and return wall seconds, CPU seconds, peak RSS (MB) and the exit code."""
    res_path = log_path.with_suffix(".rusage.json")
    res_path.unlink(missing_ok=True)
    with open(log_path, "wb") as log:
        rc = subprocess.call([sys.executable, "-I", "-S", "-c", _WRAPPER, json.dumps(cmd),
                              str(res_path)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        res = json.loads(res_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        res = {"seconds": float("nan"), "cpu_seconds": float("nan"),
               "peak_rss_mb": float("nan"), "returncode": rc or 1}
    res_path.unlink(missing_ok=True)
    return res


def tail(path: Path, n=20) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def summarize(runs, images):
    """One row per (mode, threads): median seconds over repeats, max RSS."""
    rows = []
    keys = []
    for r in runs:
        k = (r["model"], r["mode"], r["threads"])
        if k not in keys:
            keys.append(k)
    order = {"fresh": 0, "warm re-run": 1}
    models = list(dict.fromkeys(r["model"] for r in runs))
    keys.sort(key=lambda k: (models.index(k[0]), order.get(k[1], 9), k[2]))
    for model, mode, t in keys:
        sel = [r for r in runs if r["model"] == model and r["mode"] == mode and r["threads"] == t]
        secs = statistics.median(r["seconds"] for r in sel)
        ips = images / secs if secs > 0 else float("inf")
        rows.append({
            "model": model, "mode": mode, "threads": t, "images": images, "seconds": secs,
            "images_per_s": ips, "images_per_s_per_core": ips / t,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in sel),
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in sel),
            "repeats": len(sel),
        })
    return rows


def format_table(rows, markdown=False):
    head = ["model", "run", "threads", "images", "seconds", "img/s", "img/s per core", "peak RSS MB"]
    body = [[r["model"], r["mode"], str(r["threads"]), str(r["images"]), f"{r['seconds']:.2f}",
             f"{r['images_per_s']:.0f}", f"{r['images_per_s_per_core']:.0f}",
             f"{r['peak_rss_mb']:.0f}"] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|"]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(head[i]), *(len(b[i]) for b in body)) for i in range(len(head))]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body])


def docs_section(result) -> str:
    m = result["machine"]
    c = result["corpus"]
    lines = [
        "## Scan throughput (`vislint scan`, hash-only and with the default model)",
        "",
        f"- Date: {result['date']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), "
        f"{m['mem_total_gb']} GB RAM, {m['os']}, Python {m['python']}",
        f"- vislint: {result['vislint_version'] or 'unknown version'}"
        + (f", git {result['git']}" if result["git"] else ""),
        f"- Corpus: {c['images']} distinct {c['size']}x{c['size']} JPEGs (q=90) from "
        f"`vislint.testing.make_throughput_corpus` in `{c['path']}`; "
        f"median of {result['repeat']} run(s); the corpus is in the page cache.",
        "- \"fresh\" = empty work dir; \"warm re-run\" = same work dir again, "
        "all files unchanged (resume/skip path). "
        f"Peak RSS of the scan process (measurement floor {result['rss_floor_mb']:.0f} MB).",
        "",
        "Commands:",
        "",
        "```sh",
        result["bench_command"],
    ]
    lines += [cmd for cmd in result["commands"]]
    lines += ["```", "", format_table(result["rows"], markdown=True)]
    return "\n".join(lines)


def write_docs(section: str, path: Path = DOCS) -> None:
    block = f"{BEGIN}\n{section}\n{END}"
    if path.exists():
        text = path.read_text(encoding="utf-8")
    else:
        text = "# Benchmarks\n"
    i, j = text.find(BEGIN), text.find(END)
    if i != -1 and j > i:
        text = text[:i] + block + text[j + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    np_ = nproc()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vislint", default=".venv/bin/vislint",
                    help="vislint executable (relative paths are relative to the repo root)")
    ap.add_argument("--n", type=int, default=20000, help="corpus size (images)")
    ap.add_argument("--size", type=int, default=256, help="image side in px")
    ap.add_argument("--threads", default=",".join(dict.fromkeys(["1", str(np_)])),
                    help="comma-separated thread counts (default: 1,nproc)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration (median reported)")
    ap.add_argument("--models", default="none,default@160,default@128",
                    help="comma-separated: none, default@SIZE or PATH.onnx@SIZE")
    ap.add_argument("--no-warm", action="store_true", help="skip the warm re-run rows")
    ap.add_argument("--write-docs", action="store_true",
                    help=f"rewrite the bench_scan section of {rel(DOCS)}")
    args = ap.parse_args(argv)

    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if not threads or min(threads) < 1 or args.repeat < 1 or args.n < 1:
        ap.error("need --threads >= 1, --repeat >= 1, --n >= 1")
    exe = Path(args.vislint)
    if not exe.is_absolute():
        exe = REPO / exe
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        print(f"error: vislint executable not found: {exe} (use --vislint PATH)", file=sys.stderr)
        return 2

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    testing = import_testing()
    corpus = BENCH_DIR / (f"corpus-{args.n}" if args.size == 256 else f"corpus-{args.n}-s{args.size}")
    t0 = time.perf_counter()
    images = testing.make_throughput_corpus(corpus, n=args.n, size=args.size)
    corpus_s = time.perf_counter() - t0
    print(f"corpus: {images} images in {rel(corpus)} ({corpus_s:.1f} s)", flush=True)

    exe_s = rel(exe)
    if "/" not in exe_s:
        exe_s = "./" + exe_s
    work_root = BENCH_DIR / "work"
    log_dir = BENCH_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs, commands = [], []
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for rep, model, t in ((r, m, t) for r in range(args.repeat) for m in models for t in threads):
        if True:
            name, _, size = model.partition("@")
            work = work_root / f"{name.replace('/', '_')}-{size or 'auto'}-t{t}"
            if work.exists():
                shutil.rmtree(work)
            work.parent.mkdir(parents=True, exist_ok=True)
            cmd = [exe_s, "scan", rel(corpus), "-o", rel(work), "--model", name,
                   "--quiet", "--threads", str(t)] + (["--model-size", size] if size else [])
            if shlex.join(cmd) not in commands:
                commands.append(shlex.join(cmd))
            modes = ["fresh"] if args.no_warm else ["fresh", "warm re-run"]
            for mode in modes:
                log = log_dir / f"{work.name}-r{rep}-{'fresh' if mode == 'fresh' else 'warm'}.log"
                r = run_measured(cmd, log)
                r.update({"model": model, "mode": mode, "threads": t, "repeat": rep, "command": shlex.join(cmd)})
                print(f"  {model:12s} {mode:11s} threads={t} run {rep + 1}/{args.repeat}: "
                      f"{r['seconds']:.2f} s, {images / r['seconds']:.0f} img/s, "
                      f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
                if r["returncode"] != 0:
                    print(f"error: exit code {r['returncode']} for: {shlex.join(cmd)}\n"
                          f"--- {rel(log)} (tail) ---\n{tail(log)}", file=sys.stderr)
                    return 1
                runs.append(r)

    rows = summarize(runs, images)
    floor = run_measured(["/bin/true"] if os.path.exists("/bin/true") else [sys.executable, "-c", ""],
                         log_dir / "rss-floor.log")["peak_rss_mb"]
    result = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "nproc": np_, "cpu_model": cpu_model(), "mem_total_gb": mem_total_gb(),
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
        },
        "vislint": exe_s,
        "vislint_version": cmd_output([str(exe), "--version"]),
        "git": git_rev(),
        "corpus": {"path": rel(corpus), "images": images, "size": args.size,
                   "build_seconds": corpus_s},
        "repeat": args.repeat,
        "rss_floor_mb": floor,
        "bench_command": " ".join(
            ["python bench/bench_scan.py", shlex.join(argv if argv is not None else sys.argv[1:])]
        ).strip(),
        "commands": commands,
        "runs": runs,
        "rows": rows,
    }
    out_json = BENCH_DIR / "bench_scan.json"
    out_json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print()
    print(format_table(rows))
    print(f"\nraw figures: {rel(out_json)}")
    if args.write_docs:
        write_docs(docs_section(result))
        print(f"updated {rel(DOCS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
