"""The Python API: DataFrames, options, errors, cancellation."""
import threading

import pandas as pd
import pytest

import vislint
from vislint import _core


def test_scan_returns_dataframes(corpus, tmp_path):
    root, truth = corpus
    scan = vislint.scan(root, tmp_path / "w", progress=False, model="none", threads=2)
    summary = scan.summary()
    assert list(summary["type"]) == vislint.ISSUE_TYPES
    assert summary.set_index("type").loc["broken", "count"] == len(truth["broken"])

    images = scan.images()
    assert {"path", "width", "height", "channels", "format", "file_size", "brightness", "contrast",
            "blur", "entropy", "saturation", "is_grayscale", "phash", "dhash"} <= set(images.columns)
    assert len(images) == len(truth["files"]) - len(truth["skipped"])

    dark = scan.issues("dark")
    assert set(dark["type"]) == {"dark"} and len(dark) >= len(truth["dark"])
    assert list(dark.columns) == ["type", "path", "other_path", "score", "threshold", "detail"]

    dups = scan.duplicates()
    assert {"path_a", "path_b", "score", "kind", "group"} <= set(dups.columns)
    exact = dups[dups.kind == "exact"]
    assert len(exact) == len(truth["exact_duplicates"]) + len(truth["pixel_duplicates"])
    assert exact["group"].notna().all() and exact["keeper"].notna().all()
    # A pair's group holds both of its images (near groups are stars: a pair can have none).
    members = scan.duplicate_groups().groupby("group")["path"].apply(set)
    for r in dups[dups["group"].notna()].itertuples():
        assert {r.path_a, r.path_b} <= members[r.group], (r.path_a, r.path_b)

    broken = scan.broken()
    assert set(broken["reason"]) >= {"empty", "truncated", "unsupported", "corrupt"}
    assert isinstance(vislint.load(tmp_path / "w").summary(), pd.DataFrame)
    assert "broken=" in repr(scan)


def test_thresholds_are_options(corpus, tmp_path):
    root, truth = corpus
    strict = vislint.scan(root, tmp_path / "w", progress=False, model="none", dark_threshold=0.0)
    assert strict.issues("dark").empty
    loose = vislint.scan(root, tmp_path / "w", progress=False, model="none", dark_threshold=250.0)
    assert len(loose.issues("dark")) > len(truth["dark"])
    assert loose.run["counts"]["analysed"] == 0  # thresholds re-derive issues without re-decoding


def test_bad_options_raise(corpus, tmp_path):
    root, _ = corpus
    with pytest.raises(vislint.VislintError, match="unknown option"):
        vislint.scan(root, tmp_path / "w", progress=False, model="none", darkness=3)
    with pytest.raises(vislint.VislintError, match="--hash-radius"):
        vislint.scan(root, tmp_path / "w", progress=False, model="none", hash_radius=99)
    with pytest.raises(vislint.VislintError, match="input not found"):
        vislint.scan(tmp_path / "missing", tmp_path / "w", progress=False, model="none")
    with pytest.raises(vislint.VislintError, match="unknown issue type"):
        vislint.scan(root, tmp_path / "w", progress=False, model="none").issues("blurred")


def test_ctrl_c_cancels_cleanly_and_resume_finishes(corpus, tmp_path):
    root, truth = corpus
    calls = []

    def interrupt(stage, done, total):
        calls.append(stage)
        if stage == "analyse" and done >= 1:
            raise KeyboardInterrupt
        return True

    with pytest.raises(KeyboardInterrupt):
        _core.scan([str(root)], str(tmp_path / "w"), {"threads": 1, "model": "none"}, interrupt, None)
    with pytest.warns(UserWarning, match="was cancelled before it finished"):
        partial = vislint.load(tmp_path / "w")
    assert partial.run["status"] == "cancelled"
    saved = len(partial.images())
    assert 1 <= saved < len(truth["files"])
    done = vislint.scan(root, tmp_path / "w", progress=False, model="none")
    assert done.run["counts"]["reused"] == saved
    assert done.run["status"] == "complete"


def test_scan_releases_the_gil(corpus, tmp_path):
    root, _ = corpus
    ticks = 0
    stop = threading.Event()

    def spin():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        vislint.scan(root, tmp_path / "w", progress=False, model="none", threads=1)
    finally:
        stop.set()
        t.join()
    assert ticks > 1000
