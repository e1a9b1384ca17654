"""Sessions ended early (`shared.sessions.EndedSessions`) and the cookies that name them
(`shared.auth.Gate`): a logout ends one session, a deactivation those begun before it; a cookie
from before sessions had ids still reads (its signing time stands for its start)."""

from __future__ import annotations

import time

from shared.auth import Gate
from shared.sessions import EndedSessions


async def nobody(kind: str, id_: str) -> dict | None:
    return None


async def no_bucket():
    raise AssertionError("not used here")


def test_a_logout_ends_one_session_and_a_deactivation_those_begun_before():
    ended = EndedSessions(no_bucket)
    ended.note("s.abc", b"1")
    assert ended.ended("abc", "a1", 100.0)
    assert not ended.ended("other", "a1", 100.0)  # the account's other session goes on
    assert not ended.ended(None, "a1", 100.0)

    ended.note("a.a1", b"150.5")
    assert ended.ended("other", "a1", 150.5) and ended.ended(None, "a1", 100.0)
    assert not ended.ended("later", "a1", 151.0)  # logged in after the deactivation
    assert not ended.ended("other", "a2", 100.0)  # another account
    ended.note("a.a1", b"120")  # an older mark read again does not undo the newer
    assert ended.ended("other", "a1", 140.0)
    ended.note("a.a1", b"not a time")  # unreadable: ignored
    assert ended.accounts["a1"] == 150.5


def test_a_session_cookie_names_its_session_and_start():
    gate = Gate(nobody, "secret", 12.0)
    before = time.time()
    one, two = gate.new_session("a1"), gate.new_session("a1")
    first, second = gate.session_of(one), gate.session_of(two)
    assert first and second and first["account"] == second["account"] == "a1"
    assert first["sid"] and first["sid"] != second["sid"]
    assert before <= first["at"] <= time.time()
    tampered = one[:-5] + ("A" if one[-5] != "A" else "B") + one[-4:]  # a bit of the signature
    assert gate.session_of(tampered) is None
    assert gate.session_of(Gate(nobody, "other", 12.0).new_session("a1")) is None  # forged
    old = gate.sessions.dumps({"account": "a1"})  # made before sessions had ids
    read = gate.session_of(old)
    assert read and read["sid"] is None and read["account"] == "a1"
    assert abs(read["at"] - time.time()) < 5
