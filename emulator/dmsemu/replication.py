"""Serverless replication configs and the state machine of their replication.

State is advanced lazily: every read or change first calls `advance(now)`, which fires,
in time order, every event (end of a phase, end of the full load, an assessment that
fails the start, an injected stop, end of deprovisioning) that is due by `now`.
All times are emulated epoch seconds.
"""

import base64
import hashlib
import json
from dataclasses import dataclass

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
    "capacity_units", "max_capacity_units", "full_load_minutes",
    "status", "stop_reason", "full_load_progress",
}


class StateError(Exception):
    """A request the replication's current state refuses (InvalidResourceStateFault)."""


def resource_id(text):
    """A stable upper-case resource id, in the style of DMS ids, derived from `text`."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii")[:26]


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


@dataclass
class Config:
    arn: str
    identifier: str
    type: str
    tables: int
    source_endpoint_arn: str
    target_endpoint_arn: str
    capacity_units: int
    max_capacity_units: int
    full_load_seconds: float
    created: float

    @property
    def account(self):
        return self.arn.split(":")[4]

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
            arn = f"arn:aws:dms:{region}:{account}:replication-config:{resource_id(identifier)}"
        else:
            arn = _string(spec, "arn", None)
        parts = arn.split(":")
        if len(parts) != 7 or parts[0] != "arn" or parts[2] != "dms" or parts[5] != "replication-config":
            raise ValueError(f"not a replication config ARN: {arn!r}")
        identifier = _string(spec, "identifier", parts[6])
        kind = spec.get("type", "full-load-and-cdc")
        if kind not in REPLICATION_TYPES:
            raise ValueError(f"type must be one of {', '.join(REPLICATION_TYPES)}")
        endpoint = ":".join(parts[:5] + ["endpoint", ""])
        return cls(
            arn=arn,
            identifier=identifier,
            type=kind,
            tables=int(_number(spec, "tables", 10, 1)),
            source_endpoint_arn=_string(spec, "source_endpoint_arn", endpoint + resource_id(arn + "#source")),
            target_endpoint_arn=_string(spec, "target_endpoint_arn", endpoint + resource_id(arn + "#target")),
            capacity_units=int(_number(spec, "capacity_units", 4, 1)),
            max_capacity_units=int(_number(spec, "max_capacity_units", 16, 1)),
            full_load_seconds=_number(spec, "full_load_minutes", 20, 0.01) * MINUTE,
            created=now,
        )

    def describe(self):
        """The ReplicationConfig shape."""
        return {
            "ReplicationConfigIdentifier": self.identifier,
            "ReplicationConfigArn": self.arn,
            "SourceEndpointArn": self.source_endpoint_arn,
            "TargetEndpointArn": self.target_endpoint_arn,
            "ReplicationType": self.type,
            "ComputeConfig": {"MaxCapacityUnits": self.max_capacity_units, "MultiAZ": False},
            "ReplicationSettings": json.dumps({"Logging": {"EnableLogging": True}}),
            "TableMappings": json.dumps({"rules": [{
                "rule-type": "selection", "rule-id": "1", "rule-name": "include-all",
                "object-locator": {"schema-name": "%", "table-name": "%"},
                "rule-action": "include",
            }]}),
            "ReplicationConfigCreateTime": _timestamp(self.created),
            "ReplicationConfigUpdateTime": _timestamp(self.created),
            "IsReadOnly": False,
        }


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
            if self.full_load_start is None:
                self.full_load_start = when

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
            default_reason = "FATAL_ERROR" if status == "failed" else "NORMAL"
            messages = [DEFAULT_FATAL_MESSAGE] if status == "failed" else []
            self._end_run(now, status, reason or default_reason, messages)
            self._finish_deprovisioning(now)
            self.deprovision_end = now

    # -- output ----------------------------------------------------------------------------

    def _stats(self, now):
        progress = self._full_load_progress(now)
        stats = {"FullLoadProgressPercent": 0, "ElapsedTimeMillis": 0, "TablesLoaded": 0,
                 "TablesLoading": 0, "TablesQueued": 0, "TablesErrored": 0}
        if self.config.type != "cdc":
            tables = self.config.tables
            loaded = tables if progress >= 1.0 else int(progress * tables)
            loading = min(TABLES_LOADING_IN_PARALLEL, tables - loaded) if self.full_load_mark is not None else 0
            stats.update(FullLoadProgressPercent=int(progress * 100), TablesLoaded=loaded,
                         TablesLoading=loading, TablesQueued=tables - loaded - loading)
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
