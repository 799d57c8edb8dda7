"""The hash fill of tests/bench/bench_util.h, for the Python peers: element
i of a float32 array is the top 24 bits of a multiply-xorshift hash of
i + 1, as a value in [-0.5, 0.5), so C and numpy build the same matrix."""
import numpy as np


def hash_fill(n):
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = i * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(32)
        h *= np.uint64(0xD6E8FEB86659FD93)
        h ^= h >> np.uint64(32)
    return (h >> np.uint64(40)).astype(np.float32) / np.float32(16777216) - np.float32(0.5)
