"""Registry use cases. Every change writes its records and their events (the outbox) in one
transaction; creating one record over HTTP and importing 5,000 from a spreadsheet run through
the same `_save` path, so they validate, resolve references and publish alike."""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.registry import identities, store
from services.registry.domain import (
    BY_NAME,
    TEAM_CATEGORIES,
    Entity,
    Reference,
    TaxonomyCreate,
    pairing_name,
)
from shared import outbox
from shared.auth import PRINCIPAL, Principal, forbidden, in_subtree
from shared.chinese import search_key
from shared.db import write_transaction
from shared.envelope import new_envelope
from shared.errors import Conflict, FieldError, Rejected, from_validation_error
from shared.subjects import Names
from shared.taxonomy import INDICATORS, SERVICE_TYPES

SOURCE = "registry"
SYSTEM_FIELDS = ("id", "active", "created_at", "updated_at")
# kind -> code -> (label_zh, label_en) or, for indicators, (label_zh, label_en, unit)
TAXONOMY_DEFAULTS: dict[str, Mapping[str, tuple[str, ...]]] = {
    "service_type": SERVICE_TYPES, "team_category": TEAM_CATEGORIES, "indicator": INDICATORS}


class NotFound(Exception):
    pass


@dataclass
class RowError:
    row: int | None
    column: str
    message: str
    # At odds with a stored record (a name taken), not wrong in itself: HTTP 409 when every
    # error is one of these.
    conflict: bool = False


class ImportRejected(Exception):
    def __init__(self, errors: list[RowError]):
        self.errors = errors
        super().__init__(f"{len(errors)} errors")

    @property
    def conflict(self) -> bool:
        """Every row is at odds with a stored record, none is wrong in itself: HTTP 409."""
        return bool(self.errors) and all(e.conflict for e in self.errors)


@dataclass
class Item:
    """One record to save: validated fields, where it came from, what it replaces."""

    fields: dict[str, Any]
    row: int | None = None
    existing: dict | None = None          # the stored record this item updates
    private: dict[str, Any] = field(default_factory=dict)
    # The fields the sender gave (a spreadsheet's columns); an update leaves the others as
    # they are. None: all of them (HTTP bodies are validated whole).
    provided: set[str] | None = None


@dataclass
class Saved:
    created: list[dict] = field(default_factory=list)
    updated: list[dict] = field(default_factory=list)
    unchanged: list[dict] = field(default_factory=list)

    @property
    def records(self) -> list[dict]:
        return self.created + self.updated + self.unchanged


