#!/usr/bin/python3
"""numpy's 1-D k-means (weight sharing), the peer of bench_kmeans.

usage: /usr/bin/python3 tests/bench/peer_kmeans.py N K REPEATS THREADS [--sorted]

Builds bench_kmeans's float32 weights (normal, sd 0.05: Box-Muller on the
hash fill of hashfill.py, in float64, rounded to float32 once) and times
what a numpy user writes to cluster them into K clusters from the linear
initialisation (numpy.linspace(min, max, K)) until a step changes nothing,
the rule lathe uses:

  x = w.astype(float64); c = linspace(x.min(), x.max(), K)
  loop: code = searchsorted((c[:-1] + c[1:]) / 2, x)   (a value on a
        midpoint goes to the lower cluster, as argmin's first), means by
        bincount(code, weights=x) / bincount(code) (an empty cluster keeps
        its centroid), sorted; stop when they equal the previous ones
  then the shared values c.astype(float32)[code].

That is O(N log K) per step. With --sorted it times the better numpy
program, the same algorithm as lathe's: sort x once, cumulative sums, and
per step only searchsorted(x_sorted, midpoints) (O(K log N)); the codes at
the end by one searchsorted of x in the final midpoints.

Each run is timed whole (conversion, every step, codes and shared values).
A short warm-up (3 steps) runs first instead of a whole run: the plain loop
takes about two minutes at N = 1,000,000 and K = 64 (2,257 steps of about
45 ms), and numpy has nothing to compile. Prints one JSON line with the median seconds over REPEATS runs,
the steps and the inertia (sum of (w - shared)^2 in float64), to check that
both sides reached the same clustering. THREADS sets OPENBLAS_NUM_THREADS /
OMP_NUM_THREADS before numpy is imported (these operations run on one
thread in numpy).
"""
import json
import os
import statistics
import sys
import time


def main(argv):
    args = [a for a in argv[1:] if a != "--sorted"]
    smart = len(args) != len(argv) - 1
    if len(args) != 4:
        sys.exit(__doc__)
    n, k, reps, threads = int(args[0]), int(args[1]), int(args[2]), int(args[3])
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(threads)
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from hashfill import hash_fill

    h = hash_fill(2 * n).astype(np.float64)
    u1, u2 = 0.5 - h[0::2], h[1::2] + 0.5
    w = (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2) * 0.05).astype(np.float32)
    del h, u1, u2

    def plain(max_iter):
        x = w.astype(np.float64)
        c = np.linspace(x.min(), x.max(), k)
        for it in range(1, max_iter + 1):
            code = np.searchsorted((c[:-1] + c[1:]) * 0.5, x)
            cnt = np.bincount(code, minlength=k)
            nc = np.where(cnt > 0, np.bincount(code, weights=x, minlength=k) / np.maximum(cnt, 1), c)
            nc.sort()
            if np.array_equal(nc, c):
                break
            c = nc
        else:
            code = np.searchsorted((c[:-1] + c[1:]) * 0.5, x)
        return c.astype(np.float32)[code], it

    def by_sums(max_iter):
        x = w.astype(np.float64)
        xs = np.sort(x)
        s = np.concatenate(([0.0], np.cumsum(xs)))
        c = np.linspace(xs[0], xs[-1], k)
        for it in range(1, max_iter + 1):
            edge = np.concatenate(([0], np.searchsorted(xs, (c[:-1] + c[1:]) * 0.5, side="right"), [n]))
            cnt = np.diff(edge)
            nc = np.where(cnt > 0, (s[edge[1:]] - s[edge[:-1]]) / np.maximum(cnt, 1), c)
            nc.sort()
            if np.array_equal(nc, c):
                break
            c = nc
        code = np.searchsorted((c[:-1] + c[1:]) * 0.5, x)
        return c.astype(np.float32)[code], it

    run = by_sums if smart else plain
    run(3)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        shared, steps = run(100000)
        times.append(time.perf_counter() - t0)
    inertia = float(((w.astype(np.float64) - shared) ** 2).sum())
    print(json.dumps({"bench": "kmeans_numpy_sorted" if smart else "kmeans_numpy", "n": n, "k": k,
                      "init": "linear", "threads": threads, "median_s": statistics.median(times),
                      "iterations": steps, "inertia": inertia}))


if __name__ == "__main__":
    main(sys.argv)
