"""docs/interface.md, the public interface for outside systems, cannot drift from the code:
every JSON block in it parses; every event example is accepted by the validation the events
service applies to every offer (`parse_offer`, as on the bus: on its type's subject); every v1
event type has an example; and the other payloads shown (an error, a dead letter's reason, a
notification) have the shape the code produces."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.events.domain import parse_offer
from services.reporting.notify.kinds import Draft, payload
from shared.errors import FieldError, Rejected
from shared.event_types import EVENT_TYPES
from shared.http import Errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "interface.md"
ENVELOPE_FIELDS = {"event_id", "type", "version", "occurred_at", "source", "data"}


def json_blocks() -> list[object]:
    blocks = re.findall(r"^```json\n(.*?)^```", DOC.read_text(encoding="utf-8"),
                        flags=re.MULTILINE | re.DOTALL)
    assert blocks, f"no ```json blocks in {DOC}"
    parsed = []
    for block in blocks:
        try:
            parsed.append(json.loads(block))
        except ValueError as exc:
            pytest.fail(f"a JSON block of {DOC.name} does not parse ({exc}):\n{block}")
    return parsed


def examples() -> list[dict]:
    """The event examples: every block that is a complete envelope with data."""
    return [b for b in json_blocks() if isinstance(b, dict) and ENVELOPE_FIELDS <= b.keys()
            and b["data"]]


def test_every_v1_event_type_has_an_example():
    shown = {e["type"] for e in examples()}
    assert set(EVENT_TYPES) - shown == set(), "types without an example in docs/interface.md"
    assert shown - set(EVENT_TYPES) == set(), "examples of types the code does not know"


@pytest.mark.parametrize("example", examples(), ids=lambda e: e["type"])
def test_each_example_is_accepted_as_offered(example: dict):
    declared = EVENT_TYPES.get(example["type"])
    assert declared is not None, f"{example['type']!r} is no event type the code knows"
    raw = json.dumps(example, ensure_ascii=False).encode()
    if declared.sender == "outside":
        # As an outside system sends it: on the bus, on its type's subject (HTTP: the same).
        offer = parse_offer(raw, subject_type=example["type"])
    else:
        # Tongxin's own (report.overdue): valid as Tongxin publishes it, refused from outside.
        offer = parse_offer(raw, sender="tongxin")
        with pytest.raises(Rejected) as refused:
            parse_offer(raw)
        assert [e.field for e in refused.value.errors] == ["type"]
    assert offer.type.name == example["type"]
    # Nothing the example says is dropped or changed by validation, only filled in.
    normalised = offer.envelope.data
    for name, value in example["data"].items():
        assert name in normalised, name
        if isinstance(value, str | bool) or value is None:
            assert normalised[name] == value or _same_moment(value, normalised[name]), name


def _same_moment(given: object, stored: object) -> bool:
    try:
        return datetime.fromisoformat(str(given)) == datetime.fromisoformat(str(stored))
    except ValueError:
        return False


def test_examples_are_distinct_events():
    """Each example is a different event: sent one after another, none is a retry of another."""
    ids = [e["event_id"] for e in examples()]
    assert len(ids) == len(set(ids))
    assert all(uuid.UUID(i) for i in ids)


def test_the_error_and_dead_letter_bodies_have_the_code_shape():
    blocks = json_blocks()
    errors = [b for b in blocks if isinstance(b, dict) and set(b) == {"errors"}]
    assert errors, "the error body is shown"
    for body in errors:
        Errors.model_validate(body)
    reasons = [b for b in blocks if isinstance(b, list)]
    assert reasons, "a Tongxin-Error header value is shown"
    for reason in reasons:
        assert [FieldError.model_validate(r) for r in reason]


def test_the_notification_example_has_the_published_fields():
    shown = [b for b in json_blocks() if isinstance(b, dict) and "notification_id" in b]
    assert len(shown) == 1
    published = payload(Draft(kind="need_submitted", organization_id="o",
                              occurred_at=datetime(2013, 10, 9, tzinfo=UTC),
                              subject_type="need", subject_id="n", cause="c"), "zh", "en")
    assert set(shown[0]) == set(published)
    assert set(shown[0]["subject"]) == set(published["subject"])
