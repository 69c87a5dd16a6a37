"""Replication config operations, table statistics and table reloads, through botocore,
the AWS CLI and raw signed calls, checked against the DMS API model."""

import datetime
import json
import os
import shutil
import subprocess
import unittest
from pathlib import Path

from test_emulator import (
    ACCESS_KEY, ARN_PREFIX, CDC, EMULATOR_DIR, FULL_LOAD, FULL_LOAD_AND_CDC, MINUTE, SECRET_KEY, TO_RUNNING,
    EmulatorTestCase, boto3,
)
from test_fleet import VALID_ARN, derived_arn

if boto3 is not None:
    import botocore.config
    import botocore.exceptions

MODEL = Path(os.environ.get("DMS_MODEL", EMULATOR_DIR.parent.parent / "shared" / "reference" / "dms"
                            / "service-2.shapes.json"))
SOURCE = "arn:aws:dms:us-east-1:123456789012:endpoint:SOURCEENDPOINT"
TARGET = "arn:aws:dms:us-east-1:123456789012:endpoint:TARGETENDPOINT"
TABLE_STATES = {"Before load", "Full load", "Table completed", "Table cancelled", "Table error",
                "Table is being reloaded"}
COUNTERS = {"Before load": "TablesQueued", "Table cancelled": "TablesQueued", "Full load": "TablesLoading",
            "Table is being reloaded": "TablesLoading", "Table completed": "TablesLoaded",
            "Table error": "TablesErrored"}


def selection(*tables, action="include"):
    rules = []
    for index, name in enumerate(tables, 1):
        schema, table = name.split(".")
        rules.append({"rule-type": "selection", "rule-id": str(index), "rule-name": f"r{index}",
                      "object-locator": {"schema-name": schema, "table-name": table}, "rule-action": action})
    return rules


def mappings(*tables, excludes=()):
    rules = selection(*tables) + selection(*excludes, action="exclude")
    for index, rule in enumerate(rules, 1):
        rule["rule-id"] = rule["rule-name"] = str(index)
    return json.dumps({"rules": rules})


def model_members(shape):
    model = json.loads(MODEL.read_text())
    return set(model["shapes"][shape]["members"])


def create_params(identifier="orders-config", **overrides):
    params = {"ReplicationConfigIdentifier": identifier, "SourceEndpointArn": SOURCE, "TargetEndpointArn": TARGET,
              "ComputeConfig": {"MaxCapacityUnits": 8}, "ReplicationType": "full-load-and-cdc",
              "TableMappings": mappings("sales.orders", "sales.customers", "hr.staff")}
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


