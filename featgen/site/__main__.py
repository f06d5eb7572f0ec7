"""``python -m featgen.site build|plan``: render the galleries and write their pages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import FeatgenError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m featgen.site")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="render the galleries (cached) and write their pages under docs/galleries")
    b.add_argument("--profile", default="quick")
    b.add_argument("--device", default=None)
    b.add_argument("--docs", default="docs")
    b.add_argument("--cache", default=".featgen-cache")
    b.add_argument("--renders-only", action="store_true", help="fill the cache; write no pages (GPU machines)")
    p = sub.add_parser("plan", help="print what a profile renders, with counts")
    p.add_argument("--profile", default="quick")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "plan":
            from .build import plan

            rows = plan(args.profile)
            for r in rows:
                print(f"{r['model']:<20} {r['backend']:<10} {r['layer']:<24} {r['units']:>5} of {r['channels']} units")
            print(f"{args.profile}: {len(rows)} layers, {sum(r['units'] for r in rows)} units")
            return 0
        from .build import build, invalidate_stale_tutorials

        if invalidate_stale_tutorials(Path(args.docs) / "tutorials"):
            print("featgen changed since the tutorials last ran: they will re-run")
        stats = build(args.profile, docs=args.docs, cache_dir=args.cache, device=args.device, pages=not args.renders_only)
        for entry in stats["corrupt"]:
            print(f"corrupt cache entry re-rendered: {entry}")
        what = "nothing to render, all from cache" if not stats["rendered"] else f"{stats['rendered']} renders"
        print(f"galleries ({args.profile}): {what}; {stats['cached']} cached; {stats['seconds']} s")
        return 0
    except FeatgenError as exc:
        print(f"featgen.site: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
