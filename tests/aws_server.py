"""AWS for the AWS source's tests: moto's server mode (a real HTTP endpoint speaking the IAM, STS, Organizations,
SSO Admin and Identity Store APIs) on a free loopback port, and a throttling proxy in front of it.

moto keeps its state in this process: ``reset()`` empties every account between tests, ``auth(n)`` switches on
IAM authentication after n more requests (moto's INITIAL_NO_AUTH_ACTION_COUNT), so a restricted user's keys are
refused what its policies do not allow.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import boto3
import httpx

HOME = "123456789012"  # moto's default account: the credentials' own
OTHER = "210987654321"  # a second account, reached by assuming a role
REGION = "us-east-1"
MANAGED = "MOTO_IAM_LOAD_MANAGED_POLICIES"
# The AWS managed policies the accounts hold: those the tests attach, the ones the source knows as privileged by
# name, and the read-only ones an auditor's role is usually given. moto would otherwise parse all of AWS's (about
# 1,600, 5 MB of JSON) into every account at every reset: seconds per test, for policies the source never reads
# (it leaves AWS managed policies out of GetAccountAuthorizationDetails) and no test attaches.
MANAGED_POLICIES = (
    "AdministratorAccess",
    "ReadOnlyAccess",
    "IAMFullAccess",
    "AWSOrganizationsFullAccess",
    "PowerUserAccess",
    "SecurityAudit",
    "IAMReadOnlyAccess",
)
# AWS's documented example keys: moto accepts any keys while authentication is off.
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Moto:
    def __init__(self):
        from moto.server import ThreadedMotoServer

        # AWS managed policies (AdministratorAccess, ReadOnlyAccess ...) exist in every account, as at AWS. moto
        # reads this when an account's IAM is first used (its server runs in this process).
        self._managed = os.environ.get(MANAGED)
        os.environ[MANAGED] = "true"
        self._policy_data = _keep_managed_policies(MANAGED_POLICIES)
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.stop()
        _restore_managed_policies(self._policy_data)
        if self._managed is None:
            os.environ.pop(MANAGED, None)
        else:
            os.environ[MANAGED] = self._managed

    def reset(self):
        self.auth(None)
        httpx.post(f"{self.url}/moto-api/reset", timeout=30).raise_for_status()

    def auth(self, after: int | None):
        """Authenticate (and authorize) every request after ``after`` more; None: never (moto's default)."""
        value = after if after is not None else 10**12
        httpx.post(f"{self.url}/moto-api/reset-auth", content=str(value), timeout=30).raise_for_status()

    def client(self, service: str, **credentials):
        credentials = credentials or {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET_KEY}
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, **credentials)

    def in_account(self, account_id: str, service: str):
        """A client acting in another account: credentials of a role assumed there (moto files them under the
        role's account)."""
        credentials = self.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/SOXGovRead", RoleSessionName="setup"
        )["Credentials"]
        return self.client(
            service,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )


def _keep_managed_policies(names) -> str:
    """Narrow the AWS managed policies moto puts in each account (IAM) and offers to permission sets (IAM
    Identity Center) to ``names``; returns moto's own data, for _restore_managed_policies."""
    from moto.iam import models as iam_models
    from moto.ssoadmin import models as ssoadmin_models

    everything = iam_models.aws_managed_policies_data
    policies = json.loads(everything)
    kept = json.dumps({name: policies[name] for name in names})
    iam_models.aws_managed_policies_data = ssoadmin_models.aws_managed_policies_data = kept
    return everything


def _restore_managed_policies(data: str) -> None:
    from moto.iam import models as iam_models
    from moto.ssoadmin import models as ssoadmin_models

    iam_models.aws_managed_policies_data = ssoadmin_models.aws_managed_policies_data = data


THROTTLED = (
    b'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
    b"<Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
)


class ThrottlingProxy:
    """Forwards to moto, but answers the first ``throttle`` requests for ``action`` (an IAM query action such
    as GetAccountAuthorizationDetails) with IAM's own throttling error (400 Throttling), as AWS does when an
    account's request rate is exceeded. ``throttle=None``: throttle that action for ever."""

    def __init__(self, target: str, action: str, throttle: int | None):
        self.target = urlsplit(target)
        self.action = action.encode()
        self.remaining = throttle
        self.throttled = 0
        self.forwarded = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy._throttle(body):
                    self.send_response(400)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(THROTTLED)))
                    self.end_headers()
                    self.wfile.write(THROTTLED)
                    return
                upstream = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request("POST", self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "server",
                        "date",
                    ):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()
                with proxy.lock:
                    proxy.forwarded += 1

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _throttle(self, body: bytes) -> bool:
        if b"Action=" + self.action not in body:
            return False
        with self.lock:
            if self.remaining is not None:
                if self.remaining <= 0:
                    return False
                self.remaining -= 1
            self.throttled += 1
            return True

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
