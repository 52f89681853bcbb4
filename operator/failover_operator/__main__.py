"""``python -m failover_operator`` runs the operator, like the console script."""

import sys

from failover_operator.main import main

sys.exit(main())
