"""``python -m hcs_neuro`` is the ``hcs-neuro`` command."""

import sys

from hcs_neuro.cli import main

sys.exit(main())
