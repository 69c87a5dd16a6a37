"""Serverless replication configs and the state machine of their replication.

State is advanced lazily: every read or change first calls `advance(now)`, which fires,
in time order, every event (end of a phase, end of the full load, an assessment that
fails the start, an injected stop, end of deprovisioning) that is due by `now`.
All times are emulated epoch seconds.
"""

import base64
import hashlib
import json
from dataclasses import dataclass, field

from . import mappings

MINUTE = 60.0

# Phases a start goes through before `running`, with their emulated durations.
STARTING_PHASES = (
    ("initializing", 3.5 * MINUTE),
    ("preparing_metadata_resources", 17.5 * MINUTE),
    ("testing_connection", 3.5 * MINUTE),
    ("fetching_metadata", 4 * MINUTE),
    ("calculating_capacity", 1.5 * MINUTE),
    ("provisioning_capacity", 17.5 * MINUTE),
    ("replication_starting", 1.5 * MINUTE),
)
STARTING_STATUSES = tuple(name for name, _ in STARTING_PHASES)
STARTABLE_STATUSES = ("created", "stopped", "failed")
STOPPING_SECONDS = 2 * MINUTE
DEPROVISION_SECONDS = 10 * MINUTE

ASSESSMENT_STAGES = (("starting", 1 * MINUTE), ("provisioning", 2 * MINUTE), ("running", 5 * MINUTE))
ASSESSMENT_RESULTS = ("passed", "warning", "failed")
DEFAULT_ASSESSMENT_COUNT = 8

REPLICATION_TYPES = ("full-load", "cdc", "full-load-and-cdc")
START_TYPES = ("start-replication", "resume-processing", "reload-target")
TABLES_LOADING_IN_PARALLEL = 2
CDC_EVENTS_PER_SECOND = 10

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
DEFAULT_FATAL_MESSAGE = "Last Error Fatal error has occurred. Stop Reason FATAL_ERROR Error Level FATAL"

SPEC_FIELDS = {
    "arn", "identifier", "type", "tables", "source_endpoint_arn", "target_endpoint_arn",
    "capacity_units", "max_capacity_units", "compute_config", "table_mappings", "replication_settings",
    "supplemental_settings", "full_load_minutes", "status", "stop_reason", "full_load_progress",
    "stop", "table_errors",
}
DCU_VALUES = (1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 384)
DEFAULT_SETTINGS = json.dumps({"Logging": {"EnableLogging": True}})

# TableState values, as DMS spells them.
BEFORE_LOAD = "Before load"
LOADING = "Full load"
COMPLETED = "Table completed"
CANCELLED = "Table cancelled"
ERRORED = "Table error"
RELOADING = "Table is being reloaded"
TABLE_STATES = (BEFORE_LOAD, LOADING, COMPLETED, CANCELLED, ERRORED, RELOADING)
# How each TableState counts in ReplicationStats.
STATE_COUNTERS = {BEFORE_LOAD: "TablesQueued", CANCELLED: "TablesQueued", LOADING: "TablesLoading",
                  RELOADING: "TablesLoading", COMPLETED: "TablesLoaded", ERRORED: "TablesErrored"}
RELOAD_OPTIONS = ("data-reload", "validate-only")
# Shares of the change events of a table.
CDC_SHARES = (("Inserts", 0.6), ("Updates", 0.3), ("Deletes", 0.1))


class StateError(Exception):
    """A request the replication's current state refuses (InvalidResourceStateFault)."""


