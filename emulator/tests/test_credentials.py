"""Tests of the emulator's credential endpoints: STS, the SSO portal, IMDSv2 and container
credentials, and the temporary keys they issue (accepted on DMS calls until they expire).

The emulator runs as a subprocess. STS, SSO and DMS are called with botocore (skipped where
it is absent), instance metadata and container credentials with http.client.
"""

import http.client
import json
import signal
import subprocess
import time
import unittest
import urllib.parse
from pathlib import Path

EXECUTABLE = Path(__file__).resolve().parent.parent / "dms-emulator"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ROLE = "arn:aws:iam::123456789012:role/"

try:
    import botocore.config
    import botocore.exceptions
    import botocore.session
    from botocore import UNSIGNED
except ImportError:
    botocore = None


class Emulator:
    def __init__(self):
        self.process = subprocess.Popen([str(EXECUTABLE), "--port", "0"], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.process.kill()
            raise RuntimeError(f"emulator did not start: {self.process.stderr.read()}")
        self.port = urllib.parse.urlsplit(self.url).port

    def close(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)
        self.process.stdout.close()
        self.process.stderr.close()

    def request(self, method, path, headers=(), body=b""):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=dict(headers))
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def admin(self, method, document=None):
        body = json.dumps(document).encode() if document is not None else b""
        return self.request(method, "/_emulator/credentials", [("Content-Type", "application/json")], body)

    def settings(self, document):
        status, _, body = self.admin("POST", document)
        assert status == 200, body
        return json.loads(body)

    def state(self):
        return json.loads(self.admin("GET")[2])


class CredentialsTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()

    @classmethod
    def tearDownClass(cls):
        cls.emu.close()

    def setUp(self):
        self.assertEqual(self.emu.admin("DELETE")[0], 200)

    def client(self, service, access_key=ACCESS_KEY, secret_key=SECRET_KEY, token=None, unsigned=False,
               region="us-east-1"):
        if botocore is None:
            self.skipTest("botocore is not installed")
        config = botocore.config.Config(retries={"max_attempts": 1},
                                        signature_version=UNSIGNED if unsigned else None)
        return botocore.session.Session().create_client(
            service, region_name=region, endpoint_url=self.emu.url, config=config,
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, aws_session_token=token)

    def dms_with(self, credentials):
        return self.client("dms", credentials["AccessKeyId"], credentials["SecretAccessKey"],
                           credentials["SessionToken"])

    def assertClientError(self, call, code, status=None):
        with self.assertRaises(botocore.exceptions.ClientError) as caught:
            call()
        self.assertEqual(caught.exception.response["Error"]["Code"], code)
        if status is not None:
            self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], status)
        return caught.exception


