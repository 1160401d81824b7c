"""``streamwarden inspect`` and ``streamwarden bank add|list``."""

from __future__ import annotations

from pathlib import Path

import cv2
import orjson
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.cli_media import REJECTED_EXIT_CODE, guess_container
from pipeline.errors import UnsupportedContainer
from pipeline.media.bank import read_bank
from pipeline.media.decode import MediaLimits, decode_segment
from tests.unit.media_fixtures import segment

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inspect")
    data = segment()
    paths = {
        "ts": root / "seg.ts",
        "noext": root / "seg.bin",
        "playlist": root / "evil.ts",
        "png": root / "key2000.png",
        "flat": root / "flat.png",
    }
    paths["ts"].write_bytes(data)
    paths["noext"].write_bytes(data)
    paths["playlist"].write_bytes(b"#EXTM3U\n#EXTINF:2,\nfile:///etc/passwd\n")
    full = decode_segment(data, "mpegts", limits=MediaLimits())  # full size, as on disk
    cv2.imwrite(str(paths["png"]), full.frames[1].image)
    cv2.imwrite(str(paths["flat"]), full.frames[1].image * 0)
    return paths


def test_guess_container_from_the_extension_only() -> None:
    assert guess_container("/a/b/seg-001.TS") == "mpegts"
    assert guess_container("x.m4s") == "fmp4"
    assert guess_container("x.webm") == "webm"
    with pytest.raises(UnsupportedContainer, match="--container"):
        guess_container("/a/b/playlist.m3u8")


def test_inspect_prints_container_frames_and_hashes(files: dict[str, Path]) -> None:
    res = runner.invoke(app, ["inspect", str(files["ts"]), "--strategy", "fps", "--json"])
    assert res.exit_code == 0, res.output
    doc = orjson.loads(res.stdout)
    assert (doc["container"], doc["codec"], doc["width"], doc["height"]) == (
        "mpegts",
        "h264",
        320,
        180,
    )
    assert doc["duration_ms"] == 4000 and doc["rejected"] is False
    assert [f["pts_ms"] for f in doc["frames"]] == [0, 1000, 2000, 3000]
    assert all(len(f["pdq"]) == 64 and f["quality"] >= 50 for f in doc["frames"])
    human = runner.invoke(app, ["inspect", files["ts"].as_uri()])
    assert human.exit_code == 0 and "mpegts/h264 320x180" in human.output


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["{playlist}"], "not_media"),
        (["{noext}"], "unsupported_container"),
        (["{ts}", "--container", "webm"], "corrupt_media"),
        (["{ts}.missing"], "fetch_failed"),
        (["gopher://example/seg.ts"], "uri_not_allowed"),
    ],
)
def test_inspect_rejections_exit_3_with_the_reason(
    files: dict[str, Path], args: list[str], reason: str
) -> None:
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    res = runner.invoke(app, ["inspect", *argv, "--json"])
    assert res.exit_code == REJECTED_EXIT_CODE, res.output
    assert orjson.loads(res.stdout)["reason"] == reason
    human = runner.invoke(app, ["inspect", *argv])
    assert human.exit_code == REJECTED_EXIT_CODE and reason in human.output


def test_inspect_with_container_option_reads_any_name(files: dict[str, Path]) -> None:
    res = runner.invoke(app, ["inspect", str(files["noext"]), "--container", "mpegts", "--json"])
    assert res.exit_code == 0 and len(orjson.loads(res.stdout)["frames"]) == 2


def test_bank_add_list_and_inspect_finds_the_match(files: dict[str, Path], tmp_path: Path) -> None:
    bank = tmp_path / "bank.jsonl"
    res = runner.invoke(
        app, ["bank", "add", "--bank", str(bank), "--category", "csam", str(files["png"])]
    )
    assert res.exit_code == 0, res.output
    (entry,) = read_bank(bank).entries
    assert (entry.category, entry.source, len(entry.id)) == ("csam", "key2000.png", 16)
    # idempotent; unreadable and flat pictures are refused (exit 1), the rest still added
    res = runner.invoke(
        app,
        ["bank", "add", "--bank", str(bank), "--category", "csam", str(files["png"]),
         str(files["ts"]), str(files["flat"])],
    )  # fmt: skip
    assert res.exit_code == 1 and "already in the bank" in res.output
    assert "not a readable image" in res.output and "too flat" in res.output
    assert len(read_bank(bank)) == 1
    listed = runner.invoke(app, ["bank", "list", "--bank", str(bank), "--json"])
    assert orjson.loads(listed.stdout)["id"] == entry.id
    found = runner.invoke(app, ["inspect", str(files["ts"]), "--bank", str(bank), "--json"])
    doc = orjson.loads(found.stdout)
    assert doc["bank"]["entries"] == 1
    assert doc["frames"][0]["match"] is None
    assert doc["frames"][1]["match"]["id"] == entry.id
    assert doc["frames"][1]["match"]["hamming"] <= 31
    bad = runner.invoke(
        app, ["bank", "add", "--bank", str(bank), "--category", "a b", str(files["png"])]
    )
    assert bad.exit_code != 0
