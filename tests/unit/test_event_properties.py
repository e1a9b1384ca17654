"""Property tests of every event schema (hypothesis), one family per concern:

1. valid data, derived from each type's pydantic model, is accepted and round-trips;
2. arbitrary JSON and bytes are accepted or `Rejected` naming real places, never a crash;
3. one mutation of a valid offer is refused naming exactly the mutated field;
4. `parse_json` round-trips JSON and refuses anything else naming `body`.

Every family iterates `EVENT_TYPES`, and strategies are derived from the models' field
annotations (types, `Field` bounds, `StringConstraints`, `AfterValidator`s), so a new event
type is covered without editing this file. What annotations cannot say, the cross-field
validators, is in `CONSISTENT` below; `test_every_cross_field_rule_is_known_here` fails when a
model gains one this file does not know yet.
"""

from __future__ import annotations

import copy
import json
import math
import types
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from services.events.domain import Offer, parse_offer
from shared import events as ev
from shared.dates import EARLIEST, LATEST
from shared.envelope import Envelope
from shared.errors import Rejected, parse_json
from shared.event_types import EVENT_TYPES

# Deterministic, no example database in the tree, no deadline (CI machines are shared).
PROPERTIES = settings(max_examples=50, derandomize=True, database=None, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow,
                                             HealthCheck.data_too_large])
# Valid offers hold lists of up to 100 stalls, donations, ...: shrinking them would outlast the
# time a CI job has, so a failing example is reported as drawn (its field names the problem).
OFFERS = settings(PROPERTIES, max_examples=25,
                  phases=[Phase.explicit, Phase.reuse, Phase.generate])
TYPES = sorted(EVENT_TYPES)
ENVELOPE_KEYS = set(Envelope.model_fields)

# -- deriving JSON values from the models ---------------------------------------------------

Json = Any
_FIRST_DAY, _LAST_DAY = EARLIEST.date(), (LATEST - timedelta(days=1)).date()
_OFFSETS = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m)))
_CHINESE = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
# Any character a valid string may hold: no surrogates (not UTF-8), no NUL (refused).
_VALID_CHAR = st.characters(exclude_categories=("Cs",), exclude_characters="\x00") | _CHINESE
_LIST_CAP = 100  # a list is drawn short, or at its maximum up to this many items


def _unwrap(annotation: Any, metadata: tuple[Any, ...] = ()) -> tuple[Any, tuple[Any, ...]]:
    """`Annotated[X, m...]` -> (X, metadata + m)."""
    while get_origin(annotation) is Annotated:
        base, *extra = get_args(annotation)
        annotation, metadata = base, (*metadata, *extra)
    return annotation, metadata


