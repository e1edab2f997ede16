"""Cost of masking one error message (`messages.mask.error_trace`), on the aggregator's thread.

Typical: real messages of sqlite3, the SQLite ODBC driver, psycopg/psycopg2 and HTTP errors, as
the drivers raise them. Worst case: 64 KB inputs built to be costly (every character a token,
nested and unclosed quotes, value lists, paths, echoed statements); masking reads at most 64 KB
of any input. Prints microseconds per message: median and max over the repeats.

    python bench/mask_cost.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from messages.mask import SCAN_CHARS, error_trace

TYPICAL = (
    ("UNIQUE constraint failed: users_k3.email", "SQLITE_CONSTRAINT_UNIQUE"),
    ('near "customers_q9": syntax error', "SQLITE_ERROR"),
    ("[HY000] [SQLite]no such table: ghost_zz9 (1) (1) (SQLExecDirectW)", "HY000"),
    (
        'duplicate key value violates unique constraint "users_k3_email_key"\n'
        "DETAIL:  Key (email)=(alice@example.com) already exists.",
        "23505",
    ),
    (
        'syntax error at or near "customers_q9"\nLINE 1: SELECT ssn FRM customers_q9 WHERE name'
        " = 'zed'\n                       ^",
        "42601",
    ),
    (
        'null value in column "email" of relation "users_k3" violates not-null constraint\n'
        "DETAIL:  Failing row contains (3, null, 5, null).",
        "23502",
    ),
    (
        "function unknownfn_q(unknown) does not exist\nLINE 1: SELECT unknownfn_q('p1')\n"
        "               ^\nHINT:  No function matches the given name and argument types. You "
        "might need to add explicit type casts.",
        "42883",
    ),
    (
        "HTTPSConnectionPool(host='adb-1.azuredatabricks.net', port=443): Max retries exceeded "
        "with url: /sql/1.0/warehouses/abc?o=1 (Caused by NewConnectionError('Failed to "
        "establish a new connection: [Errno 111] Connection refused'))",
        None,
    ),
)
_K = SCAN_CHARS
WORST = {
    "one token per char": ("a:" * _K)[:_K],
    "escaped quotes": ("'\\'" * _K)[:_K],
    "unclosed quote": "'" + "x" * (_K - 1),
    "value lists": ("=(" * _K)[:_K],
    "nested parens": "=" + "(" * (_K - 1),
    "paths": ("/home/u " * _K)[:_K],
    "emails": ("a@b.c " * _K)[:_K],
    "echo lines": ("LINE 1: select\n" * _K)[:_K],
    "words": ("constraint failed " * _K)[:_K],
}


def _cost_us(text: str, code: str | None, loops: int) -> float:
    started = time.perf_counter()
    for _ in range(loops):
        error_trace(text, code)
    return (time.perf_counter() - started) / loops * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'input':<34} {'chars':>7} {'median µs':>11} {'max µs':>10}")
    rows = [(f"typical {i + 1}", text, code, 2000) for i, (text, code) in enumerate(TYPICAL)]
    rows += [(f"64 KB: {name}", text, None, 5) for name, text in WORST.items()]
    typical: list[float] = []
    for name, text, code, loops in rows:
        runs = [_cost_us(text, code, loops) for _ in range(args.repeats)]
        if name.startswith("typical"):
            typical.append(statistics.median(runs))
        print(f"{name:<34} {len(text):>7} {statistics.median(runs):>11.1f} {max(runs):>10.1f}")
    print(f"{'typical, median of the messages':<34} {'':>7} {statistics.median(typical):>11.1f}")


if __name__ == "__main__":
    main()
