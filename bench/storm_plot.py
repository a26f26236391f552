#!/usr/bin/env python3
"""Phones done over time in one storm round, dialtone against the anchor
stack (dnsmasq and nginx): bench/storm.sh calls it with the two rounds'
per-phone CSVs (bench/storm.rs writes them) and the PNG to write."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def done_times(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    done = sorted(float(r["done_ms"]) / 1000 for r in rows if r["ok"] == "1")
    return done, len(rows)


def main():
    dialtone, anchor, out = sys.argv[1:4]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for path, label, style in ((dialtone, "dialtone", "-"), (anchor, "dnsmasq + nginx + chrony", "--")):
        done, n = done_times(path)
        ax.step([0] + done, range(len(done) + 1), style, where="post",
                label=f"{label}: {len(done)} of {n} done, last at {done[-1]:.1f} s" if done else label)
    ax.set_xlabel("seconds since the power came back (all phones start within the first second)")
    ax.set_ylabel("phones done (registered or configured)")
    ax.set_title(f"{n} phones boot at once")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main()