class ConfigTest(EmulatorTestCase):
    """CreateReplicationConfig, ModifyReplicationConfig, DeleteReplicationConfig over raw signed calls."""

    def create(self, identifier="orders-config", region="us-east-1", **overrides):
        return self.emu.call("CreateReplicationConfig", create_params(identifier, **overrides), region=region)

    def test_create_answers_the_model_shape(self):
        response = self.create(ReplicationSettings='{"Logging": {"EnableLogging": false}}',
                               SupplementalSettings='{"note": "x"}',
                               ComputeConfig={"MaxCapacityUnits": 16, "MinCapacityUnits": 2, "MultiAZ": True,
                                              "VpcSecurityGroupIds": ["sg-1"]},
                               Tags=[{"Key": "team", "Value": "data"}])
        self.assertEqual(response.status, 200, response.body)
        config = response.json()["ReplicationConfig"]
        self.assertEqual(config["ReplicationConfigArn"], derived_arn("orders-config"))
        self.assertRegex(config["ReplicationConfigArn"], VALID_ARN)
        self.assertEqual(config["ComputeConfig"], {"MaxCapacityUnits": 16, "MinCapacityUnits": 2, "MultiAZ": True,
                                                   "VpcSecurityGroupIds": ["sg-1"]})
        self.assertEqual(config["SupplementalSettings"], '{"note": "x"}')
        self.assertEqual(config["ReplicationConfigCreateTime"], config["ReplicationConfigUpdateTime"])
        if MODEL.is_file():
            self.assertLessEqual(set(config), model_members("ReplicationConfig"))
            self.assertLessEqual(set(config["ComputeConfig"]), model_members("ComputeConfig"))
        self.assertEqual({"ReplicationConfigArn", "ReplicationConfigIdentifier", "ReplicationType",
                          "SourceEndpointArn", "TargetEndpointArn", "ComputeConfig", "ReplicationSettings",
                          "SupplementalSettings", "TableMappings", "ReplicationConfigCreateTime",
                          "ReplicationConfigUpdateTime"} - set(config), set())
        described = self.emu.call("DescribeReplicationConfigs", {"Filters": [
            {"Name": "replication-config-id", "Values": ["orders-config"]}]}).json()["ReplicationConfigs"]
        self.assertEqual(described, [config])
        replication = self.emu.replication(config["ReplicationConfigArn"])
        self.assertEqual((replication["Status"], replication["ReplicationType"]), ("created", "full-load-and-cdc"))

    def test_the_arn_is_in_the_signing_region_and_can_be_named(self):
        config = self.create(region="eu-west-1").json()["ReplicationConfig"]
        self.assertEqual(config["ReplicationConfigArn"], derived_arn("orders-config", region="eu-west-1"))
        # unique per region: the same identifier in another region is another config
        self.assertEqual(self.create().status, 200)
        self.assertError(self.create(), 400, "ResourceAlreadyExistsFault", "orders-config")
        named = self.create("named-one", ResourceIdentifier="Example-App-ARN1").json()["ReplicationConfig"]
        self.assertEqual(named["ReplicationConfigArn"], ARN_PREFIX + "Example-App-ARN1")
        self.assertError(self.create("named-two", ResourceIdentifier="Example-App-ARN1"), 400,
                         "ResourceAlreadyExistsFault")
        self.assertError(self.create("named-three", ResourceIdentifier="1-starts-with-a-digit"), 400,
                         "InvalidParameterValueException", "ResourceIdentifier")

    def test_duplicate_identifier_names_the_existing_arn(self):
        self.assertEqual(self.create().status, 200)
        response = self.create(ReplicationType="cdc")
        self.assertError(response, 400, "ResourceAlreadyExistsFault")
        self.assertEqual(response.json()["resourceArn"], derived_arn("orders-config"))
        # seeded configs count too
        self.assertError(self.create("cdc"), 400, "ResourceAlreadyExistsFault")

    def test_required_members_and_enums(self):
        response = self.emu.call("CreateReplicationConfig", {})
        self.assertError(response, 400, "ValidationException", "6 validation errors detected")
        for member in ("replicationConfigIdentifier", "sourceEndpointArn", "targetEndpointArn", "computeConfig",
                       "replicationType", "tableMappings"):
            self.assertIn(f"Value null at '{member}'", response.json()["message"])
        response = self.create(ReplicationType="full-load-plus")
        self.assertError(response, 400, "ValidationException", "Value 'full-load-plus' at 'replicationType' failed "
                         "to satisfy constraint: Member must satisfy enum value set: [full-load, cdc, "
                         "full-load-and-cdc]")
        self.assertError(self.create(ComputeConfig="big"), 400, "SerializationException")
        self.assertError(self.create(ComputeConfig={"MaxCapacityUnits": "8"}), 400, "SerializationException")
        self.assertError(self.create(Tags=[{"Key": 1}]), 400, "SerializationException")
        self.assertError(self.emu.call("ModifyReplicationConfig", {}), 400, "ValidationException",
                         "'replicationConfigArn'")
        self.assertError(self.emu.call("DeleteReplicationConfig", {}), 400, "ValidationException")

    def test_invalid_values(self):
        cases = [
            (dict(identifier="9starts-with-digit"), "ReplicationConfigIdentifier"),
            (dict(identifier="ends-with-"), "ReplicationConfigIdentifier"),
            (dict(identifier="two--hyphens"), "ReplicationConfigIdentifier"),
            (dict(identifier="under_score"), "ReplicationConfigIdentifier"),
            (dict(SourceEndpointArn="arn:aws:dms:us-east-1:123456789012:rep:X"), "SourceEndpointArn"),
            (dict(TargetEndpointArn="not-an-arn"), "TargetEndpointArn"),
            (dict(ComputeConfig={"MinCapacityUnits": 2}), "MaxCapacityUnits is required"),
            (dict(ComputeConfig={"MaxCapacityUnits": 3}), "Valid values are 1, 2, 4"),
            (dict(ComputeConfig={"MaxCapacityUnits": 4, "MinCapacityUnits": 8}), "must not be greater"),
            (dict(TableMappings="{not json"), "TableMappings"),
            (dict(TableMappings="[]"), "TableMappings"),
            (dict(TableMappings='{"rules": []}'), "rules"),
            (dict(TableMappings='{"rules": [{"rule-type": "selection", "rule-id": "7", "rule-action": "include"}]}'),
             "ruleId = 7"),
            (dict(TableMappings=mappings(excludes=["a.b"])), "include"),
            (dict(ReplicationSettings="[1]"), "ReplicationSettings"),
            (dict(SupplementalSettings="nope"), "SupplementalSettings"),
        ]
        for overrides, part in cases:
            with self.subTest(overrides=overrides):
                self.assertError(self.create(**overrides), 400, "InvalidParameterValueException", part)
        self.assertEqual(len(self.emu.call("DescribeReplicationConfigs").json()["ReplicationConfigs"]), 3)

    def test_modify(self):
        arn = self.create().json()["ReplicationConfig"]["ReplicationConfigArn"]
        self.emu.advance(60)
        response = self.emu.call("ModifyReplicationConfig", {
            "ReplicationConfigArn": arn, "ReplicationConfigIdentifier": "renamed", "ReplicationType": "cdc",
            "ComputeConfig": {"MinCapacityUnits": 2}, "TableMappings": mappings("sales.orders"),
            "SourceEndpointArn": TARGET})
        self.assertEqual(response.status, 200, response.body)
        config = response.json()["ReplicationConfig"]
        self.assertEqual(config["ReplicationConfigArn"], arn)
        self.assertEqual((config["ReplicationConfigIdentifier"], config["ReplicationType"],
                          config["SourceEndpointArn"]), ("renamed", "cdc", TARGET))
        self.assertEqual(config["ComputeConfig"], {"MaxCapacityUnits": 8, "MinCapacityUnits": 2, "MultiAZ": False})
        self.assertGreaterEqual(config["ReplicationConfigUpdateTime"] - config["ReplicationConfigCreateTime"], 60)
        replication = self.emu.replication(arn)
        self.assertEqual((replication["ReplicationConfigIdentifier"], replication["ReplicationType"]),
                         ("renamed", "cdc"))
        self.assertError(self.emu.call("ModifyReplicationConfig", {"ReplicationConfigArn": arn,
                                                                   "ReplicationConfigIdentifier": "cdc"}),
                         400, "ResourceAlreadyExistsFault")
        self.assertError(self.emu.call("ModifyReplicationConfig", {"ReplicationConfigArn": arn,
                                                                   "ComputeConfig": {"MaxCapacityUnits": 1}}),
                         400, "InvalidParameterValueException", "must not be greater")
        self.assertError(self.emu.call("ModifyReplicationConfig", {"ReplicationConfigArn": ARN_PREFIX + "NOPE"}),
                         400, "ResourceNotFoundFault")

    def test_modify_and_delete_need_a_stopped_replication(self):
        for status in ("running", "created", "stopped", "failed"):
            self.emu.admin("POST", "replications", {"identifier": f"is-{status}", "status": status})
        for operation, verb in (("ModifyReplicationConfig", "modified"), ("DeleteReplicationConfig", "deleted")):
            response = self.emu.call(operation, {"ReplicationConfigArn": derived_arn("is-running")})
            self.assertError(response, 400, "InvalidResourceStateFault",
                             f"Replication is in RUNNING state and its replication config cannot be {verb}")
        self.emu.start(CDC)
        self.assertError(self.emu.call("DeleteReplicationConfig", {"ReplicationConfigArn": CDC}), 400,
                         "InvalidResourceStateFault", "INITIALIZING")
        for status in ("created", "stopped", "failed"):
            arn = derived_arn(f"is-{status}")
            self.assertEqual(self.emu.call("ModifyReplicationConfig", {"ReplicationConfigArn": arn}).status, 200)
            deleted = self.emu.call("DeleteReplicationConfig", {"ReplicationConfigArn": arn})
            self.assertEqual(deleted.status, 200, deleted.body)
            self.assertEqual(deleted.json()["ReplicationConfig"]["ReplicationConfigIdentifier"], f"is-{status}")
            self.assertError(self.emu.call("DescribeReplications", {"Filters": [
                {"Name": "replication-config-arn", "Values": [arn]}]}), 400, "ResourceNotFoundFault")
            self.assertError(self.emu.start(arn), 400, "ResourceNotFoundFault")
        # the identifier is free again, and the ARN derived from it comes back
        recreated = self.create("is-stopped").json()["ReplicationConfig"]
        self.assertEqual(recreated["ReplicationConfigArn"], derived_arn("is-stopped"))


