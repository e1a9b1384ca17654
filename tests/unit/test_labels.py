"""Every label of the pages in both languages: the dashboard's words and codes
(dashboard.js), the forms' `中文|English` texts (page.html, forms.js) and the taxonomy's codes
each have a Chinese half with Chinese in it and an English half without; and every code a
report sends as it is (a need's urgency, a project's, item's or pairing's status, a role) has
its words on the dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest

from services.registry.domain import ItemStatus, PairingStatus, ProjectStatus
from shared.auth import ROLES
from shared.events import NeedSubmitted
from shared.taxonomy import INDICATORS, SERVICE_TYPES, THEMES

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_JS = ROOT / "services/reporting/dashboard/static/dashboard.js"
FORMS_HTML = ROOT / "services/events/forms/page.html"
FORMS_JS = ROOT / "services/events/forms/static/forms.js"
# The sign-in pages: the organiser's (QR code, list), the volunteer's phone page, their script.
SIGN_IN_PAGES = [ROOT / "services/events/forms/sign_in.html",
                 ROOT / "services/events/forms/sign.html"]
SIGN_JS = ROOT / "services/events/forms/static/sign.js"

CJK = re.compile(r"[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]")
PAIR = re.compile(r'(\w+): \["((?:[^"\\]|\\.)*)", "((?:[^"\\]|\\.)*)"\]')


def js_object(source: str, name: str) -> str:
    """The text of `const NAME = {...};` in a script (its braces balanced)."""
    start = source.index(f"const {name} = {{") + len(f"const {name} = ")
    depth = 0
    for i, c in enumerate(source[start:], start):
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth == 0:
            return source[start:i + 1]
    raise AssertionError(f"{name} is not closed")


def pairs(text: str) -> dict[str, tuple[str, str]]:
    return {key: (zh, en) for key, zh, en in PAIR.findall(text)}


def both_ways(found: dict[Any, tuple[str, str]]) -> list[str]:
    """The entries whose Chinese half has no Chinese, or whose English half has some."""
    return [f"{k}: {zh!r} | {en!r}" for k, (zh, en) in found.items()
            if not CJK.search(zh) or CJK.search(en) or not en.strip()]


def dashboard_words() -> dict[str, tuple[str, str]]:
    return pairs(js_object(DASHBOARD_JS.read_text(encoding="utf-8"), "WORDS"))


def dashboard_codes() -> dict[str, dict[str, tuple[str, str]]]:
    codes = js_object(DASHBOARD_JS.read_text(encoding="utf-8"), "CODES")
    return {kind: pairs(body) for kind, body in re.findall(r"(\w+): \{(.*?)\}", codes, re.S)}


def forms_texts() -> dict[str, tuple[str, str]]:
    """Every `中文|English` of the forms and the sign-in pages: the pages' data-t, data-ph,
    data-title and data-empty attributes, and the scripts' own messages, role and kind names."""
    found: list[str] = []
    for page in (FORMS_HTML, *SIGN_IN_PAGES):
        html = page.read_text(encoding="utf-8")
        found += re.findall(r'data-(?:t|ph|title|empty)="([^"]*\|[^"]*)"', html)
    for script, names in ((FORMS_JS.read_text(encoding="utf-8"), ("T", "ROLES", "KINDS")),
                          (SIGN_JS.read_text(encoding="utf-8"), ("T",))):
        for name in names:
            found += re.findall(r'"?[\w.]+"?: "([^"]*\|[^"]*)"', js_object(script, name))
    sign = SIGN_JS.read_text(encoding="utf-8")
    found += re.findall(r'say\("([^"]*\|[^"]*)"\)', sign)
    out = {}
    for text in found:
        zh, _, en = text.partition("|")
        out[text] = (zh, en)
    return out


def test_the_tables_are_read():
    assert len(dashboard_words()) > 100
    assert set(dashboard_codes()) == {"urgency", "status", "role"}
    assert len(forms_texts()) > 80


@pytest.mark.parametrize("table", ["dashboard words", "dashboard codes", "forms", "taxonomy"])
def test_every_label_both_ways(table):
    if table == "dashboard words":
        found: dict[Any, tuple[str, str]] = dashboard_words()
    elif table == "dashboard codes":
        found = {(kind, code): words for kind, codes in dashboard_codes().items()
                 for code, words in codes.items()}
    elif table == "forms":
        found = forms_texts()
    else:
        found = {**{("theme", c): v for c, v in THEMES.items()},
                 **{("service_type", c): v for c, v in SERVICE_TYPES.items()},
                 **{("indicator", c): (zh, en) for c, (zh, en, _) in INDICATORS.items()}}
    assert found and both_ways(found) == [], json.dumps(both_ways(found), ensure_ascii=False)


def test_every_code_a_report_sends_as_it_is_has_its_words():
    codes = dashboard_codes()
    urgencies = get_args(NeedSubmitted.model_fields["urgency"].annotation)
    assert set(urgencies) <= set(codes["urgency"])
    statuses = {*get_args(ProjectStatus), *get_args(ItemStatus), *get_args(PairingStatus)}
    assert statuses <= set(codes["status"]), statuses - set(codes["status"])
    assert set(ROLES) <= set(codes["role"])
