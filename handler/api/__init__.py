"""The RunPod endpoint API client: async (`EndpointClient`) and blocking (`SyncEndpointClient`)."""

from podfleet.api.client import EndpointClient, UpdateCallback
from podfleet.api.errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeout,
    AuthError,
    BadRequest,
    JobNotFound,
    RateLimited,
    ServerError,
)
from podfleet.api.models import (
    EndpointWorker,
    Health,
    JobState,
    JobStatus,
    Policy,
    WorkersListing,
    WorkerStatus,
)
from podfleet.api.ratelimit import RUNPOD_LIMITS, OperationLimit, RateLimits
from podfleet.api.retry import RetryPolicy
from podfleet.api.sync import SyncEndpointClient

__all__ = [
    "RUNPOD_LIMITS",
    "ApiConnectionError",
    "ApiError",
    "ApiTimeout",
    "AuthError",
    "BadRequest",
    "EndpointClient",
    "EndpointWorker",
    "Health",
    "JobNotFound",
    "JobState",
    "JobStatus",
    "OperationLimit",
    "Policy",
    "RateLimited",
    "RateLimits",
    "RetryPolicy",
    "ServerError",
    "SyncEndpointClient",
    "UpdateCallback",
    "WorkerStatus",
    "WorkersListing",
]
