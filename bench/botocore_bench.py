#!/usr/bin/env python3
"""The botocore side of `make bench`: the same work as bench/bench.lua, timed
the same way, printed as JSON on one line.

    botocore_bench.py ENDPOINT_URL N_PURE N_CALLS
"""
import json
import resource
import sys
import time

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.parsers
import botocore.serialize
import botocore.session

ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX03"
KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    url, n_pure, n_calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    t0 = time.perf_counter()
    session = botocore.session.get_session()
    model = session.get_service_model("dms")
    load_s = time.perf_counter() - t0
    op = model.operation_model("StartReplication")
    serializer = botocore.serialize.create_serializer("json")
    parser = botocore.parsers.create_parser("json")
    creds = botocore.credentials.Credentials(KEY, SECRET)
    signer = botocore.auth.SigV4Auth(creds, "dms", "us-east-1")
    params = {"ReplicationConfigArn": ARN, "StartReplicationType": "start-replication",
              "PremigrationAssessmentSettings": json.dumps({"ResultLocationFolder": "assess"})}
    body = json.dumps({"Replication": {"ReplicationConfigArn": ARN, "Status": "running",
                                       "ReplicationCreateTime": 1764072000.5,
                                       "ReplicationStats": {"FullLoadProgressPercent": 42, "TablesLoaded": 4}}})
    resp_model = op.output_shape

    # the median of 5 rounds of n/5 calls, as bench.lua times its side
    def timeit_median(n, fn):
        rounds = []
        for _ in range(5):
            m = -(-n // 5)
            t0 = time.perf_counter()
            for _ in range(m):
                fn()
            rounds.append((time.perf_counter() - t0) / m)
        return sorted(rounds)[2]

    # sign only
    url_aws = "https://dms.us-east-1.amazonaws.com/"

    def sign():
        r = botocore.awsrequest.AWSRequest(method="POST", url=url_aws, data=b"{}",
                                           headers={"Content-Type": "application/x-amz-json-1.1"})
        signer.add_auth(r)
    sign_s = timeit_median(n_pure, sign)

    # serialize + sign + parse, no network
    def pipeline():
        d = serializer.serialize_to_request(params, op)
        r = botocore.awsrequest.AWSRequest(method="POST", url="https://dms.us-east-1.amazonaws.com/",
                                           data=d["body"], headers=d["headers"])
        signer.add_auth(r)
        parser.parse({"status_code": 200, "headers": {}, "body": body.encode()}, resp_model)
    pipeline_s = timeit_median(n_pure, pipeline)

    # calls over the network with a real boto3 client (keep-alive)
    client = boto3.client("dms", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    client.describe_replications(MaxRecords=20)
    t0 = time.perf_counter()
    for _ in range(n_calls):
        client.describe_replications(MaxRecords=20)
    call_s = (time.perf_counter() - t0) / n_calls
    print(json.dumps({"load_s": load_s, "sign_s": sign_s, "pipeline_s": pipeline_s, "call_s": call_s,
                      "rss_kib": rss_kib(),
                      "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    main()
