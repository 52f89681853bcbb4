"""``python -m kube_testbed`` builds the control plane binaries, like ``python -m
kube_testbed.building`` (kept so the package alone is enough to name in scripts)."""

import sys

from kube_testbed.building import main

sys.exit(main())
