#!/usr/bin/env python3
"""Protocol check of a KServe-compatible server with KServe's official Python client.

Tested against kserve 0.21.0 (PyPI), Python 3.11, numpy 2.4, httpx 0.28:
the checks pass against KServe's own model server (reference_server.py beside
this file). Install the client with:

    python3 -m venv servevenv          # any scratch location outside the repository
    servevenv/bin/pip install kserve==0.21.0

Usage:

    servevenv/bin/python client_check.py http://127.0.0.1:8080 MODEL_NAME \
        [--batch 4] [--features 20] [--no-v1] [--no-binary]

What it checks (wire formats: KServe V1 and the Open Inference Protocol V2, see README.md):
  V2 through kserve.InferenceRESTClient(RESTConfig(protocol="v2")):
    is_server_live (GET /v2/health/live), is_server_ready (GET /v2/health/ready),
    is_model_ready (GET /v2/models/NAME/ready), infer (POST /v2/models/NAME/infer)
    with an FP32 [N, F] tensor as JSON, and again as a binary tensor
    (the client's default for InferInput.set_data_from_numpy), request id echoed,
    outputs well-formed; an unknown model gives a 404 with {"error": ...}; a
    wrongly shaped tensor gives a 4xx/5xx with {"error": ...}.
  V2 with plain httpx (the official REST client has no method for these):
    server metadata GET /v2 and model metadata GET /v2/models/NAME.
  V1 through InferenceRESTClient(RESTConfig(protocol="v1")) unless --no-v1:
    is_server_live (GET /), is_model_ready (GET /v1/models/NAME),
    infer (POST /v1/models/NAME:predict with {"instances": [[...], ...]}).

The feature count F comes from the model metadata's first input shape when it
is known there, otherwise from --features. Prints every response and ends with
a line "N passed, N failed"; exits 1 if any check failed, 2 if the server could
not be reached at all.

Note: `import kserve` runs kserve's own argparse over sys.argv (parse_known_args,
with prefix abbreviations), so options of this script must not be prefixes of
kserve's options (--http_port, --workers, --timeout-keep-alive, ...).
"""

import argparse
import asyncio
import json
import sys
import uuid
from importlib import metadata

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, InferResponse, RESTConfig

V2_DATATYPES = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
    "INT64", "FP16", "FP32", "FP64", "BYTES",
}


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name, detail=""):
        self.passed += 1
        print(f"PASS {name}" + (f": {detail}" if detail else ""))

    def fail(self, name, detail):
        self.failed += 1
        print(f"FAIL {name}: {detail}")

    def expect(self, cond, name, detail=""):
        if cond:
            self.ok(name, detail)
        else:
            self.fail(name, detail or "condition not met")
        return cond


def show(label, obj):
    text = obj if isinstance(obj, str) else json.dumps(obj, default=str)
    if len(text) > 600:
        text = text[:600] + f"... ({len(text)} chars)"
    print(f"     {label}: {text}")


def check_tensor_meta(checks, where, tensors):
    """Each entry of a metadata "inputs"/"outputs" list: name, datatype, shape."""
    if not isinstance(tensors, list):
        checks.fail(where, f"expected a list, got {tensors!r}")
        return
    good = all(
        isinstance(t, dict)
        and isinstance(t.get("name"), str)
        and t.get("datatype") in V2_DATATYPES
        and isinstance(t.get("shape"), list)
        and all(isinstance(d, int) for d in t["shape"])
        for t in tensors
    )
    checks.expect(good, where, f"{len(tensors)} tensor(s) with name/datatype/shape")


def check_infer_response(checks, label, res, model_name, request_id, batch):
    if not isinstance(res, InferResponse):
        checks.fail(label, f"client returned {type(res).__name__}, not InferResponse")
        return
    show("response", {
        "model_name": res.model_name, "model_version": res.model_version, "id": res.id,
        "outputs": [
            {"name": o.name, "shape": o.shape, "datatype": o.datatype,
             "data": o.data if isinstance(o.data, list) else str(o.data)}
            for o in res.outputs
        ],
    })
    checks.expect(res.model_name == model_name, f"{label}: model_name",
                  f"{res.model_name!r} (expected {model_name!r})")
    checks.expect(res.id == request_id, f"{label}: request id echoed",
                  f"{res.id!r} (sent {request_id!r})")
    if not checks.expect(len(res.outputs) >= 1, f"{label}: at least one output",
                         f"{len(res.outputs)} output(s)"):
        return
    for out in res.outputs:
        where = f"{label}: output {out.name!r}"
        shape_ok = isinstance(out.shape, list) and all(isinstance(d, int) and d >= 0 for d in out.shape)
        checks.expect(shape_ok, f"{where} shape", str(out.shape))
        checks.expect(out.datatype in V2_DATATYPES, f"{where} datatype", str(out.datatype))
        try:
            arr = out.as_numpy()  # reshapes data to shape: fails if the element count differs
            checks.ok(f"{where} data matches shape", f"numpy {arr.dtype} {list(arr.shape)}")
        except Exception as e:  # noqa: BLE001 - any failure here is a protocol mismatch
            checks.fail(f"{where} data matches shape", f"{type(e).__name__}: {e}")
            continue
        if shape_ok and out.shape:
            checks.expect(out.shape[0] == batch, f"{where} batch dimension",
                          f"shape[0]={out.shape[0]} (sent batch {batch})")


