"""Error messages in Chinese (shared/errors_zh.py): chosen by Accept-Language, pydantic's by
their type, Tongxin's own by their wording; English stays the default and the fallback."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from services.events.photos import Photos
from shared.auth import Principal, check_within
from shared.errors import FieldError, Rejected, from_validation_error, plain
from shared.errors_zh import localise, rule_zh, wants_chinese
from shared.events import ActivityLogged, AttendanceRecorded, NeedSubmitted

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(("header", "chinese"), [
    ("zh-CN", True), ("zh", True), ("zh-Hans-CN", True), ("zh-CN,zh;q=0.9,en;q=0.8", True),
    ("en-US,zh;q=0.5", False), ("en", False), ("", False), (None, False),
    ("en;q=0.4,zh-TW;q=0.8", True), ("fr, zh-CN", False), ("zh-CN;q=abc, en", False)])
def test_the_language_a_request_asks_for(header, chinese):
    assert wants_chinese(header) is chinese


def errors_of(model, data) -> list[FieldError]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return from_validation_error(caught.value, "data")


def test_every_validation_error_of_a_bad_activity_reads_in_chinese():
    errors = errors_of(ActivityLogged, {
        "activity_id": "x", "organization_id": "", "base_id": "b", "title": "联系 13812345678",
        "theme": "bad", "started_at": "2013-10-19T09:00:00+08:00",
        "ended_at": "2013-10-19T08:00:00+08:00", "volunteers": 1.5, "volunteer_hours": "abc",
        "stalls": [{"service_type": "haircut", "served": -1}], "extra": 1})
    zh = {e["field"]: e["message"] for e in localise(errors, chinese=True)}
    assert zh["data.stalls[0].served"] == "应不小于 0"
    assert zh["data.ended_at"] == "结束时间不能早于开始时间"
    assert zh["data.organization_id"] == "不能为空"
    assert zh["data.activity_id"] == "应为 UUID"
    assert zh["data.volunteers"] == "应为整数，不能有小数"
    assert zh["data.volunteer_hours"] == "应为数字"
    assert zh["data.extra"] == "不接受此字段"
    assert zh["data.theme"].startswith("应为以下之一：'city_quality'、")
    assert zh["data.title"].startswith("疑似手机号或身份证号")
    assert all(CJK.search(m) for m in zh.values()), zh
    # English stays what it was, field for field.
    en = localise(errors, chinese=False)
    assert en == [e.model_dump() for e in errors]


def test_fairs_and_missing_fields():
    errors = errors_of(ActivityLogged, {
        "activity_id": "3f0a4a52-5a2e-4a8e-9d1c-0c8a3f5b6a01", "organization_id": "o",
        "base_id": "b", "title": "大集市", "theme": "other",
        "started_at": "2013-10-26T08:30:00+08:00", "ended_at": "2013-10-26T16:00:00+08:00",
        "volunteer_hours": 1, "served": 3,
        "stalls": [{"service_type": "haircut", "served": 1}]})
    zh = {e["field"]: e["message"] for e in localise(errors, chinese=True)}
    assert zh == {"data.served": "应等于各摊位服务人次之和（1），或留空",
                  "data.volunteers": "必填"}


def test_choices_and_limits():
    errors = errors_of(AttendanceRecorded, {"activity_id": "3f0a4a52-5a2e-4a8e-9d1c-0c8a3f5b6a01",
                                            "volunteer_id": "v", "hours": 0, "method": "x"})
    errors += errors_of(NeedSubmitted, {"need_id": "n", "base_id": "b", "title": "x" * 201,
                                        "category": "Repair", "channel": "unit"})
    zh = {e["field"]: e["message"] for e in localise(errors, chinese=True)}
    assert zh["data.hours"] == "应大于 0"
    assert zh["data.method"] == "应为以下之一：'self'、'organiser'、'sign_in' 或 'import'"
    assert zh["data.title"] == "最多 200 个字符"
    assert zh["data.category"] == "格式不对"


@pytest.mark.parametrize(("english", "chinese"), [
    ("no organization 'o9' is known to the registry", "登记库中没有此单位（o9）"),
    ("base 'b1' is deactivated", "此服务基地已停用（b1）"),
    ("account:a1 acts for organisation 'o1' and the units under it, not 'o2'",
     "只能以本单位（o1）及其下属单位的名义提交，不能代表单位 o2"),
    ("volunteer v1 is recorded at activity a2 (2013-10-19 09:00–12:00), which overlaps this "
     "one", "该志愿者已登记在时间重叠的另一活动 a2（2013-10-19 09:00–12:00）"),
    ("3.5 h is longer than the activity (3 h)", "3.5 小时超过了活动时长（3 小时）"),
    ("need N1 is open; only a claimed need can be resolved",
     "需求 N1 当前待认领，只有已认领的需求才能标记解决"),
    ("need N1 is claimed by o2; only an open need can be claimed",
     "需求 N1 当前已认领（认领单位 o2），只有待认领的需求才能认领"),
    ("need N1 was claimed by o2, not by o1", "需求 N1 由单位 o2 认领，不是 o1"),
    ("unit o1 is not paired with base b1; only a paired unit can claim its needs",
     "单位 o1 未与服务基地 b1 结对，只有结对单位才能认领其需求"),
    ("need N1 is open; only a resolved or closed need can be answered",
     "需求 N1 当前待认领，只有已解决或已关闭的需求才能评价"),
    ("need N2 is at base b2, not at b1", "需求 N2 属于服务基地 b2，不是 b1"),
    ("unit o1 neither claimed need N2 or N1 nor may claim it",
     "单位 o1 既未认领需求 N2 或 N1，也无权认领"),
    ("pairing 'p1' is with base b1, not b2", "结对 p1 的服务基地是 b1，不是 b2"),
    ("activity a1 has not been logged", "活动 a1 尚未记录"),
    ("unit o1 did not serve at activity a1", "单位 o1 没有参加活动 a1"),
    ("the session has ended: log in again", "登录已过期，请重新登录"),
    ("key:k1 sees organisation 'o1' and the units under it, not 'o2'",
     "只能查看本单位（o1）及其下属单位的数据，不能查看单位 o2"),
    ("account:a1 registers for organisation 'o1' and the units under it: name one of them by "
     "id in parent_id",
     "只能为本单位（o1）及其下属单位登记：请在 parent_id 中填写其中一个单位的编号"),
    ("empty file: send the photo's bytes", "文件是空的，请重新选择照片"),
    ("send one photo per request", "每次只能上传一张照片"),
    ("an organization named '淄博市委统战部' is already registered at the top level: o1; use "
     "that one, or give this one another name",
     "顶层已有名为“淄博市委统战部”的单位（o1），请使用该记录，或另取名称"),
    ("an organization named '民盟淄川区基层委员会' is already registered under the same "
     "parent: o2 (deactivated); use that one, or give this one another name",
     "同一上级单位下已有名为“民盟淄川区基层委员会”的单位（o2，已停用），请使用该记录，或另取名称"),
    ("'同名' is also the name of row 3 under the same parent",
     "与第 3 行同名（“同名”），同一上级单位下名称不能重复"),
])
def test_tongxins_own_refusals(english, chinese):
    assert rule_zh(english) == chinese
    assert localise([{"field": "data.x", "message": english}], chinese=True) == [
        {"field": "data.x", "message": chinese}]


def test_a_message_without_a_translation_stays_english():
    assert rule_zh("something new went wrong") is None
    assert localise([{"field": "", "message": "something new went wrong"}], chinese=True) == [
        {"field": "", "message": "something new went wrong"}]


def test_a_photo_of_another_kind_is_refused_in_chinese_too():
    """The wording the photo check really uses (not a copy of it) has its translation."""
    with pytest.raises(Rejected) as caught:
        Photos.check(SimpleNamespace(max_bytes=1024), b"GIF89a not a photo we take")
    zh = localise(caught.value.errors, chinese=True)
    assert zh == [{"field": "file",
                   "message": "不是 JPEG、PNG、WebP 格式的图片（按文件内容判断，而非文件名）"}]


async def test_the_403_scope_messages_read_in_chinese():
    """The refusal `check_within` really raises (a unit acting for another), translated."""
    async def parent_of(org: str) -> str | None:
        return None
    unit = Principal(kind="account", id="a1", name="联络员", role="unit", organization_id="o1")
    with pytest.raises(HTTPException) as caught:
        await check_within(unit, [("data.organization_id", "o2")], parent_of)
    assert caught.value.status_code == 403
    [zh] = localise(caught.value.detail, chinese=True)
    assert zh == {"field": "data.organization_id",
                  "message": "只能以本单位（o1）及其下属单位的名义提交，不能代表单位 o2"}


def test_pydantics_value_error_prefix_is_gone_in_both_languages():
    errors = errors_of(ActivityLogged, {
        "activity_id": "3f0a4a52-5a2e-4a8e-9d1c-0c8a3f5b6a01", "organization_id": "o",
        "base_id": "b", "title": "义诊", "theme": "other", "service_types": ["free_clinic"],
        "started_at": "2013-10-19T09:00:00+08:00", "ended_at": "2013-10-19T08:00:00+08:00",
        "volunteers": 1, "volunteer_hours": 1, "served": 1})
    en = {e["field"]: e["message"] for e in localise(errors, chinese=False)}
    zh = {e["field"]: e["message"] for e in localise(errors, chinese=True)}
    assert en["data.ended_at"] == "must not be before started_at"
    assert zh["data.ended_at"] == "结束时间不能早于开始时间"
    assert not [m for m in en.values() if "Value error" in m or "Assertion failed" in m], en
    assert plain("Value error, x") == "x" and plain("x, Value error") == "x, Value error"
