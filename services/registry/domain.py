"""Registry records: what an organiser or outside system may send, and what the registry shows.

Plain pydantic models, no I/O. Each entity is described once by an `Entity`, which the store,
the HTTP routes, spreadsheet import/export and the published events all read.
References may be given by id (`parent_id`) or, as spreadsheets do, by external code
(`parent_code`); the registry resolves codes to ids before storing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.responses import Answer, DateTimeText, Page
from shared.text import refuse_nul

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 -]{5,20}$")]
IdNumber = Annotated[str, StringConstraints(strip_whitespace=True,
                                            pattern=r"^([0-9]{17}[0-9Xx]|[0-9]{15})$")]
TaxonomyCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Unit = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]

RegionLevel = Literal["city", "district", "town", "community"]
OrganizationKind = Literal["government_department", "party_organization", "democratic_party",
                           "enterprise", "social_organization", "public_institution",
                           "community_committee"]
BaseKind = Literal["community", "village", "enterprise", "school", "other"]
PartyStatus = Literal["serving_member", "registered_member", "activist", "non_member"]
PairingStatus = Literal["active", "suspended", "ended"]
ItemStatus = Literal["open", "claimed", "resolved", "closed"]
ProjectStatus = Literal["planned", "claimed", "in_progress", "done", "cancelled"]
TaxonomyKind = Literal["service_type", "team_category", "indicator"]

LEVEL_ORDER: dict[str, int] = {"city": 0, "district": 1, "town": 2, "community": 3}


class Incoming(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    _no_nul = field_validator("*", mode="before")(refuse_nul)


class RegionCreate(Incoming):
    code: Code
    name: Name
    level: RegionLevel
    parent_code: Code | None = None


class OrganizationCreate(Incoming):
    name: Name
    kind: OrganizationKind
    parent_id: Ref | None = None
    parent_code: Code | None = Field(None, description="the parent's code, instead of parent_id")
    region_code: Code | None = None
    code: Code | None = None


class BaseCreate(Incoming):
    name: Name
    kind: BaseKind
    region_code: Code | None = None
    households: int | None = Field(None, ge=0, le=10_000_000)
    code: Code | None = None
    # Where the base is (WGS-84): a phone signing in to an activity there must be near it.
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)


class TeamCreate(Incoming):
    name: Name
    category: TaxonomyCode
    organization_id: Ref | None = None
    organization_code: Code | None = None
    description: Text | None = None
    code: Code | None = None


class VolunteerCreate(Incoming):
    name: Name
    organization_id: Ref | None = None
    organization_code: Code | None = None
    team_ids: list[Ref] = Field(default_factory=list, max_length=50)
    team_codes: list[Code] = Field(default_factory=list, max_length=50)
    skills: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                  max_length=50)]] = Field(default_factory=list,
                                                                           max_length=50)
    party_status: PartyStatus = "non_member"
    home_base_id: Ref | None = None
    home_base_code: Code | None = None
    # Personal data: stored in the registry only, never published, reported, logged or traced.
    phone: Phone | None = None
    id_number: IdNumber | None = None
    code: Code | None = None


def _not_before_start(ends_on: date | None, info: ValidationInfo) -> date | None:
    starts_on = info.data.get("starts_on")
    if ends_on and starts_on and ends_on < starts_on:
        raise ValueError("must not be before starts_on")
    return ends_on


class Need(Incoming):
    """One need written into a pairing when it is signed (需求清单): plain text. What becomes
    of a need (submitted, claimed, resolved) is told by `need.*` events to the events service,
    which is the one owner of that life cycle."""

    id: Code | None = None
    title: Name
    description: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_legacy_state(cls, value: Any) -> Any:
        # Needs used to carry their own state here; records stored then (and clients still
        # sending it) must keep validating, so an old pairing can be PATCHed.
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k not in ("status", "claimed_by")}
        return value


class ListItem(Incoming):
    """One entry in a pairing's resources list (资源清单)."""

    id: Code | None = None
    title: Name
    description: Text | None = None
    status: ItemStatus = "open"
    claimed_by: Ref | None = None


class Project(Incoming):
    """A planned service project under a pairing (项目清单)."""

    id: Code | None = None
    title: Name
    target: Text | None = Field(None, description="what the project aims to deliver")
    starts_on: date | None = None
    ends_on: date | None = None
    status: ProjectStatus = "planned"
    claimed_by: Ref | None = None