def status_and_error(exc):
    """Status code and the "error" string of a failed client call."""
    if not isinstance(exc, httpx.HTTPStatusError):
        return None, f"{type(exc).__name__}: {exc}"
    resp = exc.response
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    return resp.status_code, body


async def run(args) -> int:
    base = args.base_url.rstrip("/")
    model = args.model
    checks = Checks()
    print(f"kserve client {metadata.version('kserve')} -> {base}, model {model!r}")

    v2 = InferenceRESTClient(RESTConfig(protocol="v2", timeout=args.request_timeout, retries=0))
    raw = httpx.AsyncClient(timeout=args.request_timeout)
    try:
        # --- V2 health -----------------------------------------------------
        try:
            live = await v2.is_server_live(base)
        except httpx.ConnectError as e:
            print(f"cannot connect to {base}: {e}")
            return 2
        except Exception as e:  # noqa: BLE001
            live = f"{type(e).__name__}: {e}"
        checks.expect(live is True, "V2 is_server_live (GET /v2/health/live -> {\"live\": true})", repr(live))

        try:
            ready = await v2.is_server_ready(base)
        except Exception as e:  # noqa: BLE001
            ready = f"{type(e).__name__}: {e}"
        checks.expect(ready is True, "V2 is_server_ready (GET /v2/health/ready -> {\"ready\": true})", repr(ready))

        try:
            mready = await v2.is_model_ready(base, model)
        except Exception as e:  # noqa: BLE001
            mready = f"{type(e).__name__}: {e}"
        checks.expect(mready is True, f"V2 is_model_ready (GET /v2/models/{model}/ready -> 200)", repr(mready))

        try:
            unknown_ready = await v2.is_model_ready(base, f"no-such-model-{uuid.uuid4().hex[:6]}")
        except Exception as e:  # noqa: BLE001
            unknown_ready = f"{type(e).__name__}: {e}"
        checks.expect(unknown_ready is False, "V2 is_model_ready of an unknown model is False (non-2xx)",
                      repr(unknown_ready))

        # --- V2 metadata (plain httpx: the official REST client has no call for it)
        r = await raw.get(f"{base}/v2")
        show("GET /v2", r.text)
        if checks.expect(r.status_code == 200, "server metadata GET /v2 status 200", str(r.status_code)):
            try:
                sm = r.json()
                checks.expect(
                    isinstance(sm.get("name"), str) and isinstance(sm.get("version"), str)
                    and isinstance(sm.get("extensions"), list),
                    "server metadata has name, version, extensions[]")
            except ValueError as e:
                checks.fail("server metadata is JSON", str(e))

        n_features = args.features
        input_name = "input-0"
        r = await raw.get(f"{base}/v2/models/{model}")
        show(f"GET /v2/models/{model}", r.text)
        if checks.expect(r.status_code == 200, f"model metadata GET /v2/models/{model} status 200", str(r.status_code)):
            try:
                mm = r.json()
            except ValueError as e:
                mm = None
                checks.fail("model metadata is JSON", str(e))
            if isinstance(mm, dict):
                checks.expect(mm.get("name") == model, "model metadata name", repr(mm.get("name")))
                checks.expect(isinstance(mm.get("platform"), str), "model metadata platform is a string",
                              repr(mm.get("platform")))
                versions = mm.get("versions")
                checks.expect(versions is None or (isinstance(versions, list)
                                                   and all(isinstance(v, str) for v in versions)),
                              "model metadata versions absent, null or list of strings", repr(versions))
                check_tensor_meta(checks, "model metadata inputs", mm.get("inputs"))
                check_tensor_meta(checks, "model metadata outputs", mm.get("outputs"))
                inputs = mm.get("inputs") or []
                if inputs and isinstance(inputs[0], dict):
                    input_name = inputs[0].get("name") or input_name
                    shape = inputs[0].get("shape") or []
                    if shape and isinstance(shape[-1], int) and shape[-1] > 0:
                        n_features = shape[-1]
                    if inputs[0].get("datatype") not in (None, "FP32"):
                        print(f"     note: model's first input is {inputs[0].get('datatype')}; sending FP32 anyway")
        print(f"     sending input {input_name!r} FP32 [{args.batch}, {n_features}]")

        # --- V2 infer, JSON tensor -------------------------------------------
        rng = np.random.default_rng(0)
        batch = rng.normal(size=(args.batch, n_features)).astype(np.float32)

        async def v2_infer(label, binary):
            request_id = f"client-check-{uuid.uuid4().hex[:8]}"
            inp = InferInput(name=input_name, shape=list(batch.shape), datatype="FP32")
            inp.set_data_from_numpy(batch, binary_data=binary)
            req = InferRequest(model_name=model, infer_inputs=[inp], request_id=request_id)
            try:
                res = await v2.infer(base, req, model_name=model)
            except Exception as e:  # noqa: BLE001
                code, body = status_and_error(e)
                checks.fail(label, f"status {code}, body {body!r}")
                return
            checks.ok(label)
            check_infer_response(checks, label, res, model, request_id, args.batch)

        await v2_infer(f"V2 infer JSON (POST /v2/models/{model}/infer)", binary=False)
        if not args.no_binary:
            await v2_infer(f"V2 infer binary tensor (Inference-Header-Content-Length) "
                           f"(POST /v2/models/{model}/infer)", binary=True)

        # --- V2 errors -----------------------------------------------------------
        unknown = f"no-such-model-{uuid.uuid4().hex[:6]}"
        inp = InferInput(name=input_name, shape=list(batch.shape), datatype="FP32")
        inp.set_data_from_numpy(batch, binary_data=False)
        try:
            await v2.infer(base, InferRequest(model_name=unknown, infer_inputs=[inp]), model_name=unknown)
            checks.fail("V2 infer on an unknown model", "succeeded")
        except Exception as e:  # noqa: BLE001
            code, body = status_and_error(e)
            show("unknown model", f"status {code}, body {body!r}")
            checks.expect(code == 404, "V2 infer on an unknown model -> 404", str(code))
            checks.expect(isinstance(body, dict) and isinstance(body.get("error"), str),
                          "V2 error body is {\"error\": string}", repr(body))

        bad = InferInput(name=input_name, shape=[args.batch, n_features + 1], datatype="FP32")
        bad.data = batch.flatten().tolist()  # element count does not match the declared shape
        try:
            await v2.infer(base, InferRequest(model_name=model, infer_inputs=[bad]), model_name=model)
            checks.fail("V2 infer with a wrong shape", "succeeded")
        except Exception as e:  # noqa: BLE001
            code, body = status_and_error(e)
            show("wrong shape", f"status {code}, body {body!r}")
            checks.expect(code is not None and 400 <= code < 600, "V2 infer with a wrong shape -> 4xx/5xx",
                          f"{code} (KServe answers 500, the spec prefers 400)")
            checks.expect(isinstance(body, dict) and isinstance(body.get("error"), str),
                          "V2 error body is {\"error\": string}", repr(body))

        # --- V1 --------------------------------------------------------------------
        if not args.no_v1:
            v1 = InferenceRESTClient(RESTConfig(protocol="v1", timeout=args.request_timeout, retries=0))
            try:
                try:
                    live1 = await v1.is_server_live(base)
                except Exception as e:  # noqa: BLE001
                    live1 = f"{type(e).__name__}: {e}"
                checks.expect(live1 is True, "V1 is_server_live (GET / -> {\"status\": \"alive\"})", repr(live1))
                try:
                    ready1 = await v1.is_model_ready(base, model)
                except Exception as e:  # noqa: BLE001
                    ready1 = f"{type(e).__name__}: {e}"
                checks.expect(ready1 is True, f"V1 is_model_ready (GET /v1/models/{model} -> {{\"ready\": true}})",
                              repr(ready1))
                try:
                    out = await v1.infer(base, {"instances": batch.tolist()}, model_name=model)
                    show("V1 response", out)
                    preds = out.get("predictions") if isinstance(out, dict) else None
                    checks.expect(isinstance(preds, list) and len(preds) == args.batch,
                                  f"V1 infer (POST /v1/models/{model}:predict) -> predictions[{args.batch}]",
                                  repr(preds)[:200])
                except Exception as e:  # noqa: BLE001
                    code, body = status_and_error(e)
                    checks.fail(f"V1 infer (POST /v1/models/{model}:predict)", f"status {code}, body {body!r}")
            finally:
                await v1.close()
    finally:
        await v2.close()
        await raw.aclose()

    print(f"{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


def main():
    p = argparse.ArgumentParser(description="Check a KServe V1/V2 REST server with the official kserve client.")
    p.add_argument("base_url", help="e.g. http://127.0.0.1:8080")
    p.add_argument("model", help="model name")
    p.add_argument("--batch", type=int, default=4, help="N, rows in the FP32 [N, F] batch (default 4)")
    p.add_argument("--features", type=int, default=20,
                   help="F when the model metadata does not give it (default 20)")
    # Not "--timeout": `import kserve` parses sys.argv with argparse prefix
    # matching, and "--timeout" would be taken as its "--timeout-keep-alive".
    p.add_argument("--request-timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--no-v1", action="store_true", help="skip the V1 checks")
    p.add_argument("--no-binary", action="store_true", help="skip the binary-tensor V2 request")
    args = p.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
