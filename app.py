"""The web app: `python app.py --help`.

The program is gan.commands.app (installed as `gan-app`)."""

import sys

from gan.commands.app import main

if __name__ == "__main__":
    sys.exit(main())
