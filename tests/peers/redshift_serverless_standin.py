#!/usr/bin/env python3
"""A stand-in for the Redshift Serverless API (redshift-serverless, 2021-01-01) for tests.

moto has no redshift-serverless, so the integration tests start this instead. It speaks
the awsJson1_1 protocol the AWS SDKs use (POST / with `X-Amz-Target:
RedshiftServerless.<Operation>` and a JSON body) for the three operations idgraph calls,
about one workgroup in one namespace given on the command line:

  GetWorkgroup   {workgroupName}                   -> workgroup endpoint, namespaceName
  GetNamespace   {namespaceName}                   -> adminUsername
  GetCredentials {workgroupName, dbName, duration} -> dbUser, dbPassword

Anything else, or another workgroup or namespace, answers 400 with the service's error
shape. The SigV4 headers the SDK sends are ignored. With --log FILE, every request body
is appended to FILE as one JSON line {"operation": ..., "body": ...}. Standard library only.
"""

import argparse
import json
import secrets
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workgroup", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--address", required=True, help="the workgroup endpoint's address")
    p.add_argument("--endpoint-port", type=int, default=5439)
    p.add_argument("--admin", default="admin", help="the namespace's adminUsername")
    p.add_argument("--db-user", required=True, help="the dbUser GetCredentials returns")
    p.add_argument("--db-password", help="the dbPassword GetCredentials returns (default: random)")
    p.add_argument("--log", help="append each request as a JSON line to this file")
    return p.parse_args()


ARGS = parse_args()


def not_found(what, name):
    return 400, {
        "__type": "ResourceNotFoundException",
        "message": f"{what} {name} not found",
    }


def get_workgroup(body):
    name = body.get("workgroupName")
    if name != ARGS.workgroup:
        return not_found("Workgroup", name)
    return 200, {
        "workgroup": {
            "workgroupName": ARGS.workgroup,
            "workgroupId": "00000000-0000-0000-0000-000000000001",
            "namespaceName": ARGS.namespace,
            "status": "AVAILABLE",
            "port": ARGS.endpoint_port,
            "endpoint": {"address": ARGS.address, "port": ARGS.endpoint_port},
        }
    }


def get_namespace(body):
    name = body.get("namespaceName")
    if name != ARGS.namespace:
        return not_found("Namespace", name)
    return 200, {
        "namespace": {
            "namespaceName": ARGS.namespace,
            "namespaceId": "00000000-0000-0000-0000-000000000002",
            "adminUsername": ARGS.admin,
            "dbName": "dev",
            "status": "AVAILABLE",
        }
    }


def get_credentials(body):
    name = body.get("workgroupName")
    if name != ARGS.workgroup:
        return not_found("Workgroup", name)
    duration = body.get("durationSeconds", 900)
    if not 900 <= duration <= 3600:
        return 400, {
            "__type": "ValidationException",
            "message": "durationSeconds must be between 900 and 3600",
        }
    now = time.time()
    return 200, {
        "dbUser": ARGS.db_user,
        "dbPassword": ARGS.db_password or secrets.token_urlsafe(24),
        "expiration": now + duration,
        "nextRefreshTime": now + duration,
    }


OPERATIONS = {
    "GetWorkgroup": get_workgroup,
    "GetNamespace": get_namespace,
    "GetCredentials": get_credentials,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        target = self.headers.get("X-Amz-Target", "")
        service, _, operation = target.partition(".")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if ARGS.log:
            with open(ARGS.log, "a", encoding="utf-8") as log:
                log.write(json.dumps({"operation": operation, "body": body}) + "\n")
        if service != "RedshiftServerless" or operation not in OPERATIONS:
            status, answer = 400, {
                "__type": "UnknownOperationException",
                "message": f"unknown operation {target!r}",
            }
        elif not isinstance(body, dict):
            status, answer = 400, {
                "__type": "SerializationException",
                "message": "the body is not a JSON object",
            }
        else:
            status, answer = OPERATIONS[operation](body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", secrets.token_hex(16))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        # Quiet: the tests read --log, not stderr.
        pass


if __name__ == "__main__":
    ThreadingHTTPServer((ARGS.host, ARGS.port), Handler).serve_forever()
