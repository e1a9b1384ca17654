"""Valid inputs to start from; tests change one thing at a time."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime


def activity(org_id: str, base_id: str, **changes) -> dict:
    data = {
        "activity_id": str(uuid.uuid4()),
        "organization_id": org_id,
        "base_id": base_id,
        "title": "“同心·医疗卫生” 义诊送药",
        "service_types": ["free_clinic", "donation"],
        "theme": "new_countryside",
        "started_at": "2013-10-20T09:00:00+08:00",
        "ended_at": "2013-10-20T12:00:00+08:00",
        "volunteers": 10,
        "volunteer_hours": 10,  # fits 10 turn-outs at an activity of 1 h or more
        "served": 120,
        "trainees": 0,
        "donations": [{"item": "药品", "quantity": 1, "unit": "批", "value_cny": 4000}],
        "summary": "为群众查体和义诊",
    }
    data.update(changes)
    return data


def envelope(data: dict, event_type: str = "activity.logged", **changes) -> dict:
    env = {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "zibo-miniprogram",
        "data": data,
    }
    env.update(changes)
    return env


def raw(env: dict) -> bytes:
    return json.dumps(env, ensure_ascii=False).encode()


def need(base_id: str, **changes) -> dict:
    """The `data` of a valid `need.submitted` (a hotline work order at a base)."""
    data = {
        "need_id": f"hotline-{uuid.uuid4().hex[:12]}",
        "base_id": base_id,
        "title": "老旧小区路灯维修",
        "category": "repair",
        "urgency": "normal",
        "channel": "hotline",
        "description": "三号楼前路灯不亮",
    }
    data.update(changes)
    return data


def schedule(org_id: str, base_id: str, **changes) -> dict:
    """The `data` of a valid `activity.scheduled` (a rota entry)."""
    data = {
        "activity_id": str(uuid.uuid4()),
        "organization_id": org_id,
        "base_id": base_id,
        "title": "周六义诊",
        "service_types": ["free_clinic"],
        "theme": "new_countryside",
        "planned_on": "2013-10-19",
    }
    data.update(changes)
    return data