def _options(annotation: Any) -> tuple[list[Any], bool]:
    """The members of `X | Y | None` and whether None is one."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        return [a for a in args if a is not type(None)], type(None) in args
    return [annotation], False


def _bounds(metadata: tuple[Any, ...]) -> dict[str, Any]:
    """The constraints on a value, from `Field(...)`, `StringConstraints` and friends."""
    out: dict[str, Any] = {}
    for m in metadata:
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern",
                     "max_digits", "decimal_places"):
            value = getattr(m, name, None)
            if value is not None:
                out[name] = value
    return out


def _after_validators(metadata: tuple[Any, ...]) -> list[Callable[[Any], Any]]:
    return [m.func for m in metadata if isinstance(m, AfterValidator)]


def _passes(validators: list[Callable[[Any], Any]], value: Any) -> bool:
    try:
        for validate in validators:
            validate(value)
    except ValueError:
        return False
    return True


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _text(b: dict[str, Any], extreme: bool) -> st.SearchStrategy[str]:
    low, high = b.get("min_length", 0), b.get("max_length", 40)
    if "pattern" in b:
        return st.from_regex(b["pattern"], fullmatch=True).filter(
            lambda s: low <= len(s) <= high)
    short = st.text(_VALID_CHAR, min_size=low, max_size=min(high, 12))
    longest = st.builds(lambda s, fill: (s + fill * high)[:high], short,
                        _VALID_CHAR.filter(lambda c: not c.isspace()))
    # Every EventData string is stripped: draw it stripped, so the draw is its normal form.
    text = longest if extreme and "max_length" in b else short | longest
    return text.map(str.strip).filter(lambda s: len(s) >= low)


def _edges(low: Any, high: Any, anywhere: st.SearchStrategy[Any],
           extreme: bool) -> st.SearchStrategy[Any]:
    """Anywhere between the bounds; at the extremes, at either bound."""
    if extreme and low is not None and high is not None:
        return st.sampled_from([low, high])
    return anywhere


def value_of(annotation: Any, metadata: tuple[Any, ...] = (),
             extreme: bool = False) -> st.SearchStrategy[Any]:
    """A valid Python value of an annotated field (as the model holds it, before JSON).
    `extreme`: at the limits (numbers and times at a bound, strings and lists as long as
    allowed, lists up to _LIST_CAP items, optional parts present)."""
    annotation, metadata = _unwrap(annotation, metadata)
    members, nullable = _options(annotation)
    if len(members) > 1 or nullable:
        strategy = st.one_of(*(value_of(m, metadata, extreme) for m in members))
        return st.none() | strategy if nullable and not extreme else strategy
    b, validators = _bounds(metadata), _after_validators(metadata)
    strategy: st.SearchStrategy[Any]
    if get_origin(annotation) is Literal:
        strategy = st.sampled_from(get_args(annotation))
    elif get_origin(annotation) is list:
        item = value_of(get_args(annotation)[0], (), extreme)
        low, high = b.get("min_length", 0), b.get("max_length", _LIST_CAP)
        size = min(high, _LIST_CAP) if extreme else min(high, low + 3)
        strategy = st.lists(item, min_size=size if extreme else low, max_size=size)
    elif _is_model(annotation):
        strategy = data_of(annotation, True, extreme)
    elif annotation is str:
        strategy = _text(b, extreme)
    elif annotation is int:
        low = b["ge"] if "ge" in b else b["gt"] + 1 if "gt" in b else None
        high = b["le"] if "le" in b else b["lt"] - 1 if "lt" in b else None
        strategy = _edges(low, high, st.integers(low, high), extreme)
    elif annotation is float:
        strategy = st.floats(b.get("ge", b.get("gt")), b.get("le", b.get("lt")),
                             exclude_min="gt" in b, exclude_max="lt" in b,
                             allow_nan=False, allow_infinity=False)
        strategy = _edges(b.get("ge"), b.get("le"), strategy, extreme)
    elif annotation is Decimal:
        places = b.get("decimal_places", 3)
        step = Decimal(1).scaleb(-places)
        top = b.get("le", Decimal(10) ** (b.get("max_digits", 18) - places) - step)
        low = b["gt"] + step if "gt" in b else b.get("ge", -top)
        strategy = _edges(low, top, st.decimals(low, top, places=places, allow_nan=False,
                                                allow_infinity=False), extreme)
    elif annotation is uuid.UUID:
        strategy = st.uuids()
    elif annotation is date:
        strategy = _edges(_FIRST_DAY, _LAST_DAY, st.dates(_FIRST_DAY, _LAST_DAY), extreme)
    elif annotation in (datetime, AwareDatetime):
        first, last = EARLIEST.replace(tzinfo=None), LATEST.replace(tzinfo=None) - timedelta(
            microseconds=1)
        utc = _edges(first, last, st.datetimes(first, last), extreme)
        strategy = st.builds(lambda t, tz: t.replace(tzinfo=UTC).astimezone(tz), utc, _OFFSETS)
    else:
        raise TypeError(f"no strategy for {annotation!r}: teach value_of this kind of field")
    return strategy.filter(lambda v: _passes(validators, v)) if validators else strategy


def _limit(model: type[BaseModel], name: str, bound: str) -> Any:
    info = model.model_fields[name]
    return _bounds(tuple(info.metadata))[bound]


def _figures(draw: st.DrawFn, data: dict[str, Any], within_limits: bool) -> dict[str, Any]:
    """An activity's figures: it ends after it starts; at a fair, its `service_types` and
    `served` are its stalls' (or left out), and what they make is within limits itself;
    otherwise both are given."""
    if data["ended_at"] < data["started_at"]:
        data["started_at"], data["ended_at"] = data["ended_at"], data["started_at"]
    stalls = data.get("stalls") or []
    if within_limits:
        most = _limit(ev.ActivityFigures, "service_types", "max_length")
        kept = list(dict.fromkeys(s["service_type"] for s in stalls))[:most]
        stalls = [s for s in stalls if s["service_type"] in kept]
        while sum(s["served"] for s in stalls) > _limit(ev.ActivityFigures, "served", "le"):
            stalls.pop()
        if "stalls" in data:
            data["stalls"] = stalls
    if stalls:
        theirs = list(dict.fromkeys(s["service_type"] for s in stalls))
        data["service_types"] = draw(st.sampled_from([[], theirs, theirs[::-1]]))
        data["served"] = draw(st.sampled_from([None, sum(s["served"] for s in stalls)]))
    else:
        if not data.get("service_types"):
            data["service_types"] = [draw(st.from_regex(r"[a-z][a-z0-9_]{0,39}",
                                                        fullmatch=True))]
        if data.get("served") is None:
            data["served"] = draw(st.integers(0, 10_000_000))
    return data


def _visit(draw: st.DrawFn, data: dict[str, Any], within_limits: bool) -> dict[str, Any]:
    """A visit counts at least its distinct households."""
    keys = set(data.get("household_keys") or ())
    data["households_visited"] = max(data["households_visited"], len(keys))
    return data


def _feedback(draw: st.DrawFn, data: dict[str, Any], within_limits: bool) -> dict[str, Any]:
    """An answer other than satisfied gives its reason."""
    if data["satisfaction"] != "satisfied" and data.get("reason") is None:
        data["reason"] = draw(st.sampled_from(["问题依旧", "only half fixed"]))
    return data


def _signed(draw: st.DrawFn, data: dict[str, Any], within_limits: bool) -> dict[str, Any]:
    """Signed times only on a sign-in, a sign-out only after a sign-in and within a year of
    it; hours required without them, none while open, else the span (or left out)."""
    if data["method"] != "sign_in":
        data.pop("signed_in_at", None)
        data.pop("signed_out_at", None)
    if data.get("signed_in_at") is None:
        data.pop("signed_out_at", None)
        if data.get("hours") is None:
            data["hours"] = draw(st.floats(0.01, 24 * 366))
        return data
    if data.get("signed_out_at") is None:
        data.pop("hours", None)
        return data
    span = draw(st.timedeltas(timedelta(seconds=1), timedelta(hours=24 * 366)))
    start = data["signed_in_at"]
    if start.astimezone(UTC) + span >= datetime(2100, 12, 31, tzinfo=UTC):
        start = data["signed_in_at"] = datetime(2000, 1, 1, tzinfo=UTC)
    data["signed_out_at"] = (start + span).astimezone(data["signed_out_at"].tzinfo)
    hours = span.total_seconds() / 3600
    data["hours"] = draw(st.sampled_from([None, hours]))
    if data["hours"] is None:
        data.pop("hours")
    return data


# What annotations cannot say: the rules of the models' cross-field validators. Each makes
# data consistent; `within_limits=False` lets what one field makes of others (a fair's served,
# its stalls' service types) go past that field's own limits: whether it is accepted or not,
# an accepted offer must round-trip.
Consistent = Callable[[st.DrawFn, dict[str, Any], bool], dict[str, Any]]
CONSISTENT: dict[type[BaseModel], Consistent] = {
    ev.ActivityFigures: _figures,
    ev.CampaignVisitRecorded: _visit,
    ev.NeedFeedback: _feedback,
    ev.AttendanceRecorded: _signed,
}
KNOWN_VALIDATORS = {"_no_nul", "_types_of_stalls", "_served_by_stalls", "_ends_after_start",
                    "_at_least_the_keys", "_reason_unless_satisfied", "_signed_in_by_a_sign_in",
                    "_signed_out_after_in", "_hours_signed",
                    "_a_period"}  # (one field, its pattern in the schema: no CONSISTENT rule)


@cache
def data_of(model: type[BaseModel], within_limits: bool = True,
            extreme: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Valid `data` of a model, as Python values (`as_json` makes it JSON)."""
    fields = {name: value_of(f.annotation, tuple(f.metadata), extreme)
              for name, f in model.model_fields.items()}

    @st.composite
    def draw_data(draw: st.DrawFn) -> dict[str, Any]:
        data = {name: draw(strategy) for name, strategy in fields.items()
                if extreme or model.model_fields[name].is_required() or draw(st.booleans())}
        for kind, consistent in CONSISTENT.items():
            if issubclass(model, kind):
                data = consistent(draw, data, within_limits)
        return data

    return draw_data()


