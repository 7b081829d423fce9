"""Measures webhook delivery: waits until the subscription has no events
pending or SECONDS pass, then reports how many deliveries the receiver
logged and at what rate from the first to the last.

  webhook_drain.py ORIGIN TOKEN WEBHOOK_ID RECEIVER_LOG [SECONDS]
"""
import json
import sys
import time
import urllib.request


def pending(origin, token, hook):
    req = urllib.request.Request(f"{origin}/api/v1/webhooks/{hook}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)["eventsPending"]


def main():
    origin, token, hook, log = sys.argv[1:5]
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 300
    deadline = time.monotonic() + seconds
    left = pending(origin, token, hook)
    while left > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        left = pending(origin, token, hook)
    times = [float(line) for line in open(log) if line.strip()]
    span = (times[-1] - times[0]) if len(times) > 1 else 0
    print(json.dumps({"delivered": len(times), "seconds": round(span, 3), "pending": left,
                      "events_per_s": round(len(times) / span, 1) if span else 0}))


if __name__ == "__main__":
    main()
