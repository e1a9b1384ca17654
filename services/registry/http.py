"""Registry HTTP routes: one set per entity, generated from `ENTITIES`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query, Request

from services.registry.domain import ENTITIES, Entity
from services.registry.service import Registry
from shared.http import Limit, Offset


def _routes(router: APIRouter, entity: Entity) -> None:
    path = f"/v1/{entity.collection}"

    async def create(request: Request,
                     payload: dict[str, Any] = Body(..., description=entity.create.__doc__ or ""),
                     ) -> dict:
        registry: Registry = request.app.state.registry
        return await registry.register(entity, payload)

    async def get_one(request: Request, id: str) -> dict:
        record = await request.app.state.registry.get(entity, id)
        if record is None:
            raise HTTPException(404, f"no {entity.name} with id {id!r}")
        return record

    async def list_all(request: Request, limit: Limit = 100, offset: Offset = 0,
                       q: str | None = Query(None, description="name contains; 简/繁 alike"),
                       active: bool | None = None) -> dict:
        filters = {f: v for f in entity.filters if (v := request.query_params.get(f))}
        items, total = await request.app.state.registry.list(
            entity, filters=filters, q=q, active=active, limit=limit, offset=offset)
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    create.__annotations__["payload"] = entity.create  # documents and validates the body shape
    router.add_api_route(path, create, methods=["POST"], status_code=201,
                         summary=f"Register a {entity.name}", tags=[entity.collection])
    router.add_api_route(path, list_all, methods=["GET"], summary=f"List {entity.collection}",
                         tags=[entity.collection],
                         description=f"Filters: {', '.join(entity.filters)}.")
    router.add_api_route(f"{path}/{{id}}", get_one, methods=["GET"],
                         summary=f"Get one {entity.name}", tags=[entity.collection])


def router() -> APIRouter:
    r = APIRouter()
    for entity in ENTITIES.values():
        _routes(r, entity)
    return r
