"""Every read model, one module each. The service runs a projection per entry, includes its
routes, and `tongxin reporting rebuild` replays them."""

from __future__ import annotations

from services.reporting.models import (
    activities,
    approvals,
    assessment,
    coverage,
    labels,
    memberships,
    needs,
    pairings,
    timeliness,
    volunteers,
)
from services.reporting.readmodel import ReadModel

READ_MODELS: list[ReadModel] = [
    labels.MODEL,
    memberships.MODEL,
    approvals.extend(activities.MODEL),  # the cube applies approvals too, in order
    volunteers.MODEL,
    needs.MODEL,
    timeliness.MODEL,
    coverage.MODEL,
    pairings.MODEL,
    assessment.MODEL,
]

BY_NAME = {m.name: m for m in READ_MODELS}
