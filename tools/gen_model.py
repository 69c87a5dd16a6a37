#!/usr/bin/env python3
"""Generates the Lua model that dms.core's build and parse read, from an AWS
service model (the service-2 JSON of botocore or the AWS SDKs) of any service
that speaks a JSON protocol (awsJson1_0 or awsJson1_1).

    tools/gen_model.py ../shared/reference/dms/service-2.shapes.json > lua/dms/model.lua
    tools/gen_model.py service-2.json -o model.lua
    tools/gen_model.py --suite 3 protocol-tests/input_json.json   a suite of
        botocore's protocol tests: its operations are those its cases name
    tools/gen_model.py --operations GetItem,PutItem dynamodb/service-2.json.gz
        only these operations, the shapes they reach and the errors

The output keeps what module/shape.c needs: the metadata that makes a request
(protocol, jsonVersion, targetPrefix, signing name), the operations (input,
output), and per shape its type, members, required members, list and
map members, min/max, timestamp format, and the document, union, exception and
idempotency-token traits; `errors` maps each modeled error code to its shape.
For DMS it adds the member rules that the AWS model only states in prose
(SERVICE_RULES below).
"""
import argparse
import gzip
import json
import sys

# Member rules that a service's model states only in its documentation, by
# targetPrefix.
#   enum:  the accepted values (checked before any I/O)
#   arn:   the value must be an ARN; a string names the resource type of the
#          service's own ARNs
#   json:  a JSON document travelling as a string: a JSON object string or a
#          Lua table that is encoded to one
# exclusive: members that must not be given together.
# unsafe_retry: operations whose effect is not idempotent: not re-sent when the
# outcome of an attempt is unknown (timeout, 5xx, lost connection).
SERVICE_RULES = {
    "AmazonDMSv20160101": {
        "traits": {
            ("StartReplicationMessage", "StartReplicationType"): {
                "enum": ["start-replication", "resume-processing", "reload-target"]},
            ("StartReplicationMessage", "ReplicationConfigArn"): {"arn": "replication-config"},
            ("StopReplicationMessage", "ReplicationConfigArn"): {"arn": "replication-config"},
            ("StartReplicationMessage", "PremigrationAssessmentSettings"): {"json": True},
            ("CreateReplicationConfigMessage", "TableMappings"): {"json": True},
            ("CreateReplicationConfigMessage", "ReplicationSettings"): {"json": True},
            ("CreateReplicationConfigMessage", "SupplementalSettings"): {"json": True},
            ("ModifyReplicationConfigMessage", "TableMappings"): {"json": True},
            ("ModifyReplicationConfigMessage", "ReplicationSettings"): {"json": True},
            ("ModifyReplicationConfigMessage", "SupplementalSettings"): {"json": True},
        },
        "exclusive": {
            "StartReplicationMessage": [["CdcStartTime", "CdcStartPosition"]],
        },
        "unsafe_retry": {"StartReplication", "StopReplication"},
        "arn_service": "dms",
    },
}

JSON_PROTOCOLS = {"json", "awsJson1_0", "awsJson1_1"}
SHAPE_TYPES = {"structure", "list", "map", "string", "integer", "long", "double", "float",
               "boolean", "timestamp", "blob"}
TIMESTAMP_FORMATS = {"unixTimestamp", "iso8601", "rfc822"}


class ModelError(Exception):
    pass


def lua_str(s):
    # JSON string syntax is Lua string syntax, but for \u escapes (Lua 5.1 has
    # none): write non-ASCII as UTF-8 and the rest of the control characters
    # as decimal escapes.
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif o < 32 or o == 127:
            out.append("\\%03d" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def lua_key(k):
    if k.isidentifier() and k.isascii() and k not in LUA_KEYWORDS:
        return k
    return "[" + lua_str(k) + "]"


LUA_KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function",
                "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
                "true", "until", "while"}


def lua_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return lua_str(v)
    if isinstance(v, list):
        return "{" + ", ".join(lua_value(x) for x in v) + "}"
    if isinstance(v, dict):
        return "{" + ", ".join(lua_key(k) + " = " + lua_value(v[k]) for k in sorted(v)) + "}"
    raise TypeError(type(v))


