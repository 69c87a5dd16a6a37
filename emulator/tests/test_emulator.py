"""Tests of the local DMS endpoint, driven over HTTP like a client would.

The emulator runs as a subprocess. Requests are made with botocore (a real AWS client),
with the AWS CLI, and with http.client plus the small independent signer below, which
can tamper with any part of a request.
"""

import datetime
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
EMULATOR_DIR = HERE.parent
EXECUTABLE = EMULATOR_DIR / "dms-emulator"
SEED_EXAMPLE = EMULATOR_DIR / "seed.example.json"
SUITE_DIR = Path(os.environ.get(
    "AWS4_TESTSUITE", EMULATOR_DIR.parent.parent / "shared" / "reference" / "aws4_testsuite"))

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TARGET_PREFIX = "AmazonDMSv20160101."
ARN_PREFIX = "arn:aws:dms:us-east-1:123456789012:replication-config:"
FULL_LOAD = ARN_PREFIX + "FULLLOAD"
CDC = ARN_PREFIX + "CDCONLY"
FULL_LOAD_AND_CDC = ARN_PREFIX + "FULLLOADANDCDC"
MINUTE = 60.0
PHASES = [
    ("initializing", 3.5), ("preparing_metadata_resources", 17.5), ("testing_connection", 3.5),
    ("fetching_metadata", 4), ("calculating_capacity", 1.5), ("provisioning_capacity", 17.5),
    ("replication_starting", 1.5),
]
TO_RUNNING = sum(minutes for _, minutes in PHASES) * MINUTE

sys.path.insert(0, str(EMULATOR_DIR))
from dmsemu import sigv4  # noqa: E402 (the emulator's verifier, checked against the AWS suite)

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:
    boto3 = None


# -- a small signer, independent of the emulator's code ------------------------------------------

def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(method, path, headers, body, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
         region="us-east-1", service="dms", when=None, token=None, sign_token=True):
    """Return `headers` (a list of pairs, Host included) plus X-Amz-Date, token and Authorization."""
    when = time.time() if when is None else when
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    headers = list(headers) + [("X-Amz-Date", amz_date)]
    if token is not None and sign_token:
        headers.append(("X-Amz-Security-Token", token))
    signed = sorted({name.lower() for name, _ in headers})
    canonical_headers = "".join(
        "%s:%s\n" % (name, ",".join(" ".join(v.split()) for n, v in headers if n.lower() == name))
        for name in signed)
    creq = "\n".join([method, path, "", canonical_headers, ";".join(signed), hashlib.sha256(body).hexdigest()])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    headers.append(("Authorization", f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                     f"SignedHeaders={';'.join(signed)}, Signature={signature}"))
    if token is not None and not sign_token:
        headers.append(("X-Amz-Security-Token", token))
    return headers


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def code(self):
        return self.json().get("__type")


