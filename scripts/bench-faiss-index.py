#!/usr/bin/env python3
"""Yardstick for `livegate-bench index`: faiss's IndexBinaryMultiHash (16 slots of 16 bits,
one bit flip per slot: exact at radius 31) and IndexBinaryFlat (brute force), one thread.

Same workload as the Rust bench: random 256-bit hashes, half the queries with a planted
neighbour (a stored hash with up to 31 bits flipped), half random; radius 31.
Needs: pip install faiss-cpu numpy (not part of the test requirements).
Usage: bench-faiss-index.py [SIZE ...]   (default 100000 1000000)
"""
import sys
import time

import faiss
import numpy as np

RADIUS = 31
QUERIES = 500
BRUTE_QUERIES = 20


def percentile(times, fraction):
    ordered = sorted(times)
    return ordered[max(0, int(np.ceil(len(ordered) * fraction)) - 1)]


def make_queries(rng, codes):
    queries = rng.integers(0, 256, size=(QUERIES, 32), dtype=np.uint8)
    for i in range(0, QUERIES, 2):
        query = np.unpackbits(codes[rng.integers(len(codes))])
        flips = rng.integers(0, 256, size=rng.integers(0, RADIUS + 1))
        query[flips] ^= 1
        queries[i] = np.packbits(query)
    return queries


def timed_range_search(index, queries):
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        _, distances, labels = index.range_search(query[None, :], RADIUS + 1)
        times.append(time.perf_counter() - started)
        found.append(sorted(zip(distances.tolist(), labels.tolist())))
    return times, found


def main():
    faiss.omp_set_num_threads(1)
    sizes = [int(arg) for arg in sys.argv[1:]] or [100_000, 1_000_000]
    print(f"faiss {faiss.__version__}, radius {RADIUS}, one thread")
    print(f"{'hashes':>10} {'build_s':>8} {'p50_us':>8} {'p99_us':>8} {'brute_us':>9} {'speedup':>8}")
    for size in sizes:
        rng = np.random.default_rng(size)
        codes = rng.integers(0, 256, size=(size, 32), dtype=np.uint8)
        queries = make_queries(rng, codes)
        started = time.perf_counter()
        multi = faiss.IndexBinaryMultiHash(256, 16, 16)
        multi.nflip = 1
        multi.add(codes)
        build = time.perf_counter() - started
        flat = faiss.IndexBinaryFlat(256)
        flat.add(codes)
        times, found = timed_range_search(multi, queries)
        brute_times, expected = timed_range_search(flat, queries[:BRUTE_QUERIES])
        assert found[:BRUTE_QUERIES] == expected, "faiss multi-hash missed a neighbour"
        brute = sum(brute_times) / len(brute_times)
        mean = sum(times) / len(times)
        print(
            f"{size:>10} {build:>8.2f} {percentile(times, 0.5) * 1e6:>8.1f} "
            f"{percentile(times, 0.99) * 1e6:>8.1f} {brute * 1e6:>9.1f} {brute / mean:>7.0f}x"
        )


if __name__ == "__main__":
    main()
