"""Baselines for `cargo xtask bench`: Python's ProcessPoolExecutor doing the same no-op work.

Prints one JSON object: latency (submit(noop).result() round trips, microseconds) and
throughput (map over a no-op with 2 workers, calls per second).
"""

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor


def noop(_=None):
    return None


def percentile(sorted_values, q):
    index = min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-calls", type=int, default=2000)
    parser.add_argument("--throughput-calls", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with ProcessPoolExecutor(args.workers) as pool:
        for _ in range(50):  # warm up every worker
            pool.submit(noop).result()
        samples = []
        for _ in range(args.latency_calls):
            start = time.perf_counter_ns()
            pool.submit(noop).result()
            samples.append((time.perf_counter_ns() - start) / 1000.0)
        samples.sort()
        start = time.perf_counter()
        list(pool.map(noop, range(args.throughput_calls)))
        elapsed = time.perf_counter() - start
    print(json.dumps({
        "latency_p50_us": statistics.median(samples),
        "latency_p99_us": percentile(samples, 0.99),
        "throughput_per_s": args.throughput_calls / elapsed,
    }))


if __name__ == "__main__":
    main()
