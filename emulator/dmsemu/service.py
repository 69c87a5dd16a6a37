"""The emulated DMS service: its clock, the replications, the operations and the admin API."""

import bisect
import json
import sys
import threading
import time
import traceback

from . import configs
from .faults import Fault, FaultQueue
from .fleet import Seed, arm_stop, arm_table_error, build_replication, expand, find
from .replication import (
    ASSESSMENT_RESULTS, DEFAULT_SETTINGS, MINUTE, RELOAD_OPTIONS, STARTABLE_STATUSES, START_TYPES, Config,
    Replication, StateError, partition_of, resource_id,
)
from .sigv4 import Credentials
from .wire import (
    TIMESTAMP, AdminError, DmsError, camel, check_types, decode_json, decode_marker, encode_marker, enum_error,
    max_records, null_error, paged, parse_filters, validation_error,
)

__all__ = ["AdminError", "Clock", "DmsError", "Emulator", "RequestLog", "Seed", "DEFAULT_CREDENTIALS"]

DEFAULT_CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
DESCRIBE_RECORDS = (20, 100, 100)       # MaxRecords minimum, maximum, default
TABLE_RECORDS = (20, 500, 100)          # the same for table statistics (as DescribeTableStatistics)
DEFAULT_FULL_LOAD_SECONDS = 20 * MINUTE
TABLE_TO_RELOAD = {"SchemaName": str, "TableName": str}


def _reload_constraints(params):
    details = []
    for index, item in enumerate(params.get("TablesToReload") or [], 1):
        if not isinstance(item, dict):
            raise DmsError("SerializationException", "Each of TablesToReload must be an object")
        check_types(TABLE_TO_RELOAD, item, f"TablesToReload.{index}.")
        details += [null_error(f"tablesToReload.{index}.member.{camel(name)}") for name in TABLE_TO_RELOAD
                    if item.get(name) is None]
    option = params.get("ReloadOption")
    if option is not None and option not in RELOAD_OPTIONS:
        details.append(enum_error("reloadOption", option, RELOAD_OPTIONS))
    return details


DESCRIBE_MEMBERS = {"Filters": list, "MaxRecords": int, "Marker": str}

# Input members of each operation with their JSON types, the required ones, and the
# other constraints checked with them (enums, nested required members).
OPERATIONS = {
    "StartReplication": {
        "handler": "_start_replication",
        "members": {"ReplicationConfigArn": str, "StartReplicationType": str,
                    "PremigrationAssessmentSettings": str, "CdcStartTime": TIMESTAMP,
                    "CdcStartPosition": str, "CdcStopPosition": str},
        "required": ("ReplicationConfigArn", "StartReplicationType"),
    },
    "StopReplication": {
        "handler": "_stop_replication",
        "members": {"ReplicationConfigArn": str},
        "required": ("ReplicationConfigArn",),
    },
    "DescribeReplications": {"handler": "_describe_replications", "members": DESCRIBE_MEMBERS},
    "DescribeReplicationConfigs": {"handler": "_describe_replication_configs", "members": DESCRIBE_MEMBERS},
    "CreateReplicationConfig": {
        "handler": "_create_replication_config",
        "members": {**configs.CONFIG_MEMBERS, "ResourceIdentifier": str, "Tags": list},
        "required": ("ReplicationConfigIdentifier", "SourceEndpointArn", "TargetEndpointArn", "ComputeConfig",
                     "ReplicationType", "TableMappings"),
        "constraints": configs.enum_violations,
    },
    "ModifyReplicationConfig": {
        "handler": "_modify_replication_config",
        "members": {"ReplicationConfigArn": str, **configs.CONFIG_MEMBERS},
        "required": ("ReplicationConfigArn",),
        "constraints": configs.enum_violations,
    },
    "DeleteReplicationConfig": {
        "handler": "_delete_replication_config",
        "members": {"ReplicationConfigArn": str},
        "required": ("ReplicationConfigArn",),
    },
    "DescribeReplicationTableStatistics": {
        "handler": "_describe_replication_table_statistics",
        "members": {"ReplicationConfigArn": str, **DESCRIBE_MEMBERS},
        "required": ("ReplicationConfigArn",),
    },
    "ReloadReplicationTables": {
        "handler": "_reload_replication_tables",
        "members": {"ReplicationConfigArn": str, "TablesToReload": list, "ReloadOption": str},
        "required": ("ReplicationConfigArn", "TablesToReload"),
        "constraints": _reload_constraints,
    },
}
FILTERS = {
    "replication-config-arn": lambda config: config.arn,
    "replication-config-id": lambda config: config.identifier,
}
TABLE_FILTERS = {"schema-name": "SchemaName", "table-name": "TableName", "table-state": "TableState"}


