"""Reads a tenant's change events over the API, as a consumer would: one
client following nextCursor with limit=1000, from the oldest event, for at
most MAX_EVENTS events or SECONDS seconds. Prints one JSON line: events,
seconds, events_per_s.

  events_read.py ORIGIN TOKEN [MAX_EVENTS] [SECONDS]
"""
import json
import sys
import time
import urllib.request


def main():
    origin, token = sys.argv[1], sys.argv[2]
    max_events = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 20.0
    cursor, total, start = None, 0, time.monotonic()
    for _ in range(10_000):
        url = f"{origin}/api/v1/events?limit=1000" + (f"&after={cursor}" if cursor else "")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            page = json.load(resp)
        total += len(page["events"])
        cursor = page["nextCursor"]
        if not page["hasMore"] or total >= max_events or time.monotonic() - start > seconds:
            break
    elapsed = time.monotonic() - start
    print(json.dumps({"events": total, "seconds": round(elapsed, 3),
                      "events_per_s": round(total / elapsed, 1) if elapsed else 0}))


if __name__ == "__main__":
    main()
