"""`/forms/`: the units' logging page, and `GET /v1/forms/choices`, what it offers to choose.

The page is behind the same key or login as the API (a browser without a session is sent to
the registry's login and back, `shared.http.login_redirect`); its script and style are public
files under `/static/forms/` (`shared.webassets.OWN_DIRS`). The page carries no data: the
script asks for the choices, scoped by whoever is logged in.

`/forms/sw.js` is the page's service worker (scope `/forms/`): with the web app manifest
(`/static/forms/manifest.webmanifest`) the forms install as an app and open with no network;
entries wait on the device and are sent when it returns (`static/outbox.js`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.events.forms.choices import Choices, choices_for
from shared.auth import principal

PAGE = Path(__file__).resolve().parent / "page.html"
WORKER = Path(__file__).resolve().parent / "sw.js"

router = APIRouter(tags=["forms"])


@router.get("/forms", include_in_schema=False)
async def forms_redirect() -> RedirectResponse:
    return RedirectResponse("forms/", status_code=307)


@router.get("/forms/", include_in_schema=False)
async def forms_page() -> HTMLResponse:
    # Read each time: a few kilobytes, and an edited page shows without a restart. Its links
    # are relative, so it works behind a proxy's path prefix too.
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})


@router.get("/forms/sw.js", include_in_schema=False)
async def forms_worker() -> Response:
    # The service worker: served from /forms/ so its scope is the page's; checked for a new
    # version on each visit (no-cache), as browsers do for workers anyway.
    return Response(WORKER.read_text(encoding="utf-8"), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache"})


@router.get("/v1/forms/choices", response_model=Choices,
            summary="What the logging forms offer the caller to choose from (its scope)",
            description="The caller's units, bases (those of its pairings first, marked "
                        "`paired`), teams, volunteers "
                        "(names only), pairings, the taxonomy, its recent logged activities, "
                        "the open needs at bases it is paired with and the needs it claimed, "
                        "each with the need it may repeat (`possible_duplicate_of`, "
                        "`original`), if any.")
async def forms_choices(request: Request) -> Choices:
    window = timedelta(hours=request.app.state.settings.need_duplicate_hours)
    async with request.app.state.acceptor.engine.connect() as conn:
        return await choices_for(conn, principal(request), window)
