#!/usr/bin/env python3
"""Cost of a describe round against fleets of 1, 10, 100 and 1,000 replications.

A round is every page of DescribeReplications (and of DescribeReplicationConfigs) with
MaxRecords 100, plus one DescribeReplications filtered on up to 100 ARNs. Each fleet is
measured created and running (a running replication advances its state on every
describe). Requests are signed SigV4 calls over one keep-alive connection; the figures
are the median of `--rounds` rounds, in milliseconds, client time included.

    emulator/tests/bench_describe.py [--rounds 7] [--sizes 1,10,100,1000]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_emulator import EmulatorProcess  # noqa: E402 (the tests' emulator runner and signer)


def describe_all(emu, conn, operation, key):
    pages, marker, count = 0, None, 0
    while True:
        params = {"MaxRecords": 100}
        if marker:
            params["Marker"] = marker
        response = emu.call(operation, params, connection=conn)
        assert response.status == 200, response.body
        document = response.json()
        pages += 1
        count += len(document[key])
        marker = document.get("Marker")
        if not marker:
            return pages, count


def timed(action, rounds):
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        result = action()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sizes", default="1,10,100,1000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"{'fleet':>6} {'state':>8} {'pages':>5} {'Replications ms':>16} {'Configs ms':>11} "
          f"{'100-ARN filter ms':>18} {'create fleet ms':>16}")
    for size in sizes:
        for status in ("created", "running"):
            emu = EmulatorProcess("--speed", "1000")
            conn = emu.connection()
            try:
                began = time.perf_counter()
                created = emu.admin("POST", "replications", {"count": size, "identifier": "fleet-{n:04}",
                                                             "status": status})
                create_ms = (time.perf_counter() - began) * 1000
                arns = [item["arn"] for item in created["replications"]]
                replications_ms, (pages, count) = timed(
                    lambda: describe_all(emu, conn, "DescribeReplications", "Replications"), args.rounds)
                assert count == size, (count, size)
                configs_ms, _ = timed(
                    lambda: describe_all(emu, conn, "DescribeReplicationConfigs", "ReplicationConfigs"), args.rounds)
                filtered = {"Filters": [{"Name": "replication-config-arn", "Values": arns[-100:]}]}
                filter_ms, _ = timed(lambda: emu.call("DescribeReplications", filtered, connection=conn), args.rounds)
                print(f"{size:>6} {status:>8} {pages:>5} {replications_ms:>16.2f} {configs_ms:>11.2f} "
                      f"{filter_ms:>18.2f} {create_ms:>16.1f}", flush=True)
            finally:
                conn.close()
                emu.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
