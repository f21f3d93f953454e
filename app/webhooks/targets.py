"""Where a webhook may send: only to hosts on the public internet. Checked when it is registered, and again at
every delivery on the address actually connected to, since a name may resolve elsewhere by then (DNS rebinding).

Addresses are judged by `ipaddress` after the system resolver has read the host, so every spelling it accepts
(`127.1`, `2130706433`, `0x7f.1`, `0177.0.0.1`, `[::ffff:127.0.0.1]`) is judged as the address it is.
"""

import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Literal, get_args
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import httpcore
import httpx
import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# What `last_error` of a delivery says, instead of the HTTP library's message (which maps the receiver's network
# for whoever reads the deliveries: a port scanner).
Failure = Literal["status", "blocked", "dns", "refused", "unreachable", "timed out", "tls", "protocol"]
FAILURES: tuple[str, ...] = get_args(Failure)
FAILURES_DOC = ("Why the last attempt failed, null once delivered: `status` (the receiver answered with "
                "`last_status`, not a 2xx), `blocked` (the URL has a user or password, or its host is, or now "
                "resolves to, an address off the public internet: never contacted), `dns` (the name does not "
                "resolve), `refused` (nothing listens at that port), `unreachable` (no route to the host), "
                "`timed out` (connecting or answering took too long), `tls` (no TLS session, or a certificate "
                "not valid for the name), `protocol` (the receiver's answer was not HTTP, or was cut off).")

# NAT64's well-known prefix (RFC 6052) carries an IPv4 address in its last 32 bits; what it reaches is that.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Special-purpose networks (IANA's registries) that are not global where Python's own tables lag: before 3.11.10
# and 3.12.4 (CVE-2024-4032) 192.0.0.0/24 counted as global; deprecated site-local fec0::/10 still does, and the
# newest (documentation 3fff::/20, SRv6 5f00::/16) are not listed yet.
NOT_GLOBAL = tuple(ipaddress.ip_network(n) for n in ("192.0.0.0/24", "64:ff9b:1::/48", "fec0::/10", "3fff::/20",
                                                      "5f00::/16"))


