"""The web UI in a real browser: Debian's chromium driven by Playwright (system browser, `executable_path`).

usage: ui_browser.py SERVER_URL QUICKSTART_YAML DATA_CSV SCREENSHOT_DIR CHROMIUM

Submits the quickstart pipeline with kfp.Client, opens its run page, waits until the live graph (updated over
Server-Sent Events, no reload) shows every task succeeded, opens a task's logs and the evaluation's
classification metrics (confusion matrix and ROC curve), follows a running task's logs live (a line printed
after the page opened appears without a reload), terminates that run from its page, compares the two runs,
starts a run from the create-run form, and saves a screenshot of each step.
Prints one JSON line with what it saw; exits non-zero on the first failed expectation.
"""
import json
import os
import sys

import kfp
from kfp import compiler, dsl
from playwright.sync_api import expect, sync_playwright

url, pipeline, data, shots, chromium = sys.argv[1:6]
os.makedirs(shots, exist_ok=True)
TASKS = 9  # ingest, statistics, validate, split, transform, 2 × train, 2 × evaluate

client = kfp.Client(host=url)
run = client.create_run_from_pipeline_package(
    pipeline, arguments={"source": data}, run_name="quickstart <b>in the browser</b>", experiment_name="ui"
)
seen = {"run_id": run.run_id}

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/runs/{run.run_id}")
    expect(page.locator("h1")).to_contain_text("quickstart <b>in the browser</b>")
    # The page is not reloaded: the graph's states arrive over SSE until every task is green.
    page.wait_for_function(
        """n => { const nodes = document.querySelectorAll('svg.dag a.node');
                  return nodes.length === n && [...nodes].every(a => a.dataset.state === 'SUCCEEDED'); }""",
        arg=TASKS,
        timeout=600_000,
    )
    expect(page.locator("#run-state")).to_have_text("SUCCEEDED", timeout=30_000)
    seen["nodes"] = page.locator("svg.dag a.node").count()
    page.screenshot(path=os.path.join(shots, "run.png"), full_page=True)
    page.screenshot(path=os.path.join(shots, "run-viewport.png"))  # what a 1280x800 screen shows first

    # A task's side panel with its logs (keyboard: focus the node and press Enter).
    page.locator('svg.dag a.node[data-path="train-random-forest"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/tasks/train-random-forest")
    expect(page.locator("#task-state")).to_have_text("SUCCEEDED")
    expect(page.locator("#logs")).to_be_visible()
    seen["logs_chars"] = len(page.locator("#logs").inner_text())
    page.screenshot(path=os.path.join(shots, "task-logs.png"), full_page=True)

    # The evaluation's classification metrics: confusion matrix heat map and ROC curve.
    page.goto(f"{url}/runs/{run.run_id}")
    page.locator("svg.dag a.node", has_text="evaluate-random-forest").click()
    expect(page.locator("#task-state")).to_have_text("SUCCEEDED")
    page.locator("aside.panel li", has_text="system.ClassificationMetrics").locator("a").click()
    expect(page.locator("svg.confusion")).to_be_visible()
    expect(page.locator("svg.roc path.roc-line")).to_have_count(1)
    seen["confusion_cells"] = page.locator("svg.confusion rect.cm-cell").count()
    page.screenshot(path=os.path.join(shots, "classification-metrics.png"), full_page=True)

    # The runs list shows it, escaped.
    page.goto(f"{url}/runs")
    expect(page.locator("table.runs tbody tr").first).to_contain_text("quickstart <b>in the browser</b>")
    page.screenshot(path=os.path.join(shots, "runs.png"))

    # A running task's panel follows its logs live: a line the task prints after the page opened appears
    # without a reload. Then terminate the run from its page (a same-origin form POST with the CSRF token,
    # forwarded to the API); the state arrives over the live stream.
    @dsl.container_component
    def ticker():
        script = "i=0; while [ $i -lt 600 ]; do echo tick $i; i=$((i+1)); sleep 1; done"
        return dsl.ContainerSpec(image="alpine", command=["sh", "-c", script])

    @dsl.pipeline(name="long")
    def long():
        ticker().set_caching_options(False)

    long_yaml = os.path.join(os.path.dirname(os.path.abspath(shots)), "long.yaml")
    compiler.Compiler().compile(long, long_yaml)
    long_run = client.create_run_from_pipeline_package(long_yaml, arguments={}, run_name="long", experiment_name="ui")
    page.goto(f"{url}/runs/{long_run.run_id}")
    expect(page.locator("svg.dag a.node").first).to_have_attribute("data-state", "RUNNING", timeout=60_000)
    page.locator('svg.dag a.node[data-path="ticker"]').click()
    page.wait_for_url("**/tasks/ticker")
    out = page.locator('#logs pre[data-stream="stdout"]')
    expect(out).to_contain_text("tick", timeout=60_000)
    page.evaluate("window.__notReloaded = true")
    last = max(int(w) for w in out.inner_text().split() if w.isdigit())
    # Two ticks later: printed after the panel was rendered, so it can only have come over the live stream.
    page.wait_for_function(
        """n => window.__notReloaded === true &&
               (document.querySelector('#logs pre[data-stream="stdout"]') || {}).textContent.includes('tick ' + n)""",
        arg=last + 2,
        timeout=60_000,
    )
    seen["live_log_tick"] = last + 2
    # The run's duration counts on in the page while it runs (no reload).
    shown = page.locator("#run-duration").inner_text()
    page.wait_for_function(
        """d => window.__notReloaded === true &&
               document.getElementById("run-duration").textContent !== d &&
               document.getElementById("run-duration").textContent.endsWith("\u2026")""",
        arg=shown,
        timeout=10_000,
    )
    seen["duration_ticked"] = True
    page.screenshot(path=os.path.join(shots, "live-logs.png"))
    page.locator("#terminate").click()
    expect(page.locator("#run-state")).to_have_text("CANCELED", timeout=60_000)
    page.screenshot(path=os.path.join(shots, "terminated.png"))
    seen["terminated"] = client.get_run(long_run.run_id).state

    # Compare the two runs from the runs list: parameters side by side, metrics, overlaid ROC curves.
    page.goto(f"{url}/runs")
    page.locator("#compare-form input[type=checkbox]").nth(0).check()
    page.locator("#compare-form input[type=checkbox]").nth(1).check()
    page.locator("#compare").click()
    expect(page.locator("table.compare")).to_be_visible()
    expect(page.locator("table.compare thead th a")).to_have_count(2)
    seen["compared_roc_lines"] = page.locator("#roc-overlay path.roc-line").count()
    page.screenshot(path=os.path.join(shots, "compare.png"), full_page=True)

    # Create a run from the uploaded pipeline's form (generated from its parameter definitions).
    uploaded = client.upload_pipeline(pipeline, pipeline_name="quickstart-upload")
    page.goto(f"{url}/pipelines/{uploaded.pipeline_id}")
    page.fill("#create-run input[name='run_name']", "from the form")
    page.fill("#create-run input[name='p.source']", data)
    page.fill("#create-run input[name='p.n_estimators']", "20")
    page.locator("#start-run").click()
    page.wait_for_url("**/runs/*")
    expect(page.locator("h1")).to_contain_text("from the form")
    expect(page.locator("#run-state")).to_have_text("SUCCEEDED", timeout=600_000)
    seen["form_run_state"] = "SUCCEEDED"
    page.screenshot(path=os.path.join(shots, "form-run.png"))
    assert not errors, f"page errors: {errors}"
    browser.close()

assert seen["nodes"] == TASKS, seen
assert seen["confusion_cells"] >= 4, seen
assert seen["live_log_tick"] >= 2, seen
assert seen["terminated"] == "CANCELED", seen
assert seen["compared_roc_lines"] == 2, seen
assert seen["form_run_state"] == "SUCCEEDED", seen
print(json.dumps(seen), flush=True)
