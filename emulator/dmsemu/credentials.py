"""Where AWS credentials come from, emulated on the same server as DMS.

* STS (query protocol, `POST /` with a form body): `AssumeRole`, signed with SigV4 for
  service `sts` by any key the emulator accepts (issued temporary keys included, so roles
  chain), and `AssumeRoleWithWebIdentity`, unsigned.
* The SSO portal: `GET /federation/credentials?account_id=&role_name=` with the
  `x-amz-sso_bearer_token` header (GetRoleCredentials).
* EC2 instance metadata, IMDSv2: `PUT /latest/api/token`, then with the token
  `GET /latest/meta-data/iam/security-credentials/` and `.../<role>`.
* Container credentials (ECS, EKS Pod Identity): `GET /v2/credentials/<id>` and
  `GET /v1/credentials`, with an optional required `Authorization` value.

Every set of credentials issued is temporary: an `ASIA...` access key whose five letters
after `ASIA` tell the issuer (`IMDS0`, `CONTR`, `ROLE0`, `WEBID`, `SSO00`), a secret, a
session token and an expiry. They are added to the verifier, so DMS (and STS) calls signed
with them are accepted, with their session token, until they expire: then
`ExpiredTokenException` (`ExpiredToken` from STS).

Behaviour is set through `POST /_emulator/credentials` (see `CredentialService.admin`).
"""

import base64
import binascii
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from .sigv4 import AuthError, Credentials

STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
FORM = "application/x-www-form-urlencoded"
IMDS_PREFIX = "/latest/"
IMDS_TOKEN_PATH = "/latest/api/token"
IMDS_ROLE_PATH = "/latest/meta-data/iam/security-credentials/"
SSO_PATH = "/federation/credentials"
CONTAINER_PATHS = ("/v1/credentials", "/v2/credentials/")
ADMIN_NAME = "credentials"

DEFAULT_ROLE = "dms-emulator-role"
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$")
SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
IMDS_MODES = ("v2", "v1-only")
ENDPOINTS = ("sts", "sso", "imds", "container")
# Default lifetimes, in seconds, as AWS issues them (STS: DurationSeconds, default 1 hour).
LIFETIMES = {"imds": 6 * 3600, "container": 6 * 3600, "sso": 3600}
ISSUERS = {"imds": "IMDS0", "container": "CONTR", "assume_role": "ROLE0", "web_identity": "WEBID", "sso": "SSO00"}

# SigV4 failures, as STS names them: (code, status)
STS_AUTH_CODES = {
    "MissingAuthenticationTokenException": ("MissingAuthenticationToken", 403),
    "IncompleteSignatureException": ("IncompleteSignature", 400),
    "UnrecognizedClientException": ("InvalidClientTokenId", 403),
    "InvalidSignatureException": ("SignatureDoesNotMatch", 403),
    "ExpiredTokenException": ("ExpiredToken", 400),
}


class CredentialError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _default_settings():
    return {
        "lifetime": None,            # seconds: overrides every lifetime below and DurationSeconds
        "role": DEFAULT_ROLE,        # the instance's and the container's role name
        "imds": {"mode": "v2"},
        "container": {"token": None},
        "sts": {"deny": [], "external_ids": {}, "web_identity_tokens": None},
        "sso": {"tokens": None},
    }


