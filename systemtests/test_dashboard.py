"""The driver's web dashboard in a real headless Chromium (Debian's
`chromium` and `chromium-driver`, driven by Selenium): the page loads with no
console errors, a running job's plots gain points as iterations finish, and
the final point equals the job's last record.

Set NEWTONPS_SCREENSHOT=PATH to keep a screenshot taken while the job runs.
"""

import json
import os
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

# The plots with a logarithmic axis, which leave out values that are not positive.
LOG_SCALE = {"objective", "grad_norm", "lambda", "disagreement"}

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")

# Long enough (tens of iterations of a few hundred ms) for the page's
# one-second polls to see the job run.
JOB = """\
name: dashboard-test
train: /usr/share/datasets/fashion-mnist
format: idx
scaling: standard
layers: [784, 64, 10]
optimizer: newton
subsample: 0.05
max_iterations: 40
seed: 3
"""


@pytest.fixture
def browser():
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def chart(browser, key):
    """The chart's data attributes, or None while it is not drawn."""
    return browser.execute_script(
        "const f = document.getElementById('chart-' + arguments[0]);"
        "return f ? {points: Number(f.dataset.points), iteration: Number(f.dataset.lastIteration),"
        " value: f.dataset.lastValue} : null;",
        key,
    )


def job_state(browser):
    return browser.execute_script("return window.dashboard.job && window.dashboard.job.state;")


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def console_errors(browser):
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_dashboard_follows_a_running_job_to_its_last_record(cluster, browser, tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(JOB)
    submitted = cluster.cli("submit", str(spec))
    job = next(word for word in submitted.split() if word.startswith("job-"))

    token = open(cluster.token_file).read().strip()
    browser.get(f"{cluster.http_url}/#token={token}")
    assert browser.title == "newtonps"
    wait_for(lambda: browser.execute_script("return window.dashboard.selected;") == job, 30, f"the page to select {job}")

    # Point counts of the objective plot seen while the job runs.
    seen, screenshot = [], False
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state, objective = job_state(browser), chart(browser, "objective")
        if state != "running" and state is not None:
            break
        if objective and (not seen or objective["points"] != seen[-1]):
            seen.append(objective["points"])
            if objective["points"] >= 12 and not screenshot and os.environ.get("NEWTONPS_SCREENSHOT"):
                screenshot = browser.save_screenshot(os.environ["NEWTONPS_SCREENSHOT"])
        time.sleep(0.2)
    assert len(seen) >= 3 and seen == sorted(seen), f"the objective plot should gain points while the job runs: {seen}"

    log = tmp_path / "records.jsonl"
    cluster.cli("watch", job, "--log-json", str(log))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    last = records[-1]
    assert wait_for(lambda: job_state(browser) == "succeeded", 30, "the page to show the job succeeded")
    for key in ("objective", "grad_norm", "test_accuracy", "cg_iterations", "bytes_moved"):
        drawn = wait_for(
            lambda: (c := chart(browser, key)) and c["iteration"] == last["iteration"] and c, 30, f"the {key} plot's last point"
        )
        assert float(drawn["value"]) == last[key], f"{key}: the plot ends at {drawn['value']}, the job's last record has {last[key]}"
        assert drawn["points"] == sum(1 for r in records if key in r and (key not in LOG_SCALE or r[key] > 0))

    members = browser.execute_script("return [...document.querySelectorAll('#members tbody tr')].map(r => r.innerText);")
    assert sum("server" in m and "live" in m for m in members) == 2, members
    assert sum("worker" in m and "live" in m for m in members) == 2, members
    assert console_errors(browser) == []
