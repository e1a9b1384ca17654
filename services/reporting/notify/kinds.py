"""What a notification says: its kinds, its id (derived from what caused it, so every instance,
restart and replay derives the same one), its messages in Chinese and English, and its row in
the outbox. Messages name units, bases and activities by their registry names where known,
never a person."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.notify.tables import notifications, registry
from shared.dates import written
from shared.outbox import take_turn
from shared.projection import upsert
from shared.subjects import Names
from shared.taxonomy import SERVICE_TYPES
from shared.telemetry import inject

Kind = Literal["need_submitted", "report_due_soon", "report_overdue", "followup_overdue",
               "milestone"]
KINDS: tuple[Kind, ...] = ("need_submitted", "report_due_soon", "report_overdue",
                           "followup_overdue", "milestone")

# Fixed for good: changing it would change every notification_id, and a replay would resend.
ID_NAMESPACE = uuid.UUID("5f0c7e2a-3d1b-5c6e-9a8f-7b2d4e6c8a10")

URGENCY = {"low": ("低", "low"), "normal": ("一般", "normal"), "high": ("较急", "high"),
           "urgent": ("紧急", "urgent")}


def utc(moment: datetime) -> datetime:
    """Aware UTC (SQLite hands back naive datetimes, stored as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Draft:
    """A notification before its messages are written (names are looked up per batch)."""

    kind: Kind
    organization_id: str
    occurred_at: datetime
    subject_type: str
    subject_id: str
    cause: str                  # what, beside kind/unit/subject, makes it this one
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def notification_id(self) -> str:
        key = "|".join((self.kind, self.organization_id, self.subject_type, self.subject_id,
                        self.cause))
        return str(uuid.uuid5(ID_NAMESPACE, key))

    def refs(self) -> set[tuple[str, str]]:
        out = {("organization", self.organization_id)}
        if base := self.facts.get("base_id"):
            out.add(("base", base))
        return out


Labels = dict[tuple[str, str], str]


def _name(names: Labels, kind: str, id_: str | None, fallback_zh: str, fallback_en: str
          ) -> tuple[str, str]:
    if id_ and (found := names.get((kind, id_))):
        return found, found
    return (f"{fallback_zh}{id_}", f"{fallback_en} {id_}") if id_ else (fallback_zh, fallback_en)


def _day(moment: datetime, tz) -> tuple[str, str]:
    local = moment.astimezone(tz)
    return written(local, "zh"), written(local, "en")


def messages(d: Draft, names: Labels, tz) -> tuple[str, str]:
    f = d.facts
    unit_zh, unit_en = _name(names, "organization", d.organization_id, "单位", "unit")
    base_zh, base_en = _name(names, "base", f.get("base_id"), "服务基地", "base")
    if d.kind == "need_submitted":
        cat_zh, cat_en = SERVICE_TYPES.get(f["category"], (f["category"], f["category"]))
        urg_zh, urg_en = URGENCY.get(f["urgency"], (f["urgency"], f["urgency"]))
        return (f"{unit_zh}：{base_zh}有新的群众需求（{cat_zh}，{urg_zh}），编号 {d.subject_id}，"
                "请及时认领。",
                f"{unit_en}: a new need at {base_en} ({cat_en}, {urg_en}), no. {d.subject_id}; "
                "please claim it.")
    if d.kind in ("report_due_soon", "report_overdue"):
        title = f.get("title")
        what_zh = f"“{title}”" if title else f"活动 {d.subject_id}"
        what_en = f"“{title}”" if title else f"activity {d.subject_id}"
        due_zh, due_en = _day(f["due_at"], tz) if f.get("due_at") else ("", "")
        if d.kind == "report_due_soon":
            return (f"{unit_zh}：{base_zh}的服务活动{what_zh}的总结报告将于 {due_zh} 到期，"
                    "请及时提交活动总结和照片（服务旗帜接传）。",
                    f"{unit_en}: the report on {what_en} at {base_en} is due by {due_en}; "
                    "please submit its summary and photos.")
        return (f"{unit_zh}：{base_zh}的服务活动{what_zh}的总结报告已逾期（截止 {due_zh}），"
                "请尽快补交。",
                f"{unit_en}: the report on {what_en} at {base_en} is overdue (it was due by "
                f"{due_en}); please submit it now.")
    if d.kind == "followup_overdue":
        due_on: date = f["due_on"]
        return (f"{unit_zh}：{base_zh}的需求 {d.subject_id} 跟踪落实已于 "
                f"{written(due_on, 'zh')} 到期，需求仍未解决，请落实专人跟进。",
                f"{unit_en}: the follow-up of need {d.subject_id} at {base_en} was due on "
                f"{written(due_on, 'en')} and the need is still unresolved.")
    threshold = f["threshold"]
    return (f"{unit_zh}累计服务群众突破 {threshold:,} 人次！",
            f"{unit_en} has served over {threshold:,} people (person-times) in all.")


async def names_of(conn: AsyncConnection, refs: Iterable[tuple[str, str]]) -> Labels:
    refs = set(refs)
    if not refs:
        return {}
    r = registry
    rows = await conn.execute(select(r.c.kind, r.c.id, r.c.name).where(
        r.c.kind.in_({k for k, _ in refs}), r.c.id.in_({i for _, i in refs})))
    return {(k, i): n for k, i, n in rows if n}


def payload(d: Draft, zh: str, en: str) -> dict:
    return {"notification_id": d.notification_id, "kind": d.kind,
            "organization_id": d.organization_id, "occurred_at": utc(d.occurred_at).isoformat(),
            "subject": {"type": d.subject_type, "id": d.subject_id},
            "message_zh": zh, "message_en": en}


def token(organization_id: str) -> str:
    """An id as one subject token (ids are free text: no dots, wildcards or spaces there)."""
    return re.sub(r"[\s.*>]", "_", organization_id)


async def insert(conn: AsyncConnection, subjects: Names, tz, drafts: list[Draft]) -> None:
    """Queue the drafts in the caller's transaction; one already there (same id: a replay,
    another instance) is left as it is."""
    if not drafts:
        return
    unique = {d.notification_id: d for d in drafts}
    names = await names_of(conn, set().union(*(d.refs() for d in unique.values())))
    headers, now = inject(), datetime.now(UTC)
    rows = []
    for d in unique.values():
        zh, en = messages(d, names, tz)
        rows.append({
            "event_id": d.notification_id,
            "subject": subjects.notify(token(d.organization_id), d.kind),
            "payload": json.dumps(payload(d, zh, en), ensure_ascii=False),
            "headers": headers, "created_at": now, "kind": d.kind,
            "organization_id": d.organization_id, "occurred_at": utc(d.occurred_at),
            "subject_type": d.subject_type, "subject_id": d.subject_id})
    await take_turn(conn, notifications)
    await conn.execute(upsert(conn, notifications).on_conflict_do_nothing(
        index_elements=["event_id"]), rows)
