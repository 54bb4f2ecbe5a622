#!/usr/bin/env python3
"""cleanlab adapter: label issues from out-of-fold pred_probs on vislint's own embeddings.

Run in build/peers/cleanlab-venv:
  python run_cleanlab.py --features WORK/features.npy --db WORK/vislint.db --labels LABELS.csv \
      --out OUT.json [--folds 5] [--classifier knn|logreg|both] [--path-root DIR]
Rows are aligned as images.id -> features.npy row -> images.path (resolved against --path-root,
default the current directory, i.e. run from where `vislint scan` ran) == CSV ``path`` resolved
against the CSV's folder (absolute, normalised, symlinks resolved). Images that are not 'ok', have
an all-zero feature row, or have no CSV label are left out (counted in "alignment").
pred_probs = cross_val_predict(clf, X, y, method='predict_proba', cv=StratifiedKFold(folds,
shuffle=True, random_state=0)) with
  knn:    KNeighborsClassifier(n_neighbors=10, metric='cosine', weights='distance', algorithm='brute')
  logreg: LogisticRegression(max_iter=1000)   (sklearn defaults otherwise: lbfgs, C=1)
then cleanlab.filter.find_label_issues(labels, pred_probs) (defaults: prune_by_noise_rate) ->
"flagged", and cleanlab.rank.get_label_quality_scores(labels, pred_probs) (default
self_confidence) -> "scores" = 1 - label quality (higher = more likely mislabelled).
"seconds" per classifier = cross_val_predict + both cleanlab calls (alignment/IO excluded).
"""
import argparse
import csv
import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer_common as C  # noqa: E402

CLASSIFIERS = ("knn", "logreg")


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", required=True, help="vislint features.npy (row = images.id)")
    ap.add_argument("--db", required=True, help="vislint.db (SQLite, table images)")
    ap.add_argument("--labels", required=True, help="CSV with columns path,label (paths relative to the CSV)")
    ap.add_argument("--out", required=True, help="output JSON path")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--classifier", choices=CLASSIFIERS + ("both",), default="both")
    ap.add_argument("--path-root", default=".",
                    help="folder that relative images.path values are relative to (default: cwd)")
    return ap.parse_args()


def norm(p):
    return os.path.realpath(os.path.abspath(p))


def read_labels(csv_path):
    base = os.path.dirname(os.path.abspath(csv_path))
    out, dup = {}, 0
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rd = csv.DictReader(fh)
        if not rd.fieldnames or "path" not in rd.fieldnames or "label" not in rd.fieldnames:
            raise SystemExit(f"{csv_path}: needs columns 'path' and 'label' (has {rd.fieldnames})")
        for row in rd:
            p = norm(os.path.join(base, row["path"]))
            dup += p in out
            out[p] = row["label"]
    return out, dup


def align(features_path, db_path, labels_path, path_root):
    import numpy as np

    feats = np.load(features_path, mmap_mode="r")
    labels, dup = read_labels(labels_path)
    con = sqlite3.connect(f"file:{os.path.abspath(db_path)}?mode=ro", uri=True)
    rows = con.execute("SELECT id, path, status FROM images ORDER BY id").fetchall()
    con.close()
    stats = {"csv_rows": len(labels) + dup, "csv_duplicate_paths": dup, "db_images": len(rows),
             "not_ok": 0, "no_feature_row": 0, "zero_feature": 0, "no_label": 0}
    ids, paths, ys = [], [], []
    for i, p, status in rows:
        ap = norm(os.path.join(path_root, p))
        if status != "ok":
            stats["not_ok"] += 1
            continue
        if i >= feats.shape[0]:
            stats["no_feature_row"] += 1
            continue
        if ap not in labels:
            stats["no_label"] += 1
            continue
        ids.append(i)
        paths.append(ap)
        ys.append(labels[ap])
    X = np.asarray(feats[np.asarray(ids, dtype=np.int64)], dtype=np.float32) if ids \
        else np.zeros((0, feats.shape[1]), np.float32)
    nz = np.abs(X).sum(axis=1) > 0
    stats["zero_feature"] = int((~nz).sum())
    X = X[nz]
    paths = [p for p, k in zip(paths, nz) if k]
    ys = [y for y, k in zip(ys, nz) if k]
    stats["items"] = len(paths)
    stats["labelled_not_in_db"] = len(set(labels) - {norm(os.path.join(path_root, p)) for _, p, _ in rows})
    return X, paths, ys, stats


