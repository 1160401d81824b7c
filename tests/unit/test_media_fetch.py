"""pipeline.media.fetch: file roots, symlink escapes, schemes, http over loopback."""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import pipeline.media
from pipeline.errors import FetchError, FetchFailed, FetchTooLarge, UriNotAllowed
from pipeline.media.fetch import fetch_segment

PAYLOAD = bytes(range(256)) * 40  # 10 KiB


def _file_uri(path: Path) -> str:
    return "file://" + urllib.parse.quote(str(path))


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "segments"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "seg 1.ts").write_bytes(PAYLOAD)
    (outside / "secret.ts").write_bytes(b"secret")
    return root, outside


def _fetch_file(uri: str, root: Path, max_bytes: int = 1 << 20) -> bytes:
    return fetch_segment(uri, max_bytes=max_bytes, file_roots=[root], timeout_s=1.0)


# --- file:// -----------------------------------------------------------------------


def test_file_under_root_is_read(roots: tuple[Path, Path]) -> None:
    root, _ = roots
    assert _fetch_file(_file_uri(root / "seg 1.ts"), root) == PAYLOAD
    assert _fetch_file("file://localhost" + urllib.parse.quote(str(root / "seg 1.ts")), root)


def test_file_outside_root_is_refused(roots: tuple[Path, Path]) -> None:
    root, outside = roots
    with pytest.raises(UriNotAllowed):
        _fetch_file(_file_uri(outside / "secret.ts"), root)
    with pytest.raises(UriNotAllowed):  # ../ traversal resolves outside
        _fetch_file(_file_uri(root) + "/../outside/secret.ts", root)
    with pytest.raises(UriNotAllowed):  # no roots at all
        fetch_segment(_file_uri(root / "seg 1.ts"), max_bytes=1 << 20, file_roots=[], timeout_s=1)


def test_symlink_escape_is_refused(roots: tuple[Path, Path]) -> None:
    root, outside = roots
    (root / "escape.ts").symlink_to(outside / "secret.ts")
    (root / "escape_dir").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UriNotAllowed):
        _fetch_file(_file_uri(root / "escape.ts"), root)
    with pytest.raises(UriNotAllowed):
        _fetch_file(_file_uri(root / "escape_dir" / "secret.ts"), root)


def test_symlinks_inside_roots_are_fine(roots: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = roots
    (root / "alias.ts").symlink_to(root / "seg 1.ts")
    assert _fetch_file(_file_uri(root / "alias.ts"), root) == PAYLOAD
    linked_root = tmp_path / "linked-root"
    linked_root.symlink_to(root, target_is_directory=True)
    assert _fetch_file(_file_uri(linked_root / "seg 1.ts"), linked_root) == PAYLOAD


def test_file_special_cases(roots: tuple[Path, Path]) -> None:
    root, _ = roots
    with pytest.raises(FetchFailed):
        _fetch_file(_file_uri(root / "missing.ts"), root)
    with pytest.raises(UriNotAllowed):  # a directory
        _fetch_file(_file_uri(root), root)
    os.mkfifo(root / "pipe.ts")
    with pytest.raises(UriNotAllowed):  # a FIFO must not hang the worker
        _fetch_file(_file_uri(root / "pipe.ts"), root)
    with pytest.raises(UriNotAllowed):
        _fetch_file("file://otherhost" + str(root / "seg 1.ts"), root)
    with pytest.raises(UriNotAllowed):
        _fetch_file("file:relative/seg.ts", root)


def test_file_size_cap(roots: tuple[Path, Path]) -> None:
    root, _ = roots
    uri = _file_uri(root / "seg 1.ts")
    assert _fetch_file(uri, root, max_bytes=len(PAYLOAD)) == PAYLOAD
    with pytest.raises(FetchTooLarge):
        _fetch_file(uri, root, max_bytes=len(PAYLOAD) - 1)


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://127.0.0.1/seg.ts",
        "data:video/mp2t;base64,R0dHRw==",
        "gopher://127.0.0.1/",
        "s3://bucket/seg.ts",
        "/etc/passwd",
        "",
        "http:///no-host",
        "http://user:secret@127.0.0.1/seg.ts",
        "http://[::1/broken",
    ],
)
def test_other_schemes_are_refused(uri: str, tmp_path: Path) -> None:
    with pytest.raises(UriNotAllowed):
        fetch_segment(uri, max_bytes=1024, file_roots=[tmp_path], timeout_s=1.0)


