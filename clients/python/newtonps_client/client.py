"""A client of the newtonps driver's job API (`newtonps.v1.Driver`)."""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Union

import grpc

from ._generated.newtonps.v1 import driver_pb2, driver_pb2_grpc

__all__ = [
    "Client",
    "Exported",
    "JobWatch",
    "NewtonpsError",
    "AuthenticationError",
    "DriverUnavailableError",
    "JobNotFoundError",
    "InvalidRequestError",
    "record_to_dict",
    "summary_to_dict",
    "read_safetensors_header",
]

DEFAULT_DRIVER = "127.0.0.1:7070"
#: The shortest token the driver accepts (ClusterToken.minimumLength).
MINIMUM_TOKEN_LENGTH = 16
#: The driver refuses job specs over 1 MiB (WireSettings.maxJobSpecBytes).
MAX_JOB_SPEC_BYTES = 1 << 20
#: Responses up to 512 MiB, like the Swift client (a large model's export).
MAX_MESSAGE_BYTES = 512 << 20
#: How long a submission may take: the driver indexes data files it has no
#: index of before it answers (DriverClient.submitTimeout).
SUBMIT_TIMEOUT_S = 600.0
SAFETENSORS_FORMAT = "newtonps-mlp-v1"


class NewtonpsError(Exception):
    """A call to the driver failed; the message says why and what to do."""

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None):
        super().__init__(message)
        #: The gRPC status code, when the driver (or gRPC) gave one.
        self.code = code


class AuthenticationError(NewtonpsError):
    """The driver refused the cluster token (missing or wrong)."""


class DriverUnavailableError(NewtonpsError):
    """The driver could not be reached (not running, wrong address, TLS failure)."""


class JobNotFoundError(NewtonpsError):
    """The driver has no job of that id."""


class InvalidRequestError(NewtonpsError):
    """The driver refused the request, e.g. a job spec with problems (all listed)."""


def _env(name: str) -> Optional[str]:
    value = os.environ.get(name)
    return value if value else None


