#!/usr/bin/env python3
"""Generates lua/dms/endpoint_rules.lua from the AWS DMS endpoint rule set and
the AWS partitions file.

    tools/gen_endpoints.py [REFERENCE_DIR] [-o OUTPUT]

REFERENCE_DIR holds dms/endpoint-rule-set-1.json and dms/partitions.json
(default: $DMS_REFERENCE, else ../shared/reference beside the repository).
OUTPUT defaults to lua/dms/endpoint_rules.lua in the repository; "-" writes to
standard output.

The rule set is copied as Lua data for the interpreter in lua/dms/endpoint.lua,
unchanged but for the parameters' documentation prose. Each partition keeps its outputs and its explicit region
names; its regionRegex (a JavaScript regular expression) is kept as written
and translated to one or more Lua patterns (an alternation group becomes one
pattern per alternative). The generator fails if the rule set calls a function
the interpreter does not implement or a regex uses syntax outside the
translated subset, so an AWS update that needs more is noticed here.
"""
import argparse
import itertools
import json
import os
import sys

# The functions lua/dms/endpoint.lua implements.
SUPPORTED_FNS = {
    "isSet", "not", "booleanEquals", "stringEquals", "getAttr",
    "isValidHostLabel", "parseURL", "substring", "uriEncode", "aws.partition",
}
SUPPORTED_PARAM_TYPES = {"string", "boolean"}

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA_MAGIC = set("^$()%.[]*+-?")
CLASSES = {"w": "[%w_]", "d": "%d", "s": "%s"}
LUA_KEYWORDS = {
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
    "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
    "true", "until", "while",
}


def regex_to_lua_patterns(regex):
    """Translates an anchored JavaScript regex to a list of Lua patterns that
    together match the same strings. The subset: literal characters, escaped
    punctuation, the classes \\w \\d \\s, the quantifiers + * ? after one
    atom, and flat groups of literal alternatives such as (us|eu|ap), which
    expand to one pattern per alternative."""
    if not (regex.startswith("^") and regex.endswith("$")):
        raise ValueError("regex is not anchored: %r" % regex)
    body = regex[1:-1]
    pieces = []  # one list of alternative Lua fragments per regex piece
    i = 0
    while i < len(body):
        if body[i] == "(":
            j = body.index(")", i)
            alts = []
            for alt in body[i + 1:j].split("|"):
                frag, k = "", 0
                while k < len(alt):
                    a, k = atom(alt, k, regex, classes=False)
                    frag += a
                alts.append(frag)
            i = j + 1
            if i < len(body) and body[i] in "+*?":
                raise ValueError("quantified group in %r" % regex)
            pieces.append(alts)
            continue
        a, i = atom(body, i, regex, classes=True)
        if i < len(body) and body[i] in "+*?":
            a += body[i]
            i += 1
        pieces.append([a])
    return ["^" + "".join(p) + "$" for p in itertools.product(*pieces)]


def atom(s, k, regex, classes):
    """The Lua pattern item for the regex atom at s[k], and the index after it."""
    c = s[k]
    if c == "\\":
        e = s[k + 1]
        if classes and e in CLASSES:
            return CLASSES[e], k + 2
        if e.isalnum():
            raise ValueError("unsupported escape \\%s in %r" % (e, regex))
        c, k = e, k + 1
    elif c in "[]{}().*+?^$|":
        raise ValueError("unsupported regex syntax %r in %r" % (c, regex))
    return ("%" + c if c in LUA_MAGIC else c), k + 1


def lua_str(s):
    """A double-quoted Lua string literal valid in Lua 5.1 to 5.4 (UTF-8 kept
    as is, control characters as decimal escapes)."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append("\\%03d" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def lua_key(k):
    if k.isidentifier() and k not in LUA_KEYWORDS:
        return k
    return "[" + lua_str(k) + "]"


def lua_value(v, indent="", width=96):
    """Lua constructor for a JSON value: inline when short, else one entry a
    line. Object keys keep their order in the JSON file."""
    if v is None:
        raise ValueError("null has no Lua table representation")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return lua_str(v)
    inner = indent + "  "
    if isinstance(v, list):
        items = [lua_value(x, inner, width) for x in v]
    elif isinstance(v, dict):
        items = [lua_key(k) + " = " + lua_value(x, inner, width) for k, x in v.items()]
    else:
        raise TypeError(type(v))
    if not items:
        return "{}"
    flat = "{ " + ", ".join(items) + " }"
    if "\n" not in flat and len(indent) + len(flat) <= width:
        return flat
    return "{\n" + "".join(inner + it + ",\n" for it in items) + indent + "}"


def check_rules(rules, where="rules"):
    for n, rule in enumerate(rules):
        here = "%s[%d]" % (where, n)
        for cond in rule.get("conditions", []):
            check_expr(cond, here)
        t = rule["type"]
        if t == "tree":
            check_rules(rule["rules"], here)
        elif t not in ("endpoint", "error"):
            raise ValueError("%s: unknown rule type %r" % (here, t))


def check_expr(e, where):
    if isinstance(e, dict) and "fn" in e:
        if e["fn"] not in SUPPORTED_FNS:
            raise ValueError("%s: function %r is not implemented by lua/dms/endpoint.lua"
                             % (where, e["fn"]))
        for a in e["argv"]:
            check_expr(a, where)


def partition_entry(p):
    patterns = regex_to_lua_patterns(p["regionRegex"])
    regions = {}
    for name, info in p["regions"].items():
        # per-region output overrides, if any (descriptions are dropped)
        regions[name] = {k: v for k, v in info.items() if k != "description"}
    return {
        "id": p["id"],
        "outputs": p["outputs"],
        "region_regex": p["regionRegex"],
        "region_patterns": patterns,
        "regions": regions,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference", nargs="?",
                    default=os.environ.get("DMS_REFERENCE")
                    or os.path.join(os.path.dirname(REPO), "shared", "reference"))
    ap.add_argument("-o", "--output",
                    default=os.path.join(REPO, "lua", "dms", "endpoint_rules.lua"))
    args = ap.parse_args()

    with open(os.path.join(args.reference, "dms", "endpoint-rule-set-1.json"),
              encoding="utf-8") as f:
        ruleset = json.load(f)
    with open(os.path.join(args.reference, "dms", "partitions.json"), encoding="utf-8") as f:
        partitions = json.load(f)

    parameters = {}
    for name, spec in ruleset["parameters"].items():
        if spec["type"] not in SUPPORTED_PARAM_TYPES:
            raise ValueError("parameter %s: unsupported type %r" % (name, spec["type"]))
        parameters[name] = {k: v for k, v in spec.items() if k != "documentation"}
    check_rules(ruleset["rules"])
    parts = [partition_entry(p) for p in partitions["partitions"]]
    if not any(p["id"] == "aws" for p in parts):
        raise ValueError("partitions.json has no aws partition")

    data = {
        "version": ruleset["version"],
        "partitions_version": partitions["version"],
        "parameters": parameters,
        "rules": ruleset["rules"],
        "default_partition": "aws",
        "partitions": parts,
    }
    text = ("-- Generated by tools/gen_endpoints.py from the AWS DMS endpoint rule set\n"
            "-- (endpoint-rule-set-1.json) and the AWS partitions (partitions.json).\n"
            "-- Do not edit: run `python3 tools/gen_endpoints.py`.\n"
            "return " + lua_value(data) + "\n")
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
