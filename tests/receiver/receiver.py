#!/usr/bin/env python3
"""Stand-in for a client's webhook endpoint, for the Rust integration tests.

    .venv/bin/python tests/receiver/receiver.py [--port 0] [--secret whsec_...]

Binds 127.0.0.1 only (port 0 = a free port), prints exactly one line
`listening on 127.0.0.1:PORT` to stdout, then serves until SIGTERM or SIGINT
(exit status 0). Every request is served on its own daemon thread.

Requests to any path other than the control endpoints below are recorded on
arrival (before any sleep) and answered by path (query string allowed):
  /ok...                      200 {"ok":true}
  /fail-then-ok/<n>/<name>    500 for the first n requests to that path, then 200
  /status/<code>[?retry_after=V]  that status (200-599), plus `Retry-After: V`
  /hang/<seconds>             sleeps (float ok), then 200
  /redirect                   302, Location: /ok/redirected
  anything else               404
These are meant for POSTs; a GET gets the same answer and is recorded too, so a
followed redirect shows up as a GET of /ok/redirected.

Control endpoints (not recorded):
  GET /, GET /health  200 {"ok":true}
  GET /_requests      200, JSON array in arrival order of {method, path (with
                      query), headers (names lowercased), body (UTF-8 text),
                      signature, received_at (unix time, float)}
  POST /_reset        clears the recorded requests and the fail-then-ok counters

`signature` is "absent" if there is no webhook-signature header or no --secret,
else "valid"/"invalid" as judged by the official `standardwebhooks` package
(which also rejects webhook-timestamp values more than 5 minutes from now).
"""
import argparse
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from standardwebhooks.webhooks import Webhook

LOCK = threading.Lock()
REQUESTS = []  # recorded requests, in arrival order
COUNTS = {}  # fail-then-ok path -> requests seen
WEBHOOK = None  # Webhook(secret) when --secret is given


def check_signature(body, headers):
    if WEBHOOK is None or "webhook-signature" not in headers:
        return "absent"
    try:
        WEBHOOK.verify(body, headers, json_parse=False)
        return "valid"
    except Exception:  # WebhookVerificationError, or a malformed header/body
        return "invalid"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real endpoint

    def log_message(self, *args):
        pass

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (e.g. timed out during /hang)

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return body
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, code, obj=None, headers=()):
        data = b"" if code in (204, 304) else json.dumps(obj or {}).encode()
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        body = self.read_body()
        path = urlsplit(self.path).path
        if path in ("/", "/health"):
            self.reply(200, {"ok": True})
        elif path == "/_requests":
            with LOCK:
                data = json.dumps(REQUESTS).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.hook(body)

    def do_POST(self):
        body = self.read_body()
        if urlsplit(self.path).path == "/_reset":
            with LOCK:
                REQUESTS.clear()
                COUNTS.clear()
            self.reply(200, {"ok": True})
        else:
            self.hook(body)

    def hook(self, body):
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        url = urlsplit(self.path)
        with LOCK:
            REQUESTS.append({
                "method": self.command,
                "path": self.path,
                "headers": headers,
                "body": body.decode("utf-8", errors="replace"),
                "signature": check_signature(body, headers),
                "received_at": time.time(),
            })
        parts = url.path.split("/", 3)
        try:
            if url.path.startswith("/ok"):
                return self.reply(200, {"ok": True})
            if parts[1] == "fail-then-ok" and len(parts) == 4:
                with LOCK:
                    seen = COUNTS[url.path] = COUNTS.get(url.path, 0) + 1
                if seen <= int(parts[2]):
                    return self.reply(500, {"ok": False, "attempt": seen})
                return self.reply(200, {"ok": True, "attempt": seen})
            if parts[1] == "status" and len(parts) == 3 and 200 <= int(parts[2]) <= 599:
                retry = parse_qs(url.query).get("retry_after", [])[:1]
                extra = [("Retry-After", v) for v in retry]
                return self.reply(int(parts[2]), {"status": int(parts[2])}, extra)
            if parts[1] == "hang" and len(parts) == 3:
                time.sleep(float(parts[2]))
                return self.reply(200, {"ok": True})
            if url.path == "/redirect":
                location = [("Location", "/ok/redirected")]
                return self.reply(302, {"redirect": "/ok/redirected"}, location)
        except (ValueError, IndexError):
            pass  # a malformed number or path: fall through to 404
        self.reply(404, {"error": "not found"})


def main():
    global WEBHOOK
    parser = argparse.ArgumentParser(description="Test webhook receiver (127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0 = a free one)")
    parser.add_argument("--secret", help="Standard Webhooks secret, whsec_<base64>")
    args = parser.parse_args()
    if args.secret:
        WEBHOOK = Webhook(args.secret)

    def stop(*_):
        raise KeyboardInterrupt

    # Also SIGINT: a shell starting us in the background may have ignored it.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
