#!/usr/bin/env python3
"""A test kubelet for a real kube-apiserver with no container runtime (standard library only).

It registers the Node NAME (address 127.0.0.1, kubelet port PORT), then watches the Pods bound to it
(`spec.nodeName`; SecondRow's executor binds its Pods with `--kube-node-name`, as no scheduler runs) and
for each Pod:

- marks it Running, runs its init containers then its main container's `command + args` as a local
  process (the image is ignored) with the container's env (values, secret/config-map keys read from the
  API, and the field paths metadata.name/namespace/uid), in its `workingDir`;
- hostPath volumes are the same folders here (SecondRow mounts them at their own path); an emptyDir is a
  folder of the Pod under --root, and the container's paths under its mount path (in the command, also
  inside an argument such as a JSON executor input, the working folder and env values) are rewritten to
  that folder; a persistentVolumeClaim is a folder under --root keyed by namespace and claim name (so the
  Pods mounting one claim share it), rewritten the same way, and a Pod whose claim does not exist stays
  Pending (Unschedulable, as the scheduler says); other volumes are not made;
- status updates are repeated while the API server does not answer (it may be restarting);
- writes Succeeded or Failed with the main container's exit code (`containerStatuses[].state.terminated`);
- on deletion (a deletionTimestamp) kills the process group and removes the Pod (grace period 0), as a
  kubelet confirms a deletion.

It serves `GET /containerLogs/NS/POD/CONTAINER` over HTTPS on PORT (cert/key given), which is where the API
server's `pods/log` proxies to, so logs come through the API as on a real node.

    test_kubelet.py --server URL --token TOKEN --node NAME --port PORT --cert FILE --key FILE --root DIR
"""

import argparse
import base64
import datetime
import http.server
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ARGS = None
CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE
LOCK = threading.Lock()
RUNNING = {}  # pod uid -> Popen
STARTED = set()  # pod uids handled


def log(*parts):
    print("test-kubelet:", *parts, file=sys.stderr, flush=True)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def api(method, path, body=None, content_type="application/json", timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(ARGS.server + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + ARGS.token)
    if data is not None:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, context=CTX, timeout=timeout) as resp:
        return json.loads(resp.read() or b"{}")


def patch_status(ns, name, status):
    path = f"/api/v1/namespaces/{ns}/pods/{name}/status"
    deadline = time.monotonic() + 600
    while True:
        try:
            api("PATCH", path, {"status": status}, "application/merge-patch+json")
            return
        except urllib.error.HTTPError as e:
            if e.code < 500 or time.monotonic() > deadline:
                if e.code != 404:
                    log("patching status of", name, e.code, e.read()[:200])
                return
        except (urllib.error.URLError, OSError) as e:  # no answer: the API server may be restarting
            if time.monotonic() > deadline:
                log("patching status of", name, e)
                return
        time.sleep(0.5)


def register_node():
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": ARGS.node, "labels": {"kubernetes.io/hostname": ARGS.node}},
    }
    try:
        api("POST", "/api/v1/nodes", node)
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise
    status = {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": ARGS.node}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": ARGS.port}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test kubelet",
                        "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000", "nvidia.com/gpu": "8"},
        "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000", "nvidia.com/gpu": "8"},
    }
    api("PATCH", f"/api/v1/nodes/{ARGS.node}/status", {"status": status}, "application/merge-patch+json")


def key_value(ns, kind, selector):
    plural = "secrets" if kind == "secret" else "configmaps"
    try:
        obj = api("GET", f"/api/v1/namespaces/{ns}/{plural}/{selector['name']}")
    except urllib.error.HTTPError as e:
        if e.code == 404 and selector.get("optional"):
            return None
        raise RuntimeError(f"{kind} {selector['name']}: HTTP {e.code}")
    if kind == "secret":
        raw = (obj.get("data") or {}).get(selector["key"])
        return None if raw is None else base64.b64decode(raw).decode()
    return (obj.get("data") or {}).get(selector["key"])


def container_env(pod, container):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    for var in ("SECONDROW_TEST_KUBELET_PYTHONPATH",):
        if os.environ.get(var):
            env["PYTHONPATH"] = os.environ[var]
    meta = pod["metadata"]
    for e in container.get("env") or []:
        src = e.get("valueFrom")
        if src is None:
            env[e["name"]] = e.get("value", "")
        elif "secretKeyRef" in src:
            v = key_value(meta["namespace"], "secret", src["secretKeyRef"])
            if v is not None:
                env[e["name"]] = v
        elif "configMapKeyRef" in src:
            v = key_value(meta["namespace"], "configmap", src["configMapKeyRef"])
            if v is not None:
                env[e["name"]] = v
        elif "fieldRef" in src:
            path = src["fieldRef"]["fieldPath"]
            env[e["name"]] = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
                              "metadata.uid": meta["uid"], "spec.nodeName": ARGS.node}.get(path, "")
    return env


def log_path(ns, name, container):
    return os.path.join(ARGS.root, "logs", ns, name, container + ".log")


def empty_dirs(pod, container):
    """(mount path, local folder) of the container's emptyDir and claim mounts."""
    local = {}
    for v in pod["spec"].get("volumes") or []:
        if "emptyDir" in v:
            local[v["name"]] = os.path.join(ARGS.root, "pods", pod["metadata"]["uid"], v["name"])
        elif "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"]["claimName"]
            local[v["name"]] = os.path.join(ARGS.root, "claims", pod["metadata"]["namespace"], claim)
    out = []
    for m in container.get("volumeMounts") or []:
        if m["name"] in local:
            os.makedirs(local[m["name"]], exist_ok=True)
            out.append((m["mountPath"].rstrip("/"), local[m["name"]]))
    return out


