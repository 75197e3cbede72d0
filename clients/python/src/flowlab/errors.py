"""The exceptions of the client: one for answers of the API, one for a server out of reach."""

from __future__ import annotations

from typing import Any, Optional


class FlowlabError(Exception):
    """Base of every exception this package raises on purpose."""


class ApiError(FlowlabError):
    """The server answered with an error.

    ``status`` is the HTTP status, ``code`` the stable code of the protocol
    (``invalid_value``, ``not_found``, ``conflict``, ...), ``message`` the server's words
    for people, ``field`` the offending field when the server names one (``space.alphabet``,
    ``labels[3].reward``, ``row 4, column reward``), ``index`` the item of a label batch at
    fault, ``details`` the raw ``details`` object and ``request_id`` the id the server logged
    the request under.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: Optional[str] = None,
        index: Optional[int] = None,
        details: Any = None,
        request_id: Optional[str] = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.index = index
        self.details = details
        self.request_id = request_id
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.status} {self.code}: {self.message}"
        if self.field is not None:
            text += f" (field {self.field})"
        elif self.index is not None:
            text += f" (item {self.index})"
        if self.request_id is not None:
            text += f" [request {self.request_id}]"
        return text

    def __reduce__(self) -> Any:
        # Keyword-only arguments need help to survive pickling (multiprocessing, notebooks).
        return (_rebuild_api_error, (self.status, self.code, self.message, self.__dict__))


def _rebuild_api_error(status: int, code: str, message: str, state: dict[str, Any]) -> ApiError:
    error = ApiError(status, code, message)
    error.__dict__.update(state)
    return error


class TransportError(FlowlabError):
    """The server could not be reached, or the connection broke, after every retry allowed.

    The underlying ``httpx`` exception is the ``__cause__``. When it broke after the request
    was sent, the server may have acted on it: requests with an idempotency key (rounds,
    labels) can be sent again with the same key safely.
    """
