"""Train a model of any kind (CycleGAN, CUT, a style network, AdaIN): `python train.py --help`.

The program is gan.commands.train (installed as `gan-train`)."""

import sys

from gan.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
