#!/usr/bin/env python3
"""A loopback proxy in front of a DynamoDB-compatible server (dynalite) that
counts the requests by operation and injects faults on request, for the
journal's specs and `make demo-hosts`.

    python3 spec/support/ddb_proxy.py UPSTREAM_URL      prints its URL first

Admin API (JSON):
    POST   /_proxy/faults  {"operation": "PutItem", "fault": "throttle" | "drop_answer" | "error500",
                            "count": 1}
           throttle     answers ProvisionedThroughputExceededException (HTTP 400) without forwarding
           drop_answer  forwards the request, then closes the connection without the answer
           error500     forwards the request, then answers InternalServerError (HTTP 500)
    DELETE /_proxy/faults
    GET    /_proxy/counts   {"PutItem": 3, ...} (requests received, faults included)
    DELETE /_proxy/counts   (and the log)
    GET    /_proxy/log      [{"operation", "target", "content_type", "body"}, ...] (the last 1000)
"""
import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
FAULTS = []
COUNTS = {}
LOG = []          # the last 1000 requests: operation, headers that make the request, body


def take_fault(operation):
    with LOCK:
        for f in FAULTS:
            if f["operation"] in (operation, "*") and f["count"] > 0:
                f["count"] -= 1
                return f["fault"]
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None

    def log_message(self, *args):
        pass

    def _json(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _admin(self, method):
        body = self._body()
        path = self.path[len("/_proxy/"):]
        if path == "faults" and method == "POST":
            spec = json.loads(body or b"{}")
            with LOCK:
                FAULTS.append({"operation": spec.get("operation", "*"), "fault": spec["fault"],
                               "count": int(spec.get("count", 1))})
            return self._json(200, {"ok": True})
        if path == "faults" and method == "DELETE":
            with LOCK:
                FAULTS.clear()
            return self._json(200, {"ok": True})
        if path == "counts" and method == "GET":
            with LOCK:
                return self._json(200, dict(COUNTS))
        if path == "log" and method == "GET":
            with LOCK:
                return self._json(200, list(LOG))
        if path == "counts" and method == "DELETE":
            with LOCK:
                COUNTS.clear()
                LOG.clear()
            return self._json(200, {"ok": True})
        return self._json(404, {"error": "no such admin path"})

    def do_GET(self):
        if self.path.startswith("/_proxy/"):
            return self._admin("GET")
        return self._json(404, {})

    def do_DELETE(self):
        if self.path.startswith("/_proxy/"):
            return self._admin("DELETE")
        return self._json(404, {})

    def do_POST(self):
        if self.path.startswith("/_proxy/"):
            return self._admin("POST")
        body = self._body()
        target = self.headers.get("X-Amz-Target", "")
        operation = target.split(".")[-1]
        with LOCK:
            COUNTS[operation] = COUNTS.get(operation, 0) + 1
            LOG.append({"operation": operation, "target": target,
                        "content_type": self.headers.get("Content-Type"),
                        "body": body.decode("utf-8", "replace")})
            del LOG[:-1000]
        fault = take_fault(operation)
        if fault == "throttle":
            return self._json(400, {"__type": "com.amazonaws.dynamodb.v20120810#"
                                              "ProvisionedThroughputExceededException",
                                    "message": "The level of configured provisioned throughput for the table "
                                               "was exceeded (injected)"},
                              {"x-amzn-RequestId": "PROXYTHROTTLE"})
        u = urllib.parse.urlparse(self.upstream)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        conn.request("POST", "/", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        status, rheaders = resp.status, resp.getheaders()
        conn.close()
        if fault == "drop_answer":
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return None
        if fault == "error500":
            return self._json(500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                                    "message": "injected after the request was applied"})
        self.send_response(status)
        for k, v in rheaders:
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return None


def main():
    Handler.upstream = sys.argv[1]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("http://127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
