#!/usr/bin/env python3
"""A loopback HTTP server that answers every request with one canned answer,
for the cases a real endpoint would not give on demand: a nonsense Date, a
giant response head, a server that holds the connection and never answers.

    rawserver.py SPEC_JSON|FILE (prints its URL on the first line of stdout)

SPEC: {"mode": "respond" | "hold", "status": 400, "reason": "Bad Request",
       "headers": [["Date", "..."], ...], "body": "...", "big_header": BYTES,
       "count_file": PATH}
Each request read (head and Content-Length body) appends a line to count_file.
"""
import json
import socket
import sys
import threading
import time


def serve(conn, spec):
    try:
        conn.settimeout(30)
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                rest += chunk
            data = rest[length:]
            if spec.get("count_file"):
                with open(spec["count_file"], "a") as f:
                    f.write("request\n")
            if spec.get("mode") == "hold":
                time.sleep(3600)
                return
            body = spec.get("body", "").encode()
            lines = ["HTTP/1.1 %d %s" % (spec.get("status", 200), spec.get("reason", "OK"))]
            for name, value in spec.get("headers", []):
                lines.append("%s: %s" % (name, value))
            if spec.get("big_header"):
                lines.append("X-Big: " + "a" * int(spec["big_header"]))
            lines.append("Content-Length: %d" % len(body))
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    arg = sys.argv[1]
    if not arg.startswith("{"):
        with open(arg) as f:
            arg = f.read()
    spec = json.loads(arg)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print("http://127.0.0.1:%d" % srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, spec), daemon=True).start()


if __name__ == "__main__":
    main()
