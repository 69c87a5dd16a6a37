"""Seed files and admin entries: replication configs one at a time or as fleets, and the
faults (stops, table errors) armed on them."""

import json
import re

from .replication import DEFAULT_ACCOUNT, DEFAULT_REGION, Config, Replication
from .sigv4 import Credentials

SEED_STATUSES = ("created", "running", "stopped", "failed")
FLEET_FIELDS = ("count", "first")
MAX_FLEET = 10000
TEMPLATE = re.compile(r"\{n(?::(0?)([1-9][0-9]?))?\}")
TYPE_NAMES = {str: "a string", list: "a list"}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fill(template, n):
    return TEMPLATE.sub(lambda m: f"{n:{m.group(1) or ''}{m.group(2) or ''}d}", template)


def expand(spec):
    """The entries one seed or admin entry stands for: itself, or with `count` (and
    `first`, default 1) that many entries whose `identifier` and `arn` have `{n}` (or
    `{n:03}`, zero-padded) replaced by first, first + 1, ..."""
    if not isinstance(spec, dict):
        raise ValueError("a replication entry must be a JSON object")
    if not any(name in spec for name in FLEET_FIELDS):
        return [spec]
    count, first = spec.get("count", 1), spec.get("first", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_FLEET:
        raise ValueError(f"count must be an integer from 1 to {MAX_FLEET}")
    if not isinstance(first, int) or isinstance(first, bool) or first < 0:
        raise ValueError("first must be an integer >= 0")
    template = {name: value for name, value in spec.items() if name not in FLEET_FIELDS}
    names = [name for name in ("identifier", "arn") if isinstance(template.get(name), str)]
    if count > 1 and not any(TEMPLATE.search(template[name]) for name in names):
        raise ValueError('with count, identifier (or arn) must contain {n} or {n:03}, e.g. "wave-{n:03}"')
    entries = []
    for n in range(first, first + count):
        entry = dict(template)
        for name in names:
            entry[name] = _fill(template[name], n)
        entries.append(entry)
    return entries


def arm_stop(replication, spec, now):
    """Arm a stop described by an admin or seed entry; raises ValueError."""
    if not isinstance(spec, dict):
        raise ValueError("a stop must be a JSON object")
    reason = spec.get("reason", "RECOVERABLE_ERROR")
    at_progress = spec.get("at_progress")
    message = spec.get("message")
    if not isinstance(reason, str) or not reason:
        raise ValueError("reason must be a string")
    if at_progress is not None and (not _is_number(at_progress) or not 0 <= at_progress <= 100):
        raise ValueError("at_progress must be a number from 0 to 100")
    if message is not None and not isinstance(message, str):
        raise ValueError("message must be a string")
    replication.inject_stop(now, reason, at_progress, message)


def arm_table_error(replication, spec, now):
    """Arm a table error described by an admin or seed entry; raises ValueError."""
    if not isinstance(spec, dict):
        raise ValueError("a table error must be a JSON object")
    table, at_progress = spec.get("table"), spec.get("at_progress")
    if not isinstance(table, str):
        raise ValueError('table ("schema.table") is required')
    if at_progress is not None and (not _is_number(at_progress) or not 0 <= at_progress <= 100):
        raise ValueError("at_progress must be a number from 0 to 100")
    try:
        replication.arm_table_error(now, table, at_progress)
    except KeyError:
        known = ", ".join(t.key for t in replication.tables[:20])
        raise ValueError(f"{replication.config.identifier} has no table {table} (its tables: {known}"
                         f"{', ...' if len(replication.tables) > 20 else ''})") from None


def build_replication(spec, now, account, region):
    """A replication from one (expanded) seed or admin entry; raises ValueError."""
    config = Config.from_spec(spec, now, account, region)
    status = spec.get("status", "created")
    if status not in SEED_STATUSES:
        raise ValueError(f"status must be one of {', '.join(SEED_STATUSES)}")
    reason = spec.get("stop_reason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError("stop_reason must be a string")
    progress = spec.get("full_load_progress")
    if progress is not None and (not _is_number(progress) or not 0 <= progress <= 100):
        raise ValueError("full_load_progress must be a number from 0 to 100")
    table_errors = spec.get("table_errors", [])
    if not isinstance(table_errors, list):
        raise ValueError("table_errors must be a list")
    replication = Replication(config)
    for item in table_errors:
        arm_table_error(replication, item, now)
    if spec.get("stop") is not None:
        arm_stop(replication, spec["stop"], now)
    replication.seed_state(now, status, reason, progress)
    return replication


def find(replications, spec):
    """The replication an admin or seed entry names by `arn` or `identifier`; raises
    LookupError when none (or, by identifier, more than one) does, ValueError when it names none."""
    if not isinstance(spec, dict):
        raise ValueError("expected a JSON object")
    arn, identifier = spec.get("arn"), spec.get("identifier")
    if isinstance(arn, str):
        if arn not in replications:
            raise LookupError(f"unknown replication config {arn}")
        return replications[arn]
    if not isinstance(identifier, str):
        raise ValueError("arn or identifier is required")
    found = [r for r in replications.values() if r.config.identifier == identifier]
    if len(found) != 1:
        raise LookupError(f"no replication config has the identifier {identifier}" if not found else
                          f"{len(found)} replication configs have the identifier {identifier}: give the arn")
    return found[0]


class Seed:
    """The seed file: default account and region, credentials, replication entries and
    the faults armed on named replications."""

    FIELDS = {"account", "region", "keys", "replications", "stops", "table_errors"}

    def __init__(self, account=DEFAULT_ACCOUNT, region=DEFAULT_REGION, keys=(), replications=(), stops=(),
                 table_errors=()):
        self.account = account
        self.region = region
        self.keys = list(keys)
        self.replications = list(replications)
        self.stops = list(stops)
        self.table_errors = list(table_errors)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the seed must be a JSON object")
        unknown = sorted(set(data) - cls.FIELDS)
        if unknown:
            raise ValueError(f"{path}: unknown field(s): {', '.join(unknown)}")
        for name, kind in (("account", str), ("region", str), ("keys", list), ("replications", list),
                           ("stops", list), ("table_errors", list)):
            if name in data and not isinstance(data[name], kind):
                raise ValueError(f"{path}: {name} must be {TYPE_NAMES[kind]}")
        keys = []
        for item in data.get("keys", []):
            if not isinstance(item, dict) or not item.get("access_key") or not item.get("secret_key"):
                raise ValueError(f"{path}: each key needs access_key and secret_key")
            keys.append(Credentials(item["access_key"], item["secret_key"], item.get("session_token")))
        seed = cls(data.get("account", DEFAULT_ACCOUNT), data.get("region", DEFAULT_REGION), keys,
                   data.get("replications", []), data.get("stops", []), data.get("table_errors", []))
        try:
            seed.build(0.0)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        return seed

    def build(self, now):
        """The seeded replications by config ARN, faults armed; raises ValueError."""
        replications = {}
        for index, spec in enumerate(self.replications):
            try:
                for entry in expand(spec):
                    replication = build_replication(entry, now, self.account, self.region)
                    replications[replication.config.arn] = replication
            except ValueError as err:
                raise ValueError(f"replications[{index}]: {err}") from None
        for name, arm in (("stops", arm_stop), ("table_errors", arm_table_error)):
            for index, spec in enumerate(getattr(self, name)):
                try:
                    replication = find(replications, spec)
                    arm(replication, {k: v for k, v in spec.items() if k not in ("arn", "identifier")}, now)
                    replication.advance(now)
                except (LookupError, ValueError) as err:
                    raise ValueError(f"{name}[{index}]: {err}") from None
        return replications
