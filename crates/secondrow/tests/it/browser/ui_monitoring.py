"""A deployment's monitoring page in a real browser: Debian's chromium driven by Playwright (system browser,
`executable_path`).

usage: ui_monitoring.py SERVER_URL DEPLOYMENT FEATURES RUN_ID SCREENSHOT_DIR CHROMIUM

Opens the deployments page, follows the deployment's Monitoring link, checks the drift charts (one SVG per
feature, FEATURES of them, each with its threshold line and points), the DRIFT flag of the feature table and
the triggered run's row, then follows the run link to the run page. Saves screenshots; prints one JSON line
with what it saw; exits non-zero on the first failed expectation.
"""
import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

url, name, features, run_id, shots, chromium = sys.argv[1:7]
features = int(features)
os.makedirs(shots, exist_ok=True)
seen = {}

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/deployments")
    page.locator(f'section[data-deployment="{name}"] a.monitoring-link').click()
    page.wait_for_url(f"{url}/deployments/{name}/monitoring")
    expect(page.locator("h1")).to_contain_text(name)
    charts = page.locator("figure.drift-chart svg.monitor-chart")
    expect(charts).to_have_count(features)
    box = charts.first.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 100, box
    seen["charts"] = charts.count()
    seen["thresholds"] = page.locator("figure.drift-chart svg line.threshold").count()
    seen["points"] = page.locator("figure.drift-chart svg circle.point").count()
    assert seen["thresholds"] == features and seen["points"] > 0, seen
    seen["drift_flags"] = page.locator("table.monitor-features span.drift").count()
    run_row = page.locator(f'table.monitor-runs tr[data-run="{run_id}"]')
    expect(run_row).to_have_count(1)
    seen["run_state"] = run_row.locator("td.state").inner_text()
    seen["condition"] = page.locator("table.monitor-rules code.condition").first.inner_text()
    page.screenshot(path=os.path.join(shots, "monitoring.png"), full_page=True)
    run_row.get_by_role("link", name=run_id).click()
    page.wait_for_url(f"{url}/runs/{run_id}")
    seen["run_page"] = page.url.rsplit("/", 1)[-1]
    browser.close()

print(json.dumps(seen))