class StsTests(CredentialsTestCase):
    def test_assume_role_is_verified_and_its_keys_work_on_dms(self):
        sts = self.client("sts")
        answer = sts.assume_role(RoleArn=ROLE + "ops", RoleSessionName="runbook", ExternalId="ext-1",
                                 DurationSeconds=900)
        credentials = answer["Credentials"]
        self.assertTrue(credentials["AccessKeyId"].startswith("ASIAROLE0"))
        self.assertEqual(answer["AssumedRoleUser"]["Arn"], "arn:aws:sts::123456789012:assumed-role/ops/runbook")
        left = credentials["Expiration"].timestamp() - time.time()
        self.assertTrue(890 < left <= 900, left)
        self.dms_with(credentials).describe_replications()
        issued = self.emu.state()["issued"][-1]
        self.assertEqual((issued["issuer"], issued["role_arn"], issued["source_access_key"], issued["external_id"]),
                         ("assume_role", ROLE + "ops", ACCESS_KEY, "ext-1"))
        # a DMS call with the access key but without its session token is refused
        self.assertClientError(lambda: self.client("dms", credentials["AccessKeyId"],
                                                   credentials["SecretAccessKey"]).describe_replications(),
                               "UnrecognizedClientException")

    def test_assume_role_refuses_bad_signatures_and_unknown_keys(self):
        self.assertClientError(lambda: self.client("sts", secret_key="wrong").assume_role(
            RoleArn=ROLE + "ops", RoleSessionName="s1"), "SignatureDoesNotMatch", 403)
        self.assertClientError(lambda: self.client("sts", access_key="AKIDUNKNOWN").assume_role(
            RoleArn=ROLE + "ops", RoleSessionName="s1"), "InvalidClientTokenId", 403)
        status, _, body = self.emu.request("POST", "/", [("Content-Type", "application/x-www-form-urlencoded")],
                                           b"Action=AssumeRole&Version=2011-06-15&RoleArn=x&RoleSessionName=s1")
        self.assertEqual(status, 403)
        self.assertIn(b"<Code>MissingAuthenticationToken</Code>", body)

    def test_assume_role_validates_its_parameters(self):
        sts = self.client("sts")
        bad_arn = "arn:aws:iam::12345:role/ops"          # the account is not 12 digits
        error = self.assertClientError(lambda: sts.assume_role(RoleArn=bad_arn, RoleSessionName="s1"),
                                       "ValidationError", 400)
        self.assertIn(bad_arn, str(error))
        self.assertClientError(lambda: sts.assume_role(RoleArn=ROLE + "ops", RoleSessionName="bad name!"),
                               "ValidationError")

    def test_role_chaining_is_limited_to_one_hour(self):
        first = self.client("sts").assume_role(RoleArn=ROLE + "a", RoleSessionName="s1")["Credentials"]
        chained = self.client("sts", first["AccessKeyId"], first["SecretAccessKey"], first["SessionToken"])
        second = chained.assume_role(RoleArn=ROLE + "b", RoleSessionName="s2")["Credentials"]
        self.assertEqual(self.emu.state()["issued"][-1]["source_access_key"], first["AccessKeyId"])
        self.dms_with(second).describe_replications()
        error = self.assertClientError(lambda: chained.assume_role(RoleArn=ROLE + "b", RoleSessionName="s3",
                                                                   DurationSeconds=7200), "ValidationError")
        self.assertIn("role chaining", str(error))

    def test_denied_roles_and_external_ids(self):
        self.emu.settings({"sts": {"deny": [ROLE + "denied"], "external_ids": {ROLE + "vendor": "ext-42"}}})
        sts = self.client("sts")
        error = self.assertClientError(lambda: sts.assume_role(RoleArn=ROLE + "denied", RoleSessionName="s1"),
                                       "AccessDenied", 403)
        self.assertIn("sts:AssumeRole", str(error))
        self.assertClientError(lambda: sts.assume_role(RoleArn=ROLE + "vendor", RoleSessionName="s1"),
                               "AccessDenied", 403)
        sts.assume_role(RoleArn=ROLE + "vendor", RoleSessionName="s1", ExternalId="ext-42")

    def test_assume_role_with_web_identity_is_unsigned(self):
        sts = self.client("sts", unsigned=True)
        token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZG1zOnJ1bmJvb2sifQ.sig"
        answer = sts.assume_role_with_web_identity(RoleArn=ROLE + "irsa", RoleSessionName="pod", WebIdentityToken=token)
        self.assertEqual(answer["SubjectFromWebIdentityToken"], "system:serviceaccount:dms:runbook")
        self.assertTrue(answer["Credentials"]["AccessKeyId"].startswith("ASIAWEBID"))
        self.dms_with(answer["Credentials"]).describe_replications()
        entry = [r for r in self.emu.state()["requests"] if r.get("action") == "AssumeRoleWithWebIdentity"][-1]
        self.assertEqual(entry["web_identity_token"], token)
        self.assertNotIn("WebIdentityToken", entry["params"])
        self.emu.settings({"sts": {"web_identity_tokens": ["only-this-one"]}})
        self.assertClientError(lambda: sts.assume_role_with_web_identity(
            RoleArn=ROLE + "irsa", RoleSessionName="pod", WebIdentityToken=token), "InvalidIdentityToken", 400)

    def test_issued_keys_expire(self):
        self.emu.settings({"lifetime": 1})
        credentials = self.client("sts").assume_role(RoleArn=ROLE + "ops", RoleSessionName="s1")["Credentials"]
        self.dms_with(credentials).describe_replications()
        time.sleep(1.2)
        self.assertClientError(lambda: self.dms_with(credentials).describe_replications(), "ExpiredTokenException",
                               400)
        expired = self.client("sts", credentials["AccessKeyId"], credentials["SecretAccessKey"],
                              credentials["SessionToken"])
        self.assertClientError(lambda: expired.assume_role(RoleArn=ROLE + "b", RoleSessionName="s2"),
                               "ExpiredToken", 400)

    def test_faults(self):
        self.emu.settings({"sts": {"status": 503}})
        self.assertClientError(lambda: self.client("sts").assume_role(RoleArn=ROLE + "ops", RoleSessionName="s1"),
                               "InternalFailure", 503)
        self.emu.settings({"sts": {"status": None, "malformed": True}})
        status, headers, body = self.emu.request(
            "POST", "/", [("Content-Type", "application/x-www-form-urlencoded")],
            b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + (ROLE + "x").encode()
            + b"&RoleSessionName=s1&WebIdentityToken=t")
        self.assertEqual(status, 200)
        self.assertTrue(body.startswith(b"<AssumeRoleWithWebIdentityResponse"))
        self.assertNotIn(b"</AssumeRoleWithWebIdentityResponse>", body)


class SsoTests(CredentialsTestCase):
    def test_get_role_credentials(self):
        sso = self.client("sso", unsigned=True, region="eu-west-1")
        answer = sso.get_role_credentials(roleName="DMSOperator", accountId="123456789012", accessToken="tok")
        credentials = answer["roleCredentials"]
        self.assertTrue(credentials["accessKeyId"].startswith("ASIASSO00"))
        left = credentials["expiration"] / 1000 - time.time()
        self.assertTrue(3500 < left <= 3600, left)
        self.client("dms", credentials["accessKeyId"], credentials["secretAccessKey"],
                    credentials["sessionToken"]).describe_replications()

    def test_refused_tokens(self):
        self.emu.settings({"sso": {"tokens": ["good"]}})
        status, headers, _ = self.emu.request("GET", "/federation/credentials?account_id=1&role_name=r",
                                              [("x-amz-sso_bearer_token", "bad")])
        self.assertEqual((status, headers["x-amzn-errortype"]), (401, "UnauthorizedException"))
        status, _, _ = self.emu.request("GET", "/federation/credentials?account_id=1&role_name=r")
        self.assertEqual(status, 401)
        status, _, body = self.emu.request("GET", "/federation/credentials?account_id=1&role_name=r",
                                           [("x-amz-sso_bearer_token", "good")])
        self.assertEqual(status, 200)
        self.assertIn("roleCredentials", json.loads(body))


