"""Text rules for chat lines and for text read from frames (OCR). Pure code.

Adversarial spellings are undone before matching: Unicode compatibility forms, zero-width and
other format characters, Cyrillic/Greek/Latin look-alikes (mapped to one skeleton), leetspeak,
letters spread out with spaces or punctuation ("т е л е г р а м", "w w w . x . c o m"),
spelled-out dots ("example dot com") and digits ("восемь девять один ...").
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# One look-alike class per symbol; applied to casefolded text, to keywords and messages alike.
_HOMOGLYPHS = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
        "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l", "ү": "y", "ь": "b", "п": "n", "и": "u",
        "г": "r", "з": "e", "б": "b", "ч": "a", "α": "a", "β": "b", "ε": "e", "η": "n",
        "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
        "ω": "w", "ɡ": "g",
    }
)  # fmt: skip
_LEET = str.maketrans(
    {"0": "o", "1": "i", "l": "i", "|": "i", "!": "i", "3": "e", "4": "a", "5": "s", "6": "b",
     "7": "t", "8": "b", "9": "g", "@": "a", "$": "s", "€": "e", "+": "t"}
)  # fmt: skip
_DOT_WORD = re.compile(r"\s*(?:[(\[{<]\s*(?:dot|точка|\.)\s*[)\]}>]|\s(?:dot|точка)\s)\s*")
_SLASH_WORD = re.compile(r"\s(?:slash|слэш|слеш)\s")
_SPACE = re.compile(r"\s+")
_NON_ALNUM = re.compile(r"[\W_]+")
_NUMBER_WORDS = {
    w: str(d)
    for d, words in enumerate(
        (
            ("zero", "ноль", "нуль"),
            ("one", "один"),
            ("two", "два"),
            ("three", "три"),
            ("four", "четыре"),
            ("five", "пять"),
            ("six", "шесть"),
            ("seven", "семь"),
            ("eight", "восемь"),
            ("nine", "девять"),
        )
    )
    for w in words
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b")
_DIGIT_LOOKALIKE = re.compile(r"(?<=\d)[oо]|[oо](?=\d)|(?<=\d)[lі|]|[lі|](?=\d)|(?<=\d)з|з(?=\d)")
_LOOKALIKE_DIGIT = str.maketrans({"o": "0", "о": "0", "l": "1", "і": "1", "|": "1", "з": "3"})
_PHONE = re.compile(r"(?<!\d)\+?\d(?:[\s\-–.()/]{0,3}\d){9,14}(?!\d)")
_TLDS = (
    "com|net|org|info|biz|io|me|gg|tv|ru|su|рф|xyz|top|site|online|club|shop|app|link|ly|co|to"
    "|cc|ws|live|pro|fun|vip|store|icu|de|uk|eu|us|ua|by|kz|win|bet|cam|sex|chat"
)
_LINK = re.compile(
    r"(?:https?://|www\.)[^\s]+|(?<![\w.])[a-z0-9][a-z0-9-]{0,62}(?:\.[a-z0-9-]{1,63})*"
    rf"\.(?:{_TLDS.translate(_HOMOGLYPHS)})(?![a-z0-9])(?:/[^\s]*)?"
)
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


_LONE_BANG = re.compile(r"(?<![^\W\d_])!|!(?![^\W\d_])")  # "!" not between two letters


def skeleton(text: str) -> str:
    """Casefolded, look-alikes and leetspeak mapped, every non-alphanumeric removed."""
    return _NON_ALNUM.sub("", _LONE_BANG.sub("", _latin(text)).translate(_LEET))


def _clean(text: str) -> str:
    """NFKC, no format characters, no combining marks, casefolded, single spaces."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) not in ("Cf", "Mn", "Me"))
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", kept).casefold()).strip()


def _despace(text: str) -> str:
    """Join runs of three or more one-character tokens: 'w w w . x . c o m' -> 'www.x.com'."""
    out: list[str] = []
    run: list[str] = []
    for token in [*text.split(" "), ""]:
        if len(token) == 1:
            run.append(token)
            continue
        if len(run) >= 3:
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if token:
            out.append(token)
    return " ".join(out)


def _latin(text: str) -> str:
    return _despace(_clean(text)).translate(_HOMOGLYPHS)


def _link_view(text: str) -> str:
    """Cleaned, dots and slashes spelled out undone, spaced letters joined (not yet mapped)."""
    cleaned = _SLASH_WORD.sub("/", _DOT_WORD.sub(".", f" {_clean(text)} "))
    return _despace(cleaned.strip())


def _terms(*words: str) -> tuple[tuple[str, str], ...]:
    return tuple((w, skeleton(w)) for w in words)


# Off-platform contact channels: solicitation when disguised, or next to a handle, a link or an
# ask ("write me"); a plain mention ("telegram is down") is only a weak cue.
CHANNEL_TERMS = _terms(
    "telegram", "whatsapp", "onlyfans", "snapchat", "wickr", "viber", "cashapp", "paypal.me",
    "телеграм", "телег", "ватсап", "вотсап", "вацап", "воцап", "онлифанс", "вайбер",
)  # fmt: skip
# Asks for contact or promotes: ambiguous alone, a reviewer looks.
WEAK_TERMS = _terms(
    "dm me", "add me", "text me", "call me", "write me", "contact me", "message me",
    "link in bio", "free followers", "cheap followers", "buy followers", "promo code",
    "пиши в лс", "пишите в лс", "в личку", "промокод", "заработок", "подписчики дешево",
)  # fmt: skip
# Asks that make a channel mention solicitation (too common to be cues on their own).
ASK_TERMS = _terms(
    "write", "add", "dm", "text", "contact", "message", "hmu", "call",
    "пиши", "пишите", "напиши", "звони", "в лс", "добавь",
)  # fmt: skip
# Bare domains under these TLDs are often just sloppy typing ("at home.net was down").
_WORDLIKE_TLDS = frozenset(
    ("net", "me", "to", "co", "pro", "fun", "live", "app", "link", "shop", "top", "site", "win",
     "bet", "chat", "cam", "store", "club", "online", "vip", "icu", "us", "de", "uk", "eu")
)  # fmt: skip
_HANDLE = re.compile(r"(?<![\w.])@[a-z0-9_]{3,}")


