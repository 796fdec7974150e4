#!/usr/bin/env python3
"""Compares the outputs of a faulted run with an uninterrupted one, record by record.

    compare_runs.py WORK GUARANTEE KIND...

For each KIND (alerts, episodes, dlq, late: `latency dump` JSON lines; files: the alert files'
own lines) it reads WORK/KIND.base.jsonl and WORK/KIND.chaos.jsonl, keys every record by what
it is about (an alert by patient, window and revision; an episode by patient, id, state and
window; a dead or late record by its source partition and offset) and counts what the faulted
run is missing, has extra, has twice, or has with other content. It prints a table and
`discrepancies=N`. With at-least-once, byte-identical repeats are reported but not counted (that
mode promises no more). Used by examples/chaos.sh and examples/chaos-cluster.sh.
"""
import collections
import json
import sys


def ident(kind, r):
    if kind in ("alerts", "episodes"):
        v = json.loads(r["value"])
        if kind == "alerts":
            return (v["patient_id"], v["window_start"], v["revision"])
        return (v["patient_id"], v["episode_id"], v["state"], v["window_start"])
    if kind == "files":
        return (r["patient_id"], r["window_start"], r["revision"])
    h = r["headers"]
    return (h["hr.source.partition"], h["hr.source.offset"])


def content(kind, r, line):
    if kind in ("dlq", "late"):
        return (r["key"], r["value"], r["headers"].get("hr.error.code"))
    if kind == "files":
        return line
    return (r["key"], r["value"])


def read(path, kind):
    got = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            got[ident(kind, r)].append(content(kind, r, line))
    return got


def main():
    work, guarantee, kinds = sys.argv[1], sys.argv[2], sys.argv[3:]
    rows, bad = [], 0
    for kind in kinds:
        base = read(f"{work}/{kind}.base.jsonl", kind)
        chaos = read(f"{work}/{kind}.chaos.jsonl", kind)
        base_dups = sum(len(v) - 1 for v in base.values())
        missing = sum(1 for k in base if k not in chaos)
        extra = sum(1 for k in chaos if k not in base)
        dups = sum(len(v) - 1 for v in chaos.values())
        differing_dups = sum(1 for v in chaos.values() if len(set(v)) > 1)
        wrong = sum(1 for k, v in chaos.items() if k in base and any(c != base[k][0] for c in v))
        n_base = sum(len(v) for v in base.values())
        n_chaos = sum(len(v) for v in chaos.values())
        rows.append((kind, n_base, n_chaos, missing, extra, dups, wrong))
        bad += missing + extra + wrong + base_dups + differing_dups
        if guarantee == "exactly-once":
            bad += dups
        if kind == "dlq" and n_base == 0:
            print("no dead letters in the baseline: the input had no invalid record")
            bad += 1
        if kind == "alerts" and n_base == 0:
            print("no alerts in the baseline")
            bad += 1
    print(f"{'output':<10} {'baseline':>9} {'faulted':>9} {'missing':>8} {'extra':>6} {'duplicate':>9} {'wrong':>6}")
    for t, nb, nc, m, e, d, w in rows:
        print(f"{t:<10} {nb:>9} {nc:>9} {m:>8} {e:>6} {d:>9} {w:>6}")
    print(f"discrepancies={bad}")


if __name__ == "__main__":
    main()
