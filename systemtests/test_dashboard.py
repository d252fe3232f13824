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

# NEXT on the fixture's two agents; their one edge is up half the rounds, so
# they disagree. Its rounds are short (~0.1 s), so it needs many of them for
# the page's one-second polls to see it run.
NEXT_JOB = """\
name: dashboard-next
train: /usr/share/datasets/fashion-mnist
format: idx
scaling: standard
layers: [784, 32, 10]
optimizer: next
agents: 2
graph: complete
time_varying: "0.5:2"
surrogate: linear
max_iterations: 150
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


def follow(cluster, browser, tmp_path, spec_yaml, plots, screenshot_at=None):
    """Submits the job, watches the page's objective plot gain points while it
    runs, and checks that each of `plots` ends at the job's last record with
    a drawable value (as doubles), one point per such record."""
    spec = tmp_path / "job.yaml"
    spec.write_text(spec_yaml)
    submitted = cluster.cli("submit", str(spec))
    job = next(word for word in submitted.split() if word.startswith("job-"))

    token = open(cluster.token_file).read().strip()
    browser.get(f"{cluster.http_url}/#token={token}")
    assert browser.title == "newtonps"
    wait_for(lambda: browser.execute_script("return window.dashboard.selected;") == job, 60, f"the page to select {job}")

    # Point counts of the objective plot seen while the job runs.
    seen, screenshot = [], False
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state, objective = job_state(browser), chart(browser, "objective")
        if state != "running" and state is not None:
            break
        if objective and (not seen or objective["points"] != seen[-1]):
            seen.append(objective["points"])
            if screenshot_at and objective["points"] >= screenshot_at and not screenshot:
                screenshot = browser.save_screenshot(os.environ["NEWTONPS_SCREENSHOT"])
        time.sleep(0.2)
    assert len(seen) >= 3 and seen == sorted(seen), f"the objective plot should gain points while the job runs: {seen}"

    log = tmp_path / "records.jsonl"
    cluster.cli("watch", job, "--log-json", str(log))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert wait_for(lambda: job_state(browser) == "succeeded", 30, "the page to show the job succeeded")
    for key in plots:
        # A logarithmic plot leaves out zeros (two agents in consensus disagree by exactly 0).
        drawable = [r for r in records if key in r and (key not in LOG_SCALE or r[key] > 0)]
        assert drawable, f"no record has a {key} to plot"
        end = drawable[-1]
        drawn = wait_for(
            lambda: (c := chart(browser, key)) and c["iteration"] == end["iteration"] and c, 30, f"the {key} plot's last point"
        )
        assert float(drawn["value"]) == end[key], f"{key}: the plot ends at {drawn['value']}, the job's record has {end[key]}"
        assert drawn["points"] == len(drawable)
    assert console_errors(browser) == []
    return browser.execute_script("return [...document.querySelectorAll('#members tbody tr')].map(r => r.innerText);")


def test_the_dashboard_follows_a_newton_job_to_its_last_record(cluster, browser, tmp_path):
    screenshot_at = 12 if os.environ.get("NEWTONPS_SCREENSHOT") else None
    members = follow(
        cluster, browser, tmp_path, JOB, ("objective", "grad_norm", "test_accuracy", "cg_iterations", "bytes_moved"),
        screenshot_at,
    )
    for role, count in (("server", 2), ("worker", 2), ("agent", 2)):
        assert sum(m.startswith(role) and "live" in m for m in members) == count, members


def test_the_dashboard_plots_a_next_jobs_disagreement(cluster, browser, tmp_path):
    follow(cluster, browser, tmp_path, NEXT_JOB, ("objective", "disagreement", "bytes_sent", "test_accuracy"))
