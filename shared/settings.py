"""One settings object for every service, read from `TONGXIN_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.db import MAX_OVERFLOW, POOL_SIZE
from shared.streams import DUPLICATE_WINDOW


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TONGXIN_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    # Prefix for stream and subject names. Empty in production (the names in CONTRACT.md);
    # tests set it so runs sharing one NATS server never see each other's messages.
    namespace: str = ""

    # JetStream replicas per stream: 1 on one server, 3 on a cluster.
    stream_replicas: int = Field(1, ge=1, le=5)
    # Seconds each stream remembers a Nats-Msg-Id (in the server's memory): long enough for a
    # publisher's retry of a publish; `event_id` dedupe beyond it is the database's.
    duplicate_window: float = Field(DUPLICATE_WINDOW, gt=0, le=24 * 3600)

    data_dir: Path = Path("var")
    registry_database_url: str | None = None
    events_database_url: str | None = None
    reporting_database_url: str | None = None
    # PostgreSQL schema for this process's tables; lets services share one database safely.
    db_schema: str | None = None
    migrate_on_start: bool = True
    # PostgreSQL connections per process: kept open, and opened beyond them at a peak. Every
    # instance of every service at most adds up to their sum: keep the total under the
    # server's max_connections (shared/db.py; README "Deploy at scale").
    db_pool_size: int = Field(POOL_SIZE, ge=1)
    db_max_overflow: int = Field(MAX_OVERFLOW, ge=0)

    host: str = "127.0.0.1"
    registry_port: int = 8001
    events_port: int = 8002
    reporting_port: int = 8003

    # The programme's local time zone: months and days in reports are counted in it.
    timezone: str = "Asia/Shanghai"
    publish_timeout: float = Field(5.0, description="seconds to wait for a JetStream PubAck")
    batch_size: int = 500
    min_seq_wait: float = 5.0
    # Single-event HTTP requests arriving together are accepted as one batch (one transaction):
    # a request alone goes at once; while one batch is in hand the next gathers this many
    # seconds, or until this many requests wait (services/events/grouping.py).
    http_group_window: float = Field(0.002, ge=0, le=0.1)
    http_group_max: int = Field(100, ge=1, le=1000)
    # No longer used: reports are built side by side, as many at once as the database pool
    # (db_pool_size + db_max_overflow) gives connections. Still accepted, so a deployment
    # that sets it starts as before.
    report_concurrency: int = Field(4, ge=1)
    # Memory for report answers kept by question and read-model positions (reporting's
    # answers.py), in MiB; 0: none kept (identical requests at once still share one).
    report_cache_mb: float = Field(64.0, ge=0)
    # A unit owes a report this many days after an activity ends (服务旗帜接传).
    report_due_days: float = Field(7.0, ge=0)
    # How far ahead of the clock an event may be dated: an activity's end, a visit's day, any
    # envelope's occurred_at. More is refused (422, naming the field).
    future_grace_hours: float = Field(24.0, ge=0)
    # A volunteer's phone that sends its place signs in only this near the base (if the base
    # has latitude and longitude in the registry); farther is refused, naming `location`.
    sign_in_radius_m: float = Field(1000.0, gt=0)
    # How often the events service looks for reports that fell overdue.
    deadline_sweep_seconds: float = Field(5.0, gt=0)
    # An offer whose prerequisite has not arrived (a need claimed before it was submitted,
    # from two systems) is retried with back-off for this long before it is dead-lettered.
    prerequisite_wait: float = Field(600.0, ge=0)
    # The 12345 rates for needs: a need claimed within this many hours of its submission was
    # answered on time (按时响应); one never claimed counts against the rate once they pass.
    need_response_hours: float = Field(24.0, gt=0)
    # A new need at the same base, of the same category, within this many hours of a need
    # still open or claimed there is flagged as a possible duplicate of it.
    need_duplicate_hours: float = Field(72.0, ge=0)
    # Volunteers' star levels 1-5 by confirmed hours (CONTRACT.md: default 100/300/600/1000/1500).
    star_thresholds: tuple[float, float, float, float, float] = (100, 300, 600, 1000, 1500)
    photo_max_bytes: int = Field(10 * 1024 * 1024, gt=0)
    # The TrueType font the report document (PDF) embeds: one with Chinese glyphs, on disk, so
    # the PDF is made offline and reads the same everywhere (Debian: fonts-wqy-zenhei).
    pdf_font: str = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
    log_level: str = "INFO"
    # Signs browser sessions; every service must have the same one. Unset: kept in
    # <data_dir>/secret_key (made once), which `tongxin up`'s services share.
    secret_key: str | None = None
    session_hours: float = Field(12.0, gt=0)
    # Where a browser without a session is sent (default: the registry's /login on the host
    # the browser asked); set it when the services sit behind a proxy.
    login_url: str | None = None
    # Write requests a key may make per minute, unless the key names its own limit.
    rate_limit: int = Field(600, ge=1)
    # The node_modules holding the docs pages' browser files (shared/webassets.py); unset:
    # the checkout's, which `make` fills with `npm ci`.
    web_assets: Path | None = None

    def session_secret(self) -> str:
        if self.secret_key:
            return self.secret_key
        import os
        import secrets
        import time

        path = self.data_dir / "secret_key"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: of services starting together, one makes it and the others read it
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
        except FileExistsError:
            pass
        for _ in range(50):
            if secret := path.read_text().strip():
                return secret
            time.sleep(0.02)  # being written by the one that made it
        raise RuntimeError(f"{path} is empty: delete it, or set TONGXIN_SECRET_KEY")

    @field_validator("db_schema", "secret_key", "registry_database_url", "events_database_url",
                     "reporting_database_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        return value or None

    def local_url(self, service: str) -> str:
        """Where a client on this machine reaches `service` (the CLI's default for each of
        its --registry/--events/--reporting): TONGXIN_HOST and the service's port, 127.0.0.1
        for a service listening on every address."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{getattr(self, f'{service}_port')}"

    def database_url(self, service: str) -> str:
        url = getattr(self, f"{service}_database_url")
        if url:
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