class Registry:
    def __init__(self, engine: AsyncEngine, names: Names,
                 published: Callable[[float], Awaitable[bool]] | None = None):
        self.engine = engine
        self.names = names
        # Waits (bounded) for the outbox relay to put what was committed on the bus, so a
        # client that registers a base and then logs an activity there finds it known.
        self.published = published
        # One writer at a time, so outbox ids follow commit order and the relay publishes in it.
        self._write = asyncio.Lock()

    # -- use cases -----------------------------------------------------------------------
    async def register(self, entity: Entity, payload: dict[str, Any]) -> dict:
        item = self._validated(entity, payload)
        async with self._write, write_transaction(self.engine) as conn:
            if item.fields.get("code") and (await store.records_by(
                    conn, entity.name, "code", [item.fields["code"]])):
                raise Conflict([FieldError(
                    field="code", message=f"a {entity.name} with code "
                                          f"{item.fields['code']!r} is already registered")])
            saved = await self._save(conn, entity, [item], as_http=True)
        await self._published(2.0)
        return saved.created[0]

    async def update(self, entity: Entity, id_: str, patch: dict[str, Any]) -> dict:
        async with self._write, write_transaction(self.engine) as conn:
            current = await store.get_record(conn, entity.name, id_)
            if current is None:
                raise NotFound(f"no {entity.name} with id {id_!r}")
            if "code" in patch and patch["code"] != current.get("code") and patch["code"]:
                if await store.records_by(conn, entity.name, "code", [patch["code"]]):
                    raise Conflict([FieldError(field="code", message=f"code {patch['code']!r} "
                                                                     "is already in use")])
            if entity.id_is_code and patch.get("code", current["code"]) != current["code"]:
                raise Rejected([FieldError(field="code", message=(
                    f"a {entity.name}'s code is its identity and cannot change; register a new "
                    f"{entity.name} and deactivate this one"))])
            merged = {**self._input_fields(entity, current), **patch}
            for ref in entity.references:  # a reference changed by code replaces the stored id
                if ref.code_field in patch and ref.field not in patch:
                    merged.pop(ref.field, None)
            if (entity.name == "volunteer" and "organization_since" not in patch
                    and ("organization_code" in patch or patch.get(
                        "organization_id", current.get("organization_id"))
                         != current.get("organization_id"))):
                # A move (转移接续) without its day takes effect today, not on the day the
                # volunteer joined the old unit: the record's updated_at says when.
                merged.pop("organization_since", None)
            item = self._validated(entity, merged)
            item.existing = current
            saved = await self._save(conn, entity, [item], as_http=True)
        await self._published(2.0)
        return saved.records[0]

    async def set_active(self, entity: Entity, id_: str, active: bool) -> dict:
        async with self._write, write_transaction(self.engine) as conn:
            current = await store.get_record(conn, entity.name, id_)
            if current is None:
                raise NotFound(f"no {entity.name} with id {id_!r}")
            if current["active"] == active:
                return current
            record = {**current, "active": active, "updated_at": store.now().isoformat(),
                      "changed_by": changed_by()}
            await store.update_row(conn, entity, store.row_for(entity, record,
                                                               search_key(record["name"])))
            await self._publish(conn, entity, "reactivated" if active else "deactivated",
                                [record])
        await self._published(2.0)
        return record

    async def claim(self, pairing_id: str, list_name: str, item_id: str,
                    organization_id: str) -> dict:
        """The paired unit takes a project from its pairing's project list."""
        if list_name == "needs":
            # A need's life cycle has one owner, the events service; two places to claim it
            # would give two answers to "who has this need?".
            raise Rejected([FieldError(field="list", message=(
                "needs are not claimed here: claim a need with the need.claimed event on the "
                "events service (POST /v1/events)"))])
        entity = BY_NAME["pairing"]
        async with self._write, write_transaction(self.engine) as conn:
            current = await store.get_record(conn, "pairing", pairing_id)
            if current is None:
                raise NotFound(f"no pairing with id {pairing_id!r}")
            if organization_id != current["organization_id"]:
                raise Rejected([FieldError(field="organization_id", message=(
                    "only the paired unit can claim from this pairing's lists"))])
            if not current["active"] or current.get("status") != "active":
                raise Rejected([FieldError(field="pairing", message="the pairing is not active")])
            items = [dict(i) for i in current[list_name]]
            found = next((i for i in items if i["id"] == item_id), None)
            if found is None:
                raise NotFound(f"no item {item_id!r} in this pairing's {list_name}")
            if found.get("claimed_by") and found["claimed_by"] != organization_id:
                raise Rejected([FieldError(field="item_id", message="already claimed")])
            if found.get("status") not in ("planned", "claimed"):
                raise Rejected([FieldError(field="item_id",
                                           message=f"cannot claim an item that is "
                                                   f"{found.get('status')}")])
            found.update(status="claimed", claimed_by=organization_id)
            record = {**current, list_name: items, "updated_at": store.now().isoformat(),
                      "changed_by": changed_by()}
            await store.update_row(conn, entity, store.row_for(entity, record,
                                                               search_key(record["name"])))
            await self._publish(conn, entity, "updated", [record])
        await self._published(2.0)
        return record

    async def import_rows(self, entity: Entity, rows: list[tuple[int, dict, str | None]],
                          dry_run: bool = False, provided: set[str] | None = None) -> Saved:
        """All or nothing. A row updates the record its `id` names (a re-imported export) or
        the one with its `code`, else creates one; so a corrected file can be sent again.
        `dry_run` checks everything (references too) and saves nothing."""
        items, ids, errors = [], [], []
        for row_no, values, id_ in rows:
            try:
                items.append(self._validated(entity, values, row=row_no))
                items[-1].provided = provided
                ids.append(id_)
            except Rejected as exc:
                errors += [RowError(row_no, e.field, e.message) for e in exc.errors]
        errors += [RowError(i.row, "code", "required for import (or the id of an exported "
                                           "record): a re-upload then updates the same record")
                   for i, id_ in zip(items, ids, strict=True)
                   if not i.fields.get("code") and not id_]
        order = _parents_first(entity, items)  # whatever the file's order
        items, ids = [items[k] for k in order], [ids[k] for k in order]
        async with self._write, write_transaction(self.engine) as conn:
            codes = [i.fields["code"] for i in items if i.fields.get("code")]
            by_code = await store.records_by(conn, entity.name, "code", codes)
            by_id = await store.records_by(conn, entity.name, "id", [i for i in ids if i])
            for item, id_ in zip(items, ids, strict=True):
                if id_ and id_ not in by_id:
                    errors.append(RowError(item.row, "id", f"no {entity.name} with id {id_!r}"))
                item.existing = (by_id.get(id_) if id_ else
                                 by_code.get(item.fields["code"]) if item.fields.get("code")
                                 else None)
            try:
                saved = await self._save(conn, entity, items, as_http=False)
            except ImportRejected as exc:
                errors += exc.errors
            if errors:  # everything found in the file, by row
                raise ImportRejected(sorted(errors, key=lambda e: (e.row or 0, e.column)))
            if dry_run:
                await conn.rollback()
                return saved
        await self._published(30.0)
        return saved

    async def add_taxonomy(self, payload: dict) -> dict:
        try:
            entry = TaxonomyCreate.model_validate(payload)
        except ValidationError as exc:
            raise Rejected(from_validation_error(exc)) from None
        async with self._write, write_transaction(self.engine) as conn:
            known = await store.taxonomy_codes(conn, entry.kind)
            if entry.code in known or entry.code in TAXONOMY_DEFAULTS[entry.kind]:
                raise Conflict([FieldError(field="code", message=f"{entry.kind} "
                                           f"{entry.code!r} already exists")])
            when = store.now()
            await conn.execute(store.taxonomy.insert().values(**entry.model_dump(),
                                                              created_at=when))
            record = {"id": entry.code, "code": entry.code, "name": entry.label_zh,
                      **entry.model_dump(exclude_none=True), "active": True,
                      "changed_by": changed_by()}
            await outbox.add(conn, store.outbox, self.names.registry(entry.kind, "added"),
                             new_envelope(f"{entry.kind}.added", record, SOURCE, when))
        await self._published(2.0)
        return record

    async def taxonomy(self) -> dict[str, list[dict]]:
        async with self.engine.connect() as conn:
            out = {}
            for kind, defaults in TAXONOMY_DEFAULTS.items():
                added = await store.taxonomy_codes(conn, kind)
                out[kind] = [_taxonomy_entry(kind, c, *labels, builtin=True)
                             for c, labels in defaults.items()] + [
                    _taxonomy_entry(kind, c, r["label_zh"], r["label_en"], r["unit"],
                                    builtin=False) for c, r in added.items()]
            return out

    async def _published(self, timeout: float) -> None:
        if self.published is not None:
            await self.published(timeout)

    # -- reads ---------------------------------------------------------------------------
    async def get(self, entity: Entity, id_: str) -> dict | None:
        async with self.engine.connect() as conn:
            return await store.get_record(conn, entity.name, id_)

    async def contact(self, volunteer_id: str, who: Principal) -> dict | None:
        """A volunteer's phone and ID number, for an organiser whose organisation is the
        volunteer's or one above it (403 otherwise); the read or refusal is audited."""
        async with write_transaction(self.engine) as conn:  # the audit row
            volunteer = await store.get_record(conn, "volunteer", volunteer_id)
            if volunteer is None:
                return None
            org = volunteer.get("organization_id")

            async def parent_of(id_: str) -> str | None:
                found = await store.get_record(conn, "organization", id_)
                return found.get("parent_id") if found else None

            allowed = (who.role == "organiser" and who.organization_id is not None
                       and org is not None
                       and await in_subtree(org, who.organization_id, parent_of))
            await identities.audit(conn, "contact.read" if allowed else "contact.refused",
                                   who, volunteer_id)
            if not allowed:
                refusal = forbidden(
                    "contact details are only for an organiser of the volunteer's own "
                    "organisation", "id")
            else:
                private = await store.private_for(conn, volunteer_id) or {}
                return {"volunteer_id": volunteer_id, "phone": private.get("phone"),
                        "id_number": private.get("id_number")}
        raise refusal  # after the commit: the refusal stays in the audit log

    async def list(self, entity: Entity, *, filters: dict[str, str], q: str | None,
                   active: bool | None, limit: int, offset: int,
                   linked: dict[str, str] | None = None,
                   scope: str | None = None) -> tuple[list[dict], int]:
        """`scope`: the caller's organisation; its subtree's records only (bases, regions
        and campaigns are everyone's)."""
        async with self.engine.connect() as conn:
            within = store.subtree_ids(scope) if scope else None
            return await store.list_records(conn, entity, filters=filters,
                                            search=search_key(q) if q else None,
                                            active=active, limit=limit, offset=offset,
                                            linked=linked, within=within)

    async def visible(self, entity: Entity, record: dict, scope: str | None) -> bool:
        """Whether a caller scoped to `scope` may see `record`."""
        column = store.scoping_column(entity)
        if scope is None or column is None:
            return True
        async with self.engine.connect() as conn:
            return record.get(column) in await store.subtree(conn, scope)

    async def export(self, entity: Entity) -> builtins.list[dict]:
        async with self.engine.connect() as conn:
            return await store.all_records(conn, entity)

    # -- the one write path --------------------------------------------------------------
    def _validated(self, entity: Entity, payload: dict, row: int | None = None) -> Item:
        try:
            incoming = entity.create.model_validate(payload)
        except ValidationError as exc:
            raise Rejected(from_validation_error(exc)) from None
        fields = incoming.model_dump(mode="json")
        private = {k: fields.pop(k) for k in entity.private if k in fields}
        return Item(fields=fields, row=row, private={k: v for k, v in private.items() if v})

    @staticmethod
    def _input_fields(entity: Entity, record: dict) -> dict:
        allowed = set(entity.create.model_fields) - set(entity.private)
        return {k: v for k, v in record.items() if k in allowed}

    async def _save(self, conn: AsyncConnection, entity: Entity, items: builtins.list[Item],
                    as_http: bool) -> Saved:
        resolver = await Resolver.load(conn, entity, items)
        privates = (await store.private_for_many(conn, [i.existing["id"] for i in items
                                                       if i.existing and i.private])
                    if entity.private else {})
        errors: list[RowError] = []
        saved = Saved()
        reach = await self._reach(conn, entity)
        names = _Names(entity, await store.named(conn, entity, [
            i.fields["name"] for i in items if i.fields.get("name")])
            if entity.unique_name_within else {})
        inserts, updates, private = [], [], []
        links: dict[str, dict[str, list[str]]] = {r.field: {} for r in entity.lists}
        when = store.now().isoformat()
        for item in items:
            fields, errs = resolver.resolve(item.fields)
            if errs:
                errors += [RowError(item.row, f, m) for f, m in errs]
                continue
            # (An organisation in reach may be changed, wherever its parent is.)
            if (reach is not None and (owner := fields.get(reach[0])) not in reach[1]
                    and not (item.existing and item.existing["id"] in reach[1]
                             and entity.name == "organization")):
                errors.append(RowError(item.row, reach[0], (
                    f"{owner!r} is outside organisation {reach[2]!r} and the units under it, "
                    "which this key or login registers for")))
                continue
            if entity.name == "pairing":
                fields["name"] = pairing_name(fields, resolver.name("organization",
                                                                    fields["organization_id"]),
                                              resolver.name("base", fields["base_id"]))
                _number_items(fields)
            old = item.existing
            if old is None:
                id_ = fields["code"] if entity.id_is_code else str(uuid.uuid4())
                record = {"id": id_, **fields, "active": True, "created_at": when,
                          "updated_at": when, "changed_by": changed_by()}
                if clash := names.take(record, item.row):
                    errors.append(clash)
                    continue
                inserts.append(store.row_for(entity, record, search_key(record["name"])))
                saved.created.append(record)
                resolver.learn(entity.name, record)
            else:
                record = {**old, **_given(entity, fields, item.provided)}
                if clash := names.take(record, item.row, old):
                    errors.append(clash)
                    continue
                private_changed = any(privates.get(old["id"], {}).get(k) != v
                                      for k, v in item.private.items())
                if record == old and not private_changed:
                    saved.unchanged.append(old)
                    continue
                record.update(updated_at=when, changed_by=changed_by())
                updates.append(store.row_for(entity, record, search_key(record["name"])))
                saved.updated.append(record)
            for ref in entity.lists:
                links[ref.field][record["id"]] = record.get(ref.field, [])
            if entity.name == "volunteer" and item.private:
                private.append({"volunteer_id": record["id"], **item.private})
        if errors:
            if as_http:
                refused = [FieldError(field=e.column, message=e.message) for e in errors]
                raise (Conflict if all(e.conflict for e in errors) else Rejected)(refused)
            raise ImportRejected(errors)
        await store.insert_rows(conn, entity, inserts)
        for row in updates:
            await store.update_row(conn, entity, row)
        for ref in entity.lists:
            await store.set_links(conn, entity, ref, links[ref.field])
        await store.set_private(conn, private)
        await self._publish(conn, entity, "registered", saved.created)
        await self._publish(conn, entity, "updated", saved.updated)
        return saved

    @staticmethod
    async def _reach(conn: AsyncConnection, entity: Entity) -> tuple[str, set[str], str] | None:
        """(the field naming a record's organisation, the organisations the request's
        principal may register for, its own) when it is bound to one; else None. Every
        save, by HTTP or spreadsheet, keeps to it."""
        who = PRINCIPAL.get()
        column = "parent_id" if entity.name == "organization" else store.scoping_column(entity)
        if who is None or who.scope is None or column is None:
            return None
        return column, await store.subtree(conn, who.scope), who.scope

    async def _publish(self, conn: AsyncConnection, entity: Entity, verb: str,
                       records: builtins.list[dict]) -> None:
        subject = self.names.registry(entity.name, verb)
        await outbox.add_many(conn, store.outbox, [
            (subject, new_envelope(f"{entity.name}.{verb}", r, SOURCE)) for r in records])


