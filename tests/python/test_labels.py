"""Labels, splits and annotations on real images: label issues, leaks, COCO / YOLO objects."""
import json
import os
import shutil
import sqlite3

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import vislint
import vislint.testing as vt
from conftest import run_cli


def rel(paths, root):
    return [os.path.relpath(p, root) for p in paths]


def auroc(scores, positive):
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return greater / (len(pos) * len(neg))


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """A labelled Fashion-MNIST corpus (10 % flips, 20 leaks into test, 5 copies within train),
    scanned with the default model."""
    root = tmp_path_factory.mktemp("fashion") / "data"
    truth = vt.make_fashion_corpus(root, n_train=300, n_test=100, n_leaks=20, n_within=5, seed=1)
    scan = vislint.scan(root, tmp_path_factory.mktemp("fw") / "w", labels=root / "labels.csv",
                        progress=False)
    return root, truth, scan


def test_flipped_labels_rank_above_correct_ones(fashion):
    root, truth, scan = fashion
    ranked = scan.label_issues(all=True)
    assert len(ranked) == truth["n_items"]
    flipped = np.isin(rel(ranked["path"], root), list(truth["flips"]))
    assert flipped.sum() == len(truth["flips"]) == 40
    assert auroc(ranked["score"].to_numpy(), flipped) > 0.93
    k = int(flipped.sum())
    assert flipped[:k].mean() > 0.6  # precision at K (random: 0.09)
    flagged = scan.label_issues()
    assert set(flagged.columns) >= {"path", "given", "suggested", "score", "neighbours", "neighbour_labels"}
    assert (flagged["given"] != flagged["suggested"]).all()
    assert all(len(n) > 0 and len(n) == len(lab) for n, lab in zip(flagged["neighbours"], flagged["neighbour_labels"]))
    # A flagged flip most often gets its true label back as the suggestion.
    hits = [truth["flips"][r]["true"] == s for r, s in zip(rel(flagged["path"], root), flagged["suggested"])
            if r in truth["flips"]]
    assert len(hits) >= 25 and np.mean(hits) > 0.6
    conf = scan.confused_classes()
    assert conf["count"].sum() == len(flagged)
    classes = scan.classes()
    assert classes["count"].sum() == truth["n_items"]
    assert classes.set_index("label")["label_issue"].sum() == len(flagged)


def test_leaks_cross_splits_only(fashion):
    root, truth, scan = fashion
    leaks = scan.leaks()
    found = set(zip(rel(leaks["path"], root), rel(leaks["other_path"], root)))
    planted = {(a, b): t for a, b, t in truth["leaks"]}
    exact = {p for p, t in planted.items() if t == "copy"}
    assert exact <= found  # every exact copy across splits is a leak
    assert len(found & set(planted)) >= 16  # of 20, transformed copies included
    assert (leaks["split"] == "test").all() and (leaks["other_split"] == "train").all()
    # Copies inside train are duplicates, never leaks.
    within = {c for c, _ in truth["within_split"]}
    assert not within & set(rel(leaks["path"], root)) and not within & set(rel(leaks["other_path"], root))
    dups = scan.duplicates()
    assert any(os.path.basename(p).startswith("copy_") for p in dups["path_a"].tolist() + dups["path_b"].tolist())


def test_small_look_alikes_are_no_duplicates_but_small_copies_are(fashion, tmp_path):
    """28-px product silhouettes: embeddings and hashes pair different sneakers as readily as
    copies; the pixel check of small images keeps the copies (re-encodes, 1-px shifts,
    brightness, 2x upscales) and drops the look-alikes, without analysing anything again."""
    root, truth, scan = fashion
    # Byte copies ("copy" leaks, copies within train) are exact_duplicate rows; the others near.
    planted = {tuple(sorted((a, b))) for a, b, t in truth["leaks"] if t != "copy"}
    assert len(planted) == 16
    near = scan.issues("near_duplicate")
    pairs = {tuple(sorted(p)) for p in zip(rel(near["path"], root), rel(near["other_path"], root))}
    assert len(pairs & planted) >= 15
    assert len(pairs - planted) <= 2
    assert near["detail"].str.contains("small images: pixel correlation").all()
    leaks = scan.leaks()
    found = set(zip(rel(leaks["path"], root), rel(leaks["other_path"], root)))
    assert len(found & {(a, b) for a, b, _ in truth["leaks"]}) >= 19
    assert len(found - {(a, b) for a, b, _ in truth["leaks"]}) <= 1
    # Each small image keeps its grey pixels in the work dir, so the check is re-derived alone.
    with sqlite3.connect(f"file:{scan.work_dir}/vislint.db?mode=ro", uri=True) as db:
        assert db.execute("SELECT count(*) FROM small_thumbs").fetchone()[0] == truth["n_items"]
    work = tmp_path / "w"
    shutil.copytree(scan.work_dir, work)
    off = vislint.scan(root, work, labels=root / "labels.csv", small_copy_threshold=0, progress=False,
                       report=False)
    assert off.run["counts"]["analysed"] == 0
    assert off.run["options"]["thresholds"]["small_copy"] == 0
    loose = off.issues("near_duplicate")
    assert len(loose) > 3 * len(near)
    assert not loose["detail"].str.contains("pixel correlation").any()


