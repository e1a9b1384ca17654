"""Error messages in Chinese, for a request that asks for them (`Accept-Language: zh-CN`).

The API speaks English by default (outside systems match on its messages); a person filling a
form reads Chinese. The error body keeps its shape and its `field`s; only `message` changes.
Everything is in this one module: pydantic's error types by their `type` and `ctx` (so a new
pydantic wording changes nothing), and Tongxin's own refusals by their English wording (they
are written in one place each, in the rules). A message without a translation stays English:
better a true message in English than none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# -- which language ------------------------------------------------------------------------


def wants_chinese(accept_language: str | None) -> bool:
    """Whether the most preferred language of an `Accept-Language` header is Chinese
    (`zh`, `zh-CN`, `zh-Hans`, ...); `en-US,zh;q=0.5` stays English."""
    best, best_q = "", -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if tag and q > best_q:  # the first of equal weights wins, as browsers order them
            best, best_q = tag.lower(), q
    return best == "zh" or best.startswith("zh-")


# -- words used in several messages ---------------------------------------------------------

KINDS: dict[str, str] = {
    "organization": "单位", "base": "服务基地", "team": "服务团队", "pairing": "结对",
    "volunteer": "志愿者", "campaign": "敲门行动", "project": "项目", "region": "地区",
    "service type": "服务类型", "indicator": "指标", "team category": "团队类别",
}
STATES: dict[str, str] = {
    "open": "待认领", "claimed": "已认领", "resolved": "已解决", "closed": "已关闭",
    "scheduled": "已排班", "logged": "已记录", "retracted": "已撤回", "not logged": "未记录",
}
VERBS: dict[str, str] = {"claimed": "认领", "resolved": "标记解决", "returned": "退单"}


def _kind(word: str) -> str:
    return KINDS.get(word, word)


def _state(word: str) -> str:
    return STATES.get(word, word)


def _number(value: Any) -> str:
    """2 rather than 2.0; decimals as given."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _choices(expected: str) -> str:
    """pydantic's "'self', 'organiser' or 'import'" -> "'self'、'organiser' 或 'import'"."""
    return expected.replace(", ", "、").replace(" or ", " 或 ")


# -- pydantic's error types -----------------------------------------------------------------


def _too_short(ctx: Mapping[str, Any]) -> str:
    n = ctx.get("min_length", 1)
    return "不能为空" if n == 1 else f"至少 {n} 个字符"


PYDANTIC: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "missing": lambda c: "必填",
    "extra_forbidden": lambda c: "不接受此字段",
    "greater_than": lambda c: f"应大于 {_number(c.get('gt'))}",
    "greater_than_equal": lambda c: f"应不小于 {_number(c.get('ge'))}",
    "less_than": lambda c: f"应小于 {_number(c.get('lt'))}",
    "less_than_equal": lambda c: f"应不大于 {_number(c.get('le'))}",
    "string_too_short": _too_short,
    "string_too_long": lambda c: f"最多 {c.get('max_length')} 个字符",
    "too_short": lambda c: f"至少 {c.get('min_length')} 项",
    "too_long": lambda c: f"最多 {c.get('max_length')} 项",
    "string_type": lambda c: "应为文本",
    "string_pattern_mismatch": lambda c: "格式不对",
    "int_parsing": lambda c: "应为整数",
    "int_type": lambda c: "应为整数",
    "int_from_float": lambda c: "应为整数，不能有小数",
    "float_parsing": lambda c: "应为数字",
    "float_type": lambda c: "应为数字",
    "finite_number": lambda c: "应为有限的数字",
    "decimal_parsing": lambda c: "应为数字",
    "decimal_type": lambda c: "应为数字",
    "decimal_max_digits": lambda c: f"最多 {c.get('max_digits')} 位数字",
    "decimal_max_places": lambda c: f"小数最多 {c.get('decimal_places')} 位",
    "decimal_whole_digits": lambda c: f"整数部分最多 {c.get('whole_digits')} 位",
    "bool_parsing": lambda c: "应为是或否",
    "bool_type": lambda c: "应为是或否",
    "datetime_parsing": lambda c: "应为日期时间，如 2013-10-19T09:00:00+08:00",
    "datetime_from_date_parsing": lambda c: "应为日期时间，如 2013-10-19T09:00:00+08:00",
    "datetime_type": lambda c: "应为日期时间，如 2013-10-19T09:00:00+08:00",
    "timezone_aware": lambda c: "应带时区，如 +08:00",
    "date_parsing": lambda c: "应为日期，如 2013-10-19",
    "date_from_datetime_parsing": lambda c: "应为日期，如 2013-10-19",
    "date_from_datetime_inexact": lambda c: "应为日期，不含时刻",
    "date_type": lambda c: "应为日期，如 2013-10-19",
    "uuid_parsing": lambda c: "应为 UUID",
    "uuid_type": lambda c: "应为 UUID",
    "literal_error": lambda c: f"应为以下之一：{_choices(str(c.get('expected', '')))}",
    "enum": lambda c: f"应为以下之一：{_choices(str(c.get('expected', '')))}",
    "list_type": lambda c: "应为列表",
    "dict_type": lambda c: "应为对象",
    "model_type": lambda c: "应为对象",
    "model_attributes_type": lambda c: "应为对象",
    "json_invalid": lambda c: "不是有效的 JSON",
    "json_type": lambda c: "不是有效的 JSON",
    "multiple_of": lambda c: f"应为 {_number(c.get('multiple_of'))} 的倍数",
}


