"""pipeline.media.bank: the JSONL hash bank, nearest-match lookup and reload on change."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson
import pytest

from pipeline.errors import ConfigError
from pipeline.media.bank import BankEntry, BankFile, HashBank, read_bank, write_bank
from pipeline.media.pdq import PdqHash


def h(prefix: str, quality: int = 100) -> PdqHash:
    return PdqHash.from_hex(prefix.ljust(64, "0"), quality)


A = BankEntry("a1", "csam", h("ff"), source="a.jpg", added_at="2026-11-25T20:00:00.000Z")
B = BankEntry("b2", "terror", h("0f"))


def test_match_is_the_nearest_entry_within_the_radius() -> None:
    bank = HashBank([A, B])
    probe = h("fe")  # 1 bit from A, 5 from B
    found = bank.match(probe)
    assert found is not None and (found.entry.id, found.distance) == ("a1", 1)
    assert bank.match(probe, max_distance=0) is None
    assert bank.match(h("f0"), max_distance=31) is not None  # 4 from each: the earliest wins
    assert bank.nearest(h("f0")).entry.id == "a1"  # type: ignore[union-attr]
    far = PdqHash.from_hex("5" * 64)
    assert bank.match(far) is None and bank.nearest(far) is not None
    assert HashBank().match(probe) is None and len(HashBank()) == 0


def test_write_read_round_trip_is_atomic_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "bank.jsonl"
    write_bank(path, [A, B])
    lines = path.read_bytes().splitlines()
    assert orjson.loads(lines[0]) == {
        "id": "a1",
        "category": "csam",
        "pdq": "ff".ljust(64, "0"),
        "quality": 100,
        "source": "a.jpg",
        "added_at": "2026-11-25T20:00:00.000Z",
    }
    assert read_bank(path).entries == (A, B)
    assert [p.name for p in path.parent.iterdir()] == ["bank.jsonl"]  # no temp file left
    with pytest.raises(ValueError, match="duplicate"):
        write_bank(path, [A, A])


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (b"not json", "bank.jsonl:2"),
        (b'{"id": "x", "category": "c", "pdq": "zz"}', "64 hex"),
        (b'{"id": "x y", "category": "c", "pdq": "' + b"0" * 64 + b'"}', "bad bank entry id"),
        (b'{"id": "x", "category": "c", "pdq": "' + b"0" * 64 + b'", "extra": 1}', "unknown"),
        (b'{"id": "a1", "category": "c", "pdq": "' + b"0" * 64 + b'"}', "duplicate"),
        (b"[1]", "JSON object"),
    ],
)
def test_bad_lines_are_config_errors_naming_the_line(
    tmp_path: Path, line: bytes, needle: str
) -> None:
    path = tmp_path / "bank.jsonl"
    path.write_bytes(orjson.dumps(A.as_doc()) + b"\n" + line + b"\n\n")
    with pytest.raises(ConfigError, match=needle):
        read_bank(path)


def test_bank_file_reloads_on_change_and_keeps_the_last_good_bank(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bank.jsonl"
    write_bank(path, [A])
    now = [0.0]
    bank = BankFile(path, clock=lambda: now[0])
    assert len(bank.current()) == 1
    write_bank(path, [A, B])
    assert len(bank.current()) == 1  # not looked at within a second
    now[0] = 1.0
    assert len(bank.current()) == 2
    path.write_text("garbage\n")
    os.utime(path, ns=(1, 1))
    with caplog.at_level(logging.ERROR):
        assert len(bank.refresh()) == 2  # broken: kept
        assert len(bank.refresh()) == 2
    assert sum("not reloaded" in r.message for r in caplog.records) == 1  # said once
    path.unlink()
    assert len(bank.refresh()) == 2  # vanished: kept
    write_bank(path, [B])
    assert [e.id for e in bank.refresh().entries] == ["b2"]


def test_bank_file_must_exist_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        BankFile(tmp_path / "missing.jsonl")
