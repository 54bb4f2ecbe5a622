"""Work-dir safety on real images: crash consistency (kill at every stage, SIGTERM), the writer's
lock, read-only work dirs, unfinished runs, damaged databases, leftovers and symlinks into the
work dir."""
import fcntl
import gzip
import json
import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vislint
import vislint.testing
from conftest import VISLINT, run_cli

# A small input size keeps the ~17 model scans of this file fast; every run uses the same
# options, so results compare like for like. Batch size 1: an image's embedding never depends on
# which images shared its batch.
MODEL_OPTS = ["--threads", "2", "--batch-size", "1", "--model-size", "128", "-q"]
COMMIT_EVERY = "8"  # VISLINT_FAULT_COMMIT_EVERY: commits land between the kills below


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """~55 files: openclipart images with planted exact / near duplicates, quality and broken
    files (vislint.testing), plus a foreign image (Fashion-MNIST) for an outlier."""
    root = tmp_path_factory.mktemp("wd") / "data"
    vislint.testing.make_dataset(root, n_base=20, seed=5)
    with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") as f:
        pixels = np.frombuffer(f.read(16 + 784), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    (root / "foreign").mkdir()
    for i, p in enumerate(pixels):
        Image.fromarray(p).resize((112, 112)).save(root / "foreign" / f"fashion{i}.png")
    return root


def run(*args, env=None):
    return subprocess.run([VISLINT, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def snapshot(work: Path):
    """(embedding by path, has_embedding by path, issue rows) of a work dir, read directly."""
    con = sqlite3.connect(f"file:{work / 'vislint.db'}?mode=ro", uri=True)
    try:
        images = con.execute("SELECT id, path, has_embedding FROM images").fetchall()
        issues = sorted(
            (t, p, o, round(s, 4), None if th is None else round(th, 6), d)
            for t, p, o, s, th, d in con.execute(
                "SELECT i.type, a.path, b.path, i.score, i.threshold, i.detail FROM issues i "
                "JOIN images a ON a.id = i.image_id LEFT JOIN images b ON b.id = i.other_id"))
    finally:
        con.close()
    flags = {p: bool(h) for _, p, h in images}
    emb = {}
    fp = work / "features.npy"
    if fp.is_file():
        feats = np.load(fp).astype(np.float32)
        emb = {p: feats[i] for i, p, h in images if h}
    return emb, flags, issues


def assert_same_results(work: Path, clean: Path):
    emb, flags, issues = snapshot(work)
    c_emb, c_flags, c_issues = snapshot(clean)
    assert flags == c_flags
    assert emb.keys() == c_emb.keys() and len(emb) > 40
    for p, v in emb.items():
        cos = float(v @ c_emb[p] / (np.linalg.norm(v) * np.linalg.norm(c_emb[p])))
        assert cos >= 0.999, (p, cos)
    assert issues == c_issues
    assert {t for t, *_ in issues} >= {"broken", "exact_duplicate", "near_duplicate", "odd_size"}
    assert not list(work.rglob("*.tmp")), "leftover .tmp files after a completed scan"


def run_state(work: Path) -> str:
    con = sqlite3.connect(f"file:{work / 'vislint.db'}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'run_state'").fetchone()
        return row[0] if row else ""
    finally:
        con.close()


def committed_images(work: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{work / 'vislint.db'}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM images").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.fixture(scope="module")
def clean(data, tmp_path_factory):
    work = tmp_path_factory.mktemp("clean") / "w"
    run_cli("scan", data, "-o", work, *MODEL_OPTS)
    return work


# (stage, N, with the HTML report): each kills the scan at a different point.
STAGES = [("analyse", 20, False), ("features", 13, False), ("commit", 2, False), ("knn", 2, False),
          ("derive", 10, False), ("report", 3, True), ("run_json", 1, False)]


@pytest.mark.parametrize("stage,n,report", STAGES, ids=[s for s, _, _ in STAGES])
def test_kill_at_each_stage_then_resume_matches_a_clean_scan(data, clean, tmp_path, stage, n, report):
    work = tmp_path / "w"
    opts = [*MODEL_OPTS] + ([] if report else ["--no-report"])
    killed = run("scan", data, "-o", work, *opts,
                 env={"VISLINT_FAULT": f"{stage}:{n}", "VISLINT_FAULT_COMMIT_EVERY": COMMIT_EVERY})
    assert killed.returncode == -signal.SIGABRT, killed.stderr
    if stage in ("analyse", "features", "commit"):
        # Killed mid-analysis with some rows committed: the case that lost embeddings.
        assert 0 < committed_images(work) < 50
    if stage in ("analyse", "features", "commit", "knn", "derive"):
        assert run_state(work) == "running"
        shown = run("issues", work)
        assert shown.returncode == 0 and "did not finish" in shown.stderr
    resumed = run("scan", data, "-o", work, *opts)
    assert resumed.returncode == 0, resumed.stderr
    if stage in ("analyse", "features", "commit"):
        assert "unchanged and reused" in resumed.stdout and " 0 unchanged" not in resumed.stdout
    assert run_state(work) == "complete"
    assert "did not finish" not in run("issues", work).stderr
    assert_same_results(work, clean)


def test_sigterm_stops_like_ctrl_c_and_the_resume_matches(data, clean, tmp_path):
    work = tmp_path / "w"
    env = {**os.environ, "VISLINT_FAULT": "analyse:10:sleep", "VISLINT_FAULT_COMMIT_EVERY": "4"}
    proc = subprocess.Popen([VISLINT, "scan", data, "-o", work, *MODEL_OPTS, "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while committed_images(work) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the scan ended before it could be signalled"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "scan cancelled;" in err and "a re-run resumes from there" in err
    assert run_state(work) == "cancelled"
    assert json.loads((work / "run.json").read_text())["status"] == "cancelled"
    shown = run("stats", work)
    assert shown.returncode == 0 and "was cancelled" in shown.stderr
    with pytest.warns(UserWarning, match="was cancelled"):
        vislint.load(work).issues()

    resumed = run("scan", data, "-o", work, *MODEL_OPTS, "--no-report")
    assert resumed.returncode == 0, resumed.stderr
    assert " 0 unchanged" not in resumed.stdout
    assert_same_results(work, clean)


def test_similar_refuses_an_index_of_another_model_size(data, clean, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(clean, work)
    query = sorted((data / "images").rglob("*.png"))[0]
    ok = run("similar", work, query)
    assert ok.returncode == 0 and str(query) not in ok.stdout and "data" in ok.stdout
    # A re-scan at another input size re-analyses everything; kill it half way.
    opts = [o if o != "128" else "160" for o in MODEL_OPTS]
    killed = run("scan", data, "-o", work, *opts, "--no-report",
                 env={"VISLINT_FAULT": "analyse:20", "VISLINT_FAULT_COMMIT_EVERY": COMMIT_EVERY})
    assert killed.returncode == -signal.SIGABRT
    refused = run("similar", work, query)
    assert refused.returncode == 2
    assert "did not finish" in refused.stderr and "re-run the scan" in refused.stderr
    assert "was built by an earlier scan" in refused.stderr
    with pytest.raises(vislint.VislintError, match="was built by an earlier scan"):
        with pytest.warns(UserWarning, match="did not finish"):
            vislint.load(work).similar(query)
    # Finishing the re-scan makes the work dir consistent again.
    assert run("scan", data, "-o", work, *opts, "--no-report").returncode == 0
    assert run("similar", work, query).returncode == 0


# ---- without a model (fast) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def hashed(data, tmp_path_factory):
    """A complete hash-only scan with its report (thumbnails), and its CLI outputs."""
    work = tmp_path_factory.mktemp("hashed") / "w"
    run_cli("scan", data, "-o", work, "--model", "none", "--threads", "2", "-q")
    outputs = (run_cli("issues", work, "--format", "json").stdout, run_cli("stats", work).stdout)
    return work, outputs


def test_second_scan_into_a_locked_work_dir_stops_at_once(data, hashed, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(hashed[0], work)
    before = (work / "vislint.db").stat().st_mtime_ns
    with open(work / "vislint.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        second = run("scan", data, "-o", work, "--model", "none", "-q")
        assert second.returncode == 2
        assert f"work dir {work} is in use by another vislint scan" in second.stderr
        with pytest.raises(vislint.VislintError, match="in use by another vislint scan"):
            vislint.scan(data, work, model="none", progress=False)
        # Readers do not need the lock.
        assert run("issues", work, "--format", "json").stdout == hashed[1][0]
    assert (work / "vislint.db").stat().st_mtime_ns == before


def test_two_real_scans_into_one_work_dir(data, tmp_path):
    work = tmp_path / "w"
    env = {**os.environ, "VISLINT_FAULT": "analyse:5:sleep", "VISLINT_FAULT_COMMIT_EVERY": "2"}
    first = subprocess.Popen([VISLINT, "scan", data, "-o", work, "--model", "none", "-q", "--threads", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while committed_images(work) < 4 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None
    second = run("scan", data, "-o", work, "--model", "none", "-q")
    assert second.returncode == 2 and "is in use by another vislint scan" in second.stderr
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130 and "scan cancelled;" in err
    assert run("scan", data, "-o", work, "--model", "none", "-q").returncode == 0


def in_read_only_mount(work: Path, *cmd):
    """Runs cmd with `work` bind-mounted read-only (a private mount namespace, as root of a user
    namespace: no privileges needed)."""
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, str(work), *map(str, cmd)],
                          capture_output=True, text=True, timeout=300)


def can_mount_read_only(tmp_path) -> bool:
    if not shutil.which("unshare"):
        return False
    d = tmp_path / "probe"
    d.mkdir()
    return in_read_only_mount(d, "sh", "-c", f"! touch {d}/x 2>/dev/null").returncode == 0


def test_read_only_work_dir_can_be_read_but_not_written(data, hashed, clean, tmp_path):
    if not can_mount_read_only(tmp_path):
        pytest.skip("cannot make a read-only mount here (unshare -rm)")
    work, (issues_json, stats_csv) = hashed
    # A finished scan leaves one database file: no -wal / -shm a reader would need to create.
    assert not list(work.glob("vislint.db-*"))
    r = in_read_only_mount(work, VISLINT, "issues", work, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert r.stdout == issues_json and r.stderr == ""
    r = in_read_only_mount(work, VISLINT, "stats", work)
    assert r.returncode == 0 and r.stdout == stats_csv, r.stderr
    py = ("import vislint, warnings; warnings.simplefilter('error'); s = vislint.load(%r); "
          "print(len(s.issues()), len(s.images()))" % str(work))
    r = in_read_only_mount(work, sys.executable, "-c", py)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(len(json.loads(issues_json))), str(len(stats_csv.splitlines()) - 1)]
    for cmd in (["scan", data, "-o", work, "--model", "none"], ["report", work]):
        r = in_read_only_mount(work, VISLINT, *cmd)
        assert r.returncode == 2 and f"work dir {work} is read-only" in r.stderr, r.stderr
    py = ("import vislint\ntry:\n    vislint.scan(%r, %r, model='none', progress=False)\n"
          "except vislint.VislintError as e:\n    print(e)" % (str(data), str(work)))
    r = in_read_only_mount(work, sys.executable, "-c", py)
    assert f"work dir {work} is read-only" in r.stdout, r.stderr
    query = sorted((data / "images").rglob("*.png"))[0]
    want = run_cli("similar", clean, query, "--format", "json").stdout
    r = in_read_only_mount(clean, VISLINT, "similar", clean, query, "--format", "json")
    assert r.returncode == 0 and r.stdout == want, r.stderr


def test_failed_rescan_on_a_full_disk_is_reported_by_every_reader(data, hashed, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(hashed[0], work)
    # A model re-scan writes features.npy; /dev/full answers every write with ENOSPC.
    (work / "features.npy").unlink(missing_ok=True)
    (work / "features.npy").symlink_to("/dev/full")
    r = run("scan", data, "-o", work, *MODEL_OPTS, "--no-report")
    assert r.returncode == 2 and "No space left on device" in r.stderr, r.stderr
    assert run_state(work) == "failed"
    for cmd in (["issues", work], ["stats", work]):
        shown = run(*cmd)
        assert shown.returncode == 0 and "failed before it finished" in shown.stderr
    with pytest.warns(UserWarning, match="failed before it finished"):
        vislint.load(work)


def damage(db: Path, offsets, rng):
    b = bytearray(db.read_bytes())
    for off in offsets:
        b[off] = (b[off] + rng.randrange(1, 256)) % 256
    db.write_bytes(bytes(b))


def outcome(work: Path):
    a = run("issues", work, "--format", "json")
    b = run("stats", work)
    return a, b


def assert_identical_or_named_error(results, baseline, db: Path):
    for r, want in zip(results, baseline):
        if r.returncode == 0:
            assert r.stdout == want
        else:
            assert r.returncode == 2, r.stderr
            assert str(db) in r.stderr and "delete the work dir or re-scan with --rebuild" in r.stderr, r.stderr


def test_random_damage_to_the_database_never_gives_silently_wrong_rows(hashed, tmp_path):
    work0, baseline = hashed
    size = (work0 / "vislint.db").stat().st_size
    rng = random.Random(7)
    errors = 0
    for trial in range(20):
        work = tmp_path / f"w{trial}"
        shutil.copytree(work0, work)
        db = work / "vislint.db"
        damage(db, [rng.randrange(100, size) for _ in range(rng.choice([1, 4, 16]))], rng)
        results = outcome(work)
        assert_identical_or_named_error(results, baseline, db)
        errors += any(r.returncode for r in results)
    assert errors >= 5  # the damage did reach data, not only free space


def test_damage_inside_row_payloads_is_caught_by_the_checksum(data, hashed, tmp_path):
    work0, baseline = hashed
    issues = json.loads(baseline[0])
    score = next(i["score"] for i in issues if i["type"] == "odd_size")
    path = next(i["path"] for i in issues if i["type"] == "broken")
    for what, needle in (("score", struct.pack(">d", score)), ("path", path.encode())):
        work = tmp_path / what
        shutil.copytree(work0, work)
        db = work / "vislint.db"
        b = bytearray(db.read_bytes())
        at = [i for i in range(len(b)) if b.startswith(needle, i)]
        assert at, what
        for i in at:  # every copy (table and index), so the b-trees stay consistent
            b[i + len(needle) - 1] ^= 0x01
        db.write_bytes(bytes(b))
        ok = sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute("PRAGMA quick_check").fetchone()[0]
        assert ok == "ok"  # invisible to SQLite: only the stored checksum can see it
        for r in outcome(work):
            assert r.returncode == 2
            assert f"the work dir database {db} is damaged" in r.stderr
            assert "delete the work dir or re-scan with --rebuild" in r.stderr
        with pytest.raises(vislint.VislintError, match="re-scan with --rebuild"):
            vislint.load(work)
        rescan = run("scan", data, "-o", work, "--model", "none", "-q")
        assert rescan.returncode == 2 and "--rebuild" in rescan.stderr
    # The fix the message names works, from the CLI and from Python.
    assert run("scan", data, "-o", tmp_path / "score", "--model", "none", "-q", "--rebuild").returncode == 0
    assert outcome(tmp_path / "score")[0].stdout == baseline[0]
    s = vislint.scan(data, tmp_path / "path", model="none", rebuild=True, progress=False, report=False)
    assert run("issues", s.work_dir, "--format", "json").stdout == baseline[0]


def test_garbage_database_names_the_file_and_the_fix(hashed, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(hashed[0], work)
    (work / "vislint.db").write_bytes(os.urandom(8192))
    for r in outcome(work):
        assert r.returncode == 2
        assert str(work / "vislint.db") in r.stderr and "--rebuild" in r.stderr


def test_leftover_tmp_files_are_removed(data, hashed, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(hashed[0], work)
    thumbs = work / "report" / "thumbs"
    left = [work / "run.json.tmp", work / "report" / "index.html.tmp", thumbs / "0123.jpg.tmp"]
    for p in left:
        p.write_bytes(b"half written")
    run_cli("scan", data, "-o", work, "--model", "none", "-q")
    assert not [p for p in left if p.exists()]
    assert any(thumbs.glob("*.jpg"))


def test_symlink_into_the_work_dir_is_not_scanned(data, hashed, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(hashed[0], work)
    src = tmp_path / "data"
    shutil.copytree(data, src, symlinks=True)
    thumb = sorted((work / "report" / "thumbs").glob("*.jpg"))[0]
    (src / "thumb.jpg").symlink_to(thumb)
    (src / "thumbs").symlink_to(work / "report" / "thumbs")
    (src / "outside.png").symlink_to(next((data / "images").rglob("*.png")))  # a normal link
    r = run_cli("scan", src, "-o", work, "--model", "none", "-q", "--no-report")
    assert "points into the work dir" in r.stderr
    paths = set(vislint.load(work).images()["path"])
    assert str(src / "outside.png") in paths
    assert not [p for p in paths if str(work) in os.path.realpath(p)]
    assert str(src / "thumb.jpg") not in paths and not [p for p in paths if "/thumbs/" in p]
