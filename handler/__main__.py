"""`python -m handler` runs the worker, exactly like `python handler.py`."""

from handler.main import main

main()
