#!/usr/bin/env python3
"""Quality benchmark: vislint (default model and --model none) and its peers on the same real
images with planted ground truth, scored side by side.

Corpus (deterministic, `BENCH_SCALE` multiplies its size): `vislint.testing.make_dataset` over
Debian's openclipart-png (exact copies, pixel-identical re-encodes, eight kinds of transformed
copies, broken files, dark / bright / blurry / grayscale / odd-shaped / low-information variants,
wrong extensions) plus planted outliers from another domain (Fashion-MNIST items from Debian's
dataset-fashion-mnist, upscaled to 112 px).

Metrics:
Every figure comes from `vislint eval`'s scorer (vislint._core.score_findings), for vislint and
for its peers alike:
- duplicates: precision / recall / F1 on pairs. Ground-truth groups (an original with all its
  copies) and predicted pairs are both closed transitively and expanded to pairs. Files under
  quality/ and broken/ are left out of duplicate scoring (a darkened copy is neither required nor
  forbidden to be a duplicate). Also recall per transform.
- per-image types: precision / recall / F1 on images. Ground truth lists only what was planted;
  a naturally dark clip-art image counts as a false positive, so precision is a lower bound.
- outliers: AUROC and precision@K (K = number planted) of the tool's outlier score, plus P/R/F1 of
  what it flags.

    python bench/quality.py [--scale 1] [--write-docs]
    python bench/quality.py --only vislint --precision bf16 --model-size 224 [--seed 8] [--json OUT]

Peers run only when their venv and adapter exist (bench/peers/setup_peers.sh); otherwise they are
listed as "not run". A peer that lacks a feature is "not supported", never zero.

Variants (bench/variants.py drives these): `--only` picks the tools to run (comma list of
vislint, vislint-none, fastdup, cleanvision, imagededup); `--precision`, `--model-size`,
`--threads` and `--scan-option KEY=VALUE` (repeatable; KEY is the Python option name, passed
as `--KEY-with-dashes VALUE`) go to the default-model scan; `--seed` (default 7) draws another
corpus (build/bench/quality-N-seedS). `--write-docs` needs the plain run: it replaces the
side-by-side section, which a variant must not overwrite.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import gzip
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

BENCH = REPO / "build" / "bench"
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"
PER_IMAGE = ["broken", "wrong_extension", "dark", "bright", "blurry", "low_information",
             "grayscale", "odd_aspect_ratio", "odd_size"]
# (column name, venv / adapter name, extra adapter arguments)
PEERS = [("fastdup", "fastdup", []), ("cleanvision", "cleanvision", [])] + [
    (f"imagededup {m}", "imagededup", ["--method", m]) for m in ("phash", "dhash", "ahash", "whash")]
# (--only key, column name, --model value)
VISLINT_RUNS = [("vislint", "vislint", "default"), ("vislint-none", "vislint --model none", "none")]
TOOL_KEYS = [k for k, _, _ in VISLINT_RUNS] + list(dict.fromkeys(v for _, v, _ in PEERS))
DEFAULT_SEED = 7


# ---------------------------------------------------------------------------- corpus

def fashion_items(n, seed):
    with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") as f:
        data = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    from PIL import Image

    idx = np.random.default_rng(seed).choice(len(data), n, replace=False)
    return [Image.fromarray(data[i]).resize((112, 112), Image.BILINEAR).convert("RGB") for i in idx]


def build_corpus(scale: float, seed: int = DEFAULT_SEED):
    """The corpus for ``seed`` (the default seed keeps the historical path build/bench/quality-N)."""
    import vislint.testing as t

    n_base = max(40, int(400 * scale))
    n_out = max(4, int(12 * scale))
    name = f"quality-{n_base}" + ("" if seed == DEFAULT_SEED else f"-seed{seed}")
    root = BENCH / name / "data"
    truth = t.make_dataset(root, n_base=n_base, seed=seed)
    out_dir = root.parent / "outliers"  # a second input folder: make_dataset's tree stays sealed
    if not out_dir.exists():
        tmp = root.parent / "outliers.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(fashion_items(n_out, seed=seed)):
            im.save(tmp / f"fashion_{i:03d}.png")
        tmp.rename(out_dir)
    truth = dict(truth)
    truth["outlier"] = sorted(f"../outliers/{p.name}" for p in out_dir.iterdir())
    return root, out_dir, truth


# ---------------------------------------------------------------------------- metrics

def score(predicted: list, truth: list) -> dict:
    """`vislint eval`'s scorer (the core's graph::score_findings, so every tool is scored by the
    rules users get) on (type, name, other_name) rows: per type precision, recall, f1 and the
    predicted / true / matched counts (pairs of images sharing a group for duplicates)."""
    from vislint import _core

    out = {}
    for t, (p, r, f, n_pred, n_true, matched) in _core.score_findings(predicted, truth).items():
        out[t] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
                  "predicted": n_pred, "true": n_true, "matched": matched}
    return out


def auroc(scores: dict, positives: set):
    pos = [s for k, s in scores.items() if k in positives]
    neg = [s for k, s in scores.items() if k not in positives]
    if not pos or not neg:
        return None
    allv = sorted(scores.values())
    # Mann-Whitney U with average ranks for ties.
    from bisect import bisect_left, bisect_right

    def avg_rank(v):
        return (bisect_left(allv, v) + bisect_right(allv, v) + 1) / 2

    u = sum(avg_rank(s) for s in pos) - len(pos) * (len(pos) + 1) / 2
    return round(u / (len(pos) * len(neg)), 4)


def score_tool(findings: dict, supported: dict, truth: dict, files: set):
    dup_universe = {f for f in files if not f.startswith(("quality/", "broken/"))}

    def pairs(kind, rows):
        return [(kind, a, b) for a, b, *_ in rows if a in dup_universe and b in dup_universe]

    true_exact = pairs("exact_duplicate", truth["exact_duplicates"] + truth["pixel_duplicates"])
    true_near = pairs("near_duplicate", truth["near_duplicates"])
    pred_exact = pairs("exact_duplicate", findings.get("exact_duplicate", []))
    pred_near = pairs("near_duplicate", findings.get("near_duplicate", []))
    out = {}
    if supported.get("exact_duplicate"):
        out["exact_duplicate"] = score(pred_exact, true_exact).get("exact_duplicate", "none")
    else:
        out["exact_duplicate"] = "not supported"
    if supported.get("near_duplicate") or supported.get("exact_duplicate"):
        out["duplicates (any)"] = score(pred_exact + pred_near, true_exact + true_near)["duplicate"]
        per_t = {}
        for a, b, tr in truth["near_duplicates"]:
            per_t.setdefault(tr, []).append(("near_duplicate", a, b))
        # A transform's recall: its planted pairs found in the predicted groups.
        out["near_duplicate recall by transform"] = {
            k: f"{score(pred_exact + pred_near, v)['duplicate']['matched']}/{len(v)}" for k, v in sorted(per_t.items())}
    else:
        out["duplicates (any)"] = "not supported"
    # The planted outliers (upscaled grey 28 px items) are ground truth only for `outlier`.
    scored = {f for f in files if f not in set(truth["outlier"])}
    for t in PER_IMAGE:
        if not supported.get(t):
            out[t] = "not supported"
            continue
        true = sorted(truth["broken"]) if t == "broken" else truth.get(t, [])
        s = score([(t, p, "") for p in findings.get(t, []) if p in scored], [(t, p, "") for p in true])
        out[t] = s.get(t, "none")
    if supported.get("outlier"):
        scores = {p: s for p, s in findings.get("outlier_scores", {}).items() if p in files}
        pos = set(truth["outlier"])
        k = len(pos)
        top = [p for p, _ in sorted(scores.items(), key=lambda kv: -kv[1])[:k]]
        flagged = score([("outlier", p, "") for p in findings.get("outlier", []) if p in files],
                        [("outlier", p, "") for p in sorted(pos)])
        out["outlier"] = {"auroc": auroc(scores, pos),
                          "precision@K": round(len(set(top) & pos) / k, 4) if k else None,
                          "K": k, "flagged": flagged["outlier"]}
    else:
        out["outlier"] = "not supported"
    return out


# ---------------------------------------------------------------------------- tools

def rel(path: str, root: Path) -> str:
    return os.path.relpath(os.path.abspath(path), root)


def scan_options(args) -> dict:
    """The scan options given on the command line, as Python option names -> values (ints and
    floats parsed; everything else a string)."""
    opts = {}
    if args.precision:
        opts["precision"] = args.precision
    if args.model_size:
        opts["model_size"] = args.model_size
    if args.threads:
        opts["threads"] = args.threads
    for kv in args.scan_option:
        key, sep, value = kv.partition("=")
        if not sep or not key or not key.replace("_", "").isalnum():
            raise ValueError(f"--scan-option must be KEY=VALUE with a Python option name as KEY (got {kv!r})")
        for conv in (int, float):
            try:
                value = conv(value)
                break
            except ValueError:
                pass
        opts[key] = value
    return opts


MODEL_OPTIONS = {"precision", "model_size", "model_mean", "model_std", "model_output", "batch_size"}


def hash_only_options(opts: dict) -> dict:
    """opts without the inference options: a --model none run has no model to apply them to."""
    return {k: v for k, v in opts.items() if k not in MODEL_OPTIONS}


def cli_args(opts: dict) -> list:
    return [a for k, v in opts.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def options_tag(opts: dict) -> str:
    """A file-name-safe tag of the options ("" without any), for work dirs of variants."""
    return "".join(f"-{k}_{v}" for k, v in opts.items()).replace("/", "_")


def vislint_cli() -> Path:
    """The CLI of the environment running this bench (so another build's venv benchmarks its own
    CLI and package alike), else this tree's .venv."""
    beside = Path(sys.executable).parent / "vislint"
    return beside if beside.exists() else REPO / ".venv" / "bin" / "vislint"


