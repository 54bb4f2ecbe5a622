#!/usr/bin/env python3
"""Outlier rule study (issue 13): which flag rule finds foreign images at the default settings.

Planted corpora, each drawn for several seeds (images from Debian's openclipart-png and
dataset-fashion-mnist, photos from scikit-image's sample data in the model export venv):
- photos+clipart: 80 photos (crops of the sample photos) with 4 clip-art images;
- clipart+photos: 200 clip-art images with 4 photos;
- fashion+other: 300 Fashion-MNIST items (112 px) with 3 clip-art images and 3 photos;
- clipart+group: 200 clip-art images with a foreign group of 12 Fashion-MNIST sneakers.

Each corpus is scanned once with the default model; the candidate rules are then scored on the
scan's own features (exact cosine kNN, k = 10, in numpy) and on vislint's flags (`vislint eval`):
- z: the shipped rule before this study (robust z of isolation = 1 - mean sim of 5 nearest, > 3.5);
- lof: local outlier factor on cosine distance (k = 10), > 1.5 ... as measured;
- rel: isolation / median isolation of its 10 neighbours (a LOF-like density ratio);
- group: small components far from everything else (see below).

    python bench/quality.py is the end-to-end benchmark; this one prints a table per rule:
    python bench/outliers.py [--seeds 3] [--json build/bench/outliers.json]
"""
from __future__ import annotations

import argparse
import glob
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
import vislint  # noqa: E402
import vislint.testing as T  # noqa: E402

OUT = REPO / "build" / "bench" / "outliers"
SKIMAGE = sorted(glob.glob(str(Path.home() / ".cache/vislint/export-venv/lib/python3*/site-packages/skimage/data")))
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png",
          "motorcycle_right.png", "retina.jpg", "rocket.jpg", "camera.png", "brick.png", "grass.png", "gravel.png",
          "moon.png", "coins.png", "clock_motion.png"]


def photo_sources() -> list:
    if not SKIMAGE:
        raise SystemExit("scikit-image's sample photos are missing: run `make model` (its export venv has them)")
    return [Image.open(Path(SKIMAGE[-1]) / n).convert("RGB") for n in PHOTOS]


def photo_crops(n: int, rng) -> list:
    """n photos: random crops (40-90 % of the side), some mirrored, of the sample photos."""
    src = photo_sources()
    out = []
    for i in range(n):
        im = src[i % len(src)]
        w, h = im.size
        f = rng.uniform(0.4, 0.9)
        cw, ch = int(w * f), int(h * f)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        c = im.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            c = c.transpose(Image.FLIP_LEFT_RIGHT)
        out.append(c.resize((224, int(224 * ch / cw))))
    return out


