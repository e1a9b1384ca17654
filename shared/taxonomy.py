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
