"""A small S3 client for the device: signed GET and ListObjectsV2 over asyncio streams.

Why not boto3: botocore costs the core tens of megabytes; a device needs three calls. Requests
are signed with AWS Signature Version 4 exactly as S3 checks them (the signing helpers are the
ones the invoke API verifies with, :mod:`sprig.local_api.sigv4`): the path encoded once (S3 is
the one service whose path is not encoded twice), the payload hash in ``x-amz-content-sha256``,
``x-amz-security-token`` for temporary credentials.

Downloads are streamed to a callback and bounded: a body longer than the caller's limit stops
the download (the caller names the limit), and so does a ``Content-Length`` over it, before one
byte of the body is read. One connection per request (``Connection: close``): a deployment makes
a handful of requests, and nothing waits on a pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import re
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from sprig.errors import SprigError
from sprig.fleet.aws import StoreAccess
from sprig.local_api.sigv4 import ALGORITHM, TERMINATOR, canonical_query, signing_key

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_HEAD_BYTES = 64 * 1024
MAX_ERROR_BODY = 64 * 1024
MAX_LIST_BODY = 8 * 1024 * 1024
TIMEOUT_S = 60.0


class S3Error(SprigError):
    """S3 answered with an error (``code``: S3's, e.g. NoSuchKey, AccessDenied) or could not
    be reached (``code`` NetworkError)."""

    def __init__(self, message: str, *, code: str, status: int = 0) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


class TooLarge(SprigError):
    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"{size} bytes")


class S3Client:
    def __init__(self, access: StoreAccess, timeout_s: float = TIMEOUT_S) -> None:
        self.access = access
        self.timeout_s = timeout_s
        split = urlsplit(access.endpoint)
        self._tls = split.scheme == "https"
        self._host = split.hostname or ""
        self._port = split.port or (443 if self._tls else 80)
        self._netloc = split.netloc

    # -- calls -----------------------------------------------------------------------------

    async def get(self, bucket: str, key: str, sink: Callable[[bytes], None],
                  max_bytes: int) -> int:
        """Stream the object to ``sink``; its size. Raises :class:`TooLarge` past
        ``max_bytes``, :class:`S3Error` otherwise."""
        return await self._request("GET", bucket, key, "", sink, max_bytes)

    async def get_bytes(self, bucket: str, key: str, max_bytes: int) -> bytes:
        parts: list[bytes] = []
        await self.get(bucket, key, parts.append, max_bytes)
        return b"".join(parts)

    async def list_keys(self, bucket: str, prefix: str, max_keys: int = 10_000) -> list[str]:
        """Every key below ``prefix`` (ListObjectsV2, all pages), at most ``max_keys``."""
        keys: list[str] = []
        token: str | None = None
        while True:
            query = f"list-type=2&prefix={quote(prefix, safe='')}"
            if token:
                query += f"&continuation-token={quote(token, safe='')}"
            parts: list[bytes] = []
            await self._request("GET", bucket, "", query, parts.append, MAX_LIST_BODY)
            body = b"".join(parts).decode("utf-8", "replace")
            keys += [html.unescape(k) for k in re.findall(r"<Key>(.*?)</Key>", body, re.S)]
            if len(keys) > max_keys:
                raise S3Error(f"s3://{bucket}/{prefix}: more than {max_keys} keys",
                              code="TooManyKeys")
            truncated = re.search(r"<IsTruncated>\s*true\s*</IsTruncated>", body)
            m = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", body, re.S)
            if not truncated or m is None:
                return keys
            token = html.unescape(m.group(1))

    # -- HTTP ------------------------------------------------------------------------------

    def _address(self, bucket: str, key: str) -> tuple[str, str]:
        """(Host header, path) for path-style or virtual-hosted addressing."""
        encoded = quote(key, safe="/~")
        if self.access.path_style:
            return self._netloc, f"/{bucket}/{encoded}" if key else f"/{bucket}"
        return f"{bucket}.{self._netloc}", f"/{encoded}"

    def _headers(self, method: str, host: str, path: str, query: str,
                 now: datetime | None = None) -> list[tuple[str, str]]:
        """The request's headers, ``authorization`` last (signed at ``now``)."""
        now = now or datetime.now(UTC)
        stamp, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        creds = self.access.credentials
        headers = [("host", host), ("x-amz-content-sha256", EMPTY_SHA256),
                   ("x-amz-date", stamp)]
        if creds.session_token:
            headers.append(("x-amz-security-token", creds.session_token))
        headers.sort()
        signed = ";".join(n for n, _ in headers)
        canonical = "\n".join([method, path, canonical_query(query),
                               "".join(f"{n}:{v.strip()}\n" for n, v in headers), signed,
                               EMPTY_SHA256])
        scope = f"{date}/{self.access.region}/s3/{TERMINATOR}"
        text = "\n".join([ALGORITHM, stamp, scope,
                          hashlib.sha256(canonical.encode()).hexdigest()])
        key = signing_key(creds.secret_access_key, date, self.access.region, "s3")
        signature = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        headers.append(("authorization", f"{ALGORITHM} Credential={creds.access_key_id}/"
                        f"{scope}, SignedHeaders={signed}, Signature={signature}"))
        return headers

    async def _request(self, method: str, bucket: str, key: str, query: str,
                       sink: Callable[[bytes], None], max_bytes: int) -> int:
        where = f"s3://{bucket}/{key}"
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(method, bucket, key, query, sink, max_bytes, where)
        except TimeoutError:
            raise S3Error(f"{where}: no answer from {self.access.endpoint} within "
                          f"{self.timeout_s:g} s", code="NetworkError") from None
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as e:
            raise S3Error(f"{where}: cannot reach {self.access.endpoint}: {e}",
                          code="NetworkError") from None

    async def _exchange(self, method: str, bucket: str, key: str, query: str,
                        sink: Callable[[bytes], None], max_bytes: int, where: str) -> int:
        host, path = self._address(bucket, key)
        connect_host = host.split(":")[0] if not self.access.path_style else self._host
        context = ssl.create_default_context() if self._tls else None
        reader, writer = await asyncio.open_connection(
            connect_host, self._port, ssl=context,
            server_hostname=connect_host if self._tls else None, limit=MAX_HEAD_BYTES)
        try:
            target = path + (f"?{query}" if query else "")
            lines = [f"{method} {target} HTTP/1.1",
                     *(f"{n}: {v}" for n, v in self._headers(method, host, path, query)),
                     "connection: close", "", ""]
            writer.write("\r\n".join(lines).encode())
            await writer.drain()
            status, headers = await _read_head(reader)
            if status != 200:
                parts: list[bytes] = []
                with contextlib.suppress(TooLarge):
                    await _read_body(reader, headers, MAX_ERROR_BODY, parts.append)
                raise _error(where, status, b"".join(parts))
            return await _read_body(reader, headers, max_bytes, sink)
        finally:
            writer.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise S3Error("the store sent an oversized response head", code="BadResponse") from None
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise S3Error(f"the store sent a malformed status line {lines[0][:80]!r}",
                      code="BadResponse")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str], max_bytes: int,
                     sink: Callable[[bytes], None]) -> int:
    """Read the body to ``sink``, at most ``max_bytes`` (:class:`TooLarge` past it)."""
    total = 0

    def take(data: bytes) -> None:
        nonlocal total
        total += len(data)
        if total > max_bytes:
            raise TooLarge(total)
        sink(data)

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            take(await reader.readexactly(size))
            await reader.readexactly(2)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > max_bytes:
            raise TooLarge(length)
        remaining = length
        while remaining:
            data = await reader.read(min(remaining, 1 << 16))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(data)
            take(data)
    else:
        while data := await reader.read(1 << 16):
            take(data)
    return total


def _error(where: str, status: int, body: bytes) -> S3Error:
    """S3's error document (``<Code>``, ``<Message>``), or the bare status."""
    text = body.decode("utf-8", "replace")
    code = re.search(r"<Code>(.*?)</Code>", text, re.S)
    message = re.search(r"<Message>(.*?)</Message>", text, re.S)
    name = html.unescape(code.group(1)) if code else {403: "AccessDenied", 404: "NoSuchKey"}.get(
        status, f"HTTP{status}")
    detail = html.unescape(message.group(1)) if message else ""
    return S3Error(f"{where}: {name} (HTTP {status}){': ' + detail if detail else ''}",
                   code=name, status=status)
