"""What the sign-in pages decide without I/O (services/events/forms/signing.py): a kiosk's code,
one event per volunteer, activity and step, a public page's names, how far from the base."""

from __future__ import annotations

import re

from services.events.forms import signing


def test_a_code_is_six_letters_a_person_cannot_misread():
    codes = {signing.new_code() for _ in range(200)}
    assert len(codes) > 190
    assert all(re.fullmatch(r"[34679ACDEFGHJKMNPQRTUVWXY]{6}", c) for c in codes)
    assert signing.normal_code(" ab3 4c ") == "AB34C"


def test_one_event_per_volunteer_activity_and_step():
    a = signing.event_id("act", "v1", "in")
    assert a == signing.event_id("act", "v1", "in")
    assert len({a, signing.event_id("act", "v1", "out"), signing.event_id("act", "v2", "in"),
                signing.event_id("other", "v1", "in")}) == 4


def test_a_public_page_shows_a_names_first_character():
    assert signing.masked("王建国") == "王**"
    assert signing.masked("李四") == "李*"
    assert signing.masked("") is None and signing.masked(None) is None


def test_too_far_only_when_the_base_has_a_place():
    base = {"latitude": 36.81, "longitude": 118.05}
    assert signing.too_far(base, 36.8105, 118.0502, 1000) is None  # ~60 m
    far = signing.too_far(base, 36.90, 118.05, 1000)
    assert far is not None and 9_900 < far < 10_100  # 0.09° of latitude, ~10 km
    assert signing.too_far({}, 0.0, 0.0, 1000) is None
