"""The Python client (clients/python) against a live driver: its records equal
the CLI's, status, cancel, export, and clear errors for a wrong token, an
unreachable driver and an unknown job."""

import json
import math
import socket
import subprocess
import sys

import pytest

from conftest import REPO, SMALL_JOB
from newtonps_client import (
    AuthenticationError,
    Client,
    DriverUnavailableError,
    InvalidRequestError,
    JobNotFoundError,
    NewtonpsError,
    read_safetensors_header,
)


def same_doubles(a, b, where=""):
    """a and b have the same keys and, as doubles, the same values (nested dicts too)."""
    if isinstance(a, dict) or isinstance(b, dict):
        assert isinstance(a, dict) and isinstance(b, dict), f"{where}: {a!r} vs {b!r}"
        assert sorted(a) == sorted(b), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for key in a:
            same_doubles(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, str) or isinstance(b, str):
        assert a == b, f"{where}: {a!r} vs {b!r}"
    else:
        assert float(a) == float(b) or (math.isnan(a) and math.isnan(b)), f"{where}: {a!r} vs {b!r}"


def test_watch_yields_the_records_the_cli_logs(cluster, finished_job, tmp_path):
    records = finished_job.records
    assert [r["iteration"] for r in records] == list(range(5)), "iteration 0 (the start) and 4 Newton iterations"
    assert records[0]["outcome"] == "start"
    assert all("test_accuracy" in r and "phase_s" in r for r in records)
    assert finished_job.summary["iterations"] == 4 and finished_job.summary["stop_reason"] == "iteration-limit"

    log = tmp_path / "cli.jsonl"
    cluster.cli("watch", finished_job.id, "--log-json", log)
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(logged) == len(records)
    for i, (ours, theirs) in enumerate(zip(records, logged)):
        same_doubles(ours, theirs, f"record {i}")

    # A second watch of the finished job replays the same records.
    with cluster.client() as client:
        again = client.watch(finished_job.id)
        assert list(again) == records and again.finished == finished_job.summary


def test_status_and_jobs(cluster, finished_job):
    with cluster.client() as client:
        status = client.status(finished_job.id)
        listed = {j["id"]: j for j in client.jobs()}
    assert status["state"] == "succeeded" and status["name"] == "systemtest-small"
    assert status["iterations"] == 4 and status["records"] == finished_job.records
    assert status["objective"] == finished_job.records[-1]["objective"]
    assert status["test_accuracy"] == finished_job.records[-1]["test_accuracy"]
    assert "layers: [784, 32, 10]" in status["spec_yaml"]
    assert listed[finished_job.id]["state"] == "succeeded"
    assert f"job {finished_job.id} (systemtest-small) is succeeded; 4 iterations" in cluster.cli("status", finished_job.id)


def test_cancel_a_running_job(cluster):
    spec = {  # a dict: sent as JSON, which is YAML
        "name": "systemtest-cancel",
        "train": SMALL_JOB.split("train: ")[1].split("\n")[0],
        "format": "idx",
        "layers": [784, 32, 10],
        "subsample": 0.05,
        "max_iterations": 500,
        "seed": 8,
    }
    with cluster.client() as client:
        job = client.submit(spec)
        seen = []
        with client.watch(job) as watch:
            for record in watch:
                seen.append(record["iteration"])
                if len(seen) == 2:
                    summary = client.cancel(job)
                    assert summary["id"] == job
        assert watch.finished["state"] == "cancelled", watch.finished
        assert watch.finished["iterations"] < 500
        status = client.status(job)
        assert status["state"] == "cancelled" and status["stop_reason"] in ("cancelled", "")
        # A cancelled job keeps its last checkpoint's model.
        data, iteration, state = client.export_bytes(job)
        assert state == "cancelled" and iteration is not None and 0 <= iteration <= watch.finished["iterations"]
        assert read_safetensors_header(data)["__metadata__"]["layers"] == "784,32,10"
    assert f"job {job} (systemtest-cancel) is cancelled" in cluster.cli("status", job)