class _Names:
    """Which names a batch may give, for an entity whose names are unique within a field (an
    organisation's under its parent): a new record, or one renamed or moved, only a name no
    other record has there, in the database or earlier in the batch. A record that keeps its
    name where it is passes, even beside a namesake registered before names were unique."""

    def __init__(self, entity: Entity,
                 stored: dict[tuple[str | None, str], list[tuple[str, bool]]]):
        self.entity = entity
        self.stored = stored
        self.taken: dict[tuple[str | None, str], tuple[str, int | None]] = {}  # in this batch

    def take(self, record: dict, row: int | None, old: dict | None = None) -> RowError | None:
        """None if `record` (replacing `old`) may have its name where it is (it is now taken),
        else why not."""
        field = self.entity.unique_name_within
        if field is None:
            return None
        key = (record.get(field), record["name"])
        if old is not None and (old.get(field), old["name"]) == key:
            return None  # neither renamed nor moved
        where = "under the same parent" if key[0] else "at the top level"
        if key in self.taken and self.taken[key][0] != record["id"]:
            other = self.taken[key][1]
            return RowError(row, "name", f"{record['name']!r} is also the name of "
                            f"{f'row {other}' if other else 'another record'} {where}")
        for id_, active in self.stored.get(key, []):
            if id_ != record["id"]:
                return RowError(row, "name", (
                    f"an {self.entity.name} named {record['name']!r} is already registered "
                    f"{where}: {id_}{'' if active else ' (deactivated)'}; use that one, or "
                    "give this one another name"), conflict=True)
        self.taken[key] = (record["id"], row)
        return None


