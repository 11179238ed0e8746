"""Times UI pages and the API's listings against a seeded server (see run.sh), over one keep-alive
connection: p50/p99 in ms of N requests each (after 20 warm-up requests); then how long a task's state
change, written to the database, takes to reach an open run page's event stream. Prints one JSON object.

usage: python bench.py URL BIG_RUN_ID DB [N]
"""
import http.client
import json
import sqlite3
import statistics
import sys
import time
import urllib.parse

url = urllib.parse.urlparse(sys.argv[1])
big = sys.argv[2]
db = sys.argv[3]
N = int(sys.argv[4]) if len(sys.argv) > 4 else 200
conn = http.client.HTTPConnection(url.hostname, url.port)


def percentiles(lat):
    lat = sorted(lat)
    return {"p50_ms": round(statistics.median(lat), 2), "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 2)}


def get_json(path):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, (path, r.status, body[:200])
    return json.loads(body)


def sse_latency(n):
    """Flips one iteration task between RUNNING and SUCCEEDED n times, each time timing the commit until the
    open stream's next `update` event has arrived (the browser's view of the change)."""
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    c.request("GET", f"/runs/{big}/events", headers={"Accept": "text/event-stream"})
    r = c.getresponse()
    assert r.status == 200, r.status

    def next_update():
        event = None
        while True:
            line = r.readline()
            if not line:
                raise RuntimeError("the event stream ended")
            line = line.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[len("event:"):].strip()
            elif line == "":
                if event == "update":
                    return
                event = None

    next_update()  # the page's first view
    con = sqlite3.connect(db, timeout=30)
    lat = []
    for i in range(n):
        state = "SUCCEEDED" if i % 2 == 0 else "RUNNING"
        t = time.perf_counter()
        con.execute("UPDATE tasks SET state = ? WHERE run_id = ? AND path = 'for-loop-1/998/square'", (state, big))
        con.commit()
        next_update()
        lat.append((time.perf_counter() - t) * 1000)
    con.close()
    c.close()
    return percentiles(lat)


def timed(path, n=None):
    n = n or N
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
    return percentiles(lat)


exp = get_json("/apis/v2beta1/experiments?page_size=1")["experiments"][0]["experiment_id"]
second_page = get_json("/apis/v2beta1/runs?page_size=20&sort_by=created_at%20desc")["next_page_token"]
out = {
    "runs": get_json("/apis/v2beta1/runs?page_size=1")["total_size"],
    "runs_page": timed("/runs"),
    "runs_page_filtered": timed("/runs?state=FAILED&sort=name&dir=asc"),
    "runs_page_experiment": timed(f"/runs?experiment={exp}"),
    "api_list_runs": timed("/apis/v2beta1/runs?page_size=20&sort_by=created_at%20desc"),
    "api_list_runs_page_2": timed(f"/apis/v2beta1/runs?page_size=20&sort_by=created_at%20desc&page_token={second_page}"),
    "api_list_runs_experiment": timed(f"/apis/v2beta1/runs?page_size=20&experiment_id={exp}"),
    "api_list_experiments": timed("/apis/v2beta1/experiments?page_size=20"),
    "run_page_1000_iterations": timed(f"/runs/{big}"),
    "loop_iterations_1000": timed(f"/runs/{big}?dag=for-loop-1", max(10, N // 4)),
    "sse_state_change_to_client": sse_latency(max(10, N // 10)),
}
print(json.dumps(out, indent=2))
