#!/usr/bin/env python3
"""Detection quality and speed of the default model per inference variant (precision x input
size), vislint alone, in one table.

For every variant PRECISION@SIZE and corpus seed, runs bench/quality.py and bench/labels.py with
`--only vislint --precision P --model-size S --seed ...` (results in build/bench/variants/), then
times a fresh `vislint scan --no-report` of the same 256-px JPEG corpus per variant and thread
count, interleaved (variant after variant, then the next repeat) so a shared machine's load hits
each alike; the best repeat is kept and speeds are compared as ratios within this run.

    python bench/variants.py [--variants f32@160,bf16@160,f32@128,bf16@128,f32@224,bf16@224]
                             [--seeds 0,1,2] [--label-seeds 0,1,2] [--speed-n 1000]
                             [--speed-threads 1,2] [--speed-repeat 2] [--reuse] [--write-docs]

Seed k is corpus seed 7 + k of bench/quality.py (k = 0 is its usual corpus) and seed k of
bench/labels.py (a new Fashion-MNIST draw with new flips and leaks, and a new clip-art split).
Noise: the first variant is the baseline; each metric's spread over seeds at the baseline is
the corpus-sampling noise, and every other variant is judged by its paired difference from the
baseline on the same corpora (see the docs section this writes). `--reuse` keeps results already
in build/bench/variants/ (after an interrupted run). An int8 variant is `int8@160`.

With --write-docs the section between <!-- precision_size:begin --> and
<!-- precision_size:end --> in docs/benchmarks.md is replaced (appended when absent).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True
import quality as Q  # noqa: E402
from quality import BENCH, REPO  # noqa: E402

OUT = BENCH / "variants"  # --out changes it
DEFAULT_VARIANTS = "f32@160,bf16@160,f32@128,bf16@128,f32@224,bf16@224"
PRECISIONS = ("f32", "auto", "bf16", "int8")
# (key, column title, higher is better) of the per-seed figures compared between variants
METRICS = [("dup_f1", "duplicate F1", True), ("dup_p", "dup. precision", True), ("dup_r", "dup. recall", True),
           ("out_auroc", "outlier AUROC", True), ("out_pk", "outlier P@K", True),
           ("li_auroc", "label-issue AUROC", True), ("li_pk", "label-issue P@K", True),
           ("leak_f_r", "leak recall (Fashion)", True), ("leak_f_p", "leak precision (Fashion)", True),
           ("leak_c_r", "leak recall (clip art)", True), ("leak_c_p", "leak precision (clip art)", True)]


def parse_variants(text: str):
    out = []
    for v in text.split(","):
        prec, sep, size = v.strip().partition("@")
        if not sep or prec not in PRECISIONS or not size.isdigit():
            raise SystemExit(f"--variants: each variant is PRECISION@SIZE with PRECISION one of "
                             f"{', '.join(PRECISIONS)} (got {v!r})")
        out.append((prec, int(size)))
    return out


def name(v):
    return f"{v[0]}@{v[1]}"


def scale_tag(scale: float) -> str:
    return "" if scale == 1 else f"-scale{scale:g}"


def run_bench(script: str, v, seed: int, scale: float, reuse: bool) -> dict:
    out = OUT / f"{script}-{v[0]}-{v[1]}-seed{seed}{scale_tag(scale)}.json"
    if reuse and out.exists():
        return json.loads(out.read_text())
    bench_seed = Q.DEFAULT_SEED + seed if script == "quality" else seed
    cmd = [sys.executable, str(REPO / "bench" / f"{script}.py"), "--only", "vislint", "--precision", v[0],
           "--model-size", str(v[1]), "--seed", str(bench_seed), "--scale", str(scale), "--json", str(out)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    print(f"{script} {name(v)} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return json.loads(out.read_text())


def frac(s: str):
    a, b = s.split("/")
    return int(a), int(b)


def figures(q: dict, lab: dict) -> dict:
    """The per-seed figures of one variant (None where a run failed)."""
    f = {}
    m = q["tools"]["vislint"]["metrics"]
    d, o = m["duplicates (any)"], m["outlier"]
    f.update(dup_f1=d["f1"], dup_p=d["precision"], dup_r=d["recall"], out_auroc=o["auroc"],
             out_pk=o["precision@K"], out_k=o["K"], transforms=m["near_duplicate recall by transform"],
             q_precision=(q["tools"]["vislint"].get("inference") or {}).get("precision"))
    fa = lab["fashion"]["vislint"]["default"]
    cl = lab["clipart"]["vislint"]["default"]
    li = fa.get("label_issue") if isinstance(fa.get("label_issue"), dict) else {}
    f.update(li_auroc=li.get("auroc"), li_pk=li.get("precision@K"),
             leak_f_r=(fa.get("leaks") or {}).get("recall"), leak_f_p=(fa.get("leaks") or {}).get("precision"),
             leak_c_r=(cl.get("leaks") or {}).get("recall"), leak_c_p=(cl.get("leaks") or {}).get("precision"),
             fashion_seconds=fa.get("scan_seconds"), fashion_images=fa.get("images"),
             l_precision=(fa.get("inference") or {}).get("precision"),
             q_corpus=q.get("corpus"), l_corpus=lab.get("fashion", {}).get("corpus"))
    return f


def cpu_flags():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [x for x in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni")
                    if x in have]
    return []


def speed(variants, n: int, threads, repeat: int, reuse: bool) -> dict:
    out = OUT / f"speed-{n}.json"
    if reuse and out.exists():
        old = json.loads(out.read_text())
        if all(f"{name(v)} t{t}" in old for v in variants for t in threads):
            return old
    import vislint.testing as t

    corpus = BENCH / f"corpus-{n}"
    t.make_throughput_corpus(corpus, n=n, size=256)
    exe = Q.vislint_cli()
    work = OUT / "speed-work"
    best = {}
    for rep in range(repeat):
        for th in threads:
            for v in variants:
                shutil.rmtree(work, ignore_errors=True)
                t0 = time.perf_counter()
                p = subprocess.run([str(exe), "scan", str(corpus), "-o", str(work), "--quiet", "--no-report",
                                    "--threads", str(th), "--precision", v[0], "--model-size", str(v[1])],
                                   capture_output=True, text=True)
                secs = time.perf_counter() - t0
                if p.returncode != 0:
                    raise SystemExit(f"speed run {name(v)} failed:\n{p.stderr[-2000:]}")
                ran = json.loads((work / "run.json").read_text()).get("inference", {}).get("precision")
                key = f"{name(v)} t{th}"
                if key not in best or secs < best[key]["seconds"]:
                    best[key] = {"seconds": round(secs, 3), "img_s": round(n / secs, 1), "precision": ran}
                print(f"speed {key} rep {rep}: {secs:.2f} s {n / secs:.0f} img/s ({ran})", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    best["_corpus"] = {"n": n, "path": os.path.relpath(corpus, REPO), "repeat": repeat}
    out.write_text(json.dumps(best, indent=1) + "\n")
    return best


def mean_sd(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt(x, nd=3):
    return "—" if x is None else f"{x:.{nd}f}"


def docs_section(result) -> str:
    variants = [tuple(v) for v in result["variants"]]
    base = variants[0]
    per = result["figures"]  # name -> seed -> figures
    seeds = result["seeds"]
    label_seeds = result["label_seeds"]
    sp = result["speed"]
    threads = result["speed_threads"]
    first = next(iter(per[name(base)].values()))
    qc, lc = first.get("q_corpus") or {}, first.get("l_corpus") or {}

    def series(v, key):
        ss = label_seeds if key.startswith(("li_", "leak_")) else seeds
        return [per[name(v)][str(s)].get(key) for s in ss if str(s) in per[name(v)]]

    lines = ["## Inference variants: precision and input size (`python bench/variants.py`)", "",
             f"- Date: {result['date']}; machine: {result['machine']}; CPU flags: "
             f"{', '.join(result['cpu_flags']) or '—'}; {result['runtime']}.",
             f"- Command: `{result['command']}` ({result['seconds']:.0f} s).",
             f"- vislint: `{result.get('cli', '?')}`; model cache: `{result.get('model_cache', '?')}`.",
             f"- Quality: `bench/quality.py --only vislint --precision P --model-size S --seed 7+k` for k in "
             f"{', '.join(map(str, seeds))} (clip-art corpora of {qc.get('n_base', '?')} base images with planted "
             f"copies and {qc.get('outliers', '?')} Fashion-MNIST outliers, {qc.get('files', '?')} files; each seed "
             f"a different draw), and `bench/labels.py --only vislint ... --seed k` for k in "
             f"{', '.join(map(str, label_seeds))} (Fashion-MNIST, {lc.get('items', '?')} items with "
             f"{lc.get('flips', '?')} flipped labels and {lc.get('leaks', '?')} planted leaks per draw; clip-art "
             f"leaks on the quality corpus of seed 7+k). "
             f"Figures are the mean ± standard deviation over seeds; all variants see the same corpora.",
             f"- Speed: a fresh `vislint scan CORPUS -o WORK --quiet --no-report --threads T --precision P "
             f"--model-size S` of {sp['_corpus']['n']} distinct 256-px JPEGs (`{sp['_corpus']['path']}`), wall "
             f"clock including start-up, best of {sp['_corpus']['repeat']} interleaved repeats on a 2-core machine "
             f"shared with other builds: compare the ratios, not the absolute img/s.", "",
             "| variant | precision that ran | " + " | ".join(t for _, t, _ in METRICS)
             + " | " + " | ".join(f"img/s {t} thr." for t in threads) + f" | speed vs {name(base)} |",
             "|---|---|" + "---:|" * (len(METRICS) + len(threads) + 1)]
    for v in variants:
        ran = sorted({f.get(k) for f in per[name(v)].values() for k in ("q_precision", "l_precision")} - {None})
        cells = []
        for key, _, _ in METRICS:
            m, sd = mean_sd(series(v, key))
            cells.append("—" if m is None else (f"{m:.3f} ± {sd:.3f}" if len(series(v, key)) > 1 else f"{m:.3f}"))
        spd = [sp.get(f"{name(v)} t{t}", {}).get("img_s") for t in threads]
        ratio = " / ".join(
            f"{sp[f'{name(v)} t{t}']['img_s'] / sp[f'{name(base)} t{t}']['img_s']:.2f}x" for t in threads
            if f"{name(v)} t{t}" in sp and f"{name(base)} t{t}" in sp)
        lines.append(f"| {name(v)} | {', '.join(ran)} | " + " | ".join(cells) + " | "
                     + " | ".join("—" if x is None else f"{x:.0f}" for x in spd) + f" | {ratio} |")

    # Noise and paired differences.
    lines += ["", f"**Noise.** A scan is deterministic for a given variant and corpus (the same run twice "
                  f"gives the same figures: {result['repeatability']}), so the only noise in these figures "
                  f"is which images a corpus happens to hold. Its size is the spread over seeds at "
                  f"{name(base)} (min … max, standard deviation). Each other variant is compared on the "
                  f"same corpora by its paired difference from {name(base)} (mean, and min … max over "
                  f"seeds, and on how many seeds it was worse / better); **within noise** = the mean "
                  f"difference is smaller than one seed-to-seed standard deviation of {name(base)} (or "
                  f"smaller than 0.005 where that deviation is 0, i.e. less than one item in hundreds), "
                  f"*worse* / *better* otherwise. A difference within noise but of one sign on every seed "
                  f"is real but smaller than what choosing another corpus does.", "",
              "| metric | " + f"{name(base)} spread over seeds | " + " | ".join(
                  f"{name(v)} − {name(base)}" for v in variants[1:]) + " |",
              "|---|---|" + "---|" * (len(variants) - 1)]
    verdicts = {name(v): [] for v in variants[1:]}
    for key, title, higher in METRICS:
        bs = series(base, key)
        bm, bsd = mean_sd(bs)
        if bm is None:
            continue
        tol = bsd if bsd and bsd > 0 else 0.005
        cells = [f"{fmt(min(bs))} … {fmt(max(bs))} (sd {fmt(bsd)})"]
        for v in variants[1:]:
            vs = series(v, key)
            ds = [x - y for x, y in zip(vs, bs) if x is not None and y is not None]
            if not ds:
                cells.append("—")
                continue
            dm = statistics.fmean(ds)
            good = dm if higher else -dm
            verdict = "within noise" if abs(dm) <= tol else ("better" if good > 0 else "*worse*")
            if verdict == "*worse*":
                verdicts[name(v)].append(title)
            # How many seeds moved each way: a small but one-sided difference is systematic.
            worse_n = sum((d < 0) if higher else (d > 0) for d in ds)
            better_n = sum((d > 0) if higher else (d < 0) for d in ds)
            rng = (f" ({min(ds):+.3f} … {max(ds):+.3f}; worse on {worse_n}, better on {better_n} of {len(ds)})"
                   if len(ds) > 1 else "")
            cells.append(f"{dm:+.3f}{rng}: {verdict}")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")

    # Near-duplicate recall by transform, summed over seeds.
    trs = sorted({t for v in variants for s in per[name(v)].values() for t in s.get("transforms", {})})
    lines += ["", f"Near-duplicate recall by transform (bench/quality.py, copies found / planted, summed over "
                  f"the {len(seeds)} corpora):", "",
              "| transform | " + " | ".join(name(v) for v in variants) + " |",
              "|---|" + "---:|" * len(variants)]
    for t in trs:
        cells = []
        for v in variants:
            got = [frac(s["transforms"][t]) for s in per[name(v)].values() if t in s.get("transforms", {})]
            cells.append(f"{sum(a for a, _ in got)}/{sum(c for _, c in got)}" if got else "—")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")

    # Fashion-MNIST scan seconds from the labels runs: the same 12,250 images, a second speed view.
    lines += ["", f"Scan seconds of the Fashion-MNIST label runs ({lc.get('items', '?')} images of 28 px, so "
                  "inference dominates; `run.json` total, mean over seeds, same machine load caveat): "
              + ", ".join(f"{name(v)} {fmt(mean_sd(series(v, 'fashion_seconds'))[0], 1)} s" for v in variants)
              + "."]
    worse = {k: w for k, w in verdicts.items() if w}
    lines += ["", "Worse than noise: " + ("; ".join(f"{k}: {', '.join(w)}" for k, w in worse.items())
                                           if worse else "none.")]
    return "\n".join(lines)


def main(argv=None):
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma list of PRECISION@SIZE; the first is the baseline")
    ap.add_argument("--seeds", default="0,1,2", help="bench/quality.py corpus seeds 7+k")
    ap.add_argument("--label-seeds", default=None, help="bench/labels.py seeds (default: --seeds)")
    ap.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1")))
    ap.add_argument("--speed-n", type=int, default=1000)
    ap.add_argument("--speed-threads", default="1,2")
    ap.add_argument("--speed-repeat", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="keep results already in build/bench/variants/")
    ap.add_argument("--out", type=Path, default=OUT, help="results folder (default build/bench/variants)")
    ap.add_argument("--section", default="precision_size",
                    help="docs/benchmarks.md marker name of the section --write-docs replaces")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    OUT = args.out
    variants = parse_variants(args.variants)
    seeds = [int(s) for s in args.seeds.split(",")]
    label_seeds = [int(s) for s in (args.label_seeds or args.seeds).split(",")]
    threads = [int(t) for t in args.speed_threads.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    per, runtime = {}, None
    for seed in sorted(set(seeds) | set(label_seeds)):
        for v in variants:
            q = run_bench("quality", v, seed, args.scale, args.reuse) if seed in seeds else _empty_quality()
            lab = run_bench("labels", v, seed, args.scale, args.reuse) if seed in label_seeds else _empty_labels()
            per.setdefault(name(v), {})[str(seed)] = figures(q, lab)
            runtime = runtime or (q["tools"]["vislint"].get("inference") or {}).get("runtime")
    # A scan that is not repeatable would make every difference below suspect: the first two
    # variants' first quality runs once more.
    rep = "; ".join(repeatability(v, seeds[0], args.scale, per) for v in variants[:2])
    sp = speed(variants, args.speed_n, threads, args.speed_repeat, args.reuse)
    result = {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": f"{os.cpu_count()} CPUs, {_cpu_model()}", "cpu_flags": cpu_flags(),
              "runtime": runtime or "?",
              "command": " ".join(["python bench/variants.py", *(argv if argv is not None else sys.argv[1:])]),
              "variants": variants, "seeds": seeds, "label_seeds": label_seeds, "speed_threads": threads,
              "figures": per, "speed": sp, "repeatability": rep, "seconds": time.perf_counter() - t0,
              "cli": str(Q.vislint_cli()), "model_cache": os.environ.get("VISLINT_CACHE", "~/.cache/vislint")}
    (OUT / "variants.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    section = docs_section(result)
    print(section)
    if args.write_docs:
        Q.write_docs(section, f"<!-- {args.section}:begin -->", f"<!-- {args.section}:end -->")
    return 0


def _empty_labels():
    return {"fashion": {"vislint": {"default": {}}}, "clipart": {"vislint": {"default": {}}}}


def _empty_quality():
    return {"tools": {"vislint": {"metrics": {"duplicates (any)": {"f1": None, "precision": None, "recall": None},
                                              "outlier": {"auroc": None, "precision@K": None, "K": None},
                                              "near_duplicate recall by transform": {}}}}}


def _cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def repeatability(v, seed, scale, per) -> str:
    """Runs a variant's quality bench once more (a fresh scan) and says whether its figures came
    out the same."""
    out = OUT / f"quality-{v[0]}-{v[1]}-seed{seed}{scale_tag(scale)}-again.json"
    cmd = [sys.executable, str(REPO / "bench" / "quality.py"), "--only", "vislint", "--precision", v[0],
           "--model-size", str(v[1]), "--seed", str(Q.DEFAULT_SEED + seed), "--scale", str(scale),
           "--json", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return f"repeat run failed: {p.stderr[-300:]}"
    again = figures(json.loads(out.read_text()), _empty_labels())
    first = per[name(v)][str(seed)]
    keys = ("dup_f1", "dup_p", "dup_r", "out_auroc", "out_pk", "transforms")
    same = all(again[k] == first[k] for k in keys)
    return (f"{name(v)} on the seed-{seed} quality corpus: "
            + ("identical duplicate and outlier figures" if same else
               "DIFFERENT: " + ", ".join(f"{k} {first[k]} vs {again[k]}" for k in keys if again[k] != first[k])))


if __name__ == "__main__":
    sys.exit(main())