def compact_shape(name, shape, rules):
    t = shape.get("type")
    if t not in SHAPE_TYPES:
        raise ModelError("shape %s has the type %r, which a JSON protocol model cannot have"
                         % (name, t))
    out = {"type": t}
    if t == "structure":
        members = shape.get("members", {})
        out["members"] = {}
        tokens = []
        for m, spec in members.items():
            if "locationName" in spec or "jsonName" in spec:
                raise ModelError("member %s.%s has a wire name of its own (locationName), "
                                 "which this generator does not support" % (name, m))
            out["members"][m] = spec["shape"]
            if spec.get("idempotencyToken"):
                tokens.append(m)
        if shape.get("required"):
            out["required"] = list(shape["required"])
        if tokens:
            out["idempotency_tokens"] = sorted(tokens)
        for flag in ("exception", "document", "union"):
            if shape.get(flag):
                out[flag] = True
        traits = {m: rules["traits"][(name, m)] for m in members if (name, m) in rules["traits"]}
        if traits:
            out["traits"] = traits
        if name in rules["exclusive"]:
            out["exclusive"] = rules["exclusive"][name]
    elif t == "list":
        out["member"] = shape["member"]["shape"]
    elif t == "map":
        out["key"] = shape["key"]["shape"]
        out["value"] = shape["value"]["shape"]
    elif t == "timestamp" and shape.get("timestampFormat"):
        fmt = shape["timestampFormat"]
        if fmt not in TIMESTAMP_FORMATS:
            raise ModelError("shape %s has the unknown timestampFormat %r" % (name, fmt))
        out["format"] = fmt
    for k in ("min", "max"):
        if k in shape:
            out[k] = shape[k]
    return out


def from_suite(suite):
    """A service model from a suite of botocore's protocol tests (metadata,
    shapes, cases): the operations are the `given` of its cases."""
    ops = {}
    for case in suite.get("cases", []):
        ops.setdefault(case["given"]["name"], case["given"])
    return {"metadata": suite["metadata"], "operations": ops, "shapes": suite.get("shapes", {})}


def keep_operations(model, names):
    """The model with only the operations `names`, the shapes their input and
    output reach, and the exception shapes (and what they reach)."""
    ops = model.get("operations", {})
    missing = [n for n in names if n not in ops]
    if missing:
        raise ModelError("the model has no operation %s" % ", ".join(missing))
    shapes = model.get("shapes", {})
    keep, todo = set(), []
    for n in names:
        for k in ("input", "output"):
            if k in ops[n]:
                todo.append(ops[n][k]["shape"])
    todo.extend(name for name, s in shapes.items() if s.get("exception"))
    while todo:
        name = todo.pop()
        if name in keep or name not in shapes:
            continue
        keep.add(name)
        s = shapes[name]
        todo.extend(m["shape"] for m in s.get("members", {}).values())
        for k in ("member", "key", "value"):
            if k in s:
                todo.append(s[k]["shape"])
    out = dict(model)
    out["operations"] = {n: ops[n] for n in names}
    out["shapes"] = {n: shapes[n] for n in shapes if n in keep}
    return out


