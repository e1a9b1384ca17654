"""Codes shipped with Tongxin (CONTRACT.md). The registry owns the taxonomy and may extend it."""

from __future__ import annotations

THEMES: dict[str, tuple[str, str]] = {
    "city_quality": ("城市提质", "City quality"),
    "new_countryside": ("新农村建设", "New countryside"),
    "harmonious_society": ("和谐社会建设", "Harmonious society"),
    "enterprise_upgrade": ("企业转型升级", "Enterprise upgrade"),
    "other": ("其他", "Other"),
}

SERVICE_TYPES: dict[str, tuple[str, str]] = {
    "free_clinic": ("义诊", "Free clinic"),
    "haircut": ("义剪", "Haircut"),
    "repair": ("义修", "Repair"),
    "mending": ("义补", "Mending"),
    "laundry": ("义洗", "Laundry"),
    "tutoring": ("义教", "Tutoring"),
    "consultation": ("义询", "Consultation"),
    "job_fair": ("义招", "Job fair"),
    "legal_aid": ("法律援助", "Legal aid"),
    "training": ("培训", "Training"),
    "culture": ("文化", "Culture"),
    "cleanup": ("环境整治", "Clean-up"),
    "policy_outreach": ("政策宣讲", "Policy outreach"),
    "door_to_door": ("敲门入户", "Door to door"),
    "donation": ("捐赠", "Donation"),
    "other": ("其他", "Other"),
}

# Countable results beyond people served (an activity's `outputs`): code -> (label_zh,
# label_en, unit_zh). Drawn from what the programmes' own reports count (援建农村图书馆12个,
# 资助困难学生376人, 提供60余个岗位, 为企业解难题310多个, 验光配镜, 入户筛排, ...).
# People trained are `trainees` and donated goods `donations`, not indicators.
INDICATORS: dict[str, tuple[str, str, str]] = {
    "libraries_built": ("农家书屋/村级图书室", "Libraries built", "个"),
    "students_funded": ("资助学生", "Students funded", "名"),
    "jobs_offered": ("提供岗位", "Jobs offered", "个"),
    "problems_solved": ("解决问题", "Problems solved", "个"),
    "households_visited": ("走访户数", "Households visited", "户"),
    "glasses_fitted": ("配镜", "Glasses fitted", "副"),
    "health_records_created": ("建立健康档案", "Health records created", "份"),
    "greenhouses_built": ("建设蔬菜大棚", "Greenhouses built", "个"),
    "funds_invested": ("投入资金", "Funds invested", "万元"),
    "enterprises_served": ("服务企业", "Enterprises served", "家"),
    "expired_medicines_collected": ("回收过期药品", "Expired medicines collected", "盒"),
}
