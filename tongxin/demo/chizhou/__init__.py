"""Chizhou, 2022 (seed 002): units paired with the communities they sit in by “党建共建”
contracts, three lists each (needs, resources, projects: 871 projects in all), and the first
weekend fair (周末党群便民服务“大集市”): 14 communities, 10-odd kinds of stall (义诊、义剪、
义修、义补、义洗、义教、义询、义招…), 1,200-odd residents served, and at 东流社区 a jobs stall
where 菊江服饰, 汇辽新型装饰材料 and 恒丰塑胶 offered 60-odd jobs. Each fair offers at least
five services, chosen from what residents asked for (按需点单): needs gathered by the community
party committees through WeChat groups and party-member building heads.

The article names three of the 14 communities and none of the paired units; the registers
mark the records standing in for those. How the 871 projects, the 1,200 served and the needs
fall on each community is not told: spread here. The city's 20,000-odd registered serving
members and their 212,000 turn-outs over the years are not in the demo (as individual
records they would be most of it).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tongxin.demo.build import activity, at, days_after, need, register, report, spread

FAIR_DAY = date(2022, 10, 22)  # a Saturday; the article (late October 2022) says 近日
FAIR_SERVED = 1_236            # 服务居民1200余人次
JOBS = 62                      # 60余个岗位
PROJECTS = 871                 # 达成871个长(短)期服务项目

# The stalls: the eight the article lists, legal aid, and calls on those who cannot come out.
STALLS = ["free_clinic", "haircut", "repair", "mending", "laundry", "tutoring", "consultation",
          "legal_aid", "door_to_door", "job_fair"]
STALL_TITLE = {"free_clinic": "义诊", "haircut": "义剪", "repair": "义修", "mending": "义补",
               "laundry": "义洗", "tutoring": "义教", "consultation": "义询",
               "legal_aid": "法律援助", "door_to_door": "行动不便老人上门服务",
               "job_fair": "义招（送岗）"}
# What residents ask for, by the stall that answers it; no resident is named.
ASKED = {"free_clinic": "慢性病老人测血压血糖", "haircut": "行动不便老人理发难",
         "repair": "小家电维修", "mending": "衣物缝补", "laundry": "老人被褥清洗",
         "tutoring": "孩子放学后作业辅导", "consultation": "医保社保政策咨询",
         "legal_aid": "赡养、邻里纠纷法律咨询", "door_to_door": "独居老人上门探访",
         "job_fair": "家门口就业岗位"}
# Asked for, and more than a stall can do: claimed or still open when the fair was held.
BIGGER = [("repair", "老旧小区楼道照明改造"), ("other", "老旧小区加装电梯"),
          ("other", "小区停车难"), ("cleanup", "背街小巷环境整治")]

# Project titles (项目清单) the contracts draw on; the first, the fair itself, is in every one.
CATALOGUE = [
    "每月义诊进社区", "便民义剪进小区", "家电义修", "衣物义补", "爱心义洗", "“四点半课堂”义教",
    "政策法规义询", "家门口就业义招", "法律援助进社区", "行动不便老人上门服务", "反诈宣传",
    "垃圾分类督导", "文明城市创建志愿服务", "独居老人结对帮扶", "青少年暑期托管", "健康知识讲座",
    "消防安全隐患排查", "困难家庭走访慰问", "老年人智能手机培训", "小区环境整治", "社区文艺活动",
    "心理健康疏导", "禁毒宣传", "防溺水宣传", "医保政策宣讲", "社保待遇认证代办", "助残服务",
    "退役军人服务", "妇女儿童权益保障", "职业技能培训", "节日走访慰问", "楼道照明维修",
    "小区停车秩序治理", "背街小巷环境整治", "食品安全宣传", "用电安全检查", "文明养犬宣传",
    "社区图书角", "老年大学进社区", "义务植树",
]
FAIR_PROJECT = "周末党群便民服务“大集市”（每月一次）"


def _communities() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(base, its name, [(pairing, unit), (pairing, unit)]) in register order."""
    names = {r["基地编码"]: r["基地名称"] for r in register(__name__, "bases")}
    pairs: dict[str, list[tuple[str, str]]] = {}
    for r in register(__name__, "pairings"):
        pairs.setdefault(r["结对基地编码"], []).append((r["协议编码"], r["结对单位编码"]))
    return [(base, names[base], pairs[base]) for base in names]


def _project_counts() -> dict[str, int]:
    pairings = [p for _, _, ps in _communities() for p, _ in ps]
    return dict(zip(pairings, spread(PROJECTS, len(pairings), seed=2), strict=True))


