"""The caller side: call a podfleet (RunPod) endpoint from FastAPI and Celery, never twice.

`podfleet.integrations.fastapi` (extra `fastapi`) and `podfleet.integrations.celery` (extra
`celery`) are imported on demand; this package itself loads neither. See docs/caller.md.
"""

from podfleet.integrations.config import CallerConfig, check_key
from podfleet.integrations.ledger import Claim, Ledger, Record
from podfleet.integrations.submit import Outcome, Submitter, TransientSubmitError

__all__ = [
    "CallerConfig",
    "Claim",
    "Ledger",
    "Outcome",
    "Record",
    "Submitter",
    "TransientSubmitError",
    "check_key",
]
