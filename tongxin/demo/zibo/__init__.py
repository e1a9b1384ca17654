"""Zibo, 2013 (seed 000, 淄博日报 2013-11-01): the United Front Work Department's six “同心”
service teams of 180 members, paired with poor villages. By the article's date they had run
132 activities, served 8,700+ people, built 12 village libraries, funded 376 students, trained
269 farmers and given medicines worth nearly 40,000 CNY, 500 books and 10 computers.

The activities the article describes are written out below with its places, dates and figures
(its figures where it gives them; where it gives none, plausible ones, marked). The rest of the
132 are spread over the teams, villages and months, so the totals are the article's.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tongxin.demo.build import activity, at, need, report, spread

ACTIVITIES = 132
SERVED = 8_700          # 服务群众8700余人次
STUDENTS_FUNDED = 376   # 资助困难学生376人
LIBRARIES = 12          # 援建农村图书馆12个

PAIRING_OF = {("zb-tzb", "zb-mengjia"): "zb-p-mengjia", ("zb-gsl", "zb-liuchun"): "zb-p-liuchun",
              ("zb-jiaoyu", "zb-xiyuliang"): "zb-p-xiyuliang"}

# What the article tells, one activity each. Figures it does not give (served at the flag
# ceremony, the volunteers and hours everywhere) are plausible guesses. Donated goods whose
# value it does not give are valued 0, so donations add up to its one value: the medicines.
NAMED: list[dict[str, Any]] = [
    dict(key="zibo-2013-mengjia-flag", organization="zb-tzb", base="zb-mengjia",
         title="践行“同心”思想 争创优秀服务机关 主题服务活动暨“同心”服务团队授旗仪式",
         service_types=["free_clinic", "consultation", "donation"], theme="new_countryside",
         start=at("2013-05-18", "09:00"), end=at("2013-05-18", "12:00"), volunteers=60,
         volunteer_hours=180, served=650, project="p1",
         donations=[{"item": "学习教育材料、洗化用品", "quantity": 300, "unit": "份",
                     "value_cny": 0}],
         summary="六支服务团队为群众健康查体，免费发放药品、学习教育材料、洗化用品，提供法律、"
                 "科技、农业种植技术等咨询"),
    dict(key="zibo-2013-liuchun-chongyang", organization="zb-weisheng", base="zb-liuchun",
         team="zb-t-medical", title="同心同行·情暖重阳 免费验光配镜",
         service_types=["free_clinic"], theme="harmonious_society",
         start=at("2013-10-13", "08:30"), end=at("2013-10-13", "16:00"), volunteers=18,
         volunteer_hours=135, served=106,  # 100余名60岁以上老年朋友
         outputs={"glasses_fitted": 106, "health_records_created": 106},
         summary="讲解用眼爱眼护眼常识，为60岁以上老人免费验光配镜，建立健康用眼档案"),
    dict(key="zibo-2013-xiyuliang-tutoring", organization="zb-jiaoyu", base="zb-xiyuliang",
         team="zb-t-tutor", title="“同心·助学助教” 暑期支教（联合山东理工大学青春志愿服务团）",
         service_types=["tutoring"], theme="new_countryside",
         start=at("2013-07-15", "08:00"), end=at("2013-07-28", "17:00"), volunteers=24,
         volunteer_hours=1920, served=860, project="p1",
         summary="在省级重点贫困村开展为期两周的支教活动"),
    dict(key="zibo-2013-gaoqing-training", organization="zb-tzb", base="zb-liuchun",
         team="zb-t-phd", title="“扶贫奔康”科技培训班", service_types=["training"],
         theme="new_countryside", start=at("2013-09-05", "09:00"),
         end=at("2013-09-06", "17:00"), volunteers=12, volunteer_hours=192, served=269,
         trainees=269, summary="培训种植养殖户269人"),
    dict(key="zibo-2013-clinic-medicines", organization="zb-weisheng", base="zb-mengjia",
         team="zb-t-medical", title="“同心·医疗卫生” 义诊送药",
         service_types=["free_clinic", "donation"], theme="new_countryside",
         start=at("2013-08-20", "08:00"), end=at("2013-08-20", "15:00"), volunteers=30,
         volunteer_hours=210, served=1200,
         donations=[{"item": "药品", "quantity": 1, "unit": "批", "value_cny": 40_000}],
         summary="为群众查体和义诊，免费发放价值近4万元的药品"),
    dict(key="zibo-2013-zhigong-week", organization="zb-zhigong", base="zb-xiyuliang",
         title="“同心服务社会实践周” 法律咨询、现场义诊、捐赠图书电脑",
         service_types=["legal_aid", "free_clinic", "donation"], theme="harmonious_society",
         start=at("2013-10-21", "09:00"), end=at("2013-10-25", "17:00"), volunteers=40,
         volunteer_hours=600, served=520,
         donations=[{"item": "图书", "quantity": 500, "unit": "册", "value_cny": 0},
                    {"item": "电脑", "quantity": 10, "unit": "台", "value_cny": 0}]),
    dict(key="zibo-2013-minjian-medicine-tech", organization="zb-minjian", base="zb-mengjia",
         title="“送医药、送农业技术”活动", service_types=["free_clinic", "consultation"],
         theme="new_countryside", start=at("2013-06-08", "09:00"),
         end=at("2013-06-08", "16:00"), volunteers=22, volunteer_hours=154, served=430),
    dict(key="zibo-2013-liuchun-nursery", organization="zb-gsl", base="zb-liuchun",
         team="zb-t-agri", title="“同心·非公助农” 悬宝杨育苗基地建设",
         service_types=["other"], theme="new_countryside", start=at("2013-04-12", "09:00"),
         end=at("2013-04-12", "16:00"), volunteers=8, volunteer_hours=56, served=0,
         project="p1", outputs={"funds_invested": 300},  # 万元
         summary="在常家镇刘春村建设悬宝杨育苗基地，已投入300万元"),
    dict(key="zibo-2013-minge-projects", organization="zb-minge", base="zb-xiyuliang",
         title="践行“同心”思想，我为帮扶做贡献：为贫困村提供致富项目",
         service_types=["consultation"], theme="new_countryside",
         start=at("2013-06-22", "09:00"), end=at("2013-06-22", "12:00"), volunteers=10,
         volunteer_hours=30, served=80),
    dict(key="zibo-2013-minmeng-donation", organization="zb-minmeng-zc", base="zb-xiyuliang",
         title="四德传承“同心”爱心捐助启动仪式", service_types=["donation"],
         theme="harmonious_society", start=at("2013-09-28", "09:30"),
         end=at("2013-09-28", "11:30"), volunteers=15, volunteer_hours=30, served=120,
         summary="向全体盟员发出扶贫帮困倡议书"),
]

# The rest of the 132 (送医送药、文化下乡、技术咨询、教育培训…): the article gives only totals, so
# these cycle through the teams' kinds of service and the three villages, every other day
# from March to October. Twelve of the 文化下乡 visits each leave a village library; the
# students funded are spread over the 助学助教 visits.
KINDS = [
    # (kind, unit, team, service types, theme, project in the unit's pairing)
    ("送医送药义诊", "zb-weisheng", "zb-t-medical", ["free_clinic"], "new_countryside", None),
    ("文化下乡", "zb-kexie", "zb-t-scitech", ["culture"], "new_countryside", None),
    ("科普与技术咨询", "zb-kexie", "zb-t-scitech", ["consultation"], "new_countryside", None),
    ("农业种植技术咨询", "zb-gsl", "zb-t-agri", ["consultation", "training"], "new_countryside",
     "p2"),
    ("助学助教", "zb-jiaoyu", "zb-t-tutor", ["tutoring"], "new_countryside", "p2"),
    ("法律咨询", "zb-sifa", "zb-t-legal", ["legal_aid"], "harmonious_society", None),
    ("党外博士科技服务", "zb-tzb", "zb-t-phd", ["consultation"], "new_countryside", "p2"),
]
VILLAGES = [("zb-mengjia", "孟家村"), ("zb-liuchun", "刘春村"), ("zb-xiyuliang", "西余粮村")]


def _routine() -> list[dict]:
    count = ACTIVITIES - len(NAMED)
    served = spread(SERVED - sum(a["served"] for a in NAMED), count)
    kinds = [KINDS[i % len(KINDS)] for i in range(count)]
    tutoring = [i for i, k in enumerate(kinds) if k[0] == "助学助教"]
    culture = [i for i, k in enumerate(kinds) if k[0] == "文化下乡"][:LIBRARIES]
    funded = dict(zip(tutoring, spread(STUDENTS_FUNDED, len(tutoring), seed=1), strict=True))
    out = []
    for i, (kind, unit, team, types, theme, project) in enumerate(kinds):
        base, village = VILLAGES[i % len(VILLAGES)]
        day = date(2013, 3, 1) + timedelta(days=2 * i)
        volunteers = 6 + i % 7
        outputs = {}
        if i in funded:
            outputs["students_funded"] = funded[i]
        if i in culture:
            outputs["libraries_built"] = 1
        pairing = PAIRING_OF.get((unit, base))
        out.append(dict(
            key=f"zibo-2013-routine-{i + 1:03d}", organization=unit, base=base, team=team,
            title=f"“同心”{kind}（{village}）" + ("，援建农村图书馆" if i in culture else ""),
            service_types=types, theme=theme, start=at(day, "09:00"), end=at(day, "12:00"),
            volunteers=volunteers, volunteer_hours=3 * volunteers, served=served[i],
            outputs=outputs, project=project if pairing else None))
    return out


def _with_pairing(spec: dict) -> dict:
    pairing = PAIRING_OF.get((spec["organization"], spec["base"]))
    if pairing is None:
        spec.pop("project", None)
        return spec
    return {**spec, "pairing": pairing}


def history() -> list[dict]:
    events = []
    for spec in NAMED + _routine():
        logged = activity(**_with_pairing(dict(spec)))
        events += [logged, report(logged, f"{logged['data']['title']}：活动小结及照片")]
    # The villages' needs as the pairings listed them, met by the activities above.
    events += need("zb-mengjia-n1", base="zb-mengjia", pairing="zb-p-mengjia",
                   title="群众健康查体和常用药品", category="free_clinic",
                   submitted=at("2013-03-05"), claimed_by="zb-tzb", claimed=at("2013-03-08"),
                   resolved=at("2013-05-18", "17:00"), closed=at("2013-05-25"))
    events += need("zb-xiyuliang-n1", base="zb-xiyuliang", pairing="zb-p-xiyuliang",
                   title="暑期留守学生辅导", category="tutoring", submitted=at("2013-05-06"),
                   claimed_by="zb-jiaoyu", claimed=at("2013-05-10"),
                   resolved=at("2013-07-28", "18:00"), closed=at("2013-08-05"))
    return events


def live() -> list[dict]:
    return []


def pairing_lists() -> dict[str, dict]:
    """The three lists of each pairing (需求清单、资源清单、项目清单), as the article tells them."""
    return {
        "zb-p-mengjia": {
            "needs": [{"id": "n1", "title": "群众健康查体和常用药品"},
                      {"id": "n2", "title": "农业种植技术和法律咨询"}],
            "resources": [{"id": "r1", "title": "六支“同心”服务团队（180人）"},
                          {"id": "r2", "title": "药品、学习教育材料、洗化用品"}],
            "projects": [{"id": "p1", "title": "“同心”服务团队授旗仪式暨主题服务活动",
                          "status": "done"},
                         {"id": "p2", "title": "党外博士科技服务进村", "status": "in_progress"}],
        },
        "zb-p-liuchun": {
            "needs": [{"id": "n1", "title": "育苗和种植技术"},
                      {"id": "n2", "title": "增收致富项目"}],
            "resources": [{"id": "r1", "title": "非公经济人士的资金和技术"}],
            "projects": [{"id": "p1", "title": "悬宝杨育苗基地（投入300万元）",
                          "status": "in_progress"},
                         {"id": "p2", "title": "农业种植技术咨询", "status": "in_progress"}],
        },
        "zb-p-xiyuliang": {
            "needs": [{"id": "n1", "title": "暑期留守学生辅导"},
                      {"id": "n2", "title": "困难学生资助"}],
            "resources": [{"id": "r1", "title": "教师和热心教育事业的企业家"},
                          {"id": "r2", "title": "山东理工大学“助学支教”青春志愿服务团"}],
            "projects": [{"id": "p1", "title": "暑期支教（两周）", "status": "done"},
                         {"id": "p2", "title": "资助困难学生", "status": "in_progress"}],
        },
    }
