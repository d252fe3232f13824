"""`python -m newtonps_client`: the job commands of the newtonps CLI
(submit, jobs, status, watch, cancel, export) through the Python client,
with the same flags and NEWTONPS_* environment variables."""

from __future__ import annotations

import argparse
import json
import sys

from .client import Client, NewtonpsError


def _follow(client: Client, job: str, log_json: str | None) -> int:
    log = open(log_json, "w") if log_json else None
    try:
        with client.watch(job) as watch:
            for r in watch:
                accuracy = f"{r['test_accuracy'] * 100:.2f}%" if "test_accuracy" in r else "-"
                print(
                    f"iter {r['iteration']:3d}  {r['elapsed_s']:7.1f}s  f {r['objective']:.6e}  "
                    f"|g| {r['grad_norm']:.3e}  cg {r['cg_iterations']:3d}  test {accuracy}",
                    flush=True,
                )
                if log:
                    log.write(json.dumps(r, sort_keys=True) + "\n")
    finally:
        if log:
            log.close()
    end = watch.finished
    if end is None:
        raise NewtonpsError(f"the driver closed the watch of {job} before the job ended")
    accuracy = f"{end['test_accuracy'] * 100:.2f}%" if "test_accuracy" in end else "n/a"
    print(f"{end['id']} {end['state']} after {end['iterations']} iterations "
          f"(stop: {end['stop_reason'] or '-'}), test accuracy {accuracy}")
    if end["state"] != "succeeded":
        raise NewtonpsError(f"job {end['id']} {end['state']}" + (f": {end['error']}" if end["error"] else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m newtonps_client", description=__doc__)
    parser.add_argument("--driver", help="the driver's gRPC address (env NEWTONPS_DRIVER, default 127.0.0.1:7070)")
    parser.add_argument("--token-file", help="the cluster token (env NEWTONPS_TOKEN_FILE)")
    parser.add_argument("--tls-cert", help="client certificate, PEM (env NEWTONPS_TLS_CERT)")
    parser.add_argument("--tls-key", help="its key, PEM (env NEWTONPS_TLS_KEY)")
    parser.add_argument("--tls-ca", help="the cluster's CA, PEM (env NEWTONPS_TLS_CA)")
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="submit a job spec (YAML)")
    submit.add_argument("spec")
    submit.add_argument("--follow", action="store_true")
    submit.add_argument("--log-json", help="with --follow: one JSON record per iteration")
    commands.add_parser("jobs", help="list the jobs")
    for name in ("status", "cancel"):
        commands.add_parser(name).add_argument("id")
    watch = commands.add_parser("watch", help="follow a job until it ends")
    watch.add_argument("id")
    watch.add_argument("--log-json")
    export = commands.add_parser("export", help="save a job's model (safetensors)")
    export.add_argument("id")
    export.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    try:
        with Client(args.driver, args.token_file, args.tls_cert, args.tls_key, args.tls_ca) as client:
            if args.command == "submit":
                job = client.submit(args.spec if args.spec != "-" else sys.stdin.read())
                print(f"submitted {job}")
                return _follow(client, job, args.log_json) if args.follow else 0
            if args.command == "jobs":
                for j in client.jobs():
                    print(f"{j['id']:10} {j['state']:10} {j['iterations']:5} {j.get('objective', '-')!s:24} {j['name']}")
            elif args.command == "status":
                print(json.dumps(client.status(args.id), indent=2, sort_keys=True))
            elif args.command == "watch":
                return _follow(client, args.id, args.log_json)
            elif args.command == "cancel":
                j = client.cancel(args.id)
                print(f"{j['id']} is {j['state']}")
            elif args.command == "export":
                e = client.export(args.id, args.out)
                of = f"iteration {e.iteration}" if e.iteration is not None else "its last iteration"
                print(f"saved {args.id}'s model ({'-'.join(map(str, e.layers))}) of {of}, job {e.state}, to {e.path}")
    except NewtonpsError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