def _stalls(i: int, base: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(service type, unit, title) of each stall at community i's fair: at least five."""
    if base == "cz-dongliu":
        jobs = [("job_fair", e, f"{n}：送岗") for e, n in (
            ("cz-jujiang", "菊江服饰"), ("cz-huiliao", "汇辽新型装饰材料"),
            ("cz-hengfeng", "恒丰塑胶"))]
        return jobs + [("consultation", "cz-dongliu-ldbz", "就业和社保政策咨询"),
                       ("free_clinic", pairs[1][1], "义诊"), ("haircut", pairs[1][1], "义剪")]
    kinds = [STALLS[(3 * i + j) % 9] for j in range(5 + i % 4)]  # jobs: at 东流 only
    return [(k, pairs[j % 2][1], STALL_TITLE[k]) for j, k in enumerate(kinds)]


def _fairs() -> tuple[list[dict], dict[str, dict]]:
    """The 14 fairs of 22 October, each run by its community's party organisation under its
    first pairing's “大集市” project; and each fair by base."""
    plan = [(i, base, name, pairs, _stalls(i, base, pairs))
            for i, (base, name, pairs) in enumerate(_communities())]
    served = iter(spread(FAIR_SERVED, sum(len(s) for *_, s in plan), seed=4))
    events, fairs = [], {}
    for _, base, name, pairs, stalls in plan:
        rows: list[dict[str, Any]] = [
            {"service_type": k, "served": next(served), "organization_id": unit,
             "title": title, "volunteers": 2 + j % 3} for j, (k, unit, title) in enumerate(stalls)]
        volunteers = sum(r["volunteers"] for r in rows)
        logged = activity(
            f"chizhou-2022-fair-{base}", organization=f"{base}-dw", base=base,
            pairing=pairs[0][0], project="p1", title=f"首期周末党群便民服务“大集市”（{name}）",
            theme="harmonious_society", start=at(FAIR_DAY, "08:30"),
            end=at(FAIR_DAY, "11:30"), volunteers=volunteers, volunteer_hours=3 * volunteers,
            stalls=rows, outputs={"jobs_offered": JOBS} if base == "cz-dongliu" else None,
            summary="按需点单，不低于5项服务" + (
                "；菊江服饰、汇辽新型装饰材料、恒丰塑胶等企业提供60余个岗位"
                if base == "cz-dongliu" else ""))
        fairs[base] = logged
        events += [logged, report(logged, "大集市小结：服务项目、服务人次及照片", after_days=2)]
    return events, fairs


def _projects_run() -> list[dict]:
    """One project activity under each contract between March and September (p2 of its
    list); people served and hours are guesses."""
    events = []
    k = 0
    for base, name, pairs in _communities():
        for pairing, unit in pairs:
            day = date(2022, 3, 5) + timedelta(days=7 * k)
            logged = activity(
                f"chizhou-2022-project-{pairing}", organization=unit, base=base,
                pairing=pairing, project="p2", title=f"{CATALOGUE[k % len(CATALOGUE)]}（{name}）",
                service_types=["other"], theme="harmonious_society", start=at(day, "14:30"),
                end=at(day, "16:30"), volunteers=5 + k % 6, volunteer_hours=2 * (5 + k % 6),
                served=20 + (k * 13) % 50)
            events += [logged, report(logged, "项目活动小结", after_days=3)]
            k += 1
    return events


def _needs(fairs: dict[str, dict]) -> list[dict]:
    """Four needs a community: two met at its fair (one confirmed closed, the other confirmed
    closed in every other community, else still awaiting confirmation); one claimed for a
    later project; one claimed in every other community and still open in the rest."""
    events = []
    for i, (base, _, pairs) in enumerate(_communities()):
        fair = fairs[base]
        unit_pairing = {unit: pairing for pairing, unit in pairs}
        met = [s for s in fair["data"]["stalls"] if s["organization_id"] in unit_pairing][:2]
        for j, stall in enumerate(met):
            asked = at(date(2022, 10, 8) + timedelta(days=(i + j) % 6), "10:00")
            unit = stall["organization_id"]
            events += need(
                f"cz-{base.removeprefix('cz-')}-n{j + 1}", base=base,
                pairing=unit_pairing[unit], title=ASKED[stall["service_type"]],
                category=stall["service_type"], submitted=asked, claimed_by=unit,
                claimed=days_after(asked, 3), resolved=at(FAIR_DAY, "20:30"), by_activity=fair,
                closed=at(FAIR_DAY + timedelta(days=4)) if j == 0 or i % 2 else None,
                urgency="high" if stall["service_type"] in ("haircut", "door_to_door")
                else "normal")
        for j, (category, title) in enumerate(BIGGER[i % 2 * 2:][:2], start=3):
            pairing, unit = pairs[j % 2]
            asked = at(date(2022, 10, 12) + timedelta(days=i % 7), "15:00")
            claimed = j == 3 or i % 2 == 1
            events += need(f"cz-{base.removeprefix('cz-')}-n{j}", base=base, pairing=pairing,
                           title=title, category=category, submitted=asked,
                           claimed_by=unit if claimed else None,
                           claimed=days_after(asked, 4) if claimed else None)
    return events


def history() -> list[dict]:
    fairs, by_base = _fairs()
    return fairs + _projects_run() + _needs(by_base)


def live() -> list[dict]:
    return []


def pairing_lists() -> dict[str, dict]:
    """Each contract's three lists: the needs asked at its community, what its unit offers, and
    its share of the 871 projects (the fair, then titles from the catalogue); projects already
    run are in progress."""
    counts = _project_counts()
    asked: dict[str, list[str]] = {}
    for e in _needs(_fairs()[1]):
        if e["type"] == "need.submitted":
            asked.setdefault(e["data"]["pairing_id"], []).append(e["data"]["title"])
    units = {r["单位编码"]: r["单位名称"] for r in register(__name__, "organizations")}
    lists = {}
    for _, _, pairs in _communities():
        for k, (pairing, unit) in enumerate(pairs):
            assert counts[pairing] <= len(CATALOGUE) + 1  # no project twice in a list
            titles = [FAIR_PROJECT] + [CATALOGUE[(k + j) % len(CATALOGUE)]
                                       for j in range(counts[pairing] - 1)]
            lists[pairing] = {
                "needs": [{"id": f"n{i}", "title": t}
                          for i, t in enumerate(asked.get(pairing, []), 1)],
                "resources": [{"id": "r1", "title": f"{units[unit]}的在职党员志愿者"},
                              {"id": "r2", "title": "单位场地和专业服务力量"}],
                "projects": [{"id": f"p{i}", "title": t,
                              "status": "in_progress" if i <= 2 else "planned"}
                             for i, t in enumerate(titles, 1)],
            }
    return lists
