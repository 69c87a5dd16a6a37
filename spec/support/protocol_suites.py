#!/usr/bin/env python3
"""Prepares botocore's JSON protocol tests for spec/protocol_spec.lua.

    protocol_suites.py OUTDIR FILE...

For each suite of each file (a list of suites: metadata, shapes, cases), writes
to OUTDIR:
  <file>-<n>.model.lua   the suite's service model (its metadata, the
                         operations its cases name, its shapes) made into a
                         Lua model by tools/gen_model.py
  <file>-<n>.cases.lua   the cases as a Lua chunk: JSON null is the name NULL,
                         integers beyond 2^53 are I("digits"), so that nothing
                         is lost on the way
and OUTDIR/index.lua, the list of suites. Python reads the test files, since
its json module keeps every integer exact.
"""
import importlib.util
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "..", "tools", "gen_model.py")
_spec = importlib.util.spec_from_file_location("gen_model", GEN)
gen_model = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_model)


def lua(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if abs(v) <= 2 ** 53 else 'I("%d")' % v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("a float JSON cannot hold")
        return repr(v)
    if isinstance(v, str):
        return gen_model.lua_str(v)
    if isinstance(v, list):
        return "{" + ", ".join(lua(x) for x in v) + "}"
    if isinstance(v, dict):
        return "{" + ", ".join("[%s] = %s" % (gen_model.lua_str(k), lua(v[k])) for k in sorted(v)) + "}"
    raise TypeError(type(v))


def main(outdir, files):
    index = []
    for path in files:
        base = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as f:
            suites = json.load(f)
        for n, suite in enumerate(suites, 1):
            name = "%s-%d" % (base, n)
            chunks = []
            gen_model.generate(gen_model.from_suite(suite), name, chunks.append)
            with open(os.path.join(outdir, name + ".model.lua"), "w", encoding="utf-8") as f:
                f.write("".join(chunks))
            with open(os.path.join(outdir, name + ".cases.lua"), "w", encoding="utf-8") as f:
                f.write("return " + lua(suite["cases"]) + "\n")
            index.append({"name": name, "file": os.path.basename(path), "suite": n,
                          "description": suite.get("description", ""),
                          "protocol": suite["metadata"].get("protocol"),
                          "json_version": suite["metadata"].get("jsonVersion")})
    with open(os.path.join(outdir, "index.lua"), "w", encoding="utf-8") as f:
        f.write("return " + lua(index) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
