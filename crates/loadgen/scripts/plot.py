#!/usr/bin/env python3
"""Plots latency percentiles against offered rate from a loadgen summary.csv.

usage: plot.py SUMMARY_CSV OUT_PNG [TITLE]
One line per (target, percentile): p50 solid, p99 dashed, p99.9 dotted; log-scale latency.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
title = sys.argv[3] if len(sys.argv) > 3 else "loadgen: request latency vs offered rate"
colors = {"appliance": "tab:blue", "quickfix": "tab:orange", "floor": "tab:green"}
styles = {"p50_us": "-", "p99_us": "--", "p999_us": ":"}
fig, ax = plt.subplots(figsize=(9, 5.5))
for target in ["appliance", "quickfix", "floor"]:
    rs = sorted((r for r in rows if r["target"] == target and float(r["rate"]) > 0),
                key=lambda r: float(r["rate"]))
    if not rs:
        continue
    x = [float(r["rate"]) / 1000 for r in rs]
    for col, style in styles.items():
        ax.plot(x, [max(float(r[col]), 0.1) for r in rs], style, marker="o",
                color=colors[target], label=f"{target} {col[:-3].replace('p999', 'p99.9')}")
    if target == "appliance":
        md = [float(r["md_p50_us"]) for r in rs]
        if any(md):
            ax.plot(x, [max(v, 0.1) for v in md], "-.", marker="x", color="tab:purple",
                    label="appliance market data p50")
ax.axhline(1000, color="grey", linewidth=0.8)
ax.text(ax.get_xlim()[0], 1100, "1 ms", color="grey")
ax.set_yscale("log")
ax.set_xscale("log")
ax.set_xlabel("offered rate (thousand requests/s)")
ax.set_ylabel("latency from planned send time (µs)")
ax.set_title(title)
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=7, ncol=3)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
