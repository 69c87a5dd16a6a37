#!/usr/bin/env python3
"""botocore as an oracle for the credential specs: which credentials botocore picks
in this process's environment (HOME, AWS_* variables, the shared files they name).

Reads one JSON object from stdin:
  {"region": "us-east-1",          the DMS client's region
   "profile": "name" | null,       Session(profile=...): a profile chosen explicitly
   "endpoints": ["sts", "sso"]}    also report the endpoint URL of these clients

Writes one JSON object to stdout:
  {"access_key", "secret_key", "token", "method"}   the frozen credentials and provider
  {"error": "<exception class>", "message": "..."}  when botocore raised
  {"none": true}                                    when it found no credentials
plus "endpoints": {"sts": url, ...} when asked.
"""
import json
import sys

import botocore.session


def main():
    request = json.load(sys.stdin)
    out = {}
    try:
        if request.get("profile"):
            session = botocore.session.Session(profile=request["profile"])
        else:
            session = botocore.session.Session()
        client = session.create_client("dms", region_name=request.get("region"))
        creds = client._request_signer._credentials
        if creds is None:
            out["none"] = True
        else:
            frozen = creds.get_frozen_credentials()
            out.update(access_key=frozen.access_key, secret_key=frozen.secret_key, token=frozen.token,
                       method=creds.method)
    except Exception as err:  # the oracle reports what botocore raised
        out.update(error=type(err).__name__, message=str(err))
    if request.get("endpoints"):
        out["endpoints"] = {}
        for name in request["endpoints"]:
            try:
                session = botocore.session.Session()
                client = session.create_client(name, region_name=request.get("region"),
                                               aws_access_key_id="a", aws_secret_access_key="b")
                out["endpoints"][name] = client.meta.endpoint_url
            except Exception as err:
                out["endpoints"][name] = {"error": type(err).__name__}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
