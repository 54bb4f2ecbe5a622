#!/usr/bin/env python3
"""Mutation fuzzer over whole scans: damaged copies of real image files, scanned by the vislint
command in one batch (several thread counts and orders) and one file per scan.

What it checks, per mutated file and per scan:
- the scan ends (no hang past --batch-timeout / --single-timeout) with exit code 0, or at worst
  with a clear `vislint: error: ...` (a run error, also reported); a signal, `internal error` or
  any other exit is a crash;
- every input file has exactly one row in WORK/vislint.db's `images` table, its text valid UTF-8;
- `vislint issues` / `stats` (JSON and CSV) and `vislint report` read the first batch's work dir
  back without failing and print valid JSON;
- a file's status does not depend on what else is in the scan: the same in every batch
  (directory order with --threads 0 / 1 / 2, a shuffled list file with --threads 1 / 2) and the
  same as when it is scanned alone. Decoders keep per-thread state (a reused TurboJPEG handle), so
  a file that breaks that state can turn later good files into false `corrupt` rows: this is the
  check that sees it;
- the inputs are never written (sha256 of every file before and after).

The mutations are deterministic for a given --seed. Prints a summary and writes it as JSON.

Usage: mutate_scan.py --seeds DIR --vislint PATH --out DIR [--count N] [--seconds S] [--json F]
"""
import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import random
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
import zlib

INTERESTING = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
               0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


# ---------------------------------------------------------------------------------------------
# Structure of the formats, just enough to mutate meaningful parts

def png_chunks(data):
    """(offset, length incl. header and CRC, type) of each chunk; stops at damage."""
    out, pos = [], 8
    while pos + 12 <= len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        if pos + 12 + n > len(data):
            break
        out.append((pos, 12 + n, data[pos + 4:pos + 8]))
        pos += 12 + n
    return out


def png_fix_crc(data, chunk_offset):
    n = struct.unpack(">I", data[chunk_offset:chunk_offset + 4])[0]
    body = bytes(data[chunk_offset + 4:chunk_offset + 8 + n])
    data[chunk_offset + 8 + n:chunk_offset + 12 + n] = struct.pack(">I", zlib.crc32(body))


