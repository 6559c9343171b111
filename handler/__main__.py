"""`python -m podfleet` runs the worker, exactly like `python handler.py`."""

from podfleet.main import main

main()
