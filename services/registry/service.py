"""Registry use cases: each change writes the record and its event in one transaction."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registry import store
from services.registry.domain import Entity
from shared import outbox
from shared.chinese import search_key
from shared.envelope import new_envelope
from shared.errors import FieldError, Rejected, from_validation_error
from shared.subjects import Names

SOURCE = "registry"


class Conflict(Rejected):
    """The record collides with one already registered (same code)."""


class Registry:
    def __init__(self, engine: AsyncEngine, names: Names, on_commit=lambda: None):
        self.engine = engine
        self.names = names
        self.on_commit = on_commit  # wakes the outbox relay
        # One writer at a time, so outbox ids follow commit order and the relay publishes in it.
        self._write = asyncio.Lock()

    async def register(self, entity: Entity, payload: dict[str, Any]) -> dict:
        try:
            incoming = entity.create.model_validate(payload)
        except ValidationError as exc:
            raise Rejected(from_validation_error(exc)) from None
        fields = incoming.model_dump(mode="json")
        async with self._write, self.engine.begin() as conn:
            await self._check_references(conn, entity, fields)
            when = store.now()
            id_ = fields["code"] if entity.id_is_code else str(uuid.uuid4())
            record = {"id": id_, **fields, "active": True,
                      "created_at": when.isoformat(), "updated_at": when.isoformat()}
            try:
                async with conn.begin_nested():
                    await store.insert_record(conn, entity, {
                        "id": id_, "code": fields.get("code"), "name": fields["name"],
                        "search_key": search_key(fields["name"]), "active": True,
                        "created_at": when, "updated_at": when, "record": record,
                        **{f: fields.get(f) for f in entity.filters}})
            except IntegrityError:
                raise Conflict([FieldError(
                    field="code", message=f"a {entity.name} with code {fields.get('code')!r} "
                                          "is already registered")]) from None
            event_type = f"{entity.name}.registered"
            await outbox.add(conn, store.outbox, self.names.registry(entity.name, "registered"),
                             new_envelope(event_type, record, SOURCE, occurred_at=when))
        self.on_commit()
        return record

    async def _check_references(self, conn, entity: Entity, fields: dict) -> None:
        errors = []
        for ref in entity.references:
            value = fields.get(ref.field)
            if value is None:
                continue
            if not await store.existing(conn, ref.entity, ref.by, {value}):
                errors.append(FieldError(field=ref.field,
                                         message=f"no {ref.entity} with {ref.by} {value!r}"))
        if errors:
            raise Rejected(errors)

    async def get(self, entity: Entity, id_: str) -> dict | None:
        async with self.engine.connect() as conn:
            return await store.get_record(conn, entity.name, id_)

    async def list(self, entity: Entity, *, filters: dict[str, str], q: str | None,
                   active: bool | None, limit: int, offset: int) -> tuple[list[dict], int]:
        async with self.engine.connect() as conn:
            return await store.list_records(conn, entity, filters=filters,
                                            search=search_key(q) if q else None,
                                            active=active, limit=limit, offset=offset)
