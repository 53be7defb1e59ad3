"""`python -m microcrop_assets.cli`: the `microcrop` command."""

import sys

from microcrop_assets.cli import main

sys.exit(main())
