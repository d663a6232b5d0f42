import sys

from harness.views.cli import main

sys.exit(main())
