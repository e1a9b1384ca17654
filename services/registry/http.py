"""Registry HTTP routes: one set per entity, generated from `ENTITIES`, plus the taxonomy,
claims on a pairing's lists, and spreadsheet import/export."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Body, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from services.registry import imports
from services.registry.domain import (
    BY_NAME,
    ENTITIES,
    PAGES,
    RECORDS,
    Contact,
    Entity,
    Imported,
    Taxonomy,
    TaxonomyAdded,
    TaxonomyCreate,
)
from services.registry.service import ImportRejected, NotFound, Registry
from services.registry.store import scoping_column as store_scoping
from shared.auth import allow, forbidden, principal
from shared.http import CONFLICT, Limit, Offset, body_of
from shared.responses import spreadsheets

if TYPE_CHECKING:
    CollectionName = str  # built at runtime below, so to mypy just a str
else:
    CollectionName = Literal[tuple(ENTITIES)]  # regions, organizations, ... (import/export path)


def _registry(request: Request) -> Registry:
    return request.app.state.registry


async def _may_write(request: Request, entity: Entity, payload: Any,
                     partial: bool = False) -> None:
    """A caller bound to an organisation registers and changes records of its own subtree
    only: the organisation a record belongs to (an organisation's parent) must be in it,
    named by id. Bases, regions, campaigns: anyone who may write."""
    scope = principal(request).scope
    column = "parent_id" if entity.name == "organization" else store_scoping(entity)
    if scope is None or column is None or not isinstance(payload, dict):
        return
    if partial and column not in payload:
        return
    org = payload.get(column)
    if not isinstance(org, str) or not await _registry(request).visible(
            BY_NAME["organization"], {"id": org}, scope):
        raise forbidden(f"{principal(request).label} registers for organisation {scope!r} and "
                        f"the units under it: name one of them by id in {column}", column)


def _routes(router: APIRouter, entity: Entity) -> None:
    path = f"/v1/{entity.collection}"
    tags: list[str | Any] = [entity.collection]

    async def create(request: Request, payload: dict[str, Any] = Body(...)) -> dict:
        await _may_write(request, entity, payload)
        return await _registry(request).register(entity, payload)

    async def get_one(request: Request, id: str) -> dict:
        record = await _registry(request).get(entity, id)
        # Beyond the caller's reach reads as not there: no hint of what others hold.
        if record is None or not await _registry(request).visible(
                entity, record, principal(request).scope):
            raise HTTPException(404, f"no {entity.name} with id {id!r}")
        return record

    async def patch(request: Request, id: str, changes: dict[str, Any] = Body(...)) -> dict:
        await get_one(request, id)  # 404 beyond the caller's reach
        await _may_write(request, entity, changes, partial=True)
        try:
            return await _registry(request).update(entity, id, changes)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    async def deactivate(request: Request, id: str) -> dict:
        await get_one(request, id)
        try:
            return await _registry(request).set_active(entity, id, False)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    async def reactivate(request: Request, id: str) -> dict:
        await get_one(request, id)
        try:
            return await _registry(request).set_active(entity, id, True)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    async def list_all(request: Request, limit: Limit = 100, offset: Offset = 0,
                       q: Annotated[str | None, Query(
                           description="name contains; simplified and traditional alike")] = None,
                       active: bool | None = None) -> dict:
        filters = {f: v for f in ("code", *entity.filters)
                   if (v := request.query_params.get(f))}
        linked = {r.field: v for r in entity.lists if (v := request.query_params.get(r.filter))}
        items, total = await _registry(request).list(
            entity, filters=filters, q=q, active=active, limit=limit, offset=offset,
            linked=linked, scope=principal(request).scope)
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    body = body_of(entity.create)
    # What each answers: the record, or a page of them (fields a stored record lacks are
    # left out, not filled in).
    one: dict[str, Any] = {"response_model": RECORDS[entity.name],
                           "response_model_exclude_unset": True}
    page: dict[str, Any] = {"response_model": PAGES[entity.name],
                            "response_model_exclude_unset": True}
    router.add_api_route(path, create, methods=["POST"], status_code=201, tags=tags,
                         summary=f"Register a {entity.name}", openapi_extra=body,
                         responses=CONFLICT, **one)
    filters = ", ".join(("code", *entity.filters, *(r.filter for r in entity.lists)))
    router.add_api_route(path, list_all, methods=["GET"], summary=f"List {entity.collection}",
                         tags=tags, description=f"Filter by: {filters}. `q` searches names.",
                         **page)
    router.add_api_route(f"{path}/{{id}}", get_one, methods=["GET"], tags=tags,
                         summary=f"Get one {entity.name}", **one)
    router.add_api_route(f"{path}/{{id}}", patch, methods=["PATCH"], tags=tags,
                         summary=f"Change a {entity.name} (send only what changes)",
                         responses=CONFLICT, **one)
    router.add_api_route(f"{path}/{{id}}/deactivate", deactivate, methods=["POST"], tags=tags,
                         summary=f"Deactivate a {entity.name} (records are never deleted)",
                         **one)
    router.add_api_route(f"{path}/{{id}}/reactivate", reactivate, methods=["POST"], tags=tags,
                         summary=f"Reactivate a {entity.name}", **one)


class Claim(BaseModel):
    # "needs" is accepted only to be answered: needs are claimed by `need.claimed` events.
    list: Literal["needs", "projects"]
    item_id: str
    organization_id: str


def router() -> APIRouter:
    r = APIRouter()
    for entity in ENTITIES.values():
        _routes(r, entity)

    @r.get("/v1/volunteers/{id}/contact", tags=["volunteers"], dependencies=[allow("organiser")],
           summary="A volunteer's contact details (kept only in the registry)",
           response_model=Contact)
    async def contact(request: Request, id: str) -> dict:
        """Only for an organiser of the volunteer's organisation (or one above it); every
        read and every refusal is in the audit log (`GET /v1/audit`)."""
        found = await _registry(request).contact(id, principal(request))
        if found is None:
            raise HTTPException(404, f"no volunteer with id {id!r}")
        return found

    @r.post("/v1/pairings/{id}/claim", tags=["pairings"],
            dependencies=[allow("admin", "organiser", "unit")],
            summary="The paired unit claims a project from the pairing's project list "
                    "(needs are claimed by the need.claimed event, on the events service)",
            response_model=RECORDS["pairing"], response_model_exclude_unset=True)
    async def claim(request: Request, id: str, body: Claim) -> dict:
        await _may_write(request, BY_NAME["pairing"], body.model_dump())
        try:
            return await _registry(request).claim(id, body.list, body.item_id,
                                                  body.organization_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @r.get("/v1/taxonomy", tags=["taxonomy"],
           summary="Service types, team categories and indicators (with their units)",
           response_model=Taxonomy, response_model_exclude_unset=True)
    async def taxonomy(request: Request) -> dict:
        return await _registry(request).taxonomy()

    @r.post("/v1/taxonomy", tags=["taxonomy"], status_code=201, responses=CONFLICT,
            summary="Add a service type, team category or indicator (Chinese and English "
                    "labels; an indicator also its unit)",
            response_model=TaxonomyAdded, response_model_exclude_unset=True)
    async def add_taxonomy(request: Request, entry: TaxonomyCreate) -> dict:
        return await _registry(request).add_taxonomy(entry.model_dump())

    @r.post("/v1/import/{collection}", tags=["spreadsheets"],
            summary="Import a CSV or XLSX register: all rows or none, idempotent on `code`",
            response_model=Imported,
            responses={422: {"description": '{"errors": [{"row", "column", "message"}]}'},
                       409: {"description": '{"errors": [{"row", "column", "message"}]}: '
                                            "rows at odds with stored records only (a "
                                            "name already registered under the same "
                                            "parent)"}})
    async def import_(request: Request,
                      collection: CollectionName,
                      file: UploadFile = File(..., description="CSV or XLSX, one row a record; "
                                                               "Chinese headers welcome")):
        content = await file.read()
        try:
            result = await imports.import_file(_registry(request), collection, content,
                                               file.filename)
        except ImportRejected as exc:
            return JSONResponse({"errors": imports.errors_json(exc.errors)},
                                status_code=409 if exc.conflict else 422)
        return result.as_json()

    @r.get("/v1/export/{collection}", tags=["spreadsheets"],
           summary="Export a register in the shape import takes back",
           response_class=Response, responses=spreadsheets("the register as CSV or XLSX "
                                                           "(`format`)"))
    async def export(request: Request,
                     collection: CollectionName,
                     format: Literal["csv", "xlsx"] = "csv",
                     headers: Literal["zh", "en"] = "zh") -> Response:
        content = await imports.export_file(_registry(request), collection, format, headers)
        media = ("text/csv; charset=utf-8" if format == "csv" else
                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        return Response(content, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{collection}.{format}"'})

    return r
