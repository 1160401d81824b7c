"""Chat rules: toxicity by language, escalation per user, flood, repeats, raids, solicitation."""

from __future__ import annotations

import orjson
import pytest

from pipeline.policy import ChatStreamState, ChatUserState, Evaluation, decide_chat
from tests.unit.policy_fixtures import POLICY, T0_S, ChatRunner, live, message

A, R = "act", "review"


def acts(ev: Evaluation) -> list[tuple[str, str | None]]:
    return sorted((o.rule, o.action) for o in ev.acts)


@pytest.mark.parametrize(
    ("text", "toxicity", "language", "expected"),
    [
        ("nice play", 0.2, "en", []),
        ("meh play", 0.55, "en", [(R, "chat-toxicity", None)]),
        ("you idiot", 0.85, "en", [(A, "chat-toxicity", "delete_message")]),
        # the Russian model scores neutral lines 0.5-0.57: no review, no action
        ("я иду домой", 0.55, "ru", []),
        ("сегодня хорошая погода", 0.57, "ru", []),
        ("пошел ты", 0.8, "ru", [(R, "chat-toxicity", None)]),
        ("ты тупой идиот", 0.95, "ru", [(A, "chat-toxicity", "delete_message")]),
        # no language label: Cyrillic script means the Russian thresholds
        ("я иду домой", 0.55, None, []),
        ("meh play", 0.55, None, [(R, "chat-toxicity", None)]),
    ],
)
def test_toxicity_thresholds_by_language(
    text: str, toxicity: float, language: str | None, expected: list[tuple]
) -> None:
    ev = ChatRunner().send(message(0, text, toxicity=toxicity, language=language))
    assert live(ev) == expected


def test_repeat_offender_climbs_the_chat_ladder_others_do_not() -> None:
    chat = ChatRunner()
    got = [chat.send(message(i * 5, f"idiot {i}", toxicity=0.9)) for i in range(4)]
    assert [acts(e) for e in got] == [
        [("chat-toxicity", "delete_message")],
        [("chat-toxicity", "timeout_user")],
        [("chat-toxicity", "suspend_user")],
        [("chat-toxicity", "suspend_user")],
    ]
    assert got[1].acts[0].user_level and not got[0].acts[0].user_level
    other = chat.send(message(9, "idiot", user="u2", toxicity=0.9))
    assert acts(other) == [("chat-toxicity", "delete_message")]


def test_offences_outside_the_escalation_window_are_forgotten() -> None:
    chat = ChatRunner()
    chat.send(message(0, "idiot", toxicity=0.9))
    later = chat.send(message(1, "idiot again", toxicity=0.9, at_s=T0_S + 601))
    assert acts(later) == [("chat-toxicity", "delete_message")]


def test_shadow_rule_reports_but_never_acts_or_escalates() -> None:
    chat = ChatRunner()
    first = chat.send(message(0, "meh", toxicity=0.65, language="en"))
    assert first.acts == () and [o.rule for o in first.shadow] == ["chat-toxicity-shadow"]
    assert first.shadow[0].strike_weight == 0.0
    second = chat.send(message(1, "idiot", toxicity=0.9, language="en"))
    assert acts(second) == [("chat-toxicity", "delete_message")]  # not escalated by the shadow


def test_flood_deletes_then_times_out_after_the_cooldown() -> None:
    chat = ChatRunner()
    times = [0, 1, 2, 3, 4, 15, 16, 17, 18]  # max 3 messages per 10 s, cooldown 10 s
    got = [chat.send(message(i, f"msg {i}", at_s=T0_S + t)) for i, t in enumerate(times)]
    flood = [[(o.action, o.offence) for o in e.acts if o.rule == "chat-flood"] for e in got]
    assert flood == [
        [],
        [],
        [],
        [("delete_message", True)],  # 4th within 10 s: an offence
        [("delete_message", False)],  # within the cooldown: message-level only
        [],
        [],
        [],
        [("timeout_user", True)],  # a new flood after the cooldown: one rung up
    ]


