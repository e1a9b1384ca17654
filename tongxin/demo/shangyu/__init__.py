"""Shangyu, 2010 (seed 004): the “星期六机关党员义工服务日”. The organisation department and the
organs' work committee put 68 city units on a Saturday rota (once a year each, in turn) to
serve in town and country under four themes (城市提质、新农村建设、和谐社会建设、企业转型升级).
A unit fetches the service flag in the week of its turn and returns it the week after with a
summary and photos (服务旗帜接传); the committee inspects, names units in notices, and counts it
all in the year-end assessment (先进集体、先进个人). Problems that cannot be solved on the day
go to a named person (落实专人跟踪落实).

What the article tells is written out: the construction bureau's five squads, the supply and
marketing cooperative at 南穴村 for spring ploughing, five units cleaning up 舜水新村, the
science bureau's policies for 40-odd enterprises at 曹娥, the drug administration clearing
family medicine chests in 金桂苑 and two other communities (200-odd expired boxes, 800-odd
residents), the tax bureau's quarterly first Sundays. The other 61 units, the dates of their
turns, and which units reported late, never reported or never came are not in the article:
they are spread here, and the registers mark them. (The same article's Yuecheng figures,
12,456 members out on 26 June, are another district's day and are left out.)

The activities whose reports never came are posted live, after the history, so the events
service's deadline sweep finds them overdue and the units are named in notices, as the
committee's were; everything else goes in as history.
"""

from __future__ import annotations

from datetime import date, timedelta

from tongxin.demo.build import (
    activity,
    at,
    attendance,
    need,
    register,
    report,
    scheduled,
    spread,
)

ROTA_UNITS = 68
FIRST_SATURDAY, LAST_SATURDAY = date(2010, 3, 6), date(2010, 12, 18)
PUBLISHED = date(2010, 2, 26)  # the rota is published before the first Saturday
DRUG_SERVED, DRUG_BOXES = 812, 206  # 服务居民800多人, 回收过期失效药品200多盒(瓶)
# The other units at 舜水新村 (“市直机关工委、上虞日报社等5家单位”): not named; three chosen.
SHUNSHUI_OTHERS = ("上虞市文化广电新闻出版局", "上虞市城市管理行政执法局", "上虞市环境保护局")
# Positions among the unnamed units' turns (chosen: the article names no unit) of those that
# never came, whose report never came (named overdue), and whose report came late.
MISSED = (17, 44)
MISSING = (5, 23, 38, 51)
LATE = (9, 14, 30, 47, 55)

# What the unnamed units did on their Saturdays, by theme: the article's lists of services.
THEMES = [
    ("city_quality", ["policy_outreach", "cleanup"], ["sy-bg2", "sy-bg3", "sy-bg4", "sy-ce1"],
     ["文明城市创建宣传", "净化、绿化、美化环境", "环境保护知识宣传"]),
    ("new_countryside", ["training", "culture"], ["sy-lh1", "sy-lh2", "sy-nanxue"],
     ["时政宣讲、农技推广", "村庄整治", "文化下乡", "教育培训"]),
    ("harmonious_society", ["repair", "legal_aid", "free_clinic"],
     ["sy-bg5", "sy-bg6", "sy-ce2", "sy-shunshui"],
     ["家电维修、法律援助", "帮教助学、医疗保健", "民事调解、扶贫济困", "环境整治、社区共建"]),
    ("enterprise_upgrade", ["policy_outreach", "consultation"], ["sy-caoe-qiye"],
     ["法规宣传、政策咨询", "技能培训、职工维权", "项目推进、帮困解难"]),
]


def _saturdays() -> list[date]:
    days, day = [], FIRST_SATURDAY
    while day <= LAST_SATURDAY:
        days.append(day)
        day += timedelta(days=7)
    return days


def _units() -> dict[str, str]:
    return {r["单位名称"]: r["单位编码"] for r in register(__name__, "organizations")}