def test_small_pixels_follow_their_file(tmp_path):
    """A small image's stored pixels go when it grows past 64 px or is deleted."""
    data = tmp_path / "data"
    data.mkdir()
    arr = vt.load_fashion("train")[0][:3]
    for i, a in enumerate(arr):
        Image.fromarray(a).save(data / f"item{i}.png")
    work = tmp_path / "w"

    def thumbs():
        vislint.scan(data, work, model="none", progress=False, report=False)
        with sqlite3.connect(f"file:{work}/vislint.db?mode=ro", uri=True) as db:
            return [r[0] for r in db.execute("SELECT image_id FROM small_thumbs ORDER BY image_id")]

    assert len(thumbs()) == 3
    Image.fromarray(arr[0]).resize((100, 100)).save(data / "item0.png")
    assert len(thumbs()) == 2
    (data / "item1.png").unlink()
    assert len(thumbs()) == 1


def test_same_picture_labelled_twice_is_a_conflict(fashion):
    root, truth, scan = fashion
    conflicts = scan.label_conflicts()
    labels = dict(zip(rel(scan.labels()["path"], root), scan.labels()["label"]))
    # A within-train copy of a flipped original carries the true label: a conflict pair.
    expected = [(c, o) for c, o in truth["within_split"] if o in truth["flips"]]
    groups = conflicts.groupby("group")["path"].apply(lambda s: set(rel(s, root)))
    for copy, original in expected:
        assert labels[copy] != labels[original]
        assert any({copy, original} <= g for g in groups)
    assert all(len(set(g["label"])) > 1 for _, g in conflicts.groupby("group"))
    clusters = scan.clusters()
    assert {"labels", "mixed"} <= set(clusters.columns)
    assert clusters["labels"].apply(lambda d: sum(d.values())).le(clusters["size"]).all()


def _clipart(i, side=160):
    path = vt.clipart_paths(40, seed=3)[i]
    im = vt.load_rgb(path)
    im.thumbnail((side, side))
    return im