def test_near_identical_repeats_are_spam() -> None:
    chat = ChatRunner()
    texts = ["FREE SKINS at my channel", "free skins at my channel!!!", "fr33 sk1ns at my channel"]
    got = [chat.send(message(i * 5, t)) for i, t in enumerate(texts)]
    assert [acts(e) for e in got] == [[], [], [("chat-repeat", "delete_message")]]
    assert got[2].acts[0].evidence["repeats"] == 3


def test_short_chatter_repeated_is_not_repeat_spam() -> None:
    chat = ChatRunner()
    got = [chat.send(message(i * 5, "gg")) for i in range(4)]
    assert all(not e.acts for e in got)


def test_raid_of_first_time_chatters_acts_on_the_whole_raid() -> None:
    chat = ChatRunner()
    # a regular, long before: not a first-time chatter any more
    chat.send(message(0, "follow my channel for free skins", user="regular", at_s=T0_S - 100))
    chat.send(message(1, "follow my channel for free skins", user="regular"))
    raid = [
        chat.send(message(10 + i, "follow my channel for free skins!", user=f"bot{i}"))
        for i in range(4)
    ]
    assert [acts(e) for e in raid[:2]] == [[], []]
    third = raid[2]
    assert {(o.input_id, o.action) for o in third.acts if o.rule == "chat-raid"} == {
        ("chat:s1:m0012", "timeout_user"),
        ("chat:s1:m0010", "timeout_user"),  # the earlier raid messages too
        ("chat:s1:m0011", "timeout_user"),
    }
    retro = [o for o in third.acts if o.input_id != third.input_id]
    assert {o.evidence["user_id"] for o in retro} == {"bot0", "bot1"}
    assert not any(o.offence for o in retro)
    fourth = raid[3]
    assert [(o.input_id, o.action) for o in fourth.acts if o.rule == "chat-raid"] == [
        ("chat:s1:m0013", "timeout_user")
    ]


def test_returning_chatters_are_not_a_raid() -> None:
    chat = ChatRunner()
    for i in range(3):
        chat.send(message(i, "hi", user=f"fan{i}"))
    got = [
        chat.send(message(10 + i, "hype hype hype train", user=f"fan{i}", at_s=T0_S + 40 + i))
        for i in range(3)
    ]
    assert all(not any(o.rule == "chat-raid" for o in e.acts) for e in got)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("пиши в т е л е г р а м", [(A, "chat-solicit", "delete_message")]),
        ("call me 8 9 1 2 3 4 5 6 7 8 9", [(A, "chat-solicit", "delete_message")]),
        ("clip: twitch.tv/videos/1", []),
        ("dm me", [(R, "chat-solicit", None)]),
        ("gg wp", []),
    ],
)
def test_solicitation_in_chat(text: str, expected: list[tuple]) -> None:
    assert live(ChatRunner().send(message(0, text))) == expected


def test_redelivered_message_returns_the_same_evaluation() -> None:
    chat = ChatRunner()
    obs = message(0, "idiot", toxicity=0.9)
    first = chat.send(obs)
    user = chat.users["s1|u1"]
    stream = chat.streams["s1"]
    s2, u2, again = decide_chat(POLICY, stream, user, obs)
    assert again.replayed and again.outcomes == first.outcomes
    assert (s2, u2) == (stream, user)
    nxt = chat.send(message(1, "idiot again", toxicity=0.9))
    assert acts(nxt) == [("chat-toxicity", "timeout_user")]  # the redelivery did not count


def test_chat_state_survives_a_json_round_trip() -> None:
    chat = ChatRunner()
    for i in range(3):
        chat.send(message(i, f"follow my channel {i}", user=f"bot{i}", toxicity=0.9))
    for key, user in chat.users.items():
        doc = orjson.loads(orjson.dumps(user.to_doc()))
        assert ChatUserState.from_doc(doc) == user, key
        assert ChatUserState.from_json(user.to_json()) == user
    stream = chat.streams["s1"]
    assert ChatStreamState.from_doc(orjson.loads(orjson.dumps(stream.to_doc()))) == stream
    assert ChatStreamState.from_json(stream.to_json()) == stream


def test_high_strikes_start_one_rung_higher_in_chat() -> None:
    ev = ChatRunner().send(message(0, "idiot", toxicity=0.9), user_strikes=4.0)
    assert acts(ev) == [("chat-toxicity", "timeout_user")]
