"""Drives `secondrow server` with the official Kubeflow Model Registry client (model-registry, pinned in
scripts/requirements-registry.txt), then sends malformed requests over plain HTTP.

Usage: client.py URL [TOKEN]. Asserts as it goes; prints one JSON summary line at the end.
"""

import json
import sys
import urllib.error
import urllib.request
import warnings

from model_registry import ModelRegistry
from model_registry.exceptions import StoreError
from model_registry.types import ModelVersionState, RegisteredModelState

url = sys.argv[1]
token = sys.argv[2] if len(sys.argv) > 2 else None
host, port = url.rsplit(":", 1)
warnings.simplefilter("ignore")
mr = ModelRegistry(host, int(port), author="alice", is_secure=False, user_token=token)
BASE = f"{url}/api/model_registry/v1"


def call(method, path, body=None, raw=None, base=BASE):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def expect_error(status, method, path, body=None, raw=None):
    got, answer = call(method, path, body, raw)
    assert got == status, (method, path, got, answer)
    # The registry's error shape: both fields strings.
    assert isinstance(answer.get("code"), str) and isinstance(answer.get("message"), str), answer
    return answer["message"]


metadata = {"accuracy": 0.91, "team": "risk", "epochs": 7, "prod": True}
rm = mr.register_model(
    "churn",
    "s3://bucket/churn/v1.onnx",
    model_format_name="onnx",
    model_format_version="1",
    version="v1",
    version_description="first",
    metadata=metadata,
)
assert rm.name == "churn" and rm.id, rm
got = mr.get_registered_model("churn")
assert got.id == rm.id and got.owner == "alice" and got.state == RegisteredModelState.LIVE, got
mv = mr.get_model_version("churn", "v1")
assert mv.custom_properties == metadata, mv.custom_properties
assert (mv.description, mv.author, mv.registered_model_id) == ("first", "alice", rm.id), mv
ma = mr.get_model_artifact("churn", "v1")
assert (ma.uri, ma.model_format_name, ma.model_format_version, ma.name) == ("s3://bucket/churn/v1.onnx", "onnx", "1", "churn"), ma
mr.register_model("churn", "s3://bucket/churn/v2.onnx", model_format_name="onnx", model_format_version="1", version="v2", metadata={"accuracy": 0.93})
try:
    mr.register_model("churn", "s3://x", model_format_name="onnx", model_format_version="1", version="v1")
    raise AssertionError("a second v1 was accepted")
except StoreError as e:
    assert "already exists" in str(e), e
assert mr.get_registered_model("nope") is None
assert mr.get_model_version("churn", "v9") is None

# Updates: PATCH merges; the name stays.
mv.description = "second thoughts"
mv.custom_properties = {"accuracy": 0.95, "note": "retrained"}
mv = mr.update(mv)
assert (mv.description, mv.custom_properties, mv.name) == ("second thoughts", {"accuracy": 0.95, "note": "retrained"}, "v1"), mv
ma.uri = "s3://bucket/churn/v1b.onnx"
ma = mr.update(ma)
assert mr.get_model_artifact("churn", "v1").uri == "s3://bucket/churn/v1b.onnx"
# Archiving is a state change through update.
mv.state = ModelVersionState.ARCHIVED
mr.update(mv)
assert mr.get_model_version("churn", "v1").state == ModelVersionState.ARCHIVED
rm_fraud = mr.register_model("fraud", "s3://bucket/fraud.onnx", model_format_name="onnx", model_format_version="1", version="v1")
rm_fraud.state = RegisteredModelState.ARCHIVED
rm_fraud.description = "retired"
mr.update(rm_fraud)
fraud = mr.get_registered_model("fraud")
assert (fraud.state, fraud.description) == (RegisteredModelState.ARCHIVED, "retired"), fraud

# Listing with paging, both orders.
for i in range(5):
    mr.register_model(f"m{i}", f"s3://bucket/m{i}.onnx", model_format_name="onnx", model_format_version="1", version="1")
names = [m.name for m in mr.get_registered_models().page_size(2)]
assert names == ["churn", "fraud", "m0", "m1", "m2", "m3", "m4"], names
newest = [m.name for m in mr.get_registered_models().order_by_creation_time().descending().page_size(3)]
assert newest == list(reversed(names)), newest
by_id_desc = [m.name for m in mr.get_registered_models().order_by_id().descending().page_size(4)]
assert by_id_desc == list(reversed(names)), by_id_desc
versions = [v.name for v in mr.get_model_versions("churn").page_size(1)]
assert versions == ["v1", "v2"], versions

# Bad input over plain HTTP: the registry's error shape, the right 4xx, nothing written.
expect_error(409, "POST", "/registered_models", {"name": "churn"})
expect_error(400, "POST", "/registered_models", raw=b"{not json")
expect_error(400, "POST", "/registered_models", {})
expect_error(400, "POST", "/registered_models", {"name": "x", "state": "SHINY"})
expect_error(400, "POST", "/registered_models", {"name": "x", "bogus": 1})
expect_error(400, "POST", "/registered_models", {"name": "x", "customProperties": {"a": {"int_value": 7, "metadataType": "MetadataIntValue"}}})
expect_error(400, "GET", "/registered_models/abc")
expect_error(404, "GET", "/registered_models/999")
expect_error(404, "POST", "/model_versions", {"name": "x", "registeredModelId": "999"})
expect_error(400, "GET", "/registered_models?pageSize=0")
expect_error(400, "GET", "/registered_models?nextPageToken=bogus")
expect_error(400, "GET", "/registered_models?orderBy=NAME")
expect_error(400, "PATCH", f"/registered_models/{rm.id}", {"name": "renamed"})
outside = expect_error(400, "PATCH", f"/model_artifacts/{ma.id}", {"uri": "/etc/passwd"})
assert "outside the artifact root" in outside, outside
expect_error(400, "POST", f"/model_versions/{mv.id}/artifacts", {"artifactType": "model-artifact", "uri": "file:///etc/passwd"})
expect_error(404, "GET", "/no_such_thing")
assert mr.get_model_artifact("churn", "v1").uri == "s3://bucket/churn/v1b.onnx"
assert [m.name for m in mr.get_registered_models()] == names, "a refused request wrote something"
status, listed = call("GET", "/registered_models?pageSize=1", base=f"{url}/api/model_registry/v1alpha3")
assert status == 200 and listed["items"][0]["name"] == "churn" and listed["nextPageToken"], listed

print(json.dumps({"models": names, "versions": versions, "churn_id": rm.id}))