def run_vislint(root: Path, extra_inputs, model: str, work: Path, extra_args=()):
    exe = vislint_cli()
    cmd = [str(exe), "scan", str(root), *map(str, extra_inputs), "-o", str(work), "--quiet",
           "--model", model, *extra_args]
    if work.exists():
        shutil.rmtree(work)  # a fresh scan: the timing must not be a resume
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    rows = list(csv.DictReader(io.StringIO(subprocess.run(
        [str(exe), "issues", str(work), "--format", "csv"], check=True, capture_output=True,
        text=True).stdout)))
    f = {"exact_duplicate": [], "near_duplicate": [], "outlier": [], "outlier_scores": {}}
    for r in rows:
        p = rel(r["path"], root)
        if r["type"] in ("exact_duplicate", "near_duplicate"):
            f[r["type"]].append((p, rel(r["other_path"], root)))
        else:
            f.setdefault(r["type"], []).append(p)
    supported = {t: True for t in PER_IMAGE + ["exact_duplicate", "near_duplicate"]}
    if model != "none":
        import vislint

        ranking = vislint.load(work).outliers(all=True)
        f["outlier_scores"] = {rel(p, root): float(s) for p, s in zip(ranking["path"], ranking["score"])}
        supported["outlier"] = True
    run = json.loads((work / "run.json").read_text())
    return {"findings": f, "supported": supported, "seconds": round(seconds, 2),
            "command": " ".join(cmd[1:]).replace(str(REPO) + "/", ""),
            "images": run.get("counts", {}).get("images"), "inference": run.get("inference")}


