"""Draws docs/benchmarks.png from the load tool's ladder CSV: server CPU per forwarded
packet and memory per subscriber against the number of subscribers, both servers."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

source, target = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(source)))
servers = sorted({r["server"] for r in rows})
fig, (cpu, mem) = plt.subplots(1, 2, figsize=(11, 4.2))
for server in servers:
    own = [r for r in rows if r["server"] == server]
    n = [int(r["subscribers"]) for r in own]
    cpu.plot(n, [float(r["cpu_us_per_packet"]) for r in own], marker="o", label=server)
    mem.plot(n, [float(r["rss_kib_per_subscriber"]) for r in own], marker="o", label=server)
cpu.set_title("Server CPU per forwarded packet")
cpu.set_xlabel("subscribers")
cpu.set_ylabel("microseconds")
cpu.set_xscale("log")
cpu.set_ylim(bottom=0)
mem.set_title("Server memory per subscriber (RSS growth)")
mem.set_xlabel("subscribers")
mem.set_ylabel("KiB")
mem.set_xscale("log")
mem.set_ylim(bottom=0)
for ax in (cpu, mem):
    ax.grid(True, alpha=0.3)
    ax.legend()
fig.tight_layout()
fig.savefig(target, dpi=110)
