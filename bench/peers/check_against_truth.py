#!/usr/bin/env python3
"""Quick sanity check of an adapter's JSON against vislint.testing's truth file.
  python3 check_against_truth.py OUT.json [--data /tmp/peer-data]"""
import argparse, json, os
ap = argparse.ArgumentParser(); ap.add_argument("out", nargs="+"); ap.add_argument("--data", default="/tmp/peer-data")
a = ap.parse_args()
root = os.path.abspath(a.data)
truth = json.load(open(root + ".truth.json", encoding="utf-8"))
ab = lambda p: os.path.join(root, p)
for o in a.out:
    r = json.load(open(o, encoding="utf-8"))
    f = r["findings"]
    allpairs = {frozenset(p[:2]) for k in ("near_duplicate", "exact_duplicate") for p in f.get(k, [])}
    print(f"== {r['peer']} {r['version']}  {r['seconds']}s  {r['peak_rss_mb']}MB  "
          f"pairs={len(allpairs)} (exact={len(f.get('exact_duplicate', []))})")
    for key in ("exact_duplicates", "pixel_duplicates", "near_duplicates"):
        got = [p for p in truth[key] if frozenset((ab(p[0]), ab(p[1]))) in allpairs]
        miss = [p[1] + (" [" + p[2] + "]" if len(p) > 2 else "") for p in truth[key] if frozenset((ab(p[0]), ab(p[1]))) not in allpairs]
        print(f"  {key}: {len(got)}/{len(truth[key])} found; missed: {miss}")
    for key, ours in (("broken", "broken"), ("dark", "dark"), ("bright", "bright"), ("blurry", "blurry"),
                      ("grayscale", "grayscale"), ("odd_aspect_ratio", "odd_aspect_ratio"),
                      ("odd_size", "odd_size"), ("low_information", "low_information")):
        if not r["supported"].get(ours):
            continue
        want = {ab(p) for p in truth[key]}
        got = set(f.get(ours, []))
        print(f"  {ours}: TP {len(want & got)}/{len(want)}, extra {len(got - want)}: "
              f"{sorted(os.path.relpath(p, root) for p in got - want)[:8]}")
    if r["supported"].get("outlier") and f.get("outlier"):
        top = [os.path.relpath(p, root) for p, _ in sorted(f["outlier"], key=lambda x: -x[1])[:5]]
        print(f"  outlier top5: {top}")
