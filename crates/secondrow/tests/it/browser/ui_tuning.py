"""A tuning experiment's pages in a real browser: Debian's chromium driven by Playwright (system browser,
`executable_path`).

usage: ui_tuning.py SERVER_URL EXPERIMENT TRIALS MEASURED SCREENSHOT_DIR CHROMIUM

Reaches the Tuning page from the top bar with the keyboard, opens the experiment (namespace `default`),
checks its state, its trials table (TRIALS rows, one marked best, each linking to its run), the
objective-by-trial plot (a point per trial with a value: MEASURED of them) and the parallel-coordinates plot, then follows the
best trial's run link to the run page. Saves screenshots; prints one JSON line with what it saw; exits non-zero
on the first failed expectation.
"""
import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

url, name, trials, measured, shots, chromium = sys.argv[1:7]
trials, measured = int(trials), int(measured)
os.makedirs(shots, exist_ok=True)
seen = {}

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/runs")
    # The top bar's Tuning link, by keyboard: Tab until it has focus, then Enter.
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.getAttribute('href')") == "/tuning":
            break
    else:
        raise SystemExit("the Tuning link never got the keyboard focus")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{url}/tuning")
    row = page.locator(f'tr[data-experiment="{name}"]')
    expect(row).to_contain_text("Succeeded")
    page.screenshot(path=os.path.join(shots, "tuning-list.png"), full_page=True)
    row.get_by_role("link", name=name).click()
    page.wait_for_url(f"{url}/tuning/default/{name}")
    expect(page.locator("h1")).to_contain_text("Succeeded")
    rows = page.locator("table.trials tbody tr[data-trial]")
    expect(rows).to_have_count(trials)
    expect(page.locator("table.trials tr.best")).to_have_count(1)
    seen["run_links"] = page.locator("table.trials tbody a[href^='/runs/']").count()
    assert seen["run_links"] == trials, seen
    objective = page.locator("svg.tuning-objective")
    expect(objective).to_be_visible()
    seen["points"] = objective.locator("circle").count()
    assert seen["points"] == measured, seen
    figures = page.locator("figure.chart svg")
    expect(figures).to_have_count(2)
    box = figures.nth(1).bounding_box()
    assert box and box["width"] > 200 and box["height"] > 100, box
    seen["best"] = page.locator("table.trials tr.best").get_attribute("data-trial")
    page.screenshot(path=os.path.join(shots, "tuning-experiment.png"), full_page=True)
    page.locator("table.trials tr.best a[href^='/runs/']").click()
    page.wait_for_url(f"{url}/runs/**")
    expect(page.locator("body")).to_contain_text("trial")
    seen["run_page"] = page.url.rsplit("/", 1)[-1]
    browser.close()

print(json.dumps(seen))
