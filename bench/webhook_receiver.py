"""A webhook receiver for the benchmark: answers 204 to every POST over
HTTP/1.1 keep-alive and appends one line per delivery (monotonic time) to
a file; while OUT_FILE.refuse exists it answers 503 instead (so that events
pile up while other measurements run). Usage: webhook_receiver.py PORT OUT_FILE"""
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if os.path.exists(sys.argv[2] + ".refuse"):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
        OUT.write(f"{time.monotonic():.6f}\n")
        OUT.flush()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    OUT = open(sys.argv[2], "a")
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
