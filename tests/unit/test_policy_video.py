"""Scenario tests of the temporal video policy: score sequences in, action sequences out."""

from __future__ import annotations

import orjson
import pytest

from pipeline.policy import VideoState, action_id, decide_segment, load_policy
from pipeline.policy.loader import default_policy_file
from tests.unit.policy_fixtures import POLICY, T0_S, live, run_segments, segment

A, R, H, C = "act", "review", "hold", "clear"
RULE = "nsfw-blur"

SCENARIOS = {
    # one hot frame of three is not 2-of-3: a human looks instead
    "single frame spike -> review only": (
        [[0.1, 0.1], [0.9, 0.1], [0.1, 0.1]],
        [[], [(R, RULE, None)], []],
    ),
    "2 of 3 frames -> blur, then hold": (
        [[0.1, 0.9], [0.85, 0.1], [0.9, 0.9]],
        [[(R, RULE, None)], [(A, RULE, "blur")], [(H, RULE, "blur")]],
    ),
    # hysteresis: 0.6 is below act_at but above clear_at: still in force
    "between clear_at and act_at keeps holding": (
        [[0.9, 0.9], [0.6, 0.6], [0.6, 0.55], [0.4, 0.6]],
        [[(A, RULE, "blur")], [(H, RULE, "blur")], [(H, RULE, "blur")], [(H, RULE, "blur")]],
    ),
    "two clean samples in a row clear": (
        [[0.9, 0.9], [0.6, 0.4], [0.3, 0.6], [0.2, 0.1]],
        [[(A, RULE, "blur")], [(H, RULE, "blur")], [(H, RULE, "blur")], [(C, RULE, "blur")]],
    ),
    # re-offence within the escalation window: one rung up the ladder per prior offence
    "re-offence escalates blur -> age_restrict -> end_stream": (
        [[0.9, 0.9], [0.1, 0.1], [0.9, 0.9], [0.1, 0.1], [0.9, 0.9], [0.1, 0.1], [0.9, 0.9]],
        [
            [(A, RULE, "blur")],
            [(C, RULE, "blur")],
            [(A, RULE, "age_restrict")],
            [(C, RULE, "age_restrict")],
            [(A, RULE, "end_stream")],
            [(C, RULE, "end_stream")],
            [(A, RULE, "end_stream")],  # capped at last_action
        ],
    ),
    "segments without nsfw scores change nothing": (
        [[0.9, 0.9], [], [0.1]],
        [[(A, RULE, "blur")], [(H, RULE, "blur")], [(H, RULE, "blur")]],
    ),
}


@pytest.mark.parametrize(("scores", "expected"), SCENARIOS.values(), ids=list(SCENARIOS))
def test_scenario(scores: list[list[float]], expected: list[list[tuple]]) -> None:
    _, evals = run_segments(segment(i, s) for i, s in enumerate(scores))
    assert [live(e) for e in evals] == expected


def test_escalation_window_forgets_old_offences() -> None:
    early = [segment(0, [0.9, 0.9]), segment(1, [0.1, 0.1])]
    late = segment(2, [0.9, 0.9], start_s=T0_S + 601)  # escalation window_s is 600
    _, evals = run_segments([*early, late])
    assert live(evals[-1]) == [(A, RULE, "blur")]


def test_still_offending_after_escalate_after_s_climbs_a_rung() -> None:
    obs = [segment(i, [0.9, 0.9], every_s=20) for i in range(5)]  # escalate_after_s: 60
    _, evals = run_segments(obs)
    assert [live(e) for e in evals] == [
        [(A, RULE, "blur")],
        [(H, RULE, "blur")],
        [(H, RULE, "blur")],
        [(A, RULE, "age_restrict")],  # 60 s after the blur
        [(H, RULE, "age_restrict")],
    ]


def test_offence_carries_the_rung_and_the_prior_count() -> None:
    _, evals = run_segments(
        segment(i, s) for i, s in enumerate([[0.9, 0.9], [0.1, 0.1], [0.9, 0.9]])
    )
    second = evals[2].acts[0]
    assert (second.step, second.prior_offences, second.offence) == (2, 1, True)
    assert second.evidence["window"] == {"n": 2, "m": 3, "unit": "frames", "hits": 2}
    assert second.id == action_id("segment:s1:2", POLICY.version, RULE, "age_restrict")


def test_review_band_has_a_cooldown() -> None:
    _, evals = run_segments(segment(i, [0.6]) for i in range(8))  # every 2 s, cooldown 10 s
    reviews = [i for i, e in enumerate(evals) if e.reviews]
    assert reviews == [0, 5]


def test_regional_override_changes_threshold_and_first_rung() -> None:
    scores = [[0.75, 0.75]]
    _, plain = run_segments([segment(0, scores[0])])
    _, de = run_segments([segment(0, scores[0], territory="DE")])
    assert live(plain[0]) == [(R, RULE, None)]
    assert live(de[0]) == [(A, RULE, "age_restrict")]
    assert de[0].acts[0].regional and not de[0].acts[0].geo_scoped


