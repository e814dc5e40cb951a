"""sigv4.verify against botocore's real signers: what boto3 signs, we accept.

boto3 signs with the awscrt (C) signer when awscrt is installed, as it is here for awsiotsdk, and
with the pure-Python SigV4Auth otherwise: every case runs against both.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.crt.auth import CrtSigV4Auth

from sprig.local_api import sigv4
from sprig.local_api.credentials import Credentials
from sprig.local_api.sigv4 import AuthError, AuthFailure

KEY = Credentials("SPRIGABCDEFGHIJ12345", "s" * 40)
REGION = "us-east-1"          # the core's awsRegion in these tests
ENDPOINT = "http://127.0.0.1:4567"
SIGNERS = {"python": SigV4Auth, "crt": CrtSigV4Auth}


@pytest.fixture(params=sorted(SIGNERS), autouse=True)
def signer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test with one of botocore's two SigV4 signers."""
    name: str = request.param
    monkeypatch.setitem(SIGNERS, "current", SIGNERS[name])
    return name


def boto_sign(
    url: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    secret: str = KEY.secret_access_key,
    access_key: str = KEY.access_key_id,
    region: str = REGION,
    service: str = "lambda",
) -> AWSRequest:
    """Sign a request exactly as boto3 does (same class, same code path)."""
    request = AWSRequest("POST", url, data=body, headers=headers or {}, params=params or {})
    SIGNERS["current"](BotoCredentials(access_key, secret), service, region).add_auth(request)
    return request


def check(request: AWSRequest, *, now: datetime | None = None,
          credentials: Credentials = KEY, region: str = REGION) -> None:
    """Verify ``request`` the way the server sees it (raw path, raw query, header list)."""
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    headers = list(prepared.headers.items())
    if not any(name.lower() == "host" for name, _ in headers):
        headers.append(("Host", parts.netloc))   # the HTTP client adds it on the wire
    body = prepared.body if isinstance(prepared.body, bytes) else (prepared.body or b"")
    if isinstance(body, str):
        body = body.encode()
    sigv4.verify(prepared.method, parts.path, parts.query, headers, body, credentials,
                 now or datetime.now(UTC), region=region)


def invoke_url(name: str, query: str = "") -> str:
    # botocore's rest serializer encodes the label with safe "-_.~".
    url = f"{ENDPOINT}/2015-03-31/functions/{quote(name, safe='-_.~')}/invocations"
    return f"{url}?{query}" if query else url


@pytest.mark.parametrize("name", [
    "hello",
    "arn:aws:lambda:us-east-1:123456789012:function:hello:3",
    "com.example.Hello World",
    "fünf-ñ-函数",
    "a+b=c&d~e",
    "100%",
])
def test_botocore_signed_paths_verify(name: str) -> None:
    check(boto_sign(invoke_url(name), body=b'{"a": 1}'))


@pytest.mark.parametrize("query", [
    "Qualifier=%24LATEST",
    "b=2&a=1&a=0",
    "k=a%20b%2Bc&empty=",
    "x=%E5%87%BD",
])
def test_botocore_signed_queries_in_url_verify(query: str) -> None:
    check(boto_sign(invoke_url("f", query)))


def test_botocore_signed_params_verify() -> None:
    check(boto_sign(invoke_url("f"), params={"Qualifier": "$LATEST", "z y": "ä/ö", "a": ""}))


def test_headers_repeated_spaces_and_client_context_verify() -> None:
    headers = {
        "X-Amz-Invocation-Type": "Event",
        "X-Amz-Log-Type": "Tail",
        "X-Amz-Client-Context": "eyJjdXN0b20iOnsiayI6InYifX0=",
        "X-Custom": "  several   spaces  inside ",
        "User-Agent": "not signed by botocore",
    }
    request = boto_sign(invoke_url("f"), body=b"payload", headers=headers)
    assert "user-agent" not in request.headers["Authorization"]
    check(request)


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "local"])
def test_the_configured_region_verifies(region: str) -> None:
    check(boto_sign(invoke_url("f"), region=region), region=region)


@pytest.mark.parametrize(("signed_for", "configured"), [
    ("eu-central-1", "us-east-1"), ("us-east-1", "eu-central-1"), ("US-EAST-1", "us-east-1"),
])
def test_another_region_is_refused_in_aws_words(signed_for: str, configured: str) -> None:
    """A correctly signed request for another region: AWS answers InvalidSignatureException."""
    with pytest.raises(AuthError) as info:
        check(boto_sign(invoke_url("f"), region=signed_for), region=configured)
    assert info.value.failure is AuthFailure.INVALID_SIGNATURE
    assert info.value.reason.startswith("Credential should be scoped to a valid region. ")
    assert repr(signed_for) in info.value.reason and repr(configured) in info.value.reason


