"""Fetch a by-reference segment payload: ``file://`` under allowed roots, or http(s).

Every URI comes from a message on a topic, so it is treated as hostile:

* ``file://`` is honoured only when the real path (symlinks resolved) lies
  under one of ``file_roots`` and is a regular file; it is opened with
  ``O_NOFOLLOW | O_NONBLOCK`` so a FIFO or a late symlink swap cannot hang or
  redirect the read;
* http(s) follows at most a few redirects, and only to http(s); the body is
  read in chunks and refused as soon as it passes ``max_bytes``;
* ``timeout_s`` bounds the connect, every read, and the whole transfer;
* every other scheme is refused.
"""

from __future__ import annotations

import http.client
import logging
import os
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from pipeline.errors import FetchFailed, FetchTooLarge, UriNotAllowed

__all__ = ["fetch_segment"]

log = logging.getLogger(__name__)

_CHUNK_BYTES = 64 * 1024
_MAX_REDIRECTS = 3
_HTTP_SCHEMES = frozenset({"http", "https"})


def _redacted(uri: str) -> str:
    """The URI without query or credentials (pre-signed URLs carry secrets there)."""
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return "<malformed uri>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))[:300]


def _file_path(parts: urllib.parse.SplitResult) -> Path:
    if parts.netloc not in ("", "localhost"):
        raise UriNotAllowed(f"file URI with a host ({parts.netloc!r}) is not allowed")
    path = urllib.parse.unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise UriNotAllowed("file URI must hold an absolute path")
    return Path(path)


def _fetch_file(
    parts: urllib.parse.SplitResult, max_bytes: int, file_roots: Sequence[Path]
) -> bytes:
    requested = _file_path(parts)
    try:
        real = requested.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # missing, unreadable dir, symlink loop
        raise FetchFailed(f"cannot resolve {requested}: {exc}") from exc
    roots = [Path(os.path.realpath(root)) for root in file_roots]
    if not any(real.is_relative_to(root) for root in roots):
        raise UriNotAllowed(f"{real} is outside the allowed file roots")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise FetchFailed(f"cannot open {real}: {exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UriNotAllowed(f"{real} is not a regular file")
        if info.st_size > max_bytes:
            raise FetchTooLarge(f"{real} is {info.st_size} bytes, limit {max_bytes}")
        return _read_capped(lambda n: os.read(fd, n), max_bytes, deadline=None)
    except OSError as exc:
        raise FetchFailed(f"cannot read {real}: {exc}") from exc
    finally:
        os.close(fd)


def _read_capped(read: Callable[[int], bytes], max_bytes: int, deadline: float | None) -> bytes:
    """Read until EOF, refusing past ``max_bytes``; ``read`` returns what one recv gives."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = read(min(_CHUNK_BYTES, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise FetchTooLarge(f"payload exceeds {max_bytes} bytes")
        chunks.append(chunk)
        if deadline is not None and time.monotonic() > deadline:
            raise FetchFailed("transfer did not finish within the timeout")


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = _MAX_REDIRECTS

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in _HTTP_SCHEMES:
            fp.close()
            raise UriNotAllowed(f"redirect to a {scheme!r} URI is not allowed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        _SafeRedirects(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _fetch_http(uri: str, max_bytes: int, timeout_s: float) -> bytes:
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(uri, headers={"Accept-Encoding": "identity"})
    try:
        with _opener().open(request, timeout=timeout_s) as response:
            status = response.status
            if not 200 <= status < 300:
                raise FetchFailed(f"HTTP {status} from {_redacted(uri)}")
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise FetchTooLarge(
                    f"{_redacted(uri)} declares {declared} bytes, limit {max_bytes}"
                )
            # read1: one recv per call, so a slow drip still meets the deadline.
            return _read_capped(response.read1, max_bytes, deadline)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise FetchFailed(f"HTTP {exc.code} from {_redacted(uri)}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        # URLError wraps refused/unresolvable; TimeoutError is an OSError.
        raise FetchFailed(f"cannot fetch {_redacted(uri)}: {exc}") from exc
    except ValueError as exc:  # urllib's own URL checks
        raise UriNotAllowed(f"malformed URI {_redacted(uri)}") from exc


def fetch_segment(
    uri: str, *, max_bytes: int, file_roots: Sequence[Path], timeout_s: float
) -> bytes:
    """Return the bytes behind ``uri``, or raise a :class:`pipeline.errors.FetchError`."""
    if max_bytes < 0 or timeout_s <= 0:
        raise ValueError(f"bad fetch bounds max_bytes={max_bytes} timeout_s={timeout_s}")
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as exc:
        raise UriNotAllowed(f"malformed URI: {exc}") from exc
    scheme = parts.scheme.lower()
    log.debug("fetch scheme=%s uri=%s", scheme, _redacted(uri))
    if scheme == "file":
        return _fetch_file(parts, max_bytes, file_roots)
    if scheme in _HTTP_SCHEMES:
        if not parts.hostname:
            raise UriNotAllowed("http(s) URI without a host")
        if parts.username is not None or parts.password is not None:
            raise UriNotAllowed("credentials in a URI are not allowed")
        return _fetch_http(uri, max_bytes, timeout_s)
    raise UriNotAllowed(f"URI scheme {scheme!r} is not allowed")
