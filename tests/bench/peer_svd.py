#!/usr/bin/python3
"""numpy's singular values, the peer of bench_svd.

usage: /usr/bin/python3 tests/bench/peer_svd.py ROWS COLS REPEATS THREADS [--check SIGMA_FILE]

Builds the same float32 ROWS x COLS matrix as bench_svd (element i: a
multiply-xorshift hash of i + 1, top 24 bits as a value in [-0.5, 0.5)),
times numpy.linalg.svd(a, compute_uv=False) (one warm-up call, then REPEATS
timed calls) and prints one JSON line with the median seconds.

THREADS: OPENBLAS_NUM_THREADS is set to it before numpy is imported (numpy
runs on the same Debian OpenBLAS as lathe; threadpoolctl is not needed), so
the script does not depend on the caller's environment.

--check SIGMA_FILE: the singular values bench_svd wrote (one per line);
adds "max_rel_err", the largest relative error of those >= 1e-4 sigma_max
against numpy's float64 SVD of the same matrix, and "numpy_f32_rel_err",
the same figure for numpy's float32 result.
"""
import json
import os
import statistics
import sys
import time


def main(argv):
    check = None
    if "--check" in argv:
        i = argv.index("--check")
        if i + 1 >= len(argv):
            sys.exit(__doc__)
        check = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if len(argv) != 5:
        sys.exit(__doc__)
    rows, cols, reps, threads = (int(x) for x in argv[1:])
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from hashfill import hash_fill

    a = hash_fill(rows * cols).reshape(rows, cols)
    s32 = np.linalg.svd(a, compute_uv=False)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.linalg.svd(a, compute_uv=False)
        times.append(time.perf_counter() - t0)
    out = {"bench": "svd_numpy", "rows": rows, "cols": cols, "threads": threads,
           "median_s": statistics.median_high(times), "repeats": reps,
           "numpy": np.__version__}
    if check:
        ref = np.linalg.svd(a.astype(np.float64), compute_uv=False)
        keep = ref >= 1e-4 * ref[0]
        got = np.loadtxt(check, dtype=np.float64, ndmin=1)
        if got.shape != ref.shape:
            sys.exit("peer_svd: %s has %d values, expected %d" % (check, got.size, ref.size))
        out["max_rel_err"] = float(np.max(np.abs(got[keep] - ref[keep]) / ref[keep]))
        out["numpy_f32_rel_err"] = float(np.max(np.abs(s32[keep] - ref[keep]) / ref[keep]))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
