#!/usr/bin/env python3
"""Summarises the dotnet-counters CSVs of profile-cells.sh: one row per contender, means over the listening window,
per second and per request (req/s from the harness line of the same cell).
Usage: counters-summary.py OUTDIR mesh raw factory rr"""
import csv, re, sys, statistics
out, contenders = sys.argv[1], sys.argv[2:]
COLS = [
    ("req/s (harness)", None, 1, "{:,.0f}"),
    ("client CPU ms/1k req (harness)", None, 1, "{:.1f}"),
    ("alloc KB/req (harness)", None, 1, "{:.2f}"),
    ("GC gen0/s", "Gen 0 GC Count (Count / 1 sec)", 1, "{:.1f}"),
    ("GC gen1/s", "Gen 1 GC Count (Count / 1 sec)", 1, "{:.2f}"),
    ("GC gen2/s", "Gen 2 GC Count (Count / 1 sec)", 1, "{:.2f}"),
    ("GC pause ms/s", "Time paused by GC (ms / 1 sec)", 1, "{:.1f}"),
    ("allocation MB/s", "Allocation Rate (B / 1 sec)", 1 / 1e6, "{:.0f}"),
    ("CPU % (of the machine)", "CPU Usage (%)", 1, "{:.0f}"),
    ("lock contentions/s", "Monitor Lock Contention Count (Count / 1 sec)", 1, "{:,.0f}"),
    ("thread-pool threads", "ThreadPool Thread Count", 1, "{:.1f}"),
    ("thread-pool queue length", "ThreadPool Queue Length", 1, "{:.1f}"),
    ("thread-pool work items/s", "ThreadPool Completed Work Item Count (Count / 1 sec)", 1, "{:,.0f}"),
    ("active timers", "Number of Active Timers", 1, "{:,.0f}"),
]
rows = []
for c in contenders:
    values = {}
    with open(f"{out}/{c}-counters.csv") as f:
        for r in csv.DictReader(f):
            try:
                values.setdefault(r["Counter Name"], []).append(float(r["Mean/Increment"]))
            except ValueError:
                pass
    line = open(f"{out}/{c}-counters.log").read()
    m = re.search(r"^  " + re.escape(c) + r" +sat .*?([0-9.]+) req/s cpu=\s*([0-9.]+) ms/1k alloc=\s*([0-9.]+) KB/req", line, re.M)
    harness = [float(m.group(i)) for i in (1, 2, 3)] if m else [float("nan")] * 3
    row = [c]
    for i, (name, key, scale, fmt) in enumerate(COLS):
        v = harness[i] if key is None else (statistics.mean(values[key]) * scale if key in values else float("nan"))
        row.append((fmt.format(v), v))
    rows.append(row)
print("| contender | " + " | ".join(c[0] for c in COLS) + " | work items per request | GC gen0 per 10k req |")
print("|---|" + "---:|" * (len(COLS) + 2))
for row in rows:
    rps = row[1][1]
    wi = row[13][1]
    g0 = row[4][1]
    print(f"| {row[0]} | " + " | ".join(x[0] for x in row[1:]) + f" | {wi / rps:.2f} | {g0 / rps * 1e4:.2f} |")