def _named() -> list[dict]:
    """The rota turns the article describes (dates plausible: spring ploughing in March)."""
    units = _units()
    cleanup = ["sy-jggw", "sy-rbs", *(units[n] for n in SHUNSHUI_OTHERS)]
    turns = [
        dict(key="gxs", organization="sy-gxs", base="sy-nanxue", day=date(2010, 3, 20),
             title="帮助农民开展春耕备耕，指导促进农业生产", theme="new_countryside",
             service_types=["training", "consultation"], volunteers=16, served=95,
             pairing="sy-p-nanxue"),
        dict(key="jsj", organization="sy-jsj", base="sy-bg1", day=date(2010, 4, 17),
             title="结合省级文明示范城市创建：政策咨询、环卫应急、绿化养护、市政抢修等5个小分队义工服务",
             theme="city_quality", service_types=["policy_outreach", "cleanup", "repair"],
             volunteers=40, served=260),
        *(dict(key=f"shunshui-{unit}", organization=unit, base="sy-shunshui",
               day=date(2010, 5, 15),
               title="舜水新村环境整治（市直机关党工委、上虞日报社等5家单位联合）",
               theme="harmonious_society", service_types=["cleanup"], volunteers=12, served=70)
          for unit in cleanup),
        dict(key="kjj", organization="sy-kjj", base="sy-caoe-qiye", day=date(2010, 6, 12),
             title="“送政策助转型”：介绍科技项目申报、专利申请保护和最新科技政策",
             theme="enterprise_upgrade", service_types=["policy_outreach", "consultation"],
             volunteers=10, served=60, outputs={"enterprises_served": 42}),
    ]
    # The drug administration's turn at 金桂苑, then the two other communities that asked.
    drug = [("sy-jinguiyuan", date(2010, 7, 10)), ("sy-c01", date(2010, 7, 21)),
            ("sy-c02", date(2010, 8, 4))]
    for (base, day), served, boxes in zip(drug, spread(DRUG_SERVED, 3), spread(DRUG_BOXES, 3),
                                          strict=True):
        turns.append(dict(
            key=f"yjj-{base}", organization="sy-yjj", base=base, day=day,
            title="家庭小药箱清理、健康咨询", theme="harmonious_society",
            service_types=["free_clinic", "consultation"], volunteers=8, served=served,
            outputs={"expired_medicines_collected": boxes},
            pairing="sy-p-jinguiyuan" if base == "sy-jinguiyuan" else None,
            rota=base == "sy-jinguiyuan"))
    turns.append(dict(key="gsj", organization="sy-gsj", base="sy-bg1", day=date(2010, 9, 11),
                      title="纳税服务进社区", theme="harmonious_society",
                      service_types=["consultation"], volunteers=12, served=85,
                      pairing="sy-p-bg1"))
    # The tax bureau's own day besides (每季度第一个星期日): not rota turns.
    for quarter, day in enumerate((date(2010, 1, 3), date(2010, 4, 4), date(2010, 7, 4),
                                   date(2010, 10, 3)), 1):
        turns.append(dict(key=f"gsj-sunday-q{quarter}", organization="sy-gsj", base="sy-bg1",
                          day=day,
                          title="党员义工服务活动日：社区共建、纳税服务、美化环境、结对帮扶",
                          theme="harmonious_society", service_types=["consultation", "cleanup"],
                          volunteers=10, served=40 + 5 * quarter, pairing="sy-p-bg1",
                          rota=False))
    return turns


