"""``python -m simulations.coherence_study JSON --page P --figure F``: regenerate the page."""

import sys

from .report import main

sys.exit(main())
