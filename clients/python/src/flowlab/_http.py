"""HTTP with the retry rules a lab can trust.

A request is sent again, after a growing pause and at most ``max_retries`` times, when:

* the connection could not be made (nothing was sent, so any request may be retried);
* the connection broke or timed out after the request was sent, or the server answered
  502/503/504, and the request is *idempotent*: a read, or a write that carries an
  idempotency key, which the server answers with the stored result instead of acting
  twice. A round that waited too long for the model answers 503 with nothing stored.

Everything else is returned or raised at once. Every attempt of one call carries the same
``x-request-id``, so the server's log tells the whole story of a retried call.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import httpx

from .errors import ApiError, TransportError

#: Statuses worth asking again for an idempotent request: a gateway in between, or the
#: server unavailable for now (model not ready in time, shutting down).
RETRY_STATUSES = frozenset({502, 503, 504})

#: Errors where the request certainly did not reach the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: at most ``max_retries`` more attempts, pausing
    ``backoff * 2**n`` seconds (at most ``max_backoff``, with jitter) before attempt n+1,
    or as long as a ``Retry-After`` header asks, within the same cap."""

    max_retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0

    def pause(self, retry: int, retry_after: Optional[float] = None) -> float:
        if retry_after is not None:
            return min(self.max_backoff, max(0.0, retry_after))
        base = min(self.max_backoff, self.backoff * 2.0**retry)
        # Jitter keeps several lab scripts that failed together from retrying in lockstep.
        return base * random.uniform(0.5, 1.0)


def new_request_id() -> str:
    return f"flowlab-py-{uuid.uuid4().hex}"


def _retry_after(response: httpx.Response) -> Optional[float]:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def api_error(response: httpx.Response) -> ApiError:
    """The error body ``{"error": {"code", "message", "details"}}`` as an :class:`ApiError`;
    an answer without it (a gateway's page) keeps its status and text."""
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
        error = body["error"]
        code = str(error["code"])
        message = str(error["message"])
        details = error.get("details")
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()
        return ApiError(
            response.status_code,
            "unknown",
            text[:500] or response.reason_phrase,
            request_id=request_id,
        )
    field = details.get("field") if isinstance(details, dict) else None
    index = details.get("index") if isinstance(details, dict) else None
    return ApiError(
        response.status_code,
        code,
        message,
        field=field if isinstance(field, str) else None,
        index=index if isinstance(index, int) else None,
        details=details,
        request_id=request_id,
    )


class HttpSession:
    """One connection pool to the server, the token, the timeouts and the retry policy."""

    def __init__(
        self,
        base_url: str,
        token: Optional[str],
        *,
        timeout: float,
        retry: RetryPolicy,
        transport: Optional[httpx.BaseTransport] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"user-agent": "flowlab-client-python"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.retry = retry
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = None,
        content: Optional[bytes] = None,
        content_type: Optional[str] = None,
        timeout: Union[httpx.Timeout, float, None] = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """Sends the request, retrying as the module says; answers a response whose status
        is in ``ok`` or raises :class:`ApiError` / :class:`TransportError`."""
        headers = {"x-request-id": new_request_id()}
        if content_type is not None:
            headers["content-type"] = content_type
        query = {k: v for k, v in (params or {}).items() if v is not None}
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = timeout
        retry = 0
        while True:
            try:
                response = self._client.request(
                    method,
                    path,
                    params=query,
                    json=json,
                    content=content,
                    headers=headers,
                    **extra,
                )
            except httpx.TransportError as e:
                if retry < self.retry.max_retries and (idempotent or isinstance(e, _NOT_SENT)):
                    self._sleep(self.retry.pause(retry))
                    retry += 1
                    continue
                raise TransportError(
                    f"{method} {path} failed after {retry + 1} attempt(s): {e!r}"
                ) from e
            if response.status_code in ok:
                return response
            if (
                response.status_code in RETRY_STATUSES
                and idempotent
                and retry < self.retry.max_retries
            ):
                self._sleep(self.retry.pause(retry, _retry_after(response)))
                retry += 1
                continue
            raise api_error(response)