def rewrite(text, mounts):
    """Every path under an emptyDir mount in `text` (a whole argument, or paths inside one, such as the
    executor input JSON a launcher or kfp's executor is given) → the same path under the Pod's folder: what
    the process would see through the mount."""
    for mount, local in mounts:
        text = re.sub(r"(?<![\w.\-/])" + re.escape(mount) + r"(?=/|$|[\s\"'])", lambda _: local, text)
    return text


def run_container(pod, container):
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    mounts = empty_dirs(pod, container)
    argv = [rewrite(a, mounts) for a in (container.get("command") or []) + (container.get("args") or [])]
    path = log_path(ns, name, container["name"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cwd = rewrite(container.get("workingDir") or ARGS.root, mounts)
    os.makedirs(cwd, exist_ok=True)
    with open(path, "ab") as out:
        try:
            env = {k: rewrite(v, mounts) for k, v in container_env(pod, container).items()}
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except (OSError, RuntimeError) as e:
            out.write(f"test-kubelet: cannot start {argv[:1]}: {e}\n".encode())
            return 128
        with LOCK:
            RUNNING[pod["metadata"]["uid"]] = proc
        code = proc.wait()
        with LOCK:
            RUNNING.pop(pod["metadata"]["uid"], None)
    return code if code >= 0 else 128 - code


def terminated(container, code, started):
    reason = "Completed" if code == 0 else "Error"
    return {"name": container["name"], "image": container.get("image", ""), "imageID": "", "ready": False,
            "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": reason,
                                                        "startedAt": started, "finishedAt": now()}}}


def run_pod(pod):
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    spec = pod["spec"]
    for v in spec.get("volumes") or []:
        if "hostPath" in v:
            os.makedirs(v["hostPath"]["path"], exist_ok=True)
        if "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"]["claimName"]
            try:
                api("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    raise
                patch_status(ns, name, {"phase": "Pending", "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": f'persistentvolumeclaim "{claim}" not found', "lastTransitionTime": now()}]})
                return
    started = now()
    for init in spec.get("initContainers") or []:
        code = run_container(pod, init)
        if code != 0:
            patch_status(ns, name, {"phase": "Failed", "reason": "InitContainerFailed",
                                    "initContainerStatuses": [terminated(init, code, started)]})
            return
    main = spec["containers"][0]
    running = {"name": main["name"], "image": main.get("image", ""), "imageID": "", "ready": True,
               "restartCount": 0, "started": True, "state": {"running": {"startedAt": started}}}
    patch_status(ns, name, {"phase": "Running", "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "startTime": started,
                            "containerStatuses": [running]})
    code = run_container(pod, main)
    phase = "Succeeded" if code == 0 else "Failed"
    patch_status(ns, name, {"phase": phase, "containerStatuses": [terminated(main, code, started)]})


def kill_and_remove(pod):
    uid = pod["metadata"]["uid"]
    with LOCK:
        proc = RUNNING.pop(uid, None)
    if proc is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid}}
    try:
        api("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", body)
    except urllib.error.HTTPError as e:
        if e.code not in (404, 409):
            log("deleting", name, e.code)


def handle(event):
    pod = event["object"]
    if pod.get("kind") == "Status":
        raise RuntimeError("watch error: " + pod.get("message", ""))
    uid = pod["metadata"]["uid"]
    if pod["metadata"].get("deletionTimestamp"):
        threading.Thread(target=kill_and_remove, args=(pod,), daemon=True).start()
        return
    if event["type"] in ("ADDED", "MODIFIED") and uid not in STARTED:
        if (pod.get("status") or {}).get("phase", "Pending") == "Pending":
            STARTED.add(uid)
            threading.Thread(target=run_pod, args=(pod,), daemon=True).start()
        else:
            # A Pod that ran under an earlier kubelet process: never run twice.
            STARTED.add(uid)


def watch_pods():
    selector = urllib.parse.quote(f"spec.nodeName={ARGS.node}")
    while True:
        try:
            listed = api("GET", f"/api/v1/pods?fieldSelector={selector}")
            for p in listed.get("items") or []:
                p.setdefault("kind", "Pod")
                handle({"type": "ADDED", "object": p})
            version = listed["metadata"].get("resourceVersion", "")
            url = f"{ARGS.server}/api/v1/pods?watch=1&fieldSelector={selector}&resourceVersion={version}"
            req = urllib.request.Request(url)
            req.add_header("Authorization", "Bearer " + ARGS.token)
            with urllib.request.urlopen(req, context=CTX, timeout=600) as resp:
                for line in resp:
                    if line.strip():
                        handle(json.loads(line))
        except Exception as e:  # a dropped watch is listed again
            log("watch:", e)
            time.sleep(0.2)


class Logs(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        parts = urllib.parse.urlparse(self.path).path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404)
            return
        path = log_path(parts[1], parts[2], parts[3])
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            self.send_error(404, "no log")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def serve_logs():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", ARGS.port), Logs)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def main():
    global ARGS
    p = argparse.ArgumentParser()
    for flag in ("--server", "--token", "--node", "--cert", "--key", "--root"):
        p.add_argument(flag, required=True)
    p.add_argument("--port", type=int, required=True)
    ARGS = p.parse_args()
    threading.Thread(target=serve_logs, daemon=True).start()
    register_node()
    log("node", ARGS.node, "registered")
    watch_pods()


if __name__ == "__main__":
    main()