def make_clf(name):
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier
        return KNeighborsClassifier(n_neighbors=10, metric="cosine", weights="distance", algorithm="brute")
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(max_iter=1000)


def run_one(name, X, y, folds):
    import warnings

    import numpy as np
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    notes = []
    with C.Timer() as t_cv, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        pred = cross_val_predict(make_clf(name), X, y, method="predict_proba",
                                 cv=StratifiedKFold(folds, shuffle=True, random_state=0))
    conv = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if conv:
        notes.append(f"{conv} ConvergenceWarning(s) during cross_val_predict")
    with C.Timer() as t_cl:
        issues = find_label_issues(labels=y, pred_probs=pred)
        quality = get_label_quality_scores(labels=y, pred_probs=pred)
    acc = float((pred.argmax(1) == y).mean())
    return pred, np.asarray(issues, bool), np.asarray(quality, float), {
        "seconds": round(t_cv.seconds + t_cl.seconds, 3),
        "seconds_cross_val_predict": round(t_cv.seconds, 3),
        "seconds_cleanlab": round(t_cl.seconds, 3),
        "oof_accuracy_vs_given": round(acc, 4),
        "notes": notes}


def main():
    args = parse_args()
    import numpy as np
    import cleanlab
    import sklearn

    with C.Timer() as t_al:
        X, paths, names, stats = align(args.features, args.db, args.labels, os.path.abspath(args.path_root))
    if not paths:
        raise SystemExit(f"no image aligned between {args.db} and {args.labels} "
                         f"(check --path-root; alignment: {stats})")
    dropped = {k: v for k, v in stats.items()
               if k not in ("csv_rows", "db_images", "items") and v}
    if dropped:
        print(f"[cleanlab] WARNING: alignment dropped/mismatched: {dropped}", file=sys.stderr)
    classes = sorted(set(names))
    y = np.array([classes.index(c) for c in names], dtype=np.int64)
    res = {"peer": "cleanlab", "version": cleanlab.__version__, "sklearn_version": sklearn.__version__,
           "seconds": None, "peak_rss_mb": None, "folds": args.folds, "classes": classes,
           "alignment": stats, "alignment_seconds": round(t_al.seconds, 3), "classifier": {},
           "notes": ["scores = 1 - cleanlab.rank.get_label_quality_scores (self_confidence); "
                     "flagged = cleanlab.filter.find_label_issues (prune_by_noise_rate); "
                     "features = vislint's own embeddings, so this compares the label step only"]}
    todo = CLASSIFIERS if args.classifier == "both" else (args.classifier,)
    for name in todo:
        _, issues, quality, info = run_one(name, X, y, args.folds)
        info["scores"] = {p: round(float(1.0 - q), 6) for p, q in zip(paths, quality)}
        info["flagged"] = sorted(p for p, f in zip(paths, issues) if f)
        res["classifier"][name] = info
        print(f"[cleanlab/{name}] {info['seconds']}s oof_acc={info['oof_accuracy_vs_given']} "
              f"flagged={len(info['flagged'])}/{len(paths)}", file=sys.stderr)
    res["seconds"] = round(sum(v["seconds"] for v in res["classifier"].values()), 3)
    total, own, kids = C.peak_rss_mb()
    res["peak_rss_mb"] = total
    res["peak_rss_detail_mb"] = {"self": own, "children_max": kids}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
    print(f"[cleanlab] {res['seconds']}s peak_rss={total}MB items={stats['items']} -> {args.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
