#!/usr/bin/env python3
"""A registry that serves one blob: SIZE zero bytes, generated on the fly.

Used by tests/cross/bigblob.sh to stream a blob larger than 4 GiB through a
32-bit edgepulld without storing it upstream. Answers GET /v2/, and HEAD/GET
of /v2/<repo>/blobs/<DIGEST> (with Range: bytes=N-), nothing else.
Usage: zero_registry.py PORT SIZE DIGEST
"""
import http.server
import re
import sys

PORT, SIZE, DIGEST = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
CHUNK = bytes(1 << 20)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, self.path))

    def _head(self, code, length, extra=()):
        self.send_response(code)
        self.send_header("Content-Length", str(length))
        self.send_header("Docker-Content-Digest", DIGEST)
        self.send_header("Content-Type", "application/octet-stream")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()

    def _blob(self, body):
        if self.path == "/v2/" or self.path == "/v2":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            if body:
                self.wfile.write(b"{}")
            return
        if not re.fullmatch(r"/v2/[a-z0-9/._-]+/blobs/" + re.escape(DIGEST), self.path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if m and int(m.group(1)) < SIZE:
            start = int(m.group(1))
            self._head(206, SIZE - start, [("Content-Range", "bytes %d-%d/%d" % (start, SIZE - 1, SIZE))])
        else:
            self._head(200, SIZE)
        if not body:
            return
        left = SIZE - start
        try:
            while left > 0:
                n = min(left, len(CHUNK))
                self.wfile.write(CHUNK[:n])
                left -= n
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_HEAD(self):
        self._blob(False)

    def do_GET(self):
        self._blob(True)


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