def tables_of(emu, arn, **params):
    response = emu.call("DescribeReplicationTableStatistics", dict(ReplicationConfigArn=arn, **params))
    assert response.status == 200, response.body
    return response.json()


class TablesTestCase(EmulatorTestCase):
    """Seeds replications with tables from mappings, lists and defaults; no tests of its own."""

    SPECS = EmulatorTestCase.SPECS + [
        {"identifier": "listed", "tables": [f"shop.t{n:02d}" for n in range(1, 46)], "full_load_minutes": 45},
        {"identifier": "mapped", "type": "full-load",
         "table_mappings": {"rules": selection("sales.orders", "sales.customers", "sales.items", "hr.staff")}},
        {"identifier": "wild", "table_mappings": json.loads(mappings("sales.%", excludes=["sales.returns"]))},
        {"identifier": "validated", "tables": 4, "replication_settings": {"ValidationSettings": {
            "EnableValidation": True}}},
        {"identifier": "seeded-error", "type": "full-load", "tables": 4,
         "table_errors": [{"table": "public.orders", "at_progress": 10}]},
    ]

    def states(self, arn):
        return {f"{t['SchemaName']}.{t['TableName']}": t["TableState"]
                for t in tables_of(self.emu, arn)["ReplicationTableStatistics"]}

    def assert_stats_agree(self, arn):
        """ReplicationStats counts the table list's states."""
        replication = self.emu.replication(arn)
        counts = {"TablesLoaded": 0, "TablesLoading": 0, "TablesQueued": 0, "TablesErrored": 0}
        states = self.states(arn)
        for state in states.values():
            self.assertIn(state, TABLE_STATES)
            counts[COUNTERS[state]] += 1
        self.assertEqual({name: replication["ReplicationStats"][name] for name in counts}, counts)
        return states