def changed_by() -> dict:
    """Who makes the change being saved (the request's principal); every registry record
    and event carries it. Without a request (an operator's command): the registry itself."""
    who = PRINCIPAL.get()
    if who is None:
        return {"kind": "system", "id": SOURCE, "name": SOURCE, "role": "admin",
                "organization_id": None}
    return who.as_json()


def _parents_first(entity: Entity, items: list[Item]) -> list[int]:
    """Indexes of `items` ordered so that a row naming a parent in the same file (a region's
    parent_code, an organisation's parent_code) comes after that parent's row."""
    own = [r for r in entity.references if r.entity == entity.name and not r.many]
    if not own:
        return list(range(len(items)))
    by_code = {i.fields.get("code"): k for k, i in enumerate(items) if i.fields.get("code")}
    order, placed = [], set()

    def place(k: int, path: set[int]) -> None:
        if k in placed or k in path:  # a cycle is left for the reference check to report
            return
        for ref in own:
            parent = by_code.get(items[k].fields.get(ref.code_field or ref.field))
            if parent is not None:
                place(parent, path | {k})
        placed.add(k)
        order.append(k)

    for k in range(len(items)):
        place(k, set())
    return order


def _given(entity: Entity, fields: dict, provided: set[str] | None) -> dict:
    """Of a resolved record's fields, those its sender gave: a reference given by code counts
    as its id field, and a pairing's name follows its unit and base."""
    if provided is None:
        return fields
    given = set(provided) | {"name"}
    given |= {r.field for r in entity.references if r.code_field in provided}
    return {k: v for k, v in fields.items() if k in given}


