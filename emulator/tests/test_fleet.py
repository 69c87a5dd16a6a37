"""Fleets of replications (seed and admin API), describes over them, faults on one member,
and the hardening of the HTTP front end (request log redaction, body limits)."""

import base64
import hashlib
import json
import re
import socket
import unittest

from test_emulator import (
    ACCESS_KEY, ARN_PREFIX, EMULATOR_DIR, MINUTE, SECRET_KEY, TARGET_PREFIX, TO_RUNNING, EmulatorProcess,
    EmulatorTestCase, boto3, sign,
)

if boto3 is not None:
    import botocore.config

FLEET_EXAMPLE = EMULATOR_DIR / "seed.fleet.example.json"

# lua-dms's ARN check (module/shape.c valid_arn) for a replication config, as a pattern.
VALID_ARN = re.compile(r"arn:[a-z-]+:dms:[^:\x00-\x20\x7f]+:[0-9]{12}:replication-config:[^\x00-\x20\x7f]+")


def derived_arn(identifier, region="us-east-1", account="123456789012"):
    """The ARN the emulator documents for a config created by identifier."""
    digest = hashlib.sha256(identifier.encode()).digest()
    return f"arn:aws:dms:{region}:{account}:replication-config:{base64.b32encode(digest).decode()[:26]}"


def arn_filter(values, name="replication-config-arn"):
    return {"Filters": [{"Name": name, "Values": list(values)}]}


class FleetSeedTest(EmulatorTestCase):
    SPECS = EmulatorTestCase.SPECS + [
        {"count": 250, "identifier": "fleet-{n:03}", "type": "cdc"},
        {"count": 3, "first": 0, "arn": ARN_PREFIX + "EXPLICIT{n}", "identifier": "explicit-{n}"},
    ]
    SEED = {
        "stops": [{"identifier": "fleet-007", "reason": "RECOVERABLE_ERROR"},
                  {"identifier": "fleet-013", "reason": "FATAL_ERROR", "message": "Last Error ORA-00600"}],
    }

    def all_pages(self, operation, key, params=None):
        pages, marker = [], None
        while True:
            body = dict(params or {})
            if marker:
                body["Marker"] = marker
            response = self.emu.call(operation, body)
            self.assertEqual(response.status, 200, response.body)
            document = response.json()
            pages.append(document[key])
            marker = document.get("Marker")
            if marker is None:
                return pages

    def test_seeded_fleet_is_described_in_pages_of_100(self):
        for operation, key in (("DescribeReplications", "Replications"),
                               ("DescribeReplicationConfigs", "ReplicationConfigs")):
            pages = self.all_pages(operation, key)
            self.assertEqual([len(page) for page in pages], [100, 100, 56])
            arns = [item["ReplicationConfigArn"] for page in pages for item in page]
            self.assertEqual(arns, sorted(set(arns)))
            pages = self.all_pages(operation, key, {"MaxRecords": 20})
            self.assertEqual(len(pages), 13)
            self.assertEqual(len(pages[-1]), 16)

    def test_fleet_arns_derive_from_identifiers(self):
        configs = [c for page in self.all_pages("DescribeReplicationConfigs", "ReplicationConfigs") for c in page]
        by_id = {c["ReplicationConfigIdentifier"]: c["ReplicationConfigArn"] for c in configs}
        self.assertEqual(by_id["fleet-001"], derived_arn("fleet-001"))
        self.assertEqual(by_id["fleet-250"], derived_arn("fleet-250"))
        self.assertNotIn("fleet-000", by_id)
        self.assertEqual(by_id["explicit-0"], ARN_PREFIX + "EXPLICIT0")
        self.assertEqual(by_id["explicit-2"], ARN_PREFIX + "EXPLICIT2")
        for arn in by_id.values():
            self.assertRegex(arn, VALID_ARN)

    def test_arn_filter_takes_up_to_100_values(self):
        wanted = [derived_arn(f"fleet-{n:03}") for n in range(101, 201)]
        response = self.emu.call("DescribeReplications", arn_filter(wanted))
        self.assertEqual(response.status, 200, response.body)
        document = response.json()
        self.assertNotIn("Marker", document)
        self.assertEqual([r["ReplicationConfigArn"] for r in document["Replications"]], sorted(wanted))
        # paged through a filter
        first = self.emu.call("DescribeReplications", {**arn_filter(wanted), "MaxRecords": 60}).json()
        second = self.emu.call("DescribeReplications", {**arn_filter(wanted), "MaxRecords": 60,
                                                        "Marker": first["Marker"]}).json()
        self.assertEqual((len(first["Replications"]), len(second["Replications"])), (60, 40))
        self.assertNotIn("Marker", second)
        # unknown ARNs among the values are no error; only when nothing matches
        some = self.emu.call("DescribeReplicationConfigs", arn_filter(wanted[:3] + [ARN_PREFIX + "NOPE"])).json()
        self.assertEqual(len(some["ReplicationConfigs"]), 3)
        for operation in ("DescribeReplications", "DescribeReplicationConfigs"):
            response = self.emu.call(operation, arn_filter(wanted + [derived_arn("fleet-001")]))
            self.assertError(response, 400, "InvalidParameterValueException", "101 values")
            ids = [f"fleet-{n:03}" for n in range(1, 102)]
            self.assertError(self.emu.call(operation, arn_filter(ids, "replication-config-id")), 400,
                             "InvalidParameterValueException")

    def test_filters_combine(self):
        params = {"Filters": [
            {"Name": "replication-config-arn", "Values": [derived_arn("fleet-001"), derived_arn("fleet-002")]},
            {"Name": "replication-config-id", "Values": ["fleet-002", "fleet-003"]}]}
        replications = self.emu.call("DescribeReplications", params).json()["Replications"]
        self.assertEqual([r["ReplicationConfigIdentifier"] for r in replications], ["fleet-002"])
        ids = self.emu.call("DescribeReplications", arn_filter(["fleet-010", "cdc"], "replication-config-id"))
        self.assertEqual(sorted(r["ReplicationConfigIdentifier"] for r in ids.json()["Replications"]),
                         ["cdc", "fleet-010"])

    def test_seeded_stops_fire_on_named_members(self):
        for n in (6, 7, 13):
            self.assertEqual(self.emu.start(derived_arn(f"fleet-{n:03}")).status, 200)
        self.emu.advance(TO_RUNNING + MINUTE)
        statuses = {n: self.emu.replication(derived_arn(f"fleet-{n:03}")) for n in (6, 7, 13)}
        self.assertEqual(statuses[6]["Status"], "running")
        self.assertEqual((statuses[7]["Status"], statuses[7]["StopReason"]),
                         ("stopped", "Stop Reason RECOVERABLE_ERROR"))
        self.assertEqual((statuses[13]["Status"], statuses[13]["FailureMessages"]),
                         ("failed", ["Last Error ORA-00600"]))
        # a reset arms them again
        self.emu.admin("POST", "reset")
        self.emu.start(derived_arn("fleet-007"))
        self.emu.advance(TO_RUNNING)
        self.assertEqual(self.emu.replication(derived_arn("fleet-007"))["Status"], "stopped")


