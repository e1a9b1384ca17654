import services.registry.identities  # noqa: F401  (its tables are in the same metadata)
from services.registry.store import metadata
from shared.migrations_env import run

run(metadata)
