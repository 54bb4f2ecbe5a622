#!/usr/bin/env python3
"""Scale benchmark (issue 12): vislint at 1-10 M items on this 2-core box.

Steps (`--only emb,jpeg,model,add`, default all):
- emb: for every size in --emb-sizes and every dimension in --dim, synthetic clustered
  embeddings with planted near copies, labels and train/val splits (bench/gen_embeddings.py,
  generated once under --data-dir and reused), then
  `vislint scan --embeddings emb.npy --names names.txt --labels labels.csv -o WORK -q`:
  wall time, peak RSS, run.json's stage timings; near_duplicate recall of the planted pairs and
  precision of the reported pairs (a pair is right when it is planted or both rows are copies of
  one original), leak recall / precision, label-issue AUROC of the label scores and P/R of the
  flagged rows, outlier P/R; per dimension with two sizes, the memory slope
  (RSS(n2) - RSS(n1)) / (n2 - n1) in bytes per item.
- jpeg: a corpus of --jpeg-n real JPEGs (bench/gen_jpegs.py, with 1 % exact and 1 % near copies
  and a --add-fraction add-on folder), `vislint scan CORPUS -o WORK --model none -q`: img/s,
  peak RSS, stage timings, recall of the planted exact / near copies.
- model: the default model on the first --model-n files of that corpus (a .txt list): img/s,
  peak RSS, stage timings.
- add: `vislint scan CORPUS ADD_DIR -o WORK` on the jpeg step's work dir (re-made by a fresh
  jpeg scan when it already holds the add-on files): time as a fraction of the full scan.

Every vislint run is started by a small wrapper process that reports that child's own rusage
(as bench/bench_scan.py does), so peak RSS is vislint's alone; the wrapper also samples
/proc/PID/status for the peaks of anonymous and file-backed resident memory (mapped
features.npy pages count in RSS but are reclaimable). Results accumulate in
--json (default build/bench/scale.json): steps not selected keep their earlier records, and
--resume skips selected steps whose record is already there (a long run that stopped goes on
where it stopped; generated data is always reused). --write-docs replaces the section between
<!-- scale:begin --> and <!-- scale:end --> of docs/benchmarks.md with every recorded step.

    python bench/scale.py [--only emb,jpeg,model,add] [--emb-sizes 20000,100000] [--dim 256]
                          [--jpeg-n 20000] [--model-n 2000] [--threads 0] [--resume]
                          [--json FILE] [--write-docs]

`make scale` runs the issue's sizes (10 M embeddings at 256 and 1280 dims, 1 M JPEGs, 200 k with
the model): hours, and ~100 GB of disk under build/bench/scale.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.dont_write_bytecode = True  # no bench/__pycache__ from the imports below
import bench_scan as B  # noqa: E402  (machine facts, paths, log tails)
import gen_embeddings as GE  # noqa: E402
import gen_jpegs as GJ  # noqa: E402

REPO = BENCH.parent
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"
STEPS = ("emb", "jpeg", "model", "add")
# Issue 12's targets, checked in the docs table.
TARGET_EMB_SECONDS, TARGET_EMB_RSS_GB, TARGET_RECALL, TARGET_ADD_FRACTION = 7200, 16, 0.98, 0.05


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# Like bench_scan.py's wrapper (the child's own rusage, from a small fresh process), plus the
# peak of /proc/PID/status RssAnon and RssFile sampled every 0.2 s: ru_maxrss counts the resident
# pages of memory-mapped files (features.npy, the SQLite database) too, which the kernel can drop
# under pressure; RssAnon is the part that has to fit in RAM.
_WRAPPER = r"""
import json, os, subprocess, sys, threading, time
cmd = json.loads(sys.argv[1])
peak = {"RssAnon": 0, "RssFile": 0}
t0 = time.perf_counter()
p = subprocess.Popen(cmd)
done = threading.Event()
def sample():
    path = "/proc/%d/status" % p.pid
    while not done.is_set():
        try:
            with open(path) as fh:
                for line in fh:
                    k, _, v = line.partition(":")
                    if k in peak:
                        peak[k] = max(peak[k], int(v.split()[0]))
        except (OSError, ValueError, IndexError):
            pass
        done.wait(0.2)
th = threading.Thread(target=sample, daemon=True)
th.start()
try:
    _pid, status, ru = os.wait4(p.pid, 0)
except BaseException:
    p.kill(); p.wait(); raise
