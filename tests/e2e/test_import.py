"""Spreadsheet import and export through the registry's HTTP interface and `tongxin import`,
with the other services' replicas following (services as processes, both back-ends)."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
import uuid

import httpx
import openpyxl
import pytest

from tests.factories import activity

pytestmark = pytest.mark.asyncio(loop_scope="session")

HEADERS = ["基地编码", "基地名称", "基地类型", "所属区域编码", "户数", "备注"]


def xlsx(rows: list[list]) -> bytes:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("基地")
    sheet.append(HEADERS)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def upload(system, collection: str, name: str, content: bytes) -> httpx.Response:
    async with system.client(timeout=300) as http:
        return await http.post(f"{system.url('registry')}/v1/import/{collection}",
                               files={"file": (name, content)})


async def test_5000_rows_with_a_dozen_errors_then_the_corrected_file(system):
    s = uuid.uuid4().hex[:6]
    region = f"rg-{s}"
    r = await upload(system, "regions", "区域.csv",
                     f"区域编码,区域名称,级别\n{region},池州市贵池区,区\n".encode())
    assert r.status_code == 200, r.text
    good = [[f"{s}-{i:05d}", f"杏花村社区{i}号网格-{s}", "社区", region, 100 + i % 400, ""]
            for i in range(5000)]
    bad = [row.copy() for row in good]
    planted = {  # spreadsheet row -> (column, what is wrong)
        2: ("基地名称", ""), 57: ("基地类型", "农场"), 311: ("户数", "很多"),
        777: ("户数", -3), 1200: ("所属区域编码", "no-such-region"),
        1999: ("基地编码", f"{s}-00001"),  # duplicate of row 3
        2500: ("基地类型", ""), 3001: ("户数", 2.5), 3333: ("基地名称", "x" * 201),
        4000: ("所属区域编码", "nowhere"), 4500: ("基地编码", ""), 5001: ("基地类型", "星球"),
    }
    for row, (column, value) in planted.items():
        bad[row - 2][HEADERS.index(column)] = value

    t0 = time.perf_counter()
    r = await upload(system, "bases", "基地名单.xlsx", xlsx(bad))
    took = time.perf_counter() - t0
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert {(e["row"], e["column"]) for e in errors} == {
        (row, column) for row, (column, _) in planted.items()}, errors
    assert all(e["message"] for e in errors)
    async with system.client() as http:
        none = await http.get(f"{system.url('registry')}/v1/bases", params={"q": s})
    assert none.json()["total"] == 0, "nothing is imported when anything is wrong"

    t0 = time.perf_counter()
    r = await upload(system, "bases", "基地名单.xlsx", xlsx(good))
    took_good = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    assert r.json() == {"imported": 5000, "created": 5000, "updated": 0, "unchanged": 0}
    print(f"\n5,000-row XLSX: rejected with 12 errors in {took:.2f}s, imported in {took_good:.2f}s")

    # Uploading the same file again changes nothing; a corrected cell updates one record.
    again = await upload(system, "bases", "基地名单.xlsx", xlsx(good))
    assert again.json() == {"imported": 5000, "created": 0, "updated": 0, "unchanged": 5000}
    good[41][4] = 999
    changed = await upload(system, "bases", "基地名单.xlsx", xlsx(good))
    assert changed.json() == {"imported": 5000, "created": 0, "updated": 1, "unchanged": 4999}

    # The replicas follow: events accepts an activity at a base imported a moment ago, and
    # reporting labels it and rolls it up into the imported region.
    async with system.client() as http:
        found = (await http.get(f"{system.url('registry')}/v1/bases",
                                params={"q": f"杏花村社区4999号网格-{s}"})).json()["items"]
    org = await system.register("organizations", name=f"池州市直机关工委-{s}",
                                kind="party_organization")
    logged = await system.post_activity(activity(org["id"], found[0]["id"], served=60))
    assert logged.status_code == 202, logged.text
    summary = await system.summary(group_by="base", region=region,
                                   min_seq=logged.json()["seq"])
    assert [(r["label"], r["served"]) for r in summary["rows"]] == [(found[0]["name"], 60)]


async def test_every_register_round_trips_through_export(system):
    s = uuid.uuid4().hex[:6]
    await system.register("regions", code=f"r-{s}", name="淄博市", level="city")
    org = await system.register("organizations", name=f"民建淄博市委-{s}",
                                kind="democratic_party", code=f"mj-{s}", region_code=f"r-{s}")
    base = await system.register("bases", name=f"孟家村-{s}", kind="village", code=f"b-{s}",
                                 region_code=f"r-{s}", households=320)
    team = await system.register("teams", name=f"同心医疗卫生服务团队-{s}", category="medical",
                                 organization_id=org["id"], code=f"team-{s}")
    await system.register("volunteers", name="李医生", organization_id=org["id"],
                          team_ids=[team["id"]], skills=["内科", "义诊"], code=f"v-{s}",
                          home_base_id=base["id"], party_status="serving_member")
    pairing = await system.register(
        "pairings", organization_id=org["id"], base_id=base["id"], starts_on="2013-03-01",
        code=f"p-{s}", needs=[{"title": "老年人体检"}], projects=[{"title": "村图书馆"}])
    await system.register("campaigns", code=f"qm-{s}", name="敲门行动", starts_on="2021-08-01",
                          ends_on="2021-08-03", base_ids=[base["id"]], region_code=f"r-{s}")
    async with system.client(timeout=60) as http:
        claim = await http.post(f"{system.url('registry')}/v1/pairings/{pairing['id']}/claim",
                                json={"list": "projects", "item_id": "p1",
                                      "organization_id": org["id"]})
        assert claim.status_code == 200
        for collection in ("regions", "organizations", "bases", "teams", "volunteers",
                           "pairings", "campaigns"):
            for fmt, headers in (("csv", "zh"), ("xlsx", "en")):
                exported = await http.get(f"{system.url('registry')}/v1/export/{collection}",
                                          params={"format": fmt, "headers": headers})
                assert exported.status_code == 200
                back = await upload(system, collection, f"{collection}.{fmt}", exported.content)
                assert back.status_code == 200, (collection, fmt, back.text)
                assert back.json()["created"] == back.json()["updated"] == 0, (
                    collection, fmt, back.json())
        after = (await http.get(f"{system.url('registry')}/v1/pairings/{pairing['id']}")).json()
    # what a spreadsheet has no column for (the pairing's lists, a claim) is left as it was
    assert after["projects"] == claim.json()["projects"] and after["needs"] == pairing["needs"]
    assert after["projects"][0]["status"] == "claimed"


async def test_a_file_may_list_children_before_their_parents(system):
    s = uuid.uuid4().hex[:6]
    csv = (f"单位编码,单位名称,单位类型,上级单位编码\nzc-{s},民盟淄川区基层委员会,民主党派,mm-{s}\n"
           f"mm-{s},民盟淄博市委,民主党派,\n")
    r = await upload(system, "organizations", "单位.csv", csv.encode())
    assert r.status_code == 200, r.text
    regions = (f"区域编码,区域名称,级别,上级编码\nv-{s},孟家村,村,t-{s}\nt-{s},高城镇,镇,d-{s}\n"
               f"d-{s},高青县,县,\n")
    r = await upload(system, "regions", "区域.csv", regions.encode())
    assert r.status_code == 200, r.text


async def test_volunteers_by_spreadsheet_keep_contact_details_private(system):
    s = uuid.uuid4().hex[:6]
    await system.register("organizations", name=f"淄博市司法局-{s}",
                          kind="government_department", code=f"sf-{s}")
    await system.register("teams", name="“同心”法律援助服务团队", category="legal_aid",
                          organization_code=f"sf-{s}", code=f"legal-{s}")
    csv = ("志愿者编码,姓名,单位编码,团队编码,技能特长,党员身份,联系电话,身份证号\n"
           f"v1-{s},王律师,sf-{s},legal-{s},法律咨询、调解,在册党员,13805331234,370302198001011234\n"
           f"v2-{s},李律师,sf-{s},legal-{s},合同,在职党员,,\n")
    r = await upload(system, "volunteers", "志愿者.csv", csv.encode())
    assert r.status_code == 200, r.text
    async with system.client() as http:
        exported = (await http.get(f"{system.url('registry')}/v1/export/volunteers")).content
        items = (await http.get(f"{system.url('registry')}/v1/volunteers",
                                params={"q": "律师"})).json()["items"]
    wang = next(v for v in items if v["code"] == f"v1-{s}")
    assert wang["skills"] == ["法律咨询", "调解"] and wang["party_status"] == "registered_member"
    assert b"13805331234" not in exported and "联系电话" not in exported.decode("utf-8-sig")
    # re-importing the export (no contact columns) keeps the stored contact details, and the
    # same file again changes nothing, contact details included
    back = await upload(system, "volunteers", "volunteers.csv", exported)
    assert back.status_code == 200, back.text
    again = await upload(system, "volunteers", "志愿者.csv", csv.encode())
    assert (again.json()["updated"], again.json()["unchanged"]) == (0, 2), again.json()
    # Contact details are for an organiser of the volunteer's organisation only.
    organiser = await system.issue_key("organiser", wang["organization_id"])
    async with system.client(organiser, timeout=30) as http:
        contact = (await http.get(
            f"{system.url('registry')}/v1/volunteers/{wang['id']}/contact")).json()
    assert contact["phone"] == "13805331234"


async def test_the_cli_and_the_endpoint_give_the_same_answer(system, tmp_path):
    s = uuid.uuid4().hex[:6]
    bad = tmp_path / "单位.csv"
    bad.write_text(f"单位编码,单位名称,单位类型,上级单位编码\nok-{s},淄博市委统战部,党组织,\n"
                   f"x-{s},,民主党派,\ny-{s},民盟,民主党派,nobody-{s}\n", encoding="utf-8")
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tongxin.cli", "import", str(bad), "--registry",
                         system.url("registry")], capture_output=True, text=True, timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "TONGXIN_TOKEN": system.token})
    assert run.returncode == 1, run.stdout + run.stderr
    assert "nothing was imported" in run.stdout
    assert "单位名称" in run.stdout  # the missing name, by its column
    endpoint = await upload(system, "organizations", "单位.csv", bad.read_bytes())
    assert [(e["row"], e["column"]) for e in endpoint.json()["errors"]] == [
        (3, "单位名称"), (4, "上级单位编码")]

    good = tmp_path / "organizations.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["code", "name", "kind"])
    book.active.append([f"ok-{s}", "淄博市委统战部", "party_organization"])
    book.save(good)
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tongxin.cli", "import", str(good), "--registry",
                         system.url("registry")], capture_output=True, text=True, timeout=120,
        env={**os.environ, "TONGXIN_TOKEN": system.token})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 organizations imported: 1 new" in run.stdout


async def test_the_cli_finds_the_registry_by_its_port_and_says_so_in_a_line_when_it_cannot(
        system, tmp_path):
    """`tongxin import` reaches the registry where TONGXIN_REGISTRY_PORT (or
    TONGXIN_REGISTRY_URL) says; when nothing answers there, one line says so, exit code 2."""
    from tongxin.natsserver import free_port

    s = uuid.uuid4().hex[:6]
    good = tmp_path / "单位.csv"
    good.write_text(f"单位编码,单位名称,单位类型\nport-{s},淄博市民政局-{s},机关部门\n",
                    encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith("TONGXIN_")}
    base |= {"COLUMNS": "80", "TONGXIN_TOKEN": system.token}
    port = system.url("registry").rsplit(":", 1)[1]

    async def run(**env: str) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "tongxin.cli", "import", str(good)],
            capture_output=True, text=True, timeout=120, env={**base, **env})

    by_port = await run(TONGXIN_REGISTRY_PORT=port)
    assert by_port.returncode == 0, by_port.stdout + by_port.stderr
    assert "1 organizations imported: 1 new" in by_port.stdout
    by_url = await run(TONGXIN_REGISTRY_URL=system.url("registry") + "/",
                       TONGXIN_REGISTRY_PORT="1")
    assert by_url.returncode == 0, by_url.stdout + by_url.stderr
    assert "1 organizations imported: 0 new, 0 changed, 1 unchanged" in by_url.stdout

    nowhere = free_port()
    for env in ({"TONGXIN_REGISTRY_PORT": str(nowhere)},
                {"TONGXIN_REGISTRY_URL": f"http://127.0.0.1:{nowhere}"}):
        failed = await run(**env)
        assert failed.returncode == 2, failed.stdout + failed.stderr
        said = (failed.stdout + failed.stderr).strip().splitlines()
        assert said == [f"Cannot reach the registry at http://127.0.0.1:{nowhere} (nothing "
                        "answers there). Is it running (`tongxin up`)? Give its address with "
                        "--registry or TONGXIN_REGISTRY_URL, or its port with "
                        "TONGXIN_REGISTRY_PORT."], said
