#!/usr/bin/env python3
"""Robust near duplicates: recall per transformation kind and precision, on real clip art.

Corpus (deterministic for a seed): N distinct originals from Debian's openclipart-png (mutually
distinct by dHash, as make_dataset's bases), each copied once with every one of
vislint.testing's NEAR_DUPLICATE_TRANSFORMS (mirror, 7 degree rotation, 85 % crop, text overlay,
noise, heavy JPEG, half size + JPEG, brightness), plus D distractor originals with no copy.
The truth is one group per original (itself and its 8 copies).

Scored with `vislint eval`'s scorer (vislint._core.score_findings): precision / recall on pairs
of the `duplicate` key (exact and near rows closed into groups), and recall per kind = share of
the copies whose predicted group holds their original. `--analyse` adds, from features.npy, the
cosine similarity of every planted pair and of the strongest unplanted pairs.

    python bench/near_dups.py [--n 120] [--distractors 1200] [--seed 0] [--scan-arg=--x ...]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "build" / "bench"


def build(root: Path, n: int, distractors: int, seed: int) -> dict:
    """Writes the corpus under root (once) and returns {original: {kind: copy}} (names relative
    to root)."""
    import vislint.testing as t

    marker = root / "truth.json"
    if marker.exists():
        return json.loads(marker.read_text())
    rng = np.random.default_rng(seed)
    chosen, hashes = [], []
    for path, im in t._iter_sources(seed, str(t.CLIPART_ROOT)):
        if not t._is_clean_base(im):
            continue
        h = t._dhash(im)
        if any(bin(h ^ o).count("1") <= 12 for o in hashes):
            continue  # clip art repeats itself; keep the originals distinct
        hashes.append(h)
        chosen.append((path, im))
        if len(chosen) == n + distractors:
            break
    truth = {}
    for i, (path, im) in enumerate(chosen):
        stem = f"{i:05d}_{t._safe_stem(Path(path).stem)[:40]}"
        orig = f"originals/{stem}.png"
        t._save(im, root / orig, "png")
        if i >= n:
            continue
        truth[orig] = {}
        for kind in t.NEAR_DUPLICATE_TRANSFORMS:
            fn, ext, kw = t._TRANSFORMS[kind]
            dst = f"copies/{kind}/{stem}.{ext}"
            t._save(fn(im, rng), root / dst, ext, **kw)
            truth[orig][kind] = dst
    marker.write_text(json.dumps(truth, indent=1))
    return truth


def rows_of(work: Path, root: Path):
    """Predicted duplicate rows (type, relative path, relative other) from the work dir."""
    import vislint

    s = vislint.load(str(work))
    df = s.issues()
    df = df[df["type"].isin(["exact_duplicate", "near_duplicate"])]
    rel = lambda p: str(Path(p).resolve().relative_to(root.resolve()))  # noqa: E731
    return [(ty, rel(a), rel(b)) for ty, a, b in zip(df["type"], df["path"], df["other_path"])]


def score(pred, truth):
    from vislint import _core

    groups = []
    for orig, copies in truth.items():
        groups += [("near_duplicate", c, orig) for c in copies.values()]
    p, r, f1, n_pred, n_true, matched = _core.score_findings(pred, groups)["duplicate"]
    dup = {"precision": p, "recall": r, "f1": f1, "predicted": n_pred, "true": n_true, "matched": matched}
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for _ty, a, b in pred:
        parent[find(a)] = find(b)
    per_kind = {}
    for orig, copies in truth.items():
        for kind, c in copies.items():
            hit = find(c) == find(orig)
            k = per_kind.setdefault(kind, [0, 0])
            k[0] += hit
            k[1] += 1
    return dup, per_kind


def analyse(work: Path, root: Path, truth: dict):
    import vislint

    s = vislint.load(str(work))
    img = s.images()
    idx = {str(Path(p).resolve().relative_to(root.resolve())): int(i) for p, i in zip(img["path"], img["id"])}
    f = np.load(work / "features.npy", mmap_mode="r").astype(np.float32)
    out = {}
    for orig, copies in truth.items():
        for kind, c in copies.items():
            out.setdefault(kind, []).append(float(f[idx[orig]] @ f[idx[c]]))
    for kind, v in sorted(out.items()):
        v = np.array(v)
        print(f"  {kind:16s} cos min {v.min():.3f} p10 {np.percentile(v, 10):.3f} "
              f"median {np.median(v):.3f}")
    # strongest unplanted pairs among the originals
    origs = [i for p, i in idx.items() if p.startswith("originals/")]
    g = f[origs]
    sim = g @ g.T
    np.fill_diagonal(sim, -1)
    top = np.sort(sim.max(axis=1))
    print(f"  distinct originals' nearest cos: p50 {np.median(top):.3f} p90 {np.percentile(top, 90):.3f} "
          f"p99 {np.percentile(top, 99):.3f} max {top.max():.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=120, help="originals with copies")
    ap.add_argument("--distractors", type=int, default=1200, help="originals without copies")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vislint", default=str(REPO / ".venv" / "bin" / "vislint"))
    ap.add_argument("--scan-arg", action="append", default=[], help="extra scan argument (repeatable)")
    ap.add_argument("--tag", default="default", help="work dir name")
    ap.add_argument("--analyse", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    base = BENCH / f"near-{a.n}-{a.distractors}-s{a.seed}"
    root = base / "data"
    t0 = time.time()
    truth = build(root, a.n, a.distractors, a.seed)
    print(f"corpus {root}: {len(truth)} originals x 8 copies + {a.distractors} distractors "
          f"({time.time() - t0:.1f} s)")
    work = base / f"work-{a.tag}"
    t0 = time.time()
    cmd = [a.vislint, "scan", str(root), "-o", str(work), "--quiet", *a.scan_arg]
    subprocess.run(cmd, check=True)
    secs = time.time() - t0
    dup, per_kind = score(rows_of(work, root), truth)
    print(f"scan {secs:.1f} s ({' '.join(a.scan_arg) or 'defaults'})")
    print(f"duplicate pairs: precision {dup['precision']:.3f} recall {dup['recall']:.3f} "
          f"(predicted {dup['predicted']}, true {dup['true']})")
    for kind, (hit, tot) in sorted(per_kind.items()):
        print(f"  {kind:16s} {hit}/{tot} = {hit / tot:.3f}")
    if a.analyse:
        analyse(work, root, truth)
    if a.json:
        Path(a.json).write_text(json.dumps({"seconds": secs, "duplicate": dup, "per_kind": per_kind,
                                            "scan_args": a.scan_arg}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
