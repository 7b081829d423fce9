"""Compares a newman JSON report of Microsoft's SCIM Postman collection with
tests/conformance/postman-expected-failures.txt.

Usage: newman_check.py REPORT_JSON EXPECTED_FAILURES_FILE LABEL
Exit status 0 when every failed assertion is listed as expected, 1 otherwise.
"""

import json
import sys

import expected


def main():
    report_path, expected_path, label = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(report_path, encoding="utf-8") as f:
        run = json.load(f)["run"]
    failed = {}
    for failure in run["failures"]:
        parent = failure.get("parent", {}).get("name", "-")
        source = failure.get("source", {}).get("name", "-")
        error = failure["error"]
        key = f"{parent} / {source} | {error.get('test') or error.get('name')}"
        failed.setdefault(key, error.get("message", ""))
    stats = run["stats"]
    ok, listed, unlisted = expected.compare("postman", label, failed, expected_path)
    print(
        f"postman [{label}]: {stats['requests']['total']} requests, "
        f"{stats['assertions']['total']} assertions, {stats['assertions']['failed']} failed "
        f"({listed} distinct expected, {unlisted} unexpected)"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