class TableStatisticsTest(TablesTestCase):
    def test_tables_come_from_mappings_seed_or_defaults(self):
        for identifier in ("listed", "mapped", "wild"):
            self.emu.start(derived_arn(identifier))
        self.emu.start(FULL_LOAD)
        self.emu.advance(MINUTE)
        self.assertEqual(list(self.states(derived_arn("mapped"))),
                         ["hr.staff", "sales.customers", "sales.items", "sales.orders"])
        self.assertEqual(len(self.states(derived_arn("listed"))), 45)
        self.assertEqual(sorted(self.states(FULL_LOAD)),
                         sorted(f"public.{name}" for name in ("customers", "orders", "order_items", "products",
                                                              "inventory", "payments", "shipments", "suppliers",
                                                              "invoices", "returns")))
        wild = self.states(derived_arn("wild"))
        self.assertEqual(len(wild), 9)
        self.assertTrue(all(name.startswith("sales.") for name in wild))
        self.assertNotIn("sales.returns", wild)
        self.assertEqual(set(wild.values()), {"Before load"})

    def test_tables_progress_with_the_full_load(self):
        arn = derived_arn("mapped")
        self.assertEqual(self.emu.start(arn).status, 200)
        self.assertEqual(set(self.assert_stats_agree(arn).values()), {"Before load"})
        self.emu.advance(TO_RUNNING)
        states = self.assert_stats_agree(arn)
        # load order is rule order: orders and customers load first, two at a time
        self.assertEqual(states, {"sales.orders": "Full load", "sales.customers": "Full load",
                                  "sales.items": "Before load", "hr.staff": "Before load"})
        self.emu.advance(10 * MINUTE + 1)
        states = self.assert_stats_agree(arn)
        self.assertEqual((states["sales.orders"], states["sales.customers"], states["hr.staff"]),
                         ("Table completed", "Table completed", "Full load"))
        rows = {t["TableName"]: t for t in tables_of(self.emu, arn)["ReplicationTableStatistics"]}
        self.assertGreater(rows["orders"]["FullLoadRows"], 0)
        self.assertLess(rows["orders"]["FullLoadStartTime"], rows["orders"]["FullLoadEndTime"])
        self.assertNotIn("FullLoadEndTime", rows["staff"])
        self.assertEqual(rows["staff"]["ValidationState"], "Not enabled")
        self.emu.advance(10 * MINUTE)
        self.assertEqual(set(self.assert_stats_agree(arn).values()), {"Table completed"})
        self.assertEqual(self.emu.replication(arn)["Status"], "stopped")

    def test_a_stop_cancels_the_tables_loading_and_resume_goes_on(self):
        arn = derived_arn("mapped")
        self.emu.admin("POST", "stop", {"arn": arn, "at_progress": 30})
        self.emu.start(arn)
        self.emu.advance(TO_RUNNING + 10 * MINUTE)
        states = self.assert_stats_agree(arn)
        self.assertEqual(sorted(states.values()), ["Before load", "Table cancelled", "Table cancelled",
                                                   "Table completed"])
        self.emu.advance(10 * MINUTE)
        self.emu.start(arn, "reload-target")       # a full-load replication cannot resume: reload
        self.emu.advance(TO_RUNNING)
        self.assertEqual(sorted(self.assert_stats_agree(arn).values()), ["Before load", "Before load", "Full load",
                                                                         "Full load"])

    def test_cdc_tables_are_completed_and_count_changes(self):
        self.run_to(CDC)
        self.emu.advance(5 * MINUTE)
        rows = tables_of(self.emu, CDC)["ReplicationTableStatistics"]
        self.assertEqual({t["TableState"] for t in rows}, {"Table completed"})
        self.assertGreater(sum(t["Inserts"] + t["Updates"] + t["Deletes"] for t in rows), 2000)
        self.assertEqual(sum(t["FullLoadRows"] for t in rows), 0)
        self.assert_stats_agree(CDC)

    def test_filters_and_paging(self):
        arn = derived_arn("listed")
        self.run_to(arn)
        self.emu.advance(10 * MINUTE)
        first = tables_of(self.emu, arn, MaxRecords=20)
        self.assertEqual(first["ReplicationConfigArn"], arn)
        names = [t["TableName"] for t in first["ReplicationTableStatistics"]]
        marker = first["Marker"]
        while marker:
            page = tables_of(self.emu, arn, MaxRecords=20, Marker=marker)
            names += [t["TableName"] for t in page["ReplicationTableStatistics"]]
            marker = page.get("Marker")
        self.assertEqual(names, [f"t{n:02d}" for n in range(1, 46)])
        self.assertNotIn("Marker", tables_of(self.emu, arn))
        self.assertEqual(len(tables_of(self.emu, arn)["ReplicationTableStatistics"]), 45)
        loading = tables_of(self.emu, arn, Filters=[{"Name": "table-state", "Values": ["Full load"]}])
        self.assertEqual(len(loading["ReplicationTableStatistics"]), 2)
        picked = tables_of(self.emu, arn, Filters=[{"Name": "schema-name", "Values": ["shop"]},
                                                   {"Name": "table-name", "Values": ["t03", "t44", "zz"]}])
        self.assertEqual([t["TableName"] for t in picked["ReplicationTableStatistics"]], ["t03", "t44"])
        self.assertEqual(tables_of(self.emu, arn, Filters=[{"Name": "schema-name", "Values": ["other"]}])[
            "ReplicationTableStatistics"], [])
        for bad in ({"MaxRecords": 19}, {"MaxRecords": 501}, {"Marker": "garbage!"},
                    {"Filters": [{"Name": "table-status", "Values": ["x"]}]}):
            self.assertError(self.emu.call("DescribeReplicationTableStatistics", dict(ReplicationConfigArn=arn, **bad)),
                             400, "InvalidParameterValueException")
        self.assertEqual(len(tables_of(self.emu, arn, MaxRecords=500)["ReplicationTableStatistics"]), 45)

    def test_errors_for_unknown_or_never_started(self):
        self.assertError(self.emu.call("DescribeReplicationTableStatistics", {"ReplicationConfigArn": FULL_LOAD}),
                         400, "InvalidResourceStateFault", "CREATED")
        self.assertError(self.emu.call("DescribeReplicationTableStatistics",
                                       {"ReplicationConfigArn": ARN_PREFIX + "NOPE"}), 400, "ResourceNotFoundFault")
        self.assertError(self.emu.call("DescribeReplicationTableStatistics", {}), 400, "ValidationException")

    def test_a_table_error_is_counted_and_the_load_goes_on(self):
        self.emu.admin("POST", "table_error", {"arn": FULL_LOAD, "table": "public.products", "at_progress": 25})
        self.run_to(FULL_LOAD)
        self.emu.advance(4 * MINUTE)
        self.assertEqual(self.assert_stats_agree(FULL_LOAD)["public.products"], "Full load")
        self.emu.advance(2 * MINUTE)
        states = self.assert_stats_agree(FULL_LOAD)
        self.assertEqual(states["public.products"], "Table error")
        self.assertEqual(self.emu.replication(FULL_LOAD)["ReplicationStats"]["TablesErrored"], 1)
        self.emu.advance(15 * MINUTE)
        replication = self.emu.replication(FULL_LOAD)
        self.assertEqual((replication["Status"], replication["StopReason"]),
                         ("stopped", "Stop Reason FULL_LOAD_ONLY_FINISHED"))
        self.assertEqual((replication["ReplicationStats"]["TablesLoaded"],
                          replication["ReplicationStats"]["TablesErrored"]), (9, 1))
        errored = [t for t in tables_of(self.emu, FULL_LOAD)["ReplicationTableStatistics"]
                   if t["TableState"] == "Table error"]
        self.assertEqual(len(errored), 1)
        self.assertNotIn("FullLoadEndTime", errored[0])
        for spec, status in (({"arn": FULL_LOAD, "table": "public.nope"}, 400),
                             ({"arn": FULL_LOAD, "table": "noschema"}, 400),
                             ({"identifier": "nobody", "table": "a.b"}, 404)):
            response = self.emu.send("POST", "/_emulator/table_error", [("Host", self.emu.host)],
                                     json.dumps(spec).encode())
            self.assertEqual(response.status, status, spec)

    def test_seeded_table_error(self):
        arn = derived_arn("seeded-error")
        self.run_to(arn)
        self.emu.advance(3 * MINUTE)
        self.assertEqual(self.assert_stats_agree(arn)["public.orders"], "Table error")