class FleetExampleSeedTest(unittest.TestCase):
    """seed.fleet.example.json: a wave of 20 with one recoverable stop, one fatal stop and
    one table error, and 200 CDC replications."""

    def test_the_example_wave(self):
        emu = EmulatorProcess("--speed", "1", "--seed", str(FLEET_EXAMPLE))
        try:
            listed = emu.admin("GET", "replications")["replications"]
            self.assertEqual(len(listed), 220)
            wave = [derived_arn(f"wave-{n:02}") for n in range(1, 21)]
            for arn in wave:
                self.assertEqual(emu.start(arn).status, 200)
            emu.advance(TO_RUNNING + 10 * MINUTE)
            replications = emu.call("DescribeReplications", arn_filter(wave)).json()["Replications"]
            by_id = {r["ReplicationConfigIdentifier"]: r for r in replications}
            self.assertEqual(sum(r["Status"] == "running" for r in replications), 18)
            self.assertEqual((by_id["wave-07"]["Status"], by_id["wave-13"]["Status"]), ("stopped", "failed"))
            self.assertEqual(by_id["wave-13"]["FailureMessages"], ["Last Error ORA-01555: snapshot too old"])
            self.assertEqual(by_id["wave-03"]["ReplicationStats"]["TablesErrored"], 1)
            tables = emu.call("DescribeReplicationTableStatistics", {
                "ReplicationConfigArn": derived_arn("wave-03"),
                "Filters": [{"Name": "table-state", "Values": ["Table error"]}]}).json()
            self.assertEqual([(t["SchemaName"], t["TableName"]) for t in tables["ReplicationTableStatistics"]],
                             [("sales", "orders")])
        finally:
            emu.close()


