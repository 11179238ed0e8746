"""The UI's management pages in a real browser: Debian's chromium driven by Playwright (system browser,
`executable_path`).

usage: ui_manage.py SERVER_URL SCREENSHOT_DIR CHROMIUM

Compiles a small pipeline with the kfp SDK and uploads it through the pipelines page's form (and a second
version as a zip through the pipeline page's form), creates an
experiment from the experiments page, schedules a recurring run of the uploaded version from its form,
starts a run and clones it with a changed parameter into the new experiment, and reaches the deployments
page from the top bar with the keyboard. Saves a screenshot of each step; prints one JSON line with what it
saw; exits non-zero on the first failed expectation.
"""
import json
import os
import sys
import urllib.request
import zipfile

import kfp
from kfp import compiler, dsl
from playwright.sync_api import expect, sync_playwright

url, shots, chromium = sys.argv[1:4]
os.makedirs(shots, exist_ok=True)


@dsl.container_component
def echo(msg: str, n: int):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", 'echo "$0 $1"'], args=[msg, n])


@dsl.pipeline(name="manage-demo", description="uploaded from the browser")
def demo(msg: str = "hello", n: int = 3):
    echo(msg=msg, n=n).set_caching_options(False)


package = os.path.join(os.getcwd(), "manage-demo.yaml")
compiler.Compiler().compile(demo, package)
seen = {}


