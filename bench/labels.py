#!/usr/bin/env python3
"""Labels benchmark: vislint's label issues and train/test leaks against planted ground truth,
with cleanlab side by side for label issues.

Part A, Fashion-MNIST (`vislint.testing.make_fashion_corpus`, `BENCH_SCALE` multiplies its size:
10000 train + 2000 test items, 10 % of them with a flipped label, 200 training items copied into
test/ with a transform (planted leaks) and 50 copied inside train/ (duplicates, not leaks)),
scanned with labels.csv by vislint with the default model and with `model="none"`:
- label issues: AUROC and precision@K (K = number of flips) of `label_issues(all=True)` scores,
  P/R/F1 of the flagged set and of `score >= t` for a few thresholds t (which one maximises F1).
  cleanlab (bench/peers/run_cleanlab.py: kNN and logistic regression on vislint's own
  embeddings, out-of-fold pred_probs) is scored the same way when its venv exists, and so is
  fastdup (bench/peers/run_fastdup_labels.py: its own embedding + neighbours, label disagreement
  from `fd.vis.similarity_gallery(slice="diff")`; images it gives no score count as 0).
- leaks: precision of the reported rows (a row is right when it is a planted pair, either
  order), recall of planted pairs (also per transform), unplanted rows (checked for being
  pixel-identical: Fashion-MNIST itself has duplicates across its train and test sets) and
  within-split copies wrongly reported as leaks.
Part B, clip art (the corpus of bench/quality.py, without its outliers folder) with a split CSV
outside the corpus: everything in "train" except, for half of the base images that have copies
(seeded), all their exact / pixel / near copies, which go to "test" (planted leaks); the other
half's copies stay in "train" (duplicates inside a split: not leaks). A leak row is right when
both paths belong to the same planted group (a base and its copies) and lie in different splits;
recall = test copies with at least one right row (also per transform).

    python bench/labels.py [--scale 1] [--write-docs]
    python bench/labels.py --only vislint --precision bf16 --model-size 224 [--seed 1] [--json OUT]

Writes build/bench/labels.json; with --write-docs replaces the section between
<!-- labels:begin --> and <!-- labels:end --> in docs/benchmarks.md (appended if absent).

Variants (as in bench/quality.py; bench/variants.py drives them): `--only` picks from vislint
(default model), vislint-none, cleanlab (needs the vislint run: it reads its embeddings) and
fastdup; `--precision`, `--model-size`, `--threads`, `--scan-option KEY=VALUE` go to the scans;
`--seed S` (default 0) draws another Fashion-MNIST corpus (build/bench/fashion-N-seedS) and
another clip-art split, on bench/quality.py's corpus of seed 7 + S.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True  # no bench/__pycache__ from importing quality.py
import quality as Q  # noqa: E402  (bench/quality.py: corpus builder and metric helpers)
from quality import BENCH, DOCS, REPO, auroc, rel  # noqa: E402

BEGIN, END = "<!-- labels:begin -->", "<!-- labels:end -->"


def prf(pred: set, true: set) -> dict:
    """Precision / recall / F1 of a flagged set of images against the planted set."""
    tp = len(pred & true)
    p = tp / len(pred) if pred else (1.0 if not true else 0.0)
    r = tp / len(true) if true else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "tp": tp, "fp": len(pred - true), "fn": len(true - pred)}

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
CLEANLAB_PY = REPO / "build" / "peers" / "cleanlab-venv" / "bin" / "python"
CLEANLAB_ADAPTER = REPO / "bench" / "peers" / "run_cleanlab.py"
FASTDUP_PY = REPO / "build" / "peers" / "fastdup-venv" / "bin" / "python"
FASTDUP_LABELS_ADAPTER = REPO / "bench" / "peers" / "run_fastdup_labels.py"
MODELS = ("default", "none")
TOOL_KEYS = ["vislint", "vislint-none", "cleanlab", "fastdup"]
DEFAULT_SEED = 0


# ---------------------------------------------------------------------------- helpers

def machine() -> str:
    model = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model or platform.machine()} ({platform.machine()})"


def run_scan(inputs, work: Path, labels, model: str, extra=None):
    """A fresh vislint scan (the work dir is removed first: timings must not be a resume)."""
    import vislint

    if work.exists():
        shutil.rmtree(work)
    work.parent.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    if model == "none":
        extra = Q.hash_only_options(extra)
    opts = {**({} if model == "default" else {"model": model}), **extra}
    t0 = time.perf_counter()
    try:
        scan = vislint.scan([str(p) for p in inputs], str(work), labels=str(labels), progress=False, **opts)
    except Exception as e:  # noqa: BLE001  (a crash is a result: report it, keep benchmarking)
        return None, {"error": f"{type(e).__name__}: {e}", "wall_seconds": round(time.perf_counter() - t0, 2)}
    wall = time.perf_counter() - t0
    run = scan.run
    info = {"wall_seconds": round(wall, 2),
            "scan_seconds": round(float(run.get("timings_seconds", {}).get("total", float("nan"))), 2),
            "timings_seconds": {k: round(v, 3) for k, v in run.get("timings_seconds", {}).items()},
            "summary": {t: int(c) for t, c in zip(scan.summary()["type"], scan.summary()["count"]) if c},
            "images": run.get("counts", {}).get("images"), "inference": run.get("inference"),
            "command": f"vislint.scan([{', '.join(os.path.relpath(p, REPO) for p in inputs)}], "
                       f"{os.path.relpath(work, REPO)}, labels={os.path.relpath(labels, REPO)}"
                       + "".join(f", {k}={v!r}" for k, v in opts.items()) + ")"}
    return scan, info


def label_metrics(scores: dict, flagged: set, flips: set, n_labelled: int, at_threshold=None):
    """AUROC / P@K of a score (higher = more likely mislabelled), P/R/F1 of the flagged set and
    of ``at_threshold(t)`` (the set a threshold t would flag) for t in THRESHOLDS, and the best F1
    over every cut of the score."""
    k = len(flips)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    top = {p for p, _ in ranked[:k]}
    out = {"labelled": n_labelled, "scored": len(scores), "flips": k,
           "flips_scored": len(flips & set(scores)),
           "auroc": auroc(scores, flips), "K": k,
           "precision@K": round(len(top & flips) / k, 4) if k else None,
           "flagged": {"n": len(flagged), **prf(flagged, flips)}}
    if at_threshold is not None:
        by_t = {}
        for t in THRESHOLDS:
            sel = at_threshold(t)
            by_t[str(t)] = {"n": len(sel), **prf(sel, flips)}
        out["by_threshold"] = by_t
        out["best_threshold_of_listed"] = float(max(by_t, key=lambda t: (by_t[t]["f1"], -float(t))))
    # The F1-optimal cut over every distinct score value (score only, no other condition).
    best, tp = (0.0, None, 0), 0
    for i, (p, s) in enumerate(ranked):
        tp += p in flips
        if i + 1 < len(ranked) and ranked[i + 1][1] == s:
            continue
        f1 = 2 * tp / (i + 1 + k) if k else 0.0
        if f1 > best[0]:
            best = (f1, round(s, 4), i + 1)
    out["best_f1_any_threshold"] = {"f1": round(best[0], 4), "threshold": best[1], "n": best[2]}
    return out


# ---------------------------------------------------------------------------- part A: fashion

def run_cleanlab(clf: str, work: Path, labels_csv: Path, out_json: Path, root: Path, flips: set, n_labelled):
    if not (CLEANLAB_PY.exists() and CLEANLAB_ADAPTER.exists()):
        return {"notes": ["not run: build/peers/cleanlab-venv or bench/peers/run_cleanlab.py missing"]}
    if out_json.exists():
        out_json.unlink()
    cmd = [str(CLEANLAB_PY), str(CLEANLAB_ADAPTER), "--features", str(work / "features.npy"),
           "--db", str(work / "vislint.db"), "--labels", str(labels_csv), "--out", str(out_json),
           "--classifier", clf, "--path-root", os.getcwd()]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = round(time.perf_counter() - t0, 2)
    if p.returncode != 0 or not out_json.exists():
        return {"error": (p.stderr or p.stdout)[-800:], "wall_seconds": wall}
    j = json.loads(out_json.read_text())
    c = j["classifier"][clf]
    real_root = os.path.realpath(root)
    scores = {os.path.relpath(k, real_root): float(v) for k, v in c["scores"].items()}
    flagged = {os.path.relpath(k, real_root) for k in c["flagged"]}
    return {"version": j.get("version"), "sklearn_version": j.get("sklearn_version"),
            "seconds": c["seconds"], "wall_seconds": wall, "alignment": j.get("alignment"),
            "oof_accuracy_vs_given": c.get("oof_accuracy_vs_given"),
            "metrics": label_metrics(scores, flagged, flips, n_labelled),
            "command": " ".join(cmd).replace(str(REPO) + "/", ""),
            "notes": j.get("notes", []) + c.get("notes", [])}


def run_fastdup_labels(root: Path, labels_csv: Path, out_json: Path, workdir: Path, flips: set, n_labelled):
    """fastdup's label disagreement (its own embedding and neighbours; see run_fastdup_labels.py).
    Labelled images fastdup gives no score get score 0 (counted in "unscored_set_to_0")."""
    if not (FASTDUP_PY.exists() and FASTDUP_LABELS_ADAPTER.exists()):
        return {"notes": ["not run: build/peers/fastdup-venv or bench/peers/run_fastdup_labels.py missing"]}
    if out_json.exists():
        out_json.unlink()
    if workdir.exists():
        shutil.rmtree(workdir)
    cmd = [str(FASTDUP_PY), str(FASTDUP_LABELS_ADAPTER), "--input", str(root), "--labels", str(labels_csv),
           "--out", str(out_json), "--workdir", str(workdir)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "SENTRY_OPT_OUT": "1"})
    wall = round(time.perf_counter() - t0, 2)
    if p.returncode != 0 or not out_json.exists():
        return {"error": (p.stderr or p.stdout)[-800:], "wall_seconds": wall}
    j = json.loads(out_json.read_text())
    out = {"version": j.get("version"), "seconds": j.get("seconds"), "seconds_run": j.get("seconds_run"),
           "seconds_label_score": j.get("seconds_label_score"), "wall_seconds": wall,
           "peak_rss_mb": j.get("peak_rss_mb"), "settings": j.get("settings"), "api": j.get("api"),
           "alignment": j.get("alignment"), "coverage": j.get("coverage"), "crosscheck": j.get("crosscheck"),
           "fastdup_score_counts": j.get("fastdup_score_counts"),
           "command": "SENTRY_OPT_OUT=1 " + " ".join(cmd).replace(str(REPO) + "/", ""),
           "notes": j.get("notes", [])}
    if j.get("error") or not j.get("supported", {}).get("label_issue"):
        out["not_supported"] = j.get("error") or "; ".join(j.get("notes", []))
        return out
    real_root = os.path.realpath(root)
    scores = {os.path.relpath(k, real_root): float(v) for k, v in j["scores"].items()}
    flagged = {os.path.relpath(k, real_root) for k in j["flagged"]}
    base = os.path.dirname(os.path.abspath(labels_csv))
    with open(labels_csv, newline="", encoding="utf-8") as fh:
        labelled = [os.path.relpath(os.path.realpath(os.path.join(base, r["path"])), real_root)
                    for r in csv.DictReader(fh) if r["label"]]
    out["fastdup_scored"] = sum(q in scores for q in set(labelled))
    out["unscored_set_to_0"] = sum(q not in scores for q in set(labelled))
    out["unscored_flips"] = sum(q not in scores for q in flips)
    for q in labelled:
        scores.setdefault(q, 0.0)
    out["metrics"] = label_metrics(scores, flagged, flips, n_labelled)
    return out


def pixels(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.int16)


def fashion_leak_metrics(leaks, dups, truth: dict, root: Path):
    planted = {frozenset(r[:2]): r[2] for r in truth["leaks"]}
    within = {frozenset(r[:2]) for r in truth["within_split"]}
    within_files = {r[0] for r in truth["within_split"]}
    rows = [(rel(p, root), rel(o, root), float(s)) for p, o, s in zip(leaks["path"], leaks["other_path"],
                                                                        leaks["score"])]
    # How each pair was matched (the leak row only says exact / near): from the duplicate rows.
    how = {}
    for a, b, d in zip(dups["path_a"], dups["path_b"], dups["detail"]):
        how[frozenset((rel(a, root), rel(b, root)))] = (
            "hash" if str(d).startswith("pHash") else "cosine" if str(d).startswith("cosine") else "exact")
    pairs = [frozenset(r[:2]) for r in rows]
    right = [p in planted for p in pairs]
    found = {p for p in pairs if p in planted}
    per_t = {}
    for pair, tr in planted.items():
        per_t.setdefault(tr, [0, 0])
        per_t[tr][0] += pair in found
        per_t[tr][1] += 1
    unplanted = [r for r, ok in zip(rows, right) if not ok]
    leak_files = {r[0] for r in truth["leaks"]}
    with_row = {a for a, _, _ in rows} | {b for _, b, _ in rows}
    kinds = {"pixel_identical_originals": 0, "other_originals": 0, "planted_copy_wrong_partner": 0,
             "original_with_train_copy": 0}
    examples, mads = [], []
    for a, b, s in unplanted:
        kind = None
        if a in leak_files or b in leak_files:
            kind = "planted_copy_wrong_partner"
        elif a in within_files or b in within_files:
            kind = "original_with_train_copy"  # a train-side copy_NNNN is a look-alike of the test item
        pa, pb = pixels(root / a), pixels(root / b)
        mad = float(np.abs(pa - pb).mean()) if pa.shape == pb.shape else None
        if kind is None:
            kind = "pixel_identical_originals" if mad == 0 else "other_originals"
        kinds[kind] += 1
        if mad is not None:
            mads.append(mad)
        if len(examples) < 8:
            examples.append({"path": a, "other_path": b, "score": round(s, 4), "kind": kind,
                             "matched_by": how.get(frozenset((a, b)), "?"),
                             "mean_abs_pixel_diff": None if mad is None else round(mad, 1)})
    n = len(rows)
    return {"rows": n, "precision": round(sum(right) / n, 4) if n else None,
            "not_planted_by_match": {m: sum(how.get(frozenset(r[:2]), "?") == m for r in unplanted)
                                     for m in ("exact", "hash", "cosine", "?")},
            "recall": round(len(found) / len(planted), 4) if planted else None,
            "found": len(found), "planted": len(planted),
            "planted_copies_with_any_row": len(leak_files & with_row),
            "recall_by_transform": {t: f"{a}/{b}" for t, (a, b) in sorted(per_t.items())},
            "not_planted": len(unplanted), "not_planted_kinds": kinds, "not_planted_examples": examples,
            "not_planted_median_abs_pixel_diff": round(float(np.median(mads)), 1) if mads else None,
            "within_split_pairs_reported": sum(p in within for p in pairs),
            "rows_touching_within_split_copies": sum(a in within_files or b in within_files for a, b, _ in rows)}


def seed_suffix(seed: int) -> str:
    return "" if seed == DEFAULT_SEED else f"-seed{seed}"


def part_fashion(scale: float, only=TOOL_KEYS, opts=None, seed: int = DEFAULT_SEED):
    import vislint.testing as t

    n_train = int(10000 * scale)
    root = BENCH / f"fashion-{n_train}{seed_suffix(seed)}"
    truth = t.make_fashion_corpus(root, n_train=n_train, n_test=int(2000 * scale), n_leaks=int(200 * scale),
                                  n_within=int(50 * scale), seed=seed)
    labels_csv = root / truth["labels_csv"]
    out_dir = BENCH / f"labels-fashion-{n_train}{seed_suffix(seed)}"
    tag = Q.options_tag(opts or {})
    flips = set(truth["flips"])
    with open(labels_csv, newline="", encoding="utf-8") as fh:
        n_labelled = sum(1 for r in csv.DictReader(fh) if r["label"])
    res = {"corpus": {"path": os.path.relpath(root, REPO), "items": truth["n_items"], "n_train": n_train,
                      "flips": len(flips), "leaks": len(truth["leaks"]),
                      "within_split": len(truth["within_split"]), "labelled": n_labelled,
                      "truth": os.path.relpath(str(root) + ".truth.json", REPO)},
           "vislint": {}, "cleanlab": {}, "fastdup": {}}
    for model in models_of(only):
        work = out_dir / f"vislint-{model}{tag}"
        scan, info = run_scan([root], work, labels_csv, model, opts)
        print(f"fashion vislint {model}: {info.get('scan_seconds', info.get('error'))} s", flush=True)
        if scan is not None:
            info["leaks"] = fashion_leak_metrics(scan.leaks(), scan.duplicates(), truth, root)
            li = scan.label_issues(all=True)
            scores = {rel(p, root): float(s) for p, s in zip(li["path"], li["score"])}
            changed = {rel(p, root) for p, g, s in zip(li["path"], li["given"], li["suggested"]) if g != s}
            flagged = {rel(p, root) for p in scan.label_issues()["path"]}

            def at_threshold(t):  # vislint flags score >= threshold with a different suggestion
                return {p for p, s in scores.items() if s >= t and p in changed}

            info["label_issue"] = (label_metrics(scores, flagged, flips, n_labelled, at_threshold)
                                   if scores or flagged else "not supported (no embeddings)")
            if scores:
                # The sweep's rule must reproduce the flagged set at the scan's own threshold.
                thr = float(scan.run["options"]["thresholds"].get("label_issue", 0.5))
                info["label_issue"]["default_threshold"] = thr
                info["label_issue"]["flagged_vs_rule"] = {
                    "flagged_not_by_rule": len(flagged - at_threshold(thr)),
                    "by_rule_not_flagged": len(at_threshold(thr) - flagged)}
        res["vislint"][model] = info
    default_work = out_dir / f"vislint-default{tag}"
    for clf in ("knn", "logreg") if "cleanlab" in only else ():
        if "error" in res["vislint"].get("default", {"error": "not run"}):
            res["cleanlab"][clf] = {"notes": ["not run: the default-model scan failed"]}
            continue
        r = run_cleanlab(clf, default_work, labels_csv, out_dir / f"cleanlab_{clf}.json", root, flips, n_labelled)
        res["cleanlab"][clf] = r
        print(f"fashion cleanlab {clf}: {r.get('seconds', r.get('error', r.get('notes')))} s", flush=True)
    if "fastdup" in only:
        r = run_fastdup_labels(root, labels_csv, out_dir / "fastdup_labels.json", out_dir / "fastdup-work", flips,
                               n_labelled)
        res["fastdup"] = r
        print(f"fashion fastdup labels: {r.get('seconds', r.get('error', r.get('notes')))} s", flush=True)
    return res


def models_of(only):
    return [m for m, key in zip(MODELS, ("vislint", "vislint-none")) if key in only]


# ---------------------------------------------------------------------------- part B: clip art

def clipart_splits(truth: dict, seed: int = 0):
    """(split of every file, group of every base/copy, transform of every copy, test bases)."""
    copies = ([(b, c, "exact") for b, c in truth["exact_duplicates"]]
              + [(b, c, "pixel") for b, c in truth["pixel_duplicates"]]
              + [(b, c, tr) for b, c, tr in truth["near_duplicates"]])
    group = {b: b for b in truth["base"]}
    transform = {}
    for b, c, tr in copies:
        group[c] = b
        transform[c] = tr
    bases = sorted({b for b, _, _ in copies})
    test_bases = set(random.Random(seed).sample(bases, len(bases) // 2))
    skipped = set(truth.get("skipped", []))
    split = {f: "train" for f in truth["files"] if f not in skipped}
    for b, c, _ in copies:
        if b in test_bases:
            split[c] = "test"
    return split, group, transform, test_bases


def clipart_leak_metrics(leaks, truth, root: Path, split, group, transform):
    derived = {**{b: b for b in truth["base"]}, **truth.get("derived_from", {})}
    test_copies = {c for c, s in split.items() if s == "test"}
    within_copies = {c for c in transform if split.get(c) == "train"}
    rows = []
    for p, sp, o, so, s in zip(leaks["path"], leaks["split"], leaks["other_path"], leaks["other_split"],
                               leaks["score"]):
        a, b = rel(p, root), rel(o, root)
        same_group = a in group and group.get(a) == group.get(b)
        different = split.get(a) != split.get(b)
        if same_group and different:
            kind = "planted"
        elif not different:
            kind = "same_split"
        elif a in derived and derived.get(a) == derived.get(b):
            kind = "related (variant of the same base outside the copy group)"
        else:
            kind = "not planted"
        rows.append({"path": a, "split": sp, "other_path": b, "other_split": so, "score": round(float(s), 4),
                     "kind": kind, "split_ok": (sp, so) == (split.get(a), split.get(b))})
    hit = {r["path"] for r in rows if r["kind"] == "planted"} | {r["other_path"] for r in rows
                                                               if r["kind"] == "planted"}
    per_t = {}
    for c in sorted(test_copies):
        per_t.setdefault(transform[c], [0, 0])
        per_t[transform[c]][0] += c in hit
        per_t[transform[c]][1] += 1
    n = len(rows)
    right = sum(r["kind"] == "planted" for r in rows)
    kinds = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    return {"rows": n, "precision": round(right / n, 4) if n else None,
            "recall": round(len(hit & test_copies) / len(test_copies), 4) if test_copies else None,
            "found": len(hit & test_copies), "test_copies": len(test_copies),
            "recall_by_transform": {t: f"{a}/{b}" for t, (a, b) in sorted(per_t.items())},
            "kinds": kinds, "not_planted": n - right,
            "within_split_false_leaks": sum(r["path"] in within_copies or r["other_path"] in within_copies
                                            for r in rows),
            "same_split_rows": kinds.get("same_split", 0),
            "split_column_mismatches": sum(not r["split_ok"] for r in rows),
            "not_planted_rows": [r for r in rows if r["kind"] != "planted"][:20]}


def part_clipart(scale: float, only=TOOL_KEYS, opts=None, seed: int = DEFAULT_SEED):
    root, _outliers, truth = Q.build_corpus(scale, Q.DEFAULT_SEED + seed)
    n_base = truth["params"]["n_base"]
    out_dir = BENCH / f"labels-clipart-{n_base}{seed_suffix(seed)}"
    out_dir.mkdir(parents=True, exist_ok=True)
    split, group, transform, test_bases = clipart_splits(truth, seed=seed)
    csv_path = out_dir / "splits.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        for f in sorted(split):
            w.writerow([os.path.relpath(root / f, out_dir).replace(os.sep, "/"), "", split[f]])
    n_test = sum(s == "test" for s in split.values())
    res = {"corpus": {"path": os.path.relpath(root, REPO), "files": len(split), "n_base": n_base,
                      "bases_with_copies": len({group[c] for c in transform}), "test_bases": len(test_bases),
                      "test_copies": n_test, "within_split_copies": len(transform) - n_test,
                      "splits_csv": os.path.relpath(csv_path, REPO)},
           "vislint": {}}
    for model in models_of(only):
        scan, info = run_scan([root], out_dir / f"vislint-{model}{Q.options_tag(opts or {})}", csv_path, model,
                              opts)
        print(f"clipart vislint {model}: {info.get('scan_seconds', info.get('error'))} s", flush=True)
        if scan is not None:
            info["leaks"] = clipart_leak_metrics(scan.leaks(), truth, root, split, group, transform)
        res["vislint"][model] = info
    return res


# ---------------------------------------------------------------------------- report

def li_cell(m, key):
    if not isinstance(m, dict) or "metrics" not in m:
        return "—"
    v = m["metrics"]
    if key == "auroc":
        return str(v["auroc"])
    if key == "p@k":
        return str(v["precision@K"])
    if key == "flagged":
        f = v["flagged"]
        return f"{f['n']} flagged: P {f['precision']:.3f} R {f['recall']:.3f} F1 {f['f1']:.3f}"
    if key == "best":
        b = v["best_f1_any_threshold"]
        return f"F1 {b['f1']:.3f} at score ≥ {b['threshold']:.3f} ({b['n']} items)"
    if key == "seconds":
        return str(m.get("seconds"))
    return "—"


def leak_cell(info, key):
    if "error" in info:
        return "failed"
    lk = info.get("leaks") or {}
    if key == "rows":
        return str(lk["rows"])
    if key == "precision":
        return f"{lk['precision']}"
    if key == "recall":
        f = lk.get("found")
        tot = lk.get("planted", lk.get("test_copies"))
        return f"{lk['recall']} ({f}/{tot})"
    if key == "not_planted":
        return str(lk["not_planted"])
    if key == "any_row":
        if "planted_copies_with_any_row" in lk:
            return f"{lk['planted_copies_with_any_row']}/{lk['planted']}"
        return f"{lk['found']}/{lk['test_copies']}"  # clip art: recall already counts copies
    if key == "within":
        return str(lk.get("within_split_pairs_reported", lk.get("within_split_false_leaks")))
    if key == "seconds":
        return str(info.get("scan_seconds"))
    return "—"


def docs_section(r, command):
    fa, cl = r["fashion"], r["clipart"]
    vd = fa["vislint"].get("default", {})
    li_tools = {"vislint": {"metrics": vd.get("label_issue") if isinstance(vd.get("label_issue"), dict) else None,
                            "seconds": vd.get("scan_seconds")} if "error" not in vd else {},
                "cleanlab knn": fa["cleanlab"].get("knn", {}),
                "cleanlab logreg": fa["cleanlab"].get("logreg", {}),
                "fastdup": fa.get("fastdup", {})}
    fc = fa["corpus"]
    lines = ["## Label issues and leaks (`python bench/labels.py`)", "",
             f"- Date: {r['date']}; machine: {r['machine']}; total run {r['seconds']} s",
             f"- Command: `{command}`",
             f"- Fashion-MNIST corpus `{fc['path']}`: {fc['items']} items ({fc['n_train']} train originals, "
             f"{fc['items'] - fc['n_train'] - fc['leaks'] - fc['within_split']} test originals), "
             f"{fc['flips']} flipped labels, {fc['leaks']} planted train→test leaks, "
             f"{fc['within_split']} copies inside train; ground truth `{fc['truth']}`.",
             f"- Clip-art corpus `{cl['corpus']['path']}` (bench/quality.py's, outliers folder not scanned) "
             f"with `{cl['corpus']['splits_csv']}`: {cl['corpus']['files']} files, all in train except the "
             f"{cl['corpus']['test_copies']} copies of {cl['corpus']['test_bases']} of the "
             f"{cl['corpus']['bases_with_copies']} bases with copies (test); the other "
             f"{cl['corpus']['within_split_copies']} copies stay in train.",
             "", "### Label issues (Fashion-MNIST, vislint default model)", "",
             "Score = confidence the given label is wrong; K = number of flips. cleanlab runs on "
             "vislint's own embeddings (5-fold out-of-fold pred_probs), so it compares the label step "
             "only; its seconds exclude the embedding, vislint's are the whole scan. fastdup embeds the "
             "images itself (bundled model), so its seconds include its embedding; see the fastdup "
             "paragraph below for how its score is made.", "",
             "| metric | " + " | ".join(li_tools) + " |", "|---|" + "---|" * len(li_tools)]
    for label, key in (("AUROC", "auroc"), (f"precision@K (K = {fc['flips']})", "p@k"),
                       ("flagged set", "flagged"), ("best F1 over all score cuts", "best"),
                       ("seconds", "seconds")):
        cells = []
        for m in li_tools.values():
            if "error" in m:
                cells.append("failed to run")
            elif m.get("not_supported"):
                cells.append("not supported")
            elif not m.get("metrics"):
                cells.append("not run")
            else:
                cells.append(li_cell(m, key))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    fdl = fa.get("fastdup", {})
    if fdl.get("metrics"):
        st, cov, fm = fdl.get("settings") or {}, fdl.get("coverage") or {}, fdl["metrics"]
        k = st.get("nearest_neighbors_k")
        cnt = fdl.get("fastdup_score_counts") or {}
        top = cnt.get("0", 0)
        lines += ["", f"fastdup {fdl.get('version')} (`bench/peers/run_fastdup_labels.py`): `fd.run(annotations=df)` "
                      f"with the noisy labels (filename, label, split) at its defaults, then its own label-disagreement "
                      f"report `fd.vis.similarity_gallery(slice='diff')`: for each image with at least 2 rows in "
                      f"fastdup's similarity file (its nearest neighbours, at most nearest_neighbors_k = {k}, with "
                      f"cosine similarity ≥ {st.get('threshold')}), fastdup's score = 100 × share of those neighbours "
                      f"with the same label; the ranking score here is 1 − score/100 and the flagged set is fastdup "
                      f"score < 51 (the cut of fastdup's documented wrong-label example). With k = {k} the score has "
                      f"only {k + 1 if isinstance(k, int) else '?'} values (fastdup scores "
                      + " / ".join(f"{float(v):g}" for v in cnt) + " for " + " / ".join(str(n) for n in cnt.values())
                      + f" images), so precision@K is decided inside the tie of the {top} images whose neighbours "
                      f"all carry another label (ties broken by path). {fdl.get('unscored_set_to_0')} of "
                      f"{fm['labelled']} labelled images got no fastdup score ({cov.get('not_scored_no_similarity_row')} "
                      f"with no neighbour ≥ {st.get('threshold')}, {cov.get('not_scored_one_similarity_row')} with one; "
                      f"{fdl.get('unscored_flips')} of them flips) and count as score 0. Seconds = `fd.run` "
                      f"({fdl.get('seconds_run')} s: decoding, embedding, neighbours, stats, components) + the report "
                      f"({fdl.get('seconds_label_score')} s); peak RSS {fdl.get('peak_rss_mb')} MB. fastdup's neighbour index "
                      f"is approximate ({st.get('nnf_mode')}), so these counts move by a few images between runs."]
    lim = vd.get("label_issue")
    if isinstance(lim, dict) and "by_threshold" in lim:
        lines += ["", f"vislint at other thresholds t (flagged = score ≥ t and a suggestion other than the "
                      f"given label, as the scan does at its threshold {lim.get('default_threshold')}; F1 is "
                      f"best at t = {lim['best_threshold_of_listed']} of those listed):", "",
                  "| t | items | precision | recall | F1 |", "|---|---|---|---|---|"]
        for t, v in lim["by_threshold"].items():
            lines.append(f"| {t} | {v['n']} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} |")
    runs = {f"{part} {model}": res["vislint"][model] for part, res in (("fashion", fa), ("clipart", cl))
            for model in MODELS if model in res["vislint"]}
    lines += ["", "### Leaks", "",
              "Precision = reported rows that are a planted pair (Fashion-MNIST) / join two members of "
              "one planted group across splits (clip art); recall = planted pairs found (Fashion-MNIST) "
              "/ test copies with a right row (clip art). vislint reports one row per (image, earlier "
              "split): the best partner.", "",
              "| metric | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for label, key in (("leak rows", "rows"), ("precision", "precision"), ("recall", "recall"),
                       ("planted copies with a leak row (any partner)", "any_row"),
                       ("rows not planted", "not_planted"), ("within-split copies reported", "within"),
                       ("scan seconds", "seconds")):
        lines.append(f"| {label} | " + " | ".join(leak_cell(v, key) for v in runs.values()) + " |")
    transforms = []
    for v in runs.values():
        for t in (v.get("leaks") or {}).get("recall_by_transform", {}):
            if t not in transforms:
                transforms.append(t)
    lines += ["", "Leak recall by transform:", "", "| transform | " + " | ".join(runs) + " |",
              "|---|" + "---|" * len(runs)]
    for t in transforms:
        lines.append(f"| {t} | " + " | ".join((v.get("leaks") or {}).get("recall_by_transform", {}).get(t, "—")
                                              for v in runs.values()) + " |")
    notes = []
    for name, v in runs.items():
        lk = v.get("leaks") or {}
        if "error" in v:
            notes.append(f"- {name}: scan failed: {v['error'][:300]}")
        if lk.get("not_planted_kinds") and lk["not_planted"]:
            k = lk["not_planted_kinds"]
            bm = lk["not_planted_by_match"]
            notes.append(f"- {name}: of {lk['not_planted']} unplanted rows, {k['pixel_identical_originals']} "
                         f"join pixel-identical Fashion-MNIST originals (real duplicates across its own "
                         f"train/test sets), {k['other_originals']} join two different originals, "
                         f"{k['original_with_train_copy']} a test original and a planted copy inside train "
                         f"(a look-alike), {k['planted_copy_wrong_partner']} a planted leak and a train "
                         f"image other than its source (median mean-absolute pixel difference of the "
                         f"unplanted pairs {lk['not_planted_median_abs_pixel_diff']} of 255). Matched by: "
                         f"hashes {bm['hash']}, embeddings {bm['cosine']}, exact {bm['exact']}"
                         + (f", unknown {bm['?']}" if bm["?"] else "") + ".")
        if lk.get("kinds") and lk["not_planted"]:
            notes.append(f"- {name}: unplanted rows by kind: " + ", ".join(
                f"{k} {n}" for k, n in lk["kinds"].items() if k != "planted") + ": " + "; ".join(
                f"`{x['path']}` ({x['split']}) ↔ `{x['other_path']}` ({x['other_split']}, {x['score']}, "
                f"{x['kind']})" for x in lk["not_planted_rows"][:10]) + ".")
    for name in ("knn", "logreg"):
        m = fa["cleanlab"].get(name, {})
        if "error" in m:
            notes.append(f"- cleanlab {name}: failed: {m['error'][:300]}")
        elif "metrics" not in m:
            notes += [f"- cleanlab {name}: {n}" for n in m.get("notes", [])]
    fdl = fa.get("fastdup", {})
    if "error" in fdl:
        notes.append(f"- fastdup labels: failed: {fdl['error'][:300]}")
    elif fdl.get("not_supported"):
        notes.append(f"- fastdup labels: not supported: {str(fdl['not_supported'])[:300]}")
    elif "metrics" not in fdl:
        notes += [f"- fastdup labels: {n}" for n in fdl.get("notes", [])]
    if notes:
        lines += ["", "Notes:", ""] + notes
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1")))
    ap.add_argument("--write-docs", action="store_true")
    Q.add_variant_arguments(ap, TOOL_KEYS, DEFAULT_SEED)
    args = ap.parse_args(argv)
    only, opts = Q.parse_variant_arguments(ap, args, TOOL_KEYS, DEFAULT_SEED)
    if "cleanlab" in only and "vislint" not in only:
        ap.error("--only cleanlab needs vislint too: cleanlab reads the default-model scan's embeddings")
    t0 = time.perf_counter()
    command = "python bench/labels.py" + (f" --scale {args.scale:g}" if args.scale != 1 else "") + \
        (" --write-docs" if args.write_docs else "")
    if not args.write_docs:  # a variant: its command is every argument given
        command = " ".join(["python bench/labels.py", *(argv if argv is not None else sys.argv[1:])])
    result = {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": machine(), "command": command, "scale": args.scale, "seed": args.seed,
              "only": only, "scan_options": opts}
    result["fashion"] = part_fashion(args.scale, only, opts, args.seed)
    result["clipart"] = part_clipart(args.scale, only, opts, args.seed)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    out_json = args.json or BENCH / "labels.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    section = docs_section(result, command)
    print(section)
    if args.write_docs:
        Q.write_docs(section, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
