"""HTTP front end: the DMS JSON 1.1 wire protocol, SigV4 checks, faults and the admin API."""

import json
import re
import socket
import sys
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .credentials import ADMIN_NAME as CREDENTIALS_ADMIN
from .credentials import CredentialService
from .service import AdminError, DmsError
from .sigv4 import AuthError, parse_authorization
from .wire import decode_json

JSON_1_1 = "application/x-amz-json-1.1"
TARGET_PREFIX = "AmazonDMSv20160101."
ADMIN_PREFIX = "/_emulator/"
MAX_BODY_BYTES = 16 * 1024 * 1024
DIGITS = re.compile(r"[0-9]+")
REDACTED = "[redacted]"
SIGNATURE = re.compile(r"(Signature=)[^,\s]*")
# Body members whose values are secrets wherever they appear.
SECRET_MEMBER = re.compile(r"token|secret|password|signature", re.IGNORECASE)
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
    "replications": {"GET": "admin_replications", "POST": "admin_put_replication",
                     "DELETE": "admin_delete_replications"},
    "stop": {"POST": "admin_stop"},
    "table_error": {"POST": "admin_table_error"},
    "assessment": {"POST": "admin_assessment"},
    "requests": {"GET": "admin_requests", "DELETE": "admin_clear_requests"},
    "reset": {"POST": "admin_reset"},
    CREDENTIALS_ADMIN: {"GET": None, "POST": None, "DELETE": None},  # the CredentialService's
}


def _json_bytes(document):
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _redact_text(text, secrets):
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _redact_value(value, secrets, found):
    """`value` (decoded JSON) with secret members and known secrets replaced; the values
    of secret members are added to `found`."""
    if isinstance(value, dict):
        out = {}
        for name, item in value.items():
            if SECRET_MEMBER.search(name) and isinstance(item, str):
                found.add(item)
                out[name] = REDACTED
            else:
                out[name] = _redact_value(item, secrets, found)
        return out
    if isinstance(value, list):
        return [_redact_value(item, secrets, found) for item in value]
    if isinstance(value, str):
        return _redact_text(value, secrets)
    return value


