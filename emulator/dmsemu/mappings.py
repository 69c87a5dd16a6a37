"""Table mappings (the JSON document of a config's `TableMappings`) and the tables they select.

Only selection rules decide which tables a replication loads: an `include` (or
`explicit`) rule naming a concrete schema and table selects that table; a rule with the
`%` wildcard selects the tables of the candidate list (a seeded list, else a default
set) that it matches; `exclude` rules remove what they match.
"""

import hashlib
import json
import re

DEFAULT_SCHEMA = "public"
DEFAULT_TABLE_NAMES = ("customers", "orders", "order_items", "products", "inventory",
                       "payments", "shipments", "suppliers", "invoices", "returns")
DEFAULT_TABLE_COUNT = 10
RULE_TYPES = ("selection", "transformation", "table-settings", "post-processing")
SELECTION_ACTIONS = ("include", "exclude", "explicit")
WILDCARD = "%"


class MappingError(ValueError):
    """An invalid TableMappings document; the message says why, as DMS would."""


def include_all():
    return json.dumps({"rules": [{
        "rule-type": "selection", "rule-id": "1", "rule-name": "include-all",
        "object-locator": {"schema-name": WILDCARD, "table-name": WILDCARD},
        "rule-action": "include",
    }]})


def _rule_error(rule_id, reason):
    return MappingError(f"Error in mapping rules. Rule with ruleId = {rule_id} failed validation. {reason}")


def parse(text):
    """The rules of a TableMappings string; raises MappingError when DMS would refuse it."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise MappingError("Invalid TableMappings: the value is not valid JSON") from None
    if not isinstance(document, dict):
        raise MappingError("Invalid TableMappings: the value must be a JSON object with a rules list")
    rules = document.get("rules")
    if not isinstance(rules, list) or not rules:
        raise MappingError("Invalid TableMappings: the rules list is missing or empty")
    selecting = False
    for index, rule in enumerate(rules, 1):
        if not isinstance(rule, dict):
            raise _rule_error(index, "A rule must be a JSON object.")
        rule_id = rule.get("rule-id", index)
        kind = rule.get("rule-type")
        if kind not in RULE_TYPES:
            raise _rule_error(rule_id, f"Invalid rule-type {kind!r}; valid values are {', '.join(RULE_TYPES)}.")
        if kind != "selection":
            continue
        locator = rule.get("object-locator")
        if not isinstance(locator, dict) or not isinstance(locator.get("schema-name"), str) \
                or not isinstance(locator.get("table-name"), str) \
                or not locator["schema-name"] or not locator["table-name"]:
            raise _rule_error(rule_id, "A selection rule needs an object-locator with schema-name and table-name.")
        action = rule.get("rule-action")
        if action not in SELECTION_ACTIONS:
            raise _rule_error(rule_id, f"Invalid rule-action {action!r}; valid values are "
                                       f"{', '.join(SELECTION_ACTIONS)}.")
        selecting = selecting or action != "exclude"
    if not selecting:
        raise MappingError("Invalid TableMappings: at least one selection rule must include tables")
    return rules


def _pattern(text):
    return re.compile(".*".join(re.escape(part) for part in text.split(WILDCARD)), re.DOTALL)


def _locator(rule):
    locator = rule["object-locator"]
    return locator["schema-name"], locator["table-name"]


def default_tables(count, schema=DEFAULT_SCHEMA):
    names = list(DEFAULT_TABLE_NAMES[:count])
    names += [f"table_{index:03d}" for index in range(len(names) + 1, count + 1)]
    return [(schema, name) for name in names]


def select(rules, seeded=None, count=DEFAULT_TABLE_COUNT):
    """The (schema, table) pairs the rules select, in rule order (the load order).

    `seeded` is the seeded table list (pairs) or None; without it the candidates for
    wildcard rules are `count` default tables in the schema of the first include rule
    that names one (`public` otherwise)."""
    selections = [rule for rule in rules if rule.get("rule-type") == "selection"]
    includes = [_locator(rule) for rule in selections if rule["rule-action"] != "exclude"]
    excludes = [(_pattern(schema), _pattern(table)) for schema, table in
                (_locator(rule) for rule in selections if rule["rule-action"] == "exclude")]
    wildcards = [(_pattern(schema), _pattern(table)) for schema, table in includes
                 if WILDCARD in schema or WILDCARD in table]
    tables = [(schema, table) for schema, table in includes if WILDCARD not in schema and WILDCARD not in table]
    if wildcards:
        if seeded is None:
            schema = next((s for s, _ in includes if WILDCARD not in s), DEFAULT_SCHEMA)
            seeded = default_tables(count, schema)
        tables += [(schema, table) for schema, table in seeded
                   if any(s.fullmatch(schema) and t.fullmatch(table) for s, t in wildcards)]
    chosen, seen = [], set()
    for schema, table in tables:
        if (schema, table) in seen:
            continue
        if any(s.fullmatch(schema) and t.fullmatch(table) for s, t in excludes):
            continue
        seen.add((schema, table))
        chosen.append((schema, table))
    return chosen


def table_rows(schema, table):
    """A stable row count for a table: 10,000 to 200,000."""
    digest = hashlib.sha256(f"{schema}.{table}".encode("utf-8")).digest()
    return 10_000 * (1 + digest[0] % 20)


def table_weight(schema, table):
    """A stable share (1..8) of the change events a table receives."""
    digest = hashlib.sha256(f"{schema}.{table}".encode("utf-8")).digest()
    return 1 + digest[1] % 8
