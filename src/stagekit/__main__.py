"""``python -m stagekit``: the same as the ``stagekit`` command (and ``python -m stagekit.cli``)."""

import sys

from stagekit.cli import main

sys.exit(main())