def resource_id(text):
    """A stable upper-case resource id, in the style of DMS ids, derived from `text`."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii")[:26]


def partition_of(region):
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def split_arn(arn, resource_type):
    """(partition, region, account, name) of a DMS ARN of that resource type, checked as
    lua-dms checks ARNs; raises ValueError otherwise."""
    what = resource_type.replace("-", " ")
    parts = arn.split(":", 5) if isinstance(arn, str) else []
    if len(parts) != 6 or parts[0] != "arn" or any(ord(c) <= 32 or ord(c) == 127 for c in arn):
        raise ValueError(f"not a {what} ARN: {arn!r}")
    _, partition, service, region, account, resource = parts
    kind, _, name = resource.partition(":")
    if not partition or any(c not in "abcdefghijklmnopqrstuvwxyz-" for c in partition) or service != "dms" \
            or not region or len(account) != 12 or not account.isdigit() or kind != resource_type or not name:
        raise ValueError(f"not a {what} ARN: {arn!r}")
    return partition, region, account, name


def checkpoint(position):
    return f"checkpoint:V1#1#{position:016d}#0#0#*#0#0"


def stop_reason(reason):
    """`Stop Reason <REASON>`, accepting a reason given with or without the prefix."""
    prefix = "Stop Reason "
    return reason if reason.startswith(prefix) else prefix + reason


def _timestamp(value):
    return round(value, 3)


def _number(spec, name, default, minimum):
    value = spec.get(name, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be a number >= {minimum}")
    return value


def _string(spec, name, default):
    value = spec.get(name, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _json_text(spec, name, default):
    """A member given as a JSON object or as its text; returned as text."""
    value = spec.get(name)
    if value is None:
        return default
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, str):
        try:
            if isinstance(json.loads(value), dict):
                return value
        except (ValueError, RecursionError):
            pass
    raise ValueError(f"{name} must be a JSON object (or its text)")


def parse_table_name(text):
    """`schema.table` -> (schema, table); raises ValueError."""
    if not isinstance(text, str):
        raise ValueError("a table is named \"schema.table\"")
    schema, dot, table = text.partition(".")
    if not dot or not schema or not table:
        raise ValueError(f"a table is named \"schema.table\", not {text!r}")
    return schema, table


def validation_enabled(settings_text):
    try:
        settings = json.loads(settings_text)
    except (ValueError, RecursionError):
        return False
    validation = settings.get("ValidationSettings") if isinstance(settings, dict) else None
    return isinstance(validation, dict) and validation.get("EnableValidation") is True


@dataclass
class Config:
    arn: str
    identifier: str
    type: str
    source_endpoint_arn: str
    target_endpoint_arn: str
    compute: dict
    capacity_units: int
    full_load_seconds: float
    created: float
    table_mappings: str = field(default_factory=mappings.include_all)
    replication_settings: str = DEFAULT_SETTINGS
    supplemental_settings: str = None
    seeded_tables: list = None       # (schema, table) pairs from a seed or admin entry
    table_count: int = mappings.DEFAULT_TABLE_COUNT
    updated: float = None
    tables: list = field(init=False)  # (schema, table) pairs loaded, in load order
    validation: bool = field(init=False)

    def __post_init__(self):
        if self.updated is None:
            self.updated = self.created
        self.refresh()

    def refresh(self):
        """Recompute what follows from the mappings and settings."""
        self.tables = mappings.select(mappings.parse(self.table_mappings), self.seeded_tables, self.table_count)
        self.validation = validation_enabled(self.replication_settings)

    @property
    def account(self):
        return self.arn.split(":")[4]

    @property
    def region(self):
        return self.arn.split(":")[3]

    @property
    def max_capacity_units(self):
        return self.compute.get("MaxCapacityUnits")

    @classmethod
    def from_spec(cls, spec, now, account=DEFAULT_ACCOUNT, region=DEFAULT_REGION):
        """Build a config from a seed or admin entry; raises ValueError when it is invalid."""
        if not isinstance(spec, dict):
            raise ValueError("a replication entry must be a JSON object")
        unknown = sorted(set(spec) - SPEC_FIELDS)
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(unknown)}")
        if spec.get("arn") is None and spec.get("identifier") is None:
            raise ValueError("arn or identifier is required")
        if spec.get("arn") is None:
            identifier = _string(spec, "identifier", None)
            arn = f"arn:{partition_of(region)}:dms:{region}:{account}:replication-config:{resource_id(identifier)}"
        else:
            arn = _string(spec, "arn", None)
        name = split_arn(arn, "replication-config")[3]
        identifier = _string(spec, "identifier", name)
        kind = spec.get("type", "full-load-and-cdc")
        if kind not in REPLICATION_TYPES:
            raise ValueError(f"type must be one of {', '.join(REPLICATION_TYPES)}")
        endpoint = ":".join(arn.split(":")[:5] + ["endpoint", ""])
        source = _string(spec, "source_endpoint_arn", endpoint + resource_id(arn + "#source"))
        target = _string(spec, "target_endpoint_arn", endpoint + resource_id(arn + "#target"))
        for value in (source, target):
            split_arn(value, "endpoint")
        compute = spec.get("compute_config", {"MaxCapacityUnits": int(_number(spec, "max_capacity_units", 16, 1)),
                                               "MultiAZ": False})
        if not isinstance(compute, dict) or not isinstance(compute.get("MaxCapacityUnits"), int):
            raise ValueError("compute_config must be a ComputeConfig object with MaxCapacityUnits")
        tables = spec.get("tables", mappings.DEFAULT_TABLE_COUNT)
        seeded, count = None, mappings.DEFAULT_TABLE_COUNT
        if isinstance(tables, list):
            if not tables:
                raise ValueError("tables must not be an empty list")
            seeded = [parse_table_name(item) for item in tables]
        else:
            count = int(_number(spec, "tables", mappings.DEFAULT_TABLE_COUNT, 1))
        table_mappings = _json_text(spec, "table_mappings", None) or mappings.include_all()
        mappings.parse(table_mappings)
        return cls(
            arn=arn,
            identifier=identifier,
            type=kind,
            source_endpoint_arn=source,
            target_endpoint_arn=target,
            compute=dict(compute),
            capacity_units=int(_number(spec, "capacity_units", 4, 1)),
            full_load_seconds=_number(spec, "full_load_minutes", 20, 0.01) * MINUTE,
            created=now,
            table_mappings=table_mappings,
            replication_settings=_json_text(spec, "replication_settings", DEFAULT_SETTINGS),
            supplemental_settings=_json_text(spec, "supplemental_settings", None),
            seeded_tables=seeded,
            table_count=count,
        )

    def describe(self):
        """The ReplicationConfig shape."""
        item = {
            "ReplicationConfigIdentifier": self.identifier,
            "ReplicationConfigArn": self.arn,
            "SourceEndpointArn": self.source_endpoint_arn,
            "TargetEndpointArn": self.target_endpoint_arn,
            "ReplicationType": self.type,
            "ComputeConfig": json.loads(json.dumps(self.compute)),
            "ReplicationSettings": self.replication_settings,
            "TableMappings": self.table_mappings,
            "ReplicationConfigCreateTime": _timestamp(self.created),
            "ReplicationConfigUpdateTime": _timestamp(self.updated),
            "IsReadOnly": False,
        }
        if self.supplemental_settings is not None:
            item["SupplementalSettings"] = self.supplemental_settings
        return item


class Assessment:
    """One premigration assessment run; its status follows from the time alone."""

    def __init__(self, config, created, settings, result):
        self.arn = ":".join(config.arn.split(":")[:5] + ["assessment-run", resource_id(config.arn + repr(created))])
        self.created = created
        self.result = result
        self.cancelled_at = None
        fail_on = settings.get("FailOnAssessmentFailure", True)
        self.fail_on_failure = fail_on if isinstance(fail_on, bool) else str(fail_on).lower() != "false"
        include = str(settings.get("IncludeOnly", "")).split()
        self.count = len(include) or DEFAULT_ASSESSMENT_COUNT
        self.bucket = f"dms-serverless-premigration-results-{resource_id(config.account).lower()[:12]}"
        self.settings = {key: settings[key] for key in
                         ("ResultLocationFolder", "ResultEncryptionMode", "ResultKmsKeyArn") if key in settings}

    @property
    def finish(self):
        return self.created + sum(seconds for _, seconds in ASSESSMENT_STAGES)

    @property
    def blocks_start(self):
        return self.fail_on_failure and self.result == "failed" and self.cancelled_at is None

    def cancel(self, when):
        if self.cancelled_at is None and when < self.finish:
            self.cancelled_at = when

    def status(self, now):
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return "cancelling"
        end = self.created
        for name, seconds in ASSESSMENT_STAGES:
            end += seconds
            if now < end:
                return name
        return self.result

    def _completed(self, now):
        if self.cancelled_at is not None:
            now = min(now, self.cancelled_at)
        running_for = now - (self.finish - ASSESSMENT_STAGES[-1][1])
        fraction = min(1.0, max(0.0, running_for / ASSESSMENT_STAGES[-1][1]))
        return int(fraction * self.count)

    def describe(self, now):
        status = self.status(now)
        item = {
            "PremigrationAssessmentRunArn": self.arn,
            "FailOnAssessmentFailure": self.fail_on_failure,
            "Status": status,
            "PremigrationAssessmentRunCreationDate": _timestamp(self.created),
            "AssessmentProgress": {
                "IndividualAssessmentCount": self.count,
                "IndividualAssessmentCompletedCount": self._completed(now),
            },
            "ResultLocationBucket": self.bucket,
            **self.settings,
        }
        if status in ASSESSMENT_RESULTS:
            others = 0 if status == "passed" else 1
            item["ResultStatistic"] = {
                "Passed": self.count - others,
                "Failed": others if status == "failed" else 0,
                "Warning": others if status == "warning" else 0,
                "Error": 0, "Cancelled": 0, "Skipped": 0,
            }
            if status == "failed":
                item["LastFailureMessage"] = "Individual assessment 'unsupported-data-types-in-source' failed"
        return item


class Table:
    """One table of a replication: where it is in the load order and what happened to it
    in the current run (an error, a reload). Its state otherwise follows from the
    replication's full load progress."""

    __slots__ = ("schema", "name", "slot", "rows", "weight", "error_at", "error_fraction", "error_events",
                 "reload_start", "reload_end", "reload_cancelled", "reload_fraction",
                 "validate_start", "validate_end")

    def __init__(self, schema, name, slot):
        self.schema = schema
        self.name = name
        self.slot = slot
        self.rows = mappings.table_rows(schema, name)
        self.weight = mappings.table_weight(schema, name)
        self.reset()

    @property
    def key(self):
        return f"{self.schema}.{self.name}"

    def reset(self):
        self.error_at = None             # when the table went into error in this run
        self.error_fraction = 0.0        # share of its rows loaded when it did
        self.error_events = 0.0          # change events it had received when it did
        self.reload_start = self.reload_end = None   # the latest data reload of this run
        self.reload_cancelled = False    # that reload was cut short by the end of the run
        self.reload_fraction = 0.0       # share loaded when it was cut short
        self.validate_start = self.validate_end = None


