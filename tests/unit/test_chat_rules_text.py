"""Text rules against adversarial spellings, in English and Russian (chat and OCR alike)."""

from __future__ import annotations

import pytest

from pipeline.policy.text import inspect_text, script_language, similarity, skeleton

ALL = ("link", "phone", "solicitation")

SOLICITATION = {
    # links
    "spaced out url": ("w w w . e x a m p l e . c o m", "links", "www.example.com"),
    "dot spelled out": ("visit example dot com now", "links", "example.com"),
    "dot in brackets": ("go to example[.]com", "links", "example.com"),
    "dot in parentheses ru": ("заходи на example (точка) com", "links", "example.com"),
    "cyrillic e in t.me": ("join t.mе/freestuff", "links", "t.mе/freestuff"),
    "fullwidth letters": ("ｗｗｗ．ｅｘａｍｐｌｅ．ｃｏｍ", "links", "www.example.com"),
    "zero-width space": ("ex\u200bample.com/win", "links", "example.com/win"),
    "cyrillic domain": ("сайт привет.рф", "links", "привет.рф"),
    "scheme": ("free skins http://bit.ly/abc", "links", "http://bit.ly/abc"),
    # phone numbers
    "spaced digits": ("звони 8 9 1 2 3 4 5 6 7 8 9", "phones", "89123456789"),
    "digits in words ru": (
        "восемь девять один два три четыре пять шесть семь восемь девять",
        "phones",
        "89123456789",
    ),
    "digits in words en": (
        "call five five five one two three four five six seven",
        "phones",
        "5551234567",
    ),
    "formatted": ("+7 (912) 345-67-89", "phones", "79123456789"),
    "letter o for zero": ("8-9О1-234-56-78", "phones", "89012345678"),
    "letter o for zero, cyrillic": ("8 9о1 234 5о 78", "phones", "8901234507" + "8"),
    # contact channels, disguised or asked for
    "spaced cyrillic": ("пиши в т е л е г р а м", "terms", "телеграм"),
    "mixed scripts": ("мой тeлeгрaм @vasya", "terms", "телеграм"),
    "declined slang": ("напиши мне в телегу", "terms", "телег"),
    "leetspeak": ("t3l3gr4m: vasya", "terms", "telegram"),
    "leet one for l": ("add me on te1egram", "terms", "telegram"),
    "dotted letters": ("W.h.a.t.s.A.p.p", "terms", "whatsapp"),
    "handle": ("my telegram @vasya_99", "terms", "telegram"),
    "zero-width inside": ("whats\u200dapp me", "terms", "whatsapp"),
    "homoglyph latin in ru": ("вoтcaп пиши", "terms", "вотсап"),
    "dashes": ("o-n-l-y-f-a-n-s link", "terms", "onlyfans"),
}


@pytest.mark.parametrize(("text", "kind", "found"), SOLICITATION.values(), ids=list(SOLICITATION))
def test_adversarial_spellings_are_found(text: str, kind: str, found: str) -> None:
    findings = inspect_text(text, ALL)
    assert findings.score == 1.0, findings
    assert found in findings.as_evidence()[kind]


WEAK = {
    "plain mention": "he said telegram is down again",
    "plain mention ru": "в телеге сегодня новости",
    "ask without channel": "dm me for promo",
    "ask ru": "пиши в лс",
    "word-like tld": "lol i was at home.net was down",
    "bare t.me": "t.me",
}


@pytest.mark.parametrize("text", WEAK.values(), ids=list(WEAK))
def test_weak_cues_go_to_review(text: str) -> None:
    assert inspect_text(text, ALL).score == 0.6


BENIGN = {
    "gg": "gg wp everyone",
    "years": "what a game 2024 2025 2026 best years",
    "score and time": "the score is 3-2 at 12:30",
    "price": "i paid 1 000 000 for it",
    "rating": "that was 10/10",
    "ru greeting": "привет всем, отличный стрим",
    "allowed domain": "see you at twitch.tv/streamer",
    "file names": "node.js is cool and python3.11 too",
    "telegraph": "i love the telegraph",
    "tv": "телевизор сломался",
    "ru write what you think": "пишите что думаете",
    "admin": "telegram admin",
    "long number": "order 1234567890123456789 shipped",
    "single letters": "i a m here",
}


@pytest.mark.parametrize("text", BENIGN.values(), ids=list(BENIGN))
def test_benign_text_scores_low(text: str) -> None:
    assert inspect_text(text, ALL, ["twitch.tv"]).score <= 0.6
    if text not in (BENIGN["admin"],):
        assert inspect_text(text, ALL, ["twitch.tv"]).score == 0.0


def test_detectors_can_be_chosen() -> None:
    text = "call 8 912 345 67 89 or example.com"
    assert inspect_text(text, ["link"]).as_evidence() == {"links": ["example.com"]}
    assert inspect_text(text, ["phone"]).as_evidence() == {"phones": ["89123456789"]}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("FREE SKINS AT MY CHANNEL", "free skins at my channel!!!"),
        ("free skins at my channel", "fr33 sk1ns at my chann3l"),
        ("заходи на мой канал", "зaxoди нa мoй кaнaл"),  # Latin look-alikes
        ("buy followers now", "b u y  f o l l o w e r s  n o w"),
    ],
)
def test_near_identical_messages_have_the_same_skeleton(a: str, b: str) -> None:
    assert similarity(skeleton(a), skeleton(b)) == 1.0


def test_similarity_separates_different_messages() -> None:
    assert similarity(skeleton("great play"), skeleton("what game is this")) < 0.3
    assert (
        similarity(skeleton("free skins at my channel"), skeleton("free skins at my chanel")) > 0.8
    )


@pytest.mark.parametrize(
    ("text", "lang"),
    [("привет всем", "ru"), ("hello all", None), ("ok привет всем", "ru"), ("123", None)],
)
def test_script_language(text: str, lang: str | None) -> None:
    assert script_language(text) == lang
