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

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from hashfill import hash_fill

    w = hash_fill(rows * cols).reshape(rows, cols)
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
