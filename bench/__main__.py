"""Run the benchmarks, print a table and write bench/out/results.json.

    python -m bench                    # everything
    python -m bench imports            # benchmarks whose name contains "imports"
    python -m bench --backend sqlite   # one backend only
    python -m bench --list             # what is registered
"""

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

import uvloop

from bench import load
from bench.common import (
    BACKENDS,
    DEFAULT_PG_URL,
    OUT,
    Context,
    Result,
    print_table,
    scratch_folder,
    selected,
    write_results,
)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("filters", nargs="*", metavar="FILTER",
                        help="run only the benchmarks whose name contains one of these")
    parser.add_argument("--backend", action="append", choices=BACKENDS,
                        help="a database backend to run on (repeat for both; default both)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each side; medians are reported")
    parser.add_argument("--out", type=Path, default=OUT / "results.json", help="where to write the results")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a figure misses its goal")
    parser.add_argument("--list", action="store_true", help="list the registered benchmarks and stop")
    return parser.parse_args(argv)


async def run_all(args: argparse.Namespace) -> tuple[list[Result], list[tuple[str, str]]]:
    results: list[Result] = []
    failures: list[tuple[str, str]] = []
    with scratch_folder() as scratch:
        ctx = Context(repeats=args.repeats, backends=args.backend or list(BACKENDS),
                      pg_url=os.environ.get("DOORSTEP_TEST_PG_URL") or DEFAULT_PG_URL, scratch=Path(scratch))
        for bench in selected(args.filters):
            print(f"{bench.name}: {bench.doc}", file=sys.stderr, flush=True)
            runs = ([(f"{bench.name}.{b}", (ctx, b)) for b in ctx.backends] if bench.per_backend
                    else [(bench.name, (ctx,))])
            for name, call in runs:
                start = time.perf_counter()
                try:
                    results += await bench.run(*call)
                except Exception as exc:
                    traceback.print_exc()
                    failures.append((name, f"{type(exc).__name__}: {exc}"))
                print(f"  {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return results, failures


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    load()
    if args.list:
        for bench in selected(args.filters):
            print(f"{bench.name}  {bench.doc}")
        return 0
    if not selected(args.filters):
        print(f"no benchmark matches {' '.join(args.filters)} (python -m bench --list)", file=sys.stderr)
        return 2
    # uvloop, the event loop uvicorn serves the app on (uvicorn[standard] picks it): the app and its raw
    # baselines are measured on the loop they run on in production.
    results, failures = uvloop.run(run_all(args))
    write_results(results, args.out)
    print_table(results, failures)
    print(f"wrote {args.out}")
    if failures:
        return 1
    return 1 if args.strict and not all(r.met for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
