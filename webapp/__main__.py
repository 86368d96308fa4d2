"""`python -m webapp db ...` (webapp.ops.cli) and `python -m webapp proxy ...`
(webapp.ops.proxy_cli)."""

import sys

if sys.argv[1:2] == ["proxy"]:
    from webapp.ops.proxy_cli import main as proxy_main

    raise SystemExit(proxy_main(sys.argv[2:]))

from webapp.ops.cli import main

raise SystemExit(main())
