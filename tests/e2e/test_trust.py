"""Identities and access control on the real processes (both database back-ends): who may call
what, and what each caller sees.

It proves that
- every endpoint but `/health` and `/metrics` (test_operator) wants a principal (401 with
  `WWW-Authenticate: Bearer`, also for an unknown or revoked key), and `/v1/whoami` names the
  caller on each service;
- API keys are issued, listed (never with their secret) and revoked by the admin only, and a
  revoked key stops working on every service within seconds;
- roles decide the writes (a reader writes nothing, a publisher only posts activities);
- a principal scoped to an organisation sees and acts on it and the units under it, inside every
  figure (summary, its CSV, the volunteer ledger, notifications) and every write (activities,
  needs claimed, attendance confirmed), never a sibling or a parent;
- contact details are read by an organiser in scope only, and every read is audited;
- events and registry records name the principal who made them;
- accounts log in through the browser (a session cookie that serves all three services);
- a key's rate limit answers 429 with `Retry-After` for writes only, and for that key only.

The system is shared across tests: every test makes its own organisations, keys and accounts."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

from tests.factories import activity, envelope, need
from tests.harness import System

pytestmark = pytest.mark.asyncio(loop_scope="session")

SERVICES = ("registry", "events", "reporting")


# -- helpers ------------------------------------------------------------------------------

def uid() -> str:
    return uuid.uuid4().hex[:8]


async def eventually(check, timeout: float = 20, what: str = "condition"):
    """`check()` until it returns something true, for at most `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, f"{what} never met in {timeout} s"
        await asyncio.sleep(0.2)
    return result


async def get(system: System, service: str, path: str, key: str | None = None,
              **params) -> httpx.Response:
    """GET as `key` (the admin key unless given)."""
    async with system.client(key) as http:
        return await http.get(f"{system.url(service)}{path}", params=params)


async def post(system: System, service: str, path: str, key: str | None = None,
               **kwargs) -> httpx.Response:
    """POST as `key` (the admin key unless given)."""
    async with system.client(key) as http:
        return await http.post(f"{system.url(service)}{path}", **kwargs)


async def anonymous(method: str, url: str, **kwargs) -> httpx.Response:
    """A request with no `Authorization` header and no cookie."""
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.request(method, url, **kwargs)


def names(field: str, name: str) -> bool:
    """Whether an error's `field` names `name` (`organization_id`, `data.organization_id`)."""
    return field == name or field.endswith(f".{name}")


def refused(r: httpx.Response, status: int, field: str | None = None) -> list[dict]:
    """The errors of a refusal after checking its status and the error body's shape, and,
    when `field` is given, that one of them names it."""
    assert r.status_code == status, f"expected {status}: {r.status_code} {r.text}"
    body = r.json()
    errors = body.get("errors") if isinstance(body, dict) else None
    assert errors and all({"field", "message"} <= set(e) for e in errors), r.text
    if field is not None:
        assert any(names(e["field"], field) for e in errors), f"not naming {field}: {r.text}"
    return errors


async def new_key(system: System, role: str, organization_id: str | None = None,
                  **fields) -> dict:
    """`POST /v1/keys` as the admin: the whole answer (`key` is the secret), once every
    service accepts the key."""
    r = await post(system, "registry", "/v1/keys", json={
        "role": role, "organization_id": organization_id, "name": f"{role}-{uid()}", **fields})
    assert r.status_code == 201, r.text
    body = r.json()
    await system.accepted_everywhere(body["key"])
    return body


async def whoami(system: System, service: str, key: str | None = None) -> dict:
    r = await get(system, service, "/v1/whoami", key)
    assert r.status_code == 200, f"{service}: {r.status_code} {r.text}"
    return r.json()


async def offer(system: System, key: str | None, event_type: str, data: dict) -> httpx.Response:
    """`POST /v1/events` with an envelope, as `key`."""
    return await post(system, "events", "/v1/events", key,
                      json=envelope(data, event_type=event_type))


async def accepted(r: httpx.Response) -> int:
    assert r.status_code == 202, f"{r.status_code} {r.text}"
    return r.json()["seq"]


def phone_number() -> str:
    return f"138{uuid.uuid4().int % 10**8:08d}"


@dataclass
class Programme:
    """A city office C with two units A and B under it, a base they serve, a volunteer each
    (with a phone) and an activity each: A served 10, B served 20."""

    city: dict
    a: dict
    b: dict
    base: dict
    volunteer_a: dict
    volunteer_b: dict
    phone_a: str
    activity_a: dict
    activity_b: dict
    seq: int  # `min_seq` for reads that must include all of the above


async def programme(system: System) -> Programme:
    s = uid()
    city = await system.register("organizations", name=f"淄博市委统战部-{s}",
                                 kind="party_organization")
    a = await system.register("organizations", name=f"淄博市卫生局-{s}",
                              kind="government_department", parent_id=city["id"])
    b = await system.register("organizations", name=f"淄博市司法局-{s}",
                              kind="government_department", parent_id=city["id"])
    base = await system.register("bases", name=f"高青县刘春村-{s}", kind="village",
                                 households=410)
    phone_a = phone_number()
    volunteer_a = await system.register("volunteers", name=f"王医生-{s}",
                                        organization_id=a["id"], party_status="serving_member",
                                        phone=phone_a)
    volunteer_b = await system.register("volunteers", name=f"李律师-{s}",
                                        organization_id=b["id"], party_status="serving_member",
                                        phone=phone_number())
    # Figures that no sum of the other unit's could be mistaken for.
    activity_a = activity(a["id"], base["id"], served=10, volunteers=3, volunteer_hours=6)
    activity_b = activity(b["id"], base["id"], served=20, volunteers=4, volunteer_hours=8)
    seqs = [await accepted(await system.post_activity(activity_a)),
            await accepted(await system.post_activity(activity_b))]
    for act, person in ((activity_a, volunteer_a), (activity_b, volunteer_b)):
        seqs.append(await accepted(await offer(system, None, "attendance.recorded", {
            "activity_id": act["activity_id"], "volunteer_id": person["id"], "hours": 2,
            "method": "sign_in"})))
    return Programme(city, a, b, base, volunteer_a, volunteer_b, phone_a, activity_a,
                     activity_b, max(seqs))


# -- 1. a principal everywhere ------------------------------------------------------------

# (service, method, path, request keywords): a sample of every service's endpoints.
GUARDED = [
    ("registry", "GET", "/v1/organizations", {}),
    ("registry", "GET", "/openapi.json", {}),
    ("events", "POST", "/v1/activities",
     {"json": activity("no-such-organisation", "no-such-base")}),
    ("events", "GET", "/v1/events/00000000-0000-4000-8000-000000000000", {}),
    ("reporting", "GET", "/v1/reports/summary", {}),
    ("reporting", "GET", "/v1/notifications", {"params": {"organization_id": "x"}}),
]
GUARDED_IDS = [f"{s} {m} {p}" for s, m, p, _ in GUARDED]


async def test_health_answers_without_a_principal(system):
    for service in SERVICES:
        r = await anonymous("GET", f"{system.url(service)}/health")
        assert r.status_code == 200, f"{service}: {r.status_code} {r.text}"


@pytest.mark.parametrize(("service", "method", "path", "kw"), GUARDED, ids=GUARDED_IDS)
async def test_no_authorization_is_401_asking_for_a_bearer(system, service, method, path, kw):
    r = await anonymous(method, f"{system.url(service)}{path}", **kw)
    refused(r, 401)
    challenge = r.headers.get("www-authenticate", "")
    assert challenge.lower().startswith("bearer"), f"WWW-Authenticate: {challenge!r}"


@pytest.mark.parametrize(("service", "method", "path", "kw"), GUARDED, ids=GUARDED_IDS)
async def test_an_unknown_key_is_401(system, service, method, path, kw):
    for wrong in (f"tx_{uuid.uuid4().hex}", system.token + "x", "x"):
        async with system.client(wrong) as http:
            r = await http.request(method, f"{system.url(service)}{path}", **kw)
        refused(r, 401)


# -- 2. whoami ----------------------------------------------------------------------------

async def test_whoami_names_the_caller_on_every_service(system):
    org, _ = await system.org_and_base()
    made = await new_key(system, "unit", org["id"])
    for service in SERVICES:
        me = await whoami(system, service, made["key"])
        assert {k: me.get(k) for k in ("kind", "id", "name", "role", "organization_id")} == {
            "kind": "key", "id": made["id"], "name": made["name"], "role": "unit",
            "organization_id": org["id"]}, (service, me)
        assert made["key"] not in str(me), (service, me)  # the id is not the secret
        admin = await whoami(system, service)
        assert (admin["kind"], admin["role"], admin["organization_id"]) == (
            "key", "admin", None), (service, admin)
        assert admin["id"] and admin["id"] != made["id"], (service, admin)


# -- 3. keys ------------------------------------------------------------------------------

async def test_a_key_is_shown_once_and_listed_without_its_secret(system):
    org, _ = await system.org_and_base()
    name = f"淄博小程序-{uid()}"
    r = await post(system, "registry", "/v1/keys",
                   json={"role": "unit", "organization_id": org["id"], "name": name})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["key"] and made["id"] and made["created_at"], made
    assert (made["name"], made["role"], made["organization_id"]) == (name, "unit", org["id"])

    listing = await get(system, "registry", "/v1/keys", limit=1000)
    assert listing.status_code == 200, listing.text
    assert made["key"] not in listing.text, "the secret is listed"
    body = listing.json()
    items = body["items"] if isinstance(body, dict) else body
    [mine] = [k for k in items if k["id"] == made["id"]]
    assert (mine["name"], mine["role"], mine["organization_id"]) == (name, "unit", org["id"])
    for item in items:
        assert "key" not in item, item
        assert not [f for f in item if "hash" in f.lower() or "secret" in f.lower()], item


async def test_a_revoked_key_is_refused_by_every_service(system):
    made = await new_key(system, "publisher")
    async with system.client() as http:
        gone = await http.delete(f"{system.url('registry')}/v1/keys/{made['id']}")
    assert gone.status_code in (200, 204), gone.text
    refused(await get(system, "registry", "/v1/whoami", made["key"]), 401)
    refused(await get(system, "registry", "/v1/organizations", made["key"]), 401)
    for service in ("events", "reporting"):  # they learn it over the bus
        async def revoked(service=service):
            r = await get(system, service, "/v1/whoami", made["key"])
            return r if r.status_code == 401 else None
        refused(await eventually(revoked, 20, f"{service} refusing the revoked key"), 401)
    r = await post(system, "events", "/v1/activities", made["key"],
                   json=activity("no-such-organisation", "no-such-base"))
    refused(r, 401)


async def test_only_the_admin_manages_keys(system):
    org, _ = await system.org_and_base()
    for role in ("organiser", "unit", "reader", "publisher"):
        made = await new_key(system, role, None if role == "publisher" else org["id"])
        r = await post(system, "registry", "/v1/keys", made["key"],
                       json={"role": "admin", "organization_id": None, "name": "escalation"})
        refused(r, 403)
        refused(await get(system, "registry", "/v1/keys", made["key"]), 403)


async def test_keys_for_unknown_roles_or_organisations_are_422(system):
    org, _ = await system.org_and_base()
    r = await post(system, "registry", "/v1/keys",
                   json={"role": "superuser", "organization_id": org["id"], "name": "x"})
    refused(r, 422, "role")
    r = await post(system, "registry", "/v1/keys",
                   json={"role": "unit", "organization_id": f"no-such-{uid()}", "name": "x"})
    refused(r, 422, "organization_id")
    # Only admin and publisher keys may be programme-wide.
    r = await post(system, "registry", "/v1/keys",
                   json={"role": "unit", "organization_id": None, "name": "x"})
    refused(r, 422, "organization_id")


# -- 4. roles on writes -------------------------------------------------------------------

async def test_a_reader_writes_nothing(system):
    org, base = await system.org_and_base()
    reader = (await new_key(system, "reader", org["id"]))["key"]
    r = await post(system, "registry", "/v1/organizations", reader,
                   json={"name": f"读者新建单位-{uid()}", "kind": "enterprise"})
    refused(r, 403)
    r = await post(system, "events", "/v1/activities", reader,
                   json=activity(org["id"], base["id"]))
    refused(r, 403)


async def test_a_publisher_posts_activities_and_nothing_else(system):
    org, base = await system.org_and_base()
    publisher = (await new_key(system, "publisher"))["key"]
    r = await post(system, "events", "/v1/activities", publisher,
                   json=activity(org["id"], base["id"]))
    assert r.status_code == 202, r.text
    refused(await get(system, "reporting", "/v1/reports/summary", publisher), 403)
    r = await post(system, "registry", "/v1/organizations", publisher,
                   json={"name": f"发布者新建单位-{uid()}", "kind": "enterprise"})
    refused(r, 403)


async def test_an_organiser_registers_only_within_its_subtree(system):
    """By HTTP and by spreadsheet: records of its own units, never another's."""
    p = await programme(system)
    elsewhere = await system.register("organizations", name=f"别处-{uid()}",
                                      kind="party_organization")
    organiser = (await new_key(system, "organiser", p.city["id"]))["key"]
    r = await post(system, "registry", "/v1/volunteers", organiser,
                   json={"name": "张志愿者", "organization_id": p.a["id"]})
    assert r.status_code == 201, r.text
    r = await post(system, "registry", "/v1/volunteers", organiser,
                   json={"name": "李志愿者", "organization_id": elsewhere["id"]})
    refused(r, 403, "organization_id")
    r = await post(system, "registry", "/v1/organizations", organiser,
                   json={"name": f"新单位-{uid()}", "kind": "enterprise",
                         "parent_id": elsewhere["id"]})
    refused(r, 403, "parent_id")
    s = uid()
    sheet = ("code,name,organization_id\n"
             f"w-{s},王志愿者,{p.a['id']}\n"
             f"z-{s},赵志愿者,{elsewhere['id']}\n").encode()
    async with system.client(organiser) as http:
        r = await http.post(f"{system.url('registry')}/v1/import/volunteers",
                            files={"file": ("volunteers.csv", sheet)})
    assert r.status_code == 422, r.text
    assert [(e["row"], e["column"]) for e in r.json()["errors"]] == [
        (3, "organization_id")], r.text  # nothing imported: all rows or none
    # Lists and reads: its subtree only.
    listed = await get(system, "registry", "/v1/organizations", organiser, limit=1000)
    ids = {o["id"] for o in listed.json()["items"]}
    assert {p.city["id"], p.a["id"], p.b["id"]} <= ids and elsewhere["id"] not in ids
    r = await get(system, "registry", f"/v1/organizations/{elsewhere['id']}", organiser)
    refused(r, 404)


# -- 5. scope inside every figure ---------------------------------------------------------

async def test_a_unit_sees_only_its_own_figures(system):
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    r = await get(system, "reporting", "/v1/reports/summary", unit_a,
                  group_by="organization", min_seq=p.seq)
    assert r.status_code == 200, r.text
    summary = r.json()
    assert [row["key"] for row in summary["rows"]] == [p.a["id"]], summary
    assert summary["rows"][0]["served"] == 10, summary
    assert summary["totals"]["served"] == 10, summary  # never B's 20, never 30
    assert summary["totals"]["activities"] == 1, summary
    # Naming itself is asking for what it may see anyway.
    r = await get(system, "reporting", "/v1/reports/summary", unit_a,
                  group_by="organization", organization_id=p.a["id"], min_seq=p.seq)
    assert r.status_code == 200, r.text
    assert r.json()["totals"]["served"] == 10, r.text


async def test_a_unit_cannot_ask_for_a_sibling_or_its_parent(system):
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    for other in (p.b, p.city):
        r = await get(system, "reporting", "/v1/reports/summary", unit_a,
                      group_by="organization", organization_id=other["id"], min_seq=p.seq)
        refused(r, 403, "organization_id")


async def test_a_units_csv_export_holds_only_its_figures(system):
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    r = await get(system, "reporting", "/v1/reports/summary", unit_a, group_by="organization",
                  format="csv", headers="en", min_seq=p.seq)
    assert r.status_code == 200, r.text
    text = r.content.decode("utf-8-sig")
    assert p.b["id"] not in text and p.b["name"] not in text, text
    rows = list(csv.DictReader(io.StringIO(text.split("\n", 1)[1])))  # after the title line
    assert p.a["name"] in {row["Name"] for row in rows}, text
    # A's row and the totals row: 10 served, never 20 or 30.
    assert {row["Served (person-times)"] for row in rows} == {"10"}, text


async def test_an_organiser_sees_every_unit_under_it(system):
    p = await programme(system)
    organiser = (await new_key(system, "organiser", p.city["id"]))["key"]
    r = await get(system, "reporting", "/v1/reports/summary", organiser,
                  group_by="organization", min_seq=p.seq)
    assert r.status_code == 200, r.text
    summary = r.json()
    served = {row["key"]: row["served"] for row in summary["rows"]}
    assert served == {p.a["id"]: 10, p.b["id"]: 20}, summary
    assert summary["totals"]["served"] == 30, summary
    # ... and may narrow it to one of them.
    r = await get(system, "reporting", "/v1/reports/summary", organiser,
                  group_by="organization", organization_id=p.b["id"], min_seq=p.seq)
    assert r.status_code == 200, r.text
    assert r.json()["totals"]["served"] == 20, r.text


async def test_a_units_volunteer_ledger_lists_only_its_volunteers(system):
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    r = await get(system, "reporting", "/v1/reports/volunteers", unit_a, min_seq=p.seq,
                  limit=1000)
    assert r.status_code == 200, r.text
    listed = {row["volunteer_id"] for row in r.json()["rows"]}
    assert p.volunteer_a["id"] in listed, r.text
    assert p.volunteer_b["id"] not in listed and p.volunteer_b["name"] not in r.text, r.text
    assert {row["organization_id"] for row in r.json()["rows"]} == {p.a["id"]}, r.text


# -- 6. notifications ---------------------------------------------------------------------

async def test_a_unit_reads_only_its_own_notifications(system):
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    r = await get(system, "reporting", "/v1/notifications", unit_a, organization_id=p.b["id"])
    refused(r, 403, "organization_id")
    r = await get(system, "reporting", "/v1/notifications", unit_a, organization_id=p.a["id"])
    assert r.status_code == 200, r.text


async def test_a_unit_cannot_follow_another_units_notification_stream(system):
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    url = f"{system.url('reporting')}/v1/notifications/stream"
    async with system.client(unit_a, timeout=10) as http:
        async with http.stream("GET", url, params={"organization_id": p.b["id"]}) as r:
            assert r.status_code == 403, r.status_code  # read only a refusal: a stream never ends
            await r.aread()
        refused(r, 403)
        async with http.stream("GET", url, params={"organization_id": p.a["id"]}) as r:
            assert r.status_code == 200, r.status_code  # its own: opened, then closed unread


# -- 7. writes checked --------------------------------------------------------------------

async def test_a_unit_logs_activities_only_for_itself(system):
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    r = await post(system, "events", "/v1/activities", unit_a,
                   json=activity(p.b["id"], p.base["id"]))
    refused(r, 403, "organization_id")
    r = await post(system, "events", "/v1/activities", unit_a,
                   json=activity(p.a["id"], p.base["id"]))
    assert r.status_code == 202, r.text


async def test_a_unit_claims_needs_only_for_itself(system):
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    # A unit claims the needs of the bases it is paired with: A is paired with the base.
    await system.register("pairings", organization_id=p.a["id"], base_id=p.base["id"],
                          starts_on="2013-01-01")
    wish = need(p.base["id"])
    await accepted(await offer(system, None, "need.submitted", wish))
    r = await offer(system, unit_a, "need.claimed",
                    {"need_id": wish["need_id"], "organization_id": p.b["id"]})
    refused(r, 403)
    r = await offer(system, unit_a, "need.claimed",
                    {"need_id": wish["need_id"], "organization_id": p.a["id"]})
    assert r.status_code == 202, r.text


async def test_only_an_organiser_confirms_attendance(system):
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    organiser = (await new_key(system, "organiser", p.city["id"]))["key"]
    pair = {"activity_id": p.activity_a["activity_id"], "volunteer_id": p.volunteer_a["id"]}
    # Self-reported hours: they wait for confirmation.
    await accepted(await offer(system, None, "attendance.recorded",
                               {**pair, "hours": 2.5, "method": "self"}))
    confirm = {**pair, "organization_id": p.a["id"]}
    refused(await offer(system, unit_a, "attendance.confirmed", confirm), 403)
    r = await offer(system, organiser, "attendance.confirmed", confirm)
    assert r.status_code == 202, r.text


# -- 8. personal data ---------------------------------------------------------------------

async def test_contact_details_only_for_an_organiser_in_scope(system):
    p = await programme(system)
    stranger, _ = await system.org_and_base()
    organiser = (await new_key(system, "organiser", p.city["id"]))["key"]
    path = f"/v1/volunteers/{p.volunteer_a['id']}/contact"
    r = await get(system, "registry", path, organiser)
    assert r.status_code == 200, r.text
    assert r.json()["phone"] == p.phone_a, r.text
    others = {"admin": system.token,
              "unit A": (await new_key(system, "unit", p.a["id"]))["key"],
              "unrelated organiser": (await new_key(system, "organiser", stranger["id"]))["key"]}
    for who, key in others.items():
        r = await get(system, "registry", path, key)
        assert r.status_code == 403, f"{who}: {r.status_code} {r.text}"
        assert p.phone_a not in r.text, f"{who}: {r.text}"
        refused(r, 403)


async def test_contact_reads_are_audited_for_the_admin_only(system):
    p = await programme(system)
    made = await new_key(system, "organiser", p.city["id"])
    volunteer_id = p.volunteer_a["id"]
    r = await get(system, "registry", f"/v1/volunteers/{volunteer_id}/contact", made["key"])
    assert r.status_code == 200, r.text
    refused(await get(system, "registry", "/v1/audit", made["key"], volunteer_id=volunteer_id),
            403)

    async def the_read():
        r = await get(system, "registry", "/v1/audit", volunteer_id=volunteer_id)
        assert r.status_code == 200, r.text
        body = r.json()
        assert "total" in body, body
        reads = [i for i in body["items"] if i["action"] == "contact.read"]
        return reads[0] if reads else None

    item = await eventually(the_read, 10, "the contact read in the audit log")
    assert item["volunteer_id"] == volunteer_id and item["at"], item
    principal = item["principal"]
    assert {k: principal.get(k) for k in ("kind", "id", "name", "role", "organization_id")} == {
        "kind": "key", "id": made["id"], "name": made["name"], "role": "organiser",
        "organization_id": p.city["id"]}, item


# -- 9. principals recorded ---------------------------------------------------------------

async def test_an_event_records_the_key_that_sent_it(system):
    org, base = await system.org_and_base()
    made = await new_key(system, "unit", org["id"])
    r = await post(system, "events", "/v1/activities", made["key"],
                   json=activity(org["id"], base["id"]))
    assert r.status_code == 202, r.text
    stored = await get(system, "events", f"/v1/events/{r.json()['event_id']}")
    assert stored.status_code == 200, stored.text
    principal = stored.json()["principal"]
    assert made["id"] in str(principal), stored.text
    assert made["key"] not in stored.text, "the secret is stored with the event"
    # Its unit reads it; another unit's key is told there is no such event.
    own = await get(system, "events", f"/v1/events/{r.json()['event_id']}", made["key"])
    assert own.status_code == 200, own.text
    other_org, _ = await system.org_and_base()
    other = (await new_key(system, "unit", other_org["id"]))["key"]
    refused(await get(system, "events", f"/v1/events/{r.json()['event_id']}", other), 404)


async def test_a_registry_record_names_who_changed_it(system):
    admin = await whoami(system, "registry")
    org = await system.register("organizations", name=f"淄博市民政局-{uid()}",
                                kind="government_department")
    r = await get(system, "registry", f"/v1/organizations/{org['id']}")
    assert r.status_code == 200, r.text
    changed_by = r.json()["changed_by"]
    assert (changed_by["kind"], changed_by["id"]) == ("key", admin["id"]), r.text
    assert system.token not in r.text, "the secret is kept with the record"


# -- 10. accounts and the browser ---------------------------------------------------------

async def new_account(system: System, role: str, organization_id: str | None,
                      password: str) -> dict:
    """`POST /v1/accounts` as the admin: the answer, with the username asked for."""
    username = f"user-{uid()}"
    r = await post(system, "registry", "/v1/accounts", json={
        "username": username, "password": password, "name": f"张主任-{uid()}", "role": role,
        "organization_id": organization_id})
    assert r.status_code == 201, r.text
    return {**r.json(), "username": username}


async def login(system: System, username: str, password: str, **form) -> httpx.Response:
    return await anonymous("POST", f"{system.url('registry')}/login",
                           data={"username": username, "password": password, **form})


def session_cookies(r: httpx.Response) -> list[str]:
    return [h for h in r.headers.get_list("set-cookie") if h.startswith("tongxin_session=")]


def with_session(value: str, **kwargs) -> httpx.AsyncClient:
    """A client sending the session cookie only (no Authorization), to any port."""
    return httpx.AsyncClient(timeout=30, headers={"Cookie": f"tongxin_session={value}"},
                             **kwargs)


async def logged_in(system: System, username: str, password: str) -> str:
    r = await login(system, username, password)
    assert r.status_code == 303, r.text
    value = r.cookies.get("tongxin_session")
    assert value, r.headers
    return value


async def session_whoami(system: System, service: str, session: str) -> dict:
    """`/v1/whoami` with the cookie, once the service knows the account (over the bus)."""
    async def ok():
        async with with_session(session) as http:
            r = await http.get(f"{system.url(service)}/v1/whoami")
        return r if r.status_code == 200 else None
    return (await eventually(ok, 20, f"{service} accepting the session")).json()


async def test_accounts_are_made_by_the_admin_without_echoing_passwords(system):
    org, _ = await system.org_and_base()
    password = f"同心-{uid()}-secret"
    r = await post(system, "registry", "/v1/accounts", json={
        "username": f"user-{uid()}", "password": password, "name": "张主任", "role": "unit",
        "organization_id": org["id"]})
    assert r.status_code == 201, r.text
    assert password not in r.text, r.text
    assert not [f for f in r.json() if "password" in f.lower() or "hash" in f.lower()], r.text
    r = await post(system, "registry", "/v1/accounts", json={
        "username": f"user-{uid()}", "password": "short7!", "name": "张主任", "role": "unit",
        "organization_id": org["id"]})
    refused(r, 422, "password")


async def test_the_login_page_is_a_form(system):
    r = await anonymous("GET", f"{system.url('registry')}/login")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html"), r.headers
    assert re.search(r"<form\b", r.text, re.I), r.text
    for field in ("username", "password"):
        assert re.search(rf"""name=["']?{field}\b""", r.text), f"no {field} field: {r.text}"


async def test_one_login_serves_every_service(system):
    org, _ = await system.org_and_base()
    password = f"pw-{uid()}"
    account = await new_account(system, "organiser", org["id"], password)

    r = await login(system, account["username"], password, next="/v1/whoami")
    assert r.status_code == 303, r.text
    assert urlsplit(r.headers["location"]).path == "/v1/whoami", r.headers
    [cookie] = session_cookies(r)
    assert "httponly" in cookie.lower(), cookie
    session = r.cookies["tongxin_session"]

    for service in SERVICES:
        me = await session_whoami(system, service, session)
        assert (me["kind"], me["role"], me["organization_id"]) == (
            "account", "organiser", org["id"]), (service, me)

    r = await login(system, account["username"], password)  # no `next`: home
    assert r.status_code == 303, r.text
    assert urlsplit(r.headers["location"]).path == "/", r.headers


async def test_a_wrong_password_is_401_without_a_cookie(system):
    org, _ = await system.org_and_base()
    account = await new_account(system, "unit", org["id"], f"pw-{uid()}")
    r = await login(system, account["username"], "not-the-password")
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("text/html"), r.headers
    assert not session_cookies(r), r.headers
    said = r.text.lower()
    assert any(w in said for w in ("incorrect", "wrong", "invalid", "错误", "不正确")), r.text


async def test_a_unit_account_sees_only_its_unit(system):
    p = await programme(system)
    password = f"pw-{uid()}"
    account = await new_account(system, "unit", p.a["id"], password)
    session = await logged_in(system, account["username"], password)
    await session_whoami(system, "reporting", session)
    async with with_session(session) as http:
        r = await http.get(f"{system.url('reporting')}/v1/reports/summary",
                           params={"group_by": "organization", "min_seq": p.seq})
        assert r.status_code == 200, r.text
        summary = r.json()
        assert [row["key"] for row in summary["rows"]] == [p.a["id"]], summary
        assert summary["totals"]["served"] == 10, summary
        r = await http.get(f"{system.url('reporting')}/v1/reports/summary",
                           params={"organization_id": p.b["id"], "min_seq": p.seq})
        refused(r, 403, "organization_id")


async def test_logout_clears_the_cookie(system):
    org, _ = await system.org_and_base()
    password = f"pw-{uid()}"
    account = await new_account(system, "reader", org["id"], password)
    session = await logged_in(system, account["username"], password)
    async with with_session(session) as http:
        r = await http.post(f"{system.url('registry')}/logout")
    assert r.status_code < 400, r.text
    [cookie] = session_cookies(r)
    lowered = cookie.lower()
    assert ("max-age=0" in lowered or "1970" in lowered
            or re.match(r'tongxin_session=(""|)(;|$)', cookie)), cookie


# -- 11. rate limits ----------------------------------------------------------------------

async def test_a_key_over_its_rate_limit_gets_429_for_writes_only(system):
    org, base = await system.org_and_base()
    limited = (await new_key(system, "unit", org["id"], rate_limit=5))["key"]
    other = (await new_key(system, "unit", org["id"]))["key"]
    answers = [await post(system, "events", "/v1/activities", limited,
                          json=activity(org["id"], base["id"])) for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [202] * 5, [a.text for a in answers]
    sixth = answers[5]
    refused(sixth, 429)
    retry_after = sixth.headers.get("retry-after", "")
    assert retry_after.isdigit() and int(retry_after) >= 1, f"Retry-After: {retry_after!r}"

    # Another key at the same time is not limited by it.
    r = await post(system, "events", "/v1/activities", other,
                   json=activity(org["id"], base["id"]))
    assert r.status_code == 202, r.text
    other_seq = r.json()["seq"]
    # Reads are not limited (more of them than the limit, still within the minute).
    for _ in range(8):
        r = await get(system, "events", "/v1/whoami", limited)
        assert r.status_code == 200, r.text
    r = await get(system, "reporting", "/v1/reports/summary", limited,
                  min_seq=max(answers[4].json()["seq"], other_seq))
    assert r.status_code == 200, r.text
    # The limited key's five and the other key's one; the refused sixth never counted.
    assert r.json()["totals"]["activities"] == 6, r.text
