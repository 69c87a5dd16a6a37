"""The emulated DMS service: its clock, the replications, the operations and the admin API."""

import base64
import binascii
import json
import sys
import threading
import time
import traceback

from .faults import Fault, FaultQueue
from .replication import (
    ASSESSMENT_RESULTS, DEFAULT_ACCOUNT, DEFAULT_REGION, START_TYPES, Config, Replication, StateError,
)
from .sigv4 import Credentials

DEFAULT_CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SEED_STATUSES = ("created", "running", "stopped", "failed")
MIN_RECORDS, MAX_RECORDS = 20, 100
TIMESTAMP = "timestamp"
TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", TIMESTAMP: "a timestamp (epoch seconds)"}

# Input members of each operation with their JSON types, and the required ones.
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
    "DescribeReplications": {
        "handler": "_describe_replications",
        "members": {"Filters": list, "MaxRecords": int, "Marker": str},
        "required": (),
    },
    "DescribeReplicationConfigs": {
        "handler": "_describe_replication_configs",
        "members": {"Filters": list, "MaxRecords": int, "Marker": str},
        "required": (),
    },
}
FILTERS = {
    "replication-config-arn": lambda config: config.arn,
    "replication-config-id": lambda config: config.identifier,
}


class DmsError(Exception):
    """An error answer in the JSON 1.1 error shape."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def document(self):
        return {"__type": self.code, "message": self.message}


class AdminError(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.message = message
        self.status = status


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


def build_replication(spec, now, account, region):
    """A replication from a seed or admin entry; raises ValueError when the entry is invalid."""
    config = Config.from_spec(spec, now, account, region)
    status = spec.get("status", "created")
    if status not in SEED_STATUSES:
        raise ValueError(f"status must be one of {', '.join(SEED_STATUSES)}")
    reason = spec.get("stop_reason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError("stop_reason must be a string")
    progress = spec.get("full_load_progress")
    if progress is not None and (not isinstance(progress, (int, float)) or isinstance(progress, bool)
                                 or not 0 <= progress <= 100):
        raise ValueError("full_load_progress must be a number from 0 to 100")
    replication = Replication(config)
    replication.seed_state(now, status, reason, progress)
    return replication


class Seed:
    """The seed file: default account and region, credentials and replication entries."""

    FIELDS = {"account", "region", "keys", "replications"}

    def __init__(self, account=DEFAULT_ACCOUNT, region=DEFAULT_REGION, keys=(), replications=()):
        self.account = account
        self.region = region
        self.keys = list(keys)
        self.replications = list(replications)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the seed must be a JSON object")
        unknown = sorted(set(data) - cls.FIELDS)
        if unknown:
            raise ValueError(f"{path}: unknown field(s): {', '.join(unknown)}")
        for name, kind in (("account", str), ("region", str), ("keys", list), ("replications", list)):
            if name in data and not isinstance(data[name], kind):
                raise ValueError(f"{path}: {name} must be {TYPE_NAMES[kind]}")
        keys = []
        for item in data.get("keys", []):
            if not isinstance(item, dict) or not item.get("access_key") or not item.get("secret_key"):
                raise ValueError(f"{path}: each key needs access_key and secret_key")
            keys.append(Credentials(item["access_key"], item["secret_key"], item.get("session_token")))
        seed = cls(data.get("account", DEFAULT_ACCOUNT), data.get("region", DEFAULT_REGION),
                   keys, data.get("replications", []))
        for index, spec in enumerate(seed.replications):
            try:
                build_replication(spec, time.time(), seed.account, seed.region)
            except ValueError as err:
                raise ValueError(f"{path}: replications[{index}]: {err}") from None
        return seed


def _camel(name):
    return name[0].lower() + name[1:]


def _null_errors(paths):
    """The ValidationException AWS answers for missing required members."""
    count = len(paths)
    details = "; ".join(f"Value null at '{path}' failed to satisfy constraint: Member must not be null"
                        for path in paths)
    return DmsError("ValidationException", f"{count} validation error{'s' if count > 1 else ''} detected: {details}")


def _has_type(value, kind):
    if kind is TIMESTAMP:
        kind = (int, float)
    return isinstance(value, kind) and not isinstance(value, bool)


def _validate(operation, params):
    spec = OPERATIONS[operation]
    for name, kind in spec["members"].items():
        if params.get(name) is not None and not _has_type(params[name], kind):
            raise DmsError("SerializationException", f"{name} must be {TYPE_NAMES[kind]}")
    missing = [_camel(name) for name in spec["required"] if params.get(name) is None]
    if missing:
        raise _null_errors(missing)


def _encode_marker(arn):
    return base64.urlsafe_b64encode(arn.encode("utf-8")).decode("ascii")


def _decode_marker(marker):
    try:
        arn = base64.b64decode(marker.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError):
        arn = ""
    if not arn:
        raise DmsError("InvalidParameterValueException", f"Invalid Marker: {marker}")
    return arn


class Emulator:
    def __init__(self, clock, seed, auto_create=False):
        self.clock = clock
        self.seed = seed
        self.auto_create = auto_create
        self.faults = FaultQueue()
        self.requests = RequestLog()
        self._lock = threading.Lock()
        self._replications = {}
        self.reset()

    def reset(self):
        with self._lock:
            now = self.clock.emulated()
            self._replications = {}
            for spec in self.seed.replications:
                replication = build_replication(spec, now, self.seed.account, self.seed.region)
                self._replications[replication.config.arn] = replication
        self.faults.clear()
        self.requests.clear()
        self.clock.skew = 0.0

    # -- DMS operations ----------------------------------------------------------------------

    def handle(self, operation, body, stale=False):
        """Run one DMS call (`operation` is None when X-Amz-Target is missing);
        returns (HTTP status, JSON document), errors included. With `stale`, a
        DescribeReplications answers the views kept by the last start or stop."""
        try:
            if operation is None:
                raise DmsError("UnknownOperationException", "The X-Amz-Target header is missing")
            if operation not in OPERATIONS:
                raise DmsError("UnknownOperationException", f"Unknown operation: {operation}")
            try:
                params = json.loads(body.decode("utf-8")) if body.strip() else {}
            except (UnicodeError, ValueError):
                raise DmsError("SerializationException", "The request body is not valid JSON") from None
            if not isinstance(params, dict):
                raise DmsError("SerializationException", "The request body must be a JSON object")
            _validate(operation, params)
            method = getattr(self, OPERATIONS[operation]["handler"])
            extra = {"stale": True} if stale else {}
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
            self._replications[arn] = replication
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
            except ValueError:
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
        """The replications the filters select, paged; returns (page, next marker or None)."""
        selected = sorted(self._replications.values(), key=lambda r: r.config.arn)
        filters = params.get("Filters") or []
        for index, item in enumerate(filters, 1):
            if not isinstance(item, dict):
                raise DmsError("SerializationException", "Each filter must be an object")
            missing = [f"filters.{index}.member.{_camel(name)}" for name in ("Name", "Values")
                       if item.get(name) is None]
            if missing:
                raise _null_errors(missing)
            name, values = item["Name"], item["Values"]
            if not isinstance(name, str) or not isinstance(values, list) or \
                    not all(isinstance(value, str) for value in values):
                raise DmsError("SerializationException", "A filter has a Name string and a Values list of strings")
            if name not in FILTERS:
                raise DmsError("InvalidParameterValueException",
                               f"Invalid filter name: {name}. Valid names are {', '.join(FILTERS)}")
            selected = [r for r in selected if FILTERS[name](r.config) in values]
        max_records = params.get("MaxRecords", MAX_RECORDS)
        if not MIN_RECORDS <= max_records <= MAX_RECORDS:
            raise DmsError("InvalidParameterValueException",
                           f"MaxRecords must be between {MIN_RECORDS} and {MAX_RECORDS}")
        if params.get("Marker") is not None:
            after = _decode_marker(params["Marker"])
            selected = [r for r in selected if r.config.arn > after]
        if filters and not selected:
            raise DmsError("ResourceNotFoundFault", f"No {what} found matching the filters")
        page = selected[:max_records]
        for replication in page:
            replication.advance(now)
        marker = _encode_marker(page[-1].config.arn) if len(selected) > max_records else None
        return page, marker

    @staticmethod
    def _paged(key, items, marker):
        document = {key: items}
        if marker is not None:
            document["Marker"] = marker
        return document

    def _describe_replications(self, params, now, stale=False):
        page, marker = self._select(params, now, "replications")
        views = [r.view_before_request if stale and r.view_before_request is not None else r.describe(now)
                 for r in page]
        return self._paged("Replications", views, marker)

    def _describe_replication_configs(self, params, now):
        page, marker = self._select(params, now, "replication configs")
        return self._paged("ReplicationConfigs", [r.config.describe() for r in page], marker)

    # -- admin API ---------------------------------------------------------------------------

    def _known(self, spec, now):
        if not isinstance(spec, dict) or not isinstance(spec.get("arn"), str):
            raise AdminError("arn is required")
        replication = self._replications.get(spec["arn"])
        if replication is None:
            raise AdminError(f"unknown replication config {spec['arn']}", 404)
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
        with self._lock:
            now = self.clock.emulated()
            try:
                replication = build_replication(spec, now, self.seed.account, self.seed.region)
            except ValueError as err:
                raise AdminError(str(err)) from None
            self._replications[replication.config.arn] = replication
            return replication.describe(now)

    def admin_replications(self, _spec):
        with self._lock:
            now = self.clock.emulated()
            replications = sorted(self._replications.values(), key=lambda r: r.config.arn)
            for replication in replications:
                replication.advance(now)
            return {"emulated_now": round(now, 3), "replications": [r.describe(now) for r in replications]}

    def admin_stop(self, spec):
        with self._lock:
            now = self.clock.emulated()
            replication = self._known(spec, now)
            reason = spec.get("reason", "RECOVERABLE_ERROR")
            at_progress = spec.get("at_progress")
            message = spec.get("message")
            if not isinstance(reason, str) or not reason:
                raise AdminError("reason must be a string")
            if at_progress is not None and (not isinstance(at_progress, (int, float)) or
                                            isinstance(at_progress, bool) or not 0 <= at_progress <= 100):
                raise AdminError("at_progress must be a number from 0 to 100")
            if message is not None and not isinstance(message, str):
                raise AdminError("message must be a string")
            replication.inject_stop(now, reason, at_progress, message)
            replication.advance(now)
            return replication.describe(now)

    def admin_assessment(self, spec):
        with self._lock:
            now = self.clock.emulated()
            replication = self._known(spec, now)
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