def fashion(n: int, rng, label=None) -> list:
    """n Fashion-MNIST training items at 112 px, of one class when `label` (0-9) is given."""
    with gzip.open(Path(T.FASHION_ROOT) / "train-images-idx3-ubyte.gz") as f:
        data = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(Path(T.FASHION_ROOT) / "train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    pool = np.arange(len(data)) if label is None else np.flatnonzero(labels == label)
    idx = rng.choice(pool, n, replace=False)
    return [Image.fromarray(data[i]).resize((112, 112), Image.BILINEAR).convert("RGB") for i in idx]


def clipart(n: int, seed: int) -> list:
    return [T.load_rgb(p, 256) for p in T.clipart_paths(n, seed=seed)]


def build(kind: str, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    if kind == "photos+clipart":
        major, odd = photo_crops(80, rng), clipart(4, seed + 100)
    elif kind == "clipart+photos":
        major, odd = clipart(200, seed), photo_crops(4, rng)
    elif kind == "fashion+other":
        major, odd = fashion(300, rng), clipart(3, seed + 100) + photo_crops(3, rng)
    elif kind == "clipart+group":
        # A group is mutually similar: 12 items of one class (sneakers). Twelve items of mixed
        # classes are not (mean pairwise cosine 0.37-0.44, as close to clip art as to each other).
        major, odd = clipart(200, seed), fashion(12, rng, label=7)
    else:
        raise ValueError(kind)
    root = OUT / f"{kind.replace('+', '_')}-s{seed}"
    if root.exists():
        shutil.rmtree(root)
    (root / "data").mkdir(parents=True)
    order = rng.permutation(len(major) + len(odd))
    truth = []
    for pos, i in enumerate(order):
        im, planted = (major[i], False) if i < len(major) else (odd[i - len(major)], True)
        p = root / "data" / f"img_{pos:04d}.png"
        im.convert("RGB").save(p)
        if planted:
            truth.append(str(p))
    return root, truth


def knn(feats: np.ndarray, k: int):
    f = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    s = f @ f.T
    np.fill_diagonal(s, -np.inf)
    ids = np.argsort(-s, axis=1)[:, :k]
    return ids, np.take_along_axis(s, ids, axis=1)


def robust_z(x: np.ndarray) -> np.ndarray:
    med = np.median(x)
    mad = max(1.4826 * np.median(np.abs(x - med)), 1e-6)
    return (x - med) / mad


def rules(feats: np.ndarray, k: int = 10) -> dict:
    """Score of every image under each candidate rule (higher = more foreign)."""
    ids, sims = knn(feats, k)
    iso = 1 - sims[:, :5].mean(axis=1)
    d = 1 - sims                               # cosine distances to the k nearest
    kdist = d[:, -1]
    reach = np.maximum(d, kdist[ids])          # reachability distance
    lrd = 1 / np.maximum(reach.mean(axis=1), 1e-9)
    lof = lrd[ids].mean(axis=1) / lrd
    rel = iso / np.maximum(np.median(iso[ids], axis=1), 1e-9)
    return {"iso": iso, "z": robust_z(iso), "lof": lof, "rel": rel, "ids": ids, "sims": sims}


def auroc(score: np.ndarray, pos: np.ndarray) -> float:
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    # average ranks for ties
    for v in np.unique(score):
        m = score == v
        if m.sum() > 1:
            ranks[m] = ranks[m].mean()
    npos, nneg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def prf(flag: np.ndarray, pos: np.ndarray) -> dict:
    tp = int((flag & pos).sum())
    p = tp / flag.sum() if flag.sum() else 0.0
    r = tp / pos.sum()
    return {"p": round(p, 3), "r": round(r, 3), "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0,
            "flagged": int(flag.sum())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--kinds", default="photos+clipart,clipart+photos,fashion+other,clipart+group")
    ap.add_argument("--json", type=Path, default=REPO / "build" / "bench" / "outliers.json")
    ap.add_argument("--vislint", default=str(REPO / ".venv" / "bin" / "vislint"))
    ap.add_argument("--rescan", action="store_true", help="scan again even when a work dir exists")
    args = ap.parse_args(argv)
    results = []
    for kind in args.kinds.split(","):
        for seed in range(args.seeds):
            root, truth = build(kind, seed)
            work = root / "work"
            subprocess.run([args.vislint, "scan", str(root / "data"), "-o", str(work), "-q", "--no-report"],
                           check=True, stdout=subprocess.DEVNULL)
            scan = vislint.load(work)
            paths = list(scan.images().sort_values("id")["path"])
            feats = np.asarray(scan.features(), dtype=np.float32)[: len(paths)]
            pos = np.array([p in set(truth) for p in paths])
            r = rules(feats)
            flagged = set(scan.issues("outlier")["path"])
            row = {"kind": kind, "seed": seed, "n": len(paths), "planted": int(pos.sum()),
                   "auroc": {k: round(auroc(r[k], pos), 4) for k in ("iso", "lof", "rel")},
                   "shipped": prf(np.array([p in flagged for p in paths]), pos),
                   "z>3.5": prf(r["z"] > 3.5, pos),
                   "planted_z": [round(float(x), 2) for x in r["z"][pos]],
                   "planted_lof": [round(float(x), 2) for x in r["lof"][pos]],
                   "planted_rel": [round(float(x), 2) for x in r["rel"][pos]],
                   "others_lof_p99": round(float(np.percentile(r["lof"][~pos], 99)), 2),
                   "others_rel_p99": round(float(np.percentile(r["rel"][~pos], 99)), 2),
                   "others_z_p99": round(float(np.percentile(r["z"][~pos], 99)), 2),
                   "others_lof_max": round(float(r["lof"][~pos].max()), 2),
                   "others_rel_max": round(float(r["rel"][~pos].max()), 2)}
            np.save(root / "scores.npy", np.stack([r["iso"], r["lof"], r["rel"], pos.astype(float)]))
            results.append(row)
            print(json.dumps(row), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
