#!/usr/bin/env python3
"""Writes the figures of the last `make fuzz` into docs/reliability.md and says whether it found
anything.

Reads the JSON summaries of run_libfuzzer.py and mutate_scan.py and replaces the text between the
`<!-- fuzz-figures:begin -->` and `<!-- fuzz-figures:end -->` markers of the doc, so a re-run after
a fix refreshes the table. Exit status 1 when either fuzzer found a crash, hang, out-of-memory,
disagreement, missing row, run error or modified input (the figures are written first).

Usage: fuzz_report.py --libfuzzer F.json --mutate F.json --doc docs/reliability.md
"""
import argparse
import json
import os
import sys

BEGIN = "<!-- fuzz-figures:begin -->"
END = "<!-- fuzz-figures:end -->"


def minutes(seconds):
    return f"{seconds / 60:.1f} min"


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(lf, mu):
    singles = mu["scanned_alone"]
    rows = [
        "| Fuzzer | Files tried / executions | Crashes | Hangs | Out of memory | Disagreements | Date | Duration |",
        "|---|---|---|---|---|---|---|---|",
        f"| `decode_fuzz` (libFuzzer, ASan + UBSan) | {lf['executions']:,} executions "
        f"(corpus {lf['corpus']}, coverage {lf['coverage']}) | {lf['crashes']} | {lf['hangs']} | "
        f"{lf['ooms']} | state findings below | {lf['date']} | {minutes(lf['seconds'])} |",
        f"| `mutate_scan.py` (vislint scan) | {mu['files_tried']:,} files "
        f"({mu['mutated']} mutated + {mu['unmodified_seeds']} unmodified seeds) x "
        f"{mu['batch_scans']} batch scans, {singles} also scanned alone | "
        f"{len(mu['crashes'])} | {len(mu['hangs'])} | — | {len(mu['disagreements'])} | "
        f"{mu['date']} | {minutes(mu['seconds'])} |",
    ]
    lines = rows + [""]
    if lf["findings"]:
        lines.append(f"`decode_fuzz` findings ({lf['saved_inputs']} inputs saved under "
                     f"`{lf['crash_dir']}`, {lf['reproduced']} re-run to read their reason):")
        lines.append("")
        for g in lf["findings"]:
            lines.append(f"- {g['inputs']} x {cell(g['reason'])}")
        lines.append("")
    else:
        lines += ["`decode_fuzz`: no findings.", ""]

    findings = []
    for e in mu["crashes"]:
        findings.append(f"- crash in {e['run']}: {cell(e['detail'])}")
    for e in mu["hangs"]:
        findings.append(f"- hang in {e['run']}: {cell(e['detail'])}")
    for e in mu["run_errors"]:
        findings.append(f"- run error in {e['run']}: {cell(e['detail'])}")
    if mu["row_problems"]:
        findings.append(f"- {len(mu['row_problems'])} files without exactly one `images` row")
    if mu["non_utf8_text"]:
        ex = ", ".join(f"`{os.path.basename(e['file'])}`" for e in mu["non_utf8_text"][:3])
        findings.append(f"- {len(mu['non_utf8_text'])} `images` rows with text that is not UTF-8 "
                        f"(e.g. {ex})")
    if mu["inputs_modified"]:
        findings.append(f"- {len(mu['inputs_modified'])} input files modified by a scan")
    if mu["disagreements"]:
        # Group by how the statuses differ, e.g. "ok alone, corrupt in a batch".
        kinds = {}
        for d in mu["disagreements"]:
            st = d["status"]
            alone = st.get("alone")
            others = sorted({s for r, s in st.items() if r != "alone"})
            key = (f"{alone} alone, {' / '.join(others)} in batches" if alone
                   else f"batches disagree: {' / '.join(others)} (not scanned alone)")
            kinds.setdefault(key, []).append(d["file"])
        findings.append(f"- {len(mu['disagreements'])} files whose status depends on the scan "
                        "(order, thread count or company):")
        for key, files in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
            example = ", ".join(f"`{f}`" for f in files[:3])
            findings.append(f"  - {len(files)} x {key} (e.g. {example})")
    if findings:
        lines.append("`mutate_scan.py` findings (details in `build/fuzz/mutate.json`):")
        lines.append("")
        lines += findings
    else:
        lines.append("`mutate_scan.py`: no findings.")
    return "\n".join(lines)


def found_anything(lf, mu):
    return bool(lf["crashes"] or lf["hangs"] or lf["ooms"] or lf["saved_inputs"] or
                mu["crashes"] or mu["hangs"] or mu["run_errors"] or mu["row_problems"] or
                mu["disagreements"] or mu["inputs_modified"] or mu["non_utf8_text"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--libfuzzer", required=True)
    ap.add_argument("--mutate", required=True)
    ap.add_argument("--doc", required=True)
    args = ap.parse_args()
    with open(args.libfuzzer) as f:
        lf = json.load(f)
    with open(args.mutate) as f:
        mu = json.load(f)
    with open(args.doc) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc or doc.index(BEGIN) > doc.index(END):
        sys.exit(f"fuzz_report.py: {args.doc} has no {BEGIN} ... {END} block to update")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(args.doc, "w") as f:
        f.write(head + BEGIN + "\n" + render(lf, mu) + "\n" + END + tail)
    print(f"fuzz_report.py: figures written to {args.doc}")
    if found_anything(lf, mu):
        print("fuzz_report.py: the fuzzers found problems (listed above and in the doc)")
        sys.exit(1)
    print("fuzz_report.py: no findings")


if __name__ == "__main__":
    main()
