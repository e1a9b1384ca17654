"""The registry as organisers and other services meet it (services as processes, both
database back-ends): the whole who-and-where, its changes reaching the other services."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import nats
import pytest

from tests.factories import activity

pytestmark = pytest.mark.asyncio(loop_scope="session")


def uid() -> str:
    return uuid.uuid4().hex[:8]


async def call(system, method: str, path: str, **kw) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.request(method, f"{system.url('registry')}{path}", **kw)


async def eventually(check, timeout: float = 20):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.1)


async def regions(system, s: str) -> dict[str, str]:
    """淄博市 > 高青县 > 高城镇 > 孟家村, and 淄川区 beside 高青县; returns name -> code."""
    tree = [("淄博市", "city", None), ("高青县", "district", "淄博市"),
            ("淄川区", "district", "淄博市"), ("高城镇", "town", "高青县"),
            ("孟家村", "community", "高城镇")]
    codes = {}
    for name, level, parent in tree:
        codes[name] = f"{s}-{len(codes)}"
        r = await call(system, "POST", "/v1/regions", json={
            "code": codes[name], "name": name, "level": level,
            "parent_code": codes.get(parent)})
        assert r.status_code == 201, r.text
    return codes


async def test_reports_roll_up_along_the_region_hierarchy(system):
    s = uid()
    codes = await regions(system, s)
    org = await system.register("organizations", name=f"民盟淄博市委-{s}", kind="democratic_party",
                                region_code=codes["淄博市"])
    village = await system.register("bases", name=f"孟家村-{s}", kind="village",
                                    region_code=codes["孟家村"], households=320)
    district = await system.register("bases", name=f"淄川区实验学校-{s}", kind="school",
                                     region_code=codes["淄川区"])
    seq = 0
    for base, served in ((village, 100), (village, 50), (district, 7)):
        r = await system.post_activity(activity(org["id"], base["id"], served=served))
        assert r.status_code == 202, r.text
        seq = r.json()["seq"]
    city = await system.summary(group_by="region", region=codes["淄博市"],
                                region_level="district", min_seq=seq)
    assert {r["label"]: r["served"] for r in city["rows"]} == {"高青县": 150, "淄川区": 7}
    town = await system.summary(group_by="region", region=codes["高青县"], region_level="town")
    assert {r["label"]: r["served"] for r in town["rows"]} == {"高城镇": 150}
    assert (await system.summary(region=codes["高城镇"]))["totals"]["served"] == 150
    direct = await system.summary(group_by="region", organization_id=org["id"])
    assert {r["label"]: r["activities"] for r in direct["rows"]} == {"孟家村": 2, "淄川区": 1}


async def test_teams_volunteers_and_personal_data_that_never_leaves(system):
    s = uid()
    org = await system.register("organizations", name=f"淄博市委统战部-{s}",
                                kind="party_organization", code=f"tzb-{s}")
    team = await system.register("teams", name="“同心”法律援助服务团队", category="legal_aid",
                                 organization_code=f"tzb-{s}")
    assert team["organization_id"] == org["id"]
    phone, id_number = "13805331234", "37030219800101123X"
    volunteer = await system.register(
        "volunteers", name="王律师", organization_id=org["id"], team_ids=[team["id"]],
        skills=["法律咨询"], party_status="registered_member", phone=phone, id_number=id_number)
    assert "phone" not in volunteer and "id_number" not in volunteer
    members = (await call(system, "GET", "/v1/volunteers",
                          params={"team_id": team["id"]})).json()
    assert [m["id"] for m in members["items"]] == [volunteer["id"]]
    contact = (await call(system, "GET", f"/v1/volunteers/{volunteer['id']}/contact")).json()
    assert contact["phone"] == phone

    bad = await call(system, "POST", "/v1/teams", json={"name": "x", "category": "no_such"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"organization_id", "category"}

    # An activity for the team is accepted (the events replica knows it) ...
    base = await system.register("bases", name=f"刘春村-{s}", kind="village")
    r = await system.post_activity(activity(org["id"], base["id"], team_id=team["id"]))
    assert r.status_code == 202, r.text
    by_team = await system.summary(group_by="team", organization_id=org["id"],
                                   min_seq=r.json()["seq"])
    assert by_team["rows"][0]["label"] == "“同心”法律援助服务团队"
    other = await system.register("organizations", name=f"另一单位-{s}", kind="enterprise")
    wrong = await system.post_activity(activity(other["id"], base["id"], team_id=team["id"]))
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "data.team_id"

    # ... and the volunteer's phone and ID number are nowhere outside the registry.
    nc = await nats.connect(system.nats_url)
    try:
        sub = await nc.jetstream().subscribe(system.names.registry(">"),
                                             stream=system.names.registry_stream,
                                             ordered_consumer=True)
        payloads = []
        while True:
            try:
                payloads.append((await sub.next_msg(timeout=1)).data)
            except nats.errors.TimeoutError:
                break
    finally:
        await nc.close()
    assert any(volunteer["id"].encode() in p for p in payloads)
    everything = b"".join(payloads) + system.trace_file.read_bytes() + b"".join(
        p.read_bytes() for p in (system.workdir / "logs").glob("*.log"))
    assert phone.encode() not in everything and id_number.encode() not in everything


async def test_pairing_lists_can_be_claimed_by_the_paired_unit_only(system):
    s = uid()
    org = await system.register("organizations", name=f"池州市直机关工委-{s}",
                                kind="party_organization", code=f"cz-{s}")
    other = await system.register("organizations", name=f"另一单位-{s}", kind="enterprise")
    base = await system.register("bases", name=f"杏花村社区-{s}", kind="community",
                                 code=f"xhc-{s}")
    pairing = await system.register(
        "pairings", organization_code=f"cz-{s}", base_code=f"xhc-{s}", starts_on="2023-03-01",
        ends_on="2024-02-29", needs=[{"title": "老年人上门理发"}, {"title": "就业岗位"}],
        resources=[{"title": "机关食堂场地"}],
        projects=[{"title": "周末便民服务大集市", "target": "每月一次，不少于5项服务",
                   "starts_on": "2023-04-01"}])
    assert pairing["name"] == f"池州市直机关工委-{s} ↔ 杏花村社区-{s}"
    assert [n["id"] for n in pairing["needs"]] == ["n1", "n2"]
    refused = await call(system, "POST", f"/v1/pairings/{pairing['id']}/claim",
                         json={"list": "needs", "item_id": "n1", "organization_id": other["id"]})
    assert refused.status_code == 422
    claimed = await call(system, "POST", f"/v1/pairings/{pairing['id']}/claim",
                         json={"list": "projects", "item_id": "p1", "organization_id": org["id"]})
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["projects"][0] == {**pairing["projects"][0], "status": "claimed",
                                             "claimed_by": org["id"]}
    backwards = await call(system, "POST", "/v1/pairings", json={
        "organization_id": org["id"], "base_id": base["id"], "starts_on": "2024-01-01",
        "ends_on": "2023-01-01"})
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "ends_on"


async def test_changes_and_deactivation_reach_the_other_services(system):
    org, base = await system.org_and_base()
    r = await system.post_activity(activity(org["id"], base["id"], served=3))
    renamed = await call(system, "PATCH", f"/v1/organizations/{org['id']}",
                         json={"name": "淄博市委统战部（新）"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "淄博市委统战部（新）"

    async def relabelled():
        rows = (await system.summary(organization_id=org["id"], min_seq=r.json()["seq"]))["rows"]
        return rows and rows[0]["label"] == "淄博市委统战部（新）"

    await eventually(relabelled)

    off = await call(system, "POST", f"/v1/bases/{base['id']}/deactivate")
    assert off.status_code == 200 and off.json()["active"] is False
    assert (await call(system, "GET", f"/v1/bases/{base['id']}")).json()["active"] is False
    refused = await system.post_activity(activity(org["id"], base["id"]))
    assert refused.status_code == 422
    assert refused.json()["errors"] == [{"field": "data.base_id",
                                         "message": f"base {base['id']!r} is deactivated"}]
    # what was counted before stays counted
    assert (await system.summary(organization_id=org["id"]))["totals"]["served"] == 3


async def test_references_change_by_code_and_a_region_keeps_its_code(system):
    s = uid()
    one = await system.register("organizations", name=f"单位一-{s}", kind="enterprise",
                                code=f"o1-{s}")
    two = await system.register("organizations", name=f"单位二-{s}", kind="enterprise",
                                code=f"o2-{s}")
    team = await system.register("teams", name="团队", category="volunteer",
                                 organization_code=f"o1-{s}")
    moved = await call(system, "PATCH", f"/v1/teams/{team['id']}",
                       json={"organization_code": f"o2-{s}"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["organization_id"] == two["id"] != one["id"]
    region = await system.register("regions", code=f"c-{s}", name="淄博市", level="city")
    renamed = await call(system, "PATCH", f"/v1/regions/{region['id']}", json={"name": "淄博"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "淄博"
    recoded = await call(system, "PATCH", f"/v1/regions/{region['id']}",
                         json={"code": f"x-{s}"})
    assert recoded.status_code == 422 and recoded.json()["errors"][0]["field"] == "code"


async def test_search_finds_simplified_and_traditional_alike(system):
    s = uid()
    await system.register("organizations", name=f"濟南市歷下區委-{s}", kind="party_organization")
    await system.register("bases", name=f"济南市历下区泉城路街道-{s}", kind="community")
    for q in ("济南", "濟南", "历下", "歷下"):
        orgs = (await call(system, "GET", "/v1/organizations", params={"q": f"{q}"})).json()
        bases = (await call(system, "GET", "/v1/bases", params={"q": q})).json()
        assert any(s in o["name"] for o in orgs["items"]), q
        assert any(s in b["name"] for b in bases["items"]), q


async def test_collections_page_and_filter(system):
    s = uid()
    for i in range(5):
        await system.register("organizations", name=f"分页单位{i}-{s}", kind="enterprise")
    page = (await call(system, "GET", "/v1/organizations",
                       params={"q": s, "limit": 2, "offset": 2})).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (5, 2, 2, 2)
    assert (await call(system, "GET", "/v1/organizations",
                       params={"kind": "no_such_kind", "q": s})).json()["total"] == 0
    coded = await system.register("organizations", name=f"有编码-{s}", kind="enterprise",
                                  code=f"c-{s}")
    by_code = (await call(system, "GET", "/v1/organizations", params={"code": f"c-{s}"})).json()
    assert [o["id"] for o in by_code["items"]] == [coded["id"]]
    too_many = await call(system, "GET", "/v1/organizations", params={"limit": 5000})
    assert too_many.status_code == 422


async def test_taxonomy_can_be_extended_and_events_accept_the_new_code(system):
    code = f"eye_care_{uid()}"
    r = await call(system, "POST", "/v1/taxonomy", json={
        "kind": "service_type", "code": code, "label_zh": "验光配镜", "label_en": "Eye care"})
    assert r.status_code == 201, r.text
    again = await call(system, "POST", "/v1/taxonomy", json={
        "kind": "service_type", "code": code, "label_zh": "验光配镜", "label_en": "Eye care"})
    assert again.status_code == 409
    listed = (await call(system, "GET", "/v1/taxonomy")).json()
    assert code in [t["code"] for t in listed["service_type"]]
    assert "legal_aid" in [t["code"] for t in listed["team_category"]]
    org, base = await system.org_and_base()
    accepted = await system.post_activity(activity(org["id"], base["id"], service_types=[code]))
    assert accepted.status_code == 202, accepted.text
    by_type = await system.summary(group_by="service_type", organization_id=org["id"],
                                   min_seq=accepted.json()["seq"])
    assert by_type["rows"][0]["label"] == "验光配镜"
    unknown = await system.post_activity(activity(org["id"], base["id"],
                                                  service_types=["free_clinic", "no_such"]))
    assert unknown.json()["errors"] == [{"field": "data.service_types[1]",
                                         "message": "unknown service type 'no_such'"}]