def _read_token(path: str) -> str:
    """The token in `path`, checked as the driver does (ClusterToken)."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise NewtonpsError(f"cannot read the token file {path}: {error.strerror or error}") from None
    if len(text) < MINIMUM_TOKEN_LENGTH or not all(0x21 <= ord(c) < 0x7F for c in text):
        raise NewtonpsError(
            f"the token in {path} must be at least {MINIMUM_TOKEN_LENGTH} printable ASCII characters without spaces"
        )
    return text


def _read_file(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise NewtonpsError(f"cannot read the TLS {what} {path}: {error.strerror or error}") from None


def record_to_dict(record: driver_pb2.IterationRecord) -> dict:
    """An iteration record as a dict with the keys and values of the CLI's
    `--log-json` lines: every field by its proto name, optional fields only
    when set, `phase_s` as a dict."""
    out: dict[str, Any] = {}
    for field in record.DESCRIPTOR.fields:
        if field.has_presence and not record.HasField(field.name):
            continue
        value = getattr(record, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = dict(value)
        out[field.name] = value
    return out


def summary_to_dict(summary: driver_pb2.JobSummary) -> dict:
    """A job summary as a dict (`objective` and `test_accuracy` only when known)."""
    return record_to_dict(summary)  # same rules: every field, optional ones when set


def read_safetensors_header(data: Union[bytes, str, os.PathLike]) -> dict:
    """The JSON header of a safetensors file (bytes or path): tensor entries
    by name and `__metadata__`. Raises ValueError for a malformed file."""
    if not isinstance(data, (bytes, bytearray)):
        with open(data, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError(f"{data}: too short for a safetensors file")
            (length,) = struct.unpack("<Q", head)
            data = head + f.read(length)
    if len(data) < 8:
        raise ValueError("too short for a safetensors file")
    (length,) = struct.unpack("<Q", bytes(data[:8]))
    if length > len(data) - 8:
        raise ValueError(f"safetensors header length {length} exceeds the {len(data) - 8} bytes that follow it")
    try:
        header = json.loads(bytes(data[8 : 8 + length]))
    except ValueError as error:
        raise ValueError(f"safetensors header is not JSON: {error}") from None
    if not isinstance(header, dict):
        raise ValueError("safetensors header is not a JSON object")
    return header


@dataclass(frozen=True)
class Exported:
    """What `Client.export` wrote."""

    path: str
    #: The iteration whose weights the model holds (None: not recorded).
    iteration: Optional[int]
    #: The job's state when exported ("succeeded", or "cancelled"/"failed" for a checkpoint's model).
    state: str
    #: Neurons per layer, input first (from the file's metadata).
    layers: list


class JobWatch:
    """Iterates over a job's iteration records (dicts, as `Client.watch`
    describes); once iteration ends, `finished` holds the job's final summary.
    `close()` stops following early."""

    def __init__(self, client: "Client", job_id: str):
        self._client = client
        self.job_id = job_id
        #: The final job summary (a dict), set when the stream ends with the job.
        self.finished: Optional[dict] = None
        self._call = client._stub.WatchJob(
            driver_pb2.JobRequest(job_id=job_id), metadata=client._metadata, timeout=None
        )

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        while True:
            try:
                event = next(self._call)
            except StopIteration:
                raise
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.CANCELLED and self._call.cancelled():
                    raise StopIteration from None
                raise self._client._error(error, "WatchJob", self.job_id) from None
            kind = event.WhichOneof("kind")
            if kind == "record":
                return record_to_dict(event.record)
            if kind == "finished":
                self.finished = summary_to_dict(event.finished)

    def close(self) -> None:
        """Stops following the job (the job itself goes on)."""
        self._call.cancel()

    def __enter__(self) -> "JobWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Client:
    """A connection to a newtonps driver's job API.

    Every argument left out comes from the environment, like the CLI:
    `driver` from NEWTONPS_DRIVER (default 127.0.0.1:7070), `token_file`
    from NEWTONPS_TOKEN_FILE, `tls_cert`/`tls_key`/`tls_ca` from
    NEWTONPS_TLS_CERT/KEY/CA. With all three TLS files the connection is
    mutual TLS (the client certificate, e.g. `STORE.certs/client.pem` of
    `newtonps cluster`); with none, plaintext. Every call carries the
    cluster token as `authorization: Bearer TOKEN` metadata.

    `timeout` is the deadline in seconds of each unary call (a submission
    gets at least 600 s, a watch none). Use as a context manager, or call
    `close()`.
    """

    def __init__(
        self,
        driver: Optional[str] = None,
        token_file: Optional[str] = None,
        tls_cert: Optional[str] = None,
        tls_key: Optional[str] = None,
        tls_ca: Optional[str] = None,
        *,
        timeout: float = 30.0,
    ):
        self.driver = driver or _env("NEWTONPS_DRIVER") or DEFAULT_DRIVER
        self.token_file = token_file or _env("NEWTONPS_TOKEN_FILE")
        cert = tls_cert or _env("NEWTONPS_TLS_CERT")
        key = tls_key or _env("NEWTONPS_TLS_KEY")
        ca = tls_ca or _env("NEWTONPS_TLS_CA")
        self.timeout = timeout
        self.tls = any((cert, key, ca))
        if self.tls and not all((cert, key, ca)):
            raise NewtonpsError("TLS needs all three of tls_cert, tls_key and tls_ca (or NEWTONPS_TLS_CERT/KEY/CA)")
        self._metadata = (("authorization", f"Bearer {_read_token(self.token_file)}"),) if self.token_file else ()
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        if self.tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read_file(ca, "CA certificate"),
                private_key=_read_file(key, "key"),
                certificate_chain=_read_file(cert, "certificate"),
            )
            self._channel = grpc.secure_channel(self.driver, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(self.driver, options=options)
        self._stub = driver_pb2_grpc.DriverStub(self._channel)

    # Connection

    def close(self) -> None:
        """Closes the connection."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _error(self, error: grpc.RpcError, method: str, job_id: Optional[str] = None) -> NewtonpsError:
        """A NewtonpsError that names the problem of a failed call."""
        code, details = error.code(), error.details() or ""
        if code == grpc.StatusCode.UNAUTHENTICATED:
            given = f"wrong token in {self.token_file}" if self.token_file else "no token given"
            return AuthenticationError(
                f"the driver at {self.driver} refused {method}: {given}; give the cluster's token with "
                f"token_file= or NEWTONPS_TOKEN_FILE ({details})",
                code,
            )
        if code == grpc.StatusCode.UNAVAILABLE:
            hint = (
                "is it running there, and do its certificate and CA match tls_cert/tls_key/tls_ca?"
                if self.tls
                else "is it running there? (if the driver uses TLS, give tls_cert, tls_key and tls_ca "
                "or NEWTONPS_TLS_CERT/KEY/CA)"
            )
            return DriverUnavailableError(f"cannot reach the driver at {self.driver}: {details}; {hint}", code)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return DriverUnavailableError(
                f"the driver at {self.driver} did not answer {method} within the deadline: {details}", code
            )
        if code == grpc.StatusCode.NOT_FOUND:
            return JobNotFoundError(f"the driver at {self.driver} has no job '{job_id}': {details}", code)
        if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
            return InvalidRequestError(f"the driver at {self.driver} refused {method}: {details}", code)
        return NewtonpsError(f"{method} on the driver at {self.driver} failed ({code.name}): {details}", code)

    def _call(self, method: str, request, *, timeout: Optional[float] = None, job_id: Optional[str] = None):
        try:
            return getattr(self._stub, method)(
                request, metadata=self._metadata, timeout=self.timeout if timeout is None else timeout
            )
        except grpc.RpcError as error:
            raise self._error(error, method, job_id) from None

    # Jobs

    def submit(self, spec: Union[str, os.PathLike, Mapping[str, Any]]) -> str:
        """Submits a job and returns its id (e.g. "job-0001").

        `spec` is the YAML text of a job spec (docs/JOBS.md), a path to a
        YAML file (a `pathlib.Path`, or a one-line string without ": "),
        or a dict of spec keys. A bad spec raises InvalidRequestError
        listing every problem."""
        if isinstance(spec, Mapping):
            text = json.dumps(dict(spec))  # JSON is YAML
        elif isinstance(spec, os.PathLike) or ("\n" not in spec and ": " not in spec):
            try:
                text = Path(spec).read_text(encoding="utf-8")
            except OSError as error:
                raise NewtonpsError(f"cannot read the job spec {spec}: {error.strerror or error}") from None
        else:
            text = spec
        size = len(text.encode("utf-8"))
        if size > MAX_JOB_SPEC_BYTES:
            raise InvalidRequestError(f"the job spec is {size} bytes; the driver takes at most {MAX_JOB_SPEC_BYTES}")
        response = self._call(
            "SubmitJob", driver_pb2.SubmitJobRequest(spec_yaml=text), timeout=max(self.timeout, SUBMIT_TIMEOUT_S)
        )
        return response.job.id

    def jobs(self) -> list:
        """Every job the driver knows, as summary dicts (id, name, state, …)."""
        return [summary_to_dict(j) for j in self._call("ListJobs", driver_pb2.ListJobsRequest()).jobs]

    def status(self, job_id: str) -> dict:
        """The job's summary (id, name, state, created_at, updated_at,
        iterations, stop_reason, error, and objective/test_accuracy when
        known) with `spec_yaml` and `records` (the iteration records so far,
        as dicts) added."""
        response = self._call("GetJob", driver_pb2.JobRequest(job_id=job_id), job_id=job_id)
        out = summary_to_dict(response.job)
        out["spec_yaml"] = response.spec_yaml
        out["records"] = [record_to_dict(r) for r in response.records]
        return out

    def watch(self, job_id: str) -> JobWatch:
        """Follows a job: iterating yields every iteration record, those
        recorded so far and then each new one, as a dict with the keys the
        CLI's `--log-json` writes (iteration, elapsed_s, objective,
        grad_norm, cg_iterations, lambda, step, line_search_steps,
        test_accuracy, outcome, phase_s, …; optional ones only when set).
        Iteration ends when the job does; the returned JobWatch's
        `finished` then holds the final summary."""
        return JobWatch(self, job_id)

    def wait(self, job_id: str) -> dict:
        """Follows a job to its end and returns its final summary."""
        with self.watch(job_id) as w:
            for _ in w:
                pass
        if w.finished is None:
            raise NewtonpsError(f"the driver at {self.driver} closed the watch of {job_id} before the job ended")
        return w.finished

    def cancel(self, job_id: str) -> dict:
        """Cancels a queued or running job; returns its summary."""
        return summary_to_dict(self._call("CancelJob", driver_pb2.JobRequest(job_id=job_id), job_id=job_id))

    def export_bytes(self, job_id: str) -> tuple:
        """The job's model as safetensors bytes, the iteration it is from
        (None: not recorded) and the job's state."""
        response = self._call("ExportModel", driver_pb2.JobRequest(job_id=job_id), job_id=job_id)
        return response.safetensors, (response.iteration if response.iteration >= 0 else None), response.state

    def export(self, job_id: str, path: Union[str, os.PathLike]) -> Exported:
        """Writes the job's model (safetensors: the final one, or the last
        checkpoint's for a job that did not finish) to `path`, like
        `newtonps export`: checked first, then written atomically."""
        data, iteration, state = self.export_bytes(job_id)
        try:
            header = read_safetensors_header(data)
        except ValueError as error:
            raise NewtonpsError(f"job {job_id}: the driver sent no valid safetensors: {error}") from None
        metadata = header.get("__metadata__", {})
        if metadata.get("format") != SAFETENSORS_FORMAT:
            raise NewtonpsError(
                f"job {job_id}: not a newtonps model (metadata format {metadata.get('format')!r}, "
                f"expected {SAFETENSORS_FORMAT!r})"
            )
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, temporary = tempfile.mkstemp(prefix=".newtonps-export-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        layers = [int(n) for n in metadata.get("layers", "").split(",") if n]
        return Exported(path=path, iteration=iteration, state=state, layers=layers)
