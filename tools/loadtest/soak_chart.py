"""Draws docs/soak.png from the soak's samples (soak.csv): server RSS, open files, tasks and
peer connections against time."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
t = [float(r["seconds"]) / 60 for r in rows]
fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
top.plot(t, [int(r["rss_kib"]) / 1024 for r in rows], color="tab:blue")
top.set_ylabel("server RSS (MiB)")
top.grid(alpha=0.3)
for key, label in [("peers", "peer connections"), ("tasks", "tasks"), ("open_files", "open files")]:
    bottom.plot(t, [int(r[key]) for r in rows], label=label)
bottom.set_xlabel("minutes")
bottom.legend()
bottom.grid(alpha=0.3)
fig.suptitle("Camerata soak: waves of sessions joining and leaving")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