def test_region_can_move_a_rule_to_shadow() -> None:
    _, evals = run_segments([segment(0, [0.9, 0.9], territory="US")])
    assert evals[0].acts == ()
    shadow = {(o.rule, o.action) for o in evals[0].shadow}
    assert (RULE, "blur") in shadow
    assert next(o for o in evals[0].shadow if o.rule == RULE).geo_scoped


def test_shadow_rule_goes_to_results_only() -> None:
    _, evals = run_segments([segment(0, [0.65, 0.65])])
    ev = evals[0]
    assert ev.acts == ()
    assert [o.rule for o in ev.reviews] == [RULE]  # the live rule's review band
    (shadow,) = ev.shadow
    assert (shadow.kind, shadow.rule, shadow.action) == (A, "nsfw-candidate", "warn")
    assert shadow.strike_weight == 0.0
    assert ev.result_decision().action == "review"  # not the shadow act


def test_shadow_offences_never_escalate_live_rules() -> None:
    obs = [segment(0, [0.65]), segment(1, [0.1]), segment(2, [0.9, 0.9])]
    _, evals = run_segments(obs)
    assert live(evals[2]) == [(A, RULE, "blur")]


def test_hash_match_per_segment_ends_the_stream() -> None:
    _, evals = run_segments([segment(0, [0.1], hash_match=1.0)])
    assert live(evals[0]) == [(A, "hash-end", "end_stream")]


def test_phone_number_burned_into_the_video_is_solicitation() -> None:
    text = "CALL NOW 8 9 1 2 3 4 5 6 7 8 9"
    _, evals = run_segments(segment(i, [0.1], ocr=text) for i in range(3))
    assert [live(e) for e in evals] == [
        [(R, "ocr-solicit", None)],
        [(A, "ocr-solicit", "warn")],
        [(H, "ocr-solicit", "warn")],
    ]
    assert evals[1].acts[0].evidence["phones"] == ["89123456789"]


def test_high_strikes_start_one_rung_higher() -> None:
    _, evals = run_segments([segment(0, [0.9, 0.9])], user_strikes=3.5)
    assert live(evals[0]) == [(A, RULE, "age_restrict")]


def test_redelivery_returns_the_same_evaluation_and_keeps_state() -> None:
    obs = [segment(0, [0.9, 0.9]), segment(1, [0.9, 0.9])]
    state, evals = run_segments(obs)
    assert state is not None
    again_state, again = decide_segment(POLICY, state, obs[0])
    assert again_state == state
    assert again.replayed and again.outcomes == evals[0].outcomes
    assert again.acts[0].id == evals[0].acts[0].id


def test_redelivery_older_than_the_memo_is_empty() -> None:
    state, _ = run_segments([segment(0, [0.1]), segment(1, [0.1])])
    assert state is not None
    again_state, again = decide_segment(POLICY, state, segment(0, [0.9, 0.9]))
    assert again.replayed and again.outcomes == () and again_state == state


def test_state_survives_a_json_round_trip() -> None:
    obs = [segment(i, s) for i, s in enumerate([[0.9, 0.9], [0.6], [0.1, 0.1], [0.9, 0.9]])]
    state, _ = run_segments(obs[:2])
    assert state is not None
    restored = VideoState.from_doc(orjson.loads(orjson.dumps(state.to_doc())))
    assert restored == state
    assert VideoState.from_json(state.to_json()) == state
    _, tail_a = run_segments(obs[2:], state=state)
    _, tail_b = run_segments(obs[2:], state=restored)
    assert [e.outcomes for e in tail_a] == [e.outcomes for e in tail_b]


def test_result_decision_prefers_new_action_then_hold() -> None:
    _, evals = run_segments(segment(i, s) for i, s in enumerate([[0.9, 0.9], [0.6]]))
    assert evals[0].result_decision().action == "blur"
    held = evals[1].result_decision()
    assert (held.action, held.rule) == ("blur", RULE)
    assert evals[1].acts == ()  # a hold publishes no new action


def test_the_shipped_policy_runs() -> None:
    policy = load_policy(default_policy_file())
    state = None
    actions = []
    for i, s in enumerate([[0.2, 0.3], [0.85, 0.9], [0.9, 0.95]]):
        state, ev = decide_segment(policy, state, segment(i, s))
        actions += [o.action for o in ev.acts]
    assert actions == ["blur"]


def test_clears_of_blur_and_age_restrict_are_lifts_with_their_own_ids() -> None:
    scores = [[0.9, 0.9], [0.1, 0.1], [0.9, 0.9], [0.1, 0.1], [0.9, 0.9], [0.1, 0.1]]
    _, evals = run_segments(segment(i, s) for i, s in enumerate(scores))
    lifts = [[(o.action, o.id) for o in e.lifts] for e in evals]
    assert [[a for a, _ in e] for e in lifts] == [[], ["blur"], [], ["age_restrict"], [], []]
    # an ended stream is not lifted: evals[5] clears end_stream without a lift
    assert [o.action for o in evals[5].clears] == ["end_stream"]
    (_, blur_lift_id), (_, age_lift_id) = lifts[1][0], lifts[3][0]
    assert blur_lift_id == action_id(evals[1].input_id, POLICY.version, RULE, "lift")
    assert age_lift_id != blur_lift_id
