"""Command line: `python -m scim_engine_host serve …` (the launcher, see
`serve.py`) and `python -m scim_engine_host drain --db FILE` (empties the
outbox once, for a cron job or a management command; prints the number of
tasks finished)."""

import argparse
import logging
import sys


def drain_main(argv) -> int:
    p = argparse.ArgumentParser(prog="scim_engine_host drain")
    p.add_argument("--db", required=True, help="SQLite database file")
    p.add_argument("--component", help="engine component (default: $SCIM_ENGINE_WASM)")
    p.add_argument("--cache-dir", help="where compiled engine code is cached")
    p.add_argument("--batch", type=int, default=1000, help="users per batch")
    p.add_argument("--max-tasks", type=int, help="stop after this many tasks")
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    from .host import Host

    host = Host(args.db, component_path=args.component, cache_dir=args.cache_dir)
    print(host.drain(batch=args.batch, max_tasks=args.max_tasks))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from .serve import main as serve_main

        return serve_main(argv[1:])
    if argv[:1] == ["drain"]:
        return drain_main(argv[1:])
    print("usage: python -m scim_engine_host {serve|drain} [--help]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