def as_json(value: Any) -> Json:
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, date | uuid.UUID):
        return value.isoformat() if isinstance(value, date) else str(value)
    if isinstance(value, Decimal):  # at most 15 digits: the float's repr is the decimal's
        return int(value) if value == value.to_integral_value() else float(value)
    return value


envelope_of = st.fixed_dictionaries({
    "event_id": st.uuids().map(str),
    "version": st.just(1),
    "occurred_at": value_of(Envelope.model_fields["occurred_at"].annotation,
                            tuple(Envelope.model_fields["occurred_at"].metadata)).map(as_json),
    "source": st.sampled_from(["zibo-miniprogram", "12345热线", " a "]),
})


def offer_of(name: str, within_limits: bool = True,
             extreme: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """A valid envelope of type `name` around valid data."""
    return st.builds(lambda env, data: {**env, "type": name, "data": as_json(data)},
                     envelope_of, data_of(EVENT_TYPES[name].data, within_limits, extreme))


def sender_of(name: str) -> Literal["outside", "tongxin"]:
    return EVENT_TYPES[name].sender


def encoded(env: dict[str, Any], how: str) -> bytes | str | dict[str, Any]:
    if how == "bytes":
        return json.dumps(env, ensure_ascii=False).encode()
    return json.dumps(env) if how == "str" else env


HOW = st.sampled_from(["dict", "str", "bytes"])


def fields_refused(raw: Any, sender: Literal["outside", "tongxin"] = "outside") -> set[str]:
    with pytest.raises(Rejected) as exc:
        parse_offer(raw, sender=sender)
    return {e.field for e in exc.value.errors}


# -- 1. valid data is accepted and round-trips --------------------------------------------

@pytest.mark.parametrize("name", TYPES)
@OFFERS
@given(data=st.data())
def test_valid_data_is_accepted_and_round_trips(name: str, data: st.DataObject) -> None:
    within_limits, extreme = data.draw(st.booleans()), data.draw(st.booleans())
    env = data.draw(offer_of(name, within_limits, extreme))
    raw = encoded(env, data.draw(HOW))
    if sender_of(name) == "tongxin" and within_limits:
        assert fields_refused(raw) == {"type"}  # published by Tongxin alone
    try:
        offer = parse_offer(raw, sender=sender_of(name))
    except Rejected:
        if within_limits:
            raise
        return
    assert isinstance(offer, Offer) and offer.type is EVENT_TYPES[name]
    assert offer.envelope.data == offer.data.model_dump(mode="json")
    # The normal form, sent again (a replay, a copy in a correction), says the same.
    again = parse_offer({**env, "data": offer.data.model_dump(mode="json")},
                        sender=sender_of(name))
    assert again.data == offer.data and again.envelope == offer.envelope
    assert again.digest == offer.digest
    # And it is what is stored and published (the envelope with its data dumped once): the
    # stored payload reads back the same.
    assert offer.payload == offer.envelope.model_dump_json()
    stored = parse_offer(offer.payload.encode(), sender=sender_of(name))
    assert stored.envelope == offer.envelope


FAIRS = sorted(n for n, t in EVENT_TYPES.items() if issubclass(t.data, ev.ActivityFigures))


@pytest.mark.parametrize("name", FAIRS)
@OFFERS
@given(data=st.data())
def test_what_a_fair_makes_of_its_stalls_is_valid_itself(name: str, data: st.DataObject) -> None:
    """A fair's `served` and `service_types`, left out, are made from its (up to 500) stalls:
    accepted, what they make must be within those fields' own limits, or the stored event
    could not be read again."""
    env = data.draw(offer_of(name))
    most = data.draw(st.sampled_from([1_000, 10_000_000]))  # so many stalls may add up or not
    stall = st.fixed_dictionaries({"service_type": st.integers(0, 10**6).map("t{}".format),
                                   "served": st.integers(0, most) | st.just(most)})
    env["data"]["stalls"] = data.draw(st.integers(1, _LIST_CAP).flatmap(lambda n: st.lists(
        stall, min_size=n, max_size=n, unique_by=lambda s: s["service_type"])))
    env["data"]["service_types"] = []
    env["data"].pop("served", None)
    try:
        offer = parse_offer(env, sender=sender_of(name))
    except Rejected as exc:
        assert {e.field for e in exc.errors} <= {"data.served", "data.service_types"}
        return
    again = parse_offer({**env, "data": offer.envelope.data}, sender=sender_of(name))
    assert again.data == offer.data


# -- 2. arbitrary JSON or bytes: an Offer or Rejected, naming real places ---------------------

_TEXT = st.text(st.characters() | _CHINESE | st.just("\x00")
                | st.characters(categories=["Cs"]), max_size=12)
_NUMBERS = (st.integers() | st.integers(-(10**4299), 10**4299)
            | st.floats() | st.sampled_from([0, -0.0, 1e308, 5e-324, 2**63, -(2**64)]))
any_json = st.recursive(
    st.none() | st.booleans() | _NUMBERS | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12)


@cache
def _field_names() -> frozenset[str]:
    def names(model: type[BaseModel]) -> Iterator[str]:
        for name, f in model.model_fields.items():
            yield name
            for inner in _inner_models(f.annotation):
                yield from names(inner)
    return frozenset(n for t in EVENT_TYPES.values() for n in names(t.data)) | ENVELOPE_KEYS


def _inner_models(annotation: Any) -> Iterator[type[BaseModel]]:
    annotation, _ = _unwrap(annotation)
    if _is_model(annotation):
        yield annotation
    for arg in get_args(annotation):
        yield from _inner_models(arg)


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every place in a decoded input, spelt as errors spell it (`data.stalls[0].served`),
    with what is there. Without recursion: an input may nest deeper than Python's stack."""
    todo = [("", value)]
    while todo:
        where, value = todo.pop()
        yield where, value
        if isinstance(value, dict):
            todo += [(f"{where}.{k}" if where else str(k), v) for k, v in value.items()]
        elif isinstance(value, list):
            todo += [(f"{where}[{i}]", v) for i, v in enumerate(value)]


def judged(raw: Any, decoded: Any) -> None:
    """parse_offer returns an Offer or raises Rejected, each reason naming `body`, an
    envelope key, a place in the input, or a field missing from an object in it (`data.theme`
    when `data` has no `theme`)."""
    try:
        offer = parse_offer(raw)
    except Rejected as exc:
        assert exc.errors, "refused without a reason"
        places = dict(_walk(decoded))
        for e in exc.errors:
            assert e.field and e.message, e
            parent, _, name = e.field.rpartition(".")
            assert (e.field == "body" or e.field in ENVELOPE_KEYS or e.field in places or (
                name in _field_names() and isinstance(places.get(parent), dict))), (
                e.field, e.message)
    else:
        assert isinstance(offer, Offer)
        offer.envelope.model_dump_json()  # what is stored can be written


def _decoded(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


@PROPERTIES
@given(value=any_json, how=st.sampled_from(["ascii", "utf-8", "str"]))
def test_any_json_body_is_judged_never_a_crash(value: Json, how: str) -> None:
    try:
        text = json.dumps(value, ensure_ascii=how == "ascii")
    except ValueError:  # an int of more than 4,300 digits: json.dumps cannot write it
        return
    raw = text if how == "str" else text.encode("utf-8", "surrogatepass")
    judged(raw, _decoded(raw))
    if isinstance(value, dict):
        judged(value, value)


@PROPERTIES
@given(raw=st.binary() | st.binary().map(lambda b: b'{"data": ' + b)
       | st.integers(0, 3000).map(lambda n: b'{"type": "need.claimed", "data": {"need_id": '
                                 + b"[" * n + b"]" * n + b"}}"))
def test_any_bytes_are_judged_never_a_crash(raw: bytes) -> None:
    judged(raw, _decoded(raw))


@pytest.mark.parametrize("name", TYPES)
@OFFERS
@given(data=st.data())
def test_any_data_in_a_valid_envelope_is_judged(name: str, data: st.DataObject) -> None:
    env = data.draw(offer_of(name))
    model_keys = st.sampled_from(sorted(EVENT_TYPES[name].data.model_fields))
    junk = data.draw(any_json | st.dictionaries(model_keys | _TEXT, any_json, max_size=6))
    env["data"] = junk if data.draw(st.booleans()) else _spoiled(data, env["data"])
    raw = data.draw(st.sampled_from(["dict", "str"]))
    judged(encoded(env, raw), env)


@pytest.mark.parametrize("name", TYPES)
@OFFERS
@given(data=st.data())
def test_any_envelope_around_valid_data_is_judged(name: str, data: st.DataObject) -> None:
    env = _spoiled(data, data.draw(offer_of(name)), deep=False)
    judged(env, env)
    judged(json.dumps(env), env)


def _spoiled(data: st.DataObject, value: Json, deep: bool = True) -> Json:
    """`value` with some of its members replaced by arbitrary JSON, dropped, or added to."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            verdict = data.draw(st.sampled_from(["keep", "spoil", "drop", "replace"]))
            if verdict == "keep":
                out[key] = item
            elif verdict == "spoil":
                out[key] = _spoiled(data, item) if deep else item
            elif verdict == "replace":
                out[key] = data.draw(any_json)
        out.update(data.draw(st.dictionaries(_TEXT, any_json, max_size=2)))
        return out
    if isinstance(value, list) and deep:
        return [_spoiled(data, item) for item in value]
    return value


# -- 3. one mutation of a valid offer is refused, naming exactly its field -------------------

class Site:
    """A place in valid data to mutate: a model's field, or an item of a list field."""

    def __init__(self, path: tuple[str | int, ...], annotation: Any,
                 metadata: tuple[Any, ...], info: FieldInfo | None, present: bool,
                 strips: bool):
        self.path, self.info, self.present, self.strips = path, info, present, strips
        annotation, self.metadata = _unwrap(annotation, metadata)
        members, _ = _options(annotation)
        self.kind, self.metadata = _unwrap(members[0], self.metadata)
        self.bounds = _bounds(self.metadata)

    @property
    def field(self) -> str:
        return _dotted(self.path)

    def mutations(self, value: Any) -> Iterator[tuple[str, st.SearchStrategy[Any] | None]]:
        """(what, the wrong value: None to drop the field)."""
        kind, b = self.kind, self.bounds
        if self.present and self.info is not None and self.info.is_required():
            yield "drop a required field", None
        if get_origin(kind) is list:
            yield "wrong type", st.sampled_from([{}, "x", 5])
            if value and "max_length" in b:
                yield "too many items", st.just([value[0]] * (b["max_length"] + 1))
            return
        if _is_model(kind):
            yield "wrong type", st.sampled_from([[], "x", 5])
            yield "unknown field", st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(
                lambda k: k not in kind.model_fields).map(lambda k: {**value, k: 1})
            return
        yield "wrong type", st.sampled_from([[], {}, [1], {"a": 1}])
        if kind in (int, float, Decimal):
            if "ge" in b or "gt" in b:
                yield "below the minimum", st.just(b.get("ge", b.get("gt")) - 1)
            if "le" in b:
                yield "above the maximum", st.just(b["le"] + 1)
            if "max_digits" in b:
                yield "too many digits", st.just(
                    10 ** (b["max_digits"] - b.get("decimal_places", 0)))
        if kind is date:
            yield "a day outside 1900-2100", (
                st.dates(max_value=date(1899, 12, 31)) | st.dates(min_value=date(2101, 1, 1))
            ).map(date.isoformat)
        if kind in (datetime, AwareDatetime):
            yield "a time outside 1900-2100", st.builds(
                lambda t, tz: t.replace(tzinfo=UTC).astimezone(tz).isoformat(),
                st.datetimes(datetime(2, 1, 1), datetime(1899, 12, 31))
                | st.datetimes(datetime(2101, 1, 2), datetime(9998, 12, 31)), _OFFSETS)
            yield "a time without its offset", st.just("2013-10-20T09:00:00")
        if kind is str or get_origin(kind) is Literal or kind is uuid.UUID:
            yield "a NUL character", st.just(f"{value}\x00")
        if get_origin(kind) is Literal:
            yield "not one of the choices", st.just("none_of_these")
        if kind is str:
            if "max_length" in b:
                yield "too long", st.just("字" * (b["max_length"] + 1))
            if b.get("min_length"):
                yield "empty (once stripped)", st.sampled_from(
                    ["", "  ", "\u3000\t"] if self.strips else [""])
            if "pattern" in b:
                yield "against the pattern", st.just("Not A Code!")
            if ev._no_personal_data in _after_validators(self.metadata):
                yield "a phone number in free text", st.builds(
                    "{}{}{}".format, st.text(_CHINESE, max_size=5),
                    st.sampled_from(["13812345678", "+86 138-1234-5678", "１３８１２３４５６７８",
                                     "37030319800101123X"]), st.text(_CHINESE, max_size=5))


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def sites(model: type[BaseModel], data: dict[str, Any],
          path: tuple[str | int, ...] = ("data",)) -> Iterator[Site]:
    """Every field of `model` (present or not) and of the models and lists inside `data`."""
    strips = bool(model.model_config.get("str_strip_whitespace"))
    for name, info in model.model_fields.items():
        site = Site((*path, name), info.annotation, tuple(info.metadata), info, name in data,
                    strips)
        yield site
        value = data.get(name)
        item_type = get_args(site.kind)[0] if get_origin(site.kind) is list else None
        if _is_model(site.kind) and isinstance(value, dict):
            yield from sites(site.kind, value, (*path, name))
        elif item_type is not None and isinstance(value, list):
            for i, item in enumerate(value):
                inner, meta = _unwrap(item_type)
                if _is_model(inner):
                    yield Site((*path, name, i), inner, meta, None, True, strips)
                    yield from sites(inner, item, (*path, name, i))
                else:
                    yield Site((*path, name, i), item_type, (), None, True, strips)


def _envelope_sites() -> Iterator[Site]:
    for name in ("event_id", "version", "occurred_at", "source"):
        info = Envelope.model_fields[name]
        yield Site((name,), info.annotation, tuple(info.metadata), info, True,
                   bool(Envelope.model_config.get("str_strip_whitespace")))


def _get(root: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        root = root[part]
    return root


@pytest.mark.parametrize("name", TYPES)
@settings(OFFERS, max_examples=40)
@given(data=st.data())
def test_a_mutation_is_refused_naming_its_field(name: str, data: st.DataObject) -> None:
    env = data.draw(offer_of(name))
    model = EVENT_TYPES[name].data
    choices = [(site, what, wrong) for site in [*_envelope_sites(), *sites(model, env["data"])]
               for what, wrong in site.mutations(_get(env, site.path) if site.present else None)]
    site, what, wrong = data.draw(st.sampled_from(choices))
    mutated = copy.deepcopy(env)
    parent, last = _get(mutated, site.path[:-1]), site.path[-1]
    if wrong is None:
        del parent[last]
    else:
        parent[last] = data.draw(wrong)
    expected = site.field
    if what == "a NUL character" and isinstance(last, int):
        # NUL is refused by one rule on a whole field (shared.text.refuse_nul, a validator
        # before the list's own), so it names the list, not the item.
        expected = _dotted(site.path[:-1])
    if what == "unknown field":
        expected += "." + next(k for k in parent[last] if k not in _get(env, site.path))
    raw = encoded(mutated, data.draw(st.sampled_from(["dict", "str"])))
    assert fields_refused(raw, sender_of(name)) == {expected}, what


# -- 4. parse_json ------------------------------------------------------------------------

finite_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**4299), 10**4299) | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=16)