class ReloadTest(TablesTestCase):
    def reload(self, arn, *tables, option=None):
        params = {"ReplicationConfigArn": arn, "TablesToReload": [
            {"SchemaName": name.split(".")[0], "TableName": name.split(".")[1]} for name in tables]}
        if option:
            params["ReloadOption"] = option
        return self.emu.call("ReloadReplicationTables", params)

    def test_a_data_reload_recovers_an_errored_table(self):
        self.emu.admin("POST", "table_error", {"arn": FULL_LOAD_AND_CDC, "table": "public.orders"})
        self.run_to(FULL_LOAD_AND_CDC)
        self.emu.advance(25 * MINUTE)
        states = self.assert_stats_agree(FULL_LOAD_AND_CDC)
        self.assertEqual(states["public.orders"], "Table error")
        self.assertEqual(self.emu.replication(FULL_LOAD_AND_CDC)["ReplicationStats"]["TablesErrored"], 1)
        response = self.reload(FULL_LOAD_AND_CDC, "public.orders", "public.customers")
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(response.json(), {"ReplicationConfigArn": FULL_LOAD_AND_CDC})
        self.emu.advance(MINUTE)
        rows = {t["TableName"]: t for t in tables_of(self.emu, FULL_LOAD_AND_CDC)["ReplicationTableStatistics"]}
        self.assertEqual((rows["orders"]["TableState"], rows["customers"]["TableState"]),
                         ("Table is being reloaded", "Table is being reloaded"))
        self.assertTrue(rows["orders"]["FullLoadReloaded"])
        self.assertFalse(rows["products"]["FullLoadReloaded"])
        self.assertLess(rows["orders"]["FullLoadRows"], rows["products"]["FullLoadRows"] * 100)
        stats = self.emu.replication(FULL_LOAD_AND_CDC)["ReplicationStats"]
        self.assertEqual((stats["TablesLoading"], stats["TablesErrored"], stats["TablesLoaded"]), (2, 0, 8))
        self.assert_stats_agree(FULL_LOAD_AND_CDC)
        self.emu.advance(4 * MINUTE)
        states = self.assert_stats_agree(FULL_LOAD_AND_CDC)
        self.assertEqual(set(states.values()), {"Table completed"})
        rows = {t["TableName"]: t for t in tables_of(self.emu, FULL_LOAD_AND_CDC)["ReplicationTableStatistics"]}
        self.assertGreater(rows["orders"]["FullLoadEndTime"], rows["orders"]["FullLoadStartTime"])

    def test_reload_needs_a_running_replication_and_known_tables(self):
        self.assertError(self.reload(FULL_LOAD_AND_CDC, "public.orders"), 400, "InvalidResourceStateFault",
                         "CREATED")
        self.emu.start(FULL_LOAD_AND_CDC)
        self.assertError(self.reload(FULL_LOAD_AND_CDC, "public.orders"), 400, "InvalidResourceStateFault",
                         "INITIALIZING")
        self.emu.advance(TO_RUNNING)
        self.assertError(self.reload(FULL_LOAD_AND_CDC, "public.orders", "public.nope", "x.y"), 400,
                         "ResourceNotFoundFault", "public.nope, x.y")
        self.assertError(self.reload(FULL_LOAD_AND_CDC), 400, "InvalidParameterValueException")
        self.assertError(self.reload(ARN_PREFIX + "NOPE", "public.orders"), 400, "ResourceNotFoundFault")
        self.assertError(self.reload(FULL_LOAD_AND_CDC, "public.orders", option="everything"), 400,
                         "ValidationException", "Member must satisfy enum value set: [data-reload, validate-only]")
        response = self.emu.call("ReloadReplicationTables", {"ReplicationConfigArn": FULL_LOAD_AND_CDC,
                                                             "TablesToReload": [{"TableName": "orders"}]})
        self.assertError(response, 400, "ValidationException", "Value null at 'tablesToReload.1.member.schemaName'")
        self.assertError(self.emu.call("ReloadReplicationTables", {"ReplicationConfigArn": FULL_LOAD_AND_CDC}), 400,
                         "ValidationException", "'tablesToReload'")
        self.emu.call("StopReplication", {"ReplicationConfigArn": FULL_LOAD_AND_CDC})
        self.emu.advance(3 * MINUTE)
        self.assertError(self.reload(FULL_LOAD_AND_CDC, "public.orders"), 400, "InvalidResourceStateFault", "STOPPED")

    def test_validate_only(self):
        arn = derived_arn("validated")
        self.run_to(arn)
        self.emu.advance(21 * MINUTE)
        rows = tables_of(self.emu, arn)["ReplicationTableStatistics"]
        self.assertEqual({t["ValidationState"] for t in rows}, {"Validated"})
        self.assertEqual(self.reload(arn, "public.orders", option="validate-only").status, 200)
        self.emu.advance(MINUTE)
        rows = {t["TableName"]: t for t in tables_of(self.emu, arn)["ReplicationTableStatistics"]}
        self.assertEqual((rows["orders"]["TableState"], rows["orders"]["ValidationState"]),
                         ("Table completed", "Pending records"))
        self.assertGreater(rows["orders"]["ValidationPendingRecords"], 0)
        self.assertFalse(rows["orders"]["FullLoadReloaded"])
        self.emu.advance(10 * MINUTE)
        rows = tables_of(self.emu, arn)["ReplicationTableStatistics"]
        self.assertEqual({t["ValidationState"] for t in rows}, {"Validated"})

    def test_a_stop_during_a_reload_and_a_resume(self):
        self.run_to(CDC)
        self.assertEqual(self.reload(CDC, "public.orders").status, 200)
        self.emu.advance(MINUTE)
        self.emu.call("StopReplication", {"ReplicationConfigArn": CDC})
        self.emu.advance(12 * MINUTE)
        states = self.assert_stats_agree(CDC)
        self.assertEqual(states["public.orders"], "Table cancelled")
        self.emu.start(CDC, "resume-processing")
        self.emu.advance(TO_RUNNING + MINUTE)
        self.assertEqual(self.assert_stats_agree(CDC)["public.orders"], "Table is being reloaded")
        self.emu.advance(10 * MINUTE)
        self.assertEqual(self.assert_stats_agree(CDC)["public.orders"], "Table completed")