class FleetAdminTest(EmulatorTestCase):
    SPECS = []

    def test_a_wave_of_20_with_one_recoverable_and_one_fatal_failure(self):
        created = self.emu.admin("POST", "replications", {"count": 20, "identifier": "wave-{n:02}",
                                                          "type": "full-load-and-cdc", "tables": 4})
        self.assertEqual(created["count"], 20)
        arns = [item["arn"] for item in created["replications"]]
        self.assertEqual(arns[0], derived_arn("wave-01"))
        self.emu.admin("POST", "stop", {"identifier": "wave-07", "reason": "RECOVERABLE_ERROR", "at_progress": 40})
        self.emu.admin("POST", "stop", {"identifier": "wave-13", "reason": "FATAL_ERROR"})
        for arn in arns:
            self.assertEqual(self.emu.start(arn).status, 200)
        self.emu.advance(TO_RUNNING + 10 * MINUTE)
        replications = self.emu.call("DescribeReplications", arn_filter(arns)).json()["Replications"]
        by_id = {r["ReplicationConfigIdentifier"]: r for r in replications}
        self.assertEqual(len(by_id), 20)
        running = sorted(i for i, r in by_id.items() if r["Status"] == "running")
        self.assertEqual(len(running), 18)
        self.assertEqual(by_id["wave-07"]["Status"], "stopped")
        self.assertEqual(by_id["wave-07"]["StopReason"], "Stop Reason RECOVERABLE_ERROR")
        self.assertEqual(by_id["wave-07"]["ReplicationStats"]["FullLoadProgressPercent"], 40)
        self.assertEqual((by_id["wave-13"]["Status"], by_id["wave-13"]["StopReason"]),
                         ("failed", "Stop Reason FATAL_ERROR"))
        self.emu.advance(10 * MINUTE)                      # capacity released
        self.assertEqual(self.emu.start(derived_arn("wave-07"), "resume-processing").status, 200)
        self.emu.advance(TO_RUNNING)
        resumed = self.emu.replication(derived_arn("wave-07"))
        self.assertEqual(resumed["Status"], "running")
        self.assertGreaterEqual(resumed["ReplicationStats"]["FullLoadProgressPercent"], 40)

    def test_list_form_and_bad_fleets(self):
        created = self.emu.admin("POST", "replications", {"replications": [
            {"identifier": "solo"}, {"count": 2, "identifier": "pair-{n}", "type": "cdc"}]})
        self.assertEqual([item["identifier"] for item in created["replications"]], ["solo", "pair-1", "pair-2"])
        single = self.emu.admin("POST", "replications", {"identifier": "single"})
        self.assertEqual(single["Status"], "created")     # a plain entry answers its Replication shape
        for bad in ({"count": 2, "identifier": "same"}, {"count": 0, "identifier": "x-{n}"},
                    {"count": 2, "identifier": "ok-{n}", "type": "nope"},
                    {"replications": [{"identifier": "fine"}, {"arn": "arn:aws:dms:x:1:replication-config:Y"}]}):
            response = self.emu.send("POST", "/_emulator/replications", [("Host", self.emu.host)],
                                     json.dumps(bad).encode())
            self.assertEqual(response.status, 400, bad)
            self.assertIn("error", response.json())
        # nothing of a refused request was created
        self.assertEqual(len(self.emu.admin("GET", "replications")["replications"]), 4)

    def test_delete_one_or_all(self):
        self.emu.admin("POST", "replications", {"count": 5, "identifier": "gone-{n}"})
        self.assertEqual(self.emu.admin("DELETE", "replications", {"identifier": "gone-3"}), {"deleted": 1})
        ids = [r["ReplicationConfigIdentifier"] for r in self.emu.admin("GET", "replications")["replications"]]
        self.assertEqual(sorted(ids), ["gone-1", "gone-2", "gone-4", "gone-5"])
        missing = self.emu.send("DELETE", "/_emulator/replications", [("Host", self.emu.host)],
                                b'{"identifier": "gone-3"}')
        self.assertEqual(missing.status, 404)
        self.assertEqual(self.emu.admin("DELETE", "replications"), {"deleted": 4})
        self.assertEqual(self.emu.call("DescribeReplications").json()["Replications"], [])

    def test_faults_name_replications_by_identifier_or_arn(self):
        self.emu.admin("POST", "replications", {"identifier": "named", "type": "cdc", "status": "running"})
        stopped = self.emu.admin("POST", "stop", {"identifier": "named"})
        self.assertEqual(stopped["Status"], "stopped")
        for spec, status in (({"identifier": "nobody"}, 404), ({"reason": "X"}, 400),
                             ({"arn": ARN_PREFIX + "NOPE"}, 404)):
            response = self.emu.send("POST", "/_emulator/stop", [("Host", self.emu.host)], json.dumps(spec).encode())
            self.assertEqual(response.status, status, spec)


