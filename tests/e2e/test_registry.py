"""The registry as organisers and other services meet it (services as processes, both
database back-ends): the whole who-and-where, its changes reaching the other services."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import httpx
import nats
import openpyxl
import pytest

from tests.factories import activity

pytestmark = pytest.mark.asyncio(loop_scope="session")


def uid() -> str:
    return uuid.uuid4().hex[:8]


async def call(system, method: str, path: str, **kw) -> httpx.Response:
    async with system.client() as http:
        return await http.request(method, f"{system.url('registry')}{path}", **kw)


async def eventually(check, timeout: float = 20):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.1)


async def registry_events(system, entity: str) -> list[tuple[str, dict]]:
    """(subject, envelope) of every `tongxin.registry.<entity>.*` message so far."""
    nc = await nats.connect(system.nats_url)
    out = []
    try:
        sub = await nc.jetstream().subscribe(system.names.registry(entity, ">"),
                                             stream=system.names.registry_stream,
                                             ordered_consumer=True)
        while True:
            try:
                msg = await sub.next_msg(timeout=1)
            except nats.errors.TimeoutError:
                break
            out.append((msg.subject, json.loads(msg.data)))
    finally:
        await nc.close()
    return out


async def upload(system, collection: str, name: str, content: bytes) -> httpx.Response:
    async with system.client(timeout=60) as http:
        return await http.post(f"{system.url('registry')}/v1/import/{collection}",
                               files={"file": (name, content)})


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
    organiser = await system.issue_key("organiser", org["id"])
    async with system.client(organiser) as http:
        contact = (await http.get(
            f"{system.url('registry')}/v1/volunteers/{volunteer['id']}/contact")).json()
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


async def test_pairing_needs_are_plain_text_and_projects_are_claimed_by_its_unit(system):
    s = uid()
    org = await system.register("organizations", name=f"池州市直机关工委-{s}",
                                kind="party_organization", code=f"cz-{s}")
    other = await system.register("organizations", name=f"另一单位-{s}", kind="enterprise")
    base = await system.register("bases", name=f"杏花村社区-{s}", kind="community",
                                 code=f"xhc-{s}")
    pairing = await system.register(
        "pairings", organization_code=f"cz-{s}", base_code=f"xhc-{s}", starts_on="2023-03-01",
        ends_on="2024-02-29", needs=[
            {"title": "老年人上门理发"},
            # what a client written for the old registry still sends: state, dropped
            {"title": "就业岗位", "description": "家门口的岗位", "status": "claimed",
             "claimed_by": other["id"]}],
        resources=[{"title": "机关食堂场地"}],
        projects=[{"title": "周末便民服务大集市", "target": "每月一次，不少于5项服务",
                   "starts_on": "2023-04-01"}])
    assert pairing["name"] == f"池州市直机关工委-{s} ↔ 杏花村社区-{s}"
    assert pairing["needs"] == [
        {"id": "n1", "title": "老年人上门理发", "description": None},
        {"id": "n2", "title": "就业岗位", "description": "家门口的岗位"}]

    # A need's life cycle belongs to the events service; the registry says where to go.
    need = await call(system, "POST", f"/v1/pairings/{pairing['id']}/claim",
                      json={"list": "needs", "item_id": "n1", "organization_id": org["id"]})
    assert need.status_code == 422
    [error] = need.json()["errors"]
    assert error["field"] == "list" and "need.claimed" in error["message"]
    edited = await call(system, "PATCH", f"/v1/pairings/{pairing['id']}", json={"needs": [
        *pairing["needs"], {"title": "四点半课堂", "status": "open"}]})
    assert edited.status_code == 200, edited.text
    assert [n["id"] for n in edited.json()["needs"]] == ["n1", "n2", "n3"]
    assert all(set(n) == {"id", "title", "description"} for n in edited.json()["needs"])

    refused = await call(system, "POST", f"/v1/pairings/{pairing['id']}/claim",
                         json={"list": "projects", "item_id": "p1",
                               "organization_id": other["id"]})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "organization_id"
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
    [error] = unknown.json()["errors"]  # the wording is the events service's
    assert error["field"] == "data.service_types[1]" and "'no_such'" in error["message"]


async def test_campaigns_cover_bases_named_by_code(system):
    s = uid()
    codes = await regions(system, s)
    bases = [await system.register("bases", name=f"红豆江南府邸{i}号楼-{s}", kind="community",
                                   code=f"hd{i}-{s}", region_code=codes["高城镇"], households=120)
             for i in range(3)]
    campaign = await system.register(
        "campaigns", code=f"qm-{s}", name=f"敲门行动·入户筛排-{s}", starts_on="2021-08-01",
        ends_on="2021-08-03", base_codes=[f"hd0-{s}", f"hd1-{s}"], region_code=codes["高城镇"])
    assert uuid.UUID(campaign["id"]) and campaign["id"] != campaign["code"]
    assert campaign["base_ids"] == [bases[0]["id"], bases[1]["id"]]
    assert "base_codes" not in campaign and campaign["active"] is True
    assert (await call(system, "GET", f"/v1/campaigns/{campaign['id']}")).json() == campaign

    async def listed(**params) -> list[str]:
        r = await call(system, "GET", "/v1/campaigns", params=params)
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    assert await listed(q=s) == [campaign["id"]]
    assert campaign["id"] in await listed(q="敲門行動", limit=1000)
    assert await listed(base_id=bases[1]["id"]) == [campaign["id"]]
    assert await listed(base_id=bases[2]["id"]) == []
    assert await listed(region_code=codes["高城镇"], code=f"qm-{s}") == [campaign["id"]]

    # A base given by code replaces the list; the other services hear of every change.
    moved = await call(system, "PATCH", f"/v1/campaigns/{campaign['id']}",
                       json={"base_codes": [f"hd2-{s}"], "ends_on": "2021-08-10"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["base_ids"] == [bases[2]["id"]]
    assert await listed(base_id=bases[2]["id"]) == [campaign["id"]]
    assert await listed(base_id=bases[0]["id"]) == []
    off = await call(system, "POST", f"/v1/campaigns/{campaign['id']}/deactivate")
    assert off.status_code == 200 and off.json()["active"] is False

    async def published():
        found = [(subject, env) for subject, env in await registry_events(system, "campaign")
                 if env["data"]["id"] == campaign["id"]]
        return found if len(found) == 3 else None

    events = await eventually(published)
    assert [(subject, env["type"]) for subject, env in events] == [
        (system.names.registry("campaign", verb), f"campaign.{verb}")
        for verb in ("registered", "updated", "deactivated")]
    assert events[1][1]["data"]["base_ids"] == [bases[2]["id"]]

    backwards = await call(system, "POST", "/v1/campaigns", json={
        "code": f"x-{s}", "name": "敲门行动", "starts_on": "2021-08-03", "ends_on": "2021-08-01"})
    assert backwards.status_code == 422
    assert [e["field"] for e in backwards.json()["errors"]] == ["ends_on"]
    unknown = await call(system, "POST", "/v1/campaigns", json={
        "code": f"y-{s}", "name": "敲门行动", "starts_on": "2021-08-01", "ends_on": "2021-08-03",
        "base_codes": [f"hd0-{s}", f"nowhere-{s}"]})
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["base_codes"]
    assert f"nowhere-{s}" in unknown.json()["errors"][0]["message"]
    no_end = await call(system, "POST", "/v1/campaigns", json={
        "code": f"z-{s}", "name": "敲门行动", "starts_on": "2021-08-01"})
    assert [e["field"] for e in no_end.json()["errors"]] == ["ends_on"]
    twice = await call(system, "POST", "/v1/campaigns", json={
        "code": f"qm-{s}", "name": "敲门行动", "starts_on": "2021-08-01", "ends_on": "2021-08-03"})
    assert twice.status_code == 409


async def test_campaigns_by_spreadsheet_with_chinese_headers(system):
    s = uid()
    for i in range(3):
        await system.register("bases", name=f"西津渡社区{i}-{s}", kind="community",
                              code=f"xjd{i}-{s}")
    head = "行动编码,行动名称,开始日期,结束日期,基地编码,备注\n"
    bad = (head + f"a-{s},敲门行动（第一批）,2021/8/1,2021/8/3,xjd0-{s}、xjd1-{s},\n"
                  f"b-{s},敲门行动（第二批）,2021/8/5,2021/8/4,xjd2-{s},\n"
                  f"c-{s},敲门行动（第三批）,2021/8/5,2021/8/9,xjd2-{s}、nobody-{s},\n")
    r = await upload(system, "campaigns", "敲门行动.csv", bad.encode())
    assert r.status_code == 422, r.text
    assert [(e["row"], e["column"]) for e in r.json()["errors"]] == [(3, "结束日期"),
                                                                     (4, "基地编码")]
    assert (await call(system, "GET", "/v1/campaigns", params={"q": s})).json()["total"] == 0

    good = (head + f"a-{s},敲门行动（第一批）-{s},2021/8/1,2021/8/3,xjd0-{s}、xjd1-{s},\n"
                   f"b-{s},敲门行动（第二批）-{s},2021-08-05,2021-08-09,xjd2-{s},首批未覆盖\n")
    r = await upload(system, "campaigns", "敲门行动.csv", good.encode("gb18030"))
    assert r.status_code == 200, r.text
    assert r.json() == {"imported": 2, "created": 2, "updated": 0, "unchanged": 0}
    items = (await call(system, "GET", "/v1/campaigns", params={"q": s})).json()["items"]
    first = next(c for c in items if c["code"] == f"a-{s}")
    bases = (await call(system, "GET", "/v1/bases", params={"q": s})).json()["items"]
    ids = {b["code"]: b["id"] for b in bases}
    assert first["base_ids"] == [ids[f"xjd0-{s}"], ids[f"xjd1-{s}"]]
    assert (first["starts_on"], first["ends_on"]) == ("2021-08-01", "2021-08-03")

    csv_export = await call(system, "GET", "/v1/export/campaigns", params={"format": "csv"})
    header = csv_export.content.decode("utf-8-sig").splitlines()[0].split(",")
    assert header[:5] == ["id", "行动编码", "行动名称", "开始日期", "结束日期"]
    xlsx_export = await call(system, "GET", "/v1/export/campaigns",
                             params={"format": "xlsx", "headers": "en"})
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_export.content)).worksheets[0]
    assert [c.value for c in sheet[1]][:6] == ["id", "code", "name", "starts_on", "ends_on",
                                               "base_ids"]
    for name, content in (("campaigns.csv", csv_export.content),
                          ("campaigns.xlsx", xlsx_export.content)):
        back = await upload(system, "campaigns", name, content)
        assert back.status_code == 200, back.text
        assert (back.json()["created"], back.json()["updated"]) == (0, 0), back.json()


async def test_indicators_are_taxonomy_entries_with_a_unit(system):
    listed = (await call(system, "GET", "/v1/taxonomy")).json()
    indicators = {i["code"]: i for i in listed["indicator"]}
    assert indicators["libraries_built"] == {
        "code": "libraries_built", "label_zh": "农家书屋/村级图书室",
        "label_en": "Libraries built", "unit": "个", "builtin": True}
    assert {code: indicators[code]["unit"] for code in (
        "students_funded", "jobs_offered", "problems_solved", "households_visited",
        "glasses_fitted")} == {"students_funded": "名", "jobs_offered": "个",
                               "problems_solved": "个", "households_visited": "户",
                               "glasses_fitted": "副"}
    assert all("unit" not in t for t in listed["service_type"] + listed["team_category"])

    code = f"computers_donated_{uid()}"
    entry = {"kind": "indicator", "code": code, "label_zh": "捐赠电脑", "label_en": "Computers"}
    missing = await call(system, "POST", "/v1/taxonomy", json=entry)
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["unit"]
    added = await call(system, "POST", "/v1/taxonomy", json={**entry, "unit": "台"})
    assert added.status_code == 201, added.text
    assert added.json()["unit"] == "台"
    builtin = await call(system, "POST", "/v1/taxonomy", json={
        **entry, "code": "libraries_built", "unit": "个"})
    assert builtin.status_code == 409
    listed = (await call(system, "GET", "/v1/taxonomy")).json()
    assert {"code": code, "label_zh": "捐赠电脑", "label_en": "Computers", "unit": "台",
            "builtin": False} in listed["indicator"]

    async def announced():
        return [(subject, env) for subject, env in await registry_events(system, "indicator")
                if env["data"]["code"] == code]

    [(subject, published)] = await eventually(announced)
    assert subject == system.names.registry("indicator", "added")
    assert published["type"] == "indicator.added" and published["data"]["unit"] == "台"

    # other kinds take no unit
    plain = await call(system, "POST", "/v1/taxonomy", json={
        "kind": "service_type", "code": f"eye_{uid()}", "label_zh": "验光", "label_en": "Eyes"})
    assert plain.status_code == 201 and "unit" not in plain.json()
    with_unit = await call(system, "POST", "/v1/taxonomy", json={
        "kind": "team_category", "code": f"team_{uid()}", "label_zh": "团队",
        "label_en": "Team", "unit": "个"})
    assert with_unit.status_code == 422
    assert [e["field"] for e in with_unit.json()["errors"]] == ["unit"]


async def raw_request(system, service: str, request_line: bytes) -> tuple[int, dict, bytes]:
    """One request as curl sends `curl 'host/v1/organizations?q=刘春'`: the request line's
    UTF-8 as it is, not percent-encoded. (status, headers, body)."""
    host, port = system.url(service).removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request_line + b"\r\nHost: " + host.encode()
                     + f"\r\nAuthorization: Bearer {system.token}\r\n".encode()
                     + b"Connection: close\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 60)  # to the end: Connection: close
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
    return int(status_line.split()[1]), headers, body


async def test_a_raw_utf8_query_string_works(system):
    s = uid()
    org = await system.register("organizations", name=f"高青县刘春村党支部-{s}",
                                kind="party_organization")
    status, headers, body = await raw_request(
        system, "registry", f"GET /v1/organizations?q=刘春村党支部-{s} HTTP/1.1".encode())
    assert status == 200, body
    assert [o["id"] for o in json.loads(body)["items"]] == [org["id"]]
    # Raw UTF-8 in the path: the route's own answer, in the one error shape.
    status, headers, body = await raw_request(system, "registry",
                                              "GET /v1/organizations/刘春 HTTP/1.1".encode())
    assert (status, headers["content-type"]) == (404, "application/json"), body
    assert json.loads(body)["errors"], body
    # A request line still unreadable (a control character in it): 400, the one error shape.
    status, headers, body = await raw_request(system, "events",
                                              b"GET /v1/events?q=\x01 HTTP/1.1")
    assert (status, headers["content-type"]) == (400, "application/json"), body
    assert [e["field"] for e in json.loads(body)["errors"]] == ["request"]


async def test_a_name_already_under_the_same_parent_is_409_naming_it(system):
    """The README's example run twice (or after the demo) must not make two 淄博市委统战部:
    a name taken under the same parent is a 409 naming `name`, with the existing id."""
    s = uid()
    body = {"name": f"淄博市委统战部-{s}", "kind": "party_organization"}
    first = await call(system, "POST", "/v1/organizations", json=body)
    assert first.status_code == 201, first.text
    again = await call(system, "POST", "/v1/organizations", json=body)
    assert again.status_code == 409, again.text
    [error] = again.json()["errors"]
    assert error["field"] == "name" and first.json()["id"] in error["message"], error
    # Spaces around it are no new name either.
    padded = await call(system, "POST", "/v1/organizations",
                        json={**body, "name": f"  {body['name']} "})
    assert padded.status_code == 409, padded.text
    # Under another parent the same name is another organisation (民盟's committees).
    child = await call(system, "POST", "/v1/organizations",
                       json={**body, "parent_id": first.json()["id"]})
    assert child.status_code == 201, child.text
    child_again = await call(system, "POST", "/v1/organizations",
                             json={**body, "parent_id": first.json()["id"]})
    assert child_again.status_code == 409 and child.json()["id"] in child_again.text
    # Renaming onto a name taken beside it is the same conflict; onto its own name, nothing.
    other = await system.register("organizations", name=f"淄博市民政局-{s}",
                                  kind="government_department")
    renamed = await call(system, "PATCH", f"/v1/organizations/{other['id']}",
                         json={"name": body["name"]})
    assert renamed.status_code == 409 and first.json()["id"] in renamed.text, renamed.text
    same = await call(system, "PATCH", f"/v1/organizations/{other['id']}",
                      json={"name": other["name"], "kind": "government_department"})
    assert same.status_code == 200, same.text
    listed = (await call(system, "GET", "/v1/organizations", params={"q": s})).json()
    assert sorted(o["name"] for o in listed["items"]) == sorted(
        [body["name"], body["name"], other["name"]])


async def test_an_import_creating_a_name_already_there_is_refused_by_row(system):
    """A spreadsheet row that would create a second organisation of a name under the same
    parent is a 409 naming its row and 单位名称, with the existing id; a row that matches by
    code is still an update; two new rows of one name in one file are a 422."""
    s = uid()
    there = await system.register("organizations", name=f"民盟淄博市委-{s}",
                                  kind="democratic_party", code=f"mm-{s}")
    clash = (f"单位编码,单位名称,单位类型,上级单位编码\nmm2-{s},民盟淄博市委-{s},民主党派,\n"
             f"zc-{s},民盟淄川区基层委员会-{s},民主党派,mm-{s}\n")
    r = await upload(system, "organizations", "单位.csv", clash.encode())
    assert r.status_code == 409, r.text
    [error] = r.json()["errors"]
    assert (error["row"], error["column"]) == (2, "单位名称") and there["id"] in error["message"]
    # By its code, the same name is the same organisation: an update, not a second one.
    update = (f"单位编码,单位名称,单位类型,上级单位编码\nmm-{s},民盟淄博市委-{s},民主党派,\n"
              f"zc-{s},民盟淄川区基层委员会-{s},民主党派,mm-{s}\n")
    r = await upload(system, "organizations", "单位.csv", update.encode())
    assert r.status_code == 200 and (r.json()["created"], r.json()["unchanged"]) == (1, 1), r.text
    twice = (f"单位编码,单位名称,单位类型,上级单位编码\na-{s},同名-{s},企业,\n"
             f"b-{s},同名-{s},企业,\n")
    r = await upload(system, "organizations", "单位.csv", twice.encode())
    assert r.status_code == 422, r.text
    assert [(e["row"], e["column"]) for e in r.json()["errors"]] == [(3, "单位名称")]