@unittest.skipIf(boto3 is None, "boto3/botocore is not importable: the real-client tests are skipped")
class ConfigTablesBotocoreTest(EmulatorTestCase):
    def client(self):
        return boto3.client("dms", endpoint_url=self.emu.url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY,
                            config=botocore.config.Config(retries={"total_max_attempts": 1}))

    def test_every_new_operation(self):
        dms = self.client()
        created = dms.create_replication_config(**create_params(
            ReplicationSettings=json.dumps({"ValidationSettings": {"EnableValidation": True}}),
            Tags=[{"Key": "owner", "Value": "ops"}]))["ReplicationConfig"]
        arn = created["ReplicationConfigArn"]
        self.assertIsInstance(created["ReplicationConfigCreateTime"], datetime.datetime)
        self.assertEqual(created["ComputeConfig"]["MaxCapacityUnits"], 8)
        with self.assertRaises(dms.exceptions.ResourceAlreadyExistsFault):
            dms.create_replication_config(**create_params())
        with self.assertRaises(botocore.exceptions.ClientError) as caught:
            dms.create_replication_config(**create_params("other", ReplicationType="sometimes"))
        self.assertEqual(caught.exception.response["Error"]["Code"], "ValidationException")
        modified = dms.modify_replication_config(ReplicationConfigArn=arn, ComputeConfig={"MaxCapacityUnits": 16})
        self.assertEqual(modified["ReplicationConfig"]["ComputeConfig"]["MaxCapacityUnits"], 16)
        with self.assertRaises(dms.exceptions.InvalidResourceStateFault):
            dms.describe_replication_table_statistics(ReplicationConfigArn=arn)
        self.emu.admin("POST", "table_error", {"arn": arn, "table": "hr.staff", "at_progress": 50})
        dms.start_replication(ReplicationConfigArn=arn, StartReplicationType="start-replication")
        self.emu.advance(TO_RUNNING + 10 * MINUTE)
        with self.assertRaises(dms.exceptions.InvalidResourceStateFault):
            dms.delete_replication_config(ReplicationConfigArn=arn)
        statistics = dms.describe_replication_table_statistics(ReplicationConfigArn=arn, MaxRecords=20)
        self.assertEqual(statistics["ReplicationConfigArn"], arn)
        rows = {t["TableName"]: t for t in statistics["ReplicationTableStatistics"]}
        self.assertEqual(rows["staff"]["TableState"], "Table error")
        self.assertIsInstance(rows["orders"]["FullLoadStartTime"], datetime.datetime)
        self.assertIsInstance(rows["orders"]["LastUpdateTime"], datetime.datetime)
        if MODEL.is_file():
            self.assertLessEqual(set(rows["orders"]), model_members("TableStatistics"))
            self.assertLessEqual(set(statistics) - {"ResponseMetadata"},
                                 model_members("DescribeReplicationTableStatisticsResponse"))
        errored = dms.describe_replications(Filters=[{"Name": "replication-config-arn", "Values": [arn]}])
        self.assertEqual(errored["Replications"][0]["ReplicationStats"]["TablesErrored"], 1)
        with self.assertRaises(dms.exceptions.ResourceNotFoundFault):
            dms.reload_replication_tables(ReplicationConfigArn=arn,
                                          TablesToReload=[{"SchemaName": "hr", "TableName": "nobody"}])
        answer = dms.reload_replication_tables(ReplicationConfigArn=arn, ReloadOption="data-reload",
                                               TablesToReload=[{"SchemaName": "hr", "TableName": "staff"}])
        self.assertEqual(answer["ReplicationConfigArn"], arn)
        self.emu.advance(30 * MINUTE)
        rows = {t["TableName"]: t for t in dms.describe_replication_table_statistics(
            ReplicationConfigArn=arn, Filters=[{"Name": "table-state", "Values": ["Table completed"]}])[
            "ReplicationTableStatistics"]}
        self.assertEqual(set(rows), {"orders", "customers", "staff"})
        self.assertTrue(rows["staff"]["FullLoadReloaded"])
        dms.stop_replication(ReplicationConfigArn=arn)
        self.emu.advance(3 * MINUTE)
        deleted = dms.delete_replication_config(ReplicationConfigArn=arn)["ReplicationConfig"]
        self.assertEqual(deleted["ReplicationConfigIdentifier"], "orders-config")
        with self.assertRaises(dms.exceptions.ResourceNotFoundFault):
            dms.describe_replication_configs(Filters=[{"Name": "replication-config-arn", "Values": [arn]}])


