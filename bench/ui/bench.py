"""Times UI pages and the API's list_runs against a seeded server (see run.sh), over one keep-alive
connection: p50/p99 in ms of 200 requests each (after 20 warm-up requests). Prints one JSON object.

usage: python bench.py URL BIG_RUN_ID
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse

url = urllib.parse.urlparse(sys.argv[1])
big = sys.argv[2]
conn = http.client.HTTPConnection(url.hostname, url.port)


def timed(path, n=200):
    for _ in range(20):
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, (path, r.status)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    return {"p50_ms": round(statistics.median(lat), 2), "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 2)}


out = {
    "runs_page": timed("/runs"),
    "runs_page_filtered": timed("/runs?state=FAILED&sort=name&dir=asc"),
    "api_list_runs": timed("/apis/v2beta1/runs?page_size=20&sort_by=created_at%20desc"),
    "run_page_1000_iterations": timed(f"/runs/{big}"),
    "loop_iterations_1000": timed(f"/runs/{big}?dag=for-loop-1", 50),
}
print(json.dumps(out, indent=2))