wall = time.perf_counter() - t0
done.set()
with open(sys.argv[2], "w") as fh:
    json.dump({"seconds": wall, "cpu_seconds": ru.ru_utime + ru.ru_stime,
               "peak_rss_mb": ru.ru_maxrss / 1024,
               "peak_rss_anon_mb": peak["RssAnon"] / 1024, "peak_rss_file_mb": peak["RssFile"] / 1024,
               "returncode": os.waitstatus_to_exitcode(status)}, fh)
"""


def run_measured(cmd: list, log_path: Path) -> dict:
    res_path = log_path.with_suffix(".rusage.json")
    res_path.unlink(missing_ok=True)
    with open(log_path, "wb") as fh:
        rc = subprocess.call([sys.executable, "-I", "-S", "-c", _WRAPPER, json.dumps(cmd), str(res_path)],
                             cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    try:
        res = json.loads(res_path.read_text())
    except (OSError, ValueError):
        res = {"seconds": float("nan"), "cpu_seconds": float("nan"), "peak_rss_mb": float("nan"),
               "returncode": rc or 1}
    res_path.unlink(missing_ok=True)
    return res


def run_vislint(cmd: list, log_path: Path) -> dict:
    log("  $ " + shlex.join(map(str, cmd)))
    r = run_measured([str(c) for c in cmd], log_path)
    r["command"] = shlex.join(B.rel(Path(c)) if isinstance(c, Path) else str(c) for c in cmd)
    if r["returncode"] != 0:
        r["error"] = B.tail(log_path, 15)
        log(f"  FAILED (exit {r['returncode']}), log {B.rel(log_path)}:\n{r['error']}")
    else:
        log(f"  {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB "
            f"(sampled peaks: anonymous {r.get('peak_rss_anon_mb', 0):.0f} MB, "
            f"file-backed {r.get('peak_rss_file_mb', 0):.0f} MB)")
    return r


def run_json(work: Path) -> dict:
    try:
        return json.loads((work / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def pair_key(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return lo.astype(np.int64) * n + hi


def issue_rows(work: Path, type_: str) -> list:
    """(path, other_path, score) of one issue type, straight from the work dir's database (the
    schema vislint.Scan.issues reads), so 10 M-row scans need no DataFrame."""
    con = sqlite3.connect(f"file:{work / 'vislint.db'}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT a.path, b.path, i.score FROM issues i JOIN images a ON a.id = i.image_id "
            "LEFT JOIN images b ON b.id = i.other_id WHERE i.type = ?", (type_,)).fetchall()
    finally:
        con.close()


def label_scores(work: Path, n: int) -> np.ndarray:
    """label_score per row (NaN where none), the column vislint.Scan.label_issues(all=True) reads."""
    out = np.full(n, np.nan)
    con = sqlite3.connect(f"file:{work / 'vislint.db'}?mode=ro", uri=True)
    try:
        cur = con.execute("SELECT i.path, l.label_score FROM labels l JOIN images i "
                          "ON i.id = l.image_id WHERE l.label_score IS NOT NULL")
        while True:
            rows = cur.fetchmany(100_000)
            if not rows:
                break
            out[[GE.row_of(p) for p, _ in rows]] = [s for _, s in rows]
    finally:
        con.close()
    return out


def auroc(scores: np.ndarray, positive: np.ndarray):
    """Mann-Whitney AUROC with average ranks for ties."""
    p, q = int(positive.sum()), int((~positive).sum())
    if p == 0 or q == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return round(float((ranks[positive].sum() - p * (p + 1) / 2) / (p * q)), 4)


def prf(found: int, reported: int, truth: int) -> dict:
    return {"recall": round(found / truth, 4) if truth else None,
            "precision": round(found / reported, 4) if reported else None,
            "found": found, "reported": reported, "truth": truth}


def score_emb(work: Path, truth: dict) -> dict:
    n = truth["params"]["n"]
    pairs = np.asarray(truth["pairs"], dtype=np.int64).reshape(-1, 2)
    original = np.full(n, -1, dtype=np.int64)
    original[pairs[:, 0]] = pairs[:, 1]
    planted = set(pair_key(pairs[:, 0], pairs[:, 1], n).tolist())

    def right_rows(a, b):
        """Planted pair, or two copies of one original."""
        ok = np.fromiter((k in planted for k in pair_key(a, b, n).tolist()), bool, len(a))
        return ok | ((original[a] >= 0) & (original[a] == original[b]))

    def right_pairs(rows):
        """Per distinct unordered pair: right or not, and the pair keys."""
        if not rows:
            return np.zeros(0, bool), np.zeros(0, np.int64)
        a = np.array([GE.row_of(r[0]) for r in rows], dtype=np.int64)
        b = np.array([GE.row_of(r[1]) for r in rows], dtype=np.int64)
        keys, idx = np.unique(pair_key(a, b, n), return_index=True)  # either order counts once
        return right_rows(a[idx], b[idx]), keys

    res = {}
    ok, keys = right_pairs([r for r in issue_rows(work, "near_duplicate") if r[1] is not None])
    found = len(planted & set(keys.tolist()))
    res["near_duplicate"] = prf(found, len(keys), len(planted))
    res["near_duplicate"]["precision"] = round(float(ok.mean()), 4) if len(ok) else None
    res["near_duplicate"]["right"] = int(ok.sum())
    comp = Components()
    for k in keys.tolist():
        comp.union(k // n, k % n)
    res["near_duplicate"]["recall_grouped"] = round(
        sum(comp.same(int(a), int(b)) for a, b in pairs) / len(pairs), 4) if len(pairs) else None

    # vislint reports one leak row per (item, earlier split): the item's best partner there. So a
    # planted leak is found when its val row is reported with any row of its copy group.
    leaks = np.asarray(truth["leaks"], dtype=np.int64).reshape(-1, 2)
    leak_items = set(leaks[:, 0].tolist())
    rows = [r for r in issue_rows(work, "leak") if r[1] is not None]
    ok, _keys = right_pairs(rows)
    a = np.array([GE.row_of(r[0]) for r in rows], dtype=np.int64)
    ok_rows = right_rows(a, np.array([GE.row_of(r[1]) for r in rows], dtype=np.int64))
    found = len(leak_items & set(a[ok_rows].tolist()))
    res["leak"] = prf(found, len(rows), len(leak_items))
    res["leak"]["precision"] = round(float(ok.mean()), 4) if len(ok) else None

    out_rows = np.zeros(n, bool)
    out_rows[truth["outliers"]] = True
    flagged = {GE.row_of(r[0]) for r in issue_rows(work, "outlier")}
    res["outlier"] = prf(int(sum(out_rows[i] for i in flagged)), len(flagged), int(out_rows.sum()))

    flipped = np.zeros(n, bool)
    flipped[truth["flipped"]] = True
    flagged = {GE.row_of(r[0]) for r in issue_rows(work, "label_issue")}
    res["label_issue"] = prf(int(sum(flipped[i] for i in flagged)), len(flagged), int(flipped.sum()))
    scores = label_scores(work, n)
    keep = ~np.isnan(scores) & ~out_rows
    res["label_issue"]["scored_rows"] = int(keep.sum())
    res["label_issue"]["auroc"] = auroc(scores[keep], flipped[keep]) if keep.any() else None
    return res


# One `Scan.similar` query on a finished work dir, in a fresh process (what a user's first query
# costs: loading the mapped index, the position -> name rows it returns, the query): seconds of
# the query alone, of the whole process, and its peak RSS.
_SIMILAR = r"""
import json, sys, time
import numpy as np
import vislint
work, emb, rows = sys.argv[1], sys.argv[2], [int(r) for r in sys.argv[3].split(",")]
x = np.load(emb, mmap_mode="r")
scan = vislint.load(work)
times = []
for r in rows:
    t = time.perf_counter()
    hits = scan.similar(np.asarray(x[r], dtype=np.float32), k=10)
    times.append(time.perf_counter() - t)
    assert len(hits) == 10
