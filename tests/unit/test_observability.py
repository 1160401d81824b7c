from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from pipeline import metrics
from pipeline.observability import Health, serve


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def server_url() -> Iterator[tuple[Health, str]]:
    health = Health(stale_after_s=0.5)
    server = serve(health, "127.0.0.1", 0)
    yield health, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_metrics_liveness_and_readiness(server_url: tuple[Health, str]) -> None:
    health, url = server_url
    metrics.RECORDS_IN.labels("segment").inc()
    code, body = get(url + "/metrics")
    assert code == 200
    assert "sw_records_in_total" in body and "sw_event_loop_heartbeat_age_seconds" in body
    assert get(url + "/livez")[0] == 200
    assert get(url + "/readyz")[0] == 503  # models/partitions not ready yet
    health.set_ready(True)
    assert get(url + "/readyz")[0] == 200
    assert get(url + "/nope")[0] == 404


def test_a_stalled_loop_fails_liveness_and_readiness(server_url: tuple[Health, str]) -> None:
    health, url = server_url
    health.set_ready(True)
    health._beat -= 10  # the loop has not ticked for 10 s
    assert get(url + "/livez") == (503, "event loop stalled\n")
    assert get(url + "/readyz")[0] == 503
    health.beat()
    assert get(url + "/livez")[0] == 200
