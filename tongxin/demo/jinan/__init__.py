"""Jinan, 2019 (seed 003, 《民主》2019年12期): the China Association for Promoting Democracy's
Jinan committee (民进济南市委会) has its branches pair with 10 communities and villages. The
article names five: 历下区总支 with 甸柳街道 (paired in 2017), 历城区总支 with 山大社区 (where
talks with residents listed four needs: tutoring, medical care, legal aid and housekeeping),
天桥区总支 at 宝华新居 (“快乐暑假我来说”), 市中区总支 with 麟祥街社区 (a quyi contest, Spring
Festival blessings, a gala) and 槐荫区总支 with 青年公园街道 (“聚力新槐荫，共建新家园”).

The article gives no figures, so people served and hours are modest guesses, and the dates
within 2019 are plausible ones. The five bases it does not name have no activity here: nothing
is known of them, and that is what the coverage report shows as blind spots.
"""

from __future__ import annotations

from tongxin.demo.build import activity, at, days_after, need, report

# (key, unit, base, pairing, project, title, service types, day, clock, volunteers, served)
ACTIVITIES = [
    ("dianliu-spring", "jn-lixia", "jn-dianliu", "jn-p-dianliu", "p1",
     "“同心服务社区在行动”：学雷锋便民服务", ["consultation", "tutoring"], "2019-03-16",
     ("09:00", "11:30"), 12, 140),
    ("dianliu-autumn", "jn-lixia", "jn-dianliu", "jn-p-dianliu", "p1",
     "“同心服务社区在行动”：教育咨询和图书捐赠", ["consultation", "culture"], "2019-09-07",
     ("09:00", "11:30"), 10, 95),
    ("shanda-tutoring", "jn-licheng", "jn-shanda", "jn-p-shanda", "p1",
     "“携手同行社区，共建共享”：助学", ["tutoring"], "2019-04-13", ("09:00", "11:30"), 8, 45),
    ("shanda-medical", "jn-licheng", "jn-shanda", "jn-p-shanda", "p2",
     "“携手同行社区，共建共享”：送医", ["free_clinic"], "2019-05-18", ("08:30", "11:30"), 9,
     120),
    ("shanda-legal", "jn-licheng", "jn-shanda", "jn-p-shanda", "p3",
     "“携手同行社区，共建共享”：法律援助", ["legal_aid"], "2019-06-15", ("09:00", "11:30"), 5,
     38),
    ("shanda-housekeeping", "jn-licheng", "jn-shanda", "jn-p-shanda", "p4",
     "“携手同行社区，共建共享”：家政服务", ["housekeeping"], "2019-09-21", ("14:00", "17:00"),
     7, 52),
    ("baohua-summer", "jn-tianqiao", "jn-baohua", "jn-p-baohua", "p1",
     "“快乐暑假我来说”少儿社区服务", ["tutoring", "culture"], "2019-07-20",
     ("09:00", "11:00"), 10, 60),
    ("linxiang-blessings", "jn-shizhong", "jn-linxiang", "jn-p-linxiang", "p2",
     "春节送福", ["culture"], "2019-01-26", ("09:00", "11:30"), 12, 200),
    ("linxiang-quyi", "jn-shizhong", "jn-linxiang", "jn-p-linxiang", "p1",
     "社区曲艺大赛", ["culture"], "2019-05-25", ("14:00", "17:00"), 15, 260),
    ("linxiang-gala", "jn-shizhong", "jn-linxiang", "jn-p-linxiang", "p3",
     "迎新联欢演出", ["culture"], "2019-12-28", ("14:00", "16:30"), 20, 300),
    ("qngy-culture", "jn-huaiyin", "jn-qngy", "jn-p-qngy", "p1",
     "“聚力新槐荫，共建新家园”：优质文化教育资源进街道", ["culture", "tutoring"], "2019-04-20",
     ("09:00", "11:30"), 11, 150),
    ("qngy-autumn", "jn-huaiyin", "jn-qngy", "jn-p-qngy", "p1",
     "“聚力新槐荫，共建新家园”：家庭教育讲座", ["tutoring"], "2019-10-19", ("14:00", "16:00"),
     6, 80),
]

