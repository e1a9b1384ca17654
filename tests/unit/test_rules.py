"""The rules alone: pure functions from facts to a verdict (no database, no NATS)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.events import rules
from services.events.domain import offer_of, parse_offer
from services.events.rules import RULES, Accept, Refuse
from services.events.state import Activity, Attendance, Facts, Need
from shared.errors import Rejected
from shared.errors_zh import rule_zh
from shared.event_types import EVENT_TYPES
from tests.factories import activity, envelope

NOW = datetime(2013, 10, 20, 12, tzinfo=UTC)


def judge(event_type: str, data: dict, facts: Facts):
    offer = parse_offer(envelope(data, event_type)) if EVENT_TYPES[event_type].sender == \
        "outside" else offer_of(event_type, data, "test", event_id=str(uuid.uuid4()),
                                occurred_at=NOW.isoformat())
    verdict = RULES[event_type](offer.data, offer.envelope, facts)
    if isinstance(verdict, Accept):
        for change in verdict.changes:
            facts.put(change)
    return verdict


def refused(verdict) -> tuple[str, str, bool]:
    assert isinstance(verdict, Refuse), verdict
    (error,) = verdict.errors
    return error.field, error.message, verdict.wait


def test_every_declared_type_has_a_rule_and_every_rule_a_type():
    assert set(RULES) == set(EVENT_TYPES)


def logged(facts: Facts, **changes) -> dict:
    data = activity("org-1", "base-1", **changes)
    assert isinstance(judge("activity.logged", data, facts), Accept)
    return data


# -- activities ---------------------------------------------------------------------------

def test_an_activity_is_scheduled_logged_corrected_and_retracted():
    facts = Facts(now=NOW, report_due=timedelta(days=7))
    data = activity("org-1", "base-1")
    plan = {k: data[k] for k in ("activity_id", "organization_id", "base_id", "title",
                                 "service_types", "theme")} | {"planned_on": "2013-10-20"}
    assert isinstance(judge("activity.scheduled", plan, facts), Accept)
    assert isinstance(judge("activity.logged", data, facts), Accept)
    act = facts.activity(data["activity_id"])
    assert (act.state, act.planned_on.isoformat()) == ("logged", "2013-10-20")
    assert act.report_due_at == datetime(2013, 10, 27, 4, tzinfo=UTC)  # ended + 7 days
    assert "activity.corrected" in refused(judge("activity.logged", data, facts))[1]
    later = {**data, "ended_at": "2013-10-20T15:00:00+08:00", "reason": "时间记错"}
    assert isinstance(judge("activity.corrected", later, facts), Accept)
    assert facts.activity(data["activity_id"]).report_due_at == datetime(2013, 10, 27, 7,
                                                                         tzinfo=UTC)
    retract = {"activity_id": data["activity_id"], "reason": "重复登记"}
    assert isinstance(judge("activity.retracted", retract, facts), Accept)
    assert "retracted" in refused(judge("activity.corrected", later, facts))[1]
    assert "already retracted" in refused(judge("activity.retracted", retract, facts))[1]
    assert "retracted" in refused(judge("activity.logged", data, facts))[1]


def test_a_correction_before_the_logging_waits_for_it():
    facts = Facts(now=NOW)
    data = {**activity("o", "b"), "reason": "x"}
    assert refused(judge("activity.corrected", data, facts))[::2] == ("data.activity_id", True)


def test_a_team_serves_for_its_own_unit():
    facts = Facts(now=NOW, registry={("team", "t1"): {"id": "t1", "organization_id": "org-2"}})
    verdict = judge("activity.logged", activity("org-1", "b", team_id="t1"), facts)
    assert refused(verdict)[0] == "data.team_id" and verdict.invalid


# -- attendance ---------------------------------------------------------------------------

def test_hours_are_recorded_replaced_and_confirmed_by_a_unit():
    facts = Facts(now=NOW, registry={("volunteer", "v1"): {"organization_id": "org-9"}})
    data = logged(facts)
    rec = {"activity_id": data["activity_id"], "volunteer_id": "v1", "hours": 2,
           "method": "self"}
    judge("attendance.recorded", rec, facts)
    assert facts.attendance_of(data["activity_id"], "v1").status == "unconfirmed"
    judge("attendance.recorded", {**rec, "hours": 3}, facts)  # replaces
    assert facts.attendance_of(data["activity_id"], "v1").hours == 3
    who = {"activity_id": data["activity_id"], "volunteer_id": "v1"}
    assert refused(judge("attendance.confirmed", {**who, "organization_id": "org-5"},
                         facts))[0] == "data.organization_id"
    assert isinstance(judge("attendance.confirmed", {**who, "organization_id": "org-9"},
                            facts), Accept)  # the volunteer's own unit may
    assert "already confirmed" in refused(judge("attendance.confirmed", {
        **who, "organization_id": "org-1"}, facts))[1]
    assert isinstance(judge("attendance.declined", {**who, "organization_id": "org-1",
                                                    "reason": "未到场"}, facts), Accept)


def test_hours_longer_than_the_activity_and_overlaps_are_refused():
    facts = Facts(now=NOW)
    first = logged(facts)  # 09:00-12:00
    second = logged(facts, started_at="2013-10-20T11:00:00+08:00",
                    ended_at="2013-10-20T13:00:00+08:00")
    third = logged(facts, started_at="2013-10-20T12:00:00+08:00",
                   ended_at="2013-10-20T14:00:00+08:00")
    rec = {"volunteer_id": "v1", "hours": 3, "method": "sign_in"}
    assert refused(judge("attendance.recorded", {**rec, "activity_id": first["activity_id"],
                                                 "hours": 3.5}, facts))[0] == "data.hours"
    assert isinstance(judge("attendance.recorded", {**rec, "activity_id": first["activity_id"]},
                            facts), Accept)
    field, message, _ = refused(judge("attendance.recorded", {
        **rec, "activity_id": second["activity_id"], "hours": 1}, facts))
    assert field == "data.volunteer_id" and first["activity_id"] in message
    # back to back is not an overlap
    assert isinstance(judge("attendance.recorded", {**rec, "activity_id": third["activity_id"],
                                                    "hours": 2}, facts), Accept)


def test_a_sign_in_is_open_until_signed_out_and_within_the_activitys_time():
    facts = Facts(now=NOW, registry={("volunteer", "v1"): {"organization_id": "org-9"}})
    act = logged(facts)  # 09:00-12:00 in Shanghai
    who = {"activity_id": act["activity_id"], "volunteer_id": "v1"}
    signed = {**who, "method": "sign_in", "signed_in_at": "2013-10-20T09:05:00+08:00"}
    assert isinstance(judge("attendance.recorded", signed, facts), Accept)
    row = facts.attendance_of(act["activity_id"], "v1")
    assert (row.status, row.hours, row.signed_out_at) == ("open", 0.0, None)
    # An open sign-in is not confirmed as it stands (its planned hours are not its hours).
    field, message, _ = refused(judge("attendance.confirmed", {**who,
                                                              "organization_id": "org-9"}, facts))
    assert field == "data.volunteer_id" and "has not signed out" in message
    assert rule_zh(message) and "签退" in rule_zh(message)
    assert isinstance(judge("attendance.recorded", {
        **signed, "signed_out_at": "2013-10-20T11:35:00+08:00"}, facts), Accept)
    row = facts.attendance_of(act["activity_id"], "v1")
    assert (row.status, row.hours) == ("confirmed", 2.5)
    # Signed out, a late open sign-in does not reopen it.
    field, message, _ = refused(judge("attendance.recorded", signed, facts))
    assert field == "data.volunteer_id" and "already signed out" in message
    # Outside the activity's time: refused naming the time, as a bad field.
    for late in ({**signed, "signed_in_at": "2013-10-20T08:59:00+08:00"},
                 {**signed, "signed_out_at": "2013-10-20T12:01:00+08:00"}):
        verdict = judge("attendance.recorded", {**late, "volunteer_id": "v2"}, facts)
        field, message, _ = refused(verdict)
        assert verdict.invalid and "outside the activity's time" in message
        assert field == ("data.signed_out_at" if "signed_out_at" in late
                         else "data.signed_in_at")
        assert "不在活动时间内" in (rule_zh(message) or "")


def test_confirming_hours_nobody_recorded_waits_then_is_refused():
    facts = Facts(now=NOW)
    data = logged(facts)
    verdict = judge("attendance.confirmed", {"activity_id": data["activity_id"],
                                             "volunteer_id": "v1", "organization_id": "org-1"},
                    facts)
    assert refused(verdict)[::2] == ("data.volunteer_id", True)


# -- needs --------------------------------------------------------------------------------

def need_facts(**kw) -> Facts:
    return Facts(now=NOW, pairings_by_base={"base-1": [{"id": "p1", "organization_id": "org-1",
                                                        "base_id": "base-1"}]}, **kw)


def submitted(facts: Facts, need_id: str = "N1", **kw) -> None:
    judge("need.submitted", {"need_id": need_id, "base_id": "base-1", "title": "路灯不亮",
                             "category": "repair", "channel": "hotline", **kw}, facts)


@pytest.mark.parametrize("steps", [
    ["claimed", "resolved", "closed"],
    ["claimed", "returned", "claimed", "resolved", "reopened", "claimed", "resolved"],
    ["claimed", "resolved", "closed", "reopened"],
])
def test_the_need_life_cycle(steps):
    facts = need_facts()
    submitted(facts)
    body = {"organization_id": "org-1", "reason": "人手不足", "outcome": "confirmed"}
    for step in steps:
        data = {"need_id": "N1", **{k: v for k, v in body.items()
                                    if k in EVENT_TYPES[f"need.{step}"].data.model_fields}}
        assert isinstance(judge(f"need.{step}", data, facts), Accept), step
    expected = {"claimed": "claimed", "resolved": "resolved", "closed": "closed",
                "returned": "open", "reopened": "open"}[steps[-1]]
    assert facts.need("N1").state == expected


def test_illegal_need_transitions_name_the_state():
    facts = need_facts()
    claim = {"need_id": "N1", "organization_id": "org-1"}
    assert refused(judge("need.claimed", claim, facts)) == (
        "data.need_id", "need N1 has not been submitted", True)
    submitted(facts)
    field, message, wait = refused(judge("need.resolved", claim, facts))
    assert (field, "is open" in message, wait) == ("data.need_id", True, True)
    judge("need.claimed", claim, facts)
    field, message, wait = refused(judge("need.claimed", claim, facts))
    assert ("is claimed by org-1" in message, wait) == (True, False)
    assert refused(judge("need.resolved", {"need_id": "N1", "organization_id": "org-2"},
                         facts))[0] == "data.organization_id"
    assert refused(judge("need.closed", {"need_id": "N1", "outcome": "confirmed"},
                         facts))[0] == "data.outcome"
    assert isinstance(judge("need.closed", {"need_id": "N1", "outcome": "withdrawn"}, facts),
                      Accept)
    assert "already closed" in refused(judge("need.closed", {"need_id": "N1",
                                                             "outcome": "duplicate"}, facts))[1]


def test_only_a_paired_unit_claims_and_under_a_pairing_only_its_unit():
    facts = need_facts(registry={("pairing", "p2"): {"id": "p2", "organization_id": "org-3",
                                                     "base_id": "base-1"}})
    submitted(facts, "N1")
    assert "not paired" in refused(judge("need.claimed", {"need_id": "N1",
                                                          "organization_id": "org-2"}, facts))[1]
    submitted(facts, "N2", pairing_id="p2")
    assert "only its unit org-3" in refused(judge("need.claimed", {
        "need_id": "N2", "organization_id": "org-1"}, facts))[1]
    assert isinstance(judge("need.claimed", {"need_id": "N2", "organization_id": "org-3"},
                            facts), Accept)


def test_feedback_answers_a_resolved_or_closed_need_and_leaves_its_state():
    facts = need_facts()
    submitted(facts)
    answer = {"need_id": "N1", "satisfaction": "unsatisfied", "respondent": "resident",
              "reason": "路灯仍不亮"}
    field, message, wait = refused(judge("need.feedback", answer, facts))
    assert (field, "only a resolved or closed need can be answered" in message, wait) == (
        "data.need_id", True, True)
    judge("need.claimed", {"need_id": "N1", "organization_id": "org-1"}, facts)
    judge("need.resolved", {"need_id": "N1", "organization_id": "org-1"}, facts)
    assert isinstance(judge("need.feedback", answer, facts), Accept)
    assert facts.need("N1").state == "resolved"
    judge("need.closed", {"need_id": "N1", "outcome": "confirmed"}, facts)
    assert isinstance(judge("need.feedback", {**answer, "satisfaction": "partly"}, facts),
                      Accept)
    assert isinstance(judge("need.reopened", {"need_id": "N1", "reason": "群众不满意"}, facts),
                      Accept)
    assert facts.need("N1").state == "open"


def test_feedback_not_satisfied_needs_a_reason():
    from shared.errors import Rejected
    bare = {"need_id": "N1", "satisfaction": "partly", "respondent": "community"}
    with pytest.raises(Rejected) as caught:
        parse_offer(envelope(bare, "need.feedback"))
    assert [(e.field, e.message) for e in caught.value.errors] == [("data.reason", "required")]
    assert parse_offer(envelope({**bare, "satisfaction": "satisfied"}, "need.feedback"))


def test_a_repeat_is_linked_to_an_open_need_at_its_base_by_who_may_handle_it():
    facts = need_facts()
    submitted(facts, "N1")
    link = {"need_id": "N2", "original_id": "N1", "organization_id": "org-1"}
    assert refused(judge("need.linked", link, facts))[::2] == ("data.need_id", True)
    submitted(facts, "N2")
    assert refused(judge("need.linked", {**link, "original_id": "N9"}, facts)) == (
        "data.original_id", "need N9 has not been submitted", True)
    assert refused(judge("need.linked", {**link, "original_id": "N2"}, facts))[0] == (
        "data.original_id")
    assert "neither claimed" in refused(judge("need.linked", {**link, "organization_id":
                                                              "org-2"}, facts))[1]
    judge("need.submitted", {"need_id": "N3", "base_id": "base-2", "title": "路灯不亮",
                             "category": "repair", "channel": "hotline"}, facts)
    assert "is at base base-1, not at base-2" in refused(judge("need.linked", {
        "need_id": "N3", "original_id": "N1", "organization_id": "org-1"}, facts))[1]
    assert isinstance(judge("need.linked", link, facts), Accept)
    assert facts.need("N2").state == "closed"
    assert "only an open or claimed need" in refused(judge("need.linked", link, facts))[1]
    # Nothing links to a closed need; the original's claimer may link a repeat it holds not.
    submitted(facts, "N4")
    assert "is closed" in refused(judge("need.linked", {
        "need_id": "N4", "original_id": "N2", "organization_id": "org-1"}, facts))[1]
    judge("need.claimed", {"need_id": "N1", "organization_id": "org-1"}, facts)
    judge("need.claimed", {"need_id": "N4", "organization_id": "org-1"}, facts)
    assert isinstance(judge("need.linked", {"need_id": "N4", "original_id": "N1",
                                            "organization_id": "org-1"}, facts), Accept)


# -- reports ------------------------------------------------------------------------------

def test_a_report_cites_uploaded_photos_and_the_deadline_fires_once():
    ref = "a" * 64
    facts = Facts(now=NOW, photos={ref})
    data = logged(facts)
    report = {"activity_id": data["activity_id"], "organization_id": "org-1",
              "summary": "活动总结", "photos": ["b" * 64]}
    verdict = judge("report.submitted", report, facts)
    assert refused(verdict)[0] == "data.photos[0]" and verdict.invalid
    overdue = {"activity_id": data["activity_id"], "organization_id": "org-1",
               "due_at": "2013-10-27T12:00:00+08:00"}
    assert isinstance(judge("report.overdue", overdue, facts), Accept)
    assert refused(judge("report.overdue", overdue, facts))[0] == "data.activity_id"  # once
    assert isinstance(judge("report.submitted", {**report, "photos": [ref]}, facts), Accept)
    assert facts.activity(data["activity_id"]).reported_at is not None


def test_no_deadline_fires_for_an_activity_already_reported():
    facts = Facts(now=NOW)
    overdue = {"activity_id": str(uuid.UUID(int=1)), "organization_id": "org-1",
               "due_at": "2013-10-27T12:00:00+08:00"}
    facts.put(Activity(overdue["activity_id"], "logged", "org-1", "b", ("org-1",),
                       reported_at=NOW))
    assert refused(judge("report.overdue", overdue, facts))[0] == "data.activity_id"


# -- campaigns ----------------------------------------------------------------------------

def test_a_visit_is_at_one_of_the_campaigns_bases_within_its_dates():
    facts = Facts(now=NOW, registry={("campaign", "c1"): {
        "id": "c1", "base_ids": ["b1"], "starts_on": "2013-06-01", "ends_on": "2013-06-30"}})
    visit = {"campaign_id": "c1", "base_id": "b1", "visited_on": "2013-06-15",
             "households_visited": 2, "household_keys": ["3-2-401", "3-2-402"]}
    assert isinstance(judge("campaign.visit_recorded", visit, facts), Accept)
    assert refused(judge("campaign.visit_recorded", {**visit, "base_id": "b2"},
                         facts))[0] == "data.base_id"
    assert refused(judge("campaign.visit_recorded", {**visit, "visited_on": "2013-07-01"},
                         facts))[0] == "data.visited_on"


# -- approved periods -----------------------------------------------------------------------

def test_an_approval_names_one_scope_and_a_period_that_has_begun():
    facts = Facts(now=NOW)
    month = {"period": "2013-10", "organization_id": "o1", "as_of": 7}
    assert isinstance(judge("period.approved", month, facts), Accept)
    assert isinstance(judge("period.approved", {**month, "period": "2013-q4"}, facts), Accept)
    assert isinstance(judge("period.approved", {"period": "2013", "region": "r1", "as_of": 0},
                            facts), Accept)
    field, message, _ = refused(judge("period.approved", {**month, "region": "r1"}, facts))
    assert field == "data.region" and "审定范围" in rule_zh(message)
    assert refused(judge("period.approved", {**month, "period": "2013-11"},
                         facts))[0] == "data.period"  # November 2013 has not begun
    for wrong in ("2013-13", "2013-Q5", "13-10", "2013/10"):
        with pytest.raises(Rejected) as refusal:
            parse_offer(envelope({**month, "period": wrong}, "period.approved"))
        (error,) = refusal.value.errors
        assert error.field == "data.period" and rule_zh(error.message), error


def test_state_objects_know_their_keys():
    assert Need("N1", "open", "b").key == ("N1",)
    assert Attendance("a", "v", 1.0, "self", "unconfirmed").key == ("a", "v")


def test_history_loaded_in_bulk_raises_no_overdue_notices_for_deadlines_long_past():
    live, history = Facts(now=NOW), Facts(now=NOW, history=True)
    old = activity("org-1", "b", started_at="2012-10-20T09:00:00+08:00",
                   ended_at="2012-10-20T12:00:00+08:00")
    recent = activity("org-1", "b", started_at="2013-10-20T09:00:00+08:00",
                      ended_at="2013-10-20T12:00:00+08:00")
    for facts in (live, history):
        judge("activity.logged", old, facts)
        judge("activity.logged", recent, facts)
    assert live.activity(old["activity_id"]).overdue is False  # logged late: the notice fires
    assert history.activity(old["activity_id"]).overdue is True  # history: no notice owed
    assert history.activity(recent["activity_id"]).overdue is False  # not yet due


# -- hours that fit, and nothing dated ahead of the clock ---------------------------------

def test_an_activitys_volunteer_hours_fit_its_length_times_its_turn_outs():
    """The rule attendance is held to (one person, the activity's length), per turn-out."""
    facts = Facts(now=NOW)
    # 1 turn-out, 100 h on a 3 h activity: refused, naming the field and the figures.
    field, message, _ = refused(judge("activity.logged", activity(
        "o", "b", volunteers=1, volunteer_hours=100), facts))
    assert field == "data.volunteer_hours"
    assert message == "100 h is more than the activity's 3 h × 1 turn-outs (3 h)"
    assert rule_zh(message) == "100 小时超过了活动时长 3 小时 × 1 人次（3 小时）"
    verdict = judge("activity.logged", activity("o", "b", volunteers=0, volunteer_hours=1),
                    facts)
    assert refused(verdict)[0] == "data.volunteer_hours" and verdict.invalid
    # Exactly length × turn-outs fits, and a minute's rounding each.
    assert isinstance(judge("activity.logged", activity("o", "b", volunteers=10,
                                                        volunteer_hours=30), facts), Accept)
    assert isinstance(judge("activity.logged", activity("o", "b", volunteers=10,
                                                        volunteer_hours=30.1), facts), Accept)
    data = logged(facts, volunteers=2, volunteer_hours=6)
    # A correction is held to the same.
    assert refused(judge("activity.corrected", {**data, "volunteer_hours": 7, "reason": "x"},
                         facts))[0] == "data.volunteer_hours"
    # Attendance: the same rule with one person.
    rec = {"activity_id": data["activity_id"], "volunteer_id": "v1", "method": "organiser"}
    assert isinstance(judge("attendance.recorded", {**rec, "hours": 3}, facts), Accept)
    assert refused(judge("attendance.recorded", {**rec, "hours": 50}, facts))[0] == "data.hours"


GRACE = timedelta(hours=24)


def offered(event_type: str, data: dict, facts: Facts, occurred_at: datetime = NOW):
    """Through `rules.judge`, as the acceptor judges: the envelope's time counts too."""
    offer = parse_offer(envelope(data, event_type, occurred_at=occurred_at.isoformat()))
    return rules.judge(event_type, offer.data, offer.envelope, facts)


def test_an_activity_ending_past_the_grace_is_refused_naming_ended_at():
    facts = Facts(now=NOW, future_grace=GRACE)  # 2013-10-20 20:00 in Shanghai
    field, message, _ = refused(offered("activity.logged", activity(
        "o", "b", started_at="2099-10-20T09:00:00+08:00",
        ended_at="2099-10-20T12:00:00+08:00"), facts))
    assert field == "data.ended_at"
    assert message == ("is more than 24 h in the future (now: 2013-10-20 20:00 +0800); a "
                       "record cannot be dated ahead")
    assert rule_zh(message) == ("晚于现在超过 24 小时（现在是 2013-10-20 20:00 +0800），不能记录"
                                "尚未发生的事")
    # Within the grace (a device's clock a little ahead, an activity ending tonight): accepted.
    soon = NOW + GRACE - timedelta(minutes=1)
    assert isinstance(offered("activity.logged", activity(
        "o", "b", started_at=(soon - timedelta(hours=3)).isoformat(),
        ended_at=soon.isoformat()), facts), Accept)
    late = NOW + GRACE + timedelta(minutes=1)
    assert refused(offered("activity.logged", activity(
        "o", "b", started_at=(late - timedelta(hours=3)).isoformat(),
        ended_at=late.isoformat()), facts))[0] == "data.ended_at"
    # A correction too; a rota entry is for later by nature.
    data = activity("o", "b")
    assert isinstance(offered("activity.logged", data, facts), Accept)
    assert refused(offered("activity.corrected", {
        **data, "ended_at": "2099-10-20T12:00:00+08:00", "reason": "x"}, facts))[0] == \
        "data.ended_at"
    plan = {k: v for k, v in activity("o", "b").items() if k in (
        "activity_id", "organization_id", "base_id", "title", "service_types", "theme")}
    assert isinstance(offered("activity.scheduled", {**plan, "planned_on": "2014-03-01"},
                              facts), Accept)


def test_any_event_said_to_occur_past_the_grace_is_refused_naming_occurred_at():
    facts = Facts(now=NOW, future_grace=GRACE)
    data = logged(facts)
    attendance = {"activity_id": data["activity_id"], "volunteer_id": "v1", "hours": 2,
                  "method": "organiser"}
    report = {"activity_id": data["activity_id"], "organization_id": "org-1",
              "summary": "义诊小结"}
    ahead = NOW + GRACE + timedelta(hours=1)
    for event_type, d in [("attendance.recorded", attendance), ("report.submitted", report),
                          ("activity.logged", activity("o", "b"))]:
        field, _, wait = refused(offered(event_type, d, facts, occurred_at=ahead))
        assert (field, wait) == ("occurred_at", False), event_type
        assert isinstance(offered(event_type, d, facts, occurred_at=NOW + GRACE), Accept)


def test_a_visit_on_a_day_that_begins_past_the_grace_is_refused_naming_visited_on():
    facts = Facts(now=NOW, future_grace=GRACE,
                  registry={("campaign", "c1"): {"id": "c1", "base_ids": ["b1"]}})
    visit = {"campaign_id": "c1", "base_id": "b1", "households_visited": 2}
    # Now is 2013-10-20 20:00 in Shanghai: the 21st begins in 4 h, the 22nd in 28 h.
    for day in ("2013-10-20", "2013-10-21"):
        assert isinstance(offered("campaign.visit_recorded", {**visit, "visited_on": day},
                                  facts), Accept), day
    for day in ("2013-10-22", "2099-01-01"):
        assert refused(offered("campaign.visit_recorded", {**visit, "visited_on": day},
                               facts))[0] == "data.visited_on", day
    # No grace: nothing past today.
    strict = Facts(now=NOW, registry=facts.registry, future_grace=timedelta(0))
    assert refused(offered("campaign.visit_recorded", {**visit, "visited_on": "2013-10-21"},
                           strict))[0] == "data.visited_on"
