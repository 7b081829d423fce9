"""Compares a newman JSON report of Microsoft's SCIM Postman collection with
tests/conformance/postman-expected-failures.txt.

Usage: newman_check.py REPORT_JSON EXPECTED_FAILURES_FILE LABEL
Exit status 0 when every failed assertion is listed as expected, 1 otherwise.
"""

import sys


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
    import json

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
    expected = load_expected(expected_path)
    unexpected = {k: v for k, v in failed.items() if k not in expected}
    now_passing = [k for k in expected if k not in failed]
    stats = run["stats"]
    print(
        f"postman [{label}]: {stats['requests']['total']} requests, "
        f"{stats['assertions']['total']} assertions, {stats['assertions']['failed']} failed "
        f"({len(failed) - len(unexpected)} distinct expected, {len(unexpected)} unexpected)"
    )
    for k in now_passing:
        print(f"postman [{label}]: expected failure now passes, remove it from the list: {k}")
    for k, message in sorted(unexpected.items()):
        print(f"postman [{label}]: UNEXPECTED FAILURE: {k}\n    {message}")
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