class EmulatorProcess:
    """One emulator subprocess and helpers to talk to it."""

    def __init__(self, *args):
        self.process = subprocess.Popen([str(EXECUTABLE), *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.process.kill()
            raise RuntimeError(f"emulator did not start: {self.process.stderr.read()}")
        parsed = urllib.parse.urlsplit(self.url)
        self.host = parsed.netloc
        self.port = parsed.port

    def close(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.process.stdout.close()
        self.process.stderr.close()

    def connection(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def send(self, method, path, headers, body=b"", connection=None):
        conn = connection or self.connection()
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            if connection is None:
                conn.close()

    def admin(self, method, name, document=None):
        body = json.dumps(document).encode() if document is not None else b""
        response = self.send(method, "/_emulator/" + name, [("Host", self.host)], body)
        if response.status != 200:
            raise AssertionError(f"admin {method} {name}: {response.status} {response.body!r}")
        return response.json()

    def call(self, operation, params=None, body=None, send_body=None, connection=None, extra_headers=(),
             **signing):
        """A DMS call signed over `body` (default: `params` as JSON); `send_body` replaces what is sent."""
        body = json.dumps(params or {}).encode() if body is None else body
        headers = [("Host", self.host), ("Content-Type", "application/x-amz-json-1.1")]
        if operation is not None:
            headers.append(("X-Amz-Target", TARGET_PREFIX + operation))
        headers = sign("POST", "/", headers + list(extra_headers), body, **signing)
        return self.send("POST", "/", headers, body if send_body is None else send_body, connection)

    def advance(self, seconds):
        return self.admin("POST", "clock", {"advance": seconds})

    def replication(self, arn):
        response = self.call("DescribeReplications", {
            "Filters": [{"Name": "replication-config-arn", "Values": [arn]}]})
        assert response.status == 200, response.body
        return response.json()["Replications"][0]

    def start(self, arn, start_type="start-replication", **params):
        return self.call("StartReplication", dict(ReplicationConfigArn=arn, StartReplicationType=start_type,
                                                  **params))


class EmulatorTestCase(unittest.TestCase):
    """Shares one emulator (speed 1, moved on with clock advances) reset before each test."""

    ARGS = ("--speed", "1")
    SPECS = [
        {"arn": FULL_LOAD, "identifier": "full-load", "type": "full-load", "tables": 10},
        {"arn": CDC, "identifier": "cdc", "type": "cdc", "tables": 4},
        {"arn": FULL_LOAD_AND_CDC, "identifier": "full-load-and-cdc", "type": "full-load-and-cdc",
         "tables": 10},
    ]

    SEED = {}                    # other top-level seed members

    @classmethod
    def setUpClass(cls):
        cls.seed_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump({"replications": cls.SPECS, **cls.SEED}, cls.seed_file)
        cls.seed_file.close()
        cls.emu = EmulatorProcess(*cls.ARGS, "--seed", cls.seed_file.name)

    @classmethod
    def tearDownClass(cls):
        cls.emu.close()
        os.unlink(cls.seed_file.name)

    def setUp(self):
        self.emu.admin("POST", "reset")

    def assertError(self, response, status, code, message_part=None):
        self.assertEqual(response.status, status, response.body)
        self.assertEqual(response.headers["content-type"], "application/x-amz-json-1.1")
        self.assertEqual(response.code, code, response.body)
        if message_part is not None:
            self.assertIn(message_part, response.json()["message"])

    def run_to(self, arn, status="running", start_type="start-replication"):
        self.assertEqual(self.emu.start(arn, start_type).status, 200)
        self.emu.advance(TO_RUNNING)
        replication = self.emu.replication(arn)
        self.assertEqual(replication["Status"], status)
        return replication


# -- SigV4 ---------------------------------------------------------------------------------------

def _parse_suite_request(raw):
    head, _, body = raw.partition(b"\n\n")
    lines = head.decode("utf-8").split("\n")
    method, rest = lines[0].split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            name, value = headers[-1]
            headers[-1] = (name, value + "\n" + line)
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    latin1 = [(n.encode().decode("latin-1"), v.encode().decode("latin-1")) for n, v in headers]
    return method, target.encode().decode("latin-1"), latin1, body


@unittest.skipUnless(SUITE_DIR.is_dir(), f"AWS SigV4 test suite not found at {SUITE_DIR} (set AWS4_TESTSUITE)")
class SigV4SuiteTest(unittest.TestCase):
    """The emulator's canonicalisation reproduces the AWS SigV4 test suite."""

    def test_every_case(self):
        cases = sorted(SUITE_DIR.rglob("*.sreq"))
        self.assertGreater(len(cases), 20)
        for req in cases:
            with self.subTest(case=req.stem):
                # The signed request (.sreq) is what a server receives; the suite's .authz,
                # .creq and .sts are the expected results.
                method, target, headers, body = _parse_suite_request(req.read_bytes())
                authz = req.with_suffix(".authz").read_text().strip()
                _, params = sigv4.parse_authorization(authz)
                signed = params["SignedHeaders"].split(";")
                creq = sigv4.canonical_request(method, target, headers, signed, body)
                self.assertEqual(creq, req.with_suffix(".creq").read_text())
                amz_date = sigv4.header_values(headers, "x-amz-date")[0]
                scope = params["Credential"].split("/", 1)[1]
                sts = sigv4.string_to_sign(amz_date, scope, creq)
                self.assertEqual(sts, req.with_suffix(".sts").read_text())
                date, region, service, _ = scope.split("/")
                self.assertEqual(sigv4.signature(SECRET_KEY, (date, region, service), sts), params["Signature"])


class SignatureTest(EmulatorTestCase):
    ARGS = ("--speed", "1", "--key", f"{ACCESS_KEY}:{SECRET_KEY}", "--key", "ASIATEMP:tempsecret:TOKEN123")

    def test_signed_request_is_answered(self):
        response = self.emu.call("DescribeReplications")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["content-type"], "application/x-amz-json-1.1")
        self.assertTrue(response.headers["x-amzn-requestid"])
        self.assertEqual(len(response.json()["Replications"]), 3)

    def test_tampered_body(self):
        signed = json.dumps({"MaxRecords": 20}).encode()
        response = self.emu.call("DescribeReplications", body=signed, send_body=signed.replace(b"20", b"21"))
        self.assertError(response, 400, "InvalidSignatureException",
                         "The request signature we calculated does not match")

    def test_tampered_signed_header(self):
        headers = sign("POST", "/", [("Host", self.emu.host), ("X-Amz-Target", TARGET_PREFIX + "DescribeReplications")],
                       b"{}")
        headers = [(n, TARGET_PREFIX + "StopReplication" if n == "X-Amz-Target" else v) for n, v in headers]
        self.assertError(self.emu.send("POST", "/", headers, b"{}"), 400, "InvalidSignatureException")

    def test_header_spaces_are_collapsed_and_trimmed(self):
        response = self.emu.call("DescribeReplications", extra_headers=[("X-Custom", "  a   b    c ")])
        self.assertEqual(response.status, 200, response.body)

    def test_unknown_access_key(self):
        response = self.emu.call("DescribeReplications", access_key="AKIDUNKNOWN")
        self.assertError(response, 400, "UnrecognizedClientException",
                         "The security token included in the request is invalid.")

    def test_wrong_secret(self):
        response = self.emu.call("DescribeReplications", secret_key="not-the-secret")
        self.assertError(response, 400, "InvalidSignatureException")
        message = response.json()["message"]
        self.assertIn("The Canonical String for this request should have been", message)
        self.assertIn("The String-to-Sign should have been", message)

    def test_stale_and_future_dates(self):
        response = self.emu.call("DescribeReplications", when=time.time() - 600)
        self.assertError(response, 400, "InvalidSignatureException", "Signature expired: ")
        self.assertIn("is now earlier than", response.json()["message"])
        response = self.emu.call("DescribeReplications", when=time.time() + 600)
        self.assertError(response, 400, "InvalidSignatureException", "Signature not yet current: ")
        self.assertEqual(self.emu.call("DescribeReplications", when=time.time() - 240).status, 200)

    def test_clock_skew_moves_the_window(self):
        self.emu.admin("POST", "clock", {"skew": 3600})
        self.assertError(self.emu.call("DescribeReplications"), 400, "InvalidSignatureException", "Signature expired")
        self.assertEqual(self.emu.call("DescribeReplications", when=time.time() + 3600).status, 200)
        self.emu.admin("POST", "clock", {"skew": -3600})
        self.assertError(self.emu.call("DescribeReplications"), 400, "InvalidSignatureException",
                         "Signature not yet current")

    def test_any_region_but_only_dms(self):
        self.assertEqual(self.emu.call("DescribeReplications", region="eu-west-3").status, 200)
        response = self.emu.call("DescribeReplications", service="s3")
        self.assertError(response, 400, "InvalidSignatureException",
                         "Credential should be scoped to correct service: 'dms'.")

    def test_session_token(self):
        ok = self.emu.call("DescribeReplications", access_key="ASIATEMP", secret_key="tempsecret", token="TOKEN123")
        self.assertEqual(ok.status, 200, ok.body)
        for token in ("OTHER", None):
            response = self.emu.call("DescribeReplications", access_key="ASIATEMP", secret_key="tempsecret",
                                     token=token)
            self.assertError(response, 400, "UnrecognizedClientException")
        response = self.emu.call("DescribeReplications", access_key="ASIATEMP", secret_key="tempsecret",
                                 token="TOKEN123", sign_token=False)
        self.assertError(response, 400, "InvalidSignatureException", "X-Amz-Security-Token")
        # A key without a configured token accepts a signed token.
        self.assertEqual(self.emu.call("DescribeReplications", token="ANY").status, 200)

    def test_missing_or_garbled_authorization(self):
        headers = [("Host", self.emu.host), ("X-Amz-Target", TARGET_PREFIX + "DescribeReplications")]
        self.assertError(self.emu.send("POST", "/", headers, b"{}"), 400, "MissingAuthenticationTokenException")
        garbled = headers + [("X-Amz-Date", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())),
                             ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/x")]
        self.assertError(self.emu.send("POST", "/", garbled, b"{}"), 400, "IncompleteSignatureException",
                         "Authorization header requires 'Signature' parameter.")
        signed = [(n, v) for n, v in sign("POST", "/", headers, b"{}") if n != "X-Amz-Date"]
        self.assertError(self.emu.send("POST", "/", signed, b"{}"), 400, "IncompleteSignatureException",
                         "X-Amz-Date")

    def test_failed_signatures_are_logged_and_never_pass(self):
        self.emu.call("StartReplication", {"ReplicationConfigArn": CDC, "StartReplicationType": "start-replication"},
                      secret_key="wrong")
        self.assertEqual(self.emu.replication(CDC)["Status"], "created")
        first = self.emu.admin("GET", "requests")["requests"][0]
        self.assertFalse(first["signature_ok"])
        self.assertEqual(first["error"], "InvalidSignatureException")
        self.assertEqual(first["operation"], "StartReplication")

    def test_many_requests_on_one_connection(self):
        conn = self.emu.connection()
        try:
            self.emu.call("DescribeReplications", connection=conn)
            sock = conn.sock
            for _ in range(5):
                self.assertEqual(self.emu.call("DescribeReplications", connection=conn).status, 200)
                self.assertIs(conn.sock, sock)
        finally:
            conn.close()


class ConcurrencyTest(EmulatorTestCase):
    def test_parallel_clients(self):
        results, errors = [], []

        def client():
            conn = self.emu.connection()
            try:
                for _ in range(10):
                    results.append(self.emu.call("DescribeReplications", connection=conn).status)
            except Exception as err:  # reported by the assertion below
                errors.append(repr(err))
            finally:
                conn.close()

        threads = [threading.Thread(target=client) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        self.assertEqual(errors, [])
        self.assertEqual(results, [200] * 160)
        self.assertEqual(len(self.emu.admin("GET", "requests")["requests"]), 160)


class ProtocolTest(EmulatorTestCase):
    def test_unknown_operation(self):
        self.assertError(self.emu.call("CreateEndpoint"), 400, "UnknownOperationException")
        self.assertError(self.emu.call(None), 400, "UnknownOperationException")

    def test_malformed_json(self):
        self.assertError(self.emu.call("DescribeReplications", body=b"{not json"), 400, "SerializationException")
        self.assertError(self.emu.call("DescribeReplications", body=b"[]"), 400, "SerializationException")
        self.assertError(self.emu.call("DescribeReplications", {"MaxRecords": "20"}), 400, "SerializationException")

    def test_missing_required_members(self):
        response = self.emu.call("StartReplication", {})
        self.assertError(response, 400, "ValidationException", "2 validation errors detected")
        self.assertIn("'replicationConfigArn'", response.json()["message"])
        self.assertError(self.emu.call("StopReplication", {}), 400, "ValidationException",
                         "Value null at 'replicationConfigArn'")

    def test_invalid_parameter_values(self):
        self.assertError(self.emu.start(CDC, "restart"), 400, "InvalidParameterValueException",
                         "StartReplicationType")
        self.assertError(self.emu.start(CDC, PremigrationAssessmentSettings="{oops"), 400,
                         "InvalidParameterValueException", "PremigrationAssessmentSettings")
        self.assertError(self.emu.start(CDC, PremigrationAssessmentSettings="[1]"), 400,
                         "InvalidParameterValueException")
        self.assertError(self.emu.start(CDC, CdcStartTime=1700000000, CdcStartPosition="x"), 400,
                         "InvalidParameterValueException")
        self.assertEqual(self.emu.replication(CDC)["Status"], "created")

    def test_resource_not_found(self):
        self.assertError(self.emu.start(ARN_PREFIX + "NOPE"), 400, "ResourceNotFoundFault")
        self.assertError(self.emu.call("StopReplication", {"ReplicationConfigArn": ARN_PREFIX + "NOPE"}), 400,
                         "ResourceNotFoundFault")
        for operation in ("DescribeReplications", "DescribeReplicationConfigs"):
            for name, value in (("replication-config-arn", ARN_PREFIX + "NOPE"), ("replication-config-id", "nope")):
                response = self.emu.call(operation, {"Filters": [{"Name": name, "Values": [value]}]})
                self.assertError(response, 400, "ResourceNotFoundFault")

    def test_filters(self):
        response = self.emu.call("DescribeReplications", {"Filters": [
            {"Name": "replication-config-id", "Values": ["cdc", "full-load"]}]})
        self.assertEqual([r["ReplicationConfigIdentifier"] for r in response.json()["Replications"]],
                         ["cdc", "full-load"])
        response = self.emu.call("DescribeReplicationConfigs", {"Filters": [
            {"Name": "replication-config-arn", "Values": [FULL_LOAD_AND_CDC]}]})
        configs = response.json()["ReplicationConfigs"]
        self.assertEqual([(c["ReplicationConfigArn"], c["ReplicationType"]) for c in configs],
                         [(FULL_LOAD_AND_CDC, "full-load-and-cdc")])
        self.assertError(self.emu.call("DescribeReplications", {"Filters": [{"Name": "bogus", "Values": ["x"]}]}),
                         400, "InvalidParameterValueException")
        self.assertError(self.emu.call("DescribeReplications", {"Filters": [{"Name": "replication-config-id"}]}),
                         400, "ValidationException")

    def test_paging(self):
        for index in range(30):
            self.emu.admin("POST", "replications", {"identifier": f"paged-{index:02d}", "type": "cdc"})
        for operation, key in (("DescribeReplications", "Replications"),
                               ("DescribeReplicationConfigs", "ReplicationConfigs")):
            first = self.emu.call(operation, {"MaxRecords": 20}).json()
            self.assertEqual(len(first[key]), 20)
            second = self.emu.call(operation, {"MaxRecords": 20, "Marker": first["Marker"]}).json()
            self.assertEqual(len(second[key]), 13)
            self.assertNotIn("Marker", second)
            arns = [item["ReplicationConfigArn"] for item in first[key] + second[key]]
            self.assertEqual(len(set(arns)), 33)
            self.assertNotIn("Marker", self.emu.call(operation).json())
            self.assertEqual(len(self.emu.call(operation).json()[key]), 33)
            for bad in (19, 101, 0):
                self.assertError(self.emu.call(operation, {"MaxRecords": bad}), 400, "InvalidParameterValueException")
            self.assertError(self.emu.call(operation, {"Marker": "!!!"}), 400, "InvalidParameterValueException")

    def test_created_replication(self):
        replication = self.emu.replication(FULL_LOAD_AND_CDC)
        self.assertEqual(replication["Status"], "created")
        self.assertEqual(replication["ReplicationType"], "full-load-and-cdc")
        self.assertEqual(replication["ReplicationConfigIdentifier"], "full-load-and-cdc")
        self.assertTrue(replication["SourceEndpointArn"].startswith("arn:aws:dms:us-east-1:123456789012:endpoint:"))
        self.assertTrue(replication["TargetEndpointArn"].startswith("arn:aws:dms:us-east-1:123456789012:endpoint:"))
        self.assertIsInstance(replication["ReplicationCreateTime"], (int, float))
        self.assertNotIn("ProvisionData", replication)
        self.assertNotIn("StopReason", replication)


class StateTest(EmulatorTestCase):
    def test_every_status_in_order(self):
        response = self.emu.start(FULL_LOAD_AND_CDC)
        self.assertEqual(response.status, 200, response.body)
        started = response.json()["Replication"]
        self.assertEqual(started["Status"], "initializing")
        self.assertEqual(started["StartReplicationType"], "start-replication")
        provision = {"provisioning_capacity": "provisioning", "replication_starting": "provisioned"}
        for name, minutes in PHASES:
            replication = self.emu.replication(FULL_LOAD_AND_CDC)
            self.assertEqual(replication["Status"], name)
            self.assertEqual(replication.get("ProvisionData", {}).get("ProvisionState"), provision.get(name))
            self.emu.advance(minutes * MINUTE)
        replication = self.emu.replication(FULL_LOAD_AND_CDC)
        self.assertEqual(replication["Status"], "running")
        self.assertEqual(replication["ProvisionData"]["ProvisionState"], "provisioned")
        self.assertEqual(replication["ProvisionData"]["ProvisionedCapacityUnits"], 4)
        stats = replication["ReplicationStats"]
        self.assertEqual(stats["StartDate"], started["ReplicationStats"]["StartDate"])
        self.assertIn("FullLoadStartDate", stats)
        self.assertGreaterEqual(stats["ElapsedTimeMillis"], TO_RUNNING * 1000)
        stopping = self.emu.call("StopReplication", {"ReplicationConfigArn": FULL_LOAD_AND_CDC}).json()
        self.assertEqual(stopping["Replication"]["Status"], "stopping")
        self.emu.advance(2 * MINUTE)
        replication = self.emu.replication(FULL_LOAD_AND_CDC)
        self.assertEqual(replication["Status"], "stopped")
        self.assertEqual(replication["StopReason"], "Stop Reason NORMAL")
        self.assertEqual(replication["ProvisionData"]["ProvisionState"], "deprovisioning")
        self.assertIn("ReplicationLastStopTime", replication)
        self.assertIn("ReplicationDeprovisionTime", replication)
        self.emu.advance(10 * MINUTE)
        self.assertEqual(self.emu.replication(FULL_LOAD_AND_CDC)["ProvisionData"]["ProvisionState"], "deprovisioned")

    def test_full_load_finishes_and_stops(self):
        self.run_to(FULL_LOAD)
        self.emu.advance(10 * MINUTE)
        stats = self.emu.replication(FULL_LOAD)["ReplicationStats"]
        self.assertIn(stats["FullLoadProgressPercent"], (49, 50, 51))
        self.assertEqual((stats["TablesLoaded"], stats["TablesLoading"], stats["TablesQueued"],
                          stats["TablesErrored"]), (5, 2, 3, 0))
        self.emu.advance(10 * MINUTE)
        replication = self.emu.replication(FULL_LOAD)
        self.assertEqual(replication["Status"], "stopped")
        self.assertEqual(replication["StopReason"], "Stop Reason FULL_LOAD_ONLY_FINISHED")
        stats = replication["ReplicationStats"]
        self.assertEqual((stats["FullLoadProgressPercent"], stats["TablesLoaded"], stats["TablesQueued"]),
                         (100, 10, 0))
        self.assertAlmostEqual(stats["FullLoadFinishDate"] - stats["FullLoadStartDate"], 20 * MINUTE, delta=1)
        self.assertEqual(replication["ProvisionData"]["ProvisionState"], "deprovisioning")
        self.assertNotIn("RecoveryCheckpoint", replication)

    def test_full_load_and_cdc_moves_on_to_cdc(self):
        self.run_to(FULL_LOAD_AND_CDC)
        self.assertNotIn("RecoveryCheckpoint", self.emu.replication(FULL_LOAD_AND_CDC))
        self.emu.advance(21 * MINUTE)
        replication = self.emu.replication(FULL_LOAD_AND_CDC)
        self.assertEqual(replication["Status"], "running")
        self.assertEqual(replication["ReplicationStats"]["FullLoadProgressPercent"], 100)
        self.assertIn("FullLoadFinishDate", replication["ReplicationStats"])
        first = replication["RecoveryCheckpoint"]
        self.emu.advance(MINUTE)
        later = self.emu.replication(FULL_LOAD_AND_CDC)["RecoveryCheckpoint"]
        self.assertGreater(later, first)

    def test_cdc_goes_straight_to_cdc(self):
        replication = self.run_to(CDC)
        first = replication["RecoveryCheckpoint"]
        self.assertEqual(replication["ReplicationStats"]["FullLoadProgressPercent"], 0)
        self.assertNotIn("FullLoadStartDate", replication["ReplicationStats"])
        self.emu.advance(5 * MINUTE)
        self.assertGreater(self.emu.replication(CDC)["RecoveryCheckpoint"], first)

    def test_cdc_parameters_are_echoed(self):
        response = self.emu.start(CDC, CdcStartPosition="checkpoint:V1#1#0000000000000042#0#0#*#0#0",
                                  CdcStopPosition="server_time:2030-01-01T00:00:00")
        replication = response.json()["Replication"]
        self.assertEqual(replication["CdcStartPosition"], "checkpoint:V1#1#0000000000000042#0#0#*#0#0")
        self.assertEqual(replication["CdcStopPosition"], "server_time:2030-01-01T00:00:00")

    def test_invalid_resource_state_faults(self):
        def refused(arn, start_type, state):
            response = self.emu.start(arn, start_type)
            self.assertError(response, 400, "InvalidResourceStateFault", state)

        refused(FULL_LOAD_AND_CDC, "resume-processing", "CREATED")
        refused(FULL_LOAD_AND_CDC, "reload-target", "CREATED")
        self.assertError(self.emu.call("StopReplication", {"ReplicationConfigArn": CDC}), 400,
                         "InvalidResourceStateFault", "Replication is in CREATED state")
        self.assertEqual(self.emu.start(FULL_LOAD_AND_CDC).status, 200)
        refused(FULL_LOAD_AND_CDC, "start-replication", "Replication is in INITIALIZING state and cannot start")
        self.emu.advance(TO_RUNNING)
        refused(FULL_LOAD_AND_CDC, "start-replication", "Replication is in RUNNING state and cannot start")
        refused(FULL_LOAD_AND_CDC, "resume-processing", "RUNNING")
        self.emu.call("StopReplication", {"ReplicationConfigArn": FULL_LOAD_AND_CDC})
        refused(FULL_LOAD_AND_CDC, "resume-processing", "Replication is in STOPPING state and cannot start")
        self.assertError(self.emu.call("StopReplication", {"ReplicationConfigArn": FULL_LOAD_AND_CDC}), 400,
                         "InvalidResourceStateFault", "STOPPING")
        self.emu.advance(2 * MINUTE)
        refused(FULL_LOAD_AND_CDC, "resume-processing", "DEPROVISIONING")
        self.assertError(self.emu.call("StopReplication", {"ReplicationConfigArn": FULL_LOAD_AND_CDC}), 400,
                         "InvalidResourceStateFault", "STOPPED")
        self.emu.advance(10 * MINUTE)
        self.assertEqual(self.emu.start(FULL_LOAD_AND_CDC, "resume-processing").status, 200)

        self.run_to(FULL_LOAD)
        self.emu.advance(25 * MINUTE)
        refused(FULL_LOAD, "resume-processing", "DEPROVISIONING")
        self.emu.advance(10 * MINUTE)
        refused(FULL_LOAD, "resume-processing", "full-load")
        self.assertEqual(self.emu.start(FULL_LOAD, "reload-target").status, 200)

    def test_stop_during_a_starting_phase(self):
        self.emu.start(CDC)
        self.emu.advance(30 * MINUTE)
        self.assertEqual(self.emu.call("StopReplication", {"ReplicationConfigArn": CDC}).status, 200)
        self.emu.advance(2 * MINUTE)
        replication = self.emu.replication(CDC)
        self.assertEqual((replication["Status"], replication["StopReason"]), ("stopped", "Stop Reason NORMAL"))

    def test_recoverable_stop_and_resume_keeps_full_load_progress(self):
        self.emu.admin("POST", "stop", {"arn": FULL_LOAD_AND_CDC, "reason": "RECOVERABLE_ERROR", "at_progress": 40})
        self.run_to(FULL_LOAD_AND_CDC)
        self.emu.advance(10 * MINUTE)
        replication = self.emu.replication(FULL_LOAD_AND_CDC)
        self.assertEqual(replication["Status"], "stopped")
        self.assertEqual(replication["StopReason"], "Stop Reason RECOVERABLE_ERROR")
        self.assertEqual(replication["ReplicationStats"]["FullLoadProgressPercent"], 40)
        self.assertEqual(replication["ProvisionData"]["ProvisionState"], "deprovisioning")
        full_load_start = replication["ReplicationStats"]["FullLoadStartDate"]
        self.emu.advance(10 * MINUTE)
        resumed = self.run_to(FULL_LOAD_AND_CDC, start_type="resume-processing")
        self.assertEqual(resumed["StartReplicationType"], "resume-processing")
        self.assertEqual(resumed["ReplicationStats"]["FullLoadProgressPercent"], 40)
        self.assertEqual(resumed["ReplicationStats"]["FullLoadStartDate"], full_load_start)
        self.emu.advance(12 * MINUTE + 1)
        replication = self.emu.replication(FULL_LOAD_AND_CDC)
        self.assertEqual(replication["ReplicationStats"]["FullLoadProgressPercent"], 100)
        self.assertIn("RecoveryCheckpoint", replication)

    def test_recoverable_stop_in_cdc_resumes_from_the_checkpoint(self):
        self.run_to(CDC)
        self.emu.advance(5 * MINUTE)
        stopped = self.emu.admin("POST", "stop", {"arn": CDC, "reason": "RECOVERABLE_ERROR"})
        self.assertEqual(stopped["Status"], "stopped")
        checkpoint = stopped["RecoveryCheckpoint"]
        self.emu.advance(10 * MINUTE)
        self.assertEqual(self.emu.replication(CDC)["RecoveryCheckpoint"], checkpoint)
        self.assertEqual(self.emu.start(CDC, "resume-processing").status, 200)
        self.emu.advance(TO_RUNNING + MINUTE)
        self.assertGreater(self.emu.replication(CDC)["RecoveryCheckpoint"], checkpoint)

    def test_fatal_stop(self):
        self.emu.admin("POST", "stop", {"arn": CDC, "reason": "FATAL_ERROR"})
        self.emu.start(CDC)
        self.emu.advance(TO_RUNNING)
        replication = self.emu.replication(CDC)
        self.assertEqual(replication["Status"], "failed")
        self.assertEqual(replication["StopReason"], "Stop Reason FATAL_ERROR")
        self.assertEqual(len(replication["FailureMessages"]), 1)
        self.assertEqual(replication["ProvisionData"]["ProvisionState"], "deprovisioning")
        self.emu.advance(10 * MINUTE)
        self.assertEqual(self.emu.replication(CDC)["ProvisionData"]["ProvisionState"], "deprovisioned")
        self.assertEqual(self.emu.start(CDC).status, 200)

    def test_assessment_passes_and_the_replication_starts(self):
        response = self.emu.start(FULL_LOAD_AND_CDC, PremigrationAssessmentSettings=json.dumps(
            {"FailOnAssessmentFailure": True, "ResultLocationFolder": "runs"}))
        assessment = response.json()["Replication"]["PremigrationAssessmentStatuses"][0]
        self.assertEqual(assessment["Status"], "starting")
        self.assertTrue(assessment["FailOnAssessmentFailure"])
        self.assertEqual(assessment["ResultLocationFolder"], "runs")
        for status, minutes in (("provisioning", 1.5), ("running", 2), ("passed", 5)):
            self.emu.advance(minutes * MINUTE)
            replication = self.emu.replication(FULL_LOAD_AND_CDC)
            self.assertEqual(replication["PremigrationAssessmentStatuses"][0]["Status"], status)
        self.assertEqual(replication["Status"], "preparing_metadata_resources")
        self.assertEqual(replication["PremigrationAssessmentStatuses"][0]["ResultStatistic"]["Failed"], 0)
        self.emu.advance(TO_RUNNING)
        self.assertEqual(self.emu.replication(FULL_LOAD_AND_CDC)["Status"], "running")

    def test_failed_assessment_keeps_the_replication_from_starting(self):
        self.emu.admin("POST", "assessment", {"arn": FULL_LOAD_AND_CDC, "result": "failed"})
        self.emu.start(FULL_LOAD_AND_CDC, PremigrationAssessmentSettings='{"FailOnAssessmentFailure": true}')
        self.emu.advance(9 * MINUTE)
        replication = self.emu.replication(FULL_LOAD_AND_CDC)
        self.assertEqual(replication["PremigrationAssessmentStatuses"][0]["Status"], "failed")
        self.assertIn("LastFailureMessage", replication["PremigrationAssessmentStatuses"][0])
        self.assertEqual(replication["Status"], "failed")
        self.assertIn("assessment", replication["FailureMessages"][0])
        self.assertTrue(replication["StopReason"].startswith("Stop Reason "))
        self.assertEqual(replication["ProvisionData"]["ProvisionState"], "deprovisioning")
        self.emu.advance(TO_RUNNING)
        replication = self.emu.replication(FULL_LOAD_AND_CDC)
        self.assertEqual(replication["Status"], "failed")
        self.assertEqual(replication["ProvisionData"]["ProvisionState"], "deprovisioned")
        # The forced result applied once: the next assessment passes.
        self.emu.start(FULL_LOAD_AND_CDC, PremigrationAssessmentSettings="{}")
        self.emu.advance(TO_RUNNING)
        replication = self.emu.replication(FULL_LOAD_AND_CDC)
        self.assertEqual(replication["Status"], "running")
        self.assertEqual([a["Status"] for a in replication["PremigrationAssessmentStatuses"]], ["passed", "failed"])

    def test_failed_or_warning_assessment_without_fail_on_failure(self):
        for arn, result in ((CDC, "failed"), (FULL_LOAD, "warning")):
            self.emu.admin("POST", "assessment", {"arn": arn, "result": result})
            self.emu.start(arn, PremigrationAssessmentSettings='{"FailOnAssessmentFailure": false}')
        self.emu.advance(TO_RUNNING)
        for arn, result in ((CDC, "failed"), (FULL_LOAD, "warning")):
            replication = self.emu.replication(arn)
            self.assertEqual(replication["PremigrationAssessmentStatuses"][0]["Status"], result)
            self.assertEqual(replication["Status"], "running")

    def test_admin_created_replications(self):
        created = self.emu.admin("POST", "replications", {
            "arn": ARN_PREFIX + "ADMINSTOPPED", "type": "full-load-and-cdc", "tables": 3,
            "status": "stopped", "stop_reason": "RECOVERABLE_ERROR", "full_load_progress": 60})
        self.assertEqual(created["ReplicationConfigIdentifier"], "ADMINSTOPPED")
        self.assertEqual((created["Status"], created["StopReason"]), ("stopped", "Stop Reason RECOVERABLE_ERROR"))
        self.assertEqual(created["ReplicationStats"]["FullLoadProgressPercent"], 60)
        self.assertEqual(created["ProvisionData"]["ProvisionState"], "deprovisioned")
        self.assertEqual(self.emu.start(ARN_PREFIX + "ADMINSTOPPED", "resume-processing").status, 200)
        running = self.emu.admin("POST", "replications", {"identifier": "admin-running", "type": "cdc",
                                                          "status": "running"})
        self.assertEqual(running["Status"], "running")
        self.assertIn("RecoveryCheckpoint", running)
        listed = self.emu.admin("GET", "replications")
        self.assertEqual(len(listed["replications"]), 5)
        self.assertIsInstance(listed["emulated_now"], float)
        bad = self.emu.send("POST", "/_emulator/replications", [("Host", self.emu.host)], b'{"type": "cdc"}')
        self.assertEqual(bad.status, 400)
        self.assertIn("error", bad.json())

    def test_reset_restores_the_seed(self):
        self.emu.start(CDC)
        self.emu.admin("POST", "replications", {"identifier": "extra"})
        self.emu.admin("POST", "faults", {"fault": "throttle", "operation": "StopReplication"})
        self.emu.admin("POST", "reset")
        self.assertEqual(self.emu.replication(CDC)["Status"], "created")
        self.assertEqual(len(self.emu.admin("GET", "replications")["replications"]), 3)
        self.assertEqual(self.emu.admin("GET", "faults")["faults"], [])
        self.assertEqual(len(self.emu.admin("GET", "requests")["requests"]), 1)


class RealTimeTest(EmulatorTestCase):
    ARGS = ("--speed", "1000")

    def test_a_start_reaches_running_in_about_three_seconds(self):
        began = time.monotonic()
        self.emu.start(CDC)
        seen = []
        while time.monotonic() - began < 10:
            status = self.emu.replication(CDC)["Status"]
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == "running":
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - began
        self.assertEqual(seen[-1], "running")
        self.assertTrue(2.9 <= elapsed < 6, elapsed)
        order = [name for name, _ in PHASES] + ["running"]
        self.assertEqual(seen, sorted(seen, key=order.index))


class FaultTest(EmulatorTestCase):
    def fault(self, **spec):
        self.emu.admin("POST", "faults", spec)

    def start_cdc(self):
        return self.emu.start(CDC)

    def test_throttle_count_and_fifo(self):
        self.fault(fault="throttle", count=2)
        self.fault(fault="500")
        for _ in range(2):
            self.assertError(self.emu.call("DescribeReplications"), 400, "ThrottlingException", "Rate exceeded")
        self.assertError(self.emu.call("DescribeReplications"), 500, "InternalFailure")
        self.assertEqual(self.emu.call("DescribeReplications").status, 200)

    def test_operation_specific_faults(self):
        self.fault(fault="503", operation="StartReplication")
        self.assertEqual(self.emu.call("DescribeReplications").status, 200)
        self.assertEqual(len(self.emu.admin("GET", "faults")["faults"]), 1)
        self.assertError(self.start_cdc(), 503, "ServiceUnavailable")
        self.assertEqual(self.emu.replication(CDC)["Status"], "created")
        self.assertEqual(self.start_cdc().status, 200)

    def test_faults_skip_unsigned_and_badly_signed_calls(self):
        self.fault(fault="throttle")
        self.assertError(self.emu.call("DescribeReplications", secret_key="bad"), 400, "InvalidSignatureException")
        self.assertError(self.emu.call("DescribeReplications"), 400, "ThrottlingException")

    def test_html_502(self):
        self.fault(fault="html502")
        response = self.start_cdc()
        self.assertEqual(response.status, 502)
        self.assertEqual(response.headers["content-type"], "text/html")
        self.assertIn(b"502 Bad Gateway", response.body)
        self.assertEqual(self.emu.replication(CDC)["Status"], "created")

    def test_delay(self):
        self.fault(fault="delay", seconds=0.3)
        began = time.monotonic()
        self.assertEqual(self.emu.call("DescribeReplications").status, 200)
        self.assertGreaterEqual(time.monotonic() - began, 0.3)

    def test_a_delayed_call_is_logged_on_arrival(self):
        self.fault(fault="delay", seconds=0.5, operation="StartReplication")
        caller = threading.Thread(target=self.start_cdc)
        caller.start()
        time.sleep(0.2)
        pending = self.emu.admin("GET", "requests")["requests"]
        caller.join()
        self.assertEqual([(e["operation"], e["fault"], e["status"]) for e in pending],
                         [("StartReplication", "delay", None)])
        done = self.emu.admin("GET", "requests")["requests"]
        self.assertEqual(done[0]["status"], 200)

    def test_drop_before_leaves_the_state_alone(self):
        self.fault(fault="drop_before", operation="StartReplication")
        with self.assertRaises(http.client.RemoteDisconnected):
            self.start_cdc()
        self.assertEqual(self.emu.replication(CDC)["Status"], "created")

    def test_drop_after_applies_the_operation(self):
        self.fault(fault="drop_after", operation="StartReplication")
        with self.assertRaises(http.client.RemoteDisconnected):
            self.start_cdc()
        self.assertEqual(self.emu.replication(CDC)["Status"], "initializing")

    def test_malformed(self):
        self.fault(fault="malformed")
        response = self.start_cdc()
        self.assertEqual(response.status, 200)
        with self.assertRaises(ValueError):
            json.loads(response.body)
        self.assertEqual(self.emu.replication(CDC)["Status"], "initializing")

    def test_truncated(self):
        self.fault(fault="truncated")
        with self.assertRaises(http.client.IncompleteRead):
            self.emu.call("DescribeReplications")

    def test_oversized(self):
        self.fault(fault="oversized", bytes=100000)
        self.fault(fault="oversized")
        response = self.emu.call("DescribeReplications")
        self.assertEqual((response.status, len(response.body)), (200, 100000))
        self.assertEqual(len(response.json()["Replications"]), 3)
        response = self.emu.call("DescribeReplications")
        self.assertEqual(len(response.body), 16 * 1024 * 1024)
        self.assertIn("Replications", response.json())

    def test_stale_describes_show_the_replication_before_its_last_start(self):
        before = self.emu.replication(CDC)
        self.assertEqual(self.start_cdc().status, 200)
        self.emu.advance(5 * MINUTE)
        self.fault(fault="stale", operation="DescribeReplications", count=2)
        self.assertEqual(self.emu.replication(CDC), before)
        self.emu.advance(MINUTE)
        self.assertEqual(self.emu.replication(CDC), before)
        self.assertEqual(self.emu.replication(CDC)["Status"], "preparing_metadata_resources")
        entries = self.emu.admin("GET", "requests")["requests"]
        self.assertEqual([(e["operation"], e["fault"]) for e in entries],
                         [("DescribeReplications", None), ("StartReplication", None),
                          ("DescribeReplications", "stale"), ("DescribeReplications", "stale"),
                          ("DescribeReplications", None)])

    def test_stale_describes_show_the_replication_before_its_last_stop(self):
        self.start_cdc()
        self.emu.advance(TO_RUNNING + MINUTE)
        running = self.emu.replication(CDC)
        self.assertEqual(running["Status"], "running")
        stopped = self.emu.call("StopReplication", {"ReplicationConfigArn": CDC}).json()["Replication"]
        self.assertEqual(stopped["Status"], "stopping")
        self.emu.advance(3 * MINUTE)
        self.fault(fault="stale", count=2)       # the operation defaults to DescribeReplications
        self.assertEqual(self.emu.admin("GET", "faults")["faults"],
                         [{"fault": "stale", "operation": "DescribeReplications", "count": 2}])
        first = self.emu.replication(CDC)
        self.emu.advance(MINUTE)
        # the view as of the stop, frozen: the checkpoint does not move on
        self.assertEqual(self.emu.replication(CDC), first)
        self.assertEqual(first["Status"], "running")
        self.assertGreaterEqual(first["RecoveryCheckpoint"], running["RecoveryCheckpoint"])
        self.assertLessEqual(first["RecoveryCheckpoint"], stopped["RecoveryCheckpoint"])
        current = self.emu.replication(CDC)
        self.assertEqual((current["Status"], current["ProvisionData"]["ProvisionState"]),
                         ("stopped", "deprovisioning"))

    def test_stale_answers_the_current_state_without_a_start_or_stop(self):
        # seeded states and runs that end by themselves are no requests: nothing to lag behind
        self.emu.admin("POST", "replications", {"arn": CDC, "type": "cdc", "status": "running"})
        self.emu.admin("POST", "replications", {"arn": FULL_LOAD, "type": "full-load", "status": "running"})
        self.emu.admin("POST", "stop", {"arn": FULL_LOAD, "reason": "RECOVERABLE_ERROR"})
        self.fault(fault="stale", count=3)
        self.assertEqual(self.emu.replication(CDC)["Status"], "running")
        self.assertEqual(self.emu.replication(FULL_LOAD)["Status"], "stopped")
        self.assertEqual(self.emu.replication(FULL_LOAD_AND_CDC)["Status"], "created")

    def test_a_refused_start_keeps_the_stale_view(self):
        self.start_cdc()
        self.emu.advance(MINUTE)
        self.assertError(self.start_cdc(), 400, "InvalidResourceStateFault", "INITIALIZING")
        self.fault(fault="stale")
        self.assertEqual(self.emu.replication(CDC)["Status"], "created")

    def test_stale_applies_to_each_replication_selected(self):
        self.start_cdc()
        self.emu.admin("POST", "replications", {"arn": FULL_LOAD, "type": "full-load", "status": "running"})
        self.fault(fault="stale", count=3)
        self.assertEqual(self.start_cdc().status, 400)          # a start takes no stale use
        everything = self.emu.call("DescribeReplications", {"MaxRecords": 20}).json()["Replications"]
        self.assertEqual({r["ReplicationConfigArn"]: r["Status"] for r in everything},
                         {FULL_LOAD: "running", CDC: "created", FULL_LOAD_AND_CDC: "created"})
        page = self.emu.call("DescribeReplications", {
            "Filters": [{"Name": "replication-config-id", "Values": ["cdc", "nothing"]}]}).json()
        self.assertEqual([(r["ReplicationConfigArn"], r["Status"]) for r in page["Replications"]],
                         [(CDC, "created")])
        self.assertError(self.emu.call("DescribeReplications", {
            "Filters": [{"Name": "replication-config-id", "Values": ["nothing"]}]}), 400, "ResourceNotFoundFault")
        self.assertEqual(self.emu.admin("GET", "faults")["faults"], [])
        self.assertEqual(self.emu.replication(CDC)["Status"], "initializing")

    def test_a_reset_forgets_the_stale_views(self):
        self.start_cdc()
        self.emu.admin("POST", "reset")
        self.emu.admin("POST", "replications", {"arn": CDC, "type": "cdc", "status": "stopped"})
        self.fault(fault="stale")
        self.assertEqual(self.emu.replication(CDC)["Status"], "stopped")

    def test_bad_fault_requests(self):
        for spec in ({"fault": "gremlins"}, {"fault": "throttle", "count": 0}, {"fault": "delay", "seconds": -1},
                     {"fault": "stale", "operation": "StartReplication"}, {"fault": "stale", "operation": "*"},
                     {"fault": "stale", "operation": "DescribeReplicationConfigs"}):
            response = self.emu.send("POST", "/_emulator/faults", [("Host", self.emu.host)],
                                     json.dumps(spec).encode())
            self.assertEqual(response.status, 400, spec)
        self.fault(fault="throttle")
        self.assertEqual(self.emu.admin("DELETE", "faults")["faults"], [])
        self.assertEqual(self.emu.call("DescribeReplications").status, 200)

    def test_request_log(self):
        self.fault(fault="throttle", operation="StartReplication")
        self.start_cdc()
        self.start_cdc()
        self.emu.call("DescribeReplications", access_key="NOBODY")
        entries = self.emu.admin("GET", "requests")["requests"]
        self.assertEqual([e["seq"] for e in entries], [1, 2, 3])
        first, second, third = entries
        self.assertEqual(set(first), {"seq", "time", "operation", "body", "raw_body", "headers", "signature_ok",
                                      "error", "status", "fault"})
        self.assertEqual((first["operation"], first["fault"], first["error"], first["status"]),
                         ("StartReplication", "throttle", "ThrottlingException", 400))
        self.assertEqual(first["body"]["ReplicationConfigArn"], CDC)
        self.assertEqual(json.loads(first["raw_body"]), first["body"])
        self.assertIn("Authorization", first["headers"])
        self.assertTrue(first["signature_ok"])
        self.assertEqual((second["status"], second["error"], second["fault"]), (200, None, None))
        self.assertEqual((third["signature_ok"], third["error"]), (False, "UnrecognizedClientException"))
        self.assertEqual(self.emu.admin("DELETE", "requests")["requests"], [])
        self.assertEqual(self.emu.admin("GET", "requests")["requests"], [])

    def test_admin_health_and_unknown_routes(self):
        self.assertEqual(self.emu.admin("GET", "health"), {"ok": True})
        self.assertEqual(self.emu.send("GET", "/_emulator/nothing", [("Host", self.emu.host)]).status, 404)
        self.assertEqual(self.emu.send("PUT", "/_emulator/health", [("Host", self.emu.host)]).status, 405)


@unittest.skipIf(boto3 is None, "boto3/botocore is not importable: the real-client tests are skipped")
class BotocoreTest(EmulatorTestCase):
    ARGS = ("--speed", "1", "--key", f"{ACCESS_KEY}:{SECRET_KEY}", "--key", "ASIATEMP:tempsecret:TOKEN123")

    def client(self, **credentials):
        credentials = credentials or {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY}
        return boto3.client("dms", endpoint_url=self.emu.url, region_name="us-east-1",
                            config=botocore.config.Config(retries={"total_max_attempts": 1}), **credentials)

    def test_describe_start_stop(self):
        dms = self.client()
        replications = dms.describe_replications()["Replications"]
        self.assertEqual({r["ReplicationConfigArn"] for r in replications}, {FULL_LOAD, CDC, FULL_LOAD_AND_CDC})
        started = dms.start_replication(ReplicationConfigArn=CDC, StartReplicationType="start-replication",
                                        PremigrationAssessmentSettings=json.dumps({"FailOnAssessmentFailure": True}))
        replication = started["Replication"]
        self.assertEqual(replication["Status"], "initializing")
        self.assertIsInstance(replication["ReplicationStats"]["StartDate"], datetime.datetime)
        self.emu.advance(TO_RUNNING)
        described = dms.describe_replications(Filters=[{"Name": "replication-config-id", "Values": ["cdc"]}])
        self.assertEqual(described["Replications"][0]["Status"], "running")
        self.assertEqual(dms.stop_replication(ReplicationConfigArn=CDC)["Replication"]["Status"], "stopping")
        configs = dms.describe_replication_configs(MaxRecords=20)["ReplicationConfigs"]
        self.assertEqual(len(configs), 3)

    def test_errors_are_parsed(self):
        dms = self.client()
        with self.assertRaises(dms.exceptions.ResourceNotFoundFault):
            dms.start_replication(ReplicationConfigArn=ARN_PREFIX + "NOPE", StartReplicationType="start-replication")
        with self.assertRaises(dms.exceptions.InvalidResourceStateFault) as caught:
            dms.stop_replication(ReplicationConfigArn=CDC)
        self.assertIn("CREATED", caught.exception.response["Error"]["Message"])
        self.emu.admin("POST", "faults", {"fault": "throttle"})
        with self.assertRaises(botocore.exceptions.ClientError) as caught:
            dms.describe_replications()
        self.assertEqual(caught.exception.response["Error"]["Code"], "ThrottlingException")
        with self.assertRaises(botocore.exceptions.ClientError) as caught:
            self.client(aws_access_key_id=ACCESS_KEY, aws_secret_access_key="wrong").describe_replications()
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidSignatureException")

    def test_session_token_and_paging(self):
        dms = self.client(aws_access_key_id="ASIATEMP", aws_secret_access_key="tempsecret",
                          aws_session_token="TOKEN123")
        for index in range(25):
            self.emu.admin("POST", "replications", {"identifier": f"page-{index}"})
        sizes, marker = [], None
        while True:
            page = dms.describe_replications(MaxRecords=20, **({"Marker": marker} if marker else {}))
            sizes.append(len(page["Replications"]))
            marker = page.get("Marker")
            if marker is None:
                break
        self.assertEqual(sizes, [20, 8])


@unittest.skipIf(shutil.which("aws") is None, "the AWS CLI (aws) is not installed")
class AwsCliTest(EmulatorTestCase):
    def aws(self, *args):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                   AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        done = subprocess.run(["aws", "dms", *args, "--endpoint-url", self.emu.url, "--region", "us-east-1",
                               "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr

    def test_describe_and_start(self):
        code, out, err = self.aws("describe-replications")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(json.loads(out)["Replications"]), 3)
        code, out, err = self.aws("start-replication", "--replication-config-arn", FULL_LOAD_AND_CDC,
                                  "--start-replication-type", "start-replication")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["Replication"]["Status"], "initializing")
        code, out, err = self.aws("stop-replication", "--replication-config-arn", FULL_LOAD)
        self.assertNotEqual(code, 0)
        self.assertIn("InvalidResourceStateFault", err)


class ProcessTest(unittest.TestCase):
    def test_sigterm_and_sigint_exit_cleanly(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            emu = EmulatorProcess()
            try:
                self.assertRegex(emu.url, r"^http://127\.0\.0\.1:\d+$")
                self.assertEqual(emu.admin("GET", "health"), {"ok": True})
                emu.process.send_signal(signum)
                self.assertEqual(emu.process.wait(timeout=5), 0)
                self.assertEqual(emu.process.stderr.read(), "")
            finally:
                emu.close()

    def test_example_seed_and_auto_create(self):
        emu = EmulatorProcess("--seed", str(SEED_EXAMPLE), "--auto-create")
        try:
            replications = emu.admin("GET", "replications")["replications"]
            self.assertEqual(sorted(r["ReplicationType"] for r in replications),
                             ["cdc", "full-load", "full-load-and-cdc"])
            self.assertEqual(emu.call("DescribeReplications").status, 200)
            seeded = json.loads(SEED_EXAMPLE.read_text())["keys"][1]
            response = emu.call("DescribeReplications", access_key=seeded["access_key"],
                                secret_key=seeded["secret_key"], token=seeded["session_token"])
            self.assertEqual(response.status, 200, response.body)
            response = emu.start(ARN_PREFIX + "AUTOCREATED")
            self.assertEqual(response.status, 200, response.body)
            replication = response.json()["Replication"]
            self.assertEqual((replication["ReplicationType"], replication["Status"]),
                             ("full-load-and-cdc", "initializing"))
            self.assertEqual(replication["ReplicationConfigIdentifier"], "AUTOCREATED")
        finally:
            emu.close()

    def test_bad_seed_is_refused(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as seed:
            json.dump({"replications": [{"arn": "not-an-arn"}]}, seed)
            seed.flush()
            done = subprocess.run([str(EXECUTABLE), "--seed", seed.name], capture_output=True, text=True,
                                  timeout=10)
        self.assertEqual(done.returncode, 2)
        self.assertEqual(done.stdout, "")
        self.assertIn("not a replication config ARN", done.stderr)


if __name__ == "__main__":
    unittest.main()
