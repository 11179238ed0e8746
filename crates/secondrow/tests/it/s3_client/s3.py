"""S3 calls the S3 artifact-store tests make against the moto server with boto3 (the reference client):

    s3.py ENDPOINT create BUCKET
    s3.py ENDPOINT list BUCKET PREFIX      -> JSON [{"key", "size", "etag"}]
    s3.py ENDPOINT put BUCKET KEY FILE     -> JSON {"etag"}

Credentials are moto's test ones from the environment."""
import json
import sys

import boto3

endpoint, command, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
if command == "create":
    s3.create_bucket(Bucket=bucket)
    print(json.dumps({"created": bucket}))
elif command == "list":
    prefix = sys.argv[4] if len(sys.argv) > 4 else ""
    items = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            items.append({"key": o["Key"], "size": o["Size"], "etag": o["ETag"].strip('"')})
    print(json.dumps(items))
elif command == "put":
    with open(sys.argv[5], "rb") as f:
        answer = s3.put_object(Bucket=bucket, Key=sys.argv[4], Body=f.read())
    print(json.dumps({"etag": answer["ETag"].strip('"')}))
else:
    sys.exit(f"unknown command {command}")
