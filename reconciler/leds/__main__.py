"""`python3 -m leds` on a node (`python -m picl.reconciler.leds` where picl is installed)."""

from .service import main

raise SystemExit(main())
