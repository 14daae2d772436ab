"""``python -m pcfilter_lib.cli``: the ``pcfilter`` command line (how ``--jobs`` starts its workers)."""

import sys

from pcfilter_lib.cli.app import main

sys.exit(main())
