"""Runs scim2-tester's full check set against a running scimd and compares
the failures with tests/conformance/scim2-tester-expected-failures.txt.

Usage: scim2_tester_run.py BASE_URL EXPECTED_FAILURES_FILE LABEL
The bearer token comes from the SCIM_TOKEN environment variable.
Exit status 0 when every failure is listed as expected, 1 otherwise.
"""

import collections
import os
import sys

import expected

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

FAILING = {Status.ERROR, Status.CRITICAL}


def check_id(result):
    return f"{result.resource_type or '-'} | {result.title}"


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
    summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    print(f"scim2-tester [{label}]: {len(results)} checks: {summary}")
    ok, listed, unlisted = expected.compare("scim2-tester", label, failed, expected_path)
    print(f"scim2-tester [{label}]: {len(failed)} failing, {listed} of them expected, {unlisted} not")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
