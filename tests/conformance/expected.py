"""The expected-failures files both conformance drivers read and compare with."""

import sys


def load(path):
    """Lines `<check> | reason: <why>`; '#' starts a comment."""
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


def compare(suite, label, failed, path):
    """Prints what failed unexpectedly and what now passes; True when all is expected."""
    expected = load(path)
    unexpected = {k: v for k, v in failed.items() if k not in expected}
    for k in expected:
        if k not in failed:
            print(f"{suite} [{label}]: expected failure now passes, remove it from the list: {k}")
    for k, why in sorted(unexpected.items()):
        print(f"{suite} [{label}]: UNEXPECTED FAILURE: {k}\n    {why}")
    return not unexpected, len(failed) - len(unexpected), len(unexpected)
