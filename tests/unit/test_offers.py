"""The one validation path for offered events (HTTP and bus alike)."""

from __future__ import annotations

import json
import uuid

import pytest

from services.events.domain import event_id_from_key, parse_offer, references
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
    assert references(offer.data) == [("data.organization_id", "organization", "org-1"),
                                      ("data.base_id", "base", "base-1"),
                                      ("data.team_id", "team", "team-1")]


def test_nul_characters_are_refused_by_name():
    # PostgreSQL cannot store them; refusing them here keeps the bus path out of a retry loop.
    assert fields_of(envelope(activity("o", "b", title="义诊\x00"))) == ["data.title"]
    assert fields_of(envelope(activity("o", "b"), source="mini\x00prog")) == ["source"]
    donation = {"item": "书\x00", "quantity": 1, "unit": "册", "value_cny": 1}
    assert fields_of(envelope(activity("o", "b", donations=[donation]))) == [
        "data.donations[0].item"]