def test_split_folders_give_leaks_in_hash_only_mode(tmp_path):
    root = tmp_path / "ds"
    for d in ("train", "test"):
        (root / d).mkdir(parents=True)
    base = [_clipart(i) for i in range(6)]
    for i, im in enumerate(base[:4]):
        im.save(root / "train" / f"t{i}.png")
    base[4].save(root / "test" / "own.png")
    base[5].save(root / "test" / "own2.png")
    base[0].resize((base[0].width // 2, base[0].height // 2)).save(root / "test" / "leaked.jpg", quality=70)
    base[1].save(root / "train" / "again.png")  # the same pixels inside train: not a leak
    scan = vislint.scan(root, tmp_path / "w", model="none", progress=False)
    leaks = scan.leaks()
    assert rel(leaks["path"], root) == ["test/leaked.jpg"]
    assert rel(leaks["other_path"], root) == ["train/t0.png"]
    assert leaks["detail"][0] == "test image duplicates a train image (near duplicate)"
    assert set(scan.labels()["split"]) == {"train", "test"}
    assert set(scan.labels()["label"].dropna()) == set()  # splits only, no labels
    assert len(scan.issues("exact_duplicate")) == 1
    # --splits none: no splits, no leaks
    off = vislint.scan(root, tmp_path / "w2", model="none", splits="none", progress=False)
    assert len(off.leaks()) == 0


def _canvas(items, size=(640, 320)):
    """White canvas with clip-art images pasted at (x, y); returns the image and boxes."""
    canvas = Image.new("RGB", size, "white")
    boxes = []
    for im, (x, y) in items:
        canvas.paste(im, (x, y))
        boxes.append([x, y, im.width, im.height])
    return canvas, boxes


def test_coco_objects_one_item_per_box(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    a, b, c = _clipart(0, 140), _clipart(1, 140), _clipart(2, 140)
    one, boxes1 = _canvas([(a, (10, 10)), (b, (220, 20)), (c, (440, 150))])
    two, boxes2 = _canvas([(a, (300, 100))])
    one.save(root / "one.jpg", quality=92)
    two.save(root / "two.png")
    coco = {
        "images": [{"id": 1, "file_name": "one.jpg"}, {"id": 2, "file_name": "two.png"},
                   {"id": 3, "file_name": "gone.jpg"}],
        "categories": [{"id": 1, "name": "first"}, {"id": 2, "name": "second"}, {"id": 3, "name": "third"}],
        "annotations": [
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": boxes1[0]},
            {"id": 12, "image_id": 1, "category_id": 2, "bbox": boxes1[1]},
            {"id": 13, "image_id": 1, "category_id": 3, "bbox": boxes1[2]},
            {"id": 14, "image_id": 1, "category_id": 3, "bbox": [600, 10, 4, 4]},  # too small
            {"id": 21, "image_id": 2, "category_id": 1, "bbox": boxes2[0]}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    proc = run_cli("scan", root, "-o", tmp_path / "w", "--coco", tmp_path / "ann.json", "--objects", "-q")
    assert "1 box(es) too small" in proc.stdout
    assert "1 listed file(s) do not exist" in proc.stderr
    scan = vislint.load(tmp_path / "w")
    images = scan.images()
    assert sorted(rel(images["path"], root)) == ["one.jpg#11", "one.jpg#12", "one.jpg#13", "two.png#21"]
    assert (images["status"] == "ok").all()
    by = images.set_index(images["path"].map(lambda p: os.path.relpath(p, root)))
    assert by.loc["one.jpg#12", "label"] == "second"
    # each crop is its box plus a 10 % margin on every side (clipped)
    w, h = boxes1[1][2], boxes1[1][3]
    assert abs(by.loc["one.jpg#12", "width"] - 1.2 * w) <= 2 and abs(by.loc["one.jpg#12", "height"] - 1.2 * h) <= 2
    # The same clip art in two files is a near duplicate; two objects of one file are not exact copies.
    pairs = {frozenset(rel(p, root)) for p in zip(scan.duplicates()["path_a"], scan.duplicates()["path_b"])}
    assert frozenset({"one.jpg#11", "two.png#21"}) in pairs
    assert len(scan.issues("exact_duplicate")) == 0
    # Re-scan: only the crop whose box changed is analysed again.
    coco["annotations"][1]["bbox"] = [boxes1[1][0] + 4, boxes1[1][1], boxes1[1][2] - 4, boxes1[1][3]]
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    run_cli("scan", root, "-o", tmp_path / "w", "--coco", tmp_path / "ann.json", "--objects", "-q")
    again = vislint.load(tmp_path / "w")
    assert again.run["counts"]["analysed"] == 1 and again.run["counts"]["reused"] == 3
    # Without --objects, each image gets the majority label of its boxes.
    img = vislint.scan(root, tmp_path / "w2", coco=tmp_path / "ann.json", model="none", progress=False)
    assert dict(zip(rel(img.labels()["path"], root), img.labels()["label"])) == {"one.jpg": "third", "two.png": "first"}


def test_yolo_objects_and_inputs_from_the_dataset(tmp_path):
    root = tmp_path / "yolo"
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    a, b = _clipart(3, 120), _clipart(4, 120)
    canvas, boxes = _canvas([(a, (20, 40)), (b, (300, 100))], size=(480, 320))
    canvas.save(root / "images" / "val" / "scene.png")
    lines = [f"{cls} {(x + w / 2) / 480:.6f} {(y + h / 2) / 320:.6f} {w / 480:.6f} {h / 320:.6f}"
             for cls, (x, y, w, h) in zip((1, 0), boxes)]
    (root / "labels" / "val" / "scene.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("names: [cat, dog]\n")
    scan = vislint.scan(None, tmp_path / "w", yolo=root, objects=True, model="none", progress=False)
    labels = scan.labels()
    assert sorted(rel(labels["path"], root / "images")) == ["val/scene.png#1", "val/scene.png#2"]
    assert dict(zip(rel(labels["path"], root / "images"), labels["label"])) == {"val/scene.png#1": "dog",
                                                                               "val/scene.png#2": "cat"}
    assert set(labels["split"]) == {"val"}
    (root / "labels" / "val" / "scene.txt").write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(vislint.VislintError, match=r"scene.txt:1: expected 'class x_center"):
        vislint.scan(None, tmp_path / "w", yolo=root, objects=True, model="none", progress=False)


def test_labels_dataframe_and_bad_label_input(tmp_path, corpus):
    root, truth = corpus
    files = sorted(str(root / f) for f in truth["base"])[:6]
    df = pd.DataFrame({"path": files + [str(root / "nope.png")], "label": ["a", "b"] * 3 + ["c"]})
    scan = vislint.scan(root, tmp_path / "w", labels=df, model="none", progress=False)
    assert scan.run["counts"]["missing_label_files"] == 1
    assert scan.run["counts"]["labelled"] == 6
    assert sorted(scan.labels()["label"].dropna()) == ["a", "a", "a", "b", "b", "b"]
    (tmp_path / "bad.csv").write_text("path,label\nx.png,cat,extra\n")
    proc = run_cli("scan", root, "-o", tmp_path / "w3", "--labels", tmp_path / "bad.csv", "--model", "none",
                   check=False)
    assert proc.returncode == 2
    assert "bad.csv:2: expected 2 fields like the header, found 3" in proc.stderr
    proc = run_cli("scan", root, "-o", tmp_path / "w4", "--objects", check=False)
    assert proc.returncode == 2 and "--objects needs boxes" in proc.stderr
    with pytest.raises(vislint.VislintError, match="labels DataFrame needs columns"):
        vislint.scan(root, tmp_path / "w5", labels=pd.DataFrame({"file": []}), progress=False)


def test_warns_when_near_duplicates_are_not_discriminative(fashion, tmp_path, capfd):
    root, truth, scan = fashion
    work = tmp_path / "w"
    shutil.copytree(scan.work_dir, work)  # the same analysis: thresholds are re-derived only
    # Without the pixel check of small images, looser similarity pairs look-alike products.
    loose = vislint.scan(root, work, labels=root / "labels.csv", near_duplicate_threshold=0.6,
                         small_copy_threshold=0, progress=False, report=False)
    assert loose.run["counts"]["analysed"] == 0
    pairs = loose.summary().set_index("type")["count"]["near_duplicate"]
    assert pairs > truth["n_items"]
    err = capfd.readouterr().err
    assert f"near_duplicate: {pairs} pairs among" in err and "--near-duplicate-threshold 0.95" in err
    assert any(w.startswith(f"near_duplicate: {pairs} pairs among") for w in loose.run["warnings"])
    strict = vislint.scan(root, work, labels=root / "labels.csv", progress=False, report=False)
    assert strict.summary().set_index("type")["count"]["near_duplicate"] < truth["n_items"]
    assert "near_duplicate:" not in capfd.readouterr().err
    assert strict.run["warnings"] == []


def test_cli_classes_summary(fashion, corpus, tmp_path):
    root, truth, scan = fashion
    proc = run_cli("classes", scan.work_dir, "--format", "json")
    data = json.loads(proc.stdout)
    counts = {row["label"]: int(row["count"]) for row in data["classes"]}
    assert set(counts) == set(vt.FASHION_CLASSES) and sum(counts.values()) == truth["n_items"]
    assert sum(int(r["count"]) for r in data["confused"]) == len(scan.label_issues())
    table = run_cli("classes", scan.work_dir).stdout
    assert table.splitlines()[0].split()[:2] == ["label", "count"]
    unlabelled = tmp_path / "w"
    vislint.scan(corpus[0], unlabelled, model="none", progress=False, report=False)
    proc = run_cli("classes", unlabelled, check=False)
    assert proc.returncode == 1 and "no labels" in proc.stderr
