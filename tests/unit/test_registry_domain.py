"""Registry records that need no database: what an old stored record becomes, what a
taxonomy entry must carry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.registry.domain import BY_NAME, CampaignCreate, PairingCreate, TaxonomyCreate
from services.registry.service import TAXONOMY_DEFAULTS, Registry
from shared.taxonomy import INDICATORS

# A pairing as the registry stored it while needs still had a state of their own.
LEGACY_PAIRING = {
    "id": "6f1c0f8e-0000-4000-8000-000000000001", "name": "池州市直机关工委 ↔ 杏花村社区",
    "organization_id": "o-1", "base_id": "b-1", "starts_on": "2023-03-01", "ends_on": None,
    "status": "active", "code": None, "active": True,
    "created_at": "2023-03-01T08:00:00+08:00", "updated_at": "2023-03-02T08:00:00+08:00",
    "needs": [{"id": "n1", "title": "老年人上门理发", "description": None, "status": "claimed",
               "claimed_by": "o-1"}],
    "resources": [{"id": "r1", "title": "机关食堂场地", "description": None, "status": "open",
                   "claimed_by": None}],
    "projects": [{"id": "p1", "title": "大集市", "target": None, "starts_on": None,
                  "ends_on": None, "status": "claimed", "claimed_by": "o-1"}],
}


def test_an_old_pairing_still_validates_and_loses_only_the_needs_state():
    # what `Registry.update` validates: the stored record's input fields and the patch
    merged = {**Registry._input_fields(BY_NAME["pairing"], LEGACY_PAIRING), "ends_on": "2024-02-29"}
    pairing = PairingCreate.model_validate(merged).model_dump(mode="json")
    assert pairing["needs"] == [{"id": "n1", "title": "老年人上门理发", "description": None}]
    assert pairing["resources"] == LEGACY_PAIRING["resources"]
    assert pairing["projects"] == LEGACY_PAIRING["projects"]


def test_a_need_takes_no_other_unknown_fields():
    with pytest.raises(ValidationError) as caught:
        PairingCreate.model_validate({"starts_on": "2023-03-01",
                                      "needs": [{"title": "理发", "owner": "o-1"}]})
    assert [e["loc"] for e in caught.value.errors()] == [("needs", 0, "owner")]


def test_a_campaign_ends_on_or_after_its_start():
    ok = CampaignCreate.model_validate({"code": "QM", "name": "敲门行动",
                                        "starts_on": "2021-08-01", "ends_on": "2021-08-01"})
    assert ok.base_ids == [] and ok.region_code is None
    with pytest.raises(ValidationError) as caught:
        CampaignCreate.model_validate({"code": "QM", "name": "敲门行动",
                                       "starts_on": "2021-08-02", "ends_on": "2021-08-01"})
    assert [e["loc"] for e in caught.value.errors()] == [("ends_on",)]


@pytest.mark.parametrize("entry, field", [
    ({"kind": "indicator"}, "unit"),
    ({"kind": "indicator", "unit": " "}, "unit"),
    ({"kind": "service_type", "unit": "个"}, "unit"),
])
def test_only_indicators_have_a_unit_and_they_must(entry, field):
    with pytest.raises(ValidationError) as caught:
        TaxonomyCreate.model_validate({"code": "x", "label_zh": "某", "label_en": "X", **entry})
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_shipped_indicators_have_labels_and_a_unit():
    assert {"libraries_built", "students_funded", "jobs_offered", "problems_solved",
            "households_visited", "glasses_fitted"} <= set(INDICATORS)
    assert all(zh and en and unit for zh, en, unit in INDICATORS.values())
    assert TAXONOMY_DEFAULTS["indicator"] is INDICATORS