def run_peer(peer: str, root: Path, all_inputs_dir: Path, out: Path, extra=()):
    py = REPO / "build" / "peers" / f"{peer}-venv" / "bin" / "python"
    adapter = REPO / "bench" / "peers" / f"run_{peer}.py"
    if not (py.exists() and adapter.exists()):
        return None
    t0 = time.perf_counter()
    if out.exists():
        out.unlink()
    p = subprocess.run([str(py), str(adapter), "--input", str(all_inputs_dir), "--out", str(out), *extra],
                       capture_output=True, text=True, env={**os.environ, "SENTRY_OPT_OUT": "1"})
    if p.returncode != 0 or not out.exists():
        return {"error": (p.stderr or p.stdout)[-800:], "seconds": round(time.perf_counter() - t0, 2)}
    j = json.loads(out.read_text())
    fnd = j.get("findings", {})
    f = {"exact_duplicate": [(rel(a, root), rel(b, root)) for a, b, *_ in fnd.get("exact_duplicate", [])],
         "near_duplicate": [(rel(a, root), rel(b, root)) for a, b, *_ in fnd.get("near_duplicate", [])],
         "outlier": [], "outlier_scores": {}}
    for t in PER_IMAGE:
        f[t] = [rel(x, root) for x in fnd.get(t, [])]
    if fnd.get("outlier"):
        f["outlier_scores"] = {rel(x, root): float(s) for x, s in fnd["outlier"]}
    return {"findings": f, "supported": j.get("supported", {}), "seconds": j.get("seconds"),
            "version": j.get("version"), "notes": j.get("notes", [])}


