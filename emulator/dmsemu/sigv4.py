"""AWS Signature Version 4 verification (header form), written with hashlib and hmac.

The canonical request is rebuilt from the request exactly as it was received: the raw
request target, the received header lines and the raw body bytes. Strings that come
from the request line or headers are the latin-1 decodings http.server produces, so
each character stands for one received byte.
"""

import calendar
import hashlib
import hmac
import time
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "dms"
TERMINATOR = "aws4_request"
MAX_SKEW_SECONDS = 300
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

INVALID_TOKEN = "The security token included in the request is invalid."
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


class AuthError(Exception):
    """A request that fails authentication; `code` is the AWS error code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def _hmac(key, text):
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_key, date, region, service):
    key = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    for part in (region, service, TERMINATOR):
        key = _hmac(key, part)
    return key


def canonical_path(raw_path):
    """Remove dot segments and empty segments, then URI-encode the raw path once more."""
    segments = []
    for segment in raw_path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    path = "/" + "/".join(segments)
    if raw_path.endswith("/") and segments:
        path += "/"
    return quote(path.encode("latin-1"), safe="/~")


def _encode_query_part(text):
    return quote(unquote_to_bytes(text.encode("latin-1")), safe="-_.~")


def canonical_query(raw_query):
    pairs = []
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((_encode_query_part(name), _encode_query_part(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def header_values(header_pairs, name):
    """All values of header `name` (case-insensitive), in the order received."""
    name = name.lower()
    return [value for key, value in header_pairs if key.lower() == name]


def canonical_headers(header_pairs, signed_headers):
    lines = []
    for name in signed_headers:
        values = [" ".join(value.split()) for value in header_values(header_pairs, name)]
        lines.append(f"{name}:{','.join(values)}\n")
    return "".join(lines)


def canonical_request(method, target, header_pairs, signed_headers, body):
    raw_path, _, raw_query = target.partition("?")
    return "\n".join([
        method,
        canonical_path(raw_path),
        canonical_query(raw_query),
        canonical_headers(header_pairs, signed_headers),
        ";".join(signed_headers),
        sha256_hex(body),
    ])


def string_to_sign(amz_date, scope, creq):
    return "\n".join([ALGORITHM, amz_date, scope, sha256_hex(creq.encode("latin-1"))])


def signature(secret_key, scope_parts, sts):
    date, region, service = scope_parts
    key = signing_key(secret_key, date, region, service)
    return hmac.new(key, sts.encode("latin-1"), hashlib.sha256).hexdigest()


def parse_authorization(value):
    """Split an Authorization header into its algorithm and its key=value parameters."""
    algorithm, _, rest = value.strip().partition(" ")
    params = {}
    for item in rest.split(","):
        name, sep, item_value = item.strip().partition("=")
        if sep:
            params[name] = item_value
    return algorithm, params


def _format_amz_date(epoch):
    return time.strftime(AMZ_DATE_FORMAT, time.gmtime(epoch))


def _parse_amz_date(value):
    try:
        return calendar.timegm(time.strptime(value, AMZ_DATE_FORMAT))
    except ValueError:
        raise AuthError(
            "IncompleteSignatureException",
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601",
        ) from None


class Credentials:
    """A known access key: its secret and, optionally, the session token it requires."""

    def __init__(self, access_key, secret_key, session_token=None, expires=None):
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.expires = expires  # signing-clock epoch seconds after which they are refused (temporary keys)

    @classmethod
    def parse(cls, text):
        """`AK:SK` or `AK:SK:TOKEN`."""
        parts = text.split(":", 2)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise ValueError(f"expected AK:SK or AK:SK:TOKEN, got {text!r}")
        return cls(*parts)


class Verifier:
    """Checks the SigV4 Authorization of a request against the known credentials."""

    def __init__(self, credentials, now):
        self.credentials = {c.access_key: c for c in credentials}
        self.now = now

    def add(self, credentials):
        """Accept these credentials from now on (temporary keys the emulator issued)."""
        self.credentials[credentials.access_key] = credentials

    def verify(self, method, target, header_pairs, body, service=SERVICE):
        """Return the access key of a correctly signed request, else raise AuthError."""
        authorization = header_values(header_pairs, "authorization")
        if not authorization:
            raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
        authorization = authorization[-1]
        algorithm, params = parse_authorization(authorization)
        if algorithm != ALGORITHM:
            raise AuthError(
                "IncompleteSignatureException",
                f"Unsupported AWS 'algorithm': '{algorithm}'. Authorization={authorization}",
            )
        missing = [name for name in ("Credential", "Signature", "SignedHeaders") if not params.get(name)]
        if missing:
            raise AuthError("IncompleteSignatureException", " ".join(
                f"Authorization header requires '{name}' parameter." for name in missing
            ) + f" Authorization={authorization}")
        amz_dates = header_values(header_pairs, "x-amz-date")
        if not amz_dates:
            raise AuthError(
                "IncompleteSignatureException",
                f"Authorization header requires existence of a 'X-Amz-Date' header. "
                f"Authorization={authorization}",
            )
        amz_date = amz_dates[-1].strip()
        request_time = _parse_amz_date(amz_date)

        credential = params["Credential"]
        scope = credential.split("/")
        if len(scope) != 5:
            raise AuthError(
                "IncompleteSignatureException",
                "Credential must have exactly 5 slash-delimited elements, "
                f"e.g. keyid/date/region/service/term, got '{credential}'",
            )
        access_key, date, region, _, terminator = scope
        known = self.credentials.get(access_key)
        if known is None:
            raise AuthError("UnrecognizedClientException", INVALID_TOKEN)
        if date != amz_date[:8]:
            raise AuthError(
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                f"date from HTTP: '{date}' != '{amz_date[:8]}', from '{amz_date}'.",
            )
        if scope[3] != service:
            raise AuthError(
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{service}'. ",
            )
        if terminator != TERMINATOR:
            raise AuthError(
                "InvalidSignatureException",
                f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
                f"not '{terminator}'. ",
            )

        signed_headers = params["SignedHeaders"].split(";")
        if "host" not in signed_headers:
            raise AuthError(
                "InvalidSignatureException",
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            )
        self._check_time(amz_date, request_time)
        self._check_token(known, header_values(header_pairs, "x-amz-security-token"), signed_headers)
        if known.expires is not None and self.now() >= known.expires:
            raise AuthError("ExpiredTokenException", "The security token included in the request is expired")

        creq = canonical_request(method, target, header_pairs, signed_headers, body)
        sts = string_to_sign(amz_date, "/".join(scope[1:]), creq)
        expected = signature(known.secret_key, (date, region, scope[3]), sts)
        if not hmac.compare_digest(expected, params["Signature"]):
            raise AuthError(
                "InvalidSignatureException",
                f"{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n"
                f"'{creq}'\n\nThe String-to-Sign should have been\n'{sts}'\n",
            )
        return access_key

    def _check_time(self, amz_date, request_time):
        now = self.now()
        if request_time < now - MAX_SKEW_SECONDS:
            raise AuthError(
                "InvalidSignatureException",
                f"Signature expired: {amz_date} is now earlier than "
                f"{_format_amz_date(now - MAX_SKEW_SECONDS)} ({_format_amz_date(now)} - 5 min.)",
            )
        if request_time > now + MAX_SKEW_SECONDS:
            raise AuthError(
                "InvalidSignatureException",
                f"Signature not yet current: {amz_date} is still later than "
                f"{_format_amz_date(now + MAX_SKEW_SECONDS)} ({_format_amz_date(now)} + 5 min.)",
            )

    @staticmethod
    def _check_token(known, tokens, signed_headers):
        if tokens and "x-amz-security-token" not in signed_headers:
            raise AuthError(
                "InvalidSignatureException",
                "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.",
            )
        if known.session_token is not None and (not tokens or tokens[-1].strip() != known.session_token):
            raise AuthError("UnrecognizedClientException", INVALID_TOKEN)
