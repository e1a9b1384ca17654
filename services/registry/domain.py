"""Registry records: what an organiser or outside system may send, and what the registry shows.

Plain pydantic models, no I/O. Each entity is described once by an `Entity`, which the store,
the HTTP routes and the published events all read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]

RegionLevel = Literal["city", "district", "town", "community"]
OrganizationKind = Literal["government_department", "party_organization", "democratic_party",
                           "enterprise", "social_organization", "public_institution",
                           "community_committee"]
BaseKind = Literal["community", "village", "enterprise", "school", "other"]


class Incoming(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RegionCreate(Incoming):
    code: Code
    name: Name
    level: RegionLevel
    parent_code: Code | None = None


class OrganizationCreate(Incoming):
    name: Name
    kind: OrganizationKind
    parent_id: Ref | None = None
    region_code: Code | None = None
    code: Code | None = None


class BaseCreate(Incoming):
    name: Name
    kind: BaseKind
    region_code: Code | None = None
    households: int | None = Field(None, ge=0, le=10_000_000)
    code: Code | None = None


class Record(BaseModel):
    """What the registry returns and publishes: the sent fields plus identity and state."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    active: bool = True
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Reference:
    field: str       # field in the incoming record
    entity: str      # entity it must name
    by: str = "id"   # "id" or "code"


@dataclass(frozen=True)
class Entity:
    name: str                       # organization
    collection: str                 # organizations
    create: type[Incoming]
    filters: tuple[str, ...]        # fields a collection GET may filter on
    references: tuple[Reference, ...] = ()
    id_is_code: bool = False        # regions are known by their code


ENTITIES: dict[str, Entity] = {e.collection: e for e in (
    Entity("region", "regions", RegionCreate, ("level", "parent_code"),
           (Reference("parent_code", "region", "code"),), id_is_code=True),
    Entity("organization", "organizations", OrganizationCreate,
           ("kind", "parent_id", "region_code"),
           (Reference("parent_id", "organization"), Reference("region_code", "region", "code"))),
    Entity("base", "bases", BaseCreate, ("kind", "region_code"),
           (Reference("region_code", "region", "code"),)),
)}

BY_NAME: dict[str, Entity] = {e.name: e for e in ENTITIES.values()}