class Undeliverable(Exception):
    """A target refused before any connection is made; `kind` is its failure class."""

    def __init__(self, kind: Failure, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def allowed(ip: IPAddress, *, allow_private: bool) -> bool:
    """Whether a webhook may connect to `ip`: a global unicast address, or with `allow_private` any unicast one.

    >>> allowed(ipaddress.ip_address("8.8.8.8"), allow_private=False)
    True
    >>> [allowed(ipaddress.ip_address(a), allow_private=False) for a in ("::ffff:7f00:1", "64:ff9b::a00:1")]
    [False, False]
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None)
        if embedded is not None:
            return allowed(embedded, allow_private=allow_private)
        if ip.sixtofour is not None and not allowed(ip.sixtofour, allow_private=allow_private):
            return False
    # Python 3.11 counts ::1 within the reserved ::/8.
    if ip.is_multicast or ip.is_unspecified or (ip.is_reserved and not ip.is_loopback):
        return False
    return allow_private or (ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local)
                             and not any(ip in network for network in NOT_GLOBAL))


def normalise(url: str) -> tuple[str, httpx.URL]:
    """`url` with its host in ASCII (IDNA with UTS 46 mapping), and as httpx, which sends it, reads it.

    Raises ValueError saying what is wrong: not http(s), a user or password, no host.
    """
    try:
        split = urlsplit(url)
    except ValueError:
        raise ValueError("not a valid URL") from None
    if split.scheme.lower() not in ("http", "https"):
        raise ValueError("an http or https URL")
    # Either parser seeing a user is enough: where they disagree (`http://a\@b/`) is where filters are fooled.
    if "@" in split.netloc:
        raise ValueError("a URL without a user name or password")
    if not split.netloc.isascii():
        # Full-width letters, capitals and other scripts map to the one ASCII name that is resolved, so a
        # disguised `localhost` or `127.0.0.1` is seen as what it is. Not ASCII, so not an IPv6 literal.
        name, colon, port = split.netloc.partition(":")
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise ValueError("not a valid host name") from None
        url = urlunsplit(split._replace(netloc=name + colon + port))
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ValueError("not a valid URL") from None
    if parsed.userinfo:
        raise ValueError("a URL without a user name or password")
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise ValueError("an http or https URL with a host")
    return url, parsed


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(unquote(host))  # an IPv6 zone id is percent-encoded in a URL: fe80::1%25eth0
    except ValueError:
        return None


async def resolve(host: str, port: int, *, allow_private: bool, timeout_s: float | None) -> list[str]:
    """The addresses of `host`, each one allowed. Raises Undeliverable: `blocked` if any is not, `dns` if the name
    does not resolve within `timeout_s` seconds."""
    name = host.rstrip(".").lower()
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):  # loopback, whatever DNS says
        raise Undeliverable("blocked", f"{host} names this machine, not a host on the public internet")
    literal = _literal(host)
    if literal is not None:
        found = [literal]
    else:
        lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            with anyio.fail_after(timeout_s):
                infos = await anyio.to_thread.run_sync(lookup, abandon_on_cancel=True)
        except TimeoutError:
            raise Undeliverable("dns", f"{host} did not resolve within {timeout_s:g} s") from None
        except (OSError, UnicodeError):
            raise Undeliverable("dns", f"{host} does not resolve") from None
        found = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    refused = [ip for ip in found if not allowed(ip, allow_private=allow_private)]
    if refused or not found:
        shown = f"{host} is" if literal is not None else f"{host} resolves to {refused[0] if refused else 'nothing'},"
        raise Undeliverable("blocked", f"{shown} not an address on the public internet")
    return [str(ip) for ip in found]


async def check(url: str, *, allow_private: bool, timeout_s: float) -> str:
    """`url` as a webhook stores it (see `normalise`), once its host resolves, within `timeout_s` seconds, only to
    allowed addresses. Raises ValueError saying what is wrong."""
    url, parsed = normalise(url)
    try:
        await resolve(parsed.raw_host.decode("ascii"), parsed.port or (443 if parsed.scheme == "https" else 80),
                      allow_private=allow_private, timeout_s=timeout_s)
    except Undeliverable as exc:
        raise ValueError(str(exc)) from None
    return url


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network, opening only connections a webhook may: it resolves the host itself, checks every
    address and connects to one it checked, so no second lookup can lead elsewhere. httpcore then starts TLS on
    that stream with the URL's name, so SNI and the certificate check are the name's."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._network = httpcore.AnyIOBackend()

    # httpcore's signatures, `timeout` and all (ASYNC109).
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        addresses = await resolve(host, port, allow_private=self.allow_private, timeout_s=timeout)
        for i, address in enumerate(addresses):
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                return await self._network.connect_tcp(address, port, left, local_address, socket_options)
            except httpcore.ConnectError:
                if i == len(addresses) - 1:
                    raise
        raise AssertionError("resolve returns at least one address")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise Undeliverable("blocked", "webhooks connect only over TCP")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes a tenth of a second: once a process, shared by every client (a context is
    # safe to share).
    return httpx.create_ssl_context(trust_env=False)


class _Transport(httpx.AsyncHTTPTransport):
    def __init__(self, network: httpcore.AsyncNetworkBackend) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        # httpx takes no network backend, so its pool is made again as httpx makes it (its default limits), with
        # this one.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(), network_backend=network,
            max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry)


def client(*, allow_private: bool, timeout_s: float) -> httpx.AsyncClient:
    """The HTTP client deliveries go out on: checked connections, no redirects, no proxies or other settings
    from the environment."""
    return httpx.AsyncClient(transport=_Transport(GuardedBackend(allow_private=allow_private)), timeout=timeout_s,
                             follow_redirects=False, trust_env=False)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]
        if isinstance(e, BaseExceptionGroup):
            todo += list(e.exceptions)


def failure(exc: Exception) -> Failure:
    """The failure class (one of FAILURES) of an attempt that raised `exc`."""
    if isinstance(exc, Undeliverable):
        return exc.kind
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        causes = list(_causes(exc))
        if any(isinstance(c, ssl.SSLError) for c in causes):
            return "tls"
        if any(isinstance(c, ConnectionRefusedError) for c in causes):
            return "refused"
        return "unreachable"
    return "protocol"