@dataclass(frozen=True)
class TextFindings:
    links: tuple[str, ...] = ()  # with a scheme, www., a path, or a TLD that is no word
    phones: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()  # contact channels used to solicit
    weak_links: tuple[str, ...] = ()
    weak_terms: tuple[str, ...] = ()

    @property
    def score(self) -> float:
        """1.0: a link, phone number or solicited channel; 0.6: only weak cues; else 0."""
        if self.links or self.phones or self.terms:
            return 1.0
        return 0.6 if self.weak_terms or self.weak_links else 0.0

    def as_evidence(self) -> dict[str, list[str]]:
        out = {
            "links": [*self.links, *self.weak_links],
            "phones": list(self.phones),
            "terms": [*self.terms, *self.weak_terms],
        }
        return {k: v for k, v in out.items() if v}


def find_links(
    text: str, allow_domains: Iterable[str] = ()
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(links, weak links) as written (look-alike letters kept, for the reviewer)."""
    allowed = tuple(d.lower() for d in allow_domains)
    raw = _link_view(text)
    mapped = raw.translate(_HOMOGLYPHS)  # one character for one: spans line up
    strong: list[str] = []
    weak: list[str] = []
    for m in _LINK.finditer(mapped):
        link = m.group().rstrip(".,;:!?)")
        host = re.sub(r"^(?:https?://)?(?:www\.)?", "", link).split("/")[0]
        if any(host == d or host.endswith("." + d) for d in allowed):
            continue
        shown = raw[m.start() : m.start() + len(link)]
        bare = link == host and not link.startswith("www.")
        (weak if bare and host.rsplit(".", 1)[-1] in _WORDLIKE_TLDS else strong).append(shown)
    return tuple(dict.fromkeys(strong)), tuple(dict.fromkeys(weak))


def find_phones(text: str) -> tuple[str, ...]:
    """Phone numbers (10-15 digits), also spelled out, spaced out or with look-alike letters."""
    view = _NUMBER_WORD.sub(lambda m: _NUMBER_WORDS[m.group(1)], _clean(text))
    view = _DIGIT_LOOKALIKE.sub(lambda m: m.group().translate(_LOOKALIKE_DIGIT), view)
    view = _DIGIT_LOOKALIKE.sub(lambda m: m.group().translate(_LOOKALIKE_DIGIT), view)
    phones = []
    for m in _PHONE.finditer(view):
        groups = re.findall(r"\d+", m.group())
        digits = "".join(groups)
        if all(len(g) == 4 and g[:2] in ("19", "20") for g in groups):
            continue  # "2024 2025 2026": years, not a number
        phones.append(digits)
    return tuple(dict.fromkeys(phones))


def find_terms(text: str, *, has_link: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(solicited channels, weak cues) in any spelling.

    A channel counts as solicitation when it is disguised (found only after undoing
    look-alikes, leetspeak or spacing: evasion shows intent), or comes with a handle, a link or
    an ask; else it is a weak cue.
    """
    flat = skeleton(text)
    plain = _clean(text)
    weak = [word for word, sk in WEAK_TERMS if sk in flat]
    found = [(word, sk) for word, sk in CHANNEL_TERMS if sk in flat]
    # "телег" inside "телеграм": keep the longer
    channels = [w for w, sk in found if not any(sk != o and sk in o for _, o in found)]
    written = text.casefold()
    disguised = [w for w, _ in found if w not in written]
    words = [w for w in _NON_ALNUM.split(_LONE_BANG.sub("", _latin(text)).translate(_LEET)) if w]
    grams = {*words, *(a + b for a, b in itertools.pairwise(words))}
    ask = weak or any(sk in grams for _, sk in ASK_TERMS)
    if disguised or (channels and (ask or has_link or _HANDLE.search(plain))):
        return tuple(channels), tuple(weak)
    return (), tuple(channels + weak)


def inspect_text(
    text: str, detectors: Iterable[str], allow_domains: Iterable[str] = ()
) -> TextFindings:
    wanted = set(detectors)
    links, weak_links = find_links(text, allow_domains) if "link" in wanted else ((), ())
    phones = find_phones(text) if "phone" in wanted else ()
    if "solicitation" in wanted:
        terms, weak_terms = find_terms(text, has_link=bool(links or weak_links))
    else:
        terms, weak_terms = (), ()
    return TextFindings(links, phones, terms, weak_links, weak_terms)


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of character trigrams of two skeletons (1.0: identical)."""
    if a == b:
        return 1.0
    if len(a) < 3 or len(b) < 3:
        return 0.0
    ga = {a[i : i + 3] for i in range(len(a) - 2)}
    gb = {b[i : i + 3] for i in range(len(b) - 2)}
    return len(ga & gb) / len(ga | gb)


def script_language(text: str) -> str | None:
    """``"ru"`` when at least half of the letters are Cyrillic, else None (unknown)."""
    letters = sum(1 for ch in text if ch.isalpha())
    if letters and 2 * len(_CYRILLIC.findall(text)) >= letters:
        return "ru"
    return None