# --- http:// ------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        del format, args

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {"Content-Length": str(len(body))}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/ok":
            self._send(200, PAYLOAD)
        elif path == "/big":
            self._send(200, b"x" * 4096)
        elif path == "/big-unsized":  # no Content-Length: the cap must bite while streaming
            self.close_connection = True
            self._send(200, b"x" * 65536, headers={"Connection": "close"})
        elif path == "/redirect-ok":
            self._send(302, b"", headers={"Location": "/ok", "Content-Length": "0"})
        elif path == "/redirect-file":
            self._send(302, b"", headers={"Location": "file:///etc/passwd", "Content-Length": "0"})
        elif path == "/redirect-ftp":
            self._send(302, b"", headers={"Location": "ftp://127.0.0.1/x", "Content-Length": "0"})
        elif path == "/slow":
            time.sleep(1.0)
            self._send(200, PAYLOAD)
        elif path == "/error":
            self._send(500, b"boom")
        else:
            self._send(404, b"not found")


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _get(url: str, max_bytes: int = 1 << 20, timeout_s: float = 2.0) -> bytes:
    return fetch_segment(url, max_bytes=max_bytes, file_roots=[], timeout_s=timeout_s)


def test_http_ok(http_base: str) -> None:
    assert _get(f"{http_base}/ok") == PAYLOAD
    assert _get(f"{http_base}/ok", max_bytes=len(PAYLOAD)) == PAYLOAD
    assert _get(f"{http_base}/redirect-ok") == PAYLOAD


def test_http_over_cap(http_base: str) -> None:
    with pytest.raises(FetchTooLarge):
        _get(f"{http_base}/big", max_bytes=1024)
    with pytest.raises(FetchTooLarge):
        _get(f"{http_base}/big-unsized", max_bytes=1024)


def test_http_errors(http_base: str) -> None:
    with pytest.raises(FetchFailed, match="404"):
        _get(f"{http_base}/missing?X-Amz-Signature=SECRET")
    with pytest.raises(FetchFailed, match="500"):
        _get(f"{http_base}/error")
    with pytest.raises(FetchFailed):
        _get(f"{http_base}/slow", timeout_s=0.2)


def test_http_error_messages_hide_query_strings(http_base: str) -> None:
    with pytest.raises(FetchFailed) as info:
        _get(f"{http_base}/missing?X-Amz-Signature=SECRET")
    assert "SECRET" not in str(info.value)


def test_redirect_to_another_scheme_is_refused(http_base: str) -> None:
    with pytest.raises(UriNotAllowed):
        _get(f"{http_base}/redirect-ftp")
    with pytest.raises(FetchError):  # urllib itself refuses file:// redirects (HTTP 302 error)
        _get(f"{http_base}/redirect-file")


def test_connection_refused_is_fetch_failed() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there now
    with pytest.raises(FetchFailed):
        _get(f"http://127.0.0.1:{port}/ok")


def test_fetch_errors_share_a_root() -> None:
    assert issubclass(UriNotAllowed, FetchError) and issubclass(FetchTooLarge, FetchError)


def test_package_reexports() -> None:
    expected = {"DecodedSegment", "MediaLimits", "SampledFrame", "decode_segment", "fetch_segment"}
    assert set(pipeline.media.__all__) >= expected
    for name in pipeline.media.__all__:
        assert getattr(pipeline.media, name) is not None
