"""The customer lookup (`customer list WORDS`, the new-conversation composer's To) at 100 000 customers.

    PYTHONPATH=. /work/main/.venv/bin/python bench/bench_customer_lookup.py [--customers 100000] [--runs 7]
        [--database-url postgresql+psycopg://…]   # default: a fresh SQLite file in a temporary directory

Fills an empty database with customers (a name, an email address, a phone number each) through
the same triggers every write path uses, then times `search.search_customer_ids` for what an agent
types, word by word as prefixes: median of runs, CPU and wall time, and the query plan.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

FIRST = "Ines Inge Ivo Jan Joost Kemi Lars Lea Mara Mateo Nina Noor Olaf Pia Ravi Sara Tess Wen Zed Eva".split()
LAST = "Brouwer Bakker Berg Dekker Haddad Jansen Khan Meijer Moreno Mulder Petrov Smit Visser Yilmaz".split()
DOMAINS = "mail.example pedalpowerclub.example velocouriers.example tandemtours.example supplier.example".split()
AT = datetime(2026, 12, 1, tzinfo=timezone.utc)
TYPED = ["br", "brouw", "ines brou", "ines brouwer", "pedalp", "mail", "+31600012", "nothing"]


def fill(engine, count: int) -> None:
    from sqlalchemy import text

    from agentdesk.store import db

    rng = random.Random(16)
    with db.write_session(engine) as session:
        connection = session.connection()
        for start in range(0, count, 5000):
            rows = range(start, min(start + 5000, count))
            customers = [
                {"id": i + 1, "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}{rng.randrange(1000)}", "at": AT}
                for i in rows
            ]
            connection.execute(
                text(
                    "INSERT INTO customer (id, name, organization, tier, notes, created_at) "
                    "VALUES (:id, :name, '', '', '', :at)"
                ),
                customers,
            )
            identities = []
            for c in customers:
                local = c["name"].lower().replace(" ", ".")
                identities.append(
                    {"c": c["id"], "k": "email", "a": f"{local}.{c['id']}@{rng.choice(DOMAINS)}", "at": AT}
                )
                identities.append({"c": c["id"], "k": "phone", "a": f"+316{c['id']:08d}", "at": AT})
            connection.execute(
                text("INSERT INTO identity (customer_id, kind, address, created_at) VALUES (:c, :k, :a, :at)"),
                identities,
            )
        session.commit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    from agentdesk.store import db, search

    directory = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite:///{Path(directory.name) / 'agentdesk.db'}"
    engine = db.open_database(url)
    started = time.perf_counter()
    fill(engine, args.customers)
    print(f"{engine.dialect.name}: {args.customers} customers filled in {time.perf_counter() - started:.1f} s")
    with engine.connect() as connection:
        for typed in TYPED:
            walls, cpus, found = [], [], []
            for _ in range(args.runs):
                wall, cpu = time.perf_counter(), time.process_time()
                found = search.search_customer_ids(connection, typed, limit=9)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            print(
                f"  {typed!r:16} {len(found)} hit(s)  wall {statistics.median(walls) * 1000:7.1f} ms"
                f"  cpu {statistics.median(cpus) * 1000:7.1f} ms"
            )
        query = search.search_parameters(search.as_prefixes("ines brou"), engine.dialect.name)["q"]
        if engine.dialect.name == "sqlite":
            plan = connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT rowid FROM customer_fts WHERE customer_fts MATCH ? ORDER BY rank LIMIT 9",
                (query,),
            )
            print("  plan:", " | ".join(str(row[-1]) for row in plan))
        else:
            plan = connection.exec_driver_sql(
                "EXPLAIN ANALYZE SELECT customer_id FROM customer_search WHERE document @@ to_tsquery('simple', %(q)s) "
                "ORDER BY ts_rank(document, to_tsquery('simple', %(q)s)) DESC, customer_id LIMIT 9",
                {"q": query},
            )
            print("  plan:\n    " + "\n    ".join(row[0] for row in plan))
    engine.dispose()


if __name__ == "__main__":
    main()
