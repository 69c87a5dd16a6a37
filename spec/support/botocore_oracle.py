#!/usr/bin/env python3
"""botocore as an oracle for spec/botocore_spec.lua.

Reads one JSON request object, or a JSON array of them, from stdin and writes
the answer (an object, or an array in the same order) to stdout. A request:

  {"op": "StartReplication",
   "params": {...},                     serialized by botocore's JSON serializer
   "timestamp_precision": "millisecond" (optional; botocore's default truncates
                                         timestamps to whole seconds)
   "sign": {"time": 1764072000, "region": "us-east-1", "host": "dms....com",
            "access_key": "...", "secret_key": "...", "session_token": "...",
            "body": "..."}              signed by SigV4Auth; body defaults to
                                        botocore's own serialized body
   "response": {"status": 200, "headers": {...}, "body": "..."}
                                        parsed by the JSON response parser}

The answer: {"body": text | null, "validation_error": text | null,
             "authorization": text, "canonical_request": text,
             "parsed": {...} | null,
             "error": {"code", "message", "fields": {...} | absent} | null,
             "request_id": text | null}
Timestamps of parsed responses come back as epoch seconds, blobs as
{"__bytes__": base64}, NaN and the infinities as "NaN", "Infinity",
"-Infinity"; "fields" are the members of a modeled error shape (what botocore
puts on the exception). In params, {"__bytes__": base64} is a bytes value and
{"__float__": "NaN" | "Infinity" | "-Infinity"} a float.
"""
import base64
import datetime
import json
import math
import sys
from unittest import mock

import botocore.auth
import botocore.parsers
import botocore.serialize
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ParamValidationError

SESSION = botocore.session.get_session()
MODEL = SESSION.get_service_model("dms")
PARSER = botocore.parsers.create_parser("json")


def plain(value):
    """botocore's parsed values as JSON: datetimes become epoch seconds."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def unmarked(value):
    """params as botocore takes them: bytes and special floats from their markers."""
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return base64.b64decode(value["__bytes__"])
        if set(value) == {"__float__"}:
            return float(value["__float__"].lower().replace("infinity", "inf"))
        return {k: unmarked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unmarked(v) for v in value]
    return value


def serialize(case, out):
    op = MODEL.operation_model(case["op"])
    precision = case.get("timestamp_precision", "default")
    serializer = botocore.serialize.create_serializer(
        "json", include_validation=True, timestamp_precision=precision)
    try:
        request = serializer.serialize_to_request(unmarked(case.get("params") or {}), op)
    except ParamValidationError as e:
        out["validation_error"] = str(e)
        return None
    body = request["body"]
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    out["body"] = body
    out["target"] = request["headers"].get("X-Amz-Target")
    out["content_type"] = request["headers"].get("Content-Type")
    return body


def sign(case, sig, body, out):
    when = datetime.datetime.fromtimestamp(sig["time"], datetime.timezone.utc)
    if sig.get("body") is not None:
        body = sig["body"]
    if body is None:
        body = ""
    target = "%s.%s" % (MODEL.metadata["targetPrefix"], case["op"])
    # exactly the headers lua-dms signs, in the same order
    headers = {
        "Host": sig["host"],
        "Content-Type": "application/x-amz-json-%s" % MODEL.metadata["jsonVersion"],
        "X-Amz-Target": target,
        "X-Amz-Date": when.strftime("%Y%m%dT%H%M%SZ"),
    }
    request = AWSRequest(method="POST", url="https://%s/" % sig["host"],
                         data=body.encode("utf-8"), headers=headers)
    creds = Credentials(sig["access_key"], sig["secret_key"], sig.get("session_token"))
    auth = botocore.auth.SigV4Auth(creds, MODEL.signing_name, sig["region"])
    seen = []
    compute = auth.canonical_request
    auth.canonical_request = lambda r: seen.append(compute(r)) or seen[-1]
    # freeze the clock the way botocore's own tests do
    with mock.patch.object(botocore.auth, "get_current_datetime",
                           return_value=when.replace(tzinfo=None)):
        auth.add_auth(request)
    out["canonical_request"] = seen[0]
    out["authorization"] = request.headers["Authorization"]
    out["x_amz_date"] = request.headers["X-Amz-Date"]
    out["security_token"] = request.headers.get("X-Amz-Security-Token")


def parse(case, resp, out):
    op = MODEL.operation_model(case["op"])
    headers = botocore.awsrequest.HeadersDict(resp.get("headers") or {})
    response = {"status_code": resp["status"], "headers": headers,
                "body": (resp.get("body") or "").encode("utf-8")}
    parsed = PARSER.parse(response, op.output_shape)
    meta = parsed.pop("ResponseMetadata", None) or {}
    if meta.get("RequestId"):
        out["request_id"] = meta["RequestId"]
    if "Error" in parsed and parsed["Error"].get("Code"):
        out["error"] = {"code": parsed["Error"]["Code"],
                        "message": parsed["Error"].get("Message", "")}
        # the modeled members, as botocore's endpoint adds them to the exception
        shape = MODEL.shape_for_error_code(parsed["Error"]["Code"])
        if shape is not None:
            fields = PARSER.parse(response, shape)
            fields.pop("ResponseMetadata", None)
            fields.pop("Error", None)
            out["error"]["fields"] = plain(fields)
    else:
        out["parsed"] = plain(parsed)


def answer(case):
    out = {"body": None, "validation_error": None, "parsed": None, "error": None}
    try:
        body = None
        if "params" in case:
            body = serialize(case, out)
        if case.get("sign"):
            sign(case, case["sign"], body, out)
        if case.get("response"):
            parse(case, case["response"], out)
    except Exception as e:  # reported to the spec, which fails the case
        out["oracle_error"] = "%s: %s" % (type(e).__name__, e)
    # absent rather than null: JSON null is truthy once decoded in Lua
    return {k: v for k, v in out.items() if v is not None}


def main():
    request = json.load(sys.stdin)
    if isinstance(request, list):
        result = [answer(c) for c in request]
    else:
        result = answer(request)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
