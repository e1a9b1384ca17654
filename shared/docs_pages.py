"""The HTML of the docs pages: Swagger UI for a service's OpenAPI, the AsyncAPI component for
the events service's bus. Each page names no other host: its script, stylesheet and icon (an
SVG of Tongxin's own) come from the service's own `/static/` (`shared.webassets`), and Swagger
UI's online validator is off (it would have validator.swagger.io fetch the spec)."""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from shared.webassets import FAVICON, INSTALL_HINT, PREFIX, WebAssets

SWAGGER_FILES = ("swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css")
ASYNCAPI_FILES = ("asyncapi/index.js", "asyncapi/default.min.css")

# What the AsyncAPI component shows (FastStream's own page shows the same). Its "try it"
# plugin is left out: it comes from a CDN and posts to an endpoint these services do not have.
ASYNCAPI_CONFIG = {
    "show": {"sidebar": True, "info": True, "servers": True, "operations": True,
             "messages": True, "schemas": True, "errors": True},
    "expand": {"messageExamples": True},
    "sidebar": {"showServers": "byDefault", "showOperations": "byDefault"},
}


def script_json(value: Any) -> str:
    """JSON to put inside a <script>: a `</script>` in a description cannot end it."""
    return (json.dumps(value, ensure_ascii=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def not_installed(assets: WebAssets, files: tuple[str, ...]) -> HTMLResponse | None:
    """A page saying what to install, instead of one that would render blank."""
    missing = assets.missing(*files)
    if not missing:
        return None
    items = "".join(f"<li><code>{html.escape(str(assets.path(n)))}</code></li>" for n in missing)
    return HTMLResponse(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Not installed</title></head>"
        f"<body><p>This page's browser files are not installed:</p><ul>{items}</ul>"
        f"<p>{html.escape(INSTALL_HINT)}.</p></body></html>", status_code=503)


def swagger_page(assets: WebAssets, title: str, openapi_url: str, root: str = "",
                 ) -> HTMLResponse:
    """Swagger UI for the spec at `openapi_url`; `root` is the app's root path (a proxy's)."""
    if (refusal := not_installed(assets, SWAGGER_FILES)) is not None:
        return refusal
    static = root + PREFIX
    return get_swagger_ui_html(
        openapi_url=root + openapi_url, title=title,
        swagger_js_url=static + "swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=static + "swagger-ui/swagger-ui.css",
        swagger_favicon_url=root + FAVICON,
        swagger_ui_parameters={"validatorUrl": None})


def asyncapi_page(assets: WebAssets, title: str, schema: dict, root: str = "") -> HTMLResponse:
    """The AsyncAPI component rendering `schema` (the spec, inlined: one request fewer)."""
    if (refusal := not_installed(assets, ASYNCAPI_FILES)) is not None:
        return refusal
    static = root + PREFIX
    return HTMLResponse(f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(title)} AsyncAPI</title>
<link rel="icon" href="{root}{FAVICON}" type="image/svg+xml">
<link rel="stylesheet" href="{static}asyncapi/default.min.css">
<style>
html {{ font-family: ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto,
       "Noto Sans", "Noto Sans CJK SC", sans-serif; line-height: 1.5; }}
</style>
</head>
<body>
<div id="asyncapi"></div>
<script src="{static}asyncapi/index.js"></script>
<script>
AsyncApiStandalone.render({{schema: {script_json(schema)}, config: {script_json(ASYNCAPI_CONFIG)}}},
                          document.getElementById("asyncapi"));
</script>
</body>
</html>
""")
