"""Zhenjiang, 2021 (seed 001, 交汇点): the city organs' work committee (市委市级机关工委) and its
party-member volunteers.

- 18 June: on 鉴园广场, 51 booths of the city's departments, “市县联动聚合力，我为群众办实事”,
  served nearly 10,000 people.
- 1–3 August, the door-knocking drive (敲门行动, “不漏一户、不漏一人”): nearly 2,400 volunteers
  in 20 towns and streets, 140-odd communities; the committee itself at 红豆江南府邸 and, on the
  Sunday, at 西津渡社区, its partner in a party-building alliance, where it has helped with
  four problems.
- 72 departments paired with 72 key enterprises (“助力‘镇合意’，服务先锋行”), 310-odd problems
  solved for them.

The article names seven of the fair's departments and none of the 72 enterprises or the
communities; the registers say which records stand in for those it only counts.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tongxin.demo.build import (
    activity,
    at,
    attendance,
    days_after,
    need,
    register,
    report,
    spread,
    visit,
)

FAIR_SERVED = 9_860      # 共服务群众近万人次
FAIR_BOOTHS = 51         # 搭起51个咨询展台
VOLUNTEERS = 2_390       # 近2400名市级机关党员志愿者
PROBLEMS_SOLVED = 312    # 为企业解难题310多个
CAMPAIGN = "zj-knock-2021"
DAYS = [date(2021, 8, 1), date(2021, 8, 2), date(2021, 8, 3)]

# The fair's booths the article describes: unit -> (service type, what the booth offered).
NAMED_BOOTHS = {
    "zj-rsj": ("consultation", "就业、人才、社保、劳动维权政策咨询"),
    "zj-mzj": ("consultation", "救助、养老政策咨询"),
    "zj-wjw": ("free_clinic", "医卫专家义诊"),
    "zj-sfj": ("legal_aid", "法律援助"),
    "zj-scjgj": ("consultation", "食品、药品、消费维权咨询"),
    "zj-tyj": ("other", "体质测试"),
    "zj-nyncj": ("other", "地产知名茶叶品尝体验"),
}
# The other 44 booths: the article does not say whose or what; departments whose work makes
# an obvious booth have it, the rest explain their policies.
OTHER_BOOTHS = {"zj-gaj": "culture", "zj-kx": "culture", "zj-wglj": "culture",
                "zj-hszh": "training", "zj-tsw": "culture"}


def _short(name: str) -> str:
    for prefix in ("国家税务总局镇江市", "中共镇江市委", "镇江市", "镇江"):
        name = name.removeprefix(prefix)
    return name


def _fair() -> dict:
    units = {r["单位编码"]: r["单位名称"] for r in register(__name__, "organizations")
             if r["单位编码"] != "zj-gwei"}
    booths = list(NAMED_BOOTHS) + [u for u in units if u not in NAMED_BOOTHS]
    booths = booths[:FAIR_BOOTHS]
    served = spread(FAIR_SERVED, FAIR_BOOTHS, seed=3)
    stalls: list[dict[str, Any]] = []
    for i, unit in enumerate(booths):
        kind, offer = NAMED_BOOTHS.get(unit) or (OTHER_BOOTHS.get(unit, "policy_outreach"),
                                                 "政策宣传咨询")
        stalls.append({"service_type": kind, "served": served[i], "organization_id": unit,
                       "title": f"{_short(units[unit])}：{offer}", "volunteers": 3 + i % 4})
    volunteers = sum(s["volunteers"] for s in stalls)
    return activity(
        "zhenjiang-2021-jianyuan-fair", organization="zj-gwei", base="zj-jianyuan",
        title="“市县联动聚合力，我为群众办实事”主题活动", theme="harmonious_society",
        start=at("2021-06-18", "08:30"), end=at("2021-06-18", "16:30"), volunteers=volunteers,
        volunteer_hours=8 * volunteers, stalls=stalls,
        summary="鉴园广场搭起51个咨询展台，摆出86块宣传展板，共服务群众近万人次")


# The alliance with 西津渡社区: what the article says the committee did there. Dates other
# than the door-knocking Sunday and the centenary are not given; these are plausible.
ALLIANCE: list[dict[str, Any]] = [
    dict(key="zhenjiang-2021-xijindu-corner", title="帮助社区设立党史学习角，出资购买党史书籍",
         service_types=["culture", "donation"], theme="harmonious_society",
         start=at("2021-04-10", "09:00"), end=at("2021-04-10", "11:30"), volunteers=12,
         served=60, project="p2",
         donations=[{"item": "党史书籍", "quantity": 1, "unit": "批", "value_cny": 0}]),
    dict(key="zhenjiang-2021-xijindu-lectures",
         title="微党课进社区：赵亚夫、郭昭昭、周嘉祥为联盟单位党员、社区群众、青年党员讲党史",
         service_types=["policy_outreach"], theme="harmonious_society",
         start=at("2021-05-15", "14:30"), end=at("2021-05-15", "16:30"), volunteers=8,
         served=150, project="p1"),
    dict(key="zhenjiang-2021-xijindu-gala",
         title="庆祝建党100周年文艺汇演（与省委办公厅党群处等单位联合举办）",
         service_types=["culture"], theme="harmonious_society",
         start=at("2021-06-28", "19:00"), end=at("2021-06-28", "21:00"), volunteers=30,
         served=420, project="p3"),
    dict(key="zhenjiang-2021-xijindu-council", title="推动社区建立联席会议制度：首次联席会议",
         service_types=["consultation"], theme="harmonious_society",
         start=at("2021-07-09", "15:00"), end=at("2021-07-09", "17:00"), volunteers=6,
         served=25, project="p5"),
    dict(key="zhenjiang-2021-xijindu-knock", title="敲门行动：工委全体同志周日全员出动入户筛排",
         service_types=["door_to_door"], theme="harmonious_society",
         start=at("2021-08-01", "08:00"), end=at("2021-08-01", "12:00"), volunteers=35,
         served=1260, project="p4"),
]
# The four problems the alliance helped with (已帮助社区解决4个方面的问题), each met by one of
# the activities above.
PROBLEMS = [
    ("zj-xijindu-n1", "社区党史学习阵地和党史书籍", "culture", "2021-03-20", 0),
    ("zj-xijindu-n2", "社区群众精神文化需求", "culture", "2021-04-02", 2),
    ("zj-xijindu-n3", "敲门行动入户筛排人手紧缺", "door_to_door", "2021-07-29", 4),
    ("zj-xijindu-n4", "社区经济建设、综合治理、党建文化缺少定期议事机制", "consultation",
     "2021-05-20", 3),
]


def _alliance() -> list[dict]:
    events = []
    done = []
    for spec in ALLIANCE:
        logged = activity(organization="zj-gwei", base="zj-xijindu", pairing="zj-p-xijindu",
                          volunteer_hours=2 * spec["volunteers"], **spec)
        done.append(logged)
        events += [logged, report(logged, f"{spec['title']}：小结和照片", after_days=2)]
    # The pioneer team's 23 (挑选23名先锋团队成员) knocked on doors that Sunday.
    events += [attendance(done[-1], f"zj-t-pioneer-{i:02d}") for i in range(1, 24)]
    for need_id, title, category, asked, by in PROBLEMS:
        met = done[by]
        events += need(need_id, base="zj-xijindu", pairing="zj-p-xijindu", title=title,
                       category=category, submitted=at(asked), claimed_by="zj-gwei",
                       claimed=days_after(at(asked), 2),
                       resolved=days_after(met["data"]["ended_at"], 0, "20:30"),
                       by_activity=met, closed=days_after(met["data"]["ended_at"], 5))
    return events


def _door_knocking() -> list[dict]:
    """The committee at 红豆江南府邸 for three days, and the drive's visits: every household of
    every community counted visited (the article gives the rule, 不漏一户, and no shortfall),
    the volunteers spread over the communities."""
    hongdou = activity(
        "zhenjiang-2021-hongdou-knock", organization="zj-gwei", base="zj-hongdou",
        title="敲门行动：冒着酷暑高温入户了解防疫情况并登记", service_types=["door_to_door"],
        theme="harmonious_society", start=at("2021-08-01", "08:30"),
        end=at("2021-08-03", "17:30"), volunteers=40, volunteer_hours=40 * 24, served=860)
    households = {r["基地编码"]: int(r["户数"]) for r in register(__name__, "bases")
                  if r["户数"]}
    bases = [b for b in households if b.startswith("zj-c-")]
    # Turn-outs: the committee's 40 on each of three days and 35 on the Sunday, the rest
    # spread, adding up to the article's nearly 2,400.
    volunteers = spread(VOLUNTEERS - 3 * 40 - 35, len(bases), seed=5)
    events = [hongdou, report(hongdou, "敲门行动小结：不漏一户、不漏一人", after_days=2)]
    events += [visit(CAMPAIGN, "zj-hongdou", day, part, volunteers=40)
               for day, part in zip(DAYS, spread(households["zj-hongdou"], 3), strict=True)]
    events.append(visit(CAMPAIGN, "zj-xijindu", DAYS[0], households["zj-xijindu"],
                        volunteers=35))
    events += [visit(CAMPAIGN, b, DAYS[i % 3], households[b], volunteers=volunteers[i])
               for i, b in enumerate(bases)]
    return events


def _enterprises() -> list[dict]:
    """One visit by each department to its enterprise, April to July, with the problems it
    solved there: 310-odd over the 72, spread. People met and hours are guesses."""
    pairings = [r for r in register(__name__, "pairings") if r["结对基地编码"].startswith("zj-e-")]
    solved = spread(PROBLEMS_SOLVED, len(pairings), seed=7)
    events = []
    for i, p in enumerate(pairings):
        day = date(2021, 4, 6) + timedelta(days=(i * 3) // 2)
        logged = activity(
            f"zhenjiang-2021-enterprise-{i + 1:02d}", organization=p["结对单位编码"],
            base=p["结对基地编码"], pairing=p["协议编码"],
            title="“服务先锋行”走进结对企业：党建共建、帮办解难题",
            service_types=["consultation", "policy_outreach"], theme="enterprise_upgrade",
            start=at(day, "09:30"), end=at(day, "11:30"), volunteers=4 + i % 3,
            volunteer_hours=2 * (4 + i % 3), served=10 + (i * 7) % 25,
            outputs={"problems_solved": solved[i]})
        events += [logged, report(logged, f"为企业解决难题{solved[i]}个", after_days=4)]
    return events


def history() -> list[dict]:
    fair = _fair()
    return ([fair, report(fair, "主题活动小结：51个展台、86块展板，服务群众近万人次")]
            + _alliance() + _door_knocking() + _enterprises())


def live() -> list[dict]:
    return []


def pairing_lists() -> dict[str, dict]:
    """The alliance's lists. The committee's eight service projects (落实8个服务项目) are not
    named; these are the five the article describes it doing with the community."""
    return {"zj-p-xijindu": {
        "needs": [{"id": f"n{i}", "title": title} for i, (_, title, *_) in
                  enumerate(PROBLEMS, 1)],
        "resources": [{"id": "r1", "title": "“学亚夫、做亚夫”先锋团队（23人）"},
                      {"id": "r2", "title": "微党课讲师：赵亚夫、郭昭昭、周嘉祥"},
                      {"id": "r3", "title": "党史书籍"}],
        "projects": [{"id": "p1", "title": "微党课进社区", "status": "done"},
                     {"id": "p2", "title": "社区党史学习角", "status": "done"},
                     {"id": "p3", "title": "庆祝建党100周年文艺汇演", "status": "done"},
                     {"id": "p4", "title": "敲门行动等节假日、晚间志愿服务",
                      "status": "in_progress"},
                     {"id": "p5", "title": "社区联席会议制度", "status": "done"}],
    }}
