#!/usr/bin/env python3
"""Turns the timing lines of bench/jobs.sh into the JSON result and a table on stderr."""
import json
import os
import platform
import statistics
import subprocess
import sys

PAIRS = [
    ("ferry_validate", "pg_dump_plain", "validate --checksums (one database)", "pg_dump -Fp"),
    ("ferry_snapshot_custom", "pg_dump_custom", "snapshot (custom, gzip)", "pg_dump -Fc"),
    ("ferry_snapshot_directory", "pg_dump_directory", "snapshot --format directory --jobs 2", "pg_dump -Fd -j 2"),
    ("ferry_snapshot_custom_s3", "pg_dump_custom", "snapshot (custom, gzip) to S3", "pg_dump -Fc to local disk"),
    ("ferry_snapshot_directory_s3", "pg_dump_directory", "snapshot --format directory --jobs 2 to S3", "pg_dump -Fd -j 2 to local disk"),
    ("ferry_restore_j2", "pg_restore_j2", "restore --jobs 2 (pg_dump -Fc archive, + ANALYZE)", "pg_restore -j 2"),
    ("ferry_restore_j2_s3", "pg_restore_j2", "restore --jobs 2 from S3 (+ ANALYZE)", "pg_restore -j 2 from local disk"),
    ("ferry_import_s3", "psql_copy", "import-csv from S3 (+ ANALYZE)", "psql \\copy from local disk"),
    ("ferry_import_local", "psql_copy", "import-csv from local disk (+ ANALYZE)", "psql \\copy from local disk"),
]


def main() -> None:
    times, size, scale, orders, runs, delay_ms, corpus = sys.argv[1:8]
    rows = [line.split() for line in open(times) if line.strip()]

    def median(name: str) -> float:
        return statistics.median(float(r[1]) for r in rows if r[0] == name)

    def peak_mb(name: str) -> float:
        return round(max(float(r[2]) for r in rows if r[0] == name) / 1024, 1)

    def output_bytes(name: str) -> int:
        return int(statistics.median(int(r[3]) for r in rows if r[0] == name))

    server = subprocess.run(
        ["psql", "-X", "-A", "-t", "-d", "bench", "-c", "SHOW server_version"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    pg_dump = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    comparisons = []
    for ours, theirs, job, tool in PAIRS:
        if not any(r[0] == ours for r in rows):
            continue
        comparisons.append({
            "job": job, "theirs": tool,
            "ours_seconds": median(ours), "theirs_seconds": median(theirs),
            "ratio": round(median(ours) / median(theirs), 3),
            "ours_peak_rss_mb": peak_mb(ours), "theirs_peak_rss_mb": peak_mb(theirs),
            "ours_output_bytes": output_bytes(ours), "theirs_output_bytes": output_bytes(theirs),
        })
    result = {
        "machine": {"cores": os.cpu_count(), "kernel": platform.release(), "postgres": server,
                    "pg_dump": pg_dump},
        "dataset": {"scale": int(scale), "orders": int(orders),
                    "corpus": os.path.relpath(corpus) if corpus else None,
                    "database_bytes": int(size)},
        "runs": int(runs),
        # Every client reached the server through delay-proxy with this delay each way.
        "delay_ms_each_way": int(delay_ms),
        "comparisons": comparisons,
    }
    print(json.dumps(result, indent=2))
    print(f"{'job':38} {'ours s':>7} {'theirs s':>9} {'ratio':>6} {'ours MB':>8} {'theirs MB':>10} {'output ratio':>13}", file=sys.stderr)
    for c in comparisons:
        size = (f"{c['ours_output_bytes'] / c['theirs_output_bytes']:13.3f}"
                if c['theirs_output_bytes'] and c['ours_output_bytes'] else f"{'-':>13}")
        print(
            f"{c['job']:38} {c['ours_seconds']:7.2f} {c['theirs_seconds']:9.2f} {c['ratio']:6.2f} "
            f"{c['ours_peak_rss_mb']:8.1f} {c['theirs_peak_rss_mb']:10.1f} {size}  vs {c['theirs']}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
