"""The image's CMD: `python handler.py [--test_input '{...}']` (RunPod's worker entry).

podfleet installs as the package `podfleet` (this repository's `handler/` directory), so this file,
or a user's own `handler.py`, never shadows it.
"""

from podfleet.main import main

if __name__ == "__main__":
    main()
