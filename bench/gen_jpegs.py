#!/usr/bin/env python3
"""Fast corpus of real JPEG files for the scale benchmark (bench/scale.py drives it).

    python bench/gen_jpegs.py --n N --out DIR [--side 128] [--procs 2] [--seed 0]
                              [--exact-fraction 0.01] [--near-fraction 0.01]
                              [--add-fraction 0.01 --add-out DIR2]

Writes N side x side JPEGs (quality 90) as DIR/dFFFF/img_IIIIIII.jpg, 1000 per folder, and
DIR.gen_jpegs.json beside it (parameters and the planted copies; written last, so its presence
with the same parameters means the corpus is complete; outside DIR, so a scan of DIR sees images
only). With --add-out, round(N * --add-fraction) more
files, distinct from the corpus (rows N, N + 1, ...), go to DIR2 (same layout, own marker): the
new images of bench/scale.py's incremental re-scan.

Each image is made from a pool of --pool openclipart-png sources (vislint.testing's loader and
content crop, decoded once, before the worker processes fork): a random crop (scale 0.45-1,
aspect 0.8-1.25) resized to the side, a random horizontal flip, a second clip-art "sticker"
(pre-scaled to 30-50 % of the side, pasted with its non-white mask at a random place) and a
random per-channel colour gain (0.75-1.25) and offset (+-20), so files are distinct (the
marker records that all MD5s of the non-copies differ). Planted copies, at random rows, each of
a random non-copy row:
- exact (--exact-fraction): the same bytes;
- near (--near-fraction): the same pixels re-encoded at quality 75 with a +6 grey-level shift
  (pHash and dHash stay within vislint's default radii).
Image i depends only on (--seed, i), so the output does not depend on --procs. Folders are
written as dFFFF.tmp and renamed when complete, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
MARKER = ".gen_jpegs.json"  # suffix of the file beside the corpus
VERSION = 1
PER_FOLDER = 1000

_POOL: list = []      # RGB sources (inherited by the workers through fork)
_STICKERS: list = []  # per source: [(rgb, mask)] at 3 sizes, each also flipped
_KIND = None          # per row: 0 base, 1 exact copy, 2 near copy
_SOURCE = None        # per row: the row it copies (copies only)
_CROP_BOX = None      # vislint.testing.random_crop_box, set by load_pool


def import_testing():
    """vislint.testing, installed or straight from python/vislint/testing.py (it needs only numpy
    and Pillow, not the compiled core)."""
    try:
        from vislint import testing  # noqa: PLC0415
        return testing
    except ImportError:
        import importlib.util  # noqa: PLC0415
        spec = importlib.util.spec_from_file_location(
            "vislint_testing", REPO / "python" / "vislint" / "testing.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


def rel_path(i: int) -> str:
    return f"d{i // PER_FOLDER:04d}/img_{i:07d}.jpg"


def load_pool(n: int, side: int, seed: int) -> None:
    global _POOL, _STICKERS, _CROP_BOX
    t = import_testing()
    _CROP_BOX = t.random_crop_box
    pool = []
    for _p, im in t._iter_sources(seed, t.CLIPART_ROOT, max_side=2 * side):
        im = t._content_crop(im)
        if min(im.size) < 48:
            continue
        im.load()
        pool.append(im)
        if len(pool) == n:
            break
    if not pool:
        raise SystemExit(f"no usable clip art under {t.CLIPART_ROOT}: install openclipart-png")
    _POOL = pool
    _STICKERS = []
    for im in pool:
        variants = []
        for frac in (0.3, 0.4, 0.5):
            s = max(8, int(side * frac))
            w, h = im.size
            f = s / max(w, h)
            sm = im.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR)
            mask = Image.fromarray(((np.asarray(sm).min(axis=2) < 245) * 255).astype(np.uint8), "L")
            variants.append((sm, mask))
            variants.append((sm.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                             mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
        _STICKERS.append(variants)


_SHIFT6 = [min(255, v + 6) for v in range(256)] * 3


def render(i: int, side: int, seed: int) -> Image.Image:
    """The base image of row i (side x side RGB). Everything per pixel runs inside Pillow
    (resize from a box, paste through a mask, a colour look-up table): ~0.15 ms a file."""
    rng = np.random.default_rng([seed, i])
    a = _POOL[int(rng.integers(len(_POOL)))]
    img = a.resize((side, side), Image.Resampling.BILINEAR, box=_CROP_BOX(rng, *a.size))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    st, mask = _STICKERS[int(rng.integers(len(_STICKERS)))][int(rng.integers(6))]
    img.paste(st, (int(rng.integers(0, side - st.width + 1)),
                   int(rng.integers(0, side - st.height + 1))), mask)
    gains = rng.uniform(0.75, 1.25, 3)
    offset = rng.uniform(-20, 20)
    v = np.arange(256, dtype=np.float64)
    lut = np.clip(v[None, :] * gains[:, None] + offset + 0.5, 0, 255).astype(np.uint8)
    return img.point(lut.ravel().tolist())


def encode(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def file_bytes(i: int, side: int, seed: int) -> bytes:
    kind = 0 if _KIND is None or i >= len(_KIND) else int(_KIND[i])
    if kind == 0:
        return encode(render(i, side, seed), 90)
    src = int(_SOURCE[i])
    if kind == 1:
        return encode(render(src, side, seed), 90)
    return encode(render(src, side, seed).point(_SHIFT6), 75)


def write_folder(task) -> tuple:
    """Write folder number f of root (rows lo..hi); returns (f, MD5s of its base rows)."""
    root, f, lo, hi, side, seed = task
    final = os.path.join(root, f"d{f:04d}")
    tmp = final + ".tmp"
    digests = []
    if os.path.isdir(final):
        return f, None
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for i in range(lo, hi):
        data = file_bytes(i, side, seed)
        # os.open / write / close: half the system calls of open(), and system calls are what
        # a file costs most on a sandboxed host.
        fd = os.open(os.path.join(tmp, f"img_{i:07d}.jpg"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        if _KIND is None or i >= len(_KIND) or _KIND[i] == 0:
            digests.append(hashlib.md5(data).digest())
    os.rename(tmp, final)
    return f, digests


def plan_copies(n: int, seed: int, exact: float, near: float) -> tuple:
    rng = np.random.default_rng([seed, 1 << 20])
    u = rng.random(n)
    kind = np.where(u < exact, 1, np.where(u < exact + near, 2, 0)).astype(np.int8)
    kind[0] = 0
    base = np.flatnonzero(kind == 0)
    source = np.full(n, -1, dtype=np.int64)
    cp = np.flatnonzero(kind != 0)
    source[cp] = base[rng.integers(0, len(base), len(cp))]
    return kind, source


def marker_path(out: Path) -> Path:
    """Beside the corpus, not in it: a scan of DIR then sees images only (vislint counts any
    other file as skipped)."""
    out = Path(out)
    return out.parent / (out.name + MARKER)


def read_marker(out: Path):
    try:
        return json.loads(marker_path(out).read_text())
    except (OSError, ValueError):
        return None


def write_set(out: Path, lo: int, hi: int, params: dict, procs: int, log, extra=None) -> dict:
    """Write rows lo..hi into out (folder f holds rows f*1000..), resuming finished folders."""
    stored = read_marker(out)
    if stored is not None and stored.get("params") == params:
        log(f"reusing {out} ({hi - lo:,} files)")
        return stored
    if stored is not None:
        raise SystemExit(f"{out} holds a corpus made with other parameters ({marker_path(out)}: "
                         f"{stored.get('params')}): delete both or choose another --out / --add-out")
    if out.exists() and any(not p.name.startswith("d") or not p.is_dir() for p in out.iterdir()):
        raise SystemExit(f"{out} holds files that are not this generator's folders: "
                         "choose another --out / --add-out")
    out.mkdir(parents=True, exist_ok=True)
    side, seed = params["side"], params["seed"]
    tasks = []
    for f in range(lo // PER_FOLDER, (hi + PER_FOLDER - 1) // PER_FOLDER):
        tasks.append((str(out), f, max(lo, f * PER_FOLDER), min(hi, (f + 1) * PER_FOLDER), side, seed))
    t0 = time.perf_counter()
    done = files = resumed = 0
    digests = []
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    with ctx.Pool(max(1, procs)) as pool:
        for f, d in pool.imap_unordered(write_folder, tasks, chunksize=1):
            done += 1
            files += tasks[f - tasks[0][1]][3] - tasks[f - tasks[0][1]][2]
            if d is None:
                resumed += 1
            else:
                digests.extend(d)
            if done % 20 == 0 or done == len(tasks):
                s = time.perf_counter() - t0
                log(f"  {out.name}: {files:,}/{hi - lo:,} files, {s:.0f} s"
                    + (f" ({resumed} folders kept from an earlier run)" if resumed else "")
                    + (f", {(files - resumed * PER_FOLDER) / s:.0f} files/s" if s > 0 else ""))
    secs = time.perf_counter() - t0
    marker = {"generator": "bench/gen_jpegs.py", "version": VERSION, "params": params,
              "files": hi - lo, "first_row": lo, "seconds": round(secs, 1),
              "files_per_s": round((hi - lo - resumed * PER_FOLDER) / secs, 1) if secs > 0 else None,
              "resumed_folders": resumed,
              "distinct_base_md5": len(set(digests)) == len(digests) if not resumed else None}
    if extra:
        marker.update(extra)
    tmp = marker_path(out).with_suffix(".tmp")
    tmp.write_text(json.dumps(marker) + "\n")
    os.replace(tmp, marker_path(out))
    return marker


def generate(n: int, out: Path, side: int = 128, procs: int = 2, seed: int = 0,
             exact: float = 0.01, near: float = 0.01, pool: int = 400,
             add_fraction: float = 0.0, add_out=None, log=print) -> dict:
    global _KIND, _SOURCE
    params = {"n": n, "side": side, "seed": seed, "exact_fraction": exact,
              "near_fraction": near, "pool": pool}
    add_n = int(round(n * add_fraction)) if add_out else 0
    add_params = {**params, "add_of": str(Path(out).resolve()), "add_n": add_n}  # however `out` is spelled
    need_main = (read_marker(out) or {}).get("params") != params
    need_add = add_n > 0 and (read_marker(add_out) or {}).get("params") != add_params
    if need_main or need_add:
        t0 = time.perf_counter()
        load_pool(pool, side, seed)
        log(f"  {len(_POOL)} clip-art sources loaded ({time.perf_counter() - t0:.1f} s)")
    _KIND, _SOURCE = plan_copies(n, seed, exact, near)
    kind, source = _KIND, _SOURCE
    ex = np.flatnonzero(kind == 1)
    ne = np.flatnonzero(kind == 2)
    truth = {"exact_copies": [[rel_path(int(i)), rel_path(int(source[i]))] for i in ex],
             "near_copies": [[rel_path(int(i)), rel_path(int(source[i]))] for i in ne]}
    try:
        res = write_set(out, 0, n, params, procs, log, extra=truth)
        if add_n > 0:
            res_add = write_set(Path(add_out), n, n + add_n, add_params, procs, log)
            res = {**res, "add": {k: v for k, v in res_add.items() if k != "params"}}
    finally:
        _KIND = _SOURCE = None
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, required=True, help="files in the corpus")
    ap.add_argument("--out", type=Path, required=True, help="corpus directory")
    ap.add_argument("--side", type=int, default=128, help="image side in px")
    ap.add_argument("--procs", type=int, default=2, help="worker processes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exact-fraction", type=float, default=0.01)
    ap.add_argument("--near-fraction", type=float, default=0.01)
    ap.add_argument("--pool", type=int, default=400, help="clip-art sources")
    ap.add_argument("--add-fraction", type=float, default=0.01)
    ap.add_argument("--add-out", type=Path, help="write round(N * --add-fraction) new files here")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be at least 1")
    if args.side < 32:
        ap.error(f"--side must be at least 32 px, got {args.side}")
    if args.procs < 1 or args.pool < 1:
        ap.error("--procs and --pool must be at least 1")
    for name in ("exact_fraction", "near_fraction", "add_fraction"):
        v = getattr(args, name)
        if not 0.0 <= v <= 0.5:
            ap.error(f"--{name.replace('_', '-')} must be in [0, 0.5], got {v}")
    if args.add_out is not None and args.add_out.resolve() == args.out.resolve():
        ap.error("--add-out must differ from --out")
    r = generate(args.n, args.out, args.side, args.procs, args.seed, args.exact_fraction,
                 args.near_fraction, args.pool, args.add_fraction, args.add_out,
                 log=lambda s: print(s, flush=True))
    print(f"done: {r['files']:,} files in {args.out}, {r.get('files_per_s')} files/s"
          + (f"; {r['add']['files']:,} new files in {args.add_out}" if "add" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
