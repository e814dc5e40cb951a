"""SigV4 against a real core, as AWS checks it: raw requests signed with botocore's own signers
(the CRT one boto3 uses here, and the pure-Python one) for the wrong region, the wrong service,
with UNSIGNED-PAYLOAD, or with an unsigned X-Amz-Invocation-Type added to a signed request are
each refused (403) and the function is not run; boto3 with the core's region keeps working."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.crt.auth import CrtSigV4Auth

from sprig._tests.reliability.support import function_component
from sprig.local_api.credentials import Credentials, load_credentials
from sprig.testing import CoreProcess

pytestmark = pytest.mark.e2e

REGION = "eu-west-1"                  # the core's awsRegion (not the us-east-1 default)
# Pinned: one worker for the whole test, so the count is every invocation that really ran.
COUNTER = (
    "runs = 0\n"
    "def handler(event, context):\n"
    "    global runs\n"
    "    runs += 1\n"
    "    return {'runs': runs}\n"
)
SIGNERS = {"crt": CrtSigV4Auth, "python": SigV4Auth}


@pytest.fixture
def core(public_tmp: Path) -> Iterator[CoreProcess]:
    with CoreProcess(public_tmp / "root", config={"awsRegion": REGION}) as proc:
        out = public_tmp / "out"
        function_component(out, "Counter", COUNTER, pinned=True)
        result = proc.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                             merge={"Counter": "1.0.0"})
        assert result["status"] == "SUCCEEDED", result
        yield proc


def runs_so_far(client: Any) -> int:
    """Invoke once more (signed properly) and return how many invocations the function saw."""
    response = client.invoke(FunctionName="Counter", Payload=b"{}")
    assert response["StatusCode"] == 200
    count: int = json.load(response["Payload"])["runs"]
    return count


def boto3_client(core: CoreProcess, creds: Credentials, region: str = REGION) -> Any:
    return boto3.client("lambda", endpoint_url=core.endpoints()["lambda"], region_name=region,
                        aws_access_key_id=creds.access_key_id,
                        aws_secret_access_key=creds.secret_access_key,
                        config=Config(retries={"total_max_attempts": 1}))


def signed(url: str, creds: Credentials, *, signer: str, region: str = REGION,
           service: str = "lambda", body: bytes = b"{}",
           headers: dict[str, str] | None = None) -> dict[str, str]:
    """The headers of a POST signed exactly as botocore signs one."""
    request = AWSRequest("POST", url, data=body, headers=headers or {})
    SIGNERS[signer](BotoCredentials(creds.access_key_id, creds.secret_access_key), service,
                    region).add_auth(request)
    return dict(request.headers.items())


def post(url: str, headers: dict[str, str], body: bytes = b"{}") -> tuple[int, str, str]:
    """(status, x-amzn-ErrorType, message) of a raw POST."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, "", response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            document = json.loads(exc.read())
            return exc.code, exc.headers.get("x-amzn-ErrorType", ""), document.get("message", "")


@pytest.mark.parametrize("signer", sorted(SIGNERS))
def test_badly_scoped_unsigned_body_or_added_header_is_refused_and_not_run(
        core: CoreProcess, signer: str) -> None:
    creds = load_credentials(core.layout.credentials)
    client = boto3_client(core, creds)
    assert runs_so_far(client) == 1
    url = core.endpoints()["lambda"] + "/2015-03-31/functions/Counter/invocations"

    refused = {
        "wrong region": post(url, signed(url, creds, signer=signer, region="us-east-1")),
        "wrong service": post(url, signed(url, creds, signer=signer, service="execute-api")),
        # Signed with UNSIGNED-PAYLOAD, then sent with another body than the one it was for.
        "unsigned payload": post(url, signed(url, creds, signer=signer, body=b"{}", headers={
            "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}), body=b'{"forged": true}'),
    }
    added = signed(url, creds, signer=signer)
    added["X-Amz-Invocation-Type"] = "Event"          # not among the SignedHeaders
    refused["added header"] = post(url, added)

    for case, (status, error_type, message) in refused.items():
        print(f"{signer} {case}: {status} {error_type}: {message}")
        assert (status, error_type) == (403, "InvalidSignatureException"), case
    assert refused["wrong region"][2].startswith(
        "Credential should be scoped to a valid region. ")
    assert f"'{REGION}'" in refused["wrong region"][2]
    assert refused["wrong service"][2].startswith(
        "Credential should be scoped to correct service: 'lambda'. ")
    assert "'UNSIGNED-PAYLOAD' is not supported" in refused["unsigned payload"][2]
    assert "x-amz-invocation-type" in refused["added header"][2]
    # Sent again exactly as signed (within the 5 minutes): accepted, it runs once.
    del added["X-Amz-Invocation-Type"]
    assert post(url, added)[0] == 200
    assert runs_so_far(client) == 3       # 1 before, the resent request, this call: none other


def test_boto3_of_another_region_gets_aws_error_and_the_core_region_works(
        core: CoreProcess) -> None:
    creds = load_credentials(core.layout.credentials)
    other = boto3_client(core, creds, region="us-east-1")
    with pytest.raises(other.exceptions.ClientError) as info:
        other.invoke(FunctionName="Counter", Payload=b"{}")
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidSignatureException"
    assert error["Message"].startswith("Credential should be scoped to a valid region. ")
    assert runs_so_far(boto3_client(core, creds)) == 1
