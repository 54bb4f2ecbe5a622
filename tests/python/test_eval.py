"""vislint eval / Scan.evaluate: precision, recall and F1 of a scan's rows against ground truth,
on the planted clip-art corpus."""
import csv
import json
from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest

import vislint
import vislint.testing
from conftest import run_cli


def write_truth(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["type", "path", "other_path"])
        w.writerows(rows)


def group_pairs(pairs):
    """Pairs of items sharing a group after closing `pairs` transitively (an independent check)."""
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    groups = {}
    for x in list(parent):
        groups.setdefault(find(x), []).append(x)
    return {frozenset(p) for g in groups.values() for p in combinations(g, 2)}


def test_eval_of_own_issues_is_perfect(scanned, tmp_path):
    # `vislint issues --format csv` reads as ground truth: every type scores 1.
    root, work, truth, _, _ = scanned
    issues = run_cli("issues", work, "--format", "csv").stdout
    (tmp_path / "own.csv").write_text(issues)
    got = json.loads(run_cli("eval", work, tmp_path / "own.csv", "--format", "json").stdout)
    types = {r["type"] for r in csv.DictReader(issues.splitlines())}
    expected = {t for t in types if t not in ("exact_duplicate", "near_duplicate")} | {"duplicate"}
    if "exact_duplicate" in types:
        expected.add("exact_duplicate")
    assert set(got) == expected
    for t, s in got.items():
        assert s["precision"] == s["recall"] == s["f1"] == 1.0, (t, s)
        assert s["predicted"] == s["true"] > 0


def test_eval_against_planted_truth(scanned, tmp_path):
    root, work, truth, _, _ = scanned
    rows = vislint.testing.truth_rows(truth, prefix=root.name + "/")
    truth_csv = root.parent / "truth.csv"  # beside the corpus, not in it; names relative to it
    write_truth(truth_csv, rows)
    proc = run_cli("eval", work, truth_csv, "--format", "json")
    assert "warning" not in proc.stderr
    got = json.loads(proc.stdout)
    scan = vislint.load(work)
    issues = scan.issues()
    rel = {p: str(Path(p).relative_to(root.parent)) for p in scan.images()["path"]}

    # Single-image types: the counts and matches of a set comparison, computed here independently.
    for t in ("broken", "dark", "bright", "blurry", "wrong_extension"):
        pred = {rel[p] for p in issues[issues["type"] == t]["path"]}
        true = {p for ty, p, _ in rows if ty == t}
        s = got[t]
        assert (s["predicted"], s["true"]) == (len(pred), len(true)), t
        assert s["recall"] == pytest.approx(len(pred & true) / len(true)), t
        assert s["precision"] == pytest.approx(len(pred & true) / len(pred)), t
    assert got["broken"]["recall"] == 1.0 and got["broken"]["precision"] == 1.0

    # Duplicates: pairs of images in one group after closure, both kinds together.
    dup = issues[issues["type"].isin(["exact_duplicate", "near_duplicate"])]
    pred = group_pairs((rel[a], rel[b]) for a, b in zip(dup["path"], dup["other_path"]))
    true = group_pairs((a, b) for ty, a, b in rows if ty in ("exact_duplicate", "near_duplicate"))
    s = got["duplicate"]
    assert (s["predicted"], s["true"]) == (len(pred), len(true))
    assert s["recall"] == pytest.approx(len(pred & true) / len(true))
    assert s["precision"] == pytest.approx(len(pred & true) / len(pred))
    assert got["exact_duplicate"]["recall"] == 1.0  # byte and pixel copies are all found

    # The Python API gives the same figures, from a DataFrame with absolute paths.
    df = pd.DataFrame([(t, str(root.parent / a), str(root.parent / b) if b else "") for t, a, b in rows],
                      columns=["type", "path", "other_path"])
    frame = scan.evaluate(df)
    assert list(frame.columns) == ["precision", "recall", "f1", "predicted", "true", "matched"]
    for t, s in got.items():
        assert frame.loc[t, "f1"] == pytest.approx(s["f1"]), t
        assert int(frame.loc[t, "true"]) == s["true"], t
    # ... and from the CSV itself, whose relative names resolve against its folder as in the CLI.
    from_csv = scan.evaluate(truth_csv)
    for t, s in got.items():
        assert (from_csv.loc[t, "precision"], from_csv.loc[t, "recall"]) == (s["precision"], s["recall"]), t


def test_eval_table_and_errors(scanned, tmp_path):
    root, work, truth, _, _ = scanned
    bad = tmp_path / "bad.csv"
    write_truth(bad, [("broken", str(root / "broken" / "empty.jpg"), ""), ("blury", "x.png", "")])
    proc = run_cli("eval", work, bad, check=False)
    assert proc.returncode == 2 and "bad.csv:3: unknown issue type 'blury'" in proc.stderr
    write_truth(bad, [("leak", str(root / "broken" / "empty.jpg"), "")])
    proc = run_cli("eval", work, bad, check=False)
    assert proc.returncode == 2 and "bad.csv:2: a leak row needs other_path" in proc.stderr
    bad.write_text("kind,file\nbroken,a.png\n")
    proc = run_cli("eval", work, bad, check=False)
    assert proc.returncode == 2 and "must name a 'type' and a 'path' column" in proc.stderr
    # A name that is no item is counted as missed, and said.
    write_truth(bad, [("broken", str(root / "broken" / "empty.jpg"), ""), ("broken", "nowhere/x.png", "")])
    proc = run_cli("eval", work, bad)
    assert "1 ground-truth name(s) are no item" in proc.stderr and "nowhere/x.png" in proc.stderr
    fields = next(l for l in proc.stdout.splitlines() if l.startswith("broken")).split()
    n_broken = len(vislint.load(work).issues("broken"))
    assert fields[1:3] == [f"{1 / n_broken:.3f}", "0.500"]  # precision, recall
    write_truth(bad, [("broken", "a.png", ""), ("blury", "x.png", "")])
    with pytest.raises(vislint.VislintError, match="bad.csv:3: unknown issue type 'blury'"):
        vislint.load(work).evaluate(bad)
    with pytest.raises(vislint.VislintError, match="ground truth row 1: a leak row needs other_path"):
        vislint.load(work).evaluate(pd.DataFrame({"type": ["leak"], "path": ["a.png"], "other_path": [""]}))
    with pytest.raises(vislint.VislintError, match="missing: type"):
        vislint.load(work).evaluate(pd.DataFrame({"path": ["a"]}))
