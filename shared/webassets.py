"""The browser files of the docs pages (Swagger UI at `/docs`, the AsyncAPI component at the
events service's `/asyncapi`), served by each service itself under `/static/`.

Government intranets reach no CDN, so nothing a page loads may come from another host. The
files come from npm packages pinned in package.json and package-lock.json, which `make`
installs (`npm ci`) into the checkout's node_modules/ (the Docker image copies the same files
into its own). They are public code, not data: `shared.auth.authenticate` lets `/static/`
through without a key, while the pages and the specs they show stay behind one.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

PREFIX = "/static/"

# What a page may load, by its name under /static/ -> its file inside node_modules. Only these
# are served: node_modules holds far more (the packages' own dependencies), none of it needed.
FILES: dict[str, str] = {
    "swagger-ui/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "swagger-ui/favicon-32x32.png": "swagger-ui-dist/favicon-32x32.png",
    "asyncapi/index.js": "@asyncapi/react-component/browser/standalone/index.js",
    "asyncapi/default.min.css": "@asyncapi/react-component/styles/default.min.css",
}

# Tongxin's own pages' files, kept beside their code (no build step): /static/<prefix><file>.
OWN_DIRS: dict[str, Path] = {
    "dashboard/": Path(__file__).resolve().parent.parent / "services" / "reporting" / "dashboard"
    / "static",
    "forms/": Path(__file__).resolve().parent.parent / "services" / "events" / "forms" / "static",
}

# Files of Tongxin's own that every service serves: /static/<name>. The icon of every page
# (dashboard, forms, login, docs): an SVG of ours, so no browser asks another host for one.
OWN_FILES: dict[str, Path] = {
    "favicon.svg": Path(__file__).resolve().parent / "static" / "favicon.svg",
}
FAVICON = PREFIX + "favicon.svg"

INSTALL_HINT = ("run `make .venv/.installed-stamp` (it runs `npm ci`) in the checkout, or set "
                "TONGXIN_WEB_ASSETS to the node_modules directory that holds them")


def checkout_node_modules() -> Path:
    """Where `npm ci` puts the packages in this checkout (package.json is at its root)."""
    return Path(__file__).resolve().parent.parent / "node_modules"


class WebAssets:
    """The files of FILES under `root` (a node_modules directory)."""

    def __init__(self, root: Path | None = None):
        self.root = root or checkout_node_modules()

    def path(self, name: str) -> Path:
        return self.root / FILES[name]

    def missing(self, *names: str) -> list[str]:
        """Those of `names` not installed: a page needing one would render blank."""
        return [n for n in names if not self.path(n).is_file()]

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.get(PREFIX + "{name:path}", include_in_schema=False)
        async def asset(name: str) -> FileResponse:
            if (own := own_file(name)) is not None:
                return FileResponse(own)
            if name not in FILES:
                raise HTTPException(404, f"no such file: {PREFIX}{name}")
            if self.missing(name):
                raise HTTPException(404, f"{PREFIX}{name} is not installed: {INSTALL_HINT}")
            return FileResponse(self.path(name))

        return router


def own_file(name: str) -> Path | None:
    """The file `name` names in OWN_FILES or one of OWN_DIRS, if it is there (never a path
    out of it)."""
    if name in OWN_FILES:
        return OWN_FILES[name]
    for prefix, root in OWN_DIRS.items():
        if name.startswith(prefix):
            path = (root / name[len(prefix):]).resolve()
            if path.is_file() and path.is_relative_to(root):
                return path
    return None
