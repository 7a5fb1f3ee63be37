"""The one HTTP layer every source and the NDW push client use.

One `HttpClient` per API wraps a `requests.Session` with explicit (connect, read) timeouts, a
proactive token-bucket rate limiter shared per API account, retries with exponential backoff and
full jitter on 429/502/503/504 and connection errors (honouring `Retry-After`), auth hooks that
can refresh once on 401, typed errors that carry the status and a body excerpt but never a secret,
and request counters that assets put into their materialization metadata.

Sources extend behaviour through hooks, not copies: `check` lets a caller turn a 200 into a retry
(OCPI 3xxx in the body) or a typed error (OCPI 2xxx), `ok` widens the accepted statuses. List
endpoints declare their paging (`PageNumberPaginator`, `OffsetPaginator`, `PageIndexPaginator`)
and `HttpClient.paginate` walks it; `select` picks the records out of a body and `expect` is the
one shape check, so every "not what the API promises" is the same ResponseFormatError.

One concern per module, bottom to top (a module imports only from those below it; `pyproject.toml`
holds them to it):

    errors.py         HttpError and its subclasses, the RetryableResponse signal of `check` hooks
    redaction.py      redact_url, scrub: no secret in a log line, metadata or exception
    retries.py        RetryPolicy (backoff, jitter), parse_retry_after, RETRY_/TRANSIENT_STATUSES
    rate_limits.py    RateLimiter (token bucket, priorities, endpoint-class windows), shared_limiter
    request_stats.py  RequestStats, the counters behind materialization metadata
    auth.py           the Auth hooks: NoAuth, HeaderKeyAuth, QueryKeyAuth, TokenAuth, BearerAuth, OAuth2Bearer
    pagination.py     the paginators, Page, Pull, select_data, announced_total
    client.py         HttpClient: the request loop, deadline and size cap, JSON, shape checks, paginate

Every public name is re-exported here: `from evpipeline.http import HttpClient` is how callers import.
"""

from evpipeline.http.auth import (
    Auth,
    BearerAuth,
    HeaderKeyAuth,
    NoAuth,
    OAuth2Bearer,
    QueryKeyAuth,
    TokenAuth,
)
from evpipeline.http.client import DEFAULT_TIMEOUT, HttpClient
from evpipeline.http.errors import (
    AuthError,
    ClientError,
    DeadlineExceeded,
    HttpError,
    OcpiError,
    RateLimitedError,
    ResponseFormatError,
    ResponseTooLarge,
    RetryableResponse,
    ServerError,
    TransportError,
)
from evpipeline.http.pagination import (
    OffsetPaginator,
    Page,
    PageIndexPaginator,
    PageNumberPaginator,
    Paginator,
    Pull,
    Selector,
    announced_total,
    select_data,
)
from evpipeline.http.rate_limits import RateLimiter, shared_limiter
from evpipeline.http.redaction import redact_url, scrub
from evpipeline.http.request_stats import RequestStats
from evpipeline.http.retries import RETRY_STATUSES, TRANSIENT_STATUSES, RetryPolicy, parse_retry_after

__all__ = [
    "DEFAULT_TIMEOUT",
    "RETRY_STATUSES",
    "TRANSIENT_STATUSES",
    "Auth",
    "AuthError",
    "BearerAuth",
    "ClientError",
    "DeadlineExceeded",
    "HeaderKeyAuth",
    "HttpClient",
    "HttpError",
    "NoAuth",
    "OAuth2Bearer",
    "OcpiError",
    "OffsetPaginator",
    "Page",
    "PageIndexPaginator",
    "PageNumberPaginator",
    "Paginator",
    "Pull",
    "QueryKeyAuth",
    "RateLimitedError",
    "RateLimiter",
    "RequestStats",
    "ResponseFormatError",
    "ResponseTooLarge",
    "RetryPolicy",
    "RetryableResponse",
    "Selector",
    "ServerError",
    "TokenAuth",
    "TransportError",
    "announced_total",
    "parse_retry_after",
    "redact_url",
    "scrub",
    "select_data",
    "shared_limiter",
]