def _unnamed() -> list[dict]:
    """The other units' turns, one Saturday each in order, themes and places in turn."""
    named = {t["organization"] for t in _named()}
    units = [code for code in _units().values() if code not in named and code != "sy-zzb"]
    assert len(units) + len(named) == ROTA_UNITS
    saturdays = _saturdays()
    turns = []
    for j, unit in enumerate(units):
        theme, types, bases, titles = THEMES[j % len(THEMES)]
        turns.append(dict(key=f"u-{unit}", organization=unit, base=bases[j % len(bases)],
                          day=saturdays[j * len(saturdays) // len(units)],
                          title=f"星期六机关党员义工服务日：{titles[j % len(titles)]}",
                          theme=theme, service_types=types, volunteers=8 + j % 15,
                          served=30 + (j * 17) % 120, position=j))
    return turns


def _logged(turn: dict) -> dict:
    start = at(turn["day"], "08:30")
    return activity(f"shangyu-2010-{turn['key']}", organization=turn["organization"],
                    base=turn["base"], title=turn["title"], theme=turn["theme"],
                    service_types=turn["service_types"], start=start,
                    end=at(turn["day"], "11:30"), volunteers=turn["volunteers"],
                    volunteer_hours=3 * turn["volunteers"], served=turn["served"],
                    outputs=turn.get("outputs"), pairing=turn.get("pairing"))


def _rota(turn: dict) -> dict:
    return scheduled(f"shangyu-2010-{turn['key']}", organization=turn["organization"],
                     base=turn["base"], title=turn["title"], theme=turn["theme"],
                     service_types=turn["service_types"], planned_on=turn["day"],
                     published_on=PUBLISHED)


def _returned(logged: dict, position: int | None = None) -> dict:
    """The flag back with summary and photos, the week after; late turns weeks later."""
    if position is None:  # the turns the article tells of
        days = 4
    else:
        days = 9 + position % 12 if position in LATE else 3 + position % 4
    return report(logged, "义工服务小结及照片（服务旗帜已归还）", after_days=days)


def history() -> list[dict]:
    events = []
    volunteers: dict[str, list[str]] = {}
    for r in register(__name__, "volunteers"):
        volunteers.setdefault(r["单位编码"], []).append(r["志愿者编码"])
    logged_by_key = {}
    for turn in _named():
        if turn.get("rota", True):
            events.append(_rota(turn))
        logged = logged_by_key[turn["key"]] = _logged(turn)
        events += [logged, _returned(logged)]
        events += [attendance(logged, v) for v in volunteers.get(turn["organization"], [])]
    for turn in _unnamed():
        events.append(_rota(turn))
        if turn["position"] in MISSED or turn["position"] in MISSING:
            continue  # never came; or came, and is posted live (below)
        logged = _logged(turn)
        events += [logged, _returned(logged, turn["position"])]
    events += _needs()
    return events


def live() -> list[dict]:
    """The turns served whose flag and summary never came back."""
    return [_logged(t) for t in _unnamed() if t["position"] in MISSING]


def _needs() -> list[dict]:
    """Problems met on the day and not solved there, each with its named person. The third is
    still open at the year's end (plausible; the article names no case), so the follow-up
    report has one overdue."""
    return [
        *need("sy-nanxue-n1", base="sy-nanxue", pairing="sy-p-nanxue",
              title="春耕灌溉水渠清淤", category="repair", channel="unit",
              submitted=at("2010-03-20", "12:00"), claimed_by="sy-gxs",
              claimed=at("2010-03-22"), followup=("sy-gxs-v1", date(2010, 4, 10),
                                                  "联系镇水利站，春耕前完成清淤"),
              resolved=at("2010-04-08"), closed=at("2010-04-12")),
        *need("sy-jinguiyuan-n1", base="sy-jinguiyuan", pairing="sy-p-jinguiyuan",
              title="独居老人过期药品定期清理和用药指导", category="free_clinic",
              channel="unit", submitted=at("2010-07-10", "12:00"), claimed_by="sy-yjj",
              claimed=at("2010-07-12"), followup=("sy-yjj-v1", date(2010, 9, 30),
                                                  "每月上门一次，跟踪落实"),
              resolved=at("2010-09-18"), closed=at("2010-09-25")),
        *need("sy-bg1-n1", base="sy-bg1", pairing="sy-p-bg1",
              title="社区小微企业和个体户办税咨询点", category="consultation", channel="unit",
              submitted=at("2010-09-11", "12:00"), claimed_by="sy-gsj",
              claimed=at("2010-09-13"), followup=("sy-gsj-v1", date(2010, 11, 30),
                                                  "与地税局协调设点")),
    ]


def pairing_lists() -> dict[str, dict]:
    return {
        "sy-p-nanxue": {"needs": [{"id": "n1", "title": "春耕灌溉水渠清淤"}],
                        "resources": [{"id": "r1", "title": "农资供应和农技指导"}],
                        "projects": [{"id": "p1", "title": "春耕备耕帮扶", "status": "done"}]},
        "sy-p-jinguiyuan": {"needs": [{"id": "n1", "title": "独居老人用药指导"}],
                            "resources": [{"id": "r1", "title": "药品安全专业人员"}],
                            "projects": [{"id": "p1", "title": "家庭小药箱清理",
                                          "status": "done"}]},
        "sy-p-bg1": {"needs": [{"id": "n1", "title": "小微企业和个体户办税咨询"}],
                     "resources": [{"id": "r1", "title": "纳税服务党员义工"}],
                     "projects": [{"id": "p1", "title": "每季度第一个星期日党员义工服务活动日",
                                   "status": "in_progress"}]},
    }


def overdue_units() -> list[str]:
    """Codes of the units whose report never came: the ones notices must name."""
    return [t["organization"] for t in _unnamed() if t["position"] in MISSING]
