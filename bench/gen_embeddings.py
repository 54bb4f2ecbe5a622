#!/usr/bin/env python3
"""Synthetic clustered embeddings with planted near copies, labels and splits, for
`vislint scan --embeddings` at up to 10 M rows (bench/scale.py drives it).

    python bench/gen_embeddings.py --n N --dim D --out DIR [--dtype float16|float32] [--seed S]

Writes DIR/emb.npy (n x d: numpy's .npy header, then the rows written in blocks from reused
buffers, so memory stays at a few hundred MB even at 10 M x 1280), DIR/names.txt (line i = the name of row
i: `img/BBBB/IIIIIIII.jpg`, the row number is in the name, see `row_of`), DIR/labels.csv
(`path,label,split`) and DIR/truth.json (written last: its presence with the same parameters
means the directory is complete, and a second run with the same arguments returns at once).

The data, and why it looks like real embeddings rather than i.i.d. noise:
- Spectrum: every random component (class centre, cluster centre, per-row noise, the direction
  of a copy's perturbation) is z @ B with z ~ N(0, I_d) and B = diag(sqrt(lam)) R^T, R a seeded
  random rotation (QR of a Gaussian matrix) and lam_j ~ (1 + j / 30)^-1.8 (normalised to sum 1):
  a power law whose participation ratio is ~85 directions at d = 256 and ~110 at d = 1280, with
  ~80 % of the variance in the first ~130 directions, as pooled CNN features have.
- Hierarchy: row = 0.6 mu (one shared mean direction, as post-ReLU features share) +
  0.6 class centre + 0.6 cluster centre + 0.9 s_k noise, unit-normalised. --clusters centres
  (default n / 2000, at least --classes and at most 5000, so the cluster size distribution is the same at every
  n and the sample checks below carry over from small to large n) are spread over --classes
  classes (default 100); cluster sizes are log-normal (sigma 0.5) and each cluster has its own
  spread s_k in [0.85, 1.15]. This gives a mean cosine of ~0.55 inside a cluster, ~0.3 between
  clusters of one class, ~0.15 across classes, and a nearest-neighbour cosine of ~0.75 (max
  ~0.83 in an 8,000-row cluster): below the default near_duplicate threshold 0.90.
- Outliers: --outlier-fraction (0.1 %) rows are 0.6 mu + 1.2 noise, in no cluster.
- Planted near copies: --copy-fraction (0.5 %) of the rows, at random positions, are
  t x + sqrt(1 - t^2) v of an original row x (v: a noise draw orthogonalised to x,
  t ~ U(0.95, 0.99)), so the stored cosine to the original is t up to float16 rounding. One in
  ten copies takes an original that already has a copy (groups of 3+: two copies of one
  original are near each other too). Originals are never copies or outliers.
- Labels: class_CCC of the row's cluster (a copy takes its original's), --flip-fraction (2 %)
  of the non-outlier rows get another class at random; outliers get a random class (neither
  flipped nor counted). Split: val with probability --val-fraction (0.1), else train, drawn
  independently per row, so ~18 % of the planted pairs straddle train / val (the leaks).

truth.json: params, pairs ([copy, original] row numbers), flipped (rows), leaks (the planted
pairs whose rows are in different splits, as [val row, train row]), outliers (rows), and checks: the cosines of the
planted pairs as stored, of --check-pairs random non-planted pairs and, for --check-queries rows
of one class that are in no planted group, the cosine of their nearest neighbour inside the
class (the precision risk: a non-planted pair above 0.90). The checks are printed too.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

GENERATOR = "bench/gen_embeddings.py"
VERSION = 2
SPECTRUM_J0, SPECTRUM_ALPHA = 30.0, 1.8
W_MEAN, W_CLASS, W_CLUSTER, W_NOISE, W_OUTLIER = 0.6, 0.6, 0.6, 0.9, 1.2
NEAR_THRESHOLD = 0.90  # vislint's default --near-duplicate-threshold


def row_of(name: str) -> int:
    """Row number of a name written by this generator (`img/BBBB/IIIIIIII.jpg`)."""
    return int(name[name.rindex("/") + 1:name.rindex(".")])


def names_for(lo: int, hi: int) -> list:
    return [f"img/{i // 10000:04d}/{i:08d}.jpg" for i in range(lo, hi)]


def default_clusters(n: int, classes: int) -> int:
    return int(min(5000, max(classes, n // 2000)))


def params_of(args) -> dict:
    return {"generator": GENERATOR, "version": VERSION, "n": args.n, "dim": args.dim,
            "dtype": args.dtype, "seed": args.seed,
            "clusters": args.clusters or default_clusters(args.n, args.classes), "classes": args.classes,
            "copy_fraction": args.copy_fraction, "flip_fraction": args.flip_fraction,
            "val_fraction": args.val_fraction, "outlier_fraction": args.outlier_fraction}


def is_complete(out: Path, params: dict) -> bool:
    try:
        truth = json.loads((out / "truth.json").read_text())
    except (OSError, ValueError):
        return False
    return truth.get("params") == params and all(
        (out / f).is_file() for f in ("emb.npy", "names.txt", "labels.csv"))


class Model:
    """The mixture: spectrum basis, shared mean, class and cluster centres, cluster spreads."""

    def __init__(self, p: dict):
        d, k, c = p["dim"], p["clusters"], p["classes"]
        rng = np.random.default_rng([p["seed"], 1])
        lam = (1.0 + np.arange(d) / SPECTRUM_J0) ** -SPECTRUM_ALPHA
        lam /= lam.sum()
        self.participation = float(lam.sum() ** 2 / (lam ** 2).sum())
        rot, _ = np.linalg.qr(rng.standard_normal((d, d)))
        self.basis = (np.sqrt(lam)[:, None] * rot.T).astype(np.float32)  # z @ basis
        self.dim = d
        mu = self.draw(rng, 1)[0]
        self.mu = W_MEAN * mu
        self.classes = min(c, k)
        self.class_of_cluster = np.concatenate(
            [np.arange(self.classes), rng.integers(0, self.classes, k - self.classes)])
        rng.shuffle(self.class_of_cluster)
        class_centres = self.draw(rng, self.classes)
        self.centres = (self.mu + W_CLASS * class_centres[self.class_of_cluster]
                        + W_CLUSTER * self.draw(rng, k)).astype(np.float32)
        self.noise_scale = (W_NOISE * rng.uniform(0.85, 1.15, k)).astype(np.float32)
        sizes = rng.lognormal(0.0, 0.5, k)
        self.cluster_p = sizes / sizes.sum()

    def draw(self, rng, m: int) -> np.ndarray:
        return rng.standard_normal((m, self.dim), dtype=np.float32) @ self.basis


def unit(x: np.ndarray) -> np.ndarray:
    # einsum: np.linalg.norm(axis=1) is ~50x slower on 100 k x 256 float32.
    return x / np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]


def generate(p: dict, out: Path, chunk: int = 100_000, threads: int = 2, log=print) -> dict:
    n, d, seed = p["n"], p["dim"], p["seed"]
    dtype = np.dtype(p["dtype"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    model = Model(p)
    rng = np.random.default_rng([seed, 2])
    cluster = rng.choice(len(model.cluster_p), size=n, p=model.cluster_p).astype(np.int32)

    n_out = int(round(n * p["outlier_fraction"]))
    n_copy = int(round(n * p["copy_fraction"]))
    special = rng.choice(n, size=n_out + n_copy, replace=False)
    outliers = np.sort(special[:n_out])
    copies = special[n_out:]
    is_special = np.zeros(n, dtype=bool)
    is_special[special] = True
    # Originals: uniform over the ordinary rows; one copy in ten joins an earlier copy's original.
    originals = rng.integers(0, n - is_special.sum(), n_copy)
    originals = np.flatnonzero(~is_special)[originals]
    share = rng.random(n_copy) < 0.1
    share[0] = False
    prev = np.maximum(0, np.arange(n_copy) - 1 - rng.integers(0, 50, n_copy))
    originals = np.where(share, originals[prev], originals)
    cluster[copies] = cluster[originals]
    out_flag = np.zeros(n, dtype=bool)
    out_flag[outliers] = True

    emb_path = out / "emb.npy"
    # The header through numpy, the rows by pwrite from reused buffers: on this kind of
    # sandboxed host every fresh page costs ~10 us, so per-chunk temporaries (or writing
    # through a memmap) made 200 k x 1280 take 65 s instead of ~10 s.
    with open(emb_path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": (n, d)})
        header = fh.tell()
        fh.truncate(header + n * d * dtype.itemsize)
    starts = list(range(0, n, chunk))
    block = max(256, 4_000_000 // d)  # rows per step: ~16 MB of float32, reused
    local = threading.local()
    fd = os.open(emb_path, os.O_WRONLY)

    def fill(ci: int) -> None:
        if not hasattr(local, "z"):
            local.z = np.empty((block, d), np.float32)
            local.x = np.empty((block, d), np.float32)
            local.o = np.empty((block, d), dtype)
        r = np.random.default_rng([seed, 3, ci])
        for lo in range(starts[ci], min(n, starts[ci] + chunk), block):
            hi = min(n, starts[ci] + chunk, lo + block)
            m = hi - lo
            z, x, o = local.z[:m], local.x[:m], local.o[:m]
            cl = cluster[lo:hi]
            r.standard_normal(out=z, dtype=np.float32)
            np.matmul(z, model.basis, out=x)
            x *= model.noise_scale[cl][:, None]
            np.take(model.centres, cl, axis=0, out=z)
            x += z
            rows = np.flatnonzero(out_flag[lo:hi])
            if len(rows):
                x[rows] = model.mu + W_OUTLIER * model.draw(r, len(rows))
            x /= np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
            o[...] = x
            os.pwrite(fd, memoryview(o).cast("B"), header + lo * d * dtype.itemsize)

    done = 0
    # numpy's generators and BLAS release the GIL; each chunk has its own generator, so the
    # output does not depend on --threads.
    try:
        with ThreadPoolExecutor(max(1, threads)) as ex:
            for _ in ex.map(fill, range(len(starts))):
                done += 1
                if done % 10 == 0 or done == len(starts):
                    log(f"  rows {min(n, done * chunk):,}/{n:,} ({time.perf_counter() - t0:.0f} s)")
    finally:
        os.close(fd)
    mm = np.load(emb_path, mmap_mode="r+")

    # Copies after all originals are written (an original may sit in a later chunk).
    order = np.argsort(copies)
    copies, originals = copies[order], originals[order]
    t_copy = np.random.default_rng([seed, 4]).uniform(0.95, 0.99, n_copy).astype(np.float32)
    r = np.random.default_rng([seed, 5])
    for lo in range(0, n_copy, block):
        hi = min(n_copy, lo + block)
        x = mm[originals[lo:hi]].astype(np.float32)
        x = unit(x)
        v = model.draw(r, hi - lo)
        v -= np.sum(v * x, axis=1, keepdims=True) * x
        v = unit(v)
        t = t_copy[lo:hi, None]
        mm[copies[lo:hi]] = unit(t * x + np.sqrt(1.0 - t * t) * v).astype(dtype)
    mm.flush()
    log(f"  {n_copy:,} copies planted; embeddings written: {emb_path} ({time.perf_counter() - t0:.0f} s)")

    true_class = model.class_of_cluster[cluster]
    rl = np.random.default_rng([seed, 6])
    true_class[outliers] = rl.integers(0, model.classes, n_out)
    given = true_class.copy()
    n_flip = int(round((n - n_out) * p["flip_fraction"]))
    flipped = np.sort(rl.choice(np.flatnonzero(~out_flag), size=n_flip, replace=False))
    if model.classes > 1:
        given[flipped] = (given[flipped] + rl.integers(1, model.classes, n_flip)) % model.classes
    val = rl.random(n) < p["val_fraction"]
    with open(out / "names.txt", "w", encoding="utf-8") as fn, \
            open(out / "labels.csv", "w", encoding="utf-8") as fl:
        fl.write("path,label,split\n")
        for lo in range(0, n, 1_000_000):
            hi = min(n, lo + 1_000_000)
            names = names_for(lo, hi)
            fn.write("\n".join(names) + "\n")
            fl.write("".join(f"{nm},class_{c:03d},{'val' if v else 'train'}\n"
                             for nm, c, v in zip(names, given[lo:hi].tolist(), val[lo:hi].tolist())))
    leaks = val[copies] != val[originals]
    log(f"  names and labels written ({time.perf_counter() - t0:.0f} s)")

    checks = sample_checks(p, mm, copies, originals, true_class, out_flag, is_special)
    log(f"  sample checks done ({time.perf_counter() - t0:.0f} s)")
    checks["participation_ratio"] = round(model.participation, 1)
    truth = {
        "params": p,
        "counts": {"rows": n, "pairs": n_copy, "copies_sharing_an_original": int(share.sum()),
                   "flipped": n_flip, "leaks": int(leaks.sum()), "outliers": n_out,
                   "classes": model.classes, "clusters": len(model.cluster_p)},
        "generate_seconds": round(time.perf_counter() - t0, 1),
        "checks": checks,
        "pairs": np.stack([copies, originals], 1).tolist(),
        "flipped": flipped.tolist(),
        # [val row, train row]: vislint reports a leak on the later split's item.
        "leaks": np.stack([np.where(val[copies], copies, originals)[leaks],
                           np.where(val[copies], originals, copies)[leaks]], 1).tolist(),
        "outliers": outliers.tolist(),
    }
    del mm
    tmp = out / "truth.json.tmp"
    tmp.write_text(json.dumps(truth, separators=(",", ":")) + "\n")
    os.replace(tmp, out / "truth.json")
    return truth


def _cos_rows(mm, a: np.ndarray, b: np.ndarray, block: int = 8192) -> np.ndarray:
    """Cosine of rows a[i], b[i] as stored, in small blocks (fresh memory is slow here)."""
    out = np.empty(len(a), np.float32)
    for lo in range(0, len(a), block):
        xa = mm[a[lo:lo + block]].astype(np.float32)
        xb = mm[b[lo:lo + block]].astype(np.float32)
        out[lo:lo + block] = np.einsum("ij,ij->i", xa, xb) / np.sqrt(
            np.einsum("ij,ij->i", xa, xa) * np.einsum("ij,ij->i", xb, xb))
    return out


def sample_checks(p, mm, copies, originals, true_class, out_flag, is_special,
                  n_pairs: int = 100_000, n_queries: int = 500) -> dict:
    n = p["n"]
    rng = np.random.default_rng([p["seed"], 7])
    res = {}
    if len(copies):
        c = _cos_rows(mm, copies, originals)
        res["planted_cosine"] = {"min": round(float(c.min()), 4), "mean": round(float(c.mean()), 4),
                                 "max": round(float(c.max()), 4),
                                 "below_threshold": int((c < NEAR_THRESHOLD).sum())}
    in_group = np.zeros(n, dtype=bool)
    in_group[copies] = True
    in_group[originals] = True
    a = rng.integers(0, n, n_pairs)
    b = rng.integers(0, n, n_pairs)
    keep = (a != b) & ~(in_group[a] & in_group[b])
    c = _cos_rows(mm, a[keep], b[keep])
    res["random_pairs"] = {"pairs": int(keep.sum()), "mean": round(float(c.mean()), 4),
                           "q999": round(float(np.quantile(c, 0.999)), 4),
                           "max": round(float(c.max()), 4),
                           "at_or_above_threshold": int((c >= NEAR_THRESHOLD).sum())}
    # Nearest neighbour inside one class (where the nearest non-planted neighbours are):
    # queries in no planted group, so none of their pairs is planted.
    cls = int(true_class[rng.integers(0, n)])
    members = np.flatnonzero((true_class == cls) & ~out_flag)
    if len(members) > 200_000:
        members = np.sort(rng.choice(members, 200_000, replace=False))
    cand = members[~in_group[members]]
    if len(cand) >= 2:
        q = np.sort(rng.choice(cand, min(n_queries, len(cand)), replace=False))
        xq = unit(mm[q].astype(np.float32))
        best = np.full(len(q), -1.0, dtype=np.float32)
        for lo in range(0, len(members), 8192):
            blk = members[lo:lo + 8192]
            s = xq @ unit(mm[blk].astype(np.float32)).T
            s[q[:, None] == blk[None, :]] = -1.0
            best = np.maximum(best, s.max(axis=1))
        res["class_nn"] = {"class": cls, "class_rows": int(len(members)), "queries": int(len(q)),
                           "median": round(float(np.median(best)), 4),
                           "q99": round(float(np.quantile(best, 0.99)), 4),
                           "max": round(float(best.max()), 4),
                           "at_or_above_threshold": int((best >= NEAR_THRESHOLD).sum())}
    return res


def print_checks(truth: dict, log=print) -> None:
    ch = truth["checks"]
    log(f"  counts: {truth['counts']}")
    if "planted_cosine" in ch:
        pc = ch["planted_cosine"]
        log(f"  planted pairs: cosine min {pc['min']} mean {pc['mean']} max {pc['max']}, "
            f"{pc['below_threshold']} below {NEAR_THRESHOLD}")
    rp = ch["random_pairs"]
    log(f"  {rp['pairs']:,} random non-planted pairs: cosine mean {rp['mean']} q99.9 {rp['q999']} "
        f"max {rp['max']}, {rp['at_or_above_threshold']} at or above {NEAR_THRESHOLD}")
    if "class_nn" in ch:
        cn = ch["class_nn"]
        log(f"  nearest neighbour of {cn['queries']} unplanted rows inside class {cn['class']} "
            f"({cn['class_rows']:,} rows): median {cn['median']} q99 {cn['q99']} max {cn['max']}, "
            f"{cn['at_or_above_threshold']} at or above {NEAR_THRESHOLD}")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, required=True, help="rows")
    ap.add_argument("--dim", type=int, required=True, help="dimension")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clusters", type=int, default=0, help="0 = n / 2000, at least --classes, at most 5000")
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--copy-fraction", type=float, default=0.005)
    ap.add_argument("--flip-fraction", type=float, default=0.02)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--outlier-fraction", type=float, default=0.001)
    ap.add_argument("--chunk", type=int, default=100_000, help="rows generated and written at a time")
    ap.add_argument("--threads", type=int, default=2, help="chunks generated at once")
    ap.add_argument("--force", action="store_true", help="regenerate even if DIR is complete")
    return ap


def check_args(ap, args) -> None:
    if args.n < 2:
        ap.error("--n must be at least 2")
    if args.dim < 2:
        ap.error("--dim must be at least 2")
    if args.clusters < 0 or args.classes < 1 or args.chunk < 1:
        ap.error("--clusters must be >= 0, --classes and --chunk >= 1")
    for name in ("copy_fraction", "flip_fraction", "val_fraction", "outlier_fraction"):
        v = getattr(args, name)
        if not 0.0 <= v < 1.0:
            ap.error(f"--{name.replace('_', '-')} must be in [0, 1), got {v}")
    if args.copy_fraction + args.outlier_fraction > 0.5:
        ap.error("--copy-fraction + --outlier-fraction must be at most 0.5")


def ensure(args, log=print) -> dict:
    """Generate DIR unless it is complete with the same parameters; return its truth.json."""
    p = params_of(args)
    if not args.force and is_complete(args.out, p):
        log(f"reusing {args.out} ({p['n']:,} x {p['dim']} {p['dtype']})")
        return json.loads((args.out / "truth.json").read_text())
    log(f"generating {p['n']:,} x {p['dim']} {p['dtype']} embeddings in {args.out}")
    truth = generate(p, args.out, chunk=args.chunk, threads=args.threads, log=log)
    print_checks(truth, log)
    log(f"done in {truth['generate_seconds']} s")
    return truth


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    check_args(ap, args)
    ensure(args, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