@PROPERTIES
@given(value=finite_json, ascii_only=st.booleans())
def test_parse_json_reads_what_json_writes(value: Json, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert parse_json(text) == value
    if ascii_only:
        assert parse_json(text.encode()) == value


def _finite_everywhere(value: Json) -> bool:
    return all(math.isfinite(v) for _, v in _walk(value) if isinstance(v, float))


@PROPERTIES
@given(raw=st.binary() | _TEXT | st.from_regex(
    r"\A\[?-?[0-9]{1,5000}(\.[0-9]{1,400})?([eE][+-]?[0-9]{1,5})?\]?\Z")
    | st.integers(0, 3000).map(lambda n: "[" * n + "]" * n)
    | st.sampled_from(["NaN", "-Infinity", "[Infinity]", "1e999", '{"a": NaN}', "\ufeff{}",
                       "[" * 100_000 + "]" * 100_000, "9" * 4301]))
def test_parse_json_returns_json_or_refuses_naming_the_body(raw: bytes | str) -> None:
    try:
        value = parse_json(raw)
    except Rejected as exc:
        assert [e.field for e in exc.errors] == ["body"]
        assert exc.errors[0].message
    else:
        assert _finite_everywhere(value)


# -- the derivation itself ----------------------------------------------------------------

def test_every_cross_field_rule_is_known_here() -> None:
    """A new cross-field validator needs its rule in CONSISTENT, or valid data is not valid."""
    for t in EVENT_TYPES.values():
        for model in (t.data, *_inner_models_of(t.data)):
            assert set(model.__pydantic_decorators__.field_validators) <= KNOWN_VALIDATORS, (
                f"{model.__name__}: add its rule to CONSISTENT and KNOWN_VALIDATORS")
            assert not model.__pydantic_decorators__.model_validators, model.__name__


def _inner_models_of(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    for f in model.model_fields.values():
        for inner in _inner_models(f.annotation):
            yield inner
            yield from _inner_models_of(inner)


@pytest.mark.parametrize("name", TYPES)
def test_every_type_has_a_strategy_and_mutations(name: str) -> None:
    data_of(EVENT_TYPES[name].data)  # raises TypeError for a field kind value_of lacks
    assert any(True for _ in sites(EVENT_TYPES[name].data, {}))

