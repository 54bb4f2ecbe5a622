"""Embeddings-only mode: `vislint scan --embeddings EMB.npy --names NAMES.txt -o WORK`, items are
names (never opened) with the user's vectors."""
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

import vislint
from conftest import run_cli


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_set(n_clusters=6, per_cluster=40, d=48, seed=3):
    """Clustered vectors with planted near copies, one far outlier, class labels (one flipped)
    and train/val splits with one leak. Names look like what users have: URLs, keys, ids."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(n_clusters, d)))
    x, cls = [], []
    for c in range(n_clusters):
        x.append(unit(centres[c] + rng.normal(scale=0.9 / np.sqrt(d), size=(per_cluster, d)) * 1.0))
        cls += [c] * per_cluster
    x = np.concatenate(x)
    n = len(x)
    names = [f"s3://bucket/photos/{i:05d}.jpg" if i % 3 else f"id-{i}" for i in range(n)]
    copies = []
    for src in rng.choice(n, 5, replace=False):
        x = np.vstack([x, unit(x[src] + rng.normal(scale=0.02, size=d))])
        cls.append(cls[src])
        names.append(f"copy of {names[src]}")
        copies.append((names[src], names[-1]))
    x = np.vstack([x, unit(rng.normal(size=d))])  # the outlier: far from every cluster
    cls.append(0)
    names.append("https://example.org/odd one.png")
    splits = ["val" if i % 10 == 0 else "train" for i in range(len(names))]
    # One leak: a copy in val whose original is in train (the other copies stay within train).
    for a, b in copies[1:]:
        splits[names.index(a)] = splits[names.index(b)] = "train"
    leak_orig, leak_copy = copies[0]
    splits[names.index(leak_orig)] = "train"
    splits[names.index(leak_copy)] = "val"
    labels = [f"class{c}" for c in cls]
    flipped = names[7]
    labels[7] = "class5" if labels[7] != "class5" else "class4"
    return x.astype(np.float32), names, labels, splits, copies, flipped


@pytest.fixture(scope="module")
def emb_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("emb")
    x, names, labels, splits, copies, flipped = make_set()
    np.save(root / "emb.npy", x.astype(np.float16))
    (root / "names.txt").write_text("".join(n + "\n" for n in names))
    pd.DataFrame({"path": names, "label": labels, "split": splits}).to_csv(root / "labels.csv", index=False)
    return root, x, names, copies, flipped


@pytest.fixture(scope="module")
def emb_scan(emb_files, tmp_path_factory):
    root, x, names, copies, flipped = emb_files
    work = tmp_path_factory.mktemp("embwork") / "w"
    run_cli("scan", "--embeddings", root / "emb.npy", "--names", root / "names.txt",
            "--labels", root / "labels.csv", "-o", work, "-q")
    return work, vislint.load(work)


def test_finds_copies_outlier_label_issue_and_leak(emb_files, emb_scan):
    root, x, names, copies, flipped = emb_files
    work, scan = emb_scan
    images = scan.images()
    assert sorted(images["path"]) == sorted(names)  # stored verbatim
    near = scan.issues("near_duplicate")
    found = {frozenset(p) for p in zip(near["path"], near["other_path"])}
    assert {frozenset(c) for c in copies} <= found
    assert len(found) == len(copies)  # nothing but the planted copies
    assert (near["score"] >= 0.9).all()
    out = scan.outliers()
    assert out["path"].iloc[0] == "https://example.org/odd one.png"
    assert "https://example.org/odd one.png" in set(scan.issues("outlier")["path"])
    assert flipped in set(scan.issues("label_issue")["path"])
    leaks = scan.issues("leak")
    assert {frozenset(p) for p in zip(leaks["path"], leaks["other_path"])} == {frozenset(copies[0])}
    # No pixels: no quality rows, no exact duplicates from empty hashes.
    types = set(scan.issues()["type"])
    assert types <= {"near_duplicate", "outlier", "label_issue", "leak"}
    run = scan.run
    assert run["options"]["embeddings"].endswith("emb.npy")
    assert (work / "report" / "index.html").is_file()


def test_features_are_the_normalised_rows_and_vector_search_works(emb_files, emb_scan):
    root, x, names, copies, flipped = emb_files
    work, scan = emb_scan
    feats = np.load(work / "features.npy")
    ids = scan.images().set_index("path")["id"]
    want = unit(x.astype(np.float16).astype(np.float32))
    got = feats[[int(ids[n]) for n in names]].astype(np.float32)
    assert np.abs(got - want).max() < 2e-3
    hits = scan.similar(x[names.index(copies[1][0])], k=2)
    assert set(hits["path"]) == set(copies[1])
    p = run_cli("similar", work, root / "emb.npy", check=False)
    assert p.returncode != 0 and "--embeddings" in p.stderr and "vector" in p.stderr


def test_rescan_reuses_and_a_changed_file_reimports(emb_files, tmp_path):
    root, x, names, copies, flipped = emb_files
    work = tmp_path / "w"
    args = ["scan", "--embeddings", root / "emb.npy", "--names", root / "names.txt", "-o", work, "-q"]
    run_cli(*args)
    first = json.loads((work / "run.json").read_text())["counts"]
    run_cli(*args)
    second = json.loads((work / "run.json").read_text())["counts"]
    assert first["analysed"] == len(names) and second["analysed"] == 0 and second["reused"] == len(names)
    y = x.copy()
    y[0] = -y[0]
    np.save(tmp_path / "emb2.npy", y)
    run_cli("scan", "--embeddings", tmp_path / "emb2.npy", "--names", root / "names.txt", "-o", work, "-q")
    third = json.loads((work / "run.json").read_text())["counts"]
    assert third["analysed"] == 1  # the changed row alone (the import is updated row by row)
    feats = np.load(work / "features.npy")
    with sqlite3.connect(work / "vislint.db") as db:
        row = db.execute("SELECT id FROM images WHERE path = ?", (names[0],)).fetchone()[0]
    assert np.dot(feats[row].astype(np.float32), unit(y[0])) > 0.999


def issue_rows(work):
    with sqlite3.connect(work / "vislint.db") as db:
        rows = db.execute("SELECT i.type, a.path, b.path, i.score, i.detail FROM issues i "
                          "JOIN images a ON a.id = i.image_id LEFT JOIN images b ON b.id = i.other_id").fetchall()
    out = []
    for t, a, b, s, d in rows:
        if t in ("near_duplicate", "exact_duplicate", "leak"):  # a pair is unordered (as in test_incremental)
            a, b = sorted((a, b))
        out.append((t, a, b or "", round(s, 4), d))
    return sorted(out)


def test_appended_changed_and_removed_rows_update_the_import_and_the_index(emb_files, tmp_path):
    """Adding rows to EMB.npy and NAMES.txt re-imports only the new rows and adds them to the
    saved kNN index; the issue rows are those of a fresh scan of the same files. Rows cut from the
    end leave the index; a renamed row makes a fresh import."""
    root, x, names, copies, flipped = emb_files
    labels = root / "labels.csv"

    def files(tag, vecs, nms):
        np.save(tmp_path / f"{tag}.npy", vecs.astype(np.float16))
        (tmp_path / f"{tag}.txt").write_text("".join(n + "\n" for n in nms))
        return ["--embeddings", tmp_path / f"{tag}.npy", "--names", tmp_path / f"{tag}.txt", "--labels", labels]

    def scan_into(work, args):
        run_cli("scan", *args, "-o", work, "-q", "--no-report")
        return json.loads((work / "run.json").read_text())

    n = len(names)
    work = tmp_path / "w"
    # The first scan leaves out the last 12 rows: two planted copies and the outlier among them.
    first = scan_into(work, files("part", x[: n - 12], names[: n - 12]))
    assert first["counts"]["analysed"] == n - 12
    full_args = files("full", x, names)
    grown = scan_into(work, full_args)
    assert grown["counts"]["analysed"] == 12 and grown["counts"]["images"] == n
    assert grown["counts"]["reused"] == n - 12 and grown["counts"]["removed"] == 0
    assert "updated: 12 added, 0 retired" in grown["index"], grown["index"]
    fresh = scan_into(tmp_path / "fresh", full_args)
    assert fresh["counts"]["analysed"] == n
    assert issue_rows(work) == issue_rows(tmp_path / "fresh")
    assert "https://example.org/odd one.png" in {r[1] for r in issue_rows(work) if r[0] == "outlier"}

    # One vector changed in place, and the last 5 rows cut: 1 row re-imported, 5 + 1 retired.
    y = x[: n - 5].copy()
    y[3] = x[200]  # now a copy of row 200
    cut_args = files("cut", y, names[: n - 5])
    cut = scan_into(work, cut_args)
    assert cut["counts"]["analysed"] == 1 and cut["counts"]["images"] == n - 5
    assert cut["counts"]["reused"] == n - 6 and cut["counts"]["removed"] == 5
    assert "updated: 1 added, 6 retired" in cut["index"], cut["index"]
    scan_into(tmp_path / "fresh2", cut_args)
    assert issue_rows(work) == issue_rows(tmp_path / "fresh2")
    pair = {frozenset((r[1], r[2])) for r in issue_rows(work) if r[0] == "near_duplicate"}
    assert frozenset((names[3], names[200])) in pair
    assert np.load(work / "features.npy").shape == (n - 5, x.shape[1])

    # A renamed row is another item: the import starts again.
    renamed = list(names[: n - 5])
    renamed[10] = "renamed.jpg"
    again = scan_into(work, files("renamed", y, renamed))
    assert again["counts"]["analysed"] == n - 5
    assert "renamed.jpg" in set(vislint.load(work).images()["path"])


@pytest.mark.parametrize("fault", ["import_rows:1", "knn_saved:1"])
def test_an_update_killed_midway_resumes_to_a_fresh_scans_rows(emb_files, tmp_path, fault):
    """Killed after a changed row's image row is committed but before its vector is written, or
    after the updated index is saved but before the database commits: the next scan ends with
    the rows of a fresh scan of the same files."""
    import os
    import signal
    import subprocess
    from conftest import VISLINT

    root, x, names, copies, flipped = emb_files
    n = len(names)

    def files(tag, vecs, nms):
        np.save(tmp_path / f"{tag}.npy", vecs.astype(np.float16))
        (tmp_path / f"{tag}.txt").write_text("".join(s + "\n" for s in nms))
        return ["--embeddings", tmp_path / f"{tag}.npy", "--names", tmp_path / f"{tag}.txt",
                "--labels", root / "labels.csv", "--no-report", "-q"]

    work = tmp_path / "w"
    run_cli("scan", *files("part", x[: n - 6], names[: n - 6]), "-o", work)
    y = x.copy()
    y[3] = x[200]  # changed in place (now a copy of row 200), and 6 rows appended
    args = files("full", y, names)
    killed = subprocess.run([VISLINT, "scan", *map(str, args), "-o", str(work)], capture_output=True, text=True,
                            env={**os.environ, "VISLINT_FAULT": fault}, timeout=300)
    assert killed.returncode == -signal.SIGABRT, killed.stderr
    run_cli("scan", *args, "-o", work)
    run_cli("scan", *args, "-o", tmp_path / "fresh")
    assert issue_rows(work) == issue_rows(tmp_path / "fresh")
    feats = np.load(work / "features.npy").astype(np.float32)
    assert feats.shape[0] == n and np.dot(feats[3], unit(y[3].astype(np.float16).astype(np.float32))) > 0.999


def test_python_arrays_names_and_dataframe_labels(emb_files, tmp_path):
    root, x, names, copies, flipped = emb_files
    labels = pd.read_csv(root / "labels.csv")
    scan = vislint.scan(embeddings=x, names=names, work_dir=tmp_path / "w", labels=labels, progress=False)
    found = {frozenset(p) for p in zip(scan.issues("near_duplicate")["path"],
                                       scan.issues("near_duplicate")["other_path"])}
    assert {frozenset(c) for c in copies} <= found
    assert flipped in set(scan.issues("label_issue")["path"])
    assert not list((tmp_path / "w").glob(".input-*"))  # the temporary files are gone
    with pytest.raises(vislint.VislintError, match="float16 or float32"):
        vislint.scan(embeddings=x.astype(np.float64), names=names, work_dir=tmp_path / "w2", progress=False)
    with pytest.raises(vislint.VislintError, match="line break"):
        vislint.scan(embeddings=x, names=["a\nb"] + names[1:], work_dir=tmp_path / "w2", progress=False)


@pytest.mark.parametrize("case, message", [
    ("rows", "has 4 name(s) but"),
    ("nan", "row 2 ('c') has NaN"),
    ("zero", "row 1 ('b') is all zeros"),
    ("float64", "float64"),
    ("3d", "2-D"),
    ("not_npy", "not a NumPy .npy file"),
    ("empty_name", "names.txt:2: empty name"),
    ("repeat", "names.txt:3: name 'a' repeats line 1"),
])
def test_bad_embeddings_or_names_are_clear_errors(tmp_path, case, message):
    x = unit(np.random.default_rng(0).normal(size=(5, 8))).astype(np.float32)
    names = ["a", "b", "c", "d", "e"]
    if case == "rows":
        names = names[:4]
    elif case == "nan":
        x[2, 3] = np.nan
    elif case == "zero":
        x[1] = 0
    elif case == "empty_name":
        names[1] = ""
    elif case == "repeat":
        names[2] = "a"
    emb = tmp_path / "emb.npy"
    if case == "float64":
        np.save(emb, x.astype(np.float64))
    elif case == "3d":
        np.save(emb, x.reshape(5, 2, 4))
    elif case == "not_npy":
        emb.write_text("not numpy\n")
    else:
        np.save(emb, x)
    (tmp_path / "names.txt").write_text("".join(n + "\n" for n in names))
    work = tmp_path / "w"
    p = run_cli("scan", "--embeddings", emb, "--names", tmp_path / "names.txt", "-o", work, check=False)
    assert p.returncode != 0
    assert message in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and "internal" not in p.stderr.lower()


def test_option_mistakes_are_refused(tmp_path, corpus):
    root, _ = corpus
    x = unit(np.random.default_rng(0).normal(size=(3, 8))).astype(np.float32)
    np.save(tmp_path / "emb.npy", x)
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    base = ["scan", "--embeddings", tmp_path / "emb.npy", "-o", tmp_path / "w"]
    for extra, message in [(["--names", tmp_path / "names.txt", "--model", "none"], "replaces the model"),
                           ([], "needs --names"),
                           (["--names", tmp_path / "names.txt", root], "not both"),
                           (["--names", tmp_path / "names.txt", "--labels", "folder"], "need images")]:
        p = run_cli(*base, *extra, check=False)
        assert p.returncode != 0 and message in p.stderr, (extra, p.stderr)
    p = run_cli("scan", root, "--names", tmp_path / "names.txt", "-o", tmp_path / "w", check=False)
    assert p.returncode != 0 and "--names goes with --embeddings" in p.stderr


def test_precomputed_vectors_for_images(corpus, tmp_path):
    """`scan LIST.txt --embeddings EMB.npy`: the images are still decoded (stats, hashes, broken
    files), and row i of EMB.npy replaces the model's vector of the list's i-th path."""
    root, _ = corpus
    exts = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
    paths = sorted(str(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(p + "\n" for p in paths))
    run_cli("scan", listing, "-o", tmp_path / "model", "-q")
    model = vislint.load(tmp_path / "model")
    ids = model.images().set_index("path")["id"]
    feats = np.load(tmp_path / "model" / "features.npy").astype(np.float32)
    rng = np.random.default_rng(5)
    emb = np.stack([feats[int(ids[p])] if feats[int(ids[p])].any() else unit(rng.normal(size=feats.shape[1]))
                    for p in paths]).astype(np.float32)
    # Two unrelated images get one vector: only the given vectors can pair them.
    near = model.issues("near_duplicate")
    exact = model.issues("exact_duplicate")
    paired = set(near["path"]) | set(near["other_path"]) | set(exact["path"]) | set(exact["other_path"])
    ok = set(model.images().query("status == 'ok'")["path"])
    a, b = [p for p in paths if p in ok and p not in paired][:2]
    emb[paths.index(b)] = emb[paths.index(a)]
    np.save(tmp_path / "emb.npy", emb)
    run_cli("scan", listing, "--embeddings", tmp_path / "emb.npy", "-o", tmp_path / "given", "-q")
    given = vislint.load(tmp_path / "given")

    def rows(s, kind):
        i = s.issues(kind)
        return {(p, o) for p, o in zip(i["path"], i["other_path"].fillna(""))}
    for kind in ("broken", "exact_duplicate", "blurry", "dark", "bright", "low_information", "odd_size"):
        assert rows(given, kind) == rows(model, kind), kind  # decoded exactly as before
    assert rows(model, "broken")
    pairs_model = {frozenset(p) for p in rows(model, "near_duplicate")}
    pairs_given = {frozenset(p) for p in rows(given, "near_duplicate")}
    assert pairs_given == pairs_model | {frozenset((a, b))}, (a, b)
    assert given.run["counts"]["analysed"] == len(paths)

    # Row count, repeated entries and anything but one list file are refused.
    np.save(tmp_path / "short.npy", emb[:-1])
    p = run_cli("scan", listing, "--embeddings", tmp_path / "short.npy", "-o", tmp_path / "w3", check=False)
    assert p.returncode != 0 and f"lists {len(paths)} path(s) but" in p.stderr
    p = run_cli("scan", root, "--embeddings", tmp_path / "emb.npy", "-o", tmp_path / "w3", check=False)
    assert p.returncode != 0 and "exactly one list file" in p.stderr
    twice = tmp_path / "twice.txt"
    twice.write_text("".join(p + "\n" for p in paths[:-1] + [paths[0]]))
    p = run_cli("scan", twice, "--embeddings", tmp_path / "emb.npy", "-o", tmp_path / "w3", check=False)
    assert p.returncode != 0 and "listed twice" in p.stderr
