"""The one validation path for offered events (HTTP and bus alike)."""

from __future__ import annotations

import json
import uuid

import pytest

from services.events.domain import event_id_from_key, parse_offer
from shared.errors import Rejected
from tests.factories import activity, envelope


def fields_of(raw, subject_type=None) -> list[str]:
    with pytest.raises(Rejected) as exc:
        parse_offer(raw, subject_type)
    return [e.field for e in exc.value.errors]


def test_a_valid_offer_is_normalised():
    env = envelope(activity("org-1", "base-1", served=" 12 ".strip()))
    offer = parse_offer(json.dumps(env).encode())
    assert offer.envelope.event_id == uuid.UUID(env["event_id"])
    assert offer.data.served == 12
    assert offer.envelope.data["served"] == 12  # stored and published in the normal form
    assert offer.data.donation_value_cny == 4000


def test_not_json_and_not_an_object():
    assert fields_of(b"\xff\xfe") == ["body"]
    assert fields_of(b"[1, 2]") == ["body"]


def test_every_bad_field_is_named():
    data = activity("org-1", "base-1", served=-1, volunteers="x", title="",
                    ended_at="2013-10-20T08:00:00+08:00",
                    donations=[{"item": "书", "quantity": 0, "unit": "册", "value_cny": -1}])
    del data["theme"]
    assert set(fields_of(envelope(data))) == {
        "data.served", "data.volunteers", "data.title", "data.ended_at", "data.theme",
        "data.donations[0].quantity", "data.donations[0].value_cny"}


def test_envelope_errors():
    assert set(fields_of({"type": "activity.logged", "data": {}})) >= {
        "event_id", "occurred_at", "source"}
    assert fields_of(envelope(activity("o", "b"), occurred_at="2013-10-20T09:00:00")) == [
        "occurred_at"]  # a time without its zone is ambiguous
    assert fields_of(envelope({}, event_type="activity.sung")) == ["type"]


def test_type_must_match_the_subject_it_was_offered_on():
    assert "type" in fields_of(envelope(activity("o", "b")), subject_type="need.submitted")


def test_unknown_fields_are_refused_not_dropped():
    assert fields_of(envelope(activity("o", "b", servd=3))) == ["data.servd"]


def test_idempotency_key_becomes_a_stable_event_id():
    key = str(uuid.uuid4())
    assert event_id_from_key(key) == uuid.UUID(key)
    assert event_id_from_key("zibo-2013-0001") == event_id_from_key("zibo-2013-0001")
    assert event_id_from_key("zibo-2013-0001") != event_id_from_key("zibo-2013-0002")


def test_references_name_their_fields():
    offer = parse_offer(envelope(activity("org-1", "base-1", team_id="team-1")))
    assert list(offer.type.references_in(offer.envelope.data)) == [
        ("data.organization_id", "organization", "org-1"), ("data.base_id", "base", "base-1"),
        ("data.team_id", "team", "team-1"),
        ("data.service_types[0]", "service_type", "free_clinic"),
        ("data.service_types[1]", "service_type", "donation")]


def test_a_fairs_stalls_refer_to_their_units_and_make_its_figures():
    stalls = [{"service_type": "haircut", "served": 40, "organization_id": "org-2"},
              {"service_type": "repair", "served": 25}]
    data = activity("org-1", "base-1", stalls=stalls, served=None, service_types=[])
    offer = parse_offer(envelope(data))
    assert (offer.data.served, offer.data.service_types) == (65, ["haircut", "repair"])
    assert offer.data.units == ("org-1", "org-2")
    assert ("data.stalls[0].organization_id", "organization", "org-2") in list(
        offer.type.references_in(offer.envelope.data))
    assert fields_of(envelope({**data, "served": 70})) == ["data.served"]
    assert fields_of(envelope({**data, "service_types": ["haircut"]})) == ["data.service_types"]
    assert set(fields_of(envelope({**data, "stalls": []}))) == {"data.service_types",
                                                               "data.served"}


@pytest.mark.parametrize("when", ["9999-12-31T23:00:00+08:00", "0001-01-01T00:00:00+08:00",
                                  "1899-12-31T23:00:00+00:00", "2101-01-01T00:00:00+00:00"])
def test_times_outside_1900_to_2100_are_refused_by_name(when):
    assert fields_of(envelope(activity("o", "b", started_at=when, ended_at=when))) == [
        "data.started_at", "data.ended_at"]
    assert fields_of(envelope(activity("o", "b"), occurred_at=when)) == ["occurred_at"]


def test_dates_outside_1900_to_2100_are_refused_by_name():
    plan = {"activity_id": str(uuid.uuid4()), "organization_id": "o", "base_id": "b",
            "title": "周六轮值", "service_types": ["cleanup"], "theme": "city_quality",
            "planned_on": "9999-01-01"}
    assert fields_of(envelope(plan, "activity.scheduled")) == ["data.planned_on"]


def test_residents_phone_and_id_numbers_are_refused_in_free_text():
    need = {"need_id": "12345-0001", "base_id": "b", "title": "路灯坏了", "category": "repair",
            "channel": "hotline", "description": "联系 138 0013 8000 王大妈"}
    assert fields_of(envelope(need, "need.submitted")) == ["data.description"]
    need["description"] = "身份证 370302199001011234"
    assert fields_of(envelope(need, "need.submitted")) == ["data.description"]
    need["description"] = "12345 热线转来，3 号楼 2 单元"  # a hotline's number is no person's
    assert parse_offer(envelope(need, "need.submitted")).data.description


def test_what_only_tongxin_publishes_is_refused_from_outside():
    overdue = {"activity_id": str(uuid.uuid4()), "organization_id": "o",
               "due_at": "2013-10-27T00:00:00+08:00"}
    assert fields_of(envelope(overdue, "report.overdue")) == ["type"]
    assert parse_offer(envelope(overdue, "report.overdue"), sender="tongxin").data


def test_the_same_event_says_the_same_whenever_and_however_it_is_sent():
    data = activity("o", "b")
    a = parse_offer(envelope(data, source="kiosk"))
    b = parse_offer(envelope(data, source="http", event_id=a.event_id))
    assert a.digest == b.digest
    assert parse_offer(envelope({**data, "served": 1})).digest != a.digest
    assert a.about == f"activity_id={data['activity_id']}"


def test_nul_characters_are_refused_by_name():
    # PostgreSQL cannot store them; refusing them here keeps the bus path out of a retry loop.
    assert fields_of(envelope(activity("o", "b", title="义诊\x00"))) == ["data.title"]
    assert fields_of(envelope(activity("o", "b"), source="mini\x00prog")) == ["source"]
    donation = {"item": "书\x00", "quantity": 1, "unit": "册", "value_cny": 1}
    assert fields_of(envelope(activity("o", "b", donations=[donation]))) == [
        "data.donations[0].item"]
