"""Stylize photos, by optimisation or with a feed-forward style model: `python stylize.py --help`.

The program is gan.commands.stylize (installed as `gan-stylize`)."""

import sys

from gan.commands.stylize import main

if __name__ == "__main__":
    sys.exit(main())
