"""Raw calls to the v2beta1 API for the checks kfp.Client cannot make (malformed bodies, status codes)."""
import json
import urllib.error
import urllib.request


def raw(host, method, path, body=None):
    """`body`: a dict/list (sent as JSON), a str or bytes (sent as is), or None. Returns (status, JSON body)."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(host + "/apis/v2beta1" + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
