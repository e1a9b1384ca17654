"""Sign-in hours, what needs no I/O: a page's short code, a signed event's id, and how far a
phone is from the base (`services/events/forms/sign_in.py` serves them)."""

from __future__ import annotations

import math
import secrets
import uuid

# A kiosk's code is typed by hand: no 0/O, 1/I/L, 2/Z, 5/S, 8/B.
ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY"
CODE_LENGTH = 6
_NAMESPACE = uuid.UUID("0b5c6f1e-3a7d-4f2b-9c8e-5d1a2b3c4d5e")


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normal_code(text: str) -> str:
    """What a person typed (spaces, lower case) as a code."""
    return "".join(text.split()).upper()


def masked(name: str | None) -> str | None:
    """A name as a public page shows it: its first character (张**)."""
    return name[0] + "*" * min(len(name) - 1, 2) if name else None


def event_id(activity_id: str, volunteer_id: str, step: str) -> str:
    """One sign-in and one sign-out per volunteer and activity: a retried tap, or the same
    event delivered again, is the same event."""
    return str(uuid.uuid5(_NAMESPACE, f"{activity_id}/{volunteer_id}/{step}"))


def metres_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(min(1.0, a)))


def too_far(base: dict, latitude: float, longitude: float, radius_m: float) -> int | None:
    """Metres from the base, if more than `radius_m`; None if near, or the base has no place."""
    lat, lon = base.get("latitude"), base.get("longitude")
    if lat is None or lon is None:
        return None
    metres = metres_between(float(lat), float(lon), latitude, longitude)
    return round(metres) if metres > radius_m else None