def _validate(operation, params):
    spec = OPERATIONS[operation]
    check_types(spec["members"], params)
    details = [null_error(camel(name)) for name in spec.get("required", ()) if params.get(name) is None]
    details += spec.get("constraints", lambda _: [])(params)
    if details:
        raise validation_error(details)


class Clock:
    """Emulated time runs `speed` times faster than real time and can be jumped ahead;
    the signing clock is real time shifted by `skew` seconds."""

    def __init__(self, speed):
        self.speed = speed
        self.skew = 0.0
        self._lock = threading.Lock()
        self._wall = time.time()
        self._monotonic = time.monotonic()
        self._advanced = 0.0

    def emulated(self):
        with self._lock:
            return self._wall + (time.monotonic() - self._monotonic) * self.speed + self._advanced

    def advance(self, seconds):
        with self._lock:
            self._advanced += seconds

    def signing_now(self):
        return time.time() + self.skew


class RequestLog:
    """The DMS requests received. An entry is logged on arrival and completed as it is answered."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = []

    def add(self, entry):
        with self._lock:
            entry["seq"] = len(self._entries) + 1
            self._entries.append(entry)
        return entry

    def update(self, entry, **fields):
        with self._lock:
            entry.update(fields)

    def entries(self):
        with self._lock:
            return [dict(entry) for entry in self._entries]

    def clear(self):
        with self._lock:
            self._entries.clear()


class Emulator:
    def __init__(self, clock, seed, auto_create=False):
        self.clock = clock
        self.seed = seed
        self.auto_create = auto_create
        self.faults = FaultQueue()
        self.requests = RequestLog()
        self._lock = threading.Lock()
        self._replications = {}          # config ARN -> Replication
        self._order = []                 # the config ARNs, sorted: the order of every describe
        self.reset()

    def reset(self):
        with self._lock:
            self._replications = self.seed.build(self.clock.emulated())
            self._order = sorted(self._replications)
        self.faults.clear()
        self.requests.clear()
        self.clock.skew = 0.0

    def _put(self, replication):
        arn = replication.config.arn
        if arn not in self._replications:
            bisect.insort(self._order, arn)
        self._replications[arn] = replication

    def _remove(self, arn):
        del self._replications[arn]
        del self._order[bisect.bisect_left(self._order, arn)]

    # -- DMS operations ----------------------------------------------------------------------

    def handle(self, operation, body, stale=False, region=None):
        """Run one DMS call (`operation` is None when X-Amz-Target is missing); returns
        (HTTP status, JSON document), errors included. With `stale`, a DescribeReplications
        answers the views kept by the last start or stop. `region` is the region of the
        request's signature (where CreateReplicationConfig creates)."""
        try:
            if operation is None:
                raise DmsError("UnknownOperationException", "The X-Amz-Target header is missing")
            if operation not in OPERATIONS:
                raise DmsError("UnknownOperationException", f"Unknown operation: {operation}")
            try:
                params = decode_json(body) if body.strip() else {}
            except ValueError as err:
                raise DmsError("SerializationException", str(err)) from None
            if not isinstance(params, dict):
                raise DmsError("SerializationException", "The request body must be a JSON object")
            _validate(operation, params)
            method = getattr(self, OPERATIONS[operation]["handler"])
            extra = {"stale": True} if stale else {}
            if operation == "CreateReplicationConfig":
                extra["region"] = region
            with self._lock:
                return 200, method(params, self.clock.emulated(), **extra)
        except DmsError as err:
            return err.status, err.document()
        except Exception:  # a defect of the emulator: answer like AWS would, and tell
            traceback.print_exc(file=sys.stderr)
            return 500, DmsError("InternalFailure", "The request processing has failed because of an "
                                 "unknown error, exception or failure.", 500).document()

    def _find(self, arn, now, create=False):
        replication = self._replications.get(arn)
        if replication is None and create:
            try:
                replication = Replication(Config.from_spec({"arn": arn}, now))
            except ValueError:
                raise DmsError("InvalidParameterValueException", f"Invalid replication config ARN: {arn}") from None
            self._put(replication)
        if replication is None:
            raise DmsError("ResourceNotFoundFault", f"Replication config not found: {arn}")
        replication.advance(now)
        return replication

    def _start_replication(self, params, now):
        start_type = params["StartReplicationType"]
        if start_type not in START_TYPES:
            raise DmsError("InvalidParameterValueException", f"Invalid StartReplicationType: {start_type}. "
                           f"Valid values are {', '.join(START_TYPES)}")
        settings = None
        if params.get("PremigrationAssessmentSettings") is not None:
            try:
                settings = json.loads(params["PremigrationAssessmentSettings"])
            except (ValueError, RecursionError):
                settings = None
            if not isinstance(settings, dict):
                raise DmsError("InvalidParameterValueException",
                               "PremigrationAssessmentSettings must be a JSON object")
        if params.get("CdcStartTime") is not None and params.get("CdcStartPosition") is not None:
            raise DmsError("InvalidParameterValueException",
                           "Specify either CdcStartTime or CdcStartPosition, not both")
        cdc = {name: params[name] for name in ("CdcStartTime", "CdcStartPosition", "CdcStopPosition")
               if params.get(name) is not None}
        replication = self._find(params["ReplicationConfigArn"], now, create=self.auto_create)
        before = replication.describe(now)
        try:
            replication.start(now, start_type, settings, cdc)
        except StateError as err:
            raise DmsError("InvalidResourceStateFault", str(err)) from None
        replication.view_before_request = before
        return {"Replication": replication.describe(now)}

    def _stop_replication(self, params, now):
        replication = self._find(params["ReplicationConfigArn"], now)
        before = replication.describe(now)
        try:
            replication.stop(now)
        except StateError as err:
            raise DmsError("InvalidResourceStateFault", str(err)) from None
        replication.view_before_request = before
        return {"Replication": replication.describe(now)}

    def _select(self, params, now, what):
        """The replications the filters select, paged; returns (page, next marker or None).
        The work is one pass over the candidates (the ARNs a replication-config-arn filter
        names, else every config) plus the page itself."""
        filters = parse_filters(params.get("Filters"), FILTERS)
        records = max_records(params, *DESCRIBE_RECORDS)
        named = [values for name, values in filters if name == "replication-config-arn"]
        if named:
            candidates = sorted(set.intersection(*named).intersection(self._replications))
        else:
            candidates = self._order
        for name, values in filters:
            if name != "replication-config-arn":
                test = FILTERS[name]
                candidates = [arn for arn in candidates if test(self._replications[arn].config) in values]
        if params.get("Marker") is not None:
            after = decode_marker(params["Marker"])
            candidates = candidates[bisect.bisect_right(candidates, after):]
        if filters and not candidates:
            raise DmsError("ResourceNotFoundFault", f"No {what} found matching the filters")
        page = [self._replications[arn] for arn in candidates[:records]]
        for replication in page:
            replication.advance(now)
        marker = encode_marker(page[-1].config.arn) if len(candidates) > records else None
        return page, marker

    def _describe_replications(self, params, now, stale=False):
        page, marker = self._select(params, now, "replications")
        views = [r.view_before_request if stale and r.view_before_request is not None else r.describe(now)
                 for r in page]
        return paged("Replications", views, marker)

    def _describe_replication_configs(self, params, now):
        page, marker = self._select(params, now, "replication configs")
        return paged("ReplicationConfigs", [r.config.describe() for r in page], marker)

    # -- replication configs -----------------------------------------------------------------

    def _holder(self, identifier, region, account, other_than=None):
        """The ARN of the config holding `identifier` in that region and account, if any."""
        for arn, replication in self._replications.items():
            config = replication.config
            if config.identifier == identifier and arn != other_than and config.region == region \
                    and config.account == account:
                return arn
        return None

    def _create_replication_config(self, params, now, region=None):
        region = region or self.seed.region
        account = self.seed.account
        identifier = params["ReplicationConfigIdentifier"]
        configs.check_members(params)
        compute = configs.check_compute(params["ComputeConfig"])
        configs.check_tags(params.get("Tags"))
        resource = params.get("ResourceIdentifier")
        if resource is not None:
            configs.check_identifier("ResourceIdentifier", resource, configs.MAX_RESOURCE_IDENTIFIER)
        arn = f"arn:{partition_of(region)}:dms:{region}:{account}:replication-config:" \
              f"{resource or resource_id(identifier)}"
        holder = self._holder(identifier, region, account)
        if holder is not None or arn in self._replications:
            what = f"identifier {identifier}" if holder is not None else f"ARN {arn}"
            raise DmsError("ResourceAlreadyExistsFault", f"A replication config with the {what} already exists",
                           resourceArn=holder or arn)
        config = Config(
            arn=arn, identifier=identifier, type=params["ReplicationType"],
            source_endpoint_arn=params["SourceEndpointArn"], target_endpoint_arn=params["TargetEndpointArn"],
            compute=compute, capacity_units=configs.provisioned_units(compute),
            full_load_seconds=DEFAULT_FULL_LOAD_SECONDS, created=now,
            table_mappings=params["TableMappings"],
            replication_settings=params.get("ReplicationSettings") or DEFAULT_SETTINGS,
            supplemental_settings=params.get("SupplementalSettings"),
        )
        self._put(Replication(config))
        return {"ReplicationConfig": config.describe()}

    @staticmethod
    def _check_changeable(replication, verb):
        if replication.status not in STARTABLE_STATUSES:
            raise DmsError("InvalidResourceStateFault", f"Replication is in {replication.status.upper()} state "
                           f"and its replication config cannot be {verb}; stop the replication first")

    def _modify_replication_config(self, params, now):
        replication = self._find(params["ReplicationConfigArn"], now)
        config = replication.config
        self._check_changeable(replication, "modified")
        configs.check_members(params)
        compute = None
        if params.get("ComputeConfig") is not None:
            compute = configs.check_compute({**config.compute, **params["ComputeConfig"]})
        identifier = params.get("ReplicationConfigIdentifier")
        if identifier is not None and identifier != config.identifier:
            holder = self._holder(identifier, config.region, config.account, other_than=config.arn)
            if holder is not None:
                raise DmsError("ResourceAlreadyExistsFault",
                               f"A replication config with the identifier {identifier} already exists",
                               resourceArn=holder)
            config.identifier = identifier
        for member, attribute in (("ReplicationType", "type"), ("SourceEndpointArn", "source_endpoint_arn"),
                                  ("TargetEndpointArn", "target_endpoint_arn"), ("TableMappings", "table_mappings"),
                                  ("ReplicationSettings", "replication_settings"),
                                  ("SupplementalSettings", "supplemental_settings")):
            if params.get(member) is not None:
                setattr(config, attribute, params[member])
        if compute is not None:
            config.compute = compute
            config.capacity_units = configs.provisioned_units(compute)
        before = config.tables
        config.refresh()
        if config.tables != before:
            replication.rebuild_tables()
        config.updated = now
        return {"ReplicationConfig": config.describe()}

    def _delete_replication_config(self, params, now):
        replication = self._find(params["ReplicationConfigArn"], now)
        self._check_changeable(replication, "deleted")
        self._remove(replication.config.arn)
        return {"ReplicationConfig": replication.config.describe()}

    # -- tables ------------------------------------------------------------------------------

    def _describe_replication_table_statistics(self, params, now):
        arn = params["ReplicationConfigArn"]
        filters = parse_filters(params.get("Filters"), TABLE_FILTERS)
        records = max_records(params, *TABLE_RECORDS)
        after = decode_marker(params["Marker"], parts=2) if params.get("Marker") is not None else None
        replication = self._find(arn, now)
        if not replication.has_run:
            raise DmsError("InvalidResourceStateFault", "Replication is in CREATED state: it has no table "
                           "statistics until it has been started")
        rows = replication.table_statistics(now)
        for name, values in filters:
            member = TABLE_FILTERS[name]
            rows = [row for row in rows if row[member] in values]
        if after is not None:
            rows = [row for row in rows if [row["SchemaName"], row["TableName"]] > after]
        page = rows[:records]
        marker = encode_marker([page[-1]["SchemaName"], page[-1]["TableName"]]) if len(rows) > records else None
        return paged("ReplicationTableStatistics", page, marker, ReplicationConfigArn=arn)

    def _reload_replication_tables(self, params, now):
        arn = params["ReplicationConfigArn"]
        tables = params["TablesToReload"]
        if not tables:
            raise DmsError("InvalidParameterValueException", "TablesToReload must name at least one table")
        option = params.get("ReloadOption") or "data-reload"
        replication = self._find(arn, now)
        keys = [f"{item['SchemaName']}.{item['TableName']}" for item in tables]
        try:
            replication.reload_tables(now, keys, option)
        except StateError as err:
            raise DmsError("InvalidResourceStateFault", str(err)) from None
        except KeyError as err:
            raise DmsError("ResourceNotFoundFault", f"Table(s) not found in the replication of {arn}: "
                           f"{', '.join(err.args[0])}") from None
        return {"ReplicationConfigArn": arn}

    # -- admin API ---------------------------------------------------------------------------

    def _named(self, spec, now):
        """The replication an admin request names by arn or identifier, advanced to `now`."""
        try:
            replication = find(self._replications, spec)
        except LookupError as err:
            raise AdminError(str(err), 404) from None
        except ValueError as err:
            raise AdminError(str(err)) from None
        replication.advance(now)
        return replication

    # Every admin method takes the decoded JSON request body and returns the JSON answer.

    @staticmethod
    def admin_health(_spec):
        return {"ok": True}

    def admin_reset(self, _spec):
        self.reset()
        return {"ok": True}

    def admin_requests(self, _spec):
        return {"requests": self.requests.entries()}

    def admin_clear_requests(self, _spec):
        self.requests.clear()
        return {"requests": []}

    def admin_faults(self, _spec):
        return {"faults": self.faults.pending()}

    def admin_clear_faults(self, _spec):
        self.faults.clear()
        return {"faults": []}

    def admin_put_replication(self, spec):
        """One entry (answers its Replication shape), a fleet entry with `count`, or
        {"replications": [entries]} (both answer the ARNs and identifiers created)."""
        fleet = isinstance(spec, dict) and ("replications" in spec or any(k in spec for k in ("count", "first")))
        entries = spec.get("replications") if isinstance(spec, dict) and "replications" in spec else [spec]
        if not isinstance(entries, list):
            raise AdminError("replications must be a list of entries")
        with self._lock:
            now = self.clock.emulated()
            built = []
            try:
                for index, entry in enumerate(entries):
                    try:
                        built += [build_replication(item, now, self.seed.account, self.seed.region)
                                  for item in expand(entry)]
                    except ValueError as err:
                        raise ValueError(f"replications[{index}]: {err}" if len(entries) > 1 else str(err)) from None
            except ValueError as err:
                raise AdminError(str(err)) from None
            for replication in built:
                self._put(replication)
            if not fleet:
                return built[0].describe(now)
            return {"count": len(built), "replications": [
                {"arn": r.config.arn, "identifier": r.config.identifier} for r in built]}

    def admin_delete_replications(self, spec):
        with self._lock:
            now = self.clock.emulated()
            if isinstance(spec, dict) and ("arn" in spec or "identifier" in spec):
                arns = [self._named(spec, now).config.arn]
            else:
                arns = list(self._order)
            for arn in arns:
                self._remove(arn)
            return {"deleted": len(arns)}

    def admin_replications(self, _spec):
        with self._lock:
            now = self.clock.emulated()
            replications = [self._replications[arn] for arn in self._order]
            for replication in replications:
                replication.advance(now)
            return {"emulated_now": round(now, 3), "replications": [r.describe(now) for r in replications]}

    def _arm(self, spec, arm):
        with self._lock:
            now = self.clock.emulated()
            replication = self._named(spec, now)
            try:
                arm(replication, {k: v for k, v in spec.items() if k not in ("arn", "identifier")}, now)
            except ValueError as err:
                raise AdminError(str(err)) from None
            replication.advance(now)
            return replication.describe(now)

    def admin_stop(self, spec):
        return self._arm(spec, arm_stop)

    def admin_table_error(self, spec):
        return self._arm(spec, arm_table_error)

    def admin_assessment(self, spec):
        with self._lock:
            replication = self._named(spec, self.clock.emulated())
            result = spec.get("result")
            if result not in ASSESSMENT_RESULTS:
                raise AdminError(f"result must be one of {', '.join(ASSESSMENT_RESULTS)}")
            replication.next_assessment_result = result
            return {"arn": replication.config.arn, "next_assessment_result": result}

    def admin_clock(self, spec):
        if not isinstance(spec, dict):
            raise AdminError("expected a JSON object")
        skew, advance = spec.get("skew"), spec.get("advance")
        for name, value in (("skew", skew), ("advance", advance)):
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise AdminError(f"{name} must be a number of seconds")
        if advance is not None and advance < 0:
            raise AdminError("advance must be >= 0: emulated time never goes back")
        if skew is not None:
            self.clock.skew = float(skew)
        if advance is not None:
            self.clock.advance(float(advance))
        return {"skew": self.clock.skew, "now": round(self.clock.signing_now(), 3),
                "emulated_now": round(self.clock.emulated(), 3)}

    def admin_add_fault(self, spec):
        try:
            self.faults.add(Fault.from_request(spec))
        except ValueError as err:
            raise AdminError(str(err)) from None
        return {"faults": self.faults.pending()}
