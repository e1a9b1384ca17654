"""What a rule answers: accept (with the state it leaves behind) or refuse (with the reason).

A rule is a pure function `(data, envelope, facts) -> Verdict`: no I/O, state in, errors out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.events.state import Facts, State
from shared.envelope import Envelope
from shared.errors import FieldError


@dataclass(frozen=True)
class Accept:
    changes: tuple[State, ...] = ()


@dataclass(frozen=True)
class Refuse:
    errors: tuple[FieldError, ...]
    # The prerequisite may still arrive (outside systems publish out of order): on the bus the
    # offer is retried with back-off for a while before it is dead-lettered.
    wait: bool = False
    # A bad field (HTTP 422), rather than a conflict with what was accepted before (409).
    invalid: bool = False


Verdict = Accept | Refuse
Rule = Callable[[Any, Envelope, Facts], Verdict]


def accept(*changes: State) -> Accept:
    return Accept(changes)


def refuse(field: str, message: str, *, wait: bool = False, invalid: bool = False) -> Refuse:
    return Refuse((FieldError(field=field, message=message),), wait=wait, invalid=invalid)