def jpeg_segments(data):
    """(offset, length incl. marker, marker byte) of each marker segment before the scan data."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            out.append((pos, 2, marker))
            pos += 2
            continue
        n = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if pos + 2 + n > len(data):
            break
        out.append((pos, 2 + n, marker))
        if marker == 0xDA:  # SOS: entropy-coded data follows
            break
        pos += 2 + n
    return out


def put_int(data, off, size, value, big_endian):
    if off < 0 or off + size > len(data):
        return False
    fmt = {1: "B", 2: "H", 4: "I"}[size]
    data[off:off + size] = struct.pack((">" if big_endian else "<") + fmt, value & ((1 << (8 * size)) - 1))
    return True


def edit_value(rng, old):
    return rng.choice(INTERESTING + [old + 1, max(old - 1, 0), old * 2, old * 16, old // 2])


# ---------------------------------------------------------------------------------------------
# Mutation operators: each takes (rng, bytearray, ext) and returns a short name of what it did

def op_bit_flip(rng, d, ext):
    if not d:
        return "bitflip-empty"
    n = rng.choice([1, 1, 2, 4, 16])
    for _ in range(n):
        i = rng.randrange(len(d))
        d[i] ^= 1 << rng.randrange(8)
    return f"bitflip{n}"


def op_byte_overwrite(rng, d, ext):
    if not d:
        return "overwrite-empty"
    # Headers matter most: half the time stay inside the first 256 bytes.
    end = min(len(d), 256) if rng.random() < 0.5 else len(d)
    n = rng.choice([1, 2, 4, 8])
    start = rng.randrange(end)
    for i in range(start, min(start + n, len(d))):
        d[i] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    return f"overwrite{n}"


def op_truncate(rng, d, ext):
    if not d:
        return "truncate-empty"
    keep = rng.choice([0, 1, rng.randrange(len(d)), rng.randrange(min(len(d), 64)), len(d) - 1])
    del d[keep:]
    return f"truncate@{keep}"


def pick_unit(rng, d, ext, min_jpeg_length=0):
    """A random PNG chunk or JPEG segment of `d` as (offset, length, name), or None."""
    if ext == "png":
        chunks = png_chunks(d)
        if chunks:
            off, n, kind = rng.choice(chunks)
            return off, n, "chunk-" + kind.decode("latin-1")
    if ext in ("jpg", "jpeg"):
        segs = [s for s in jpeg_segments(d) if s[1] > min_jpeg_length]
        if segs:
            off, n, marker = rng.choice(segs)
            return off, n, f"seg-{marker:02X}"
    return None


def op_duplicate(rng, d, ext):
    """Duplicates a whole PNG chunk / JPEG segment (or a byte range for other formats)."""
    unit = pick_unit(rng, d, ext, min_jpeg_length=2)
    if unit:
        off, n, name = unit
        d[off + n:off + n] = d[off:off + n]
        return "dup" + name
    if len(d) < 2:
        return "dup-short"
    a = rng.randrange(len(d))
    b = min(len(d), a + rng.randrange(1, 512))
    at = rng.randrange(len(d))
    d[at:at] = d[a:b]
    return f"duprange{b - a}"


def op_remove(rng, d, ext):
    """Removes a PNG chunk / JPEG segment (or a byte range)."""
    unit = pick_unit(rng, d, ext)
    if unit:
        off, n, name = unit
        del d[off:off + n]
        return "del" + name
    if len(d) < 2:
        return "del-short"
    a = rng.randrange(len(d))
    del d[a:a + rng.randrange(1, 256)]
    return "delrange"


def op_header_edit(rng, d, ext):
    """Sets one header field (size, depth, colour type, offsets, counts) to an edge value."""
    if ext == "png":
        chunks = png_chunks(d)
        ihdr = next((c for c in chunks if c[2] == b"IHDR"), None)
        if ihdr and rng.random() < 0.8:
            off = ihdr[0] + 8
            field, size = rng.choice([(0, 4), (4, 4), (8, 1), (9, 1), (10, 1), (11, 1), (12, 1)])
            old = int.from_bytes(d[off + field:off + field + size], "big")
            put_int(d, off + field, size, edit_value(rng, old), True)
            png_fix_crc(d, ihdr[0])  # so libpng reaches the edited field instead of the CRC check
            return f"png-ihdr+{field}"
        if chunks:  # a chunk length
            off, n, kind = rng.choice(chunks)
            put_int(d, off, 4, edit_value(rng, n - 12), True)
            return "png-len-" + kind.decode("latin-1")
    if ext in ("jpg", "jpeg"):
        segs = jpeg_segments(d)
        sof = [s for s in segs if s[2] in (0xC0, 0xC1, 0xC2) and s[1] >= 10]
        if sof and rng.random() < 0.6:
            off = sof[0][0]
            field, size = rng.choice([(4, 1), (5, 2), (7, 2), (9, 1), (11, 1), (12, 1)])
            old = int.from_bytes(d[off + field:off + field + size], "big")
            put_int(d, off + field, size, edit_value(rng, old), True)
            return f"jpeg-sof+{field}"
        if segs:  # a segment length, or a byte inside a table (DHT counts, DQT precision, SOS)
            off, n, marker = rng.choice([s for s in segs if s[1] > 2] or segs)
            if n > 4 and rng.random() < 0.5:
                i = off + 4 + rng.randrange(n - 4)
                d[i] = edit_value(rng, d[i]) & 0xFF
                return f"jpeg-body-{marker:02X}"
            put_int(d, off + 2, 2, edit_value(rng, n - 2), True)
            return f"jpeg-len-{marker:02X}"
    if ext == "bmp" and len(d) >= 54:
        field, size = rng.choice([(2, 4), (10, 4), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2),
                                  (30, 4), (34, 4), (46, 4)])
        old = int.from_bytes(d[field:field + size], "little")
        put_int(d, field, size, edit_value(rng, old), False)
        return f"bmp+{field}"
    if ext == "gif" and len(d) >= 13:
        # Logical screen size / flags, or an image descriptor's size.
        descs = [i for i in range(13, len(d) - 10) if d[i] == 0x2C]
        if descs and rng.random() < 0.5:
            off = rng.choice(descs) + 1 + rng.choice([0, 2, 4, 6])
            put_int(d, off, 2, edit_value(rng, int.from_bytes(d[off:off + 2], "little")), False)
            return "gif-desc"
        field = rng.choice([6, 8, 10])
        size = 1 if field == 10 else 2
        put_int(d, field, size, edit_value(rng, int.from_bytes(d[field:field + size], "little")), False)
        return f"gif+{field}"
    if ext in ("tif", "tiff") and len(d) >= 8:
        be = d[:2] == b"MM"
        ifd = int.from_bytes(d[4:8], "big" if be else "little")
        if ifd + 2 <= len(d):
            n = int.from_bytes(d[ifd:ifd + 2], "big" if be else "little")
            if n and rng.random() < 0.85:
                e = ifd + 2 + 12 * rng.randrange(n)
                field, size = rng.choice([(2, 2), (4, 4), (8, 4), (8, 2)])
                if e + field + size <= len(d):
                    old = int.from_bytes(d[e + field:e + field + size], "big" if be else "little")
                    put_int(d, e + field, size, edit_value(rng, old), be)
                    return f"tiff-ifd+{field}"
        put_int(d, 4, 4, edit_value(rng, ifd), be)
        return "tiff-ifdoff"
    if ext == "webp" and len(d) >= 30:
        field, size = rng.choice([(4, 4), (16, 4), (26, 2), (28, 2), (21, 4)])
        put_int(d, field, size, edit_value(rng, int.from_bytes(d[field:field + size], "little")), False)
        return f"webp+{field}"
    if ext in ("pgm", "ppm", "pnm", "pbm"):
        # Rewrite one header number (width, height or maxval) as text.
        text = bytes(d[:64])
        nums, i = [], 2
        while i < len(text) and len(nums) < 3:
            if text[i:i + 1] == b"#":
                while i < len(text) and text[i:i + 1] != b"\n":
                    i += 1
            elif text[i:i + 1].isdigit():
                j = i
                while j < len(text) and text[j:j + 1].isdigit():
                    j += 1
                nums.append((i, j))
                i = j
            else:
                i += 1
        if nums:
            a, b = rng.choice(nums)
            new = str(rng.choice([0, 1, 255, 256, 65535, 65536, 99999999, 2 ** 31, 2 ** 63])).encode()
            d[a:b] = new
            return "pnm-header"
    return op_byte_overwrite(rng, d, ext)


OPERATORS = [op_bit_flip, op_byte_overwrite, op_truncate, op_duplicate, op_remove, op_header_edit]
WEIGHTS = [3, 3, 2, 2, 1, 4]


def mutate(rng, data, ext):
    d = bytearray(data)
    names = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op = rng.choices(OPERATORS, WEIGHTS)[0]
        names.append(op(rng, d, ext))
        if not d:
            break
    return bytes(d), names


# ---------------------------------------------------------------------------------------------
# Scanning

def run_cli(cmd, timeout):
    """One vislint command; returns (outcome, detail, seconds, stdout). outcome: ok|error|crash|hang."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hang", f"no exit after {timeout} s", time.monotonic() - t0, ""
    dt = time.monotonic() - t0
    err = p.stderr.strip().splitlines()
    last = err[-1] if err else ""
    if p.returncode == 0:
        return "ok", "", dt, p.stdout
    if p.returncode > 0 and p.returncode != 3 and last.startswith("vislint: error:"):
        return "error", last, dt, p.stdout
    what = f"signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
    return "crash", f"{what}: {last[:300]}", dt, p.stdout


