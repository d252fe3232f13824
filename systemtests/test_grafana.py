"""Every metric the Grafana dashboard (ops/grafana/newtonps-dashboard.json)
queries is exported on /metrics by the live driver, servers or workers, after
a job has run (so that lazily created series exist), with the labels the
queries select or group by. Histograms count as exported through their
_bucket, _sum and _count series. `up` is made by Prometheus itself, per
scrape target, and is checked against the scrape job names instead."""

import json
import re
import urllib.request

import pytest
import yaml

from conftest import REPO

DASHBOARD = REPO / "ops" / "grafana" / "newtonps-dashboard.json"
# Series Prometheus makes itself for every target rather than scraping them.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                 "scrape_series_added"}
# Label values a query may select that a healthy run need not have produced.
MAY_BE_ABSENT = {("outcome", "error")}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
            "inf", "nan"}


def dashboard_queries() -> list:
    """(panel title, expr) for every query target of every panel, rows' panels included."""
    found = []

    def walk(node, title=None):
        if isinstance(node, dict):
            title = node.get("title", title)
            for target in node.get("targets", []) or []:
                if target.get("expr"):
                    found.append((title, target["expr"]))
            for value in node.values():
                walk(value, title)
        elif isinstance(node, list):
            for value in node:
                walk(value, title)

    walk(json.loads(DASHBOARD.read_text()))
    return found


def selectors(expr: str) -> tuple:
    """(metric, {label name: value or None}) for every vector selector in a
    PromQL expression (the value for `=` matchers), and the label names its
    aggregations group by."""
    literals = []  # string literals cannot hold names: each becomes "N", its index here

    def stash(match):
        literals.append(match[1])
        return f'"{len(literals) - 1}"'

    text = re.sub(r'"((?:[^"\\]|\\.)*)"', stash, expr)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    grouping = set()
    for match in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        grouping |= {label.strip() for label in match.group(1).split(",") if label.strip()}
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = []
    for match in re.finditer(r"(?<![\w$:.])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?", text):
        name, matchers, call = match.groups()
        if call or name.lower() in KEYWORDS:
            continue  # a function or aggregation, or a keyword
        labels = {
            label: literals[int(value)] if operator == "=" else None
            for label, operator, value in re.findall(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"(\d+)"', matchers or "")
        }
        found.append((name, labels))
    return found, grouping


def parse_exposition(text: str, into: dict) -> None:
    """Adds sample name -> {label name: {values}} from Prometheus text format."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s", line)
        assert match, f"not a sample line: {line!r}"
        labels = into.setdefault(match.group(1), {})
        for label, value in re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', match.group(3) or ""):
            labels.setdefault(label, set()).add(value)


def test_the_query_parser():
    found, grouping = selectors(
        'histogram_quantile(0.99, sum by (le, method) (rate(newtonps_rpc_seconds_bucket{side="client"}[5m])))'
        ' / clamp_min(increase(newtonps_x_total[$__rate_interval]), 1) * 60'
    )
    assert found == [("newtonps_rpc_seconds_bucket", {"side": "client"}), ("newtonps_x_total", {})]
    assert grouping == {"le", "method"}


@pytest.fixture(scope="module")
def exported_series(cluster, finished_job) -> dict:
    """Every series name the cluster's processes export, with its labels' values."""
    series = {}
    for member in cluster.members:
        with urllib.request.urlopen(f"{member.http_url}/metrics", timeout=10) as response:
            parse_exposition(response.read().decode(), series)
    return series


def test_every_dashboard_metric_is_exported(exported_series):
    queries = dashboard_queries()
    assert len(queries) >= 10, "the dashboard's queries were not found"
    problems = []
    for title, expr in queries:
        found, grouping = selectors(expr)
        assert found, f"no metric found in {expr!r}"
        for name, labels in found:
            if name in SCRAPE_SERIES:
                continue
            if name not in exported_series:
                problems.append(f"panel {title!r}: {name} is exported by no driver, server or worker ({expr})")
                continue
            exported = exported_series[name]
            missing = (set(labels) | grouping) - set(exported)
            if missing:
                problems.append(f"panel {title!r}: {name} has no label {sorted(missing)} ({expr})")
            for label, value in labels.items():
                if value is not None and label in exported and value not in exported[label]:
                    if (label, value) not in MAY_BE_ABSENT:
                        problems.append(f"panel {title!r}: no {name} series has {label}={value!r} "
                                        f"(seen: {sorted(exported[label])}) ({expr})")
    assert not problems, "\n".join(problems)


def test_up_matches_the_scrape_job_names():
    """`up{job=~"newtonps.*"}` selects the jobs of ops/prometheus.yml and of the Kubernetes scrape config."""
    jobs = [job["job_name"] for job in yaml.safe_load((REPO / "ops" / "prometheus.yml").read_text())["scrape_configs"]]
    (configmap,) = [d for d in yaml.safe_load_all((REPO / "ops" / "kubernetes" / "prometheus-scrape.yaml").read_text()) if d]
    jobs += [job["job_name"] for job in yaml.safe_load(configmap["data"]["prometheus.yml"])["scrape_configs"]]
    patterns = [re.search(r'up\{job=~"([^"]*)"\}', expr) for _, expr in dashboard_queries()]
    for pattern in filter(None, patterns):
        newtonps_jobs = [job for job in jobs if job.startswith("newtonps")]
        assert newtonps_jobs and all(re.fullmatch(pattern.group(1), job) for job in newtonps_jobs), (pattern[1], jobs)