def _ordered(secrets):
    """Secrets worth replacing (4 characters or more, as lua-dms redacts), longest first."""
    return sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)


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

    def handle_error(self, request, client_address):
        # A connection that failed outside a request's own handling (a TLS handshake, a
        # client gone away): no traceback, one line when verbose.
        if self.verbose:
            kind, value = sys.exc_info()[:2]
            sys.stderr.write(f"{client_address[0]} - connection error: {kind.__name__}: {value}\n")

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

    def _body_length(self):
        """The Content-Length of the request, or None once a refusal was answered (the
        connection then closes: the body, if any, is never read)."""
        if getattr(self, "_refused", False):
            return None
        values = [value.strip() for value in self.headers.get_all("Content-Length") or []]
        refusal = None
        if self.headers.get("Transfer-Encoding") is not None:
            refusal = (411, "LengthRequiredException", "Transfer-Encoding is not supported: send a Content-Length")
        elif not values:
            return 0
        elif len(set(values)) != 1 or not DIGITS.fullmatch(values[0]):
            refusal = (400, "SerializationException", f"Invalid Content-Length: {values[0][:40]!r}")
        elif len(values[0]) > 18 or int(values[0]) > MAX_BODY_BYTES:
            refusal = (413, "RequestEntityTooLargeException",
                       f"Request body of {values[0][:40]} bytes exceeds the limit of {MAX_BODY_BYTES} bytes")
        if refusal is None:
            return int(values[0])
        self._refused = True
        self.close_connection = True
        status, code, message = refusal
        if not self.path.startswith(ADMIN_PREFIX):
            self.server.emulator.requests.add(self._log_entry(b"", status=status, error=code))
        self._send(status, _json_bytes({"__type": code, "message": message}))
        return None

    def handle_expect_100(self):
        # Refuse a bad or oversized body before the client sends it.
        if self._body_length() is None:
            return False
        return super().handle_expect_100()

    def _dispatch(self):
        try:
            length = self._body_length()
            if length is None:
                return
            body = self.rfile.read(length)
            if len(body) < length:       # the client went away mid-body
                self.close_connection = True
                return
            endpoint = self.server.credentials.claims(self.command, self.path, self.headers)
            if self.path.startswith(ADMIN_PREFIX):
                self._admin(body)
            elif endpoint:
                self.server.credentials.handle(self, endpoint, body)
            else:
                self._dms(body)
        except OSError:                  # reset, broken pipe, timeout: nobody to answer
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

    def _operation(self):
        target = self.headers.get("X-Amz-Target")
        return target[len(TARGET_PREFIX):] if target and target.startswith(TARGET_PREFIX) else target

    def _log_entry(self, body, **fields):
        """The request log entry of this request, secrets redacted: the session token, the
        signature, every configured secret key and token, and body members named like
        secrets (token, secret, password, signature) wherever their values appear."""
        secrets = {c.secret_key for c in self.server.verifier.credentials.values()}
        secrets |= {c.session_token for c in self.server.verifier.credentials.values() if c.session_token}
        secrets.update(value.strip() for value in self.headers.get_all("X-Amz-Security-Token") or [])
        for value in self.headers.get_all("Authorization") or []:
            secrets.add(parse_authorization(value)[1].get("Signature", ""))
        parsed, found = self._json_or_none(body), set()
        if parsed is not None:
            _redact_value(parsed, (), found)
            found |= {json.dumps(value)[1:-1] for value in found}
        ordered = _ordered(secrets | found)
        headers = {}
        for name, value in self.headers.items():
            if name.lower() == "x-amz-security-token":
                value = REDACTED
            elif name.lower() == "authorization":
                value = SIGNATURE.sub(r"\g<1>" + REDACTED, value)
            value = _redact_text(value, ordered)
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        entry = {
            "time": round(time.time(), 3),
            "operation": self._operation(),
            "body": None if parsed is None else _redact_value(parsed, ordered, set()),
            "raw_body": _redact_text(body.decode("utf-8", "replace"), ordered),
            "headers": headers,
            "signature_ok": False,
            "error": None,
            "status": None,
            "fault": None,
        }
        entry.update(fields)
        return entry

    def _dms(self, body):
        entry = self.server.emulator.requests.add(self._log_entry(body))
        self._answer_dms(self._operation(), body, entry)

    def _note(self, entry, **fields):
        self.server.emulator.requests.update(entry, **fields)

    def _answer_dms(self, operation, body, entry):
        try:
            self.server.verifier.verify(self.command, self.path, self.headers.items(), body)
        except AuthError as err:
            self._error(entry, 400, err.code, err.message)
            return
        # the region of the verified credential scope: AK/date/region/service/aws4_request
        scope = parse_authorization(self.headers.get_all("Authorization")[-1])[1]["Credential"].split("/")
        region = scope[2]
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

        status, document = self.server.emulator.handle(operation, body, stale=kind == "stale", region=region)
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

    @staticmethod
    def _json_or_none(body):
        try:
            return decode_json(body)
        except ValueError:
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
                spec = decode_json(body) if body.strip() else {}
            except ValueError as err:
                raise AdminError(f"the body is not valid JSON: {err}") from None
            if name == CREDENTIALS_ADMIN:
                status, document = self.server.credentials.admin(self.command, spec)
            else:
                status, document = 200, getattr(self.server.emulator, methods[self.command])(spec)
        except AdminError as err:
            status, document = err.status, {"error": err.message}
        except Exception:  # a defect of the emulator: answer, and tell
            traceback.print_exc(file=sys.stderr)
            status, document = 500, {"error": "internal error of the emulator (see its stderr)"}
        self._send(status, _json_bytes(document), "application/json")