def run_scan(vislint, inputs, work, threads, timeout, report=False):
    shutil.rmtree(work, ignore_errors=True)
    cmd = [vislint, "scan", *inputs, "-o", work, "--model", "none", "-q"]
    if not report:
        cmd.append("--no-report")
    if threads is not None:
        cmd += ["--threads", str(threads)]
    return run_cli(cmd, timeout)[:3]


def read_rows(work):
    """{path: [(status, error), ...]} from the images table (a list, to see repeated rows), and
    the paths whose text is not valid UTF-8 (SQLite TEXT is UTF-8 to every reader: Python,
    pandas, the JSON writers)."""
    db = sqlite3.connect(f"file:{os.path.join(work, 'vislint.db')}?mode=ro", uri=True)
    db.text_factory = bytes
    try:
        rows, bad_text = {}, set()
        for raw in db.execute("SELECT path, status, error FROM images"):
            text = []
            for v in raw:
                try:
                    text.append(v.decode("utf-8") if v is not None else "")
                except UnicodeDecodeError:
                    text.append(v.decode("utf-8", errors="replace"))
                    bad_text.add(raw[0].decode("utf-8", errors="replace"))
            path, status, error = text
            rows.setdefault(os.path.abspath(path), []).append((status, error))
        return rows, bad_text
    finally:
        db.close()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", required=True, help="folder of real image files to mutate")
    ap.add_argument("--vislint", required=True, help="the vislint command to test")
    ap.add_argument("--out", required=True, help="scratch folder (emptied)")
    ap.add_argument("--count", type=int, default=1000, help="mutated files to make")
    ap.add_argument("--seed", type=int, default=20261201, help="random seed of the mutations")
    ap.add_argument("--seconds", type=float, default=150,
                    help="time budget; one-file scans stop when it is spent")
    ap.add_argument("--batch-timeout", type=float, default=180, help="hang limit of a batch scan (s)")
    ap.add_argument("--single-timeout", type=float, default=20, help="hang limit of a one-file scan (s)")
    ap.add_argument("--jobs", type=int, default=2, help="one-file scans run at once")
    ap.add_argument("--crashes", help="copy inputs of crashing / hanging one-file scans here")
    ap.add_argument("--json", help="write the summary here")
    args = ap.parse_args()

    t_start = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rng = random.Random(args.seed)
    vislint = os.path.abspath(args.vislint)
    if not os.access(vislint, os.X_OK):
        sys.exit(f"mutate_scan.py: the vislint command is not executable: {vislint} (run `make install`)")
    seeds = sorted(os.path.join(args.seeds, f) for f in os.listdir(args.seeds))
    seeds = [s for s in seeds if os.path.isfile(s)]
    if not seeds:
        sys.exit(f"mutate_scan.py: no seed files in {args.seeds}")

    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    if args.crashes:
        shutil.rmtree(args.crashes, ignore_errors=True)
    files_dir = os.path.join(out, "files")
    os.makedirs(files_dir)

    # The unmodified seeds go in too: they are the files a state leak turns into false failures.
    ops = {}
    for i, s in enumerate(seeds):
        name = f"s{i:03d}_orig_{os.path.basename(s)}"
        shutil.copyfile(s, os.path.join(files_dir, name))
        ops[name] = ["none"]
    seed_bytes = [(s, open(s, "rb").read()) for s in seeds]
    for i in range(args.count):
        src, data = rng.choice(seed_bytes)
        base = os.path.basename(src)
        ext = base.rsplit(".", 1)[-1].lower()
        mutated, names = mutate(rng, data, ext)
        name = f"m{i:05d}_{base}"
        with open(os.path.join(files_dir, name), "wb") as f:
            f.write(mutated)
        ops[name] = names
    names = sorted(ops)
    paths = {n: os.path.join(files_dir, n) for n in names}
    digests = {n: sha256(paths[n]) for n in names}

    shuffled = names[:]
    rng.shuffle(shuffled)
    list_file = os.path.join(out, "shuffled.txt")
    with open(list_file, "w") as f:
        f.write("".join(paths[n] + "\n" for n in shuffled))

    crashes, hangs, run_errors, row_problems = [], [], [], []
    bad_text = {}  # file -> first run whose row has non-UTF-8 text
    status = {n: {} for n in names}       # file -> {run name: status}
    error_text = {n: {} for n in names}   # file -> {run name: error}
    scans = {}

    def record(run, outcome, detail, dt, files, work):
        scans[run] = {"outcome": outcome, "seconds": round(dt, 2), "files": len(files)}
        entry = {"run": run, "detail": detail}
        if files:
            entry["files"] = files if len(files) <= 5 else len(files)
        if outcome == "crash":
            crashes.append(entry)
        elif outcome == "hang":
            hangs.append(entry)
        elif outcome == "error":
            run_errors.append(entry)
        if outcome != "ok" or not files:
            return
        rows, bad = read_rows(work)
        for p in sorted(bad):
            if p not in bad_text:
                bad_text[p] = run
        for n in files:
            got = rows.get(paths[n], [])
            if len(got) != 1:
                row_problems.append({"run": run, "file": n, "rows": len(got)})
            if got:
                status[n][run] = got[0][0]
                error_text[n][run] = got[0][1]
        extra = set(rows) - {paths[n] for n in files}
        for p in sorted(extra):
            row_problems.append({"run": run, "file": p, "rows": len(rows[p]), "note": "not an input"})

    batches = [("dir_threads0", [files_dir], 0), ("dir_threads1", [files_dir], 1),
               ("dir_threads2", [files_dir], 2), ("shuffled_threads1", [list_file], 1),
               ("shuffled_threads2", [list_file], 2)]
    for run, inputs, threads in batches:
        work = os.path.join(out, "work_" + run)
        outcome, detail, dt = run_scan(vislint, inputs, work, threads, args.batch_timeout)
        record(run, outcome, detail, dt, names, work)
        print(f"mutate_scan.py: {run}: {outcome} in {dt:.1f} s {detail}", flush=True)

    # The commands that read a work dir back, over the first batch's results: they see the
    # damaged files' error texts and must neither fail nor print broken JSON.
    work0 = os.path.join(out, "work_" + batches[0][0])
    if scans[batches[0][0]]["outcome"] == "ok":
        readers = [("issues_json", ["issues", work0, "--format", "json"], True),
                   ("issues_csv", ["issues", work0, "--format", "csv"], False),
                   ("stats_json", ["stats", work0, "--format", "json"], True),
                   ("report", ["report", work0, "-q"], False)]
        for run, cmd, is_json in readers:
            outcome, detail, dt, stdout = run_cli([vislint, *cmd], args.batch_timeout)
            if outcome == "ok" and is_json:
                try:
                    json.loads(stdout)
                except ValueError as e:
                    outcome, detail = "crash", f"output is not JSON: {e}"
            record(run, outcome, detail, dt, [], work0)
            print(f"mutate_scan.py: {run}: {outcome} in {dt:.1f} s {detail}", flush=True)

    # One file per scan: first the files the batches disagree on, then the rest in random order,
    # as long as the time budget lasts.
    def varies(n):
        return len(set(status[n].values())) > 1
    order = [n for n in shuffled if varies(n)] + [n for n in shuffled if not varies(n)]
    singles_done = 0

    def single(n):
        work = os.path.join(out, "single", n)
        res = run_scan(vislint, [paths[n]], work, 1, args.single_timeout)
        return n, work, res

    deadline = t_start + args.seconds
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        pending = set()
        it = iter(order)
        while True:
            while len(pending) < max(1, args.jobs) and time.monotonic() < deadline:
                n = next(it, None)
                if n is None:
                    break
                pending.add(pool.submit(single, n))
            if not pending:
                break
            done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in done:
                n, work, (outcome, detail, dt) = fut.result()
                singles_done += 1
                record("alone", outcome, detail, dt, [n], work)
                if outcome in ("crash", "hang") and args.crashes:
                    os.makedirs(args.crashes, exist_ok=True)
                    shutil.copyfile(paths[n], os.path.join(args.crashes, n))
                shutil.rmtree(work, ignore_errors=True)
    scans.pop("alone", None)
    scans["alone"] = {"files": singles_done}

    disagreements = []
    for n in names:
        if varies(n):
            disagreements.append({"file": n, "mutations": ops[n], "status": status[n],
                                  "error": {r: e for r, e in error_text[n].items() if e}})
    modified = [n for n in names if not os.path.exists(paths[n]) or sha256(paths[n]) != digests[n]]

    summary = {
        "date": started,
        "seconds": round(time.monotonic() - t_start, 1),
        "seed": args.seed,
        "files_tried": len(names),
        "mutated": args.count,
        "unmodified_seeds": len(seeds),
        "scanned_alone": singles_done,
        "batch_scans": len(batches),
        "runs": scans,
        "crashes": crashes,
        "hangs": hangs,
        "run_errors": run_errors,
        "row_problems": row_problems,
        "disagreements": disagreements,
        "inputs_modified": modified,
        "non_utf8_text": [{"file": p, "run": r} for p, r in sorted(bad_text.items())],
    }
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)

    print(f"mutate_scan.py: {len(names)} files tried ({args.count} mutated, {len(seeds)} unmodified), "
          f"{singles_done} also scanned alone, {summary['seconds']} s")
    print(f"  crashes: {len(crashes)}  hangs: {len(hangs)}  run errors: {len(run_errors)}  "
          f"row-count problems: {len(row_problems)}  disagreements: {len(disagreements)}  "
          f"inputs modified: {len(modified)}  rows with non-UTF-8 text: {len(bad_text)}")
    for e in crashes + hangs + run_errors:
        print(f"  {e['run']}: {e['detail']}" + (f" ({e['files']})" if "files" in e else ""))
    for p, r in sorted(bad_text.items())[:10]:
        print(f"  non-UTF-8 text in the images row of {p} ({r})")
    for p in row_problems[:20]:
        print(f"  rows: {p}")
    for dis in disagreements[:40]:
        runs = ", ".join(f"{r}={s}" for r, s in sorted(dis["status"].items()))
        print(f"  disagreement: {dis['file']} [{'+'.join(dis['mutations'])}]: {runs}")
    if len(disagreements) > 40:
        print(f"  ... {len(disagreements) - 40} more in {args.json or 'the JSON'}")


if __name__ == "__main__":
    main()
