"""`python -m het_ensembles.cli` is the `het-ensembles` console script."""

import sys

from het_ensembles.cli import main

sys.exit(main())
