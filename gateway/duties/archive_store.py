"""Where archived exchanges go: a filesystem directory or an S3-compatible object store.

Both stores hold plain objects under ``/``-separated keys. The S3 store speaks the S3 REST API
directly (path-style requests signed with AWS Signature Version 4 over aiohttp): four calls are
all the archive needs, which does not justify an SDK and its dependency tree.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import os
from pathlib import Path
from typing import Protocol
from urllib.parse import quote
from xml.etree import ElementTree

import aiohttp
from yarl import URL

from gateway.duties.errors import ArchiveError

__all__ = ["ArchiveError", "ArchiveStore", "FileArchive", "S3Archive", "open_archive"]


class ArchiveStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def delete(self, key: str) -> None: ...
    async def list(self, prefix: str) -> list[str]: ...
    async def close(self) -> None: ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ArchiveError(f"invalid archive key {key!r}")
    return key


class FileArchive:
    """Objects as files under a root directory (written to a temporary name, then renamed)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self._path(key), data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except OSError as exc:
            raise ArchiveError(f"cannot read {key}: {exc.strerror}") from None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)

    async def list(self, prefix: str) -> list[str]:
        base = self.root / prefix.rstrip("/") if prefix else self.root

        def walk() -> list[str]:
            if not base.exists():
                return []
            return sorted(
                str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
            )

        return await asyncio.to_thread(walk)

    async def close(self) -> None:
        return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class S3Archive:
    """Objects in one bucket of an S3-compatible store, under an optional key prefix."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        *,
        region: str = "us-east-1",
        prefix: str = "",
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.prefix = prefix.strip("/")
        self._session: aiohttp.ClientSession | None = None

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{_check_key(key)}" if self.prefix else _check_key(key)

    async def _request(
        self, method: str, key: str | None, *, body: bytes = b"", query: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        path = "/" + quote(self.bucket, safe="")
        if key is not None:
            path += "/" + "/".join(quote(part, safe="-_.~") for part in key.split("/"))
        query_string = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted((query or {}).items())
        )
        url = URL(self.endpoint)
        host = url.raw_host or ""
        if url.port and url.port not in (80, 443):
            host = f"{host}:{url.port}"
        now = dt.datetime.now(dt.UTC)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload = _sha256(body)
        headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": stamp}
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [method, path, query_string, *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{_sha256(canonical.encode())}"
        signing = _sign(_sign(_sign(_sign(f"AWS4{self.secret_key}".encode(), day), self.region), "s3"), "aws4_request")
        signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
        )
        del headers["host"]
        target = URL(f"{self.endpoint}{path}" + (f"?{query_string}" if query_string else ""), encoded=True)
        try:
            async with self._session.request(method, target, data=body or None, headers=headers) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ArchiveError(f"S3 {method} {key or self.bucket}: {type(exc).__name__}") from None

    async def ensure_bucket(self) -> None:
        status, body = await self._request("PUT", None)
        if status not in (200, 409):
            raise ArchiveError(f"cannot create bucket {self.bucket}: HTTP {status} {body[:200]!r}")

    async def put(self, key: str, data: bytes) -> None:
        status, body = await self._request("PUT", self._full(key), body=data)
        if status != 200:
            raise ArchiveError(f"S3 PUT {key}: HTTP {status} {body[:200]!r}")

    async def get(self, key: str) -> bytes:
        status, body = await self._request("GET", self._full(key))
        if status != 200:
            raise ArchiveError(f"S3 GET {key}: HTTP {status}")
        return body

    async def delete(self, key: str) -> None:
        status, body = await self._request("DELETE", self._full(key))
        if status not in (200, 204, 404):
            raise ArchiveError(f"S3 DELETE {key}: HTTP {status} {body[:200]!r}")

    async def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        token: str | None = None
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        while True:
            query = {"list-type": "2", "prefix": full_prefix}
            if token:
                query["continuation-token"] = token
            status, body = await self._request("GET", None, query=query)
            if status != 200:
                raise ArchiveError(f"S3 LIST {prefix}: HTTP {status}")
            root = ElementTree.fromstring(body)  # noqa: S314 - the store's own listing
            for item in root.iter(f"{ns}Key"):
                key = item.text or ""
                keys.append(key[len(self.prefix) + 1 :] if self.prefix else key)
            token = root.findtext(f"{ns}NextContinuationToken")
            if not token:
                return sorted(keys)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def open_archive(
    target: str,
    *,
    s3_endpoint: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str = "us-east-1",
) -> ArchiveStore:
    """``file:///var/lib/peppol-archive`` or ``s3://bucket/prefix`` (with the S3 settings)."""
    if target.startswith("file://"):
        return FileArchive(Path(target[len("file://") :]))
    if target.startswith("s3://"):
        bucket, _, prefix = target[len("s3://") :].partition("/")
        if not (bucket and s3_endpoint and access_key and secret_key):
            raise ArchiveError("an s3:// archive needs archive.s3_endpoint, s3_access_key and s3_secret_key")
        return S3Archive(s3_endpoint, bucket, access_key, secret_key, region=region, prefix=prefix)
    raise ArchiveError(f"archive.target {target!r} is neither file:// nor s3://")
