"""What went wrong when something was fetched from or sent to the network, in the user's words.

    except Exception as e:
        raise GanError(f"cannot download zoo:{name}: {network_problem(e)}") from None

Every network path (the zoo, hf: names and `gan.hub push`, the VGG19 and Inception weights, the public datasets,
Weights & Biases) names the cause the same way, one of:

    no network       the host cannot be reached: no DNS answer, connection refused or reset, timed out, offline
                     mode (HF_HUB_OFFLINE), a proxy or firewall in the way
    credentials      the server refused who we are: HTTP 401 or 403, a missing or wrong token
    not found        the server has no such thing: HTTP 404, an unknown repository, revision or file
    server           any other answer of the server: HTTP 5xx, 429, ...

`problem(e)` gives (cause, detail); `network_problem(e)` the sentence. Standard library only.
"""

from __future__ import annotations

import errno
import socket

NO_NETWORK, CREDENTIALS, NOT_FOUND, SERVER = "no network", "credentials", "not found", "server"

_ADVICE = {
    NO_NETWORK: "no network: the server cannot be reached from here (offline, DNS, a proxy or firewall)",
    CREDENTIALS: "credentials refused",
    NOT_FOUND: "not found",
    SERVER: "the server answered with an error",
}


def _status(e: BaseException) -> int | None:
    """The HTTP status an exception carries (urllib's HTTPError, requests/httpx/huggingface_hub responses)."""
    for attr in ("code", "status", "status_code"):
        value = getattr(e, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(e, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def _chain(e: BaseException):
    """e, its reason (urllib.error.URLError), its cause and context, and theirs."""
    seen, todo = set(), [e]
    while todo:
        x = todo.pop(0)
        if x is None or id(x) in seen or not isinstance(x, BaseException):
            continue
        seen.add(id(x))
        yield x
        todo += [getattr(x, "reason", None), x.__cause__, x.__context__]


def problem(e: BaseException) -> tuple[str, str]:
    """(cause, detail) of a network failure: cause is NO_NETWORK, CREDENTIALS, NOT_FOUND or SERVER."""
    detail = str(e).splitlines()[0] if str(e) else type(e).__name__
    for x in _chain(e):
        status = _status(x)
        if status in (401, 403):
            return CREDENTIALS, f"HTTP {status}"
        if status == 404:
            return NOT_FOUND, "HTTP 404"
        if status is not None and status >= 400:
            return SERVER, f"HTTP {status}"
        name = type(x).__name__
        if name in ("RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError", "GatedRepoError"):
            return (CREDENTIALS if name == "GatedRepoError" else NOT_FOUND), detail
        if name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
            return NO_NETWORK, detail
        if isinstance(x, (socket.gaierror, socket.timeout, TimeoutError, ConnectionError)):
            return NO_NETWORK, str(x) or name
        if isinstance(x, OSError) and x.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED,
                                                  errno.ECONNRESET, errno.ETIMEDOUT):
            return NO_NETWORK, str(x)
        if name in ("ConnectError", "ConnectTimeout", "ConnectionError", "ReadTimeout", "ProxyError",
                    "NameResolutionError", "MaxRetryError", "NewConnectionError"):
            return NO_NETWORK, str(x).splitlines()[0] if str(x) else name
    return SERVER, detail


def network_problem(e: BaseException, credentials_hint: str = "") -> str:
    """One sentence: the cause (and, for refused credentials, `credentials_hint`), then the detail."""
    cause, detail = problem(e)
    hint = f"; {credentials_hint}" if cause == CREDENTIALS and credentials_hint else ""
    return f"{_ADVICE[cause]}{hint} ({detail})"
