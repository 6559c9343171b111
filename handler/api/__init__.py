"""The RunPod endpoint API client: async (`EndpointClient`) and blocking (`SyncEndpointClient`)."""

from handler.api.client import EndpointClient, UpdateCallback
from handler.api.errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeout,
    AuthError,
    BadRequest,
    JobNotFound,
    RateLimited,
    ServerError,
)
from handler.api.models import Health, JobState, JobStatus, Policy
from handler.api.ratelimit import RUNPOD_LIMITS, OperationLimit, RateLimits
from handler.api.retry import RetryPolicy
from handler.api.sync import SyncEndpointClient

__all__ = [
    "RUNPOD_LIMITS",
    "ApiConnectionError",
    "ApiError",
    "ApiTimeout",
    "AuthError",
    "BadRequest",
    "EndpointClient",
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
]
