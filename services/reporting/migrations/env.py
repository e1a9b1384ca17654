from services.reporting import models  # noqa: F401  (every read model's tables)
from services.reporting.store import metadata
from shared.migrations_env import run

run(metadata)
