"""Translate images and videos with a trained generator: `python test.py --help`.

The program is gan.commands.translate (installed as `gan-translate`)."""

import sys

from gan.commands.translate import main

if __name__ == "__main__":
    sys.exit(main())