# -- Tongxin's own refusals (English wording -> Chinese) -------------------------------------
# Each pattern matches one message written in the rules, auth or the service; its groups are
# the ids and figures in it. Order matters only where one pattern would also match another's.

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def _rule(pattern: str, make: Callable[[re.Match[str]], str]) -> Rule:
    return re.compile(pattern + r"\Z", re.DOTALL), make


RULES: list[Rule] = [
    # validation beyond pydantic's own (shared/events.py, shared/dates.py, shared/text.py)
    _rule(r"must not be before started_at", lambda m: "结束时间不能早于开始时间"),
    _rule(r"must not be before starts_on", lambda m: "结束日期不能早于开始日期"),
    _rule(r"must be the sum of the stalls' served \((\d+)\), or be left out",
          lambda m: f"应等于各摊位服务人次之和（{m[1]}），或留空"),
    _rule(r"must be the stalls' service types (.+) \(or be left out\)",
          lambda m: f"应与各摊位的服务类型一致 {m[1]}（或留空）"),
    _rule(r"at least one service type is required", lambda m: "至少选择一种服务类型"),
    _rule(r"the stalls have (\d+) service types; at most 60",
          lambda m: f"各摊位共有 {m[1]} 种服务类型，最多 60 种"),
    _rule(r"the stalls' served add up to (\d+); at most (\d+)",
          lambda m: f"各摊位服务人次合计 {m[1]}，最多 {m[2]}"),
    _rule(r"required", lambda m: "必填"),
    _rule(r"must be between 1900-01-01 and 2100-12-31", lambda m: "应在 1900 年至 2100 年之间"),
    _rule(r"looks like a phone or ID number; .*",
          lambda m: "疑似手机号或身份证号：群众的个人信息留在收集它的渠道，不得录入同心"),
    _rule(r"must not contain NUL .*", lambda m: "不能包含 NUL 字符"),
    _rule(r"is less than the (\d+) distinct household_keys given",
          lambda m: f"少于所填的 {m[1]} 个不同户号"),
    # names (services/registry/service.py)
    _rule(r"an? (\w+) named '(.*)' is already registered (under the same parent|at the top "
          r"level): (\S+?)( \(deactivated\))?; use that one, or give this one another name",
          lambda m: f"{'同一上级单位下' if m[3].startswith('under') else '顶层'}已有名为"
                    f"“{m[2]}”的{_kind(m[1])}（{m[4]}{'，已停用' if m[5] else ''}），"
                    "请使用该记录，或另取名称"),
    _rule(r"'(.*)' is also the name of row (\d+) (under the same parent|at the top level)",
          lambda m: f"与第 {m[2]} 行同名（“{m[1]}”），"
                    f"{'同一上级单位下' if m[3].startswith('under') else '顶层'}名称不能重复"),
    # references (services/events/service.py)
    _rule(r"no (.+?) '(.*)' is known to the registry",
          lambda m: f"登记库中没有此{_kind(m[1])}（{m[2]}）"),
    _rule(r"(.+?) '(.*)' is deactivated", lambda m: f"此{_kind(m[1])}已停用（{m[2]}）"),
    # scope and roles (shared/auth.py, services/events/access.py)
    _rule(r"\S+ acts for organisation '(.*)' and the units under it, not '(.*)'",
          lambda m: f"只能以本单位（{m[1]}）及其下属单位的名义提交，不能代表单位 {m[2]}"),
    _rule(r"only an organiser of the unit confirms or declines its volunteers' hours, not "
          r"a (\w+)", lambda m: "只有本单位的组织者才能确认或驳回志愿者的服务时长"),
    _rule(r"only an organiser of the unit approves its figures, not a (\w+)",
          lambda m: "只有本单位的组织者才能审定其数据"),
    _rule(r"\S+ approves the figures of organisation '(.*)' or a unit under it: name it",
          lambda m: f"只能审定本单位（{m[1]}）或其下属单位的数据：请填写单位编号"),
    _rule(r"is not a month \(2026-11\), a quarter \(2026-Q4\) or a year \(2026\)",
          lambda m: "不是月份（2026-11）、季度（2026-Q4）或年份（2026）"),
    _rule(r"an approval's scope is a unit or a region, not both",
          lambda m: "审定范围是一个单位或一个区域，不能同时填写"),
    # approved figures (services/reporting/models/approvals.py)
    _rule(r"the figures as approved are kept by unit: use group_by=organization",
          lambda m: "审定数据按单位保存：请使用 group_by=organization"),
    _rule(r"this scope's month, quarter or year has not been approved.*",
          lambda m: "该范围的此月、季度或年度尚未审定"
                    "（请填写单位或区域，以及恰为一个期间的起止日期）"),
    _rule(r"\S+ sees organisation '(.*)' and the units under it, not '(.*)'",
          lambda m: f"只能查看本单位（{m[1]}）及其下属单位的数据，不能查看单位 {m[2]}"),
    _rule(r"\S+ registers for organisation '(.*)' and the units under it: name one of them "
          r"by id in (\w+)",
          lambda m: f"只能为本单位（{m[1]}）及其下属单位登记："
                    f"请在 {m[2]} 中填写其中一个单位的编号"),
    _rule(r"contact details are only for an organiser of the volunteer's own organisation",
          lambda m: "只有志愿者所在单位的组织者才能查看其联系方式"),
    _rule(r"a (\w+) may not (\w+) (\S+) \(for: (.*)\)",
          lambda m: f"{m[1]} 角色无权执行 {m[2]} {m[3]}（限：{m[4]}）"),
    _rule(r"a key \(.*\) or a login is required", lambda m: "请先登录，或提供密钥"),
    _rule(r"the session has ended: log in again", lambda m: "登录已过期，请重新登录"),
    _rule(r"this key is not valid .*", lambda m: "密钥无效（未知、有误或已吊销）"),
    # activities (services/events/rules/activities.py)
    _rule(r"activity (\S+) was already logged \(event (\S+)\); send activity.corrected .*",
          lambda m: f"活动 {m[1]} 已记录过（事件 {m[2]}）；要修改数字请提交更正"),
    _rule(r"activity (\S+) was retracted; it cannot be logged again",
          lambda m: f"活动 {m[1]} 已撤回，不能再次记录"),
    _rule(r"activity (\S+) is already (\w+); a rota entry cannot replace it",
          lambda m: f"活动 {m[1]} {_state(m[2])}，排班不能替换它"),
    _rule(r"activity (\S+) has not been logged; only a logged activity can be corrected",
          lambda m: f"活动 {m[1]} 尚未记录，只有已记录的活动才能更正"),
    _rule(r"activity (\S+) was retracted; a retracted activity cannot be corrected",
          lambda m: f"活动 {m[1]} 已撤回，不能更正"),
    _rule(r"activity (\S+) has not been logged or scheduled",
          lambda m: f"活动 {m[1]} 尚未记录或排班"),
    _rule(r"activity (\S+) was already retracted", lambda m: f"活动 {m[1]} 已撤回"),
    _rule(r"team '(.*)' belongs to another organisation \((.*)\)",
          lambda m: f"服务团队 {m[1]} 属于另一个单位（{m[2]}）"),
    _rule(r"pairing '?(.*?)'? is with base (\S+), not (?:with )?(\S+)",
          lambda m: f"结对 {m[1]} 的服务基地是 {m[2]}，不是 {m[3]}"),
    _rule(r"([\d.]+) h is more than the activity's ([\d.]+) h × (\d+) turn-outs \(([\d.]+) h\)",
          lambda m: f"{m[1]} 小时超过了活动时长 {m[2]} 小时 × {m[3]} 人次（{m[4]} 小时）"),
    _rule(r"is more than ([\d.]+) h in the future \(now: (.+)\); a record cannot be dated "
          r"ahead", lambda m: f"晚于现在超过 {m[1]} 小时（现在是 {m[2]}），不能记录尚未发生的事"),
    _rule(r"pairing '(.*)' is unit (\S+)'s, not this activity's",
          lambda m: f"结对 {m[1]} 属于单位 {m[2]}，不属于本活动的单位"),
    # attendance (services/events/rules/attendance.py)
    _rule(r"activity (\S+) has not been logged; .*", lambda m: f"活动 {m[1]} 尚未记录"),
    _rule(r"activity (\S+) was retracted", lambda m: f"活动 {m[1]} 已撤回"),
    _rule(r"([\d.]+) h is longer than the activity \(([\d.]+) h\)",
          lambda m: f"{m[1]} 小时超过了活动时长（{m[2]} 小时）"),
    _rule(r"volunteer (\S+) is recorded at activity (\S+) \((.+)\), which overlaps this one",
          lambda m: f"该志愿者已登记在时间重叠的另一活动 {m[2]}（{m[3]}）"),
    _rule(r"no hours are recorded for volunteer (\S+) at activity (\S+)",
          lambda m: f"该志愿者在活动 {m[2]} 没有登记时长"),
    _rule(r"these hours are already (\w+)", lambda m: "这些时长已处理过"),
    # sign-in hours (shared/events.py, services/events/rules/attendance.py, sign_in.py)
    _rule(r"only a sign-in \(method sign_in\) carries signed times",
          lambda m: "只有签到（method 为 sign_in）才带签到、签退时间"),
    _rule(r"a sign-out needs signed_in_at", lambda m: "签退需要签到时间 signed_in_at"),
    _rule(r"an open sign-in \(no signed_out_at\) has no hours: they are what is signed",
          lambda m: "尚未签退的签到没有时长：时长以签到、签退的时间为准"),
    _rule(r"must not be before signed_in_at", lambda m: "签退时间不能早于签到时间"),
    _rule(r"must be after signed_in_at", lambda m: "签退时间应晚于签到时间"),
    _rule(r"is more than (\d+) h after signed_in_at", lambda m: f"签退晚于签到超过 {m[1]} 小时"),
    _rule(r"must be the signed span \(([\d.]+) h\), or be left out",
          lambda m: f"应等于签到至签退的时长（{m[1]} 小时），或留空"),
    _rule(r"(.+) is outside the activity's time \((.+)\); sign in and out while it runs",
          lambda m: f"{m[1]} 不在活动时间内（{m[2]}），请在活动进行时签到、签退"),
    _rule(r"volunteer (\S+) already signed out of activity (\S+) at (\S+)",
          lambda m: f"该志愿者已于 {m[3]} 在活动 {m[2]} 签退"),
    _rule(r"volunteer (\S+) has not signed out of activity (\S+): there are no signed hours "
          r"to confirm .*", lambda m: f"该志愿者尚未在活动 {m[2]} 签退，没有可确认的签到时长"
                                      "（可由组织者录入时长）"),
    _rule(r"no sign-in page has the code (\S+)", lambda m: f"没有签到码为 {m[1]} 的签到页"),
    _rule(r"no volunteer with the number or code '(.*)' is registered",
          lambda m: f"登记库中没有编号为“{m[1]}”的志愿者"),
    _rule(r"you have not signed in to this activity; sign in first",
          lambda m: "您尚未在本活动签到，请先签到"),
    _rule(r"you already signed out at (\S+)", lambda m: f"您已于 {m[1]} 签退"),
    _rule(r"is (\d+) m from the base; sign in within (\d+) m of it",
          lambda m: f"距服务基地 {m[1]} 米，请在基地 {m[2]} 米以内签到"),
    # needs (services/events/rules/needs.py)
    _rule(r"need (.+) was already submitted \(it is (\w+)\)",
          lambda m: f"需求 {m[1]} 已提交过（当前{_state(m[2])}）"),
    _rule(r"need (.+) is (\w+)(?: by (\S+))?; only an open need can be claimed",
          lambda m: f"需求 {m[1]} 当前{_state(m[2])}" + (f"（认领单位 {m[3]}）" if m[3] else "")
          + "，只有待认领的需求才能认领"),
    _rule(r"need (.+) is under pairing (\S+); only its unit (\S+) can claim it",
          lambda m: f"需求 {m[1]} 属于结对 {m[2]}，只有该结对的单位 {m[3]} 才能认领"),
    _rule(r"unit (\S+) is not paired with base (\S+); only a paired unit can claim its needs",
          lambda m: f"单位 {m[1]} 未与服务基地 {m[2]} 结对，只有结对单位才能认领其需求"),
    _rule(r"need (.+) is closed; reopen it to follow it up",
          lambda m: f"需求 {m[1]} 已关闭，请先重新打开再跟踪落实"),
    _rule(r"activity (\S+) is (scheduled|retracted|not logged)",
          lambda m: f"活动 {m[1]} {_state(m[2])}"),
    _rule(r"need (.+) is already closed", lambda m: f"需求 {m[1]} 已关闭"),
    _rule(r"need (.+) is (\w+); it can be closed as confirmed only after it is resolved",
          lambda m: f"需求 {m[1]} 当前{_state(m[2])}，解决后才能确认关闭"),
    _rule(r"need (.+) is (\w+); only a resolved or closed need can be reopened",
          lambda m: f"需求 {m[1]} 当前{_state(m[2])}，只有已解决或已关闭的需求才能重新打开"),
    _rule(r"need (.+) has not been submitted", lambda m: f"需求 {m[1]} 尚未提交"),
    _rule(r"need (.+) is (\w+); only a claimed need can be (\w+)",
          lambda m: f"需求 {m[1]} 当前{_state(m[2])}，只有已认领的需求才能"
                    f"{VERBS.get(m[3], m[3])}"),
    _rule(r"need (.+) was claimed by (\S+), not by (\S+)",
          lambda m: f"需求 {m[1]} 由单位 {m[2]} 认领，不是 {m[3]}"),
    _rule(r"need (.+) is (\w+); only a resolved or closed need can be answered",
          lambda m: f"需求 {m[1]} 当前{_state(m[2])}，只有已解决或已关闭的需求才能评价"),
    _rule(r"need (.+) cannot repeat itself", lambda m: f"需求 {m[1]} 不能关联到其自身"),
    _rule(r"need (.+) is (\w+); only an open or claimed need can be linked to another",
          lambda m: f"需求 {m[1]} 当前{_state(m[2])}，只有待认领或已认领的需求才能关联为重复件"),
    _rule(r"need (.+) is closed; a need can be linked only to one not closed",
          lambda m: f"需求 {m[1]} 已关闭，只能关联到未关闭的需求"),
    _rule(r"need (.+) is at base (\S+), not at (\S+)",
          lambda m: f"需求 {m[1]} 属于服务基地 {m[2]}，不是 {m[3]}"),
    _rule(r"unit (\S+) neither claimed need (\S+) or (\S+) nor may claim it",
          lambda m: f"单位 {m[1]} 既未认领需求 {m[2]} 或 {m[3]}，也无权认领"),
    # reports (services/events/rules/reports.py) and photos (services/events/photos.py)
    _rule(r"activity (\S+) has not been logged", lambda m: f"活动 {m[1]} 尚未记录"),
    _rule(r"activity (\S+) was retracted; no report is owed",
          lambda m: f"活动 {m[1]} 已撤回，无需报告"),
    _rule(r"unit (\S+) did not serve at activity (\S+)",
          lambda m: f"单位 {m[1]} 没有参加活动 {m[2]}"),
    _rule(r"no photo (\S+) was uploaded \(POST /v1/photos first\)",
          lambda m: "这张照片尚未上传，请先上传"),
    _rule(r"activity (\S+) owes no report now", lambda m: f"活动 {m[1]} 目前无需报告"),
    _rule(r"larger than (.+): a photo may be at most (\d+) bytes; .*",
          lambda m: f"照片超过 {m[1]}，请换一张更小或压缩过的"),
    _rule(r"not a (.+) image: the file's bytes were checked, not its name",
          lambda m: f"不是 {_choices(m[1])} 格式的图片（按文件内容判断，而非文件名）"),
    _rule(r"empty file: send the photo's bytes", lambda m: "文件是空的，请重新选择照片"),
    _rule(r"send one photo per request", lambda m: "每次只能上传一张照片"),
    _rule(r"not valid multipart/form-data",
          lambda m: "上传的内容格式不对（应为 multipart/form-data）"),
    _rule(r"send the photo as multipart/form-data in a field named `file`",
          lambda m: "请以 multipart/form-data 上传照片，字段名为 file"),
    _rule(r"required: the photo, in a multipart field named `file`",
          lambda m: "必填：请选择要上传的照片"),
    # the envelope and the service (services/events/domain.py, service.py, shared/http.py)
    _rule(r"event (\S+) was accepted earlier with other data.*",
          lambda m: f"事件 {m[1]} 之前已用不同的内容提交过；新事件请用新的编号"),
    _rule(r"not valid JSON: .*", lambda m: "不是有效的 JSON"),
    _rule(r"unavailable: .*", lambda m: "数据库或 NATS 暂时无法连接，请稍后再试"),
    _rule(r"busy: .*", lambda m: "系统繁忙，请稍后再试"),
    _rule(r"internal error", lambda m: "内部错误"),
    _rule(r"the session could not be ended everywhere: try again",
          lambda m: "会话未能在所有服务上结束，请重试"),
]


