"""Verification of AWS Signature Version 4 (header form), as botocore signs for ``lambda``.

Written by hand with ``hmac``/``hashlib``: importing botocore in the core would cost tens of
megabytes. The canonical request follows botocore's ``SigV4Auth`` exactly (``botocore/auth.py``):

* URI: the path *as sent* (already percent-encoded), with dot segments and empty segments
  removed, then percent-encoded **again** except ``/`` and ``~`` -- AWS double-encodes the path
  for every service but S3, so ``functions/arn%3Aaws...`` is signed as ``arn%253Aaws...``.
* query: pairs split on ``&``/``=``, each side decoded (``+`` as a space) and re-encoded with
  only ``-_.~`` left bare, sorted by (key, value).
* headers: the names listed in ``SignedHeaders``, lower-case, values with runs of whitespace
  collapsed, repeated headers joined with ``,``.
* payload: always the body's SHA-256. ``x-amz-content-sha256`` is optional (botocore sends
  none for ``lambda``, with either signer, the pure-Python one or the CRT one) and, when sent,
  must be that hash: ``UNSIGNED-PAYLOAD`` (and the ``STREAMING-*`` values) are S3's and refused
  here, as Lambda does, since they would leave the body unauthenticated.

What AWS checks besides the signature, and so does :func:`verify`:

* the credential scope: service ``lambda`` and the core's own region (``awsRegion`` in
  config.yaml), with AWS's ``InvalidSignatureException`` words;
* every ``x-amz-*`` header present is signed (listed in ``SignedHeaders``): an unsigned
  ``X-Amz-Invocation-Type`` added to a captured request would otherwise change what the
  signed request does (run it asynchronously, return the log tail...). Refused naming it;
* the request time (``X-Amz-Date``, or ``Date``) is within 5 minutes of ``now``, so a captured
  request cannot be replayed later.

Signatures are compared in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import quote, unquote_plus

from sprig.errors import SprigError
from sprig.local_api.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "lambda"
TERMINATOR = "aws4_request"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_CLOCK_SKEW = timedelta(minutes=5)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
CONTENT_SHA256 = "x-amz-content-sha256"
# x-amz-content-sha256 may go unsigned (as S3 allows): it must equal the body's hash anyway.
MAY_BE_UNSIGNED = frozenset({CONTENT_SHA256})

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


class AuthFailure(enum.StrEnum):
    """The ``x-amzn-ErrorType`` AWS answers with (HTTP 403 for both)."""

    UNRECOGNIZED_CLIENT = "UnrecognizedClientException"   # no signature, or an unknown key id
    INVALID_SIGNATURE = "InvalidSignatureException"       # signed, but wrongly or too late


class AuthError(SprigError):
    """The request is not signed by the Sprig key pair; ``reason`` is shown to the caller."""

    def __init__(self, reason: str,
                 failure: AuthFailure = AuthFailure.INVALID_SIGNATURE) -> None:
        self.reason = reason
        self.failure = failure
        super().__init__(reason)


@dataclass(frozen=True)
class Authorization:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key_id: str
    date: str            # YYYYMMDD of the credential scope
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization:
    """Split the header into its parts; raise :class:`AuthError` naming what is malformed."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthError(
            f"Unsupported Authorization algorithm {algorithm!r}; allowed: {ALGORITHM} "
            "(AWS Signature Version 4 in the Authorization header)",
            AuthFailure.UNRECOGNIZED_CLIENT,
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, eq, val = part.strip().partition("=")
        if eq:
            fields[key.strip()] = val.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise AuthError(
            f"Authorization header is missing {', '.join(missing)}; expected "
            f"'{ALGORITHM} Credential=<key>/<date>/<region>/{SERVICE}/{TERMINATOR}, "
            "SignedHeaders=<names>, Signature=<hex>'"
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise AuthError(
            f"Credential {fields['Credential']!r} is malformed; expected "
            f"<access key id>/<YYYYMMDD>/<region>/{SERVICE}/{TERMINATOR}"
        )
    signed = tuple(fields["SignedHeaders"].lower().split(";"))
    return Authorization(scope[0], scope[1], scope[2], scope[3], scope[4], signed,
                         fields["Signature"])


def canonical_uri(raw_path: str) -> str:
    """The path as botocore signs it for non-S3 services (normalised, then encoded again)."""
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    path = "/" + "/".join(segments)
    if raw_path.endswith("/") and segments:
        path += "/"
    return quote(path, safe="/~")


def _encode(text: str) -> str:
    # "+" means a space in a query (as aiohttp and urlencode read it); botocore never sends a
    # bare "+" (it encodes it as %2B), so decoding it as a space agrees with every signer.
    return quote(unquote_plus(text), safe="-_.~")


def canonical_query(query: str) -> str:
    """The query string with each key and value encoded as AWS requires, sorted."""
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_encode(key), _encode(value)))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_headers(signed_headers: Iterable[str],
                      headers: Iterable[tuple[str, str]]) -> str:
    """``name:value`` lines for the signed headers (values trimmed, repeats joined by ``,``)."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(" ".join(value.split()))
    lines = []
    for name in signed_headers:
        if name not in values:
            raise AuthError(
                f"SignedHeaders lists {name!r} but the request has no such header"
            )
        lines.append(f"{name}:{','.join(values[name])}")
    return "\n".join(lines) + "\n"


def canonical_request(method: str, raw_path: str, query: str, signed_headers: Iterable[str],
                      headers: Iterable[tuple[str, str]], payload_hash: str) -> str:
    signed = list(signed_headers)
    return "\n".join([
        method.upper(),
        canonical_uri(raw_path),
        canonical_query(query),
        canonical_headers(signed, headers),
        ";".join(signed),
        payload_hash,
    ])


def string_to_sign(timestamp: str, scope: str, request: str) -> str:
    digest = hashlib.sha256(request.encode("utf-8")).hexdigest()
    return "\n".join([ALGORITHM, timestamp, scope, digest])


@lru_cache(maxsize=32)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The derived key; cached because it only changes with the day and region."""
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(secret: str, date: str, region: str, service: str, text: str) -> str:
    key = signing_key(secret, date, region, service)
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def request_time(headers: Iterable[tuple[str, str]]) -> tuple[str, datetime]:
    """The signing timestamp (``YYYYMMDDTHHMMSSZ``) from ``X-Amz-Date``, or else ``Date``."""
    found = {name.lower(): value.strip() for name, value in headers}
    if "x-amz-date" in found:
        raw = found["x-amz-date"]
        try:
            when = datetime.strptime(raw, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        except ValueError as exc:
            raise AuthError(
                f"X-Amz-Date {raw!r} is malformed; expected YYYYMMDDTHHMMSSZ in UTC"
            ) from exc
        return raw, when
    if "date" in found:
        try:
            from email.utils import parsedate_to_datetime  # rare (no X-Amz-Date): ~1 MB

            when = parsedate_to_datetime(found["date"])
        except (TypeError, ValueError) as exc:
            raise AuthError(f"Date header {found['date']!r} is malformed") from exc
        # "-0000" (what botocore sends) parses as naive, but it means UTC, never local time.
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        return when.strftime(TIMESTAMP_FORMAT), when
    raise AuthError(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def check_clock(timestamp: str, when: datetime, now: datetime) -> None:
    """Refuse a request signed more than :data:`MAX_CLOCK_SKEW` away from ``now``."""
    fmt = TIMESTAMP_FORMAT
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if when < now - MAX_CLOCK_SKEW:
        raise AuthError(
            f"Signature expired: {timestamp} is now earlier than "
            f"{(now - MAX_CLOCK_SKEW).strftime(fmt)} ({now.strftime(fmt)} - 5 min.)"
        )
    if when > now + MAX_CLOCK_SKEW:
        raise AuthError(
            f"Signature not yet current: {timestamp} is still later than "
            f"{(now + MAX_CLOCK_SKEW).strftime(fmt)} ({now.strftime(fmt)} + 5 min.)"
        )


def payload_hash(headers: Iterable[tuple[str, str]], body: bytes) -> str:
    """The body's SHA-256; ``x-amz-content-sha256``, if sent, must be that same hash."""
    declared = None
    for name, value in headers:
        if name.lower() == CONTENT_SHA256:
            declared = value.strip()
    actual = hashlib.sha256(body).hexdigest()
    if declared is None:
        return actual
    if declared == UNSIGNED_PAYLOAD or declared.startswith("STREAMING-"):
        raise AuthError(
            f"x-amz-content-sha256 {declared!r} is not supported by the {SERVICE} service: "
            "the payload must be signed; allowed: the hex SHA-256 of the body, or no "
            "x-amz-content-sha256 header (as the AWS SDKs send for lambda)"
        )
    # Bytes: compare_digest raises TypeError on a str with non-ASCII characters (found by
    # fuzzing: such a header turned a refusal into a 500).
    if not hmac.compare_digest(declared.lower().encode("utf-8", "surrogateescape"),
                               actual.encode()):
        raise AuthError(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    return declared


def unsigned_amz_headers(headers: Iterable[tuple[str, str]],
                         signed_headers: Iterable[str]) -> list[str]:
    """The ``x-amz-*`` headers present but not signed (lower-case, sorted)."""
    signed = set(signed_headers)
    return sorted({name.lower() for name, _ in headers
                   if name.lower().startswith("x-amz-")} - signed - MAY_BE_UNSIGNED)


def check_scope(auth: Authorization, region: str) -> None:
    """The credential scope must name this service, this core's region and the terminator."""
    if auth.service != SERVICE:
        raise AuthError(f"Credential should be scoped to correct service: '{SERVICE}'. "
                        f"(the Credential names service {auth.service!r})")
    if auth.region != region:
        raise AuthError(f"Credential should be scoped to a valid region. (the Credential "
                        f"names region {auth.region!r}; this core's awsRegion is {region!r})")
    if auth.terminator != TERMINATOR:
        raise AuthError(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{auth.terminator}'."
        )


@dataclass(frozen=True)
class SignedHead:
    """What :func:`check_head` found: the parsed header and the signing time."""

    auth: Authorization
    timestamp: str


def check_head(query: str, headers: Iterable[tuple[str, str]], credentials: Credentials,
               now: datetime, *, region: str) -> SignedHead:
    """Every check that needs no body: an ``Authorization`` header, well formed, with Sprig's
    access key id, scoped to ``lambda`` and ``region``, signing ``host`` and the date, recent.

    The invoke API runs it at the end of the head, so a request without valid credentials is
    refused before its body is read; :func:`verify` runs it again with the body.
    """
    header_list = list(headers)
    value = next((v for n, v in header_list if n.lower() == "authorization"), None)
    if value is None:
        if "X-Amz-Signature=" in query:
            raise AuthError(
                "Presigned URLs (query-string signatures) are not supported; "
                "sign with the Authorization header", AuthFailure.UNRECOGNIZED_CLIENT,
            )
        raise AuthError(
            "Missing Authentication Token: the request has no Authorization header; sign it "
            "with AWS Signature Version 4 using the key pair in the Sprig credentials file",
            AuthFailure.UNRECOGNIZED_CLIENT,
        )
    auth = parse_authorization(value)
    if not hmac.compare_digest(auth.access_key_id.encode(), credentials.access_key_id.encode()):
        where = f" ({credentials.source})" if credentials.source else ""
        raise AuthError(
            "The security token included in the request is invalid: access key id "
            f"{auth.access_key_id!r} is not Sprig's; use the key pair in the Sprig "
            f"credentials file{where}",
            AuthFailure.UNRECOGNIZED_CLIENT,
        )
    check_scope(auth, region)
    if "host" not in auth.signed_headers:
        raise AuthError("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    timestamp, when = request_time(header_list)
    date_header = "x-amz-date" if any(n.lower() == "x-amz-date" for n, _ in header_list) \
        else "date"
    if date_header not in auth.signed_headers:
        raise AuthError(f"'{date_header}' must be a 'SignedHeader' in the AWS Authorization.")
    if auth.date != timestamp[:8]:
        raise AuthError(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{auth.date}' != '{timestamp[:8]}', from '{timestamp}'."
        )
    check_clock(timestamp, when, now)
    return SignedHead(auth, timestamp)


def verify(method: str, raw_path: str, query: str, headers: Iterable[tuple[str, str]],
           body: bytes, credentials: Credentials, now: datetime, *, region: str) -> None:
    """Check that the request is signed with ``credentials`` for ``region`` and service
    ``lambda``, recent, with its body and every ``x-amz-*`` header signed; else
    :class:`AuthError`.

    Args:
        raw_path: the request path exactly as sent (percent-encoded, without the query).
        query: the raw query string, without ``?``.
        headers: every header as received, repeats included.
        now: an aware UTC datetime.
        region: the only region a credential scope may name (config.yaml ``awsRegion``).
    """
    header_list = list(headers)
    head = check_head(query, header_list, credentials, now, region=region)
    auth, timestamp = head.auth, head.timestamp
    request = canonical_request(method, raw_path, query, auth.signed_headers, header_list,
                                payload_hash(header_list, body))
    scope = f"{auth.date}/{auth.region}/{auth.service}/{TERMINATOR}"
    expected = sign(credentials.secret_access_key, auth.date, auth.region, auth.service,
                    string_to_sign(timestamp, scope, request))
    if not hmac.compare_digest(expected.encode(), auth.signature.lower().encode()):
        raise AuthError(SIGNATURE_MISMATCH)
    unsigned = unsigned_amz_headers(header_list, auth.signed_headers)
    if unsigned:
        raise AuthError(
            "There were headers present in the request which were not signed: "
            f"{', '.join(unsigned)}; every x-amz-* header must be listed in SignedHeaders "
            "(the AWS SDKs sign them all)"
        )
