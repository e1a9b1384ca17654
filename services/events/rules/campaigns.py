"""Rules for door-knocking campaigns (敲门行动)."""

from __future__ import annotations

from datetime import date

from services.events.rules.base import Verdict, accept, refuse
from services.events.rules.limits import day_not_ahead
from services.events.state import Facts
from shared.envelope import Envelope
from shared.events import CampaignVisitRecorded


def visit_recorded(d: CampaignVisitRecorded, env: Envelope, facts: Facts) -> Verdict:
    if ahead := day_not_ahead("data.visited_on", d.visited_on, facts):
        return ahead
    campaign = facts.record("campaign", d.campaign_id) or {}
    bases, region = campaign.get("base_ids") or [], campaign.get("region_code")
    if bases and d.base_id not in bases:
        return refuse("data.base_id", f"base {d.base_id} is not among campaign "
                                      f"{d.campaign_id}'s bases", invalid=True)
    if not bases and region and region not in facts.regions_of(d.base_id):
        return refuse("data.base_id", f"base {d.base_id} is not in region {region}, which "
                                      f"campaign {d.campaign_id} covers", invalid=True)
    starts, ends = campaign.get("starts_on"), campaign.get("ends_on")
    if starts and ends and not date.fromisoformat(starts) <= d.visited_on \
            <= date.fromisoformat(ends):
        return refuse("data.visited_on", f"is outside campaign {d.campaign_id} "
                                         f"({starts} to {ends})", invalid=True)
    return accept()