@unittest.skipIf(boto3 is None, "boto3/botocore is not importable: the real-client tests are skipped")
class FleetBotocoreTest(EmulatorTestCase):
    SPECS = [{"count": 230, "identifier": "bulk-{n:03}"}]

    def test_markers_walk_the_fleet(self):
        dms = boto3.client("dms", endpoint_url=self.emu.url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                           aws_secret_access_key=SECRET_KEY,
                           config=botocore.config.Config(retries={"total_max_attempts": 1}))
        for operation, key in (("describe_replications", "Replications"),
                               ("describe_replication_configs", "ReplicationConfigs")):
            sizes, marker = [], {}
            while True:
                page = getattr(dms, operation)(**marker)
                sizes.append(len(page[key]))
                if "Marker" not in page:
                    break
                marker = {"Marker": page["Marker"]}
            self.assertEqual(sizes, [100, 100, 30])
        wanted = [derived_arn(f"bulk-{n:03}") for n in range(1, 101)]
        found = dms.describe_replications(Filters=[{"Name": "replication-config-arn", "Values": wanted}])
        self.assertEqual(len(found["Replications"]), 100)


class HardeningTest(EmulatorTestCase):
    ARGS = ("--speed", "1", "--key", f"{ACCESS_KEY}:{SECRET_KEY}", "--key", "ASIATEMP:tempsecret:TOKEN12345")

    def raw(self, head, body=b"", sock=None):
        """Send raw bytes; return (status, headers, body) of the answer and the socket."""
        sock = sock or socket.create_connection(("127.0.0.1", self.emu.port), timeout=10)
        sock.sendall(head + body)
        reader = sock.makefile("rb")
        status_line = reader.readline()
        self.assertTrue(status_line, "the connection was dropped without an answer")
        headers = {}
        while True:
            line = reader.readline().decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        payload = reader.read(int(headers.get("content-length", 0)))
        return int(status_line.split()[1]), headers, payload, sock

    def test_request_log_redacts_tokens_signatures_and_secrets(self):
        body = json.dumps({"MaxRecords": 20, "Password": "hunter2-pass", "Nested": {"SessionToken": "nested-tok"}})
        response = self.emu.call("DescribeReplications", body=body.encode(), access_key="ASIATEMP",
                                 secret_key="tempsecret", token="TOKEN12345")
        self.assertEqual(response.status, 200, response.body)
        self.emu.call("DescribeReplications", access_key="ASIATEMP", secret_key="wrong", token="TOKEN12345")
        self.emu.call("DescribeReplications", {"Filters": [{"Name": "replication-config-id",
                                                            "Values": ["TOKEN12345"]}]},
                      access_key="ASIATEMP", secret_key="tempsecret", token="TOKEN12345")
        log = self.emu.send("GET", "/_emulator/requests", [("Host", self.emu.host)])
        text = log.body.decode()
        for secret in ("TOKEN12345", "hunter2-pass", "nested-tok", "tempsecret", SECRET_KEY):
            self.assertNotIn(secret, text)
        entries = log.json()["requests"]
        self.assertEqual(len(entries), 3)
        first = entries[0]
        self.assertEqual(first["headers"]["X-Amz-Security-Token"], "[redacted]")
        self.assertRegex(first["headers"]["Authorization"], r"Signature=\[redacted\]$")
        self.assertIn("Credential=ASIATEMP/", first["headers"]["Authorization"])
        self.assertEqual(first["body"], {"MaxRecords": 20, "Password": "[redacted]",
                                         "Nested": {"SessionToken": "[redacted]"}})
        self.assertEqual(json.loads(first["raw_body"]), first["body"])
        for entry in entries:
            self.assertNotRegex(json.dumps(entry), r"[0-9a-f]{64}")     # no signature anywhere
        self.assertEqual(entries[2]["body"]["Filters"][0]["Values"], ["[redacted]"])

    def test_deeply_nested_json_is_a_serialization_error(self):
        deep = b"[" * 100000 + b"]" * 100000
        for path, operation in (("/", "DescribeReplications"), ("/_emulator/replications", None)):
            headers = [("Host", self.emu.host), ("Content-Type", "application/x-amz-json-1.1")]
            if operation:
                headers = sign("POST", "/", headers + [("X-Amz-Target", TARGET_PREFIX + operation)], deep)
            conn = self.emu.connection()
            try:
                response = self.emu.send("POST", path, headers, deep, connection=conn)
                self.assertEqual(response.status, 400, response.body)
                if operation:
                    self.assertEqual(response.code, "SerializationException")
                else:
                    self.assertIn("deeper", response.json()["error"])
                # the connection is still served
                self.assertEqual(self.emu.call("DescribeReplications", connection=conn).status, 200)
            finally:
                conn.close()
        nested = {"MaxRecords": 20}
        for _ in range(150):
            nested = {"x": nested}
        self.assertError(self.emu.call("DescribeReplications", nested), 400, "SerializationException")
        entries = self.emu.admin("GET", "requests")["requests"]
        self.assertIsNone(entries[0]["body"])

    def test_huge_content_length_is_413_and_closes(self):
        for length in ("1000000000000000", str(16 * 1024 * 1024 + 1)):
            head = (f"POST / HTTP/1.1\r\nHost: {self.emu.host}\r\nX-Amz-Target: {TARGET_PREFIX}DescribeReplications"
                    f"\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {length}\r\n\r\n").encode()
            status, headers, payload, sock = self.raw(head, b"{}")
            try:
                self.assertEqual(status, 413)
                self.assertEqual(headers["content-type"], "application/x-amz-json-1.1")
                self.assertEqual(json.loads(payload)["__type"], "RequestEntityTooLargeException")
                self.assertEqual(sock.recv(1), b"")               # closed
            finally:
                sock.close()
        entry = self.emu.admin("GET", "requests")["requests"][-1]
        self.assertEqual((entry["operation"], entry["status"], entry["error"]),
                         ("DescribeReplications", 413, "RequestEntityTooLargeException"))

    def test_expect_100_continue_with_a_huge_body_is_refused_first(self):
        head = (f"POST /_emulator/replications HTTP/1.1\r\nHost: {self.emu.host}\r\nExpect: 100-continue\r\n"
                f"Content-Length: 1000000000000000\r\n\r\n").encode()
        status, _, payload, sock = self.raw(head)
        sock.close()
        self.assertEqual(status, 413)
        self.assertIn("RequestEntityTooLarge", payload.decode())

    def test_bad_content_lengths_are_400(self):
        for value in ("-5", "abc", "1_0", "+2", "0x10", "99999999999999999999999"):
            head = (f"POST / HTTP/1.1\r\nHost: {self.emu.host}\r\nContent-Length: {value}\r\n\r\n").encode()
            status, _, payload, sock = self.raw(head)
            sock.close()
            self.assertEqual(status, 413 if value.isdigit() else 400, value)
            self.assertIn(json.loads(payload)["__type"], ("SerializationException", "RequestEntityTooLargeException"))
        head = (f"POST / HTTP/1.1\r\nHost: {self.emu.host}\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n").encode()
        status, _, _, sock = self.raw(head, b"{}")
        sock.close()
        self.assertEqual(status, 400)
        head = (f"POST / HTTP/1.1\r\nHost: {self.emu.host}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
        status, _, payload, sock = self.raw(head, b"2\r\n{}\r\n0\r\n\r\n")
        sock.close()
        self.assertEqual(status, 411)
        self.assertEqual(json.loads(payload)["__type"], "LengthRequiredException")
        self.assertEqual(self.emu.call("DescribeReplications").status, 200)


class QuietUnderAbuseTest(unittest.TestCase):
    def test_no_traceback_on_stderr(self):
        emu = EmulatorProcess()
        try:
            for head, body in (
                    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n", b""),
                    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", b""),
                    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", b"{\"trunc"),  # then gone
                    (b"POST /_emulator/faults HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n",
                     b"[" * 100000 + b"]" * 100000)):
                sock = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
                sock.sendall(head + body)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
                sock.close()
            deep = b"[" * 100000 + b"]" * 100000
            self.assertEqual(emu.call("DescribeReplications", body=deep).code, "SerializationException")
            self.assertEqual(emu.admin("GET", "health"), {"ok": True})
        finally:
            emu.process.terminate()
            emu.process.wait(timeout=10)
            stderr = emu.process.stderr.read()
            emu.close()
        self.assertNotIn("Traceback", stderr)
        self.assertEqual(stderr, "")


if __name__ == "__main__":
    unittest.main()
