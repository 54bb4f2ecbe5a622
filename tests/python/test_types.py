"""Readers return the stored values with the types `vislint stats` prints: integers as nullable
Int64 (never floats, with or without broken files), 64-bit hashes as 16 hex digits, reals as
float64; `stats --format json` writes numbers as numbers and NULL as null."""
import csv
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest

import vislint
import vislint.testing as vt
from conftest import run_cli


@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    """Eight real images of sizes the test chooses, an exact copy, and a truncated PNG (a NULL
    width, phash, ... in the middle of the table), scanned by the CLI (hash-only)."""
    root = tmp_path_factory.mktemp("types") / "data"
    root.mkdir()
    sizes = {}
    for i, p in enumerate(vt.clipart_paths(8, seed=21)):
        im = vt.load_rgb(p).resize((101 + 37 * i, 67 + 29 * i))
        name = f"img{i}.png"
        im.save(root / name)
        sizes[name] = im.size
    shutil.copyfile(root / "img2.png", root / "img2_copy.png")
    sizes["img2_copy.png"] = sizes["img2.png"]
    data = (root / "img5.png").read_bytes()
    (root / "img4_cut.png").write_bytes(data[: len(data) // 3])
    work = tmp_path_factory.mktemp("typesw") / "w"
    run_cli("scan", root, "-o", work, "--model", "none", "-q")
    return root, work, sizes


def test_images_hashes_and_sizes_are_exact(typed):
    root, work, sizes = typed
    images = vislint.load(work).images()
    assert len(images) == 10
    stats = {r["path"]: r for r in csv.DictReader(io.StringIO(run_cli("stats", work, "--format", "csv").stdout))}
    assert set(stats) == set(images["path"])
    # The hashes use all 64 bits: a float64 could not hold them (what the reader used to return).
    signed = [int(h, 16) - (1 << 64) * (int(h, 16) >> 63) for h in (r["phash"] for r in stats.values()) if h]
    assert sum(float(v) != v for v in signed) >= 5
    for _, row in images.iterrows():
        s = stats[row["path"]]
        for col in ("phash", "dhash", "file_hash"):
            assert (s[col] or None) == row[col], (row["path"], col)
        for col in ("width", "height", "file_size"):
            assert s[col] == ("" if row[col] is pd.NA else str(row[col])), (row["path"], col)
        if row["phash"] is not None:
            assert len(row["phash"]) == 16 and len(row["file_hash"]) == 32

    for col in ("id", "width", "height", "channels", "bit_depth", "file_size", "mtime_ns", "orientation"):
        assert str(images[col].dtype) == "Int64", col
    for col in ("brightness", "contrast", "blur", "entropy", "saturation", "colour_fraction"):
        assert images[col].dtype == np.float64, col
    assert str(images["is_grayscale"].dtype) == "boolean"
    by = images.set_index(images["path"].map(lambda p: p.rsplit("/", 1)[1]))
    for name, (w, h) in sizes.items():
        assert by.loc[name, "width"] == w and by.loc[name, "height"] == h
        assert by.loc[name, "file_size"] == (root / name).stat().st_size
    cut = by.loc["img4_cut.png"]
    assert cut["status"] == "truncated"
    assert cut["width"] is pd.NA and cut["phash"] is None and np.isnan(cut["brightness"])
    assert cut["is_grayscale"] is pd.NA


def test_other_readers_keep_integer_columns_integer(typed):
    _, work, _ = typed
    scan = vislint.load(work)
    dups = scan.duplicates()
    assert str(dups["group"].dtype) == "Int64" and dups["score"].dtype == np.float64
    groups = scan.duplicate_groups()
    assert str(groups["group"].dtype) == "Int64" and groups["is_keeper"].sum() == 1
    issues = scan.issues()
    assert issues["score"].dtype == np.float64 and issues["threshold"].dtype == np.float64
    broken = issues[issues["type"] == "broken"]
    assert len(broken) == 1 and broken["threshold"].isna().all() and broken["other_path"].isna().all()
    summary = scan.summary().set_index("type")["count"]
    assert summary["broken"] == 1 and summary["exact_duplicate"] == 1


def test_stats_json_writes_numbers_as_numbers(typed):
    _, work, sizes = typed
    rows = json.loads(run_cli("stats", work, "--format", "json").stdout)
    by = {r["path"].rsplit("/", 1)[1]: r for r in rows}
    for name, (w, h) in sizes.items():
        r = by[name]
        assert type(r["width"]) is int and (r["width"], r["height"]) == (w, h)
        assert type(r["file_size"]) is int and type(r["channels"]) is int
        assert type(r["brightness"]) is float and type(r["blur"]) is float
        assert type(r["is_grayscale"]) is int
        assert type(r["phash"]) is str and len(r["phash"]) == 16
        assert r["status"] == "ok" and r["error"] is None
    cut = by["img4_cut.png"]
    assert cut["width"] is None and cut["brightness"] is None and cut["phash"] is None
    assert cut["status"] == "truncated" and cut["error"].startswith("truncated")
    assert type(cut["file_size"]) is int and cut["file_size"] > 0
    # the CSV shows the same values
    table = {r["path"].rsplit("/", 1)[1]: r
             for r in csv.DictReader(io.StringIO(run_cli("stats", work, "--format", "csv").stdout))}
    for name, r in by.items():
        assert str(r["width"] if r["width"] is not None else "") == table[name]["width"]
        assert (r["phash"] or "") == table[name]["phash"]