class PairingCreate(Incoming):
    organization_id: Ref | None = None
    organization_code: Code | None = None
    base_id: Ref | None = None
    base_code: Code | None = None
    starts_on: date
    ends_on: date | None = None
    status: PairingStatus = "active"
    needs: list[Need] = Field(default_factory=list, max_length=500)
    resources: list[ListItem] = Field(default_factory=list, max_length=500)
    projects: list[Project] = Field(default_factory=list, max_length=500)
    code: Code | None = None

    _ends_after_start = field_validator("ends_on")(_not_before_start)


class CampaignCreate(Incoming):
    """A drive over many bases at once (敲门行动): its visits are `campaign.visit_recorded`
    events; the bases it covers are listed, or those of a region."""

    code: Code
    name: Name
    starts_on: date
    ends_on: date
    base_ids: list[Ref] = Field(default_factory=list, max_length=5000)
    base_codes: list[Code] = Field(default_factory=list, max_length=5000)
    region_code: Code | None = None
    description: Text | None = None

    _ends_after_start = field_validator("ends_on")(_not_before_start)


class TaxonomyCreate(Incoming):
    kind: TaxonomyKind
    code: TaxonomyCode
    label_zh: Name
    label_en: Name
    unit: Unit | None = Field(None, validate_default=True,
                              description="what an indicator counts in (个, 名, 户); "
                                          "required for kind indicator, and only for it")

    @field_validator("unit")
    @classmethod
    def _unit_for_indicators(cls, unit: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if kind == "indicator" and not unit:
            raise PydanticCustomError("unit_required",
                                      "an indicator needs a unit (个, 名, 户, ...)")
        if kind not in (None, "indicator") and unit:
            raise PydanticCustomError("extra_unit", "only an indicator has a unit")
        return unit


@dataclass(frozen=True)
class Reference:
    field: str               # field holding an id (or a code, for regions)
    entity: str              # entity it must name
    code_field: str | None = None  # alternative field holding the entity's external code
    many: bool = False       # a list of references
    required: bool = False

    @property
    def filter(self) -> str:
        """The query parameter that finds records naming one id in a list reference
        (`GET /v1/volunteers?team_id=`)."""
        return f"{self.entity}_id"


@dataclass(frozen=True)
class Entity:
    name: str                       # organization
    collection: str                 # organizations
    create: type[Incoming]
    filters: tuple[str, ...]        # fields a collection GET may filter on (real columns)
    references: tuple[Reference, ...] = ()
    id_is_code: bool = False        # regions are known by their code
    private: tuple[str, ...] = ()   # stored apart, never in records, events or exports
    name_field: str = "name"
    # A name is one record's under the same value of this field (an organisation's name under
    # its parent: two 淄博市委统战部 at the top would be one unit counted twice). None: any.
    unique_name_within: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def lists(self) -> tuple[Reference, ...]:
        """References to many records (a volunteer's teams, a campaign's bases)."""
        return tuple(r for r in self.references if r.many)


ENTITIES: dict[str, Entity] = {e.collection: e for e in (
    Entity("region", "regions", RegionCreate, ("level", "parent_code"),
           (Reference("parent_code", "region"),), id_is_code=True),
    Entity("organization", "organizations", OrganizationCreate,
           ("kind", "parent_id", "region_code"),
           (Reference("parent_id", "organization", "parent_code"),
            Reference("region_code", "region")), unique_name_within="parent_id"),
    Entity("base", "bases", BaseCreate, ("kind", "region_code"),
           (Reference("region_code", "region"),)),
    Entity("team", "teams", TeamCreate, ("category", "organization_id"),
           (Reference("organization_id", "organization", "organization_code", required=True),
            Reference("category", "team_category"))),
    Entity("volunteer", "volunteers", VolunteerCreate,
           ("organization_id", "party_status", "home_base_id"),
           (Reference("organization_id", "organization", "organization_code", required=True),
            Reference("team_ids", "team", "team_codes", many=True),
            Reference("home_base_id", "base", "home_base_code")),
           private=("phone", "id_number")),
    Entity("pairing", "pairings", PairingCreate, ("organization_id", "base_id", "status"),
           (Reference("organization_id", "organization", "organization_code", required=True),
            Reference("base_id", "base", "base_code", required=True)), name_field=""),
    Entity("campaign", "campaigns", CampaignCreate, ("region_code",),
           (Reference("base_ids", "base", "base_codes", many=True),
            Reference("region_code", "region"))),
)}

BY_NAME: dict[str, Entity] = {e.name: e for e in ENTITIES.values()}

# Team categories shipped with Tongxin: Zibo's six 'Tongxin' service teams (seed 000), and more.
TEAM_CATEGORIES: dict[str, tuple[str, str]] = {
    "legal_aid": ("法律援助", "Legal aid"),
    "tutoring": ("助学助教", "Tutoring and teaching"),
    "medical": ("医疗卫生", "Medical and health"),
    "sci_tech_culture": ("科技文化", "Science, technology and culture"),
    "agri_aid": ("非公助农", "Agricultural aid"),
    "expert": ("党外博士", "Experts (PhDs)"),
    "volunteer": ("志愿服务", "General volunteering"),
    "other": ("其他", "Other"),
}


def pairing_name(record: dict, org_name: str, base_name: str) -> str:
    """Pairings have no name of their own; people know them as 'unit ↔ base'."""
    return f"{org_name} ↔ {base_name}"


def mask_phone(phone: str | None) -> str | None:
    """138****1234: enough for an organiser to recognise a number, not to use it."""
    if not phone:
        return None
    digits = phone.replace(" ", "").replace("-", "")
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 8 else "****"


# -- what the registry shows ------------------------------------------------------------------
# A record is what was sent, resolved (references given by code become ids; the code fields
# themselves are not kept), without the private fields, plus the registry's own. Records stored
# by an older version may lack a field added since, or hold one dropped since: a field has its
# default (left out of the answer when absent) and any other field passes through.

class Changer(Answer):
    """Who made the change: a key, an account, or the registry itself (an operator's command)."""

    kind: str
    id: str
    name: str
    role: str
    organization_id: str | None


class NeedRecord(Answer):
    id: str
    title: str
    description: str | None = None


class ListItemRecord(Answer):
    id: str
    title: str
    description: str | None = None
    status: ItemStatus = "open"
    claimed_by: str | None = None


class ProjectRecord(Answer):
    id: str
    title: str
    target: str | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    status: ProjectStatus = "planned"
    claimed_by: str | None = None


# A pairing's lists, as records show them.
_SHOWN_AS: dict[Any, Any] = {list[Need]: list[NeedRecord], list[ListItem]: list[ListItemRecord],
                             list[Project]: list[ProjectRecord]}


def record_model(entity: Entity) -> type[Answer]:
    """The record of `entity` as the registry answers it (and publishes it)."""
    code_fields = {r.code_field for r in entity.references if r.code_field}
    fields: dict[str, Any] = {
        "id": (str, Field(description="the registry's id (a region's: its code)"))}
    for name, info in entity.create.model_fields.items():
        if name in entity.private or name in code_fields:
            continue
        default = (Field(default_factory=info.default_factory)  # type: ignore[arg-type]
                   if info.default_factory else Field(info.default) if not info.is_required()
                   else Field())
        default.description = info.description
        fields[name] = (_SHOWN_AS.get(info.annotation, info.annotation), default)
    if entity.name == "pairing":
        fields["name"] = (str, Field(description="unit ↔ base"))
    fields.update(
        active=(bool, Field(description="false once deactivated (nothing is deleted)")),
        created_at=(DateTimeText, ...), updated_at=(DateTimeText, ...),
        changed_by=(Changer | None, Field(None, description="who made the last change")))
    name = "".join(p.capitalize() for p in entity.name.split("_"))
    return create_model(f"{name}Record", __base__=Answer,
                        __doc__=f"A {entity.name} as the registry shows it.", **fields)


RECORDS: dict[str, type[Answer]] = {e.name: record_model(e) for e in ENTITIES.values()}
# A page of each collection (`GET /v1/<collection>`).
PAGES: dict[str, type[Answer]] = {
    name: create_model(f"{record.__name__.removesuffix('Record')}Page",
                       __base__=Page[record],  # type: ignore[valid-type]
                       __doc__=f"A page of {BY_NAME[name].collection}.")
    for name, record in RECORDS.items()}


class TaxonomyEntry(Answer):
    code: str
    label_zh: str
    label_en: str
    unit: str | None = Field(None, description="indicators only: what it counts in")
    builtin: bool = Field(description="shipped with Tongxin (not added by an organiser)")


class Taxonomy(Answer):
    """Every code of the taxonomy, by kind."""

    service_type: list[TaxonomyEntry]
    team_category: list[TaxonomyEntry]
    indicator: list[TaxonomyEntry]


class TaxonomyAdded(Answer):
    """The code added, as published (`<kind>.added`)."""

    id: str
    code: str
    name: str
    kind: TaxonomyKind
    label_zh: str
    label_en: str
    unit: str | None = None
    active: bool
    changed_by: Changer


class Contact(Answer):
    """A volunteer's contact details, kept by the registry alone."""

    volunteer_id: str
    phone: str | None
    id_number: str | None


class Imported(Answer):
    """An import done: rows read, and how many records they created, changed or left as
    they were."""

    imported: int
    created: int
    updated: int
    unchanged: int
