"""Python client of the newtonps driver's job API (gRPC `newtonps.v1.Driver`).

    from newtonps_client import Client

    with Client("127.0.0.1:7070", token_file="jobs.sqlite.token", tls_cert="jobs.sqlite.certs/client.pem",
                tls_key="jobs.sqlite.certs/client-key.pem", tls_ca="jobs.sqlite.certs/ca.pem") as client:
        job = client.submit("examples/fashion-mnist.yaml")
        for record in client.watch(job):
            print(record["iteration"], record["objective"])
        client.export(job, "model.safetensors")

The generated protobuf/gRPC modules are in `newtonps_client.pb`
(`driver_pb2`, `driver_pb2_grpc`, `common_pb2`, …).
"""

from .client import (
    AuthenticationError,
    Client,
    DriverUnavailableError,
    Exported,
    InvalidRequestError,
    JobNotFoundError,
    JobWatch,
    NewtonpsError,
    read_safetensors_header,
    record_to_dict,
    summary_to_dict,
)
from ._generated.newtonps import v1 as pb  # noqa: F401  (the generated modules)
from ._generated.newtonps.v1 import common_pb2, driver_pb2, driver_pb2_grpc  # noqa: F401

__all__ = [
    "AuthenticationError",
    "Client",
    "DriverUnavailableError",
    "Exported",
    "InvalidRequestError",
    "JobNotFoundError",
    "JobWatch",
    "NewtonpsError",
    "read_safetensors_header",
    "record_to_dict",
    "summary_to_dict",
]