print(json.dumps({"query_seconds": [round(t, 4) for t in times]}))
"""


def time_similar(work: Path, emb: Path, n: int, log_path: Path) -> dict:
    rows = ",".join(str(r) for r in (0, n // 3, n // 2, n - 1))
    r = run_measured([sys.executable, "-c", _SIMILAR, str(work), str(emb), rows], log_path)
    try:
        r.update(json.loads(log_path.read_text().strip().splitlines()[-1]))
    except (OSError, ValueError, IndexError):
        pass
    log(f"  similar: {r.get('query_seconds')} s per query, process {r['seconds']:.1f} s, "
        f"peak RSS {r['peak_rss_mb']:.0f} MB")
    return r



def step_emb(args, n: int, dim: int) -> dict:
    data = args.data_dir / f"emb-{n}-d{dim}-{args.emb_dtype}"
    gen = SimpleNamespace(n=n, dim=dim, out=data, dtype=args.emb_dtype, seed=args.seed,
                          clusters=0, classes=100, copy_fraction=0.005, flip_fraction=0.02,
                          val_fraction=0.1, outlier_fraction=0.001, chunk=100_000, threads=2,
                          force=False)
    # Preflight: at 10 M x 1280 the data alone is 25.6 GB and the work dir holds the features
    # again; failing after an hour of generation is worse than refusing now.
    item = np.dtype(args.emb_dtype).itemsize
    need = (0 if GE.is_complete(data, GE.params_of(gen)) else n * dim * item + n * 70) \
        + n * dim * item + n * 400
    free = shutil.disk_usage(args.data_dir).free
    if need > free:
        msg = (f"not enough disk for {n:,} x {dim}: needs ~{need / 1e9:.1f} GB under {args.data_dir}, "
               f"{free / 1e9:.1f} GB free (delete the emb-* data of other sizes there, or pass "
               "--delete-emb-data)")
        log("  " + msg)
        return {"n": n, "dim": dim, "dtype": args.emb_dtype, "returncode": 1, "error": msg}
    t0 = time.perf_counter()
    truth = GE.ensure(gen, log=lambda s: log("  " + s.strip()))
    gen_s = time.perf_counter() - t0
    work = args.work_dir / f"emb-{n}-d{dim}"
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    cmd = [args.vislint, "scan", "--embeddings", data / "emb.npy", "--names", data / "names.txt",
           "--labels", data / "labels.csv", "-o", work, "-q", "--threads", str(args.threads)]
    r = run_vislint(cmd, args.log_dir / f"emb-{n}-d{dim}.log")
    rec = {"n": n, "dim": dim, "dtype": args.emb_dtype, "data": B.rel(data),
           "generate_seconds": truth.get("generate_seconds"), "generate_wall_this_run": round(gen_s, 1),
           "data_checks": truth.get("checks"), "data_counts": truth.get("counts"), **r}
    if r["returncode"] == 0:
        rj = run_json(work)
        rec["timings_seconds"] = rj.get("timings_seconds")
        rec["index"] = rj.get("index")
        rec["counts"] = rj.get("counts")
        t0 = time.perf_counter()
        rec["metrics"] = score_emb(work, truth)
        log(f"  scored in {time.perf_counter() - t0:.1f} s: " + ", ".join(
            f"{k} R={v.get('recall')} P={v.get('precision')}" for k, v in rec["metrics"].items())
            + f", label AUROC {rec['metrics']['label_issue'].get('auroc')}")
        rec["similar"] = time_similar(work, data / "emb.npy", n, args.log_dir / f"similar-{n}-d{dim}.log")
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    if args.delete_emb_data:
        shutil.rmtree(data, ignore_errors=True)
    return rec


def jpeg_data(args):
    corpus = args.data_dir / f"jpeg-{args.jpeg_n}-s{args.jpeg_side}"
    add = args.data_dir / f"jpeg-{args.jpeg_n}-s{args.jpeg_side}-add"
    marker = GJ.generate(args.jpeg_n, corpus, side=args.jpeg_side, procs=args.procs, seed=args.seed,
                         add_fraction=args.add_fraction, add_out=add,
                         log=lambda s: log("  " + s.strip()))
    return corpus, add, marker


def tail_path(p: str) -> str:
    """dFFFF/img_IIIIIII.jpg of a corpus path, however the work dir stores it."""
    parts = p.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


class Components:
    """Union-find over reported pairs: exact copies are reported as (member, keeper) rows and
    near pairs skip exact copies, so a planted pair can be found without being a row."""

    def __init__(self):
        self.parent = {}

    def find(self, x):
        p = self.parent
        root = x
        while p.get(root, root) != root:
            root = p[root]
        while p.get(x, x) != root:
            p[x], x = root, p[x]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb

    def same(self, a, b) -> bool:
        return self.find(a) == self.find(b)


def score_jpeg(work: Path, marker: dict) -> dict:
    """Recall of the planted copies: exact ones in one exact_duplicate group, near ones joined
    by the exact_duplicate and near_duplicate rows (the corpus is for throughput: unplanted pairs,
    e.g. two crops of one clip art, are not scored)."""
    res = {}
    comp = Components()
    for type_, kind in (("exact_duplicate", "exact_copies"), ("near_duplicate", "near_copies")):
        rows = issue_rows(work, type_)
        for a, b, _ in rows:
            if b is not None:
                comp.union(tail_path(a), tail_path(b))
        truth = marker.get(kind, [])
        found = sum(comp.same(a, b) for a, b in truth)
        res[type_] = {"recall_of_planted": round(found / len(truth), 4) if truth else None,
                      "planted": len(truth), "rows": len(rows)}
    return res


def step_jpeg(args, state: dict) -> dict:
    corpus, add, marker = jpeg_data(args)
    work = args.work_dir / f"jpeg-{args.jpeg_n}"
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    cmd = [args.vislint, "scan", corpus, "-o", work, "--model", "none", "-q", "--threads", str(args.threads)]
    r = run_vislint(cmd, args.log_dir / f"jpeg-{args.jpeg_n}.log")
    rec = {"files": args.jpeg_n, "side": args.jpeg_side, "corpus": B.rel(corpus),
           "generate_seconds": marker.get("seconds"), "generate_files_per_s": marker.get("files_per_s"),
           **r}
    if r["returncode"] == 0:
        rec["images_per_s"] = round(args.jpeg_n / r["seconds"], 1)
        rj = run_json(work)
        rec["timings_seconds"] = rj.get("timings_seconds")
        rec["counts"] = rj.get("counts")
        rec["metrics"] = score_jpeg(work, marker)
        state["jpeg_work"] = {"path": str(work), "with_add": False, "seconds": r["seconds"]}
    return rec


def step_model(args) -> dict:
    corpus, _add, _marker = jpeg_data(args)
    m = min(args.model_n, args.jpeg_n)
    lst = args.data_dir / f"jpeg-{args.jpeg_n}-s{args.jpeg_side}-first{m}.txt"
    if not lst.is_file():
        lines = [str((corpus / GJ.rel_path(i)).resolve()) for i in range(m)]
        lst.write_text("\n".join(lines) + "\n")
    work = args.work_dir / f"model-{m}"
    shutil.rmtree(work, ignore_errors=True)
    cmd = [args.vislint, "scan", lst, "-o", work, "-q", "--threads", str(args.threads)]
    r = run_vislint(cmd, args.log_dir / f"model-{m}.log")
    rec = {"files": m, "side": args.jpeg_side, "list": B.rel(lst), **r}
    if r["returncode"] == 0:
        rec["images_per_s"] = round(m / r["seconds"], 1)
        rj = run_json(work)
        rec["timings_seconds"] = rj.get("timings_seconds")
        rec["inference"] = {k: rj.get("inference", {}).get(k) for k in ("precision", "runtime")}
        rec["index"] = rj.get("index")
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return rec


def step_add(args, state: dict, results: dict) -> dict:
    corpus, add, marker = jpeg_data(args)
    work = args.work_dir / f"jpeg-{args.jpeg_n}"
    jw = state.get("jpeg_work")
    full = results.get("jpeg")
    if (jw is None or jw.get("with_add") or not (work / "run.json").is_file() or not full
            or full.get("returncode") != 0 or full.get("files") != args.jpeg_n):
        log("  the jpeg work dir is missing or already holds the add-on files: fresh jpeg scan first")
        results["jpeg"] = full = step_jpeg(args, state)
        if full.get("returncode") != 0:
            return {"error": "the full jpeg scan failed", "returncode": 1}
    n_add = marker["add"]["files"]
    cmd = [args.vislint, "scan", corpus, add, "-o", work, "--model", "none", "-q",
           "--threads", str(args.threads)]
    r = run_vislint(cmd, args.log_dir / f"add-{args.jpeg_n}.log")
    state["jpeg_work"] = {"path": str(work), "with_add": True}
    rec = {"files": args.jpeg_n, "new_files": n_add, "add_dir": B.rel(add), **r,
           "full_scan_seconds": full["seconds"]}
    if r["returncode"] == 0:
        rec["fraction_of_full"] = round(r["seconds"] / full["seconds"], 4)
        rj = run_json(work)
        rec["timings_seconds"] = rj.get("timings_seconds")
        rec["counts"] = {k: rj.get("counts", {}).get(k) for k in ("images", "analysed", "reused", "removed")}
        log(f"  re-scan with {n_add:,} new files: {rec['fraction_of_full'] * 100:.1f} % of the full scan")
    return rec


# --------------------------------------------------------------------------- report

# run.json's timings nest: "issues" holds flags, exact_duplicates, similarity and the label /
# leak / write work after it; "similarity" holds knn_build and knn_graph. The report is written
# after run.json, so it is the scan's wall time less "total" (with process start and exit).
_NESTED = {"issues": ("flags", "exact_duplicates", "similarity"), "similarity": ("knn_build", "knn_graph")}


def fmt_timings(t, wall=None) -> str:
    if not t:
        return "—"
    inner = {k for v in _NESTED.values() for k in v}

    def one(k):
        v = t[k]
        kids = [c for c in _NESTED.get(k, ()) if c in t]
        rest = v - sum(t[c] for c in kids)
        kids = [c for c in kids if t[c] >= 0.05]
        if not kids:
            return f"{k} {v:.1f}"
        parts = [one(c) for c in kids] + ([f"rest {rest:.1f}"] if rest >= 0.05 else [])
        return f"{k} {v:.1f} ({', '.join(parts)})"

    top = [one(k) for k in t if k not in inner and k != "total" and (t[k] >= 0.05 or k in _NESTED)]
    if wall is not None and "total" in t:
        top.append(f"report + exit {max(0.0, wall - t['total']):.1f}")
    return "; ".join(top)


def last_line(text) -> str:
    lines = (text or "").strip().splitlines()
    return f"`{lines[-1].replace('|', '/')}`" if lines else ""


def gb(mb) -> str:
    return "—" if mb is None else f"{mb / 1024:.2f}"


def num(x, nd=3) -> str:
    return "—" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def slopes(emb: list) -> list:
    out = []
    for dim in sorted({r["dim"] for r in emb}):
        rs = sorted((r for r in emb if r["dim"] == dim and r.get("returncode") == 0), key=lambda r: r["n"])
        if len(rs) >= 2 and rs[-1]["n"] > rs[0]["n"]:
            a, b = rs[0], rs[-1]
            out.append({"dim": dim, "n1": a["n"], "n2": b["n"], "rss1_mb": a["peak_rss_mb"],
                        "rss2_mb": b["peak_rss_mb"],
                        "bytes_per_item": round((b["peak_rss_mb"] - a["peak_rss_mb"]) * 2 ** 20
                                                / (b["n"] - a["n"]), 1),
                        "anon_bytes_per_item": round((b.get("peak_rss_anon_mb", 0) - a.get("peak_rss_anon_mb", 0))
                                                     * 2 ** 20 / (b["n"] - a["n"]), 1)})
    return out


def similar_cell(sim) -> str:
    if not sim or not sim.get("query_seconds"):
        return "not measured"
    q = sim["query_seconds"]
    return (f"first {q[0]:.3f}, then {max(q[1:]):.3f} at most; process {sim['seconds']:.1f}, "
            f"{gb(sim.get('peak_rss_mb'))} GB")


def tables(results: dict) -> list:
    lines = []
    emb = sorted(results.get("emb", {}).values(), key=lambda r: (r["dim"], r["n"]))
    if emb:
        lines += ["### Embeddings only (`vislint scan --embeddings`)", "",
                  "Synthetic clustered embeddings from `bench/gen_embeddings.py` (power-law spectrum, "
                  "0.5 % planted near copies at cosine 0.95-0.99, 2 % flipped labels, 10 % val split, "
                  "0.1 % outliers). Targets at 10 M x 256: <= 2 h, <= 16 GB, near-duplicate recall "
                  "and precision >= 0.98.", "",
                  "| items | dim | wall s | peak RSS GB | of it anonymous GB | near-dup recall | precision | leak recall | "
                  "label AUROC | label P / R | outlier P / R | `similar` s (4 queries, fresh process) | stages (s) |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|"]
        for r in emb:
            if r.get("returncode") != 0:
                lines.append(f"| {r['n']:,} | {r['dim']} | failed | {gb(r.get('peak_rss_mb'))} | | | | | | | | | "
                             f"exit {r.get('returncode')}: {last_line(r.get('error'))} |")
                continue
            m = r.get("metrics", {})
            nd, lk, li, ol = (m.get(k, {}) for k in ("near_duplicate", "leak", "label_issue", "outlier"))
            lines.append(
                f"| {r['n']:,} | {r['dim']} | {r['seconds']:.1f} | {gb(r['peak_rss_mb'])} | "
                f"{gb(r.get('peak_rss_anon_mb'))} | "
                f"{num(nd.get('recall'), 4)} | {num(nd.get('precision'), 4)} | {num(lk.get('recall'), 4)} | "
                f"{num(li.get('auroc'), 4)} | {num(li.get('precision'), 3)} / {num(li.get('recall'), 3)} | "
                f"{num(ol.get('precision'), 3)} / {num(ol.get('recall'), 3)} | {similar_cell(r.get('similar'))} | "
                f"{fmt_timings(r.get('timings_seconds'), r.get('seconds'))} |")
        sl = slopes(emb)
        if sl:
            lines += ["", "Memory slope (peak RSS of the scan at two sizes):", "",
                      "| dim | n1 | n2 | RSS n1 GB | RSS n2 GB | bytes per item | anonymous bytes per item | "
                      "RSS extrapolated to 10 M GB |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
            lines += [f"| {s['dim']} | {s['n1']:,} | {s['n2']:,} | {gb(s['rss1_mb'])} | {gb(s['rss2_mb'])} | "
                      f"{s['bytes_per_item']:,.0f} | {s['anon_bytes_per_item']:,.0f} | "
                      f"{(s['rss2_mb'] * 2 ** 20 + s['bytes_per_item'] * (10_000_000 - s['n2'])) / 2 ** 30:.1f} |"
                      for s in sl]
        lines += ["", "Commands: " + "; ".join(f"`{r['command']}`" for r in emb[:1])
                  + " (the same for every size)", ""]
    for key, title in (("jpeg", "Real JPEGs, hash only (`--model none`)"),
                       ("model", "Real JPEGs, default model")):
        r = results.get(key)
        if not r:
            continue
        lines += [f"### {title}", "",
                  "| files | side px | wall s | img/s | peak RSS GB | of it anonymous GB | stages (s) |",
                  "|---:|---:|---:|---:|---:|---:|---|"]
        if r.get("returncode") != 0:
            lines.append(f"| {r['files']:,} | {r['side']} | failed | | {gb(r.get('peak_rss_mb'))} | | "
                         f"exit {r.get('returncode')}: {last_line(r.get('error'))} |")
        else:
            lines.append(f"| {r['files']:,} | {r['side']} | {r['seconds']:.1f} | {r['images_per_s']:.0f} | "
                         f"{gb(r['peak_rss_mb'])} | {gb(r.get('peak_rss_anon_mb'))} | "
                         f"{fmt_timings(r.get('timings_seconds'), r.get('seconds'))} |")
            if key == "jpeg" and r.get("metrics"):
                m = r["metrics"]
                lines += ["", f"Planted copies found: exact {num(m['exact_duplicate']['recall_of_planted'], 4)} "
                          f"of {m['exact_duplicate']['planted']:,}, near {num(m['near_duplicate']['recall_of_planted'], 4)} "
                          f"of {m['near_duplicate']['planted']:,} (recall: a copy counts as found when the "
                          "reported exact / near rows join it to its original; the corpus is for throughput, "
                          "so unplanted near pairs, e.g. two crops of one clip art, are not scored)."]
            if key == "model" and r.get("inference"):
                lines += ["", f"Inference: {r['inference'].get('precision')} on {r['inference'].get('runtime')}."]
        lines += ["", f"Command: `{r['command']}`", ""]
    r = results.get("add")
    if r:
        lines += ["### Incremental re-scan (1 % new files)", "",
                  "| corpus files | new files | full scan s | re-scan s | fraction | goal |",
                  "|---:|---:|---:|---:|---:|---:|"]
        if r.get("returncode") != 0:
            lines.append(f"| {r.get('files', '—')} | {r.get('new_files', '—')} | | failed | | <= 5 % |")
        else:
            lines.append(f"| {r['files']:,} | {r['new_files']:,} | {r['full_scan_seconds']:.1f} | "
                         f"{r['seconds']:.1f} | {r['fraction_of_full'] * 100:.1f} % | <= 5 % |")
        if r.get("command"):
            lines += ["", f"Command: `{r['command']}` (on the hash-only work dir above)", ""]
    return lines


def docs_section(doc: dict) -> str:
    m = doc["machine"]
    lines = ["## Scale (`python bench/scale.py`, issue 12)", "",
             f"- Date: {doc['date']}; machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_gb']} GB RAM, "
             f"{m['os']}; vislint {doc.get('vislint_version') or '?'}"
             + (f", git {doc['git']}" if doc.get("git") else "") + ".",
             f"- Run: `{doc['bench_command']}`; peak RSS is the scan process's own (wrapper floor "
             f"{doc.get('rss_floor_mb', 0):.0f} MB); data generated under `{doc['data_dir']}`.", ""]
    return "\n".join(lines + tables(doc["results"])).rstrip() + "\n"


def write_docs(section: str) -> None:
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{section}{END}"
    i, j = text.find(BEGIN), text.find(END)
    text = text[:i] + block + text[j + len(END):] if i != -1 and j > i else text.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- main

def int_list(s: str) -> list:
    try:
        out = [int(float(x)) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}")
    if not out or min(out) < 2:
        raise argparse.ArgumentTypeError(f"expected integers >= 2, got {s!r}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(STEPS), help="comma-separated steps: emb, jpeg, model, add")
    ap.add_argument("--emb-sizes", type=int_list, default=[20000, 100000],
                    help="embedding counts, comma-separated (1e6 style accepted)")
    ap.add_argument("--dim", type=int_list, default=[256], help="embedding dimensions, comma-separated")
    ap.add_argument("--emb-dtype", choices=("float16", "float32"), default="float16")
    ap.add_argument("--jpeg-n", type=lambda s: int(float(s)), default=20000, help="JPEG corpus size")
    ap.add_argument("--jpeg-side", type=int, default=128)
    ap.add_argument("--model-n", type=lambda s: int(float(s)), default=2000,
                    help="files scanned with the default model (the corpus's first)")
    ap.add_argument("--add-fraction", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=0, help="vislint --threads (0 = all cores)")
    ap.add_argument("--procs", type=int, default=2, help="processes of the JPEG generator")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vislint", default=str(REPO / ".venv" / "bin" / "vislint"))
    ap.add_argument("--data-dir", type=Path, default=REPO / "build" / "bench" / "scale")
    ap.add_argument("--json", type=Path, default=REPO / "build" / "bench" / "scale.json")
    ap.add_argument("--resume", action="store_true", help="skip selected steps already in --json")
    ap.add_argument("--keep-work", action="store_true",
                    help="keep the emb and model work dirs (the jpeg one is always kept for add)")
    ap.add_argument("--delete-emb-data", action="store_true",
                    help="delete each generated embedding set after its scan (saves disk; a rerun "
                         "generates it again)")
    ap.add_argument("--write-docs", action="store_true", help=f"rewrite the scale section of {B.rel(DOCS)}")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in STEPS]
    if bad or not only:
        ap.error(f"--only: unknown step(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(STEPS)}")
    if not 0 < args.add_fraction <= 0.5:
        ap.error(f"--add-fraction must be in (0, 0.5], got {args.add_fraction}")
    if args.jpeg_n < 1 or args.model_n < 1 or args.threads < 0 or args.procs < 1:
        ap.error("--jpeg-n, --model-n, --procs must be >= 1 and --threads >= 0")
    exe = Path(args.vislint)
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        ap.error(f"--vislint: not an executable file: {exe} (run `make install`)")
    args.vislint = exe
    args.data_dir = args.data_dir.resolve()
    args.work_dir = args.data_dir / "work"
    args.log_dir = args.data_dir / "logs"
    args.log_dir.mkdir(parents=True, exist_ok=True)

    doc = {}
    if args.json.is_file():
        try:
            doc = json.loads(args.json.read_text())
        except ValueError:
            log(f"warning: {args.json} is not JSON; starting a new one")
    results = doc.setdefault("results", {})
    state = doc.setdefault("state", {})
    doc.update({
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"nproc": B.nproc(), "cpu_model": B.cpu_model(), "mem_total_gb": B.mem_total_gb(),
                    "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()},
        "vislint_version": B.cmd_output([str(exe), "--version"]), "git": B.git_rev(),
        "bench_command": "python bench/scale.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "data_dir": B.rel(args.data_dir),
    })
    doc["rss_floor_mb"] = run_measured(["/bin/true"], args.log_dir / "floor.log")["peak_rss_mb"]

    def save():
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, args.json)

    failed = 0
    t_all = time.perf_counter()
    if "emb" in only:
        emb = results.setdefault("emb", {})
        for dim in args.dim:
            for n in args.emb_sizes:
                key = f"{n}x{dim}"
                if args.resume and emb.get(key, {}).get("returncode") == 0:
                    log(f"emb {key}: kept from {B.rel(args.json)}")
                    continue
                log(f"emb {n:,} x {dim}")
                emb[key] = step_emb(args, n, dim)
                failed += emb[key].get("returncode") != 0
                save()
    for step in ("jpeg", "model", "add"):
        if step not in only:
            continue
        if args.resume and results.get(step, {}).get("returncode") == 0:
            log(f"{step}: kept from {B.rel(args.json)}")
            continue
        log(f"{step}")
        if step == "jpeg":
            results[step] = step_jpeg(args, state)
        elif step == "model":
            results[step] = step_model(args)
        else:
            results[step] = step_add(args, state, results)
        failed += results[step].get("returncode") != 0
        save()
    save()
    section = docs_section(doc)
    print("\n" + section)
    log(f"all steps in {time.perf_counter() - t_all:.0f} s; figures in {B.rel(args.json)}")
    if args.write_docs:
        write_docs(section)
        log(f"updated {B.rel(DOCS)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