@pytest.mark.parametrize("service", ["s3", "execute-api", "Lambda"])
def test_another_service_is_refused_in_aws_words(service: str) -> None:
    with pytest.raises(AuthError) as info:
        check(boto_sign(invoke_url("f"), service=service))
    assert info.value.failure is AuthFailure.INVALID_SIGNATURE
    assert info.value.reason.startswith("Credential should be scoped to correct service: "
                                        "'lambda'. ")
    assert repr(service) in info.value.reason


def test_boto3_sends_no_content_sha256_for_lambda() -> None:
    """Both signers leave x-amz-content-sha256 out for lambda over http: the hash of the body
    is what the signature covers, and what the verifier computes."""
    request = boto_sign(invoke_url("f"), body=b'{"k": 1}')
    assert "X-Amz-Content-SHA256" not in request.headers
    check(request)


def test_content_sha256_header_verifies_and_must_match_body() -> None:
    body = b"some body"
    digest = hashlib.sha256(body).hexdigest()
    check(boto_sign(invoke_url("f"), body=body, headers={"X-Amz-Content-SHA256": digest}))
    tampered = boto_sign(invoke_url("f"), body=body, headers={"X-Amz-Content-SHA256": digest})
    tampered.data = b"other body"
    with pytest.raises(AuthError, match="x-amz-content-sha256"):
        check(tampered)


@pytest.mark.parametrize("declared", [
    "UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
])
def test_unsigned_payload_is_refused(declared: str) -> None:
    """S3's "the body is not signed" values: refused for lambda, whatever the signature says
    (the CRT signer really signs the request with UNSIGNED-PAYLOAD as its payload hash)."""
    request = boto_sign(invoke_url("f"), body=b'{"amount": 1}',
                        headers={"X-Amz-Content-SHA256": declared})
    with pytest.raises(AuthError) as info:
        check(request)
    assert info.value.failure is AuthFailure.INVALID_SIGNATURE
    assert repr(declared) in info.value.reason and "payload must be signed" in info.value.reason


@pytest.mark.parametrize("header", [
    "X-Amz-Invocation-Type", "X-Amz-Log-Type", "X-Amz-Client-Context", "x-amz-tenant-id",
    "X-Amz-Security-Token",
])
def test_an_unsigned_amz_header_is_refused_naming_it(header: str) -> None:
    """A header added to a correctly signed request (a captured one, replayed within the 5
    minutes) must not change what it does."""
    request = boto_sign(invoke_url("f"), body=b"{}")
    request.headers[header] = "Event"
    with pytest.raises(AuthError) as info:
        check(request)
    assert info.value.failure is AuthFailure.INVALID_SIGNATURE
    assert "headers present in the request which were not signed" in info.value.reason
    assert header.lower() in info.value.reason


def test_signed_amz_headers_and_unsigned_other_headers_pass() -> None:
    request = boto_sign(invoke_url("f"), headers={"X-Amz-Invocation-Type": "Event"})
    request.headers["User-Agent"] = "added later"
    request.headers["X-Amzn-Trace-Id"] = "Root=1-5759e988-bd862e3fe1be46a994272793"
    request.headers["amz-sdk-request"] = "attempt=1; max=3"
    check(request)


def test_unsigned_content_sha256_must_still_match_the_body() -> None:
    """x-amz-content-sha256 may go unsigned (as S3 allows): it must be the body's hash."""
    body = b"body"
    request = boto_sign(invoke_url("f"), body=body)
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    check(request)
    request.headers.replace_header("X-Amz-Content-SHA256", hashlib.sha256(b"x").hexdigest())
    with pytest.raises(AuthError, match="does not match what was computed"):
        check(request)


@pytest.mark.parametrize("declared", ["\u00e9" * 64, "caf\u00e9"])
def test_non_ascii_content_sha256_is_refused_not_a_crash(declared: str) -> None:
    """Regression (fuzz/run invoke_request): hmac.compare_digest raised TypeError."""
    request = boto_sign(invoke_url("f"), body=b"x", headers={"X-Amz-Content-SHA256": declared})
    with pytest.raises(AuthError, match="x-amz-content-sha256"):
        check(request)


def test_tampered_body_is_rejected() -> None:
    request = boto_sign(invoke_url("f"), body=b'{"amount": 1}')
    request.data = b'{"amount": 1000}'
    with pytest.raises(AuthError) as info:
        check(request)
    assert info.value.failure is AuthFailure.INVALID_SIGNATURE
    assert "signature we calculated does not match" in info.value.reason


def test_tampered_path_is_rejected() -> None:
    request = boto_sign(invoke_url("f"))
    request.url = invoke_url("g")
    with pytest.raises(AuthError, match="does not match"):
        check(request)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(AuthError) as info:
        check(boto_sign(invoke_url("f"), secret="x" * 40))
    assert info.value.failure is AuthFailure.INVALID_SIGNATURE


