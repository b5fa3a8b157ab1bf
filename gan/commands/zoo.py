"""The pretrained zoo (the reference's published CycleGAN generators), by name:

    python -m gan.zoo list             # the names, what each does, which are in the cache
    python -m gan.zoo get style_monet  # download one now (test.py --checkpoint zoo:style_monet does it too)

The work is gan.hub.zoo's; this is the command.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from gan.cli import run

    parser = argparse.ArgumentParser(prog="python -m gan.zoo", description="The pretrained CycleGAN zoo.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the models, what each does, and which are cached")
    get = sub.add_parser("get", help="download models into the cache")
    get.add_argument("names", nargs="+", metavar="NAME")
    args = parser.parse_args(argv)

    def go() -> int:
        from gan.hub import zoo

        if args.command == "list":
            have = zoo.cached()
            width = max(map(len, zoo.ZOO))
            for name, what in zoo.ZOO.items():
                print(f"zoo:{name:<{width}}  {what}{'  (cached)' if name in have else ''}")
            print(f"\ncache: {zoo.cache_home() / 'zoo'}  (GAN_HOME moves it)\nsource: {zoo.base_url()}  "
                  "(GAN_ZOO_URL points at a mirror)")
            return 0
        for name in args.names:
            print(zoo.fetch(name.removeprefix(zoo.PREFIX)))
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