def test_export_writes_what_the_cli_writes(cluster, finished_job, tmp_path):
    with cluster.client() as client:
        exported = client.export(finished_job.id, tmp_path / "python.safetensors")
    assert exported.state == "succeeded" and exported.iteration == 4 and exported.layers == [784, 32, 10]
    cluster.cli("export", finished_job.id, "--out", tmp_path / "cli.safetensors")
    assert (tmp_path / "python.safetensors").read_bytes() == (tmp_path / "cli.safetensors").read_bytes()
    header = read_safetensors_header(tmp_path / "python.safetensors")
    assert header["layers.0.weight"]["shape"] == [32, 784] and header["layers.1.bias"]["shape"] == [10]


def test_a_wrong_token_is_refused_with_a_clear_error(cluster, tmp_path):
    wrong = tmp_path / "wrong.token"
    wrong.write_text("0123456789abcdef0123456789abcdef\n")
    with cluster.client(token_file=str(wrong)) as client, pytest.raises(AuthenticationError) as raised:
        client.jobs()
    message = str(raised.value)
    assert "refused" in message and f"wrong token in {wrong}" in message, message
    with cluster.client(token_file=None) as client, pytest.raises(AuthenticationError, match="no token given"):
        client.status("job-0001")

    # The CLI refuses the same way.
    flags = cluster.driver_flags()
    flags[flags.index("--token-file") + 1] = str(wrong)
    done = subprocess.run([cluster.binary, "jobs", *flags], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "wrong token" in done.stderr, done.stderr


def test_a_short_token_file_is_refused_before_any_call(cluster, tmp_path):
    short = tmp_path / "short.token"
    short.write_text("too-short\n")
    with pytest.raises(NewtonpsError, match="at least 16 printable ASCII"):
        cluster.client(token_file=str(short))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_driver_is_a_clear_error(cluster):
    address = f"127.0.0.1:{free_port()}"
    with cluster.client(driver=address, timeout=10) as client, pytest.raises(DriverUnavailableError) as raised:
        client.jobs()
    assert f"cannot reach the driver at {address}" in str(raised.value), str(raised.value)


def test_plaintext_against_the_tls_driver_is_a_clear_error(cluster):
    with Client(cluster.grpc, token_file=cluster.token_file, timeout=10) as client:
        with pytest.raises(DriverUnavailableError, match="if the driver uses TLS"):
            client.jobs()


def test_an_unknown_job_is_a_clear_error(cluster):
    with cluster.client() as client:
        for call in (client.status, client.cancel, client.export_bytes, lambda j: list(client.watch(j))):
            with pytest.raises(JobNotFoundError, match="no job 'job-9999'"):
                call("job-9999")


def test_a_bad_spec_is_refused_naming_the_key(cluster):
    with cluster.client() as client, pytest.raises(InvalidRequestError) as raised:
        client.submit("layers: [784, 32, 10]\nmax_iteration: 3\n")
    assert "max_iteration" in str(raised.value), str(raised.value)


def test_python_m_newtonps_client(cluster, finished_job, tmp_path):
    environment = {
        "NEWTONPS_DRIVER": cluster.grpc,
        "NEWTONPS_TOKEN_FILE": cluster.token_file,
        "NEWTONPS_TLS_CERT": cluster.client_cert,
        "NEWTONPS_TLS_KEY": cluster.client_key,
        "NEWTONPS_TLS_CA": cluster.ca,
        "PYTHONPATH": str(REPO / "clients" / "python"),
        "PATH": "/usr/bin:/bin",
    }
    log = tmp_path / "python.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "newtonps_client", "watch", finished_job.id, "--log-json", str(log)],
        capture_output=True, text=True, env=environment, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"{finished_job.id} succeeded after 4 iterations" in done.stdout
    assert [json.loads(line) for line in log.read_text().splitlines()] == finished_job.records
    done = subprocess.run(
        [sys.executable, "-m", "newtonps_client", "status", "job-9999"],
        capture_output=True, text=True, env=environment, timeout=120,
    )
    assert done.returncode == 1 and "no job 'job-9999'" in done.stderr
