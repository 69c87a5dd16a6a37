"""HTTP front end: the DMS JSON 1.1 wire protocol, SigV4 checks, faults and the admin API."""

import json
import socket
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .credentials import ADMIN_NAME as CREDENTIALS_ADMIN
from .credentials import CredentialService
from .service import AdminError, DmsError
from .sigv4 import AuthError

JSON_1_1 = "application/x-amz-json-1.1"
TARGET_PREFIX = "AmazonDMSv20160101."
ADMIN_PREFIX = "/_emulator/"
HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n")
# Faults answered with an error document instead of the operation: (status, code, message).
ERROR_FAULTS = {
    "throttle": (400, "ThrottlingException", "Rate exceeded"),
    "500": (500, "InternalFailure", "The request processing has failed because of an unknown error, "
                                    "exception or failure."),
    "503": (503, "ServiceUnavailable", "The service is unavailable. Please try again later."),
}

# /_emulator/<name> -> HTTP method -> the Emulator method answering it.
ADMIN_ROUTES = {
    "health": {"GET": "admin_health"},
    "faults": {"GET": "admin_faults", "POST": "admin_add_fault", "DELETE": "admin_clear_faults"},
    "clock": {"POST": "admin_clock"},
    "replications": {"GET": "admin_replications", "POST": "admin_put_replication"},
    "stop": {"POST": "admin_stop"},
    "assessment": {"POST": "admin_assessment"},
    "requests": {"GET": "admin_requests", "DELETE": "admin_clear_requests"},
    "reset": {"POST": "admin_reset"},
    CREDENTIALS_ADMIN: {"GET": None, "POST": None, "DELETE": None},  # the CredentialService's
}


def _json_bytes(document):
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _padded(document, size):
    """`document` serialized with a `Padding` member making it exactly `size` bytes, when it fits."""
    document = dict(document, Padding="")
    body = _json_bytes(document)
    document["Padding"] = "x" * max(0, size - len(body))
    return _json_bytes(document)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog: many clients may connect at once

    def __init__(self, address, emulator, verifier, verbose=False, credentials=None):
        super().__init__(address, Handler)
        self.emulator = emulator
        self.verifier = verifier
        self.verbose = verbose
        # STS, the SSO portal, instance metadata and container credentials, on this server
        self.credentials = credentials or CredentialService(verifier, verifier.now)

    scheme = "http"

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"{self.scheme}://{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dms-emulator"
    timeout = 120  # seconds an idle keep-alive connection is kept

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY the
        # second waits for the client's delayed ACK (40 ms a call on Linux).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def date_time_string(self, timestamp=None):
        # The Date header tells the emulator's clock (skew included), as AWS's
        # tells its own: SDKs correct their clock from it after a skew error.
        if timestamp is None:
            timestamp = self.server.emulator.clock.signing_now()
        return super().date_time_string(timestamp)

    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def _dispatch(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        try:
            if length < 0:
                self.close_connection = True
                self._send(400, _json_bytes({"__type": "SerializationException",
                                              "message": "Invalid Content-Length"}))
                return
            body = self.rfile.read(length)
            endpoint = self.server.credentials.claims(self.command, self.path, self.headers)
            if self.path.startswith(ADMIN_PREFIX):
                self._admin(body)
            elif endpoint:
                self.server.credentials.handle(self, endpoint, body)
            else:
                self._dms(body)
        except ConnectionError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def _send(self, status, body, content_type=JSON_1_1, length=None):
        self.send_response(status)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    # -- DMS ---------------------------------------------------------------------------------

    def _dms(self, body):
        target = self.headers.get("X-Amz-Target")
        operation = target[len(TARGET_PREFIX):] if target and target.startswith(TARGET_PREFIX) else target
        entry = self.server.emulator.requests.add({
            "time": round(time.time(), 3),
            "operation": operation,
            "body": self._json_or_none(body),
            "raw_body": body.decode("utf-8", "replace"),
            "headers": self._header_map(),
            "signature_ok": False,
            "error": None,
            "status": None,
            "fault": None,
        })
        self._answer_dms(operation, body, entry)

    def _note(self, entry, **fields):
        self.server.emulator.requests.update(entry, **fields)

    def _answer_dms(self, operation, body, entry):
        try:
            self.server.verifier.verify(self.command, self.path, self.headers.items(), body)
        except AuthError as err:
            self._error(entry, 400, err.code, err.message)
            return
        fault = self.server.emulator.faults.take(operation)
        kind = fault.kind if fault else None
        self._note(entry, signature_ok=True, fault=kind)
        if kind in ERROR_FAULTS:
            self._error(entry, *ERROR_FAULTS[kind])
            return
        if kind == "html502":
            self._note(entry, status=502, error="502")
            self._send(502, HTML_502, "text/html")
            return
        if kind == "drop_before":
            self.close_connection = True
            return
        if kind == "delay":
            time.sleep(fault.seconds)

        status, document = self.server.emulator.handle(operation, body, stale=kind == "stale")
        error = document["__type"] if status != 200 else None
        if kind == "drop_after":
            self._note(entry, error=error)
            self.close_connection = True
            return
        answer = _json_bytes(document)
        self._note(entry, error=error, status=200 if kind in ("malformed", "truncated") else status)
        if kind == "malformed":
            self._send(200, answer[:len(answer) // 2])
        elif kind == "truncated":
            self._send(200, answer[:len(answer) // 2], length=len(answer))
            self.close_connection = True
        elif kind == "oversized":
            self._send(status, _padded(document, fault.size))
        else:
            self._send(status, answer)

    def _error(self, entry, status, code, message):
        self._note(entry, status=status, error=code)
        self._send(status, _json_bytes(DmsError(code, message, status).document()))

    def _header_map(self):
        headers = {}
        for name, value in self.headers.items():
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        return headers

    @staticmethod
    def _json_or_none(body):
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeError, ValueError):
            return None

    # -- admin -------------------------------------------------------------------------------

    def _admin(self, body):
        name = self.path[len(ADMIN_PREFIX):].split("?", 1)[0].rstrip("/")
        try:
            methods = ADMIN_ROUTES.get(name)
            if methods is None:
                raise AdminError(f"no admin resource {self.path}", 404)
            if self.command not in methods:
                raise AdminError(f"{self.command} is not allowed on {self.path}", 405)
            try:
                spec = json.loads(body.decode("utf-8")) if body.strip() else {}
            except (UnicodeError, ValueError):
                raise AdminError("the body is not valid JSON") from None
            if name == CREDENTIALS_ADMIN:
                status, document = self.server.credentials.admin(self.command, spec)
            else:
                status, document = 200, getattr(self.server.emulator, methods[self.command])(spec)
        except AdminError as err:
            status, document = err.status, {"error": err.message}
        self._send(status, _json_bytes(document), "application/json")