# The four needs the talks at 山大社区 listed (梳理出助学、送医、法律援助、家政服务等四方面),
# each met by the activity of the same kind above.
SHANDA_NEEDS = [("jn-shanda-n1", "助学", "tutoring", "shanda-tutoring"),
                ("jn-shanda-n2", "送医", "free_clinic", "shanda-medical"),
                ("jn-shanda-n3", "法律援助", "legal_aid", "shanda-legal"),
                ("jn-shanda-n4", "家政服务", "housekeeping", "shanda-housekeeping")]


def _hours(start: str, end: str) -> float:
    """How long an activity from `start` to `end` ("09:00", "11:30") lasted, in hours."""
    (h0, m0), (h1, m1) = (map(int, t.split(":")) for t in (start, end))
    return (h1 * 60 + m1 - h0 * 60 - m0) / 60


def history() -> list[dict]:
    events, logged = [], {}
    for key, unit, base, pairing, project, title, types, day, (start, end), people, served \
            in ACTIVITIES:
        logged[key] = activity(
            f"jinan-2019-{key}", organization=unit, base=base, pairing=pairing, project=project,
            title=title, service_types=types, theme="harmonious_society",
            start=at(day, start), end=at(day, end), volunteers=people,
            volunteer_hours=people * min(2.5, _hours(start, end)), served=served)
        events += [logged[key], report(logged[key], f"{title}：活动小结", after_days=4)]
    talks = at("2019-03-09", "15:00")  # 与社区各方面多次座谈
    for need_id, title, category, met_by in SHANDA_NEEDS:
        met = logged[met_by]
        events += need(need_id, base="jn-shanda", pairing="jn-p-shanda", title=title,
                       category=category, submitted=talks, claimed_by="jn-licheng",
                       claimed=days_after(talks, 3), resolved=days_after(
                           met["data"]["ended_at"], 0, "20:30"), by_activity=met,
                       closed=days_after(met["data"]["ended_at"], 7))
    return events


def live() -> list[dict]:
    return []


def pairing_lists() -> dict[str, dict]:
    """The lists of the five pairings the article describes."""
    return {
        "jn-p-shanda": {
            "needs": [{"id": f"n{i}", "title": t} for i, (_, t, _, _) in
                      enumerate(SHANDA_NEEDS, 1)],
            "resources": [{"id": "r1", "title": "民进在教育、文化、出版领域的界别优势"},
                          {"id": "r2", "title": "会员中的教师、医生、律师"}],
            "projects": [{"id": f"p{i}", "title": f"“携手同行社区，共建共享”：{t}",
                          "status": "done"} for i, (_, t, _, _) in enumerate(SHANDA_NEEDS, 1)],
        },
        "jn-p-dianliu": {
            "resources": [{"id": "r1", "title": "街道公共设施和群众基础"}],
            "projects": [{"id": "p1", "title": "“同心服务社区在行动”", "status": "in_progress"}],
        },
        "jn-p-baohua": {
            "projects": [{"id": "p1", "title": "“快乐暑假我来说”少儿社区服务（“同心联盟”品牌）",
                          "status": "done"}],
        },
        "jn-p-linxiang": {
            "projects": [{"id": "p1", "title": "曲艺大赛", "status": "done"},
                         {"id": "p2", "title": "春节送福", "status": "done"},
                         {"id": "p3", "title": "联欢演出", "status": "done"}],
        },
        "jn-p-qngy": {
            "resources": [{"id": "r1", "title": "优质文化教育资源"}],
            "projects": [{"id": "p1", "title": "“聚力新槐荫，共建新家园”（街道搭台，党派唱戏）",
                          "status": "in_progress"}],
        },
    }