def rule_zh(message: str) -> str | None:
    """The Chinese of one of Tongxin's own messages, or None if it has none."""
    text = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    for pattern, make in RULES:
        if m := pattern.match(text):
            return make(m)
    return None


def pydantic_zh(kind: str | None, ctx: Mapping[str, Any] | None, message: str) -> str | None:
    """The Chinese of a pydantic error: by its type; a `value_error` by the message of ours
    it carries."""
    if kind in ("value_error", "assertion_error") or kind not in PYDANTIC:
        return rule_zh(message)
    return PYDANTIC[kind](ctx or {})


def message_zh(error: Any) -> str:
    """One error's message in Chinese: a `FieldError` (which may remember the pydantic error
    it came from) or a `{"field", "message"}` dict; untranslated ones stay as they are."""
    if isinstance(error, Mapping):
        message, source = str(error.get("message", "")), error.get("source")
    else:
        message, source = error.message, getattr(error, "source", None)
    if source is not None:
        found = pydantic_zh(source.get("type"), source.get("ctx"), message)
    else:
        found = rule_zh(message)
    return found or message


def localise(errors: Iterable[Any], chinese: bool) -> list[dict[str, str]]:
    """The error body's list, with Chinese messages if `chinese`."""
    out = []
    for e in errors:
        field = str(e.get("field", "")) if isinstance(e, Mapping) else e.field
        message = str(e.get("message", "")) if isinstance(e, Mapping) else e.message
        out.append({"field": field, "message": message_zh(e) if chinese else message})
    return out
