#!/usr/bin/env python3
"""cleanvision adapter: Imagelab(data_path=DIR).find_issues() with all default issue types.

Run in build/peers/cleanvision-venv:
  python run_cleanvision.py --input DIR --out OUT.json
Mapping: dark->dark, light->bright, blurry, low_information, grayscale, odd_aspect_ratio,
odd_size (flagged rows of imagelab.issues), exact_duplicates / near_duplicates ->
every pair inside each reported set (score 1.0: cleanvision gives sets, not pair scores).
"""
import os
import sys
import itertools

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer_common as C  # noqa: E402

PROPERTY_MAP = {"dark": "dark", "light": "bright", "blurry": "blurry",
                "low_information": "low_information", "grayscale": "grayscale",
                "odd_aspect_ratio": "odd_aspect_ratio", "odd_size": "odd_size"}
DUP_MAP = {"exact_duplicates": "exact_duplicate", "near_duplicates": "near_duplicate"}


def main():
    args = C.parse_args()
    import cleanvision
    from cleanvision import Imagelab
    res = C.new_result("cleanvision", cleanvision.__version__)
    indir = os.path.abspath(args.input)
    for k in list(PROPERTY_MAP.values()) + list(DUP_MAP.values()):
        res["supported"][k] = True
    try:
        with C.Timer() as t:
            lab = Imagelab(data_path=indir, verbose=False)
            lab.find_issues(verbose=False)
        res["seconds"] = round(t.seconds, 3)
        res["excluded_by_adapter"] = []
    except Exception as e:  # noqa: BLE001  cleanvision aborts on the first undecodable file
        res["notes"].append(f"Imagelab(data_path=DIR).find_issues() CRASHED after {t.seconds:.2f}s "
                            f"on an undecodable file: {type(e).__name__}: {e}. Adapter retried with "
                            "Imagelab(filepaths=...) minus files PIL cannot fully decode (pre-filter "
                            "time NOT included in 'seconds'; see 'prefilter_seconds', 'excluded_by_adapter')")
        from cleanvision.utils.utils import get_filepaths
        from PIL import Image
        with C.Timer() as tf:
            good, bad = [], []
            for fp in get_filepaths(indir):
                try:
                    with Image.open(fp) as im:
                        im.load()
                    good.append(fp)
                except Exception as e2:  # noqa: BLE001
                    bad.append([os.path.abspath(fp), f"{type(e2).__name__}: {e2}"])
        res["prefilter_seconds"] = round(tf.seconds, 3)
        res["excluded_by_adapter"] = bad
        with C.Timer() as t:
            lab = Imagelab(filepaths=good, verbose=False)
            lab.find_issues(verbose=False)
        res["seconds"] = round(t.seconds, 3)
    issues = lab.issues
    res["default_issue_types"] = list(lab.list_default_issue_types())
    res["issue_summary"] = {r["issue_type"]: int(r["num_images"])
                            for _, r in lab.issue_summary.iterrows()}
    for theirs, ours in PROPERTY_MAP.items():
        col = f"is_{theirs}_issue"
        if col not in issues.columns:
            res["notes"].append(f"column {col} missing from imagelab.issues")
            continue
        res["findings"][ours] = [os.path.abspath(p) for p in issues.index[issues[col].astype(bool)]]
    for theirs, ours in DUP_MAP.items():
        sets = lab.info.get(theirs, {}).get("sets", [])
        pairs = []
        for s in sets:
            for a, b in itertools.combinations(sorted(s), 2):
                pairs.append([os.path.abspath(a), os.path.abspath(b), 1.0])
        res["findings"][ours] = C.uniq_pairs(pairs)
        res[theirs + "_sets"] = [sorted(os.path.abspath(p) for p in s) for s in sets]
    # everything cleanvision enumerated vs what's on disk (it globs only some extensions)
    from cleanvision.utils.utils import get_filepaths
    seen = {os.path.abspath(p) for p in get_filepaths(indir)}
    on_disk = sorted(os.path.abspath(os.path.join(d, f)) for d, _, fs in os.walk(indir) for f in fs)
    res["not_scanned_files"] = [p for p in on_disk if p not in seen]
    res["notes"].append("exact/near duplicate scores are 1.0 placeholders: cleanvision reports "
                        "duplicate SETS (exact = md5 of decoded pixels, near = imagehash at cleanvision defaults), "
                        "pairs are all combinations within a set")
    res["notes"].append("no broken-image, outlier or label-issue check in cleanvision's image-only mode; "
                        f"it scans only extensions {C_EXTS()}; 'not_scanned_files' lists the rest "
                        f"({len(res['not_scanned_files'])} files)")
    res["scores_columns"] = [c for c in issues.columns if c.endswith("_score")]
    C.write(res, args.out)


def C_EXTS():
    from cleanvision.utils.constants import IMAGE_FILE_EXTENSIONS
    return sorted({e.lower() for e in IMAGE_FILE_EXTENSIONS})


if __name__ == "__main__":
    main()