@unittest.skipIf(shutil.which("aws") is None, "the AWS CLI (aws) is not installed")
class ConfigTablesAwsCliTest(EmulatorTestCase):
    def aws(self, *args):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                   AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        done = subprocess.run(["aws", "dms", *args, "--endpoint-url", self.emu.url, "--region", "us-east-1",
                               "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout) if done.stdout.strip() else {}

    def test_create_start_table_statistics_reload_delete(self):
        created = self.aws("create-replication-config", "--replication-config-identifier", "cli-config",
                           "--source-endpoint-arn", SOURCE, "--target-endpoint-arn", TARGET,
                           "--compute-config", "MaxCapacityUnits=4", "--replication-type", "full-load-and-cdc",
                           "--table-mappings", mappings("sales.orders", "sales.customers"))
        arn = created["ReplicationConfig"]["ReplicationConfigArn"]
        self.assertEqual(arn, derived_arn("cli-config"))
        self.aws("modify-replication-config", "--replication-config-arn", arn, "--replication-type", "full-load")
        self.aws("start-replication", "--replication-config-arn", arn, "--start-replication-type",
                 "start-replication")
        self.emu.advance(TO_RUNNING + MINUTE)
        statistics = self.aws("describe-replication-table-statistics", "--replication-config-arn", arn)
        self.assertEqual(sorted(t["TableState"] for t in statistics["ReplicationTableStatistics"]),
                         ["Full load", "Full load"])
        reloaded = self.aws("reload-replication-tables", "--replication-config-arn", arn, "--tables-to-reload",
                            "SchemaName=sales,TableName=orders", "--reload-option", "data-reload")
        self.assertEqual(reloaded, {"ReplicationConfigArn": arn})
        self.emu.advance(30 * MINUTE)
        configs = self.aws("describe-replication-configs", "--filters",
                           f"Name=replication-config-arn,Values={arn}")
        self.assertEqual(configs["ReplicationConfigs"][0]["ReplicationType"], "full-load")
        deleted = self.aws("delete-replication-config", "--replication-config-arn", arn)
        self.assertEqual(deleted["ReplicationConfig"]["ReplicationConfigArn"], arn)


if __name__ == "__main__":
    unittest.main()


class OddInputTest(EmulatorTestCase):
    """No member value, however odd, makes an operation fail with a 500."""

    MEMBERS = {
        "StartReplication": ["ReplicationConfigArn", "StartReplicationType", "PremigrationAssessmentSettings",
                             "CdcStartTime", "CdcStartPosition"],
        "StopReplication": ["ReplicationConfigArn"],
        "DescribeReplications": ["Filters", "MaxRecords", "Marker"],
        "DescribeReplicationConfigs": ["Filters", "MaxRecords", "Marker"],
        "CreateReplicationConfig": ["ReplicationConfigIdentifier", "ComputeConfig", "ReplicationType",
                                    "TableMappings", "ReplicationSettings", "ResourceIdentifier", "Tags",
                                    "SourceEndpointArn"],
        "ModifyReplicationConfig": ["ReplicationConfigArn", "ComputeConfig", "TableMappings", "ReplicationType"],
        "DeleteReplicationConfig": ["ReplicationConfigArn"],
        "DescribeReplicationTableStatistics": ["ReplicationConfigArn", "Filters", "MaxRecords", "Marker"],
        "ReloadReplicationTables": ["ReplicationConfigArn", "TablesToReload", "ReloadOption"],
    }
    VALUES = [None, True, -1, 10 ** 30, 1.5, "", "x" * 3000, "{}", '{"rules": [1]}', '{"rules": [{}]}', [],
              [None], [{}], [{"Name": None, "Values": [1]}], [{"SchemaName": 1, "TableName": []}],
              {}, {"MaxCapacityUnits": None}, {"MaxCapacityUnits": 10 ** 30}, {"VpcSecurityGroupIds": [1]},
              "WzEsMl0=", "eyJhIjoxfQ==", "WyJhIl0="]       # base64 of [1,2], {"a":1}, ["a"]

    def test_no_internal_failure(self):
        self.run_to(FULL_LOAD_AND_CDC)
        base = {"ReplicationConfigArn": FULL_LOAD_AND_CDC}
        for operation, members in self.MEMBERS.items():
            valid = dict(base) if "ReplicationConfigArn" in members else {}
            if operation == "CreateReplicationConfig":
                valid = create_params("odd-input")
            if operation == "ReloadReplicationTables":
                valid["TablesToReload"] = [{"SchemaName": "public", "TableName": "orders"}]
            for member in members:
                for value in self.VALUES:
                    with self.subTest(operation=operation, member=member, value=repr(value)[:40]):
                        response = self.emu.call(operation, {**valid, member: value})
                        self.assertLess(response.status, 500, response.body)
                        if response.status != 200:
                            self.assertRegex(response.code, r"^[A-Za-z]+(Exception|Fault)$")