def call(method, address, body):
    req = urllib.request.Request(address, method=method, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def deploy():
    """Two versions of a deployment (SecondRow model files: y = a + 2b + 0.5), through the API."""
    model = {"format": "secondrow-model", "version": 1, "kind": "linear_regression", "task": "regression",
             "label": "y", "feature_names": ["a", "b"], "classes": [], "transformer": None, "params": {},
             "training": {}, "estimator": {"algorithm": "linear", "coef": [1.0, 2.0], "intercept": 0.5, "alpha": 0.0}}
    for version in ("1", "2"):
        path = os.path.join(os.getcwd(), f"model-{version}.json")
        with open(path, "w") as f:
            json.dump(model, f)
        d = call("POST", f"{url}/apis/v2beta1/deployments",
                 {"name": "prices", "version": version, "source": {"path": path}, "make_default": version == "1"})
    return d["url"]


def shot(page, name):
    page.screenshot(path=os.path.join(shots, name), full_page=True)


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # Upload the compiled pipeline through the form (multipart, with the CSRF token).
    page.goto(f"{url}/pipelines")
    expect(page.locator("#upload-pipeline")).to_be_visible()
    page.fill("#upload-pipeline input[name=name]", "demo <i>uploaded</i>")
    page.set_input_files("#upload-pipeline input[name=uploadfile]", package)
    page.locator("#upload-pipeline button[type=submit]").click()
    page.wait_for_url("**/pipelines/*")
    expect(page.locator("h1")).to_have_text("demo <i>uploaded</i>")
    expect(page.locator("#create-run input[name='p.n']")).to_have_value("3")
    pipeline_url = page.url
    # A second version, uploaded as a zip holding the YAML.
    archive = os.path.join(os.getcwd(), "manage-demo.zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(package, "pipeline/manage-demo.yaml")
    page.fill("#upload-version input[name=name]", "zipped")
    page.set_input_files("#upload-version input[name=uploadfile]", archive)
    page.locator("#upload-version button[type=submit]").click()
    page.wait_for_url("**/pipelines/*?version=*")
    expect(page.locator("ul.versions li")).to_have_count(2)
    expect(page.locator("ul.versions li[aria-current] a")).to_have_text("zipped")
    seen["versions"] = page.locator("ul.versions li").count()
    shot(page, "manage-pipeline.png")

    # Create an experiment from the experiments page.
    page.goto(f"{url}/experiments")
    page.fill("#create-experiment input[name=name]", "browser experiment")
    page.fill("#create-experiment textarea[name=description]", "made in <b>chromium</b>")
    page.locator("#create-experiment button[type=submit]").click()
    page.wait_for_url("**/experiments/*")
    expect(page.locator("h1")).to_contain_text("browser experiment")
    expect(page.locator("#description")).to_have_text("made in <b>chromium</b>")
    shot(page, "manage-experiment.png")

    # Schedule a recurring run of the uploaded version: a refused cron comes back on the form first.
    page.goto(pipeline_url)
    page.locator("#schedule").click()
    page.wait_for_url("**/schedule?version=*")
    page.fill("#create-recurring input[name=name]", "nightly demo")
    page.fill("#create-recurring input[name=cron]", "not a cron")
    page.select_option("#create-recurring select[name=experiment]", label="browser experiment")
    page.locator("#create-recurring-submit").click()
    expect(page.locator("#form-error")).to_contain_text("not a cron")
    expect(page.locator("#create-recurring input[name=name]")).to_have_value("nightly demo")
    shot(page, "manage-recurring-error.png")
    page.locator("#create-recurring input[name=kind][value=periodic]").check()
    page.fill("#create-recurring input[name=interval]", "86400")
    page.fill("#create-recurring input[name='p.msg']", "scheduled")
    page.locator("#create-recurring input[name=enabled]").uncheck()
    page.locator("#create-recurring-submit").click()
    page.wait_for_url("**/recurring/*")
    expect(page.locator("#trigger")).to_have_text("every 86400 s")
    expect(page.locator("#recurring-state")).to_have_text("DISABLED")
    page.locator("#toggle").click()
    expect(page.locator("#recurring-state")).to_have_text("ENABLED")
    page.locator("#toggle").click()
    expect(page.locator("#recurring-state")).to_have_text("DISABLED")
    seen["recurring_trigger"] = page.locator("#trigger").inner_text()
    shot(page, "manage-recurring.png")

    # Start a run from the pipeline page, then clone it with another message into the new experiment.
    page.goto(pipeline_url)
    page.fill("#create-run input[name=run_name]", "original")
    page.fill("#create-run input[name='p.msg']", "first")
    page.locator("#start-run").click()
    page.wait_for_url("**/runs/*")
    expect(page.locator("#run-state")).to_have_text("SUCCEEDED", timeout=120_000)
    page.locator("#clone").click()
    page.wait_for_url("**/clone")
    expect(page.locator("#clone-run input[name='p.msg']")).to_have_value("first")
    expect(page.locator("#clone-run input[name=run_name]")).to_have_value("Clone of original")
    page.fill("#clone-run input[name='p.msg']", "second")
    page.select_option("#clone-run select[name=experiment]", label="browser experiment")
    shot(page, "manage-clone-form.png")
    page.locator("#start-clone").click()
    page.wait_for_url("**/runs/*")
    expect(page.locator("h1")).to_contain_text("Clone of original")
    expect(page.locator("#run-state")).to_have_text("SUCCEEDED", timeout=120_000)
    seen["clone_run_id"] = page.url.rstrip("/").rsplit("/", 1)[1]
    shot(page, "manage-clone-run.png")

    # The experiment's page lists the clone.
    page.goto(f"{url}/experiments")
    page.locator("table.experiments a", has_text="browser experiment").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    expect(page.locator("table.runs tbody tr")).to_contain_text("Clone of original")

    # Keyboard: Tab through the top bar to Deployments and press Enter.
    model_url = deploy()
    page.goto(f"{url}/runs")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == "/deployments":
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**/deployments")
    expect(page.locator("h1")).to_have_text("Deployments")
    expect(page.locator("section.deployment tbody tr")).to_have_count(2)
    # Version 2 takes a 30% canary share through the form.
    page.select_option("section.deployment .canary-form select[name=canary]", "2")
    page.fill("section.deployment .canary-form input[name=percent]", "30")
    page.locator("section.deployment .canary-form button").click()
    expect(page.locator("tr[data-version='2'] .badge")).to_have_text("canary 30%")
    # Requests served arrive on the open page (its table refreshes itself): counts, a rate, a latency.
    for i in range(40):
        call("POST", f"{model_url}/infer",
             {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 2], "data": [i, 1.0]}]})
    page.wait_for_function(
        """() => [...document.querySelectorAll('section.deployment td.requests')]
                   .reduce((n, td) => n + Number(td.textContent), 0) === 40""",
        timeout=30_000,
    )
    page.wait_for_function(
        """() => [...document.querySelectorAll('section.deployment td.rate')]
                   .some(td => td.textContent.endsWith('/s') && td.textContent !== '0.00/s')""",
        timeout=30_000,
    )
    seen["served"] = [int(t) for t in page.locator("section.deployment td.requests").all_inner_texts()]
    seen["latency"] = page.locator("tr[data-version='1'] td.latency").inner_text()
    shot(page, "manage-deployments.png")
    assert not errors, f"page errors: {errors}"
    browser.close()

# The clone, read back through the KFP API: the uploaded version, the changed parameter, the new experiment.
client = kfp.Client(host=url)
clone = client.get_run(seen["clone_run_id"])
experiment = client.get_experiment(experiment_name="browser experiment")
seen["clone_state"] = clone.state
seen["clone_msg"] = clone.runtime_config.parameters["msg"]
seen["clone_has_version"] = bool(clone.pipeline_version_reference and clone.pipeline_version_reference.pipeline_version_id)
seen["clone_in_experiment"] = clone.experiment_id == experiment.experiment_id
print(json.dumps(seen), flush=True)
