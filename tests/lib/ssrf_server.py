#!/usr/bin/env python3
"""Servers for the SSRF tests (test_ssrf.sh), inside the test's namespace.

  sentinel ADDR PORT DIR LOG
      What an attacker would like to reach. Every connection is written to
      LOG as "connect <local addr>", every request as "<local addr> <method>
      <path>" (a TLS hello never makes a request). GET /blob/NAME answers
      the file DIR/NAME, /token a Bearer token, anything else 404.
  registry ADDR PORT DIR LOG ROUTES [CERT KEY]
      A registry that misbehaves, over https with CERT/KEY. For
      /v2/<ns>/<case>/blobs/<digest> the line "<case> <status> <value>" of
      ROUTES decides: 3xx with Location: <value>, or 401 with
      WWW-Authenticate: <value>. /cdn/NAME answers DIR/NAME. /v2/ is 200.
Requests are logged like the sentinel's. Runs until killed.
"""
import http.server
import json
import os
import socketserver
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def note(self, text):
        with open(self.server.log, "a", encoding="utf-8") as f:
            f.write(f"{self.connection.getsockname()[0]} {text}\n")

    def handle(self):
        self.note("connect")
        super().handle()

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def file(self, name):
        path = os.path.join(self.server.dir, os.path.basename(name))
        if not os.path.isfile(path):
            return self.answer(404)
        with open(path, "rb") as f:
            data = f.read()
        return self.answer(200, data, [("Content-Type", "application/octet-stream")])

    def route(self):
        self.note(f"{self.command} {self.path}")
        path = self.path.split("?")[0]
        if path.startswith("/blob/") or path.startswith("/cdn/"):
            return self.file(path.rsplit("/", 1)[1])
        if path == "/token":
            return self.answer(200, json.dumps({"token": "t0ken"}).encode())
        if path in ("/v2", "/v2/"):
            return self.answer(200, b"{}")
        parts = path.split("/")
        if self.server.routes and len(parts) >= 6 and parts[-2] == "blobs":
            case = parts[3]
            if case in self.server.routes:
                status, value = self.server.routes[case]
                if status == 401:
                    return self.answer(401, b"", [("WWW-Authenticate", value)])
                return self.answer(status, b"", [("Location", value)])
        return self.answer(404)

    do_GET = route
    do_HEAD = route


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    mode, addr, port, d, log = sys.argv[1:6]
    srv = Server((addr, int(port)), Handler)
    srv.dir, srv.log, srv.routes = d, log, {}
    if mode == "registry":
        with open(sys.argv[6], encoding="utf-8") as f:
            for line in f:
                case, status, value = line.rstrip("\n").split(" ", 2)
                srv.routes[case] = (int(status), value)
        if len(sys.argv) > 8:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(sys.argv[7], sys.argv[8])
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
