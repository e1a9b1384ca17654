"""A realistic mix of events for the benchmark, generated one envelope at a time.

Per 10 events: 6 `activity.logged`, a `need.submitted` and its `need.claimed` (by a unit paired
with the base), an `attendance.recorded` and a `report.submitted` (no photos) for two of the
activities. Times lie in the last two days, so no report falls overdue during a run (the
deadline sweep would add `report.overdue` events of its own), and no volunteer is recorded at
two activities that overlap.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

PER_GROUP = 10


def recent(hours_ago: float = 3, length_hours: float = 2) -> dict:
    """started_at and ended_at a little while ago."""
    began = datetime.now(UTC) - timedelta(hours=hours_ago)
    return {"started_at": began.isoformat(),
            "ended_at": (began + timedelta(hours=length_hours)).isoformat()}


@dataclass
class Mix:
    org_id: str
    base_id: str
    volunteer_ids: list[str]
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    start: datetime = field(default_factory=lambda: datetime.now(UTC).replace(
        minute=0, second=0, microsecond=0) - timedelta(days=2))
    # Only activity.logged, 10 a group: the path measured before other types existed.
    activities_only: bool = False
    counts: Counter = field(default_factory=Counter)  # events generated, by type
    served: int = 0
    _groups: int = 0
    _attendance: int = 0

    @property
    def activities(self) -> int:
        return self.counts["activity.logged"]

    def envelopes(self, n: int) -> Iterator[dict]:
        """`n` envelopes (whole groups of 10, the last one cut short if need be)."""
        made = 0
        while made < n:
            for env in self._group():
                if made == n:
                    return
                self.counts[env["type"]] += 1
                made += 1
                yield env

    def _group(self) -> list[dict]:
        g = self._groups
        self._groups += 1
        # the volunteer's k-th attendance is at an activity in slot k, two hours apart
        a = self._attendance
        self._attendance += 1
        volunteer = self.volunteer_ids[a % len(self.volunteer_ids)]
        attended = self.start + timedelta(hours=2 * (a // len(self.volunteer_ids)))
        activities = []
        for k in range(PER_GROUP if self.activities_only else 6):
            begins = attended if k == 0 else self.start + timedelta(minutes=g % 600)
            served = 1 + (g + k) % 50
            self.served += served
            activities.append({
                "activity_id": str(uuid.uuid4()), "organization_id": self.org_id,
                "base_id": self.base_id, "title": f"义诊{k}", "service_types": ["free_clinic"],
                "theme": "new_countryside", "started_at": begins.isoformat(),
                "ended_at": (begins + timedelta(hours=1)).isoformat(), "volunteers": 2,
                "volunteer_hours": 2, "served": served})
        need_id = f"{self.tag}-{g}"
        group = [("activity.logged", d) for d in activities] + ([] if self.activities_only else [
            ("need.submitted", {"need_id": need_id, "base_id": self.base_id, "title": "修路灯",
                                "category": "repair", "channel": "hotline"}),
            ("need.claimed", {"need_id": need_id, "organization_id": self.org_id}),
            ("attendance.recorded", {"activity_id": activities[0]["activity_id"],
                                     "volunteer_id": volunteer, "hours": 1,
                                     "method": "sign_in"}),
            ("report.submitted", {"activity_id": activities[1]["activity_id"],
                                  "organization_id": self.org_id, "summary": "服务小结"}),
        ])
        occurred = self.start.isoformat()
        return [{"event_id": str(uuid.uuid4()), "type": t, "version": 1,
                 "occurred_at": d.get("started_at", occurred), "source": "bench", "data": d}
                for t, d in group]


async def volunteers(registry: str, org_id: str, tag: str, n: int,
                     headers: dict[str, str]) -> list[str]:
    """`n` volunteers of the unit, registered in one spreadsheet import; their ids."""
    csv = "code,name,organization_id\n" + "".join(
        f"{tag}-v{i},志愿者{i},{org_id}\n" for i in range(n))
    async with httpx.AsyncClient(timeout=300, headers=headers) as http:
        r = await http.post(f"{registry}/v1/import/volunteers",
                            files={"file": ("volunteers.csv", csv.encode())})
        r.raise_for_status()
        ids: list[str] = []
        while len(ids) < n:
            page = (await http.get(f"{registry}/v1/volunteers", params={
                "organization_id": org_id, "limit": 1000, "offset": len(ids)})).json()
            if not page["items"]:
                break
            ids += [v["id"] for v in page["items"]]
    return ids
