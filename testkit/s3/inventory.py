#!/usr/bin/env python3
"""inventory.py BUCKET OUT [DEST_BUCKET] - write the bucket's inventory report in the three
providers' documented shapes, from a listing made with boto3 (a client that shares no code
with stowage), as the providers' daily jobs would:

  OUT/s3/inv/BUCKET/cfg/2030-01-01T00-00Z/manifest.json   S3 Inventory: headerless CSV, gzip,
  OUT/s3/inv/BUCKET/cfg/data/<uuid>.csv.gz                 keys URL-encoded, columns in
                                                           fileSchema, creationTimestamp (ms)
  OUT/gcs/cfg_<date>.manifest, OUT/gcs/cfg_<date>_0.csv    GCS Storage Insights: snapshot_time,
                                                           report_shards_file_names, CSV header
  OUT/azure/<y>/<m>/<d>/<t>/rule/rule-manifest.json        Azure Blob Inventory: files[].blob
  OUT/azure/<y>/<m>/<d>/<t>/rule/rule.csv                  (container paths), Name prefixed
                                                           by the container, CSV header

With PyPI `duckdb` installed, the same three reports are also written with Parquet data
files (OUT/s3/inv/BUCKET/cfgpq/..., OUT/gcs-parquet/, OUT/azure-parquet/), and the S3
Parquet manifest's path is printed on a second line.

With DEST_BUCKET, the S3 report is also uploaded there under inv/ (its keys as named by the
manifest), as S3 delivers it to the destination bucket. The report's date is the time the
listing began. The endpoint and keys come from AWS_ENDPOINT_URL etc. (boto3's chain)."""
import csv
import datetime
import gzip
import io
import json
import os
import sys
import urllib.parse

import boto3

bucket, out = sys.argv[1], sys.argv[2]
dest = sys.argv[3] if len(sys.argv) > 3 else None
s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
began = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
rows = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
    for o in page.get("Contents", []):
        rows.append((o["Key"], o["Size"], o["LastModified"], o["ETag"].strip('"')))


