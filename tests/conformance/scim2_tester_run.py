"""Runs scim2-tester's full check set against a running scimd and compares
the failures with tests/conformance/scim2-tester-expected-failures.txt.

Usage: scim2_tester_run.py BASE_URL EXPECTED_FAILURES_FILE LABEL
The bearer token comes from the SCIM_TOKEN environment variable.
Exit status 0 when every failure is listed as expected, 1 otherwise.
"""

import collections
import os
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

FAILING = {Status.ERROR, Status.CRITICAL}


def check_id(result):
    return f"{result.resource_type or '-'} | {result.title}"


def load_expected(path):
    expected = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, reason = line.rpartition(" | reason: ")
            if not key or not reason.strip():
                sys.exit(f"{path}: every line needs ' | reason: <why>': {line!r}")
            expected[key] = reason
    return expected


def main():
    base, expected_path, label = sys.argv[1], sys.argv[2], sys.argv[3]
    client = httpx2.Client(
        base_url=base,
        headers={"Authorization": f"Bearer {os.environ['SCIM_TOKEN']}"},
        timeout=30,
    )
    results = check_server(SyncSCIMClient(client))
    counts = collections.Counter(r.status.name for r in results)
    failed = {}
    for r in results:
        if r.status in FAILING:
            failed.setdefault(check_id(r), r.reason)
    expected = load_expected(expected_path)
    unexpected = {k: v for k, v in failed.items() if k not in expected}
    now_passing = [k for k in expected if k not in failed]

    summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    print(f"scim2-tester [{label}]: {len(results)} checks: {summary}")
    print(f"scim2-tester [{label}]: {len(failed)} failing, {len(failed) - len(unexpected)} of them expected")
    for k in now_passing:
        print(f"scim2-tester [{label}]: expected failure now passes, remove it from the list: {k}")
    for k, reason in sorted(unexpected.items()):
        print(f"scim2-tester [{label}]: UNEXPECTED FAILURE: {k}\n    {reason}")
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
