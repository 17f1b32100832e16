#!/usr/bin/env python3
"""mirror.py BUCKET PREFIX DEST - copy every object under PREFIX/ of BUCKET into DEST/<key below
PREFIX>, setting each file's mtime to the object's LastModified. The endpoint and keys come from
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (boto3's own chain).

Tests use it to make a filesystem copy of a bucket with a client that shares no code with
stowage, then compare stowage's reading of the bucket over S3 with its reading of the copy."""
import os
import sys

import boto3

bucket, prefix, dest = sys.argv[1], sys.argv[2].strip("/"), sys.argv[3]
s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
start = prefix + "/" if prefix else ""
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=start):
    for obj in page.get("Contents", []):
        rel = obj["Key"][len(start):]
        if not rel or rel.endswith("/"):
            continue
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, obj["Key"], path)
        lm = obj["LastModified"]
        ns = int(lm.replace(microsecond=0).timestamp()) * 10**9 + lm.microsecond * 1000
        os.utime(path, ns=(ns, ns))
        n += 1
print(f"mirrored {n} objects", file=sys.stderr)