def iso(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# S3 Inventory.
stamp = began.strftime("%Y-%m-%dT%H-%MZ")
data_key = f"inv/{bucket}/cfg/data/6f1d1f3c-0000-4000-8000-000000000001.csv.gz"
buf = io.StringIO()
w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
for k, size, lm, etag in rows:
    w.writerow([bucket, urllib.parse.quote_plus(k, safe="/"), size, iso(lm), etag, "true", "false"])
gz = gzip.compress(buf.getvalue().encode())
manifest_key = f"inv/{bucket}/cfg/{stamp}/manifest.json"
manifest = {
    "sourceBucket": bucket,
    "destinationBucket": f"arn:aws:s3:::{dest or 'inventory'}",
    "version": "2016-11-30",
    "creationTimestamp": str(int(began.timestamp() * 1000)),
    "fileFormat": "CSV",
    "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag, IsLatest, IsDeleteMarker",
    "files": [{"key": data_key, "size": len(gz), "MD5checksum": "0"}],
}
mbytes = json.dumps(manifest, indent=2).encode()
write(os.path.join(out, "s3", data_key), gz)
write(os.path.join(out, "s3", manifest_key), mbytes)
if dest:
    s3.put_object(Bucket=dest, Key=data_key, Body=gz)
    s3.put_object(Bucket=dest, Key=manifest_key, Body=mbytes)

# GCS Storage Insights inventory report.
day = began.strftime("%Y-%m-%dT%H:%M:%S")
shard = f"cfg_{day}_0.csv"
buf = io.StringIO()
w = csv.writer(buf, lineterminator="\n")
w.writerow(["project", "bucket", "name", "size", "updated", "etag", "storageClass"])
for k, size, lm, etag in rows:
    w.writerow(["1234", bucket, k, size, iso(lm), etag, "STANDARD"])
write(os.path.join(out, "gcs", shard), buf.getvalue().encode())
write(
    os.path.join(out, "gcs", f"cfg_{day}.manifest"),
    json.dumps(
        {
            "report_config": {"source_bucket": f"projects/_/buckets/{bucket}"},
            "records_processed": len(rows),
            "snapshot_time": began.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "shard_count": 1,
            "report_shards_file_names": [shard],
        }
    ).encode(),
)

# Azure Blob Inventory.
folder = began.strftime("%Y/%m/%d/%H-%M-%S") + "/rule"
buf = io.StringIO()
w = csv.writer(buf, lineterminator="\n")
w.writerow(["Name", "Creation-Time", "Last-Modified", "Etag", "Content-Length", "BlobType"])
for k, size, lm, etag in rows:
    t = lm.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{lm.microsecond:06d}0Z"
    w.writerow([f"{bucket}/{k}", t, t, "0x" + etag[:16].upper(), size, "BlockBlob"])
write(os.path.join(out, "azure", folder, "rule.csv"), buf.getvalue().encode())
write(
    os.path.join(out, "azure", folder, "rule-manifest.json"),
    json.dumps(
        {
            "destinationContainer": "inventory",
            "endpoint": "https://account.blob.core.windows.net",
            "files": [{"blob": f"{folder}/rule.csv", "size": 1, "chunkCount": 1}],
            "inventoryStartTime": began.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "inventoryCompletionTime": began.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ruleDefinition": {"format": "Csv", "objectType": "Blob"},
            "ruleName": "rule",
            "status": "Succeeded",
        }
    ).encode(),
)
print(os.path.join(out, "s3", manifest_key))


# The same three reports with Parquet data files, written by DuckDB (PyPI `duckdb`, which
# shares no code with stowage's reader), in each provider's documented columns and types.
def parquet(path, columns, values):
    import duckdb

    os.makedirs(os.path.dirname(path), exist_ok=True)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (" + ", ".join(f'"{n}" {ty}' for n, ty in columns) + ")")
    if values:
        con.executemany("INSERT INTO t VALUES (" + ", ".join("?" for _ in columns) + ")", values)
    con.execute(f"COPY t TO '{path}' (FORMAT PARQUET, COMPRESSION SNAPPY)")
    with open(path, "rb") as f:
        return f.read()


def naive(t):
    return t.astimezone(datetime.timezone.utc).replace(tzinfo=None)


try:
    import duckdb  # noqa: F401
except ImportError:
    print(f"listed {len(rows)} objects (no duckdb: no Parquet reports)", file=sys.stderr)
    sys.exit(0)

# S3 Inventory, Parquet: keys are not URL-encoded; last_modified_date is TIMESTAMP_MILLIS.
pq_key = f"inv/{bucket}/cfgpq/data/6f1d1f3c-0000-4000-8000-000000000002.parquet"
pq = parquet(
    os.path.join(out, "s3", pq_key),
    [("bucket", "VARCHAR"), ("key", "VARCHAR"), ("size", "BIGINT"),
     ("last_modified_date", "TIMESTAMP_MS"), ("e_tag", "VARCHAR"), ("is_latest", "BOOLEAN"),
     ("is_delete_marker", "BOOLEAN")],
    [(bucket, k, size, naive(lm), etag, True, False) for k, size, lm, etag in rows],
)
pq_manifest_key = f"inv/{bucket}/cfgpq/{stamp}/manifest.json"
pq_manifest = dict(manifest, fileFormat="Parquet", files=[{"key": pq_key, "size": len(pq), "MD5checksum": "0"}],
                   fileSchema="message s3.inventory { required binary bucket (STRING); required binary key (STRING); "
                              "optional int64 size; optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); "
                              "optional binary e_tag (STRING); optional boolean is_latest; optional boolean is_delete_marker; }")
mbytes = json.dumps(pq_manifest, indent=2).encode()
write(os.path.join(out, "s3", pq_manifest_key), mbytes)
if dest:
    s3.put_object(Bucket=dest, Key=pq_key, Body=pq)
    s3.put_object(Bucket=dest, Key=pq_manifest_key, Body=mbytes)

# GCS, Parquet (report_config.parquet_options): updated is a timestamp.
shard = f"cfg_{day}_0.parquet"
parquet(
    os.path.join(out, "gcs-parquet", shard),
    [("project", "VARCHAR"), ("bucket", "VARCHAR"), ("name", "VARCHAR"), ("size", "BIGINT"),
     ("updated", "TIMESTAMP"), ("etag", "VARCHAR"), ("storageClass", "VARCHAR")],
    [("1234", bucket, k, size, naive(lm), etag, "STANDARD") for k, size, lm, etag in rows],
)
write(
    os.path.join(out, "gcs-parquet", f"cfg_{day}.manifest"),
    json.dumps(
        {
            "report_config": {"source_bucket": f"projects/_/buckets/{bucket}", "parquet_options": {}},
            "records_processed": len(rows),
            "snapshot_time": began.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "shard_count": 1,
            "report_shards_file_names": [shard],
        }
    ).encode(),
)

# Azure Blob Inventory, Parquet: the same columns as its CSV, dates as strings.
folder = began.strftime("%Y/%m/%d/%H-%M-%S") + "/rulepq"
azure_rows = []
for k, size, lm, etag in rows:
    t = lm.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{lm.microsecond:06d}0Z"
    azure_rows.append((f"{bucket}/{k}", t, t, "0x" + etag[:16].upper(), size, "BlockBlob"))
parquet(
    os.path.join(out, "azure-parquet", folder, "rulepq.parquet"),
    [("Name", "VARCHAR"), ("Creation-Time", "VARCHAR"), ("Last-Modified", "VARCHAR"),
     ("Etag", "VARCHAR"), ("Content-Length", "BIGINT"), ("BlobType", "VARCHAR")],
    azure_rows,
)
write(
    os.path.join(out, "azure-parquet", folder, "rulepq-manifest.json"),
    json.dumps(
        {
            "destinationContainer": "inventory",
            "files": [{"blob": f"{folder}/rulepq.parquet", "size": 1, "chunkCount": 1}],
            "inventoryStartTime": began.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ruleDefinition": {"format": "Parquet", "objectType": "Blob"},
            "ruleName": "rulepq",
            "status": "Succeeded",
        }
    ).encode(),
)
print(os.path.join(out, "s3", pq_manifest_key))
print(f"listed {len(rows)} objects", file=sys.stderr)