class CredentialService:
    """The credential endpoints of one emulator; thread-safe."""

    def __init__(self, verifier, now, account="123456789012"):
        self.verifier = verifier
        self.now = now                # the signing clock: issued expiries are on it
        self.account = account
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self._settings = _default_settings()
        self._requests = []
        self._issued = []
        self._imds_tokens = {}

    # -- dispatch ----------------------------------------------------------------------------

    @staticmethod
    def claims(method, path, headers):
        """The endpoint a request is for ("sts", "sso", "imds", "container"), or None (DMS)."""
        route = path.split("?", 1)[0]
        if route.startswith(IMDS_PREFIX):
            return "imds"
        if route == SSO_PATH:
            return "sso"
        if route == CONTAINER_PATHS[0] or route.startswith(CONTAINER_PATHS[1]):
            return "container"
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if method == "POST" and not headers.get("X-Amz-Target") and content_type == FORM:
            return "sts"
        return None

    def handle(self, handler, endpoint, body):
        """Answer one request on `handler` (a BaseHTTPRequestHandler)."""
        entry = self._log(endpoint, handler, body)
        with self._lock:
            faults = dict(self._settings[endpoint])
        if faults.get("delay"):
            time.sleep(float(faults["delay"]))
        if faults.get("drop"):
            self._note(entry, status=None, error="drop")
            handler.close_connection = True
            return
        try:
            if faults.get("status"):
                raise CredentialError(int(faults["status"]), "InternalFailure", "injected failure")
            status, content_type, answer, extra = getattr(self, "_" + endpoint)(handler, body, entry)
        except CredentialError as err:
            status, content_type, answer, extra = self._error(endpoint, err)
            self._note(entry, error=err.code)
        if faults.get("malformed") and status == 200 and answer[:1] in (b"{", b"<"):
            answer = answer[: len(answer) // 2]   # the JSON or XML document cut in half
        self._note(entry, status=status)
        handler.send_response(status)
        handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        handler.send_header("Content-Type", content_type)
        for name, value in extra:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)

    def _error(self, endpoint, err):
        if endpoint == "sts":
            document = (f'<ErrorResponse xmlns="{STS_NAMESPACE}"><Error><Type>Sender</Type>'
                        f"<Code>{escape(err.code)}</Code><Message>{escape(err.message)}</Message></Error>"
                        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
            return err.status, "text/xml", document.encode("utf-8"), []
        if endpoint == "sso":
            body = json.dumps({"message": err.message}).encode("utf-8")
            return err.status, "application/json", body, [("x-amzn-ErrorType", err.code)]
        if endpoint == "imds":
            return err.status, "text/html", f"<html><body>{escape(err.message)}</body></html>".encode(), []
        body = json.dumps({"code": err.code, "message": err.message}).encode("utf-8")
        return err.status, "application/json", body, []

    # -- issuing -----------------------------------------------------------------------------

    def _lifetime(self, default):
        with self._lock:
            override = self._settings["lifetime"]
        return float(override) if override is not None else float(default)

    def _issue(self, issuer, lifetime, **identity):
        serial = next(self._serial)
        access_key = f"ASIA{ISSUERS[issuer]}{serial:011d}"
        secret = base64.b64encode(secrets.token_bytes(30)).decode("ascii")
        token = "FwoGZXIvYXdzE" + base64.b64encode(secrets.token_bytes(48)).decode("ascii")
        expires = self.now() + lifetime
        self.verifier.add(Credentials(access_key, secret, token, expires=expires))
        record = dict(identity, access_key=access_key, issuer=issuer, expiration=_iso(expires))
        with self._lock:
            self._issued.append(record)
        return {"AccessKeyId": access_key, "SecretAccessKey": secret, "SessionToken": token,
                "Expiration": _iso(expires), "expires": expires}

    # -- STS ---------------------------------------------------------------------------------

    def _sts(self, handler, body, entry):
        try:
            params = {k: v[-1] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        except UnicodeError:
            raise CredentialError(400, "MalformedInput", "The request body is not UTF-8") from None
        action = params.get("Action")
        self._note(entry, action=action, params={k: v for k, v in params.items() if k != "WebIdentityToken"},
                   web_identity_token=params.get("WebIdentityToken"))
        if params.get("Version") != "2011-06-15":
            raise CredentialError(400, "InvalidAction", "Could not find operation "
                                  f"{action} for version {params.get('Version')}")
        if action == "AssumeRole":
            document = self._assume_role(handler, body, params, entry)
        elif action == "AssumeRoleWithWebIdentity":
            document = self._assume_role_with_web_identity(params)
        else:
            raise CredentialError(400, "InvalidAction", f"Could not find operation {action} for version 2011-06-15")
        return 200, "text/xml", document.encode("utf-8"), []

    def _role(self, params, entry):
        role_arn = params.get("RoleArn")
        session_name = params.get("RoleSessionName")
        errors = []
        if not role_arn:
            errors.append("Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
        if not session_name:
            errors.append("Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
        elif not SESSION_NAME.match(session_name):
            errors.append(f"Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: Member must "
                          "satisfy regular expression pattern: [\\w+=,.@-]*")
        duration = params.get("DurationSeconds")
        if duration is not None:
            try:
                duration = int(duration)
            except ValueError:
                raise CredentialError(400, "ValidationError", "DurationSeconds must be an integer") from None
            if not 900 <= duration <= 43200:
                errors.append(f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
                              "Member must have value " + ("greater than or equal to 900" if duration < 900
                                                           else "less than or equal to 43200"))
        if errors:
            raise CredentialError(400, "ValidationError",
                                  f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: "
                                  + "; ".join(errors))
        match = ROLE_ARN.match(role_arn)
        if not match:
            raise CredentialError(400, "ValidationError", f"{role_arn} is invalid")
        self._note(entry, role_arn=role_arn, session_name=session_name)
        return role_arn, match.group(1), match.group(2), session_name, duration

    def _check_denied(self, role_arn, principal, action):
        with self._lock:
            deny = list(self._settings["sts"].get("deny") or [])
        if role_arn in deny or "*" in deny:
            raise CredentialError(403, "AccessDenied", f"User: {principal} is not authorized to perform: "
                                  f"sts:{action} on resource: {role_arn}")

    def _assumed(self, action, role_arn, account, role_name, session_name, credentials, extra=""):
        role_id = "AROA" + binascii.hexlify(role_arn.encode()).decode()[:17].upper()
        result = (f"<{action}Result>{extra}<AssumedRoleUser><AssumedRoleId>{role_id}:{escape(session_name)}"
                  f"</AssumedRoleId><Arn>arn:aws:sts::{account}:assumed-role/{escape(role_name)}/"
                  f"{escape(session_name)}</Arn></AssumedRoleUser><Credentials>"
                  + "".join(f"<{k}>{escape(credentials[k])}</{k}>"
                            for k in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"))
                  + f"</Credentials></{action}Result>")
        return (f'<{action}Response xmlns="{STS_NAMESPACE}">{result}'
                f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>")

    def _assume_role(self, handler, body, params, entry):
        try:
            caller = self.verifier.verify(handler.command, handler.path, handler.headers.items(), body,
                                          service="sts")
        except AuthError as err:
            code, status = STS_AUTH_CODES.get(err.code, (err.code, 400))
            message = err.message if code != "InvalidClientTokenId" else \
                "The security token included in the request is invalid."
            raise CredentialError(status, code, message) from None
        self._note(entry, caller=caller)
        role_arn, account, role_name, session_name, duration = self._role(params, entry)
        known = self.verifier.credentials.get(caller)
        chained = known is not None and known.expires is not None
        if chained and duration is not None and duration > 3600:
            raise CredentialError(400, "ValidationError", "The requested DurationSeconds exceeds the 1 hour session "
                                  "limit for roles assumed by role chaining.")
        principal = f"arn:aws:iam::{self.account}:user/{caller}"
        self._check_denied(role_arn, principal, "AssumeRole")
        with self._lock:
            wanted = (self._settings["sts"].get("external_ids") or {}).get(role_arn)
        if wanted is not None and params.get("ExternalId") != wanted:
            raise CredentialError(403, "AccessDenied", f"User: {principal} is not authorized to perform: "
                                  f"sts:AssumeRole on resource: {role_arn}")
        lifetime = self._lifetime(duration or 3600)
        credentials = self._issue("assume_role", lifetime, role_arn=role_arn, session_name=session_name,
                                  source_access_key=caller, external_id=params.get("ExternalId"))
        return self._assumed("AssumeRole", role_arn, account, role_name, session_name, credentials)

    def _assume_role_with_web_identity(self, params):
        token = params.get("WebIdentityToken")
        if not token:
            raise CredentialError(400, "ValidationError", "1 validation error detected: Value null at "
                                  "'webIdentityToken' failed to satisfy constraint: Member must not be null")
        role_arn, account, role_name, session_name, duration = self._role(params, {})
        with self._lock:
            accepted = self._settings["sts"].get("web_identity_tokens")
        if accepted is not None and token not in accepted:
            raise CredentialError(400, "InvalidIdentityToken", "The web identity token that was passed could not "
                                  "be validated by AWS. Get a new identity token from the identity provider and "
                                  "then retry the request.")
        subject = _jwt_subject(token)
        self._check_denied(role_arn, f"arn:aws:sts::{account}:federated-user/{subject}",
                           "AssumeRoleWithWebIdentity")
        lifetime = self._lifetime(duration or 3600)
        credentials = self._issue("web_identity", lifetime, role_arn=role_arn, session_name=session_name,
                                  subject=subject)
        extra = (f"<SubjectFromWebIdentityToken>{escape(subject)}</SubjectFromWebIdentityToken>"
                 "<Audience>sts.amazonaws.com</Audience><Provider>dms-emulator</Provider>")
        return self._assumed("AssumeRoleWithWebIdentity", role_arn, account, role_name, session_name,
                             credentials, extra)

    # -- SSO portal --------------------------------------------------------------------------

    def _sso(self, handler, body, entry):
        if handler.command != "GET":
            raise CredentialError(405, "MethodNotAllowedException", "Use GET")
        query = {k: v[-1] for k, v in parse_qs(urlsplit(handler.path).query).items()}
        account_id, role_name = query.get("account_id"), query.get("role_name")
        token = handler.headers.get("x-amz-sso_bearer_token")
        self._note(entry, account_id=account_id, role_name=role_name)
        if not token:
            raise CredentialError(401, "UnauthorizedException", "Session token not found or invalid")
        if not account_id or not role_name:
            raise CredentialError(400, "InvalidRequestException", "account_id and role_name are required")
        with self._lock:
            accepted = self._settings["sso"].get("tokens")
        if accepted is not None and token not in accepted:
            raise CredentialError(401, "UnauthorizedException", "Session token not found or invalid")
        credentials = self._issue("sso", self._lifetime(LIFETIMES["sso"]), account_id=account_id,
                                  role_name=role_name)
        document = {"roleCredentials": {
            "accessKeyId": credentials["AccessKeyId"], "secretAccessKey": credentials["SecretAccessKey"],
            "sessionToken": credentials["SessionToken"], "expiration": int(credentials["expires"]) * 1000}}
        return 200, "application/json", json.dumps(document).encode("utf-8"), []

    # -- EC2 instance metadata ---------------------------------------------------------------

    def _imds(self, handler, body, entry):
        route = handler.path.split("?", 1)[0]
        with self._lock:
            mode = self._settings["imds"].get("mode", "v2")
            role = self._settings["role"]
        if route == IMDS_TOKEN_PATH:
            if handler.command != "PUT":
                raise CredentialError(405, "MethodNotAllowed", "Method Not Allowed")
            if mode == "v1-only":
                raise CredentialError(404, "NotFound", "Not Found")
            try:
                ttl = int(handler.headers.get("x-aws-ec2-metadata-token-ttl-seconds") or "")
            except ValueError:
                ttl = 0
            if not 1 <= ttl <= 21600:
                raise CredentialError(400, "BadRequest", "Bad Request")
            token = "AQAEA" + base64.urlsafe_b64encode(secrets.token_bytes(36)).decode("ascii")
            with self._lock:
                self._imds_tokens[token] = time.time() + ttl
            return 200, "text/plain", token.encode("ascii"), [("x-aws-ec2-metadata-token-ttl-seconds", str(ttl))]
        if handler.command != "GET":
            raise CredentialError(405, "MethodNotAllowed", "Method Not Allowed")
        if mode == "v2":
            token = handler.headers.get("x-aws-ec2-metadata-token")
            with self._lock:
                valid = token is not None and self._imds_tokens.get(token, 0) > time.time()
            if not valid:
                raise CredentialError(401, "Unauthorized", "Unauthorized")
        self._note(entry, token=mode == "v2")
        if route == IMDS_ROLE_PATH:
            return 200, "text/plain", role.encode("utf-8"), []
        if route == IMDS_ROLE_PATH + role:
            credentials = self._issue("imds", self._lifetime(LIFETIMES["imds"]), role_name=role)
            document = {"Code": "Success", "LastUpdated": _iso(self.now()), "Type": "AWS-HMAC",
                        "AccessKeyId": credentials["AccessKeyId"], "SecretAccessKey": credentials["SecretAccessKey"],
                        "Token": credentials["SessionToken"], "Expiration": credentials["Expiration"]}
            return 200, "text/plain", json.dumps(document, indent=2).encode("utf-8"), []
        raise CredentialError(404, "NotFound", "Not Found")

    # -- container credentials ---------------------------------------------------------------

    def _container(self, handler, body, entry):
        if handler.command != "GET":
            raise CredentialError(405, "MethodNotAllowed", "Method Not Allowed")
        with self._lock:
            wanted = self._settings["container"].get("token")
            role = self._settings["role"]
        given = handler.headers.get("Authorization")
        self._note(entry, authorization=given is not None)
        if wanted is not None and given != wanted:
            raise CredentialError(401, "AccessDenied", "Invalid or missing authorization token")
        credentials = self._issue("container", self._lifetime(LIFETIMES["container"]), role_name=role)
        document = {"RoleArn": f"arn:aws:iam::{self.account}:role/{role}", "AccessKeyId": credentials["AccessKeyId"],
                    "SecretAccessKey": credentials["SecretAccessKey"], "Token": credentials["SessionToken"],
                    "Expiration": credentials["Expiration"], "AccountId": self.account}
        return 200, "application/json", json.dumps(document).encode("utf-8"), []

    # -- request log -------------------------------------------------------------------------

    def _log(self, endpoint, handler, body):
        entry = {"time": round(time.time(), 3), "endpoint": endpoint, "method": handler.command,
                 "path": handler.path, "status": None, "error": None}
        with self._lock:
            entry["seq"] = len(self._requests) + 1
            self._requests.append(entry)
        return entry

    def _note(self, entry, **fields):
        with self._lock:
            entry.update(fields)

    # -- admin -------------------------------------------------------------------------------

    def admin(self, method, spec):
        """`/_emulator/credentials`: GET the settings, issued keys and request log; POST
        settings (merged); DELETE back to the defaults with an empty log. Returns
        (status, document)."""
        if method == "GET":
            with self._lock:
                return 200, {"settings": json.loads(json.dumps(self._settings)),
                             "issued": [dict(i) for i in self._issued],
                             "requests": [dict(r) for r in self._requests]}
        if method == "DELETE":
            with self._lock:
                self._settings = _default_settings()
                self._requests = []
            return 200, {"settings": _default_settings()}
        if method != "POST":
            return 405, {"error": f"{method} is not allowed on /_emulator/credentials"}
        try:
            settings = _merge_settings(self._settings, spec)
        except ValueError as err:
            return 400, {"error": str(err)}
        with self._lock:
            self._settings = settings
        return 200, {"settings": settings}


def _merge_settings(current, spec):
    """The settings with `spec` applied; raises ValueError when it is invalid."""
    if not isinstance(spec, dict):
        raise ValueError("expected a JSON object")
    out = json.loads(json.dumps(current))
    for key, value in spec.items():
        if key == "lifetime":
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
                raise ValueError("lifetime must be a number of seconds > 0, or null")
            out[key] = value
        elif key == "role":
            if not isinstance(value, str) or not re.match(r"^[\w+=,.@-]{1,64}$", value):
                raise ValueError("role must be a role name")
            out[key] = value
        elif key in ENDPOINTS:
            if not isinstance(value, dict):
                raise ValueError(f"{key} must be a JSON object")
            for name, item in value.items():
                if name == "delay" and (not isinstance(item, (int, float)) or isinstance(item, bool) or item < 0):
                    raise ValueError(f"{key}.delay must be a number of seconds >= 0")
                if name == "status" and item is not None and (not isinstance(item, int) or not 400 <= item <= 599):
                    raise ValueError(f"{key}.status must be an HTTP error status (400..599) or null")
                if name == "mode" and (key != "imds" or item not in IMDS_MODES):
                    raise ValueError(f"imds.mode must be one of {', '.join(IMDS_MODES)}")
                if name in ("malformed", "drop") and not isinstance(item, bool):
                    raise ValueError(f"{key}.{name} must be true or false")
                if name in ("deny", "web_identity_tokens", "tokens") and item is not None and (
                        not isinstance(item, list) or not all(isinstance(v, str) for v in item)):
                    raise ValueError(f"{key}.{name} must be a list of strings or null")
                if name == "external_ids" and (not isinstance(item, dict)
                                               or not all(isinstance(v, str) for v in item.values())):
                    raise ValueError(f"{key}.external_ids must map role ARNs to strings")
                if name == "token" and item is not None and not isinstance(item, str):
                    raise ValueError(f"{key}.token must be a string or null")
                if name not in ("delay", "status", "mode", "malformed", "drop", "token", "deny", "external_ids",
                                "web_identity_tokens", "tokens"):
                    raise ValueError(f"unknown setting {key}.{name}")
                out[key][name] = item
        else:
            raise ValueError(f"unknown setting {key}")
    return out


def _jwt_subject(token):
    """The `sub` claim of a JWT-shaped token, else a stand-in."""
    parts = token.split(".")
    if len(parts) == 3:
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            if isinstance(payload, dict) and isinstance(payload.get("sub"), str):
                return payload["sub"]
        except (ValueError, binascii.Error):
            pass
    return "web-identity-subject"
