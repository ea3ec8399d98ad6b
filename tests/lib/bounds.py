#!/usr/bin/env python3
"""Helpers for the connection-bound tests (loopback only, bounded in count and time).

  registry PORT SEEDFILE...  a fake upstream registry: a digest of a SEEDFILE is
                             served whole and fast, any other sha256 digest as a
                             slow 64 MiB body (16 KiB every 0.2 s) that never
                             matches (a fetch that never ends by itself)
  slowloris HOST PORT N SECS [SRC]
                             N connections sending a request's headers one byte
                             every 3 s for at most SECS; prints JSON counts:
                             opened, cut_early (closed by the server within 2 s:
                             refused by a limit), cut (closed later, before
                             SECS: the header deadline), held (still open)
  hold HOST PORT N SECS      N idle connections; after SECS prints how many are
                             still open (JSON)
With $BOUNDS_READY set, slowloris and hold create that file once connected.
"""
import hashlib
import http.server
import json
import os
import resource
import select
import socket
import socketserver
import sys
import time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def registry(port, seeds):
    blobs = {}
    for path in seeds:
        data = open(path, "rb").read()
        blobs[hashlib.sha256(data).hexdigest()] = data
    slow_len = 64 << 20

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, body):
            path = self.path.split("?")[0]
            if path in ("/v2", "/v2/"):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                if body:
                    self.wfile.write(b"{}")
                return
            hexd = path.rsplit("sha256:", 1)[-1] if "/blobs/sha256:" in path else ""
            if len(hexd) != 64:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = blobs.get(hexd)
            start = 0
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
            size = len(data) if data is not None else slow_len
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(size - start))
            if start:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
            self.send_header("Docker-Content-Digest", "sha256:" + hexd)
            self.end_headers()
            if not body:
                return
            if data is not None:
                self.wfile.write(data[start:])
                return
            sent = start
            chunk = b"x" * 16384
            deadline = time.time() + 600
            while sent < size and time.time() < deadline:
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
                time.sleep(0.2)

        def do_GET(self):
            try:
                self.answer(True)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_HEAD(self):
            self.answer(False)

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        request_queue_size = 256

    S(("127.0.0.1", port), H).serve_forever()


def ready():
    """Tells the test the connections are open ($BOUNDS_READY names a file)."""
    path = os.environ.get("BOUNDS_READY")
    if path:
        time.sleep(1)
        open(path, "w").close()


def connect_all(host, port, n, src):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if src:
            s.bind((src, 0))
        s.setblocking(False)
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
        socks.append(s)
    ready()
    return socks


def closed(s):
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def slowloris(host, port, n, secs, src=None):
    raise_nofile()
    start = time.time()
    socks = connect_all(host, port, n, src)
    req = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 4096
    pos = [0] * n
    end = [None] * n
    next_send = start
    while time.time() - start < secs and any(e is None for e in end):
        now = time.time()
        if now >= next_send:
            next_send = now + 3
            for i, s in enumerate(socks):
                if end[i] is not None:
                    continue
                try:
                    s.send(req[pos[i] : pos[i] + 1])
                    pos[i] = min(pos[i] + 1, len(req) - 1)
                except BlockingIOError:
                    pass
                except OSError:
                    end[i] = time.time() - start
        live = [s for i, s in enumerate(socks) if end[i] is None]
        r, _, _ = select.select(live[:1000], [], [], 0.5) if live else ([], [], [])
        for s in r:
            i = socks.index(s)
            if closed(s):
                end[i] = time.time() - start
        for i, s in enumerate(socks[1000:], 1000):
            if end[i] is None and closed(s):
                end[i] = time.time() - start
    out = {
        "opened": n,
        "cut_early": sum(1 for e in end if e is not None and e < 2),
        "cut": sum(1 for e in end if e is not None and e >= 2),
        "held": sum(1 for e in end if e is None),
        "last_cut_s": round(max([e for e in end if e is not None] or [0]), 1),
    }
    for s in socks:
        s.close()
    print(json.dumps(out))


def hold(host, port, n, secs):
    raise_nofile()
    socks = connect_all(host, port, n, None)
    time.sleep(secs)
    print(json.dumps({"opened": n, "open": sum(1 for s in socks if not closed(s))}))
    for s in socks:
        s.close()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "registry":
        registry(int(sys.argv[2]), sys.argv[3:])
    elif cmd == "slowloris":
        slowloris(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
                  sys.argv[6] if len(sys.argv) > 6 else None)
    elif cmd == "hold":
        hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