class Replication:
    """The serverless replication of one config."""

    def __init__(self, config):
        self.config = config
        self.status = "created"
        self.status_since = config.created
        self.updated = config.created
        self.phase_end = None            # end of the current starting phase or of `stopping`
        self.has_run = False
        self.start_type = None
        self.cdc_request = {}            # CdcStartTime / CdcStartPosition / CdcStopPosition echoed back
        self.stop_reason = None
        self.failure_messages = []
        self.start_date = self.fresh_start_date = self.stop_date = None
        self.full_load_start = self.full_load_finish = None
        self.full_load_done = 0.0        # fraction loaded as of `full_load_mark`
        self.full_load_mark = None       # when the full load (re)started; None when not loading
        self.cdc_position = None         # change position as of `cdc_mark`; None before any CDC
        self.cdc_mark = None             # when CDC (re)started; None when not capturing
        self.provision_state = None
        self.provisioned_units = 0
        self.date_provisioned = None
        self.deprovision_end = None
        self.last_stop_time = None
        self.assessment = None           # the assessment of the current run, if any
        self.assessments = []            # every assessment run, newest first
        self.next_assessment_result = None
        self.injected_stop = None
        self.armed_table_errors = []     # table errors that fire once running (see arm_table_error)
        self.load_segments = []          # (time, progress) at each (re)start of the full load of this run
        self.tables = []
        self.table_index = {}
        self.rebuild_tables()
        # the Replication shape just before the last StartReplication or StopReplication
        # that was applied (answered by a `stale` DescribeReplications); None before any
        self.view_before_request = None

    # -- events ----------------------------------------------------------------------------

    def advance(self, now):
        while True:
            due = self._next_event()
            if due is None or due[0] > now:
                return
            when, fire = due
            fire(when)

    def _next_event(self):
        """The earliest pending (time, action); on a tie the first listed wins."""
        events = []
        if self.status in STARTING_STATUSES and self.assessment is not None and self.assessment.blocks_start:
            events.append((self.assessment.finish, self._fail_assessment))
        if self.phase_end is not None:
            events.append((self.phase_end, self._end_phase))
        injected = self._injected_stop_time()
        if injected is not None:
            events.append((injected, self._fire_injected_stop))
        for armed in self.armed_table_errors:
            due = self._table_error_time(armed)
            if due is not None:
                events.append((due, lambda when, armed=armed: self._fire_table_error(when, armed)))
        if self.full_load_mark is not None:
            remaining = (1.0 - self.full_load_done) * self.config.full_load_seconds
            events.append((self.full_load_mark + remaining, self._finish_full_load))
        if self.provision_state == "deprovisioning":
            events.append((self.deprovision_end, self._finish_deprovisioning))
        return min(events, key=lambda event: event[0]) if events else None

    def _set_status(self, status, when):
        self.status = status
        self.status_since = when
        self.updated = when

    def _end_phase(self, when):
        if self.status == "stopping":
            self._end_run(when, "stopped", "NORMAL")
            return
        index = STARTING_STATUSES.index(self.status) + 1
        if index == len(STARTING_PHASES):
            self.phase_end = None
            self._set_status("running", when)
            self._begin_work(when)
            return
        name, seconds = STARTING_PHASES[index]
        self._set_status(name, when)
        self.phase_end = when + seconds
        if name == "provisioning_capacity":
            self.provision_state = "provisioning"
            self.provisioned_units = 0
        elif name == "replication_starting":
            self.provision_state = "provisioned"
            self.provisioned_units = self.config.capacity_units
            self.date_provisioned = when

    def _begin_work(self, when):
        if self.config.type == "cdc" or self.full_load_done >= 1.0:
            self._begin_cdc(when)
        else:
            self.full_load_mark = when
            self.load_segments.append((when, self.full_load_done))
            if self.full_load_start is None:
                self.full_load_start = when
        for table in self.tables:        # reloads cut short by the end of the last run go on
            if table.reload_cancelled:
                table.reload_start, table.reload_end = when, when + self._table_load_seconds()
                table.reload_cancelled = False

    def _begin_cdc(self, when):
        if self.cdc_position is None:
            self.cdc_position = 0.0
        self.cdc_mark = when

    def _finish_full_load(self, when):
        self.full_load_done = 1.0
        self.full_load_mark = None
        self.full_load_finish = when
        self.updated = when
        if self.config.type == "full-load":
            self._end_run(when, "stopped", "FULL_LOAD_ONLY_FINISHED")
        else:
            self._begin_cdc(when)

    def _fail_assessment(self, when):
        self._end_run(when, "failed", "FATAL_ERROR", [
            f"Premigration assessment run {self.assessment.arn} failed and "
            "FailOnAssessmentFailure is set: the replication was not started.",
        ])

    def _injected_stop_time(self):
        if self.injected_stop is None or self.status != "running":
            return None
        earliest = max(self.injected_stop["armed_at"], self.status_since)
        at_progress = self.injected_stop["at_progress"]
        if at_progress is None or self.full_load_mark is None:
            return earliest
        reached = self.full_load_mark + (at_progress / 100.0 - self.full_load_done) * self.config.full_load_seconds
        return max(earliest, reached)

    def _fire_injected_stop(self, when):
        injected, self.injected_stop = self.injected_stop, None
        reason = injected["reason"]
        if reason == "FATAL_ERROR":
            self._end_run(when, "failed", reason, [injected["message"] or DEFAULT_FATAL_MESSAGE])
        else:
            self._end_run(when, "stopped", reason, [injected["message"]] if injected["message"] else [])

    def _table_error_time(self, armed):
        if self.status != "running":
            return None
        earliest = max(armed["armed_at"], self.status_since)
        if self.full_load_mark is None:
            return earliest
        at = armed["at_progress"]
        if at is None:
            table = self.table_index[armed["table"]]
            start, end = self._window(table.slot)
            at = (start + end) / 2.0
        reached = self.full_load_mark + (at - self.full_load_done) * self.config.full_load_seconds
        return max(earliest, reached)

    def _fire_table_error(self, when, armed):
        self.armed_table_errors.remove(armed)
        table = self.table_index[armed["table"]]
        table.error_fraction = self._loaded_fraction(table, when, self._full_load_progress(when))
        table.error_events = self._table_events(table, self._cdc_position(when))
        table.error_at = when
        table.reload_start = table.reload_end = None
        table.reload_cancelled = False

    def _finish_deprovisioning(self, when):
        self.provision_state = "deprovisioned"
        self.provisioned_units = 0
        self.updated = when

    def _halt(self, when):
        """Freeze the work of the run at `when`."""
        self.full_load_done = self._full_load_progress(when)
        self.full_load_mark = None
        self.cdc_position = self._cdc_position(when)
        self.cdc_mark = None
        self.phase_end = None
        if self.assessment is not None:
            self.assessment.cancel(when)
        for table in self.tables:
            if table.reload_start is not None and not table.reload_cancelled and when < table.reload_end:
                table.reload_fraction = self._loaded_fraction(table, when, self.full_load_done)
                table.reload_cancelled = True

    def _end_run(self, when, status, reason, failure_messages=()):
        self._halt(when)
        self._set_status(status, when)
        self.stop_reason = stop_reason(reason)
        self.failure_messages = list(failure_messages)
        self.stop_date = self.last_stop_time = when
        self.provision_state = "deprovisioning"
        self.deprovision_end = when + DEPROVISION_SECONDS

    def _full_load_progress(self, now):
        if self.full_load_mark is None:
            return self.full_load_done
        return min(1.0, self.full_load_done + (now - self.full_load_mark) / self.config.full_load_seconds)

    def _cdc_position(self, now):
        if self.cdc_mark is None:
            return self.cdc_position
        return self.cdc_position + (now - self.cdc_mark) * CDC_EVENTS_PER_SECOND

    # -- requests --------------------------------------------------------------------------

    def start(self, now, start_type, assessment_settings=None, cdc_request=None):
        """StartReplication; the caller has validated the parameters and advanced to `now`."""
        state = self.status.upper()
        if self.status not in STARTABLE_STATUSES:
            raise StateError(f"Replication is in {state} state and cannot start")
        if self.provision_state == "deprovisioning":
            raise StateError("Replication capacity is in DEPROVISIONING state and cannot start")
        if start_type == "resume-processing" and self.config.type == "full-load":
            raise StateError("Replication of type full-load cannot resume processing; "
                             "use start-replication or reload-target")
        if not self.has_run and start_type != "start-replication":
            raise StateError(f"Replication is in {state} state and cannot start with {start_type}; "
                             "the first run must use start-replication")
        if start_type != "resume-processing":
            self.full_load_done = 0.0
            self.full_load_start = self.full_load_finish = None
            self.cdc_position = None
            self.fresh_start_date = now
            self.load_segments = []
            for table in self.tables:
                table.reset()
        self.has_run = True
        self.start_type = start_type
        self.cdc_request = dict(cdc_request or {})
        self.stop_reason = None
        self.failure_messages = []
        self.start_date = now
        self.stop_date = None
        name, seconds = STARTING_PHASES[0]
        self._set_status(name, now)
        self.phase_end = now + seconds
        self.assessment = None
        if assessment_settings is not None:
            result = self.next_assessment_result or "passed"
            self.next_assessment_result = None
            self.assessment = Assessment(self.config, now, assessment_settings, result)
            self.assessments.insert(0, self.assessment)

    def stop(self, now):
        """StopReplication; the caller has advanced to `now`."""
        if self.status != "running" and self.status not in STARTING_STATUSES:
            raise StateError(f"Replication is in {self.status.upper()} state and cannot be stopped")
        self._halt(now)
        self._set_status("stopping", now)
        self.phase_end = now + STOPPING_SECONDS

    def inject_stop(self, now, reason, at_progress=None, message=None):
        """Arm a stop that fires once the replication runs (and has loaded `at_progress` %)."""
        self.injected_stop = {"reason": reason.removeprefix("Stop Reason "), "at_progress": at_progress,
                              "message": message, "armed_at": now}

    def seed_state(self, now, status, reason=None, full_load_progress=None):
        """Put a new replication straight into `status` (an admin or seed shortcut)."""
        if status == "running":
            self.start(now - sum(seconds for _, seconds in STARTING_PHASES), "start-replication")
            self.advance(now)
            return
        if status != "created":
            progress = 100 if full_load_progress is None else full_load_progress
            self.has_run = True
            self.start_type = "start-replication"
            self.start_date = self.fresh_start_date = now
            self.full_load_done = progress / 100.0
            if self.config.type != "full-load" and self.full_load_done >= 1.0:
                self.cdc_position = 0.0
            if self.config.type != "cdc" and progress > 0:
                # when the tables of that earlier run loaded
                self.load_segments = [(now - self.full_load_done * self.config.full_load_seconds, 0.0)]
            default_reason = "FATAL_ERROR" if status == "failed" else "NORMAL"
            messages = [DEFAULT_FATAL_MESSAGE] if status == "failed" else []
            self._end_run(now, status, reason or default_reason, messages)
            self._finish_deprovisioning(now)
            self.deprovision_end = now

    def rebuild_tables(self):
        """The table list anew from the config (after a change of its mappings)."""
        self.tables = [Table(schema, name, slot) for slot, (schema, name) in enumerate(self.config.tables)]
        self.table_index = {table.key: table for table in self.tables}
        self.tables_sorted = sorted(self.tables, key=lambda table: (table.schema, table.name))
        self.total_weight = sum(table.weight for table in self.tables) or 1
        self.armed_table_errors = [armed for armed in self.armed_table_errors if armed["table"] in self.table_index]

    def arm_table_error(self, now, table, at_progress=None):
        """Arm an error of the table `schema.table` that fires once the replication runs and,
        with `at_progress`, once its full load reached that percentage (else halfway through
        the table's own load); raises KeyError for a table the replication does not have."""
        if table not in self.table_index:
            raise KeyError(table)
        self.armed_table_errors.append({"table": table, "armed_at": now,
                                        "at_progress": None if at_progress is None else at_progress / 100.0})

    def reload_tables(self, now, keys, option):
        """ReloadReplicationTables of the tables `keys` (`schema.table`); raises StateError
        unless running, then KeyError with the keys of unknown tables. The caller has
        advanced to `now`."""
        if self.status != "running":
            raise StateError(f"Replication is in {self.status.upper()} state; tables can be reloaded "
                             "only while it is RUNNING")
        unknown = [key for key in keys if key not in self.table_index]
        if unknown:
            raise KeyError(unknown)
        seconds = self._table_load_seconds()
        for key in keys:
            table = self.table_index[key]
            if option == "validate-only":
                if self.config.validation:
                    table.validate_start, table.validate_end = now, now + seconds
                continue
            table.error_at = None
            table.reload_start, table.reload_end = now, now + seconds
            table.reload_cancelled = False
            if self.config.validation:
                table.validate_start, table.validate_end = now, now + 2 * seconds

    # -- output ----------------------------------------------------------------------------

    def _window(self, slot):
        """The share of the full load during which the table in `slot` loads (2 load at a time)."""
        count = len(self.tables)
        return max(0.0, (slot - 1) / count), (slot + 1) / count

    def _table_load_seconds(self):
        count = max(1, len(self.tables))
        return max(1.0, self.config.full_load_seconds * TABLES_LOADING_IN_PARALLEL / count)

    def _loaded_slots(self, progress):
        count = len(self.tables)
        return count if progress >= 1.0 else int(progress * count)

    def _table_state(self, table, now, loaded):
        if table.error_at is not None:
            return ERRORED
        if table.reload_start is not None:
            if table.reload_cancelled:
                return CANCELLED
            return RELOADING if now < table.reload_end else COMPLETED
        if self.config.type == "cdc":
            return COMPLETED if self.cdc_position is not None else BEFORE_LOAD
        if table.slot < loaded:
            return COMPLETED
        if not self.load_segments or table.slot >= loaded + TABLES_LOADING_IN_PARALLEL:
            return BEFORE_LOAD
        return LOADING if self.full_load_mark is not None else CANCELLED

    def _loaded_fraction(self, table, now, progress):
        """The share of the table's rows loaded."""
        if table.error_at is not None:
            return table.error_fraction
        if table.reload_start is not None:
            if table.reload_cancelled:
                return table.reload_fraction
            span = table.reload_end - table.reload_start
            return min(1.0, max(0.0, (now - table.reload_start) / span))
        if self.config.type == "cdc":
            return 0.0
        start, end = self._window(table.slot)
        if progress >= end or progress >= 1.0:
            return 1.0
        return min(1.0, max(0.0, (progress - start) / (end - start))) if self.load_segments else 0.0

    def _time_at(self, progress):
        """When the full load of this run reached `progress`."""
        for when, done in reversed(self.load_segments):
            if done <= progress:
                return when + (progress - done) * self.config.full_load_seconds
        return self.load_segments[0][0] if self.load_segments else None

    def _table_events(self, table, position):
        return (position or 0.0) * table.weight / self.total_weight

    def _table_statistics(self, table, now, progress, loaded, state=None):
        """The TableStatistics shape of one table as of `now`."""
        state = state or self._table_state(table, now, loaded)
        fraction = self._loaded_fraction(table, now, progress)
        events = table.error_events if table.error_at is not None else self._table_events(
            table, self._cdc_position(now))
        item = {"SchemaName": table.schema, "TableName": table.name}
        for name, share in CDC_SHARES:
            item[name] = item["Applied" + name] = int(events * share)
        item.update(Ddls=0, AppliedDdls=0, FullLoadRows=0 if self.config.type == "cdc" else int(table.rows * fraction),
                    FullLoadCondtnlChkFailedRows=0, FullLoadErrorRows=0,
                    FullLoadReloaded=table.reload_start is not None)
        start = end = None
        if table.reload_start is not None:
            start = table.reload_start
            end = table.reload_end if state == COMPLETED else None
        elif self.config.type != "cdc" and self.load_segments:
            window_start, window_end = self._window(table.slot)
            if progress >= window_start:
                start = self._time_at(window_start)
            if state == COMPLETED:
                end = self._time_at(min(window_end, 1.0))
        if start is not None:
            item["FullLoadStartTime"] = _timestamp(start)
        if end is not None:
            item["FullLoadEndTime"] = _timestamp(end)
        changed = [when for when in (start, end, table.error_at) if when is not None and when <= now]
        if state == COMPLETED and self.cdc_mark is not None:
            changed.append(now)
        item["LastUpdateTime"] = _timestamp(max(changed, default=self.updated))
        item["TableState"] = state
        pending = 0
        if not self.config.validation:
            validation = "Not enabled"
        elif state == ERRORED:
            validation = "Table error"
        elif state == COMPLETED and not (table.validate_start is not None and now < table.validate_end):
            validation = "Validated"
        else:
            validation = "Pending records"
            pending = int(table.rows * fraction) if self.config.type != "cdc" else int(events)
        item.update(ValidationPendingRecords=pending, ValidationFailedRecords=0, ValidationSuspendedRecords=0,
                    ValidationState=validation)
        return item

    def table_statistics(self, now):
        """Every table's TableStatistics, ordered by schema and table name (the caller has
        advanced to `now`)."""
        progress = self._full_load_progress(now)
        loaded = self._loaded_slots(progress)
        return [self._table_statistics(table, now, progress, loaded) for table in self.tables_sorted]

    def _stats(self, now):
        progress = self._full_load_progress(now)
        stats = {"FullLoadProgressPercent": 0, "ElapsedTimeMillis": 0, "TablesLoaded": 0,
                 "TablesLoading": 0, "TablesQueued": 0, "TablesErrored": 0}
        loaded = self._loaded_slots(progress)
        for table in self.tables:
            stats[STATE_COUNTERS[self._table_state(table, now, loaded)]] += 1
        if self.config.type != "cdc":
            stats["FullLoadProgressPercent"] = int(progress * 100)
        if self.start_date is not None:
            end = self.stop_date if self.stop_date is not None else now
            stats["ElapsedTimeMillis"] = int((end - self.start_date) * 1000)
        for name, value in (("StartDate", self.start_date), ("FreshStartDate", self.fresh_start_date),
                            ("StopDate", self.stop_date), ("FullLoadStartDate", self.full_load_start),
                            ("FullLoadFinishDate", self.full_load_finish)):
            if value is not None:
                stats[name] = _timestamp(value)
        return stats

    def describe(self, now):
        """The Replication shape as of `now` (the caller has advanced to `now`)."""
        config = self.config
        item = {
            "ReplicationConfigIdentifier": config.identifier,
            "ReplicationConfigArn": config.arn,
            "SourceEndpointArn": config.source_endpoint_arn,
            "TargetEndpointArn": config.target_endpoint_arn,
            "ReplicationType": config.type,
            "Status": self.status,
            "ReplicationStats": self._stats(now),
            "ReplicationCreateTime": _timestamp(config.created),
            "ReplicationUpdateTime": _timestamp(self.updated),
            "IsReadOnly": False,
        }
        if self.provision_state is not None:
            provision = {"ProvisionState": self.provision_state,
                         "ProvisionedCapacityUnits": self.provisioned_units,
                         "IsNewProvisioningAvailable": False}
            if self.date_provisioned is not None:
                provision["DateProvisioned"] = _timestamp(self.date_provisioned)
            item["ProvisionData"] = provision
        if self.assessments:
            item["PremigrationAssessmentStatuses"] = [a.describe(now) for a in self.assessments]
        if self.stop_reason is not None:
            item["StopReason"] = self.stop_reason
        if self.failure_messages:
            item["FailureMessages"] = list(self.failure_messages)
        if self.start_type is not None:
            item["StartReplicationType"] = self.start_type
        item.update(self.cdc_request)
        position = self._cdc_position(now)
        if position is not None:
            item["RecoveryCheckpoint"] = checkpoint(int(position))
        if self.last_stop_time is not None:
            item["ReplicationLastStopTime"] = _timestamp(self.last_stop_time)
        if self.deprovision_end is not None:
            item["ReplicationDeprovisionTime"] = _timestamp(self.deprovision_end)
        return item
