#!/usr/bin/env python3
"""fastdup adapter for label issues (wrong labels), v1 API, bundled ONNX model, CPU, offline.

Run in build/peers/fastdup-venv with SENTRY_OPT_OUT=1 (set here too, before import):
  python run_fastdup_labels.py --input DIR --labels LABELS.csv --out OUT.json [--workdir TMP]
      [--nearest-neighbors-k K]   (default: not passed, i.e. fastdup's own default k=2)

LABELS.csv: columns path,label[,split], paths relative to the CSV's folder (as for vislint/cleanlab).
1. fd = fastdup.create(work_dir, input_dir); fd.run(annotations=df, overwrite=True) with
   df = {filename, label, split}; everything else at fastdup's defaults (threshold 0.9,
   nearest_neighbors_k 2, ...). fastdup embeds the images itself (its bundled model), so
   "seconds" includes the embedding. filename must be ABSOLUTE: the run() docstring says
   "relative path to the image wrt input_dir", but 2.54 resolves relative names against the
   process's cwd ("Missing file train/... - file does not exist", then "Fastdup execution failed").
2. Label disagreement = fastdup's own API: fd.vis.similarity_gallery(slice="diff") (fastdup's
   reserved slice for "similar images with a different class label"; it maps to
   create_similarity_gallery(slice="label_score")). For every image that has >= min_items=2
   (default) rows in fastdup's similarity file (its nearest neighbours with cosine similarity >=
   threshold 0.9, at most nearest_neighbors_k per image), fastdup returns
   score = 100 * share of those neighbours whose label equals the image's label
   ("low score may indicate class label issues"). Our score = 1 - fastdup_score / 100
   (higher = more likely mislabelled). Images without such a row get no score (listed in
   "coverage"; the caller decides what to do with them).
   flagged = fastdup_score < 51, the cut of fastdup's documented wrong-label example
   (delete_or_retag_stats_outliers(df, metric='score', filename_col='from', lower_threshold=51));
   computed directly, the function itself only prints `rm` lines in dry-run mode.
3. Cross-check (not timed): the same share recomputed from fd.similarity() rows
   (label_from/label_to); "crosscheck" counts disagreements with the gallery's score (expected 0).
"seconds" = fastdup.create + run + similarity_gallery (the gallery also writes a 20-image HTML page
to WORKDIR/galleries; that is part of the call). Output: {"peer", "version", "seconds",
"seconds_run", "seconds_label_score", "peak_rss_mb", "scores": {abs_path: score}, "flagged":
[abs_path...], "fastdup_score_counts", "coverage", "settings", "crosscheck", "notes", ...}.
"""
import csv
import json
import os
import sys
import tempfile