def _taxonomy_entry(kind: str, code: str, label_zh: str, label_en: str,
                    unit: str | None = None, *, builtin: bool) -> dict:
    entry: dict[str, str | None] = {"code": code, "label_zh": label_zh, "label_en": label_en}
    if kind == "indicator":
        entry["unit"] = unit
    return {**entry, "builtin": builtin}


def _number_items(fields: dict) -> None:
    """Give list items stable ids, so a need or project can be claimed by id."""
    for list_name, prefix in (("needs", "n"), ("resources", "r"), ("projects", "p")):
        used = {i["id"] for i in fields.get(list_name, []) if i.get("id")}
        n = 0
        for item in fields.get(list_name, []):
            while not item.get("id"):
                n += 1
                if f"{prefix}{n}" not in used:
                    item["id"] = f"{prefix}{n}"
                    used.add(item["id"])


class Resolver:
    """Checks and resolves one batch's references with a few bulk queries: ids must exist and
    be active; codes (`parent_code`, `organization_code`, ...) become ids."""

    def __init__(self, entity: Entity):
        self.entity = entity
        self.by_id: dict[str, dict[str, tuple[bool, str]]] = {}    # entity -> id -> (active, name)
        self.by_code: dict[str, dict[str, tuple[str, bool, str]]] = {}  # entity -> code -> ...

    @classmethod
    async def load(cls, conn: AsyncConnection, entity: Entity, items: list[Item]) -> Resolver:
        self = cls(entity)
        for ref in entity.references:
            ids = {v for i in items for v in _values(i.fields.get(ref.field))}
            codes = {v for i in items
                     for v in _values(i.fields.get(ref.code_field) if ref.code_field else None)}
            if ref.entity in TAXONOMY_DEFAULTS:
                known = set(TAXONOMY_DEFAULTS[ref.entity]) | set(
                    await store.taxonomy_codes(conn, ref.entity))
                self.by_id[ref.entity] = {c: (True, c) for c in known}
                continue
            table = store.TABLES[ref.entity]
            by_id = self.by_id.setdefault(ref.entity, {})
            by_code = self.by_code.setdefault(ref.entity, {})
            for chunk in _chunks(list(ids)):
                for r in await conn.execute(table.select().with_only_columns(
                        table.c.id, table.c.active, table.c.name).where(table.c.id.in_(chunk))):
                    by_id[r.id] = (r.active, r.name)
            for chunk in _chunks(list(codes)):
                for r in await conn.execute(table.select().with_only_columns(
                        table.c.code, table.c.id, table.c.active, table.c.name)
                        .where(table.c.code.in_(chunk))):
                    by_code[r.code] = (r.id, r.active, r.name)
                    by_id[r.id] = (r.active, r.name)
        return self

    def learn(self, entity_name: str, record: dict) -> None:
        """A record created earlier in the same batch may be referred to by later rows."""
        if entity_name in self.by_id or entity_name in self.by_code:
            self.by_id.setdefault(entity_name, {})[record["id"]] = (True, record["name"])
            if record.get("code"):
                self.by_code.setdefault(entity_name, {})[record["code"]] = (
                    record["id"], True, record["name"])

    def name(self, entity_name: str, id_: str) -> str:
        return self.by_id.get(entity_name, {}).get(id_, (True, id_))[1]

    def resolve(self, fields: dict) -> tuple[dict, list[tuple[str, str]]]:
        fields = dict(fields)
        errors: list[tuple[str, str]] = []
        for ref in self.entity.references:
            errors += self._resolve_one(ref, fields)
        return fields, errors

    def _resolve_one(self, ref: Reference, fields: dict) -> list[tuple[str, str]]:
        errors: list[tuple[str, str]] = []
        ids = list(_values(fields.get(ref.field)))
        codes = list(_values(fields.pop(ref.code_field, None))) if ref.code_field else []
        for code in codes:
            assert ref.code_field is not None  # codes are only read from a code field
            hit = self.by_code.get(ref.entity, {}).get(code)
            if hit is None:
                errors.append((ref.code_field, f"no {ref.entity} with code {code!r}"))
            elif not hit[1]:
                errors.append((ref.code_field, f"{ref.entity} {code!r} is deactivated"))
            elif hit[0] not in ids:
                if not ref.many and ids:
                    errors.append((ref.code_field, f"names a different {ref.entity} than "
                                                   f"{ref.field}"))
                ids.append(hit[0])
        for id_ in _values(fields.get(ref.field)):
            known = self.by_id.get(ref.entity, {}).get(id_)
            if known is None:
                what = "code" if ref.entity == "region" or ref.entity in TAXONOMY_DEFAULTS else "id"
                errors.append((ref.field, f"no {ref.entity.replace('_', ' ')} with {what} {id_!r}"))
            elif not known[0]:
                errors.append((ref.field, f"{ref.entity} {id_!r} is deactivated"))
        if ref.required and not ids:
            errors.append((ref.field, f"required: give {ref.field}"
                                      + (f" or {ref.code_field}" if ref.code_field else "")))
        if ref.many:
            fields[ref.field] = list(dict.fromkeys(ids))
        elif ids:
            fields[ref.field] = ids[0]
        return errors


def _values(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _chunks(values: list, size: int = 500):
    for i in range(0, len(values), size):
        yield values[i:i + size]
