import sys

from podfleet.cli import main

sys.exit(main())
