"""`python -m skyrelay.config FILE` checks a configuration file (the same as `skyrelay check-config FILE`)."""

import sys

from .check import main

sys.exit(main())
