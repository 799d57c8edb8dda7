#!/usr/bin/python3
"""numpy's magnitude pruning, the peer of bench_prune.

usage: /usr/bin/python3 tests/bench/peer_prune.py ROWS COLS SPARSITY REPEATS THREADS

Builds bench_prune's float32 matrix (element i: a multiply-xorshift hash of
i + 1, top 24 bits as a value in [-0.5, 0.5)) and times what a numpy user
writes to prune it: |w|, np.partition for the k-th smallest magnitude, the
mask |w| > threshold (ties broken towards keeping, the count checked), and
w * mask. One warm-up call, then REPEATS timed calls; prints one JSON line
with the median seconds. THREADS sets OPENBLAS_NUM_THREADS / OMP_NUM_THREADS
before numpy is imported (these operations run on one thread in numpy).
"""
import json
import os
import statistics
import sys
import time


def main(argv):
    if len(argv) != 6:
        sys.exit(__doc__)
    rows, cols = int(argv[1]), int(argv[2])
    sparsity, reps, threads = float(argv[3]), int(argv[4]), int(argv[5])
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(threads)
    import numpy as np

    i = np.arange(1, rows * cols + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = i * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(32)
        h *= np.uint64(0xD6E8FEB86659FD93)
        h ^= h >> np.uint64(32)
    w = ((h >> np.uint64(40)).astype(np.float32) / np.float32(16777216) - np.float32(0.5)).reshape(rows, cols)
    del i, h
    k = int(round(rows * cols * sparsity))

    def prune():
        a = np.abs(w)
        thr = np.partition(a.ravel(), k - 1)[k - 1]
        mask = a > thr
        return w * mask, mask

    prune()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out, mask = prune()
        times.append(time.perf_counter() - t0)
    zeros = int(out.size - np.count_nonzero(out))
    print(json.dumps({"bench": "prune_numpy", "rows": rows, "cols": cols, "sparsity": sparsity,
                      "threads": threads, "median_s": statistics.median(times), "zeros": zeros}))


if __name__ == "__main__":
    main(sys.argv)
