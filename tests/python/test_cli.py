"""The vislint command on real images with planted issues."""
import csv
import io
import json

from conftest import run_cli, tree_digest

import vislint


def issues_csv(work, *extra):
    out = run_cli("issues", work, "--format", "csv", *extra).stdout
    return list(csv.DictReader(io.StringIO(out))), out.splitlines()[0]


def rel(root, path):
    return str(__import__("pathlib").Path(path).relative_to(root))


def test_scan_prints_summary_of_every_issue_type(scanned):
    root, work, truth, result, _ = scanned
    for t in vislint.ISSUE_TYPES:
        assert t in result.stdout
    assert (work / "vislint.db").is_file()
    run = json.loads((work / "run.json").read_text())
    assert run["status"] == "complete"
    assert run["counts"]["images"] == len(truth["files"]) - len(truth["skipped"])
    assert run["counts"]["skipped_files"] >= len(truth["skipped"])
    assert set(run["timings_seconds"]) >= {"discover", "analyse", "issues", "total"}


def test_csv_header_and_absolute_paths(scanned):
    root, work, *_ = scanned
    rows, header = issues_csv(work)
    assert header == "type,path,other_path,score,threshold,detail"
    assert rows and all(r["path"].startswith(str(root)) for r in rows)
    assert all(r["other_path"] == "" for r in rows if r["type"] in ("broken", "dark", "blurry"))


def test_exact_copies_found(scanned):
    root, work, truth, *_ = scanned
    rows, _ = issues_csv(work, "--type", "exact_duplicate")
    found = {frozenset((rel(root, r["path"]), rel(root, r["other_path"]))) for r in rows}
    planted = {frozenset(p) for p in truth["exact_duplicates"] + truth["pixel_duplicates"]}
    assert planted <= found
    assert all(float(r["score"]) == 1.0 for r in rows)
    details = " ".join(r["detail"] for r in rows)
    assert "identical bytes" in details and "identical decoded pixels" in details


def test_each_broken_kind_has_its_reason(scanned):
    root, work, truth, *_ = scanned
    rows, _ = issues_csv(work, "--type", "broken")
    got = {rel(root, r["path"]): r["detail"] for r in rows}
    assert set(truth["broken"]) <= set(got)
    for path, reason in truth["broken"].items():
        if path.endswith("fake.webp"):  # garbage header: corrupt or an absurd size, both broken
            assert got[path].split(":")[0] in ("corrupt", "too_large")
        else:
            assert got[path].startswith(reason + ":"), (path, got[path])
    # Files that merely lack an image extension are skipped, not broken.
    assert not any(p in got for p in truth["skipped"])


def test_wrong_extension_is_flagged_and_still_analysed(scanned):
    root, work, truth, *_ = scanned
    rows, _ = issues_csv(work, "--type", "wrong_extension")
    assert {rel(root, r["path"]) for r in rows} == set(truth["wrong_extension"])
    stats = {rel(root, r["path"]): r for r in csv.DictReader(io.StringIO(run_cli("stats", work).stdout))}
    for p in truth["wrong_extension"]:
        assert stats[p]["status"] == "ok"
        assert int(stats[p]["width"]) > 0 and stats[p]["phash"]
    assert stats["mislabeled_ext/photo_is_jpeg.png"]["format"] == "jpeg"


def test_quality_variants_flagged(scanned):
    root, work, truth, *_ = scanned
    rows, _ = issues_csv(work)
    by_type = {}
    for r in rows:
        by_type.setdefault(r["type"], set()).add(rel(root, r["path"]))
    for t in ("dark", "blurry", "bright", "low_information", "odd_aspect_ratio", "odd_size", "grayscale"):
        assert set(truth[t]) <= by_type.get(t, set()), t
    # The originals of the dark and blurry variants are not flagged.
    for t in ("dark", "blurry"):
        originals = {truth["derived_from"][p] for p in truth[t]}
        assert not originals & by_type.get(t, set()), t
    for r in rows:
        if r["type"] in ("dark", "blurry"):
            assert float(r["score"]) > float(r["threshold"])


def test_near_duplicates_of_mild_transforms(scanned):
    root, work, truth, *_ = scanned
    rows, _ = issues_csv(work, "--type", "near_duplicate")
    found = {frozenset((rel(root, r["path"]), rel(root, r["other_path"]))) for r in rows}
    for orig, copy, transform in truth["near_duplicates"]:
        if transform in ("resize50_jpeg40", "jpeg15", "noise8", "brightness35"):
            assert frozenset((orig, copy)) in found, transform
    derived = truth["derived_from"]

    def origin(p):
        while p in derived:
            p = derived[p]
        return p

    unrelated = [pair for pair in found if len({origin(p) for p in pair}) > 1]
    assert unrelated == []


def test_input_tree_untouched_and_rerun_skips_unchanged(scanned):
    root, work, truth, result, before = scanned
    again = run_cli("scan", root, "-o", work, "-q", "--model", "none")
    assert "0 analysed" in again.stdout
    run = json.loads((work / "run.json").read_text())
    assert run["counts"]["analysed"] == 0
    assert run["counts"]["reused"] == run["counts"]["images"]
    assert tree_digest(root) == before


def test_rerun_reanalyses_changed_file(corpus, tmp_path):
    root, truth = corpus
    data = tmp_path / "data"
    import shutil
    shutil.copytree(root, data, symlinks=True)
    work = tmp_path / "work"
    run_cli("scan", data, "-o", work, "-q", "--model", "none")
    victim = data / truth["base"][0]
    victim.write_bytes(b"")
    out = run_cli("scan", data, "-o", work, "-q", "--model", "none").stdout
    assert "1 analysed" in out
    rows, _ = issues_csv(work, "--type", "broken")
    assert any(r["path"] == str(victim) and r["detail"].startswith("empty") for r in rows)


def test_bad_option_and_missing_input_fail_with_one_line(corpus, tmp_path):
    root, _ = corpus
    p = run_cli("scan", root, "-o", tmp_path / "w", "--dark-threshold", "400", "--model", "none", check=False)
    assert p.returncode != 0
    assert "--dark-threshold" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = run_cli("scan", tmp_path / "nope", "-o", tmp_path / "w2", check=False)
    assert p.returncode != 0 and "input not found" in p.stderr
    p = run_cli("scan", root, "-o", tmp_path / "w3", "--threads", "abc", check=False)
    assert p.returncode != 0 and "--threads" in p.stderr
    p = run_cli("issues", tmp_path, check=False)
    assert p.returncode != 0 and "not a vislint work dir" in p.stderr
    p = run_cli("scan", root, "-o", root / "results", check=False)
    assert p.returncode != 0 and "inside input folder" in p.stderr
    assert not (root / "results").exists()


def test_stats_json_and_list_file_input(corpus, tmp_path):
    root, truth = corpus
    listing = tmp_path / "list.txt"
    listing.write_text("# two images and a missing one\n" + f"{root / truth['base'][0]}\n"
                       f"{root / truth['base'][1]}\nmissing.jpg\n")
    work = tmp_path / "w"
    run_cli("scan", listing, "-o", work, "-q", "--model", "none")
    stats = json.loads(run_cli("stats", work, "--format", "json").stdout)
    assert len(stats) == 3
    missing = [s for s in stats if s["path"].endswith("missing.jpg")][0]
    assert missing["status"] == "unreadable" and missing["path"] == str(tmp_path / "missing.jpg")
    ok = [s for s in stats if s["status"] == "ok"]
    assert all(float(s["blur"]) > 0 and len(s["phash"]) == 16 for s in ok)