def test_unknown_access_key_is_unrecognized_client() -> None:
    with pytest.raises(AuthError) as info:
        check(boto_sign(invoke_url("f"), access_key="AKIAOTHERKEY00000000"))
    assert info.value.failure is AuthFailure.UNRECOGNIZED_CLIENT
    assert "AKIAOTHERKEY00000000" in info.value.reason


def test_expired_and_future_requests_are_rejected() -> None:
    request = boto_sign(invoke_url("f"))
    signed_at = datetime.strptime(request.headers["X-Amz-Date"], sigv4.TIMESTAMP_FORMAT)
    signed_at = signed_at.replace(tzinfo=UTC)
    check(request, now=signed_at + timedelta(minutes=4, seconds=59))
    check(request, now=signed_at - timedelta(minutes=4, seconds=59))
    with pytest.raises(AuthError, match="Signature expired"):
        check(request, now=signed_at + timedelta(minutes=5, seconds=1))
    with pytest.raises(AuthError, match="Signature not yet current"):
        check(request, now=signed_at - timedelta(minutes=5, seconds=1))


def test_missing_authorization_is_unrecognized_client() -> None:
    with pytest.raises(AuthError) as info:
        sigv4.verify("POST", "/x", "", [("Host", "h")], b"", KEY, datetime.now(UTC),
                     region=REGION)
    assert info.value.failure is AuthFailure.UNRECOGNIZED_CLIENT
    assert "Missing Authentication Token" in info.value.reason


@pytest.mark.parametrize(("header", "expected"), [
    ("Basic dXNlcjpwYXNz", "Unsupported Authorization algorithm"),
    ("AWS4-HMAC-SHA256 Credential=SPRIGABCDEFGHIJ12345/20260101/us-east-1/lambda/aws4_request",
     "missing SignedHeaders, Signature"),
    ("AWS4-HMAC-SHA256 Credential=SPRIGABCDEFGHIJ12345/20260101, SignedHeaders=host, "
     "Signature=00", "Credential 'SPRIGABCDEFGHIJ12345/20260101' is malformed"),
])
def test_malformed_authorization_names_the_problem(header: str, expected: str) -> None:
    with pytest.raises(AuthError, match=expected):
        sigv4.verify("POST", "/x", "", [("Host", "h"), ("Authorization", header)], b"", KEY,
                     datetime.now(UTC), region=REGION)


def test_host_must_be_signed() -> None:
    now = datetime.now(UTC)
    stamp = now.strftime(sigv4.TIMESTAMP_FORMAT)
    header = (f"AWS4-HMAC-SHA256 Credential={KEY.access_key_id}/{stamp[:8]}/{REGION}/lambda/"
              "aws4_request, SignedHeaders=x-amz-date, Signature=00")
    with pytest.raises(AuthError, match="'Host' must be a 'SignedHeader'"):
        sigv4.verify("POST", "/x", "", [("Host", "h"), ("X-Amz-Date", stamp),
                                        ("Authorization", header)], b"", KEY, now,
                     region=REGION)


def test_credential_scope_date_must_match_request_date() -> None:
    request = boto_sign(invoke_url("f"))
    request.headers.replace_header("Authorization", request.headers["Authorization"].replace(
        request.headers["X-Amz-Date"][:8], "19990101"))
    with pytest.raises(AuthError, match="Date in Credential scope does not match"):
        check(request)


@pytest.mark.parametrize(("raw", "expected"), [
    ("/", "/"),
    ("", "/"),
    ("/a/./b/../c//d/", "/a/c/d/"),
    ("/2015-03-31/functions/arn%3Aaws%3Alambda/invocations",
     "/2015-03-31/functions/arn%253Aaws%253Alambda/invocations"),
])
def test_canonical_uri_double_encodes_like_botocore(raw: str, expected: str) -> None:
    assert sigv4.canonical_uri(raw) == expected
    assert SigV4Auth(BotoCredentials("a", "b"), "lambda", "r")._normalize_url_path(raw) \
        == expected


def test_date_header_instead_of_x_amz_date(signer: str) -> None:
    """botocore signs with the Date header when the request carries one (no X-Amz-Date)."""
    request = boto_sign(invoke_url("f"), headers={"Date": "Mon, 01 Jan 2001 00:00:00 GMT"})
    if "X-Amz-Date" in request.headers:    # the CRT signer uses X-Amz-Date (and signs Date)
        check(request)
        return
    assert request.headers["Date"].endswith("-0000")
    sent = parsedate_to_datetime(request.headers["Date"]).replace(tzinfo=UTC)
    check(request, now=sent + timedelta(seconds=30))
    with pytest.raises(AuthError, match="Signature expired"):
        check(request, now=sent + timedelta(minutes=6))