os.environ.setdefault("SENTRY_OPT_OUT", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer_common as C  # noqa: E402

FLAG_BELOW = 51.0  # fastdup's documented example: wrong labels = similarity-gallery score < 51


def norm(p):
    return os.path.realpath(os.path.abspath(p))


def read_labels(csv_path):
    base = os.path.dirname(os.path.abspath(csv_path))
    rows, dup, empty = {}, 0, 0
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rd = csv.DictReader(fh)
        if not rd.fieldnames or "path" not in rd.fieldnames or "label" not in rd.fieldnames:
            raise SystemExit(f"{csv_path}: needs columns 'path' and 'label' (has {rd.fieldnames})")
        has_split = "split" in rd.fieldnames
        for r in rd:
            if not r["label"]:
                empty += 1
                continue
            p = norm(os.path.join(base, r["path"]))
            dup += p in rows
            rows[p] = (r["label"], r.get("split") or "") if has_split else (r["label"], None)
    return rows, has_split, {"csv_labelled_rows": len(rows) + dup, "csv_duplicate_paths": dup,
                             "csv_rows_without_label": empty}


def main():
    def extra(ap):
        ap.add_argument("--labels", required=True, help="CSV with columns path,label[,split] (paths relative to it)")
        ap.add_argument("--nearest-neighbors-k", type=int, default=None,
                        help="passed to fd.run() only when given (fastdup's default is 2)")

    args = C.parse_args(extra)
    import pandas as pd

    import fastdup

    res = C.new_result("fastdup", str(fastdup.__version__))
    del res["findings"]  # label issues use "scores"/"flagged" (like run_cleanlab.py), not findings
    res["supported"]["label_issue"] = True
    indir = norm(args.input)
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="fastdup-labels-work-"))
    os.makedirs(workdir, exist_ok=True)
    labels, has_split, stats = read_labels(args.labels)
    inside = {p: v for p, v in labels.items() if p.startswith(indir + os.sep) and os.path.isfile(p)}
    stats["labelled_outside_input_or_missing"] = len(labels) - len(inside)
    n_disk = sum(1 for d, _, fs in os.walk(indir) for f in fs
                 if f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")))
    stats["images_under_input"] = n_disk
    stats["images_under_input_without_label"] = n_disk - len(inside)  # not given to fastdup at all
    files = sorted(inside)
    df = pd.DataFrame({"filename": files, "label": [inside[p][0] for p in files]})
    if has_split:
        df["split"] = [inside[p][1] for p in files]
    run_kw = {} if args.nearest_neighbors_k is None else {"nearest_neighbors_k": args.nearest_neighbors_k}

    gal_dir = os.path.join(workdir, "galleries")
    step = "fastdup.create/fd.run(annotations=...)"
    try:
        with C.Timer() as t_run:
            fd = fastdup.create(work_dir=workdir, input_dir=indir)
            fd.run(annotations=df, overwrite=True, **run_kw)
        step = "fd.vis.similarity_gallery(slice='diff')"
        with C.Timer() as t_lab:
            ret = fd.vis.similarity_gallery(slice="diff", show=False, save_path=gal_dir)
    except Exception as e:  # noqa: BLE001  (a failure is a result: write "not supported")
        res["supported"]["label_issue"] = False
        res["scores"], res["flagged"], res["alignment"] = {}, [], stats
        res["error"] = f"{step}: {type(e).__name__}: {e}"[:2000]
        res["notes"].append(f"not supported: {step} failed: {type(e).__name__}: {str(e)[:300]}")
        _write(res, args.out)
        return
    res["seconds_run"] = round(t_run.seconds, 3)
    res["seconds_label_score"] = round(t_lab.seconds, 3)
    res["seconds"] = round(t_run.seconds + t_lab.seconds, 3)
    res["workdir"] = workdir
    cfg = getattr(fd, "_config", {}) or {}
    res["settings"] = {k: cfg.get(k) for k in ("threshold", "lower_threshold", "distance", "nearest_neighbors_k",
                                                "model_path", "d", "nn_provider", "nnf_mode")}
    res["settings"]["similarity_gallery"] = {"slice": "diff (-> label_score, ascending)", "min_items": 2,
                                             "flag": f"fastdup score < {FLAG_BELOW:g}"}
    res["api"] = ("fd.run(annotations=DataFrame[filename (absolute), label" + (", split" if has_split else "")
                  + "]) then fd.vis.similarity_gallery(slice='diff') -> DataFrame(from, to, label, label2, "
                  "distance, score 0..100, length)")
    annot = fd.annotations(valid_only=False)
    valid = annot[annot["is_valid"].astype(bool)] if "is_valid" in annot.columns else annot
    stats["given_to_fastdup"] = len(df)
    stats["valid_in_fastdup"] = int(len(valid))
    stats["invalid_in_fastdup"] = int(len(annot) - len(valid))
    if "error_code" in annot.columns:
        stats["fastdup_error_codes"] = {str(k): int(v) for k, v in annot["error_code"].value_counts().items()
                                        if k != "VALID"}
    res["alignment"] = stats

    if not isinstance(ret, pd.DataFrame) or "score" not in getattr(ret, "columns", []):
        res["scores"], res["flagged"] = {}, []
        res["supported"]["label_issue"] = False
        res["notes"].append(f"not supported: fd.vis.similarity_gallery(slice='diff') returned {ret!r} "
                            f"(fastdup swallows the exception; see its log above)")
        _write(res, args.out)
        return

    fd_score = {norm(str(f)): float(s) for f, s in zip(ret["from"], ret["score"])}
    lengths = {norm(str(f)): int(n) for f, n in zip(ret["from"], ret["length"])}
    res["scores"] = {p: round(1.0 - s / 100.0, 6) for p, s in sorted(fd_score.items())}
    res["flagged"] = sorted(p for p, s in fd_score.items() if s < FLAG_BELOW)
    counts = {}
    for s in fd_score.values():
        counts[f"{s:g}"] = counts.get(f"{s:g}", 0) + 1
    res["fastdup_score_counts"] = dict(sorted(counts.items(), key=lambda kv: float(kv[0])))
    ncount = {}
    for n in lengths.values():
        ncount[str(n)] = ncount.get(str(n), 0) + 1
    res["neighbours_per_scored_image"] = ncount

    # Cross-check against the raw similarity rows (untimed) and coverage of the labelled images.
    sim = fd.similarity()
    share, n_rows = {}, {}
    if sim is not None and len(sim):
        for f, lf, lt in zip(sim["filename_from"], sim["label_from"], sim["label_to"]):
            p = norm(str(f))
            a = share.setdefault(p, [0, 0])
            a[0] += str(lf) == str(lt)
            a[1] += 1
        n_rows = {p: v[1] for p, v in share.items()}
    mism = [p for p, s in fd_score.items() if p in share and abs(100.0 * share[p][0] / share[p][1] - s) > 1e-6]
    res["crosscheck"] = {"scored_by_gallery": len(fd_score), "with_similarity_rows": len(share),
                         "gallery_score_differs_from_similarity_rows": len(mism),
                         "gallery_scored_without_similarity_rows": sum(p not in share for p in fd_score)}
    valid_files = {norm(str(f)) for f in valid["filename"]}
    no_score = valid_files - set(fd_score)
    res["coverage"] = {"labelled": len(labels), "scored": len(fd_score),
                       "not_scored": len(labels) - len(fd_score),
                       "not_scored_no_similarity_row": sum(n_rows.get(p, 0) == 0 for p in no_score),
                       "not_scored_one_similarity_row": sum(n_rows.get(p, 0) == 1 for p in no_score),
                       "not_scored_invalid_or_not_given": len(labels) - len(valid_files & set(labels))}
    k = cfg.get("nearest_neighbors_k")
    res["notes"] += [
        "fastdup's own label-disagreement API: fd.vis.similarity_gallery(slice='diff') -> per-image score = "
        "100 * share of its similarity-file neighbours (cosine >= threshold "
        f"{cfg.get('threshold')}, at most nearest_neighbors_k={k}) with the same label, for images with >= 2 such "
        "neighbours (min_items=2); ranking score = 1 - score/100, flagged = score < 51 (fastdup's documented "
        "wrong-label example)",
        f"with nearest_neighbors_k={k} the score takes only {k + 1 if isinstance(k, int) else '?'} values "
        "(0, 1/k, ..., 1), so the ranking is mostly ties",
        "fd.run() filenames must be absolute in 2.54 (relative ones are resolved against the cwd, not input_dir)",
        "seconds include fastdup's own embedding (bundled UndisclosedFastdupModel.ort, no download)"]
    _write(res, args.out)


def _write(res, out):
    total, own, kids = C.peak_rss_mb()
    res["peak_rss_mb"] = total
    res["peak_rss_detail_mb"] = {"self": own, "children_max": kids}
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
    print(f"[fastdup-labels] {res['seconds']}s peak_rss={total}MB scored={len(res.get('scores', {}))} "
          f"flagged={len(res.get('flagged', []))} -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
