from sferumd.cli import main

raise SystemExit(main())
