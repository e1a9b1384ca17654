"""What a report's response model costs on the way out: the volunteers ledger (the widest JSON
report: a row per volunteer, up to 100,000 a page) serialised as FastAPI did before the report
had a response model (`jsonable_encoder`, then `json.dumps`) and through its response model
(validated against `Volunteers`, then written by pydantic-core: `dump_json`), as every route
returning a dict now is. The bytes must be the same. (The reports themselves have since been
handed over as orjson responses, `shared.json_response.JSON`: their models describe them.)

    python -m bench.answers [--rows 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from fastapi.encoders import jsonable_encoder
from fastapi.routing import serialize_response
from fastapi.utils import create_model_field

from services.reporting.models.volunteers import Volunteers


def ledger(n: int) -> dict:
    """A volunteers report of `n` rows, as `ledger_report` and `as_json` build it."""
    methods = ("self", "organiser", "sign_in", "import")
    rows = [{"volunteer_id": f"v{i:06d}", "name": f"志愿者{i}", "organization_id": f"o{i % 50}",
             "organization_name": f"单位{i % 50}", "hours_confirmed": round(i % 997 * 1.25, 2),
             "hours_unconfirmed": 1.5, "hours_by_method": {m: 0.5 for m in methods},
             "activities": i % 40, "open_sign_ins": i % 2, "star_level": i % 6}
            for i in range(n)]
    totals = {"volunteer_id": None, "name": None, "organization_id": None,
              "organization_name": None, "volunteers": n, "hours_confirmed": 1.0,
              "hours_unconfirmed": 1.0, "hours_by_method": {m: 1.0 for m in methods},
              "activities": 5, "open_sign_ins": 1, "star_level": None}
    return {"rows": rows, "totals": totals, "total": n, "limit": None, "offset": 0,
            "star_thresholds": [100, 300, 600, 1000, 1500], "as_of": 5}


async def main(sizes: list[int]) -> None:
    field = create_model_field(name="answer", type_=Volunteers, mode="serialization")
    print("| rows | before: jsonable_encoder + json.dumps | after: response model + dump_json "
          "| same bytes |\n| --- | --- | --- | --- |")
    for n in sizes:
        body = ledger(n)
        started = time.perf_counter()
        before = json.dumps(jsonable_encoder(body), ensure_ascii=False,
                            separators=(",", ":")).encode()
        old = time.perf_counter() - started
        started = time.perf_counter()
        after = await serialize_response(field=field, response_content=body,
                                         exclude_unset=True, dump_json=True)
        new = time.perf_counter() - started
        print(f"| {n:,} | {old * 1000:,.0f} ms | {new * 1000:,.0f} ms | {before == after} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10_000, 100_000])
    asyncio.run(main(parser.parse_args().rows))
