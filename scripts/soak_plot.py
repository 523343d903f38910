"""Plots the soak run's samples (scripts/soak.sh): per mode, resident memory and CPU of every
process over time. Usage: soak_plot.py OUT.png CSV..."""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    out, paths = sys.argv[1], sys.argv[2:]
    modes = []
    for path in paths:
        series = defaultdict(lambda: ([], [], []))
        mode = None
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                mode = row["mode"]
                t, rss, cpu = series[row["process"]]
                t.append(float(row["elapsed_s"]) / 60)
                rss.append(int(row["rss_kib"]) / 1024)
                cpu.append(float(row["cpu_percent"]))
        if mode:
            modes.append((mode, series))
    fig, axes = plt.subplots(2, len(modes), figsize=(7 * len(modes), 7), squeeze=False)
    for column, (mode, series) in enumerate(modes):
        memory, cpu = axes[0][column], axes[1][column]
        for process, (t, rss, load) in sorted(series.items()):
            memory.plot(t, rss, label=process, linewidth=1)
            cpu.plot(t, load, label=process, linewidth=0.8)
        memory.set_title(f"{mode}: resident memory")
        memory.set_ylabel("MiB")
        memory.set_ylim(bottom=0)
        cpu.set_title(f"{mode}: CPU")
        cpu.set_ylabel("% of one core")
        cpu.set_xlabel("minutes")
        cpu.set_ylim(bottom=0)
        memory.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
