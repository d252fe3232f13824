"""System tests against live newtonps processes.

The session-scoped fixture `cluster` starts `$NEWTONPS_BIN cluster --servers 2
--workers 2 --agents 2 --driver-port 0 --store TMP/jobs.sqlite` (mutual TLS and a fresh
token, the defaults), waits until the driver's /readyz answers 200, and on
teardown sends SIGTERM to that one process (which stops its driver, servers
and workers) and waits for it. NEWTONPS_BIN defaults to the repo's
.build/release/newtonps.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "clients" / "python"))

DATASET = Path(os.environ.get("NEWTONPS_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
# The commands of the CLI that talk to the driver and take --driver and the security flags.
DRIVER_COMMANDS = {"submit", "jobs", "status", "watch", "cancel", "export"}
MEMBER_LINE = re.compile(r"^(driver|server|worker|agent) pid (\d+): (?:grpc (\S+), )?http (\S+)$")
START_TIMEOUT_S = 120


def binary_path() -> Path:
    return Path(os.environ.get("NEWTONPS_BIN", REPO / ".build" / "release" / "newtonps")).resolve()


@dataclass
class Member:
    role: str
    pid: int
    grpc: str | None
    http_url: str


@dataclass
class Cluster:
    """What the fixture started. `cli(*args)` runs the binary; for the driver
    commands (submit, jobs, status, watch, cancel, export) it adds --driver,
    --token-file and the client's --tls-* flags. It returns stdout and raises
    AssertionError (with the output) on a non-zero exit unless check=False,
    when it returns the CompletedProcess."""

    binary: str
    grpc: str
    http_url: str
    token_file: str
    ca: str
    client_cert: str
    client_key: str
    store: str
    members: list = field(default_factory=list)
    process: subprocess.Popen | None = None
    output: list = field(default_factory=list)

    def driver_flags(self) -> list:
        return [
            "--driver", self.grpc, "--token-file", self.token_file,
            "--tls-cert", self.client_cert, "--tls-key", self.client_key, "--tls-ca", self.ca,
        ]

    def cli(self, *args, check: bool = True, timeout: float = 600):
        command = [self.binary, *map(str, args)]
        if args and args[0] in DRIVER_COMMANDS:
            command += self.driver_flags()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if not check:
            return done
        assert done.returncode == 0, (
            f"{' '.join(command)} exited with {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stdout

    def client(self, **overrides):
        """A newtonps_client.Client for this cluster (arguments may be overridden)."""
        from newtonps_client import Client

        arguments = dict(driver=self.grpc, token_file=self.token_file, tls_cert=self.client_cert,
                         tls_key=self.client_key, tls_ca=self.ca)
        arguments.update(overrides)
        return Client(**arguments)

    def role(self, role: str) -> list:
        return [m for m in self.members if m.role == role]


def _die_with_parent():
    """In the child: SIGTERM it if pytest dies without tearing down."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _pid_is_ours(pid: int, binary: str) -> bool:
    """Whether `pid` still runs our binary (not a reused pid)."""
    try:
        return os.readlink(f"/proc/{pid}/exe").startswith(binary)
    except OSError:
        return False


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    binary = binary_path()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"no newtonps binary at {binary}: build it (swift build -c release) or set NEWTONPS_BIN")
    directory = tmp_path_factory.mktemp("cluster")
    store = directory / "jobs.sqlite"
    command = [str(binary), "cluster", "--servers", "2", "--workers", "2", "--agents", "2", "--driver-port", "0",
               "--store", str(store)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        cwd=directory, preexec_fn=_die_with_parent,
    )
    lines: list = []
    reader = threading.Thread(target=lambda: [lines.append(line.rstrip("\n")) for line in process.stdout], daemon=True)
    reader.start()

    def started() -> list:
        return [MEMBER_LINE.match(line) for line in list(lines) if MEMBER_LINE.match(line)]

    members: list = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(line.startswith("submit jobs with:") for line in list(lines)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{' '.join(command)} did not start (exit {process.poll()}); output:\n" + "\n".join(lines)
                )
            time.sleep(0.05)
        members = [Member(m[1], int(m[2]), m[3], f"http://{m[4]}") for m in started()]
        driver = next(m for m in members if m.role == "driver")
        certificates = Path(str(store) + ".certs")
        instance = Cluster(
            binary=str(binary), grpc=driver.grpc, http_url=driver.http_url, token_file=str(store) + ".token",
            ca=str(certificates / "ca.pem"), client_cert=str(certificates / "client.pem"),
            client_key=str(certificates / "client-key.pem"), store=str(store), members=members, process=process,
            output=lines,
        )
        while _http_status(f"{driver.http_url}/readyz") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the driver's /readyz never answered 200; output:\n" + "\n".join(lines))
            time.sleep(0.1)
    except BaseException:
        _stop(process, members, str(binary))
        raise
    yield instance
    _stop(process, members, str(binary))


def _stop(process: subprocess.Popen, members: list, binary: str) -> None:
    """SIGTERM to the cluster process (it stops its members), then wait;
    SIGKILL only if it lingers, and then SIGTERM any member it left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for member in members:
        if _pid_is_ours(member.pid, binary):
            os.kill(member.pid, signal.SIGTERM)


# A small Fashion-MNIST job: seconds on the cluster.
SMALL_JOB = f"""\
name: systemtest-small
train: {DATASET}
format: idx
scaling: standard
layers: [784, 32, 10]
activation: relu
loss: cross-entropy
optimizer: newton
subsample: 0.05
max_iterations: 4
seed: 7
"""


@dataclass
class FinishedJob:
    id: str
    spec: str
    #: The records the Python client's watch yielded, in order.
    records: list
    #: The final summary the watch ended with.
    summary: dict


@pytest.fixture(scope="session")
def finished_job(cluster) -> FinishedJob:
    """SMALL_JOB submitted and watched to its end with the Python client."""
    with cluster.client() as client:
        job = client.submit(SMALL_JOB)
        with client.watch(job) as watch:
            records = list(watch)
        assert watch.finished is not None, "the watch ended without the job's final summary"
        assert watch.finished["state"] == "succeeded", watch.finished
    return FinishedJob(job, SMALL_JOB, records, watch.finished)