class MetadataTests(CredentialsTestCase):
    def token(self, ttl="60"):
        return self.emu.request("PUT", "/latest/api/token", [("x-aws-ec2-metadata-token-ttl-seconds", ttl)])

    def test_imdsv2(self):
        status, headers, token = self.token("21600")
        self.assertEqual((status, headers["x-aws-ec2-metadata-token-ttl-seconds"]), (200, "21600"))
        self.assertEqual(self.token("0")[0], 400)
        self.assertEqual(self.emu.request("PUT", "/latest/api/token")[0], 400)
        path = "/latest/meta-data/iam/security-credentials/"
        self.assertEqual(self.emu.request("GET", path)[0], 401)
        self.assertEqual(self.emu.request("GET", path, [("x-aws-ec2-metadata-token", "forged")])[0], 401)
        status, _, role = self.emu.request("GET", path, [("x-aws-ec2-metadata-token", token.decode())])
        self.assertEqual((status, role), (200, b"dms-emulator-role"))
        status, _, body = self.emu.request("GET", path + "dms-emulator-role",
                                           [("x-aws-ec2-metadata-token", token.decode())])
        document = json.loads(body)
        self.assertEqual((document["Code"], document["Type"]), ("Success", "AWS-HMAC"))
        self.assertTrue(document["AccessKeyId"].startswith("ASIAIMDS0"))
        if botocore is not None:
            self.client("dms", document["AccessKeyId"], document["SecretAccessKey"],
                        document["Token"]).describe_replications()
        self.assertEqual(self.emu.request("GET", path + "other-role",
                                          [("x-aws-ec2-metadata-token", token.decode())])[0], 404)

    def test_imdsv1_only(self):
        self.emu.settings({"imds": {"mode": "v1-only"}, "role": "legacy-role"})
        self.assertEqual(self.token()[0], 404)
        status, _, role = self.emu.request("GET", "/latest/meta-data/iam/security-credentials/")
        self.assertEqual((status, role), (200, b"legacy-role"))

    def test_delay_and_malformed(self):
        self.emu.settings({"imds": {"delay": 0.5, "malformed": True}})
        started = time.monotonic()
        status, _, token = self.token()
        self.assertGreaterEqual(time.monotonic() - started, 0.5)
        self.assertEqual(status, 200)                  # a token is no JSON: left whole
        status, _, body = self.emu.request("GET", "/latest/meta-data/iam/security-credentials/dms-emulator-role",
                                           [("x-aws-ec2-metadata-token", token.decode())])
        self.assertEqual(status, 200)
        with self.assertRaises(ValueError):
            json.loads(body)

    def test_container(self):
        status, _, body = self.emu.request("GET", "/v2/credentials/task-1")
        document = json.loads(body)
        self.assertEqual(status, 200)
        self.assertTrue(document["AccessKeyId"].startswith("ASIACONTR"))
        self.assertEqual(document["RoleArn"], "arn:aws:iam::123456789012:role/dms-emulator-role")
        self.emu.settings({"container": {"token": "pod-token"}})
        self.assertEqual(self.emu.request("GET", "/v1/credentials")[0], 401)
        self.assertEqual(self.emu.request("GET", "/v1/credentials", [("Authorization", "other")])[0], 401)
        self.assertEqual(self.emu.request("GET", "/v1/credentials", [("Authorization", "pod-token")])[0], 200)


class AdminTests(CredentialsTestCase):
    def test_settings_are_validated(self):
        for bad in ({"lifetime": 0}, {"imds": {"mode": "v3"}}, {"sts": {"deny": "x"}}, {"nope": 1},
                    {"container": {"status": 200}}, {"sso": {"delay": -1}}, {"imds": {"what": 1}}, []):
            status, _, body = self.emu.admin("POST", bad)
            self.assertEqual(status, 400, (bad, body))
        self.assertEqual(self.emu.admin("PUT")[0], 405)

    def test_state_and_reset(self):
        self.emu.settings({"lifetime": 60, "imds": {"delay": 0}})
        self.emu.request("GET", "/v1/credentials")
        state = self.emu.state()
        self.assertEqual(state["settings"]["lifetime"], 60)
        self.assertEqual(state["requests"][-1]["endpoint"], "container")
        self.assertEqual(state["issued"][-1]["issuer"], "container")
        self.emu.admin("DELETE")
        state = self.emu.state()
        self.assertEqual((state["settings"]["lifetime"], state["requests"]), (None, []))
        self.assertTrue(state["issued"])               # issued keys stay valid


if __name__ == "__main__":
    unittest.main()
