"""``python -m skelssl`` (and ``torchrun -m skelssl pretrain ...``)."""

import sys

from skelssl.cli import main

sys.exit(main())