def generate(model, source_name="", write=sys.stdout.write, operations=None):
    if "operations" not in model and "cases" in model:
        model = from_suite(model)
    if operations:
        model = keep_operations(model, operations)
    meta = model.get("metadata", {})
    protocol = meta.get("protocol")
    protocols = set(meta.get("protocols") or [protocol])
    if protocol not in JSON_PROTOCOLS and not protocols & JSON_PROTOCOLS:
        raise ModelError("the model's protocol is %r: only JSON protocol models (json) "
                         "are supported" % protocol)
    json_version = meta.get("jsonVersion")
    if json_version not in ("1.0", "1.1"):
        raise ModelError("the model's jsonVersion is %r: 1.0 or 1.1 expected" % json_version)
    if not meta.get("targetPrefix"):
        raise ModelError("the model has no targetPrefix (X-Amz-Target)")
    rules = {"traits": {}, "exclusive": {}, "unsafe_retry": set()}
    rules.update(SERVICE_RULES.get(meta["targetPrefix"], {}))
    shapes = model.get("shapes", {})
    for (shape, member) in rules["traits"]:
        if member not in shapes.get(shape, {}).get("members", {}):
            raise ModelError("a rule names %s.%s, which the model does not have" % (shape, member))

    ops = {}
    for name, op in model.get("operations", {}).items():
        entry = {}
        for k in ("input", "output"):
            if k in op:
                if op[k]["shape"] not in shapes:
                    raise ModelError("operation %s names the unknown shape %s" % (name, op[k]["shape"]))
                entry[k] = op[k]["shape"]
        if name in rules["unsafe_retry"]:
            entry["unsafe_retry"] = True
        ops[name] = entry

    # error code -> shape (botocore's shape_for_error_code)
    errors = {}
    for name, shape in shapes.items():
        if shape.get("exception"):
            code = (shape.get("error") or {}).get("code") or name
            errors[code] = name

    signing = meta.get("signingName") or meta.get("endpointPrefix")
    w = write
    w("-- Generated by tools/gen_model.py from the AWS %s API model (%s, Apache-2.0).\n"
      % (meta.get("serviceId") or meta["targetPrefix"], meta.get("uid") or source_name))
    if operations:
        w("-- Only the operations %s.\n" % ", ".join(sorted(operations)))
    w("-- Do not edit: change the generator and run `make model`.\n")
    w("-- The tables as JSON text, one entry a line, which dms.core decodes: a\n"
      "-- fraction of what compiling the same tables as Lua source costs at start-up.\n")
    fields = (("api_version", meta.get("apiVersion")), ("protocol", "json"),
              ("json_version", json_version), ("target_prefix", meta["targetPrefix"]),
              ("signing_name", signing), ("endpoint_prefix", meta.get("endpointPrefix")),
              ("service_id", meta.get("serviceId")), ("arn_service", rules.get("arn_service")))
    lines = ["{"]
    for key, value in fields:
        if value is not None:
            lines.append("%s:%s," % (json_text(key), json_text(value)))
    for section, entries in (("operations", ops), ("errors", errors),
                             ("shapes", {n: compact_shape(n, shapes[n], rules) for n in shapes})):
        lines.append("%s:{" % json_text(section))
        names = sorted(entries)
        for i, name in enumerate(names):
            lines.append("%s:%s%s" % (json_text(name), json_text(entries[name]), "," if i + 1 < len(names) else ""))
        lines.append("}," if section != "shapes" else "}")
    lines.append("}")
    text = "\n".join(lines)
    level = 1
    while ("]" + "=" * level + "]") in text:
        level += 1
    eq = "=" * level
    w('return require("dms.core").decode_model([%s[\n%s\n]%s])\n' % (eq, text, eq))


def json_text(v):
    return json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default="../shared/reference/dms/service-2.shapes.json",
                    help="the service-2 JSON model ('-' for stdin)")
    ap.add_argument("-o", "--output", help="write here instead of stdout")
    ap.add_argument("--suite", type=int, help="for a file of protocol test suites: which one (from 1)")
    ap.add_argument("--operations", help="keep only these operations (comma-separated), the shapes they "
                    "reach and the modeled errors")
    args = ap.parse_args(argv)
    if args.model == "-":
        model = json.load(sys.stdin)
    elif args.model.endswith(".gz"):
        with gzip.open(args.model, "rt", encoding="utf-8") as f:
            model = json.load(f)
    else:
        with open(args.model, encoding="utf-8") as f:
            model = json.load(f)
    if isinstance(model, list):
        if not args.suite or not 1 <= args.suite <= len(model):
            sys.stderr.write("gen_model.py: the file holds %d protocol test suites: choose one with "
                             "--suite N\n" % len(model))
            return 2
        model = model[args.suite - 1]
    chunks = []
    try:
        ops = [o for o in (args.operations or "").split(",") if o]
        generate(model, args.model.rsplit("/", 1)[-1], chunks.append, ops or None)
    except ModelError as e:
        sys.stderr.write("gen_model.py: %s\n" % e)
        return 1
    text = "".join(chunks)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
