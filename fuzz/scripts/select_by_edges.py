#!/usr/bin/env python3
"""Pick at most --max inputs that add coverage edges beyond the committed seeds.

`cargo fuzz cmin` keeps every input that adds a new *feature* (edge hit-count buckets included),
which for these targets means hundreds of files. This reads a libFuzzer merge control file made
with the committed seed folder as the *first* corpus, so that libFuzzer runs the seeds first and
then the other inputs smallest first, and lists on each input's COV line only the edges that no
earlier input reached. Inputs that reached a new edge are candidates; the ones with the most new
edges (then the smallest) are chosen.

Usage:
  cp -r corpus/normalisers /tmp/seeds
  target/x86_64-unknown-linux-gnu/release/normalisers -merge=1 -merge_control_file=/tmp/ctl \
      /tmp/seeds corpus-run/normalisers
  scripts/select_by_edges.py /tmp/ctl --max 50 [--max-size BYTES] [--copy corpus/normalisers]
"""
import argparse
import os
import shutil

ap = argparse.ArgumentParser()
ap.add_argument("control")
ap.add_argument("--max", type=int, default=50)
ap.add_argument("--max-size", type=int, default=None, help="skip inputs larger than this (bytes)")
ap.add_argument("--copy", metavar="DIR", help="copy the chosen inputs into DIR")
a = ap.parse_args()

lines = open(a.control).read().splitlines()
n, n_first = int(lines[0]), int(lines[1])
files = lines[2 : 2 + n]
cov = {}
for line in lines[2 + n :]:
    parts = line.split()
    if parts and parts[0] == "COV":
        cov[int(parts[1])] = len(parts) - 2
seed_edges = sum(cov.get(i, 0) for i in range(n_first))
cands = [(cov[i], os.path.getsize(files[i]), files[i]) for i in range(n_first, n) if cov.get(i)]
if a.max_size is not None:
    cands = [c for c in cands if c[1] <= a.max_size]
cands.sort(key=lambda c: (-c[0], c[1]))
chosen = cands[: a.max]
print(f"seeds reach {seed_edges} edges; {len(cands)} other inputs reach "
      f"{sum(c[0] for c in cands)} more; keeping {len(chosen)} of them "
      f"({sum(c[0] for c in chosen)} edges, {sum(c[1] for c in chosen)} bytes)")
for edges, size, f in chosen:
    print(f"{edges:4} edges {size:7} bytes {f}")
    if a.copy:
        shutil.copy(f, a.copy)