# ---------------------------------------------------------------------------- report

def fmt_cell(v):
    if isinstance(v, str):
        return v
    if v is None:
        return "—"
    if "auroc" in v:
        fl = v["flagged"]
        return f"AUROC {v['auroc']}, P@{v['K']} {v['precision@K']}; flagged P {fl['precision']} R {fl['recall']}"
    return f"P {v['precision']:.2f} R {v['recall']:.2f} F1 {v['f1']:.2f}"


def docs_section(result):
    tools = list(result["tools"])
    rows = ["exact_duplicate", "duplicates (any)", "outlier"] + PER_IMAGE
    lines = ["## Quality side by side (`python bench/quality.py`)", "",
             f"- Date: {result['date']}; machine: {result['machine']}",
             f"- Corpus: `{result['corpus']['path']}` — {result['corpus']['files']} files "
             f"({result['corpus']['n_base']} openclipart base images, seed {result['corpus']['seed']}) + "
             f"{result['corpus']['outliers']} Fashion-MNIST outliers; ground truth "
             f"`{result['corpus']['truth']}`.",
             "- Duplicates: P/R/F1 on pairs, groups closed transitively; per-image types: P/R/F1 on "
             "images (ground truth = planted only, so precision is a lower bound; the planted "
             "outliers are left out of these); outliers: AUROC and precision@K of the score.", ""]
    lines.append("| issue type | " + " | ".join(tools) + " |")
    lines.append("|---|" + "---|" * len(tools))
    for r in rows:
        cells = []
        for t in tools:
            m = result["tools"][t]
            if "error" in m:
                cells.append("failed to run")
            elif "metrics" not in m:
                cells.append("not run")
            else:
                cells.append(fmt_cell(m["metrics"].get(r, "not supported")))
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    lines += ["", "Near-duplicate recall by transform:", "",
              "| transform | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
    transforms = sorted({k for t in tools for k in
                         (result["tools"][t].get("metrics", {}).get("near_duplicate recall by transform") or {})})
    for tr in transforms:
        cells = [(result["tools"][t].get("metrics", {}).get("near_duplicate recall by transform") or {}).get(tr, "—")
                 for t in tools]
        lines.append(f"| {tr} | " + " | ".join(cells) + " |")
    lines += ["", "Wall time on this corpus (s): " + ", ".join(
        f"{t} {result['tools'][t].get('seconds', '—')}" for t in tools)]
    notes = [f"- {t}: {n}" for t in tools for n in result["tools"][t].get("notes", [])]
    notes += [f"- {t}: failed: {result['tools'][t]['error'][:300]}" for t in tools if "error" in result["tools"][t]]
    if notes:
        lines += ["", "Notes:", ""] + notes
    return "\n".join(lines)


def write_docs(section, begin=BEGIN, end=END):
    """Replace the docs/benchmarks.md section between the markers (appended when missing)."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    block = f"{begin}\n{section}\n{end}"
    i, j = text.find(begin), text.find(end)
    text = text[:i] + block + text[j + len(end):] if i != -1 and j > i else text.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.write_text(text)


def add_variant_arguments(ap, tool_keys, default_seed):
    """The options bench/quality.py and bench/labels.py share for running one variant."""
    ap.add_argument("--only", help="comma list of tools to run: " + ", ".join(tool_keys) + " (default: all)")
    ap.add_argument("--precision", help="vislint scan --precision for the default-model scan")
    ap.add_argument("--model-size", type=int, help="vislint scan --model-size for the default-model scan")
    ap.add_argument("--threads", type=int, help="vislint scan --threads")
    ap.add_argument("--scan-option", action="append", default=[], metavar="KEY=VALUE",
                    help="another scan option (Python name, e.g. near_duplicate_threshold=0.88); repeatable")
    ap.add_argument("--seed", type=int, default=default_seed, help=f"corpus seed (default {default_seed})")
    ap.add_argument("--json", type=Path, help="where to write the results (default build/bench/<bench>.json)")


def parse_variant_arguments(ap, args, tool_keys, default_seed):
    """(tools to run, scan options); refuses --write-docs for anything but the plain run."""
    only = tool_keys if args.only is None else [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = [t for t in only if t not in tool_keys]
    if unknown or not only:
        ap.error(f"--only takes a comma list of {', '.join(tool_keys)} (got {args.only!r}"
                 + (f"; unknown: {', '.join(unknown)})" if unknown else ")"))
    try:
        opts = scan_options(args)
    except ValueError as e:
        ap.error(str(e))
    if args.write_docs and (args.only is not None or opts or args.seed != default_seed or args.json):
        ap.error("--write-docs replaces this benchmark's section of docs/benchmarks.md, so it needs the plain "
                 "run (no --only, --precision, --model-size, --threads, --scan-option, --seed or --json); "
                 "bench/variants.py writes the per-variant table")
    return only, opts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1")))
    ap.add_argument("--write-docs", action="store_true")
    add_variant_arguments(ap, TOOL_KEYS, DEFAULT_SEED)
    args = ap.parse_args(argv)
    only, opts = parse_variant_arguments(ap, args, TOOL_KEYS, DEFAULT_SEED)
    root, out_dir, truth = build_corpus(args.scale, args.seed)
    files = {rel(os.path.join(d, f), root) for base in (root, out_dir)
             for d, _, fs in os.walk(base) for f in fs if not f.startswith(".") and f != "README.txt"}
    result = {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
              "corpus": {"path": os.path.relpath(root.parent, REPO), "files": len(files),
                         "n_base": truth["params"]["n_base"], "outliers": len(truth["outlier"]),
                         "truth": os.path.relpath(str(root) + ".truth.json", REPO), "seed": args.seed},
              "scale": args.scale, "only": only, "scan_options": opts, "tools": {}}
    # Peers read one folder: the outliers live in a sibling, so they get a combined copy (a real
    # copy: some peers do not follow symlinked folders). Same relative paths as the corpus.
    combined = root.parent / "combined"
    peers = [p for p in PEERS if p[1] in only]
    if peers and (combined.is_symlink() or (combined / "data").is_symlink()):
        shutil.rmtree(combined, ignore_errors=True)
    if peers and not combined.exists():
        tmp = root.parent / "combined.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(root, tmp / "data", symlinks=True)
        shutil.copytree(out_dir, tmp / "outliers")
        tmp.rename(combined)
    tag = options_tag(opts) + ("" if args.seed == DEFAULT_SEED else f"-seed{args.seed}")
    for key, name, model in VISLINT_RUNS:
        if key not in only:
            continue
        work = BENCH / "quality-work" / (name.replace(" ", "_").replace("--", "") + tag)
        extra = cli_args(opts if model != "none" else hash_only_options(opts))
        r = run_vislint(root, [out_dir], model, work, extra)
        r["metrics"] = score_tool(r["findings"], r["supported"], truth, files)
        del r["findings"]
        result["tools"][name] = r
        print(f"{name}: {r['seconds']} s", flush=True)
    for peer, venv, extra in peers:
        r = run_peer(venv, combined / "data", combined,
                     BENCH / "quality-work" / f"{peer.replace(' ', '_')}.json", extra)
        if r is None:
            result["tools"][peer] = {"notes": ["not run: bench/peers/setup_peers.sh has not installed it"]}
            continue
        if "findings" in r:
            # paths through the combined tree: map back to corpus-relative names
            r["metrics"] = score_tool(r["findings"], r["supported"], truth, files)
            del r["findings"]
        result["tools"][peer] = r
        print(f"{peer}: {r.get('seconds')} s", flush=True)
    out_json = args.json or BENCH / "quality.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    section = docs_section(result)
    print(section)
    if args.write_docs:
        write_docs(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
