"""The image's CMD: `python handler.py [--test_input '{...}']` (RunPod's worker entry).

The `handler/` package next to this file takes precedence on import, so this script stays thin.
"""

from handler.main import main

if __name__ == "__main__":
    main()
