"""What every operation shares: error answers, JSON decoding, member checks, filters and markers."""

import base64
import binascii
import json

MAX_JSON_DEPTH = 100          # deeper request bodies are refused (no DMS input comes near)
MAX_FILTER_VALUES = 100       # values of one filter
TIMESTAMP = "timestamp"
TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "a structure", bool: "a boolean",
              TIMESTAMP: "a timestamp (epoch seconds)"}


class DmsError(Exception):
    """An error answer in the JSON 1.1 error shape."""

    def __init__(self, code, message, status=400, **fields):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields

    def document(self):
        return {"__type": self.code, "message": self.message, **self.fields}


class AdminError(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.message = message
        self.status = status


def json_depth(value):
    """Nesting depth of a decoded JSON value (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
                         if isinstance(child, (dict, list)))
    return deepest


def decode_json(body):
    """The JSON value of a request body; raises ValueError when it is not JSON or nests
    deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeError, ValueError):
        raise ValueError("The request body is not valid JSON") from None
    except RecursionError:
        raise ValueError(f"The request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"The request body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def camel(name):
    return name[0].lower() + name[1:]


def has_type(value, kind):
    if kind is TIMESTAMP:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is bool:
        return isinstance(value, bool)
    return isinstance(value, kind) and not isinstance(value, bool)


def check_types(members, params, where=""):
    """SerializationException for a member of the wrong JSON type (absent or null members pass)."""
    for name, kind in members.items():
        value = params.get(name)
        if value is None:
            continue
        if isinstance(kind, tuple):              # (list, item type)
            if not isinstance(value, list) or not all(has_type(item, kind[1]) for item in value):
                raise DmsError("SerializationException", f"{where}{name} must be a list of {TYPE_NAMES[kind[1]]}s")
        elif not has_type(value, kind):
            raise DmsError("SerializationException", f"{where}{name} must be {TYPE_NAMES[kind]}")


def null_error(path):
    return f"Value null at '{path}' failed to satisfy constraint: Member must not be null"


def enum_error(path, value, allowed):
    return (f"Value '{value}' at '{path}' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(allowed)}]")


def validation_error(details):
    """The ValidationException AWS answers for constraint violations (missing members, enums)."""
    count = len(details)
    return DmsError("ValidationException",
                    f"{count} validation error{'s' if count > 1 else ''} detected: {'; '.join(details)}")


def parse_filters(filters, names):
    """[(name, set of values)] of a Filters list; raises the errors DMS answers."""
    parsed = []
    for index, item in enumerate(filters or [], 1):
        if not isinstance(item, dict):
            raise DmsError("SerializationException", "Each filter must be an object")
        missing = [null_error(f"filters.{index}.member.{camel(name)}") for name in ("Name", "Values")
                   if item.get(name) is None]
        if missing:
            raise validation_error(missing)
        name, values = item["Name"], item["Values"]
        if not isinstance(name, str) or not isinstance(values, list) or \
                not all(isinstance(value, str) for value in values):
            raise DmsError("SerializationException", "A filter has a Name string and a Values list of strings")
        if name not in names:
            raise DmsError("InvalidParameterValueException",
                           f"Invalid filter name: {name}. Valid names are {', '.join(names)}")
        if len(values) > MAX_FILTER_VALUES:
            raise DmsError("InvalidParameterValueException",
                           f"Filter {name} has {len(values)} values; the maximum is {MAX_FILTER_VALUES}")
        parsed.append((name, set(values)))
    return parsed


def max_records(params, minimum, maximum, default):
    value = params.get("MaxRecords")
    if value is None:
        value = default
    if not minimum <= value <= maximum:
        raise DmsError("InvalidParameterValueException", f"MaxRecords must be between {minimum} and {maximum}")
    return value


def encode_marker(key):
    """An opaque marker standing for `key` (a string, or a list of strings)."""
    return base64.urlsafe_b64encode(json.dumps(key).encode("utf-8")).decode("ascii")


def decode_marker(marker, parts=None):
    """The key a marker stands for: a string, or with `parts` a list of that many strings."""
    try:
        key = json.loads(base64.b64decode(marker.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeError, ValueError, RecursionError):
        key = None
    if parts is None:
        valid = isinstance(key, str) and key
    else:
        valid = isinstance(key, list) and len(key) == parts and all(isinstance(item, str) for item in key)
    if not valid:
        raise DmsError("InvalidParameterValueException", f"Invalid Marker: {marker}")
    return key


def paged(key, items, marker, **extra):
    document = {**extra, key: items}
    if marker is not None:
        document["Marker"] = marker
    return document
