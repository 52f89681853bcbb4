"""``python -m failover_gateway --config PATH`` runs the gateway, like the console script."""

import sys

from failover_gateway.server.main import main

sys.exit(main())
