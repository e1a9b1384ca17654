"""The spreadsheet layer of registry import/export: reading, header mapping, every error, export."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime

import openpyxl
import pytest

from services.registry.domain import (
    ENTITIES,
    TEAM_CATEGORIES,
    BaseCreate,
    CampaignCreate,
    OrganizationCreate,
    PairingCreate,
    RegionCreate,
    TeamCreate,
    VolunteerCreate,
)
from services.registry.spreadsheets import (
    ALIASES,
    Aliases,
    SpreadsheetError,
    _choices,
    _key,
    column_headers,
    read_table,
    validate_rows,
    write_table,
)


def csv_bytes(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def xlsx_bytes(rows: list[list], *, extra_sheet_first: bool = False) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    if extra_sheet_first:  # the data sheet stays first; another sheet is the active one
        book.create_sheet("other").append(["不是", "这个"])
        book.active = 1
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def imported(content: bytes, model, **kwargs):
    return validate_rows(read_table(content), model, **kwargs)


def where(errors) -> list[tuple[int, str]]:
    return [(e.row, e.column) for e in errors]


# --- reading -------------------------------------------------------------------------------

def test_csv_with_chinese_headers_and_chinese_choices():
    content = csv_bytes(
        "单位名称,单位类型,所属区域,单位编码,备注\n"
        "市委统战部,机关部门,3716,D01,牵头单位\n"
        "民盟市委,民主党派,3716,D02,\n"
        " 东风社区居委会 , 居委会 ,,D03,\n"
        "市第一人民医院,事业单位,,,\n")
    valid, errors = imported(content, OrganizationCreate)
    assert errors == []
    assert [v.row for v in valid] == [2, 3, 4, 5]
    assert valid[0].data == {"name": "市委统战部", "kind": "government_department",
                             "parent_id": None, "parent_code": None, "region_code": "3716",
                             "code": "D01"}
    assert valid[1].data["kind"] == "democratic_party"
    assert valid[2].data["name"] == "东风社区居委会"
    assert valid[2].data["kind"] == "community_committee"
    assert valid[2].data["region_code"] is None
    assert valid[3].data["kind"] == "public_institution"
    assert valid[3].data["code"] is None


def test_english_headers_any_case_and_english_codes_any_case():
    content = csv_bytes("\ufeffName,KIND,Region_Code,HouseHolds,code\n"
                        "东风社区,Community,3716,300,B1\n"
                        "红星村,village,,,B2\n")
    valid, errors = imported(content, BaseCreate)
    assert errors == []
    assert valid[0].data == {"name": "东风社区", "kind": "community", "region_code": "3716",
                             "households": 300, "code": "B1", "latitude": None,
                             "longitude": None}
    assert valid[1].data["households"] is None


def test_gb18030_csv_as_excel_saves_it_on_chinese_windows():
    content = csv_bytes("基地名称,基地类型,户数\r\n东风社区,社区,300\r\n红星村,村,120\r\n",
                        "gb18030")
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")
    valid, errors = imported(content, BaseCreate)
    assert errors == []
    assert [(v.data["name"], v.data["kind"], v.data["households"]) for v in valid] == [
        ("东风社区", "community", 300), ("红星村", "village", 120)]


def test_utf16_tab_separated_text_as_excel_unicode_text_export():
    content = "名称\t类型\n东风社区\t社区\n".encode("utf-16")
    valid, errors = imported(content, BaseCreate)
    assert errors == []
    assert valid[0].data["kind"] == "community"


def test_xlsx_first_sheet_numbers_dates_and_true_row_numbers():
    content = xlsx_bytes([
        ["基地名称", "基地类型", "户数", "基地编码", "所属区域编码"],
        ["东风社区", "社区", 300.0, 1001, "  3716 "],
        [None, None, None, None, None],
        ["红星村", "村", 120, datetime(2024, 3, 1), None],
        ["", "   ", None, None, None],
        ["实验小学", "学校", None, "B-3", 371602],
    ], extra_sheet_first=True)
    table = read_table(content, "bases.xlsx")
    assert table.headers == ("基地名称", "基地类型", "户数", "基地编码", "所属区域编码")
    assert [r.number for r in table.rows] == [2, 4, 6]
    assert table.rows[0].cells == ("东风社区", "社区", "300", "1001", "3716")
    assert table.rows[1].cells[3] == "2024-03-01"
    valid, errors = validate_rows(table, BaseCreate)
    assert errors == []
    assert [v.row for v in valid] == [2, 4, 6]
    assert valid[0].data["households"] == 300
    assert valid[2].data["region_code"] == "371602"


def test_header_after_leading_blank_rows_keeps_its_row_number():
    table = read_table(csv_bytes(",,\n\n名称,类型\n东风社区,社区\n"))
    assert table.header_row == 3
    assert [r.number for r in table.rows] == [4]
    valid, errors = validate_rows(table, BaseCreate)
    assert errors == [] and valid[0].row == 4


def test_region_levels_and_traditional_chinese_headers():
    content = csv_bytes("區域編碼,區域名稱,級別,上級編碼\n"
                        "3716,滨州市,市,\n"
                        "371602,滨城区,區,3716\n"
                        "371621,惠民县,縣,3716\n"
                        "37160201,市中街道,街道,371602\n"
                        "3716020101,黄河社區,社區,37160201\n"
                        "3716210101,李家村,村,371621\n")
    valid, errors = imported(content, RegionCreate)
    assert errors == []
    assert [v.data["level"] for v in valid] == [
        "city", "district", "district", "town", "community", "community"]
    assert valid[1].data == {"code": "371602", "name": "滨城区", "level": "district",
                             "parent_code": "3716"}


def test_traditional_chinese_choice_labels():
    content = csv_bytes("單位名稱,單位類型\n民盟,民主黨派\n市委組織部,機關部門\n某公司,企業\n")
    valid, errors = imported(content, OrganizationCreate)
    assert errors == []
    assert [v.data["kind"] for v in valid] == [
        "democratic_party", "government_department", "enterprise"]


def test_header_spelling_variants():
    content = csv_bytes("名 称*,Kind,Parent Code,户数（户）,NO.\n东风社区,社区,,5,1\n")
    table = read_table(content)
    valid, errors = validate_rows(table, BaseCreate)
    # parent_code is not a base field: reported, the rest maps
    assert where(errors) == [(1, "Parent Code")]
    assert valid[0].data["households"] == 5


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, ".xls"),
    (b"PK\x03\x04" + b"\x00" * 100, "not a readable XLSX"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "neither CSV nor XLSX"),
    (b"name,kind\n\xff\xfe\xff,x\n", "neither CSV"),
    (b"\n , ,\n\n", "no header"),
])
def test_unreadable_files_raise_a_clear_error(content, message):
    with pytest.raises(SpreadsheetError, match=message):
        read_table(content, "upload.xlsx")


# --- every error, with its row and column ----------------------------------------------------

def test_every_error_is_reported_with_its_row_and_column():
    long_name = "长" * 201
    long_code = "C" * 65
    content = csv_bytes(
        "序号,基地名称,基地类型,户数,基地编码,所属区域编码,颜色,备注\n"   # 1: 颜色 is unknown
        "1,东风社区,社区,300,B001,3716,红,\n"                             # 2: valid
        "2,,村,120,B002,3716,,\n"                                       # 3: empty name
        "3,红星村,农场,80,B003,,,\n"                                     # 4: bad kind
        "4,新华社区,社区,-5,B004,,,\n"                                   # 5: negative households
        "5,光明社区,社区,三百,B005,,,\n"                                 # 6: not a number
        "6,胜利社区,社区,200,B001,,,与第2行重复\n"                        # 7: duplicate code
        "7,,工厂,abc,B002,,,\n"                                         # 8: four errors
        ",,,,,,,\n"                                                     # 9: empty, skipped
        "8,实验小学,学校,12.5,B010,,,\n"                                 # 10: not a whole number
        f"9,{long_name},其他,10,B011,,,\n"                              # 11: name too long
        f"10,城东街道,街道,1,{long_code},,,\n")                         # 12: bad kind, long code
    valid, errors = imported(content, BaseCreate)

    assert where(errors) == [
        (1, "颜色"),
        (3, "基地名称"),
        (4, "基地类型"),
        (5, "户数"),
        (6, "户数"),
        (7, "基地编码"),
        (8, "基地名称"), (8, "基地类型"), (8, "户数"), (8, "基地编码"),
        (10, "户数"),
        (11, "基地名称"),
        (12, "基地类型"), (12, "基地编码"),
    ]
    assert [v.row for v in valid] == [2]
    by_place = {(e.row, e.column): e.message for e in errors}
    assert "unknown column" in by_place[(1, "颜色")]
    assert "empty" in by_place[(3, "基地名称")]
    assert "'农场'" in by_place[(4, "基地类型")] and "社区" in by_place[(4, "基地类型")]
    assert "greater than or equal to 0" in by_place[(5, "户数")]
    assert "'三百'" in by_place[(6, "户数")]
    assert by_place[(7, "基地编码")] == "code 'B001' is already used in row 2"
    assert by_place[(8, "基地编码")] == "code 'B002' is already used in row 3"


def test_a_missing_required_column_is_reported_once_not_on_every_row():
    content = csv_bytes("名称,户数\n东风社区,1\n红星村,-1\n新村,2\n")
    valid, errors = imported(content, BaseCreate)
    assert where(errors) == [(1, "kind"), (3, "户数")]
    assert "基地类型" in errors[0].message
    assert valid == []


def test_two_columns_for_one_field():
    content = csv_bytes("名称,name,类型\n东风社区,东风社区,社区\n")
    _, errors = imported(content, BaseCreate)
    assert where(errors) == [(1, "name")]
    assert "名称" in errors[0].message


def test_values_in_a_column_without_header():
    content = csv_bytes("名称,类型\n东风社区,社区\n红星村,村,多出来的\n")
    valid, errors = imported(content, BaseCreate)
    assert where(errors) == [(3, "C")]
    assert [v.row for v in valid] == [2, 3]  # the stray cell is reported, not imported


def test_volunteer_lists_and_personal_data_are_imported():
    content = csv_bytes("姓名,单位编码,团队编码,技能特长,党员身份,联系电话,身份证号\n"
                        "张三,D01,\"T1，T2\",法律、 心理咨询 ,在职党员,13800001111,"
                        "37010219900101123X\n"
                        "李四,D01,,,群众,,\n")
    valid, errors = imported(content, VolunteerCreate)
    assert errors == []
    assert valid[0].data["team_codes"] == ["T1", "T2"]
    assert valid[0].data["skills"] == ["法律", "心理咨询"]
    assert valid[0].data["party_status"] == "serving_member"
    assert valid[0].data["id_number"] == "37010219900101123X"
    assert valid[1].data["skills"] == [] and valid[1].data["party_status"] == "non_member"


def test_pairing_dates_as_chinese_excel_writes_them():
    content = csv_bytes("单位编码,基地编码,开始日期,结束日期,状态\n"
                        "D01,B001,2024/3/1,2026年2月28日,进行中\n"
                        "D02,B002,2024/3/1,2024/2/1,暂停\n"
                        "D03,B003,2024/13/1,,已结束\n")
    valid, errors = imported(content, PairingCreate)
    assert valid[0].data["starts_on"] == "2024-03-01"
    assert valid[0].data["ends_on"] == "2026-02-28"
    assert valid[0].data["status"] == "active"
    assert where(errors) == [(3, "结束日期"), (4, "开始日期")]


def test_campaign_with_base_codes_in_one_cell():
    content = csv_bytes("行动编码,行动名称,开始日期,结束日期,基地编码,所属区域编码,备注\n"
                        "QM1,敲门行动,2021/8/1,2021年8月3日,\"B001、B002，B003\",3211,\n"
                        "QM2,第二轮,2021/8/5,2021/8/4,B004,,结束早于开始\n"
                        "QM3,没有结束日期,2021/8/5,,,,\n")
    valid, errors = imported(content, CampaignCreate)
    assert valid[0].data == {
        "code": "QM1", "name": "敲门行动", "starts_on": "2021-08-01", "ends_on": "2021-08-03",
        "base_ids": [], "base_codes": ["B001", "B002", "B003"], "region_code": "3211",
        "description": None}
    assert where(errors) == [(3, "结束日期"), (4, "结束日期")]


def test_team_category_by_chinese_label_or_code():
    content = csv_bytes("团队名称,团队类别,单位编码\n法律服务团,法律援助,D01\n医疗队,medical,D01\n")
    valid, errors = imported(content, TeamCreate)
    assert errors == []
    assert [v.data["category"] for v in valid] == ["legal_aid", "medical"]


def test_column_headers_name_the_file_columns_for_later_errors():
    table = read_table(csv_bytes("序号,上级单位编码,名称,类型\n1,D01,民盟,民主党派\n"))
    assert column_headers(table, OrganizationCreate) == {
        "parent_code": "上级单位编码", "name": "名称", "kind": "类型"}


def test_check_hook_runs_on_rows_that_passed_the_model():
    seen = []

    def check(data):
        seen.append(data["name"])
        return [("region_code", f"no region with code {data['region_code']!r}")] \
            if data["region_code"] == "9999" else []

    content = csv_bytes("名称,类型,区域编码\n东风社区,社区,3716\n红星村,农场,9999\n新村,村,9999\n")
    valid, errors = imported(content, BaseCreate, check=check)
    assert seen == ["东风社区", "新村"]
    assert where(errors) == [(3, "类型"), (4, "区域编码")]
    assert errors[1].message == "no region with code '9999'"
    assert [v.row for v in valid] == [2]


def test_id_column_is_carried_and_not_validated():
    content = csv_bytes("ID,名称,类型\nabc-1,东风社区,社区\n,红星村,村\n")
    valid, errors = imported(content, BaseCreate)
    assert errors == []
    assert [(v.id, v.data["name"]) for v in valid] == [("abc-1", "东风社区"), (None, "红星村")]
    assert "id" not in valid[0].data


def test_aliases_can_be_passed_for_a_model_not_in_the_table():
    content = csv_bytes("名字,级\n东风,市\n")
    aliases = Aliases(headers={"name": ("名字",), "level": ("级",), "code": ("号",)},
                      values={"level": {"市": "city"}})
    _, errors = imported(content, RegionCreate, aliases=aliases)
    assert where(errors) == [(1, "code")]


# --- alias tables ------------------------------------------------------------------------------

def test_every_entity_has_an_alias_table():
    assert {e.create for e in ENTITIES.values()} <= set(ALIASES)


@pytest.mark.parametrize("model", list(ALIASES), ids=lambda m: m.__name__)
def test_alias_tables_name_real_fields_and_codes(model):
    aliases = ALIASES[model]
    fields = model.model_fields
    assert set(aliases.headers) <= set(fields)
    folded = [_key(h) for f in fields for h in (f, *aliases.headers.get(f, ()))]
    assert len(folded) == len(set(folded)), "one header means two fields"
    for name, labels in aliases.values.items():
        choices = set(_choices(fields[name].annotation)) or set(TEAM_CATEGORIES)
        assert set(labels.values()) == choices, f"{name}: a label names no code, or a code " \
                                                "has no Chinese label"


# --- export and round trip ---------------------------------------------------------------------

RECORDS = {
    RegionCreate: [
        {"id": "3716", "code": "3716", "name": "滨州市", "level": "city", "parent_code": None},
        {"id": "371602", "code": "371602", "name": "滨城区", "level": "district",
         "parent_code": "3716"},
        {"id": "37160201", "code": "37160201", "name": "市中街道", "level": "town",
         "parent_code": "371602"},
        {"id": "0101", "code": "0101", "name": "黄河社区", "level": "community",
         "parent_code": "37160201"},
    ],
    OrganizationCreate: [
        {"id": "6f1c0f8e-0000-4000-8000-000000000001", "name": "市委统战部",
         "kind": "government_department", "parent_id": None, "parent_code": None,
         "region_code": "3716", "code": "D01"},
        {"id": "6f1c0f8e-0000-4000-8000-000000000002", "name": "民盟市委 (\"同心\")",
         "kind": "democratic_party", "parent_id": "6f1c0f8e-0000-4000-8000-000000000001",
         "parent_code": None, "region_code": None, "code": None},
        {"id": "6f1c0f8e-0000-4000-8000-000000000003", "name": "东风社区居委会",
         "kind": "community_committee", "parent_id": None, "parent_code": "D01",
         "region_code": "0101", "code": "-7"},
    ],
    BaseCreate: [
        {"id": "b1", "name": "东风社区", "kind": "community", "region_code": "0101",
         "households": 3200, "code": "B001", "latitude": 36.81, "longitude": 118.05},
        {"id": "b2", "name": "李家村, 北片", "kind": "village", "region_code": None,
         "households": None, "code": None, "latitude": None, "longitude": None},
        {"id": "b3", "name": "=1+1", "kind": "enterprise", "region_code": "3716",
         "households": 0, "code": "00012", "latitude": None, "longitude": None},
        {"id": "b4", "name": "实验小学\n(东校区)", "kind": "school", "region_code": None,
         "households": 10_000_000, "code": "B004", "latitude": None, "longitude": None},
        {"id": "b5", "name": "其它", "kind": "other", "region_code": None, "households": 1,
         "code": "#N/A", "latitude": None, "longitude": None},
    ],
    TeamCreate: [
        {"id": "t1", "name": "法律服务团", "category": "legal_aid", "organization_id": None,
         "organization_code": "D01", "description": "每月一次 义务法律咨询", "code": "T1"},
        {"id": "t2", "name": "瑜伽队", "category": "yoga", "organization_id": "o-2",
         "organization_code": None, "description": None, "code": None},
    ],
    VolunteerCreate: [
        {"id": "v1", "name": "张三", "organization_id": "o-1", "organization_code": None,
         "team_ids": ["t1", "t2"], "team_codes": [], "skills": ["法律", "心理咨询"],
         "party_status": "serving_member", "home_base_id": None, "home_base_code": "B001",
         "phone": None, "id_number": None, "code": "V1"},
        {"id": "v2", "name": "李四", "organization_id": None, "organization_code": "D01",
         "team_ids": [], "team_codes": ["T1"], "skills": [], "party_status": "non_member",
         "home_base_id": None, "home_base_code": None, "phone": None, "id_number": None,
         "code": None},
    ],
    PairingCreate: [
        {"id": "p1", "organization_id": None, "organization_code": "D01", "base_id": None,
         "base_code": "B001", "starts_on": "2024-03-01", "ends_on": "2026-02-28",
         "status": "active", "needs": [], "resources": [], "projects": [], "code": "P1"},
        {"id": "p2", "organization_id": "o-2", "organization_code": None, "base_id": "b2",
         "base_code": None, "starts_on": "2023-01-01", "ends_on": None, "status": "ended",
         "needs": [], "resources": [], "projects": [], "code": None},
    ],
    CampaignCreate: [
        {"id": "c1", "code": "QM-2021-08", "name": "敲门行动·入户筛排", "starts_on": "2021-08-01",
         "ends_on": "2021-08-03", "base_ids": ["b1", "b2"], "base_codes": [],
         "region_code": "3211", "description": "不漏一户、不漏一人"},
        {"id": "c2", "code": "QM-2", "name": "第二轮", "starts_on": "2021-09-01",
         "ends_on": "2021-09-01", "base_ids": [], "base_codes": ["B001"], "region_code": None,
         "description": None},
    ],
}


@pytest.mark.parametrize("headers", ["zh", "en"])
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("model", list(RECORDS), ids=lambda m: m.__name__)
def test_export_then_import_gives_back_the_same_records(model, fmt, headers):
    records = RECORDS[model]
    stored = [{**r, "active": True, "created_at": "2024-03-01T08:00:00+08:00"} for r in records]
    content = write_table(stored, model, fmt, headers)
    valid, errors = imported(content, model)
    assert errors == []
    assert [{"id": v.id, **v.data} for v in valid] == records


def test_export_leaves_out_personal_data_and_lists_of_records():
    volunteer = {**RECORDS[VolunteerCreate][0], "phone": "13800001111",
                 "id_number": "370102199001011234"}
    table = read_table(write_table([volunteer], VolunteerCreate, "csv", "en"))
    assert "phone" not in table.headers and "id_number" not in table.headers
    assert "13800001111" not in str(table.rows)
    pairing = {**RECORDS[PairingCreate][0], "needs": [{"id": "n1", "title": "辅导作业"}]}
    table = read_table(write_table([pairing], PairingCreate, "csv", "en"))
    assert "needs" not in table.headers
    assert "starts_on" in table.headers


def test_export_without_ids_has_no_id_column():
    records = [{k: v for k, v in r.items() if k != "id"} for r in RECORDS[BaseCreate]]
    table = read_table(write_table(records, BaseCreate, "csv"))
    assert table.headers == ("基地名称", "基地类型", "所属区域编码", "户数", "基地编码",
                             "纬度", "经度")
    valid, errors = validate_rows(table, BaseCreate)
    assert errors == []
    assert [v.data for v in valid] == records and all(v.id is None for v in valid)


def test_csv_export_has_a_bom_chinese_labels_and_guards_formulas():
    content = write_table(RECORDS[BaseCreate], BaseCreate, "csv")
    assert content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert lines[0] == ["id", "基地名称", "基地类型", "所属区域编码", "户数", "基地编码", "纬度",
                        "经度"]
    assert lines[1] == ["b1", "东风社区", "社区", "0101", "3200", "B001", "36.81", "118.05"]
    assert lines[3][:3] == ["b3", "'=1+1", "企业"]
    assert lines[4][1] == "实验小学\n(东校区)"


def test_xlsx_export_keeps_text_as_text():
    content = write_table(RECORDS[BaseCreate], BaseCreate, "xlsx", "en")
    sheet = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
    assert [c.value for c in sheet[1]] == [
        "id", "name", "kind", "region_code", "households", "code", "latitude", "longitude"]
    assert sheet["B4"].value == "=1+1" and sheet["B4"].data_type == "s"
    assert sheet["F4"].value == "00012" and sheet["F4"].data_type == "s"
    assert sheet["E2"].value == 3200 and sheet["E2"].data_type == "n"


def test_unknown_export_format():
    with pytest.raises(ValueError, match="xls"):
        write_table([], BaseCreate, "xls")


# --- size ----------------------------------------------------------------------------------------

def test_five_thousand_row_xlsx_validates_without_errors():
    kinds = ["社区", "村", "企业", "学校", "其他"]
    rows = [["序号", "基地名称", "基地类型", "所属区域编码", "户数", "基地编码"]]
    rows += [[i, f"第{i}号基地", kinds[i % 5], f"3716{i % 97:04d}", float(i * 3), f"B{i:05d}"]
             for i in range(1, 5001)]
    content = xlsx_bytes(rows)

    started = time.perf_counter()
    valid, errors = validate_rows(read_table(content, "bases.xlsx"), BaseCreate)
    elapsed = time.perf_counter() - started

    assert errors == []
    assert len(valid) == 5000
    assert valid[-1].row == 5001 and valid[-1].data["households"] == 15000
    print(f"5,000-row XLSX read and validated in {elapsed:.2f}s")
