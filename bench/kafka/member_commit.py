"""Commit offsets over the raw protocol *as* a given group member of a given generation.

A client library stamps a commit with the generation it holds when the request goes out, so a check
cannot make it send a stale one on purpose: a member that rejoined first commits legitimately.
:func:`commit_as_member` sends the OffsetCommit itself (:mod:`bench.kafka.commit_codec`): FindCoordinator
on the bootstrap broker, then OffsetCommit to the coordinator, secured as the client config says (TLS,
SASL after the ApiVersions the caller already has), retrying while the coordinator moves or loads.
:func:`fetch_committed` reads a group's committed offsets and metadata bytes the same way (OffsetFetch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from bench.errors import BrokerUnreachableError
from bench.kafka.codec import ApiVersionsResult, ProtocolError
from bench.kafka.commit_codec import (
    FIND_COORDINATOR_KEY,
    FIND_COORDINATOR_VERSIONS,
    OFFSET_COMMIT_KEY,
    OFFSET_COMMIT_VERSIONS,
    OFFSET_FETCH_KEY,
    OFFSET_FETCH_VERSIONS,
    FetchedOffset,
    OffsetCommitResponse,
    OffsetFetchResponse,
    decode_find_coordinator,
    decode_offset_commit,
    decode_offset_fetch,
    encode_find_coordinator_request,
    encode_offset_commit_request,
    encode_offset_fetch_request,
    pick_version,
)
from bench.kafka.protocol import KafkaConnection, authenticate, parse_bootstrap
from bench.kafka.security import SecurityConfig

__all__ = ["MemberCommit", "commit_as_member", "fetch_committed"]

_Answer = TypeVar("_Answer")

#: the coordinator is moving or loading: ask again (COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR)
RETRIABLE = frozenset({14, 15, 16})


@dataclass(frozen=True)
class MemberCommit:
    """The coordinator's answer: ``errors[topic][partition]`` (0: committed)."""

    errors: Mapping[str, Mapping[int, int]]
    version: int
    coordinator: str
    attempts: int


def _open(addr: tuple[str, int], security: SecurityConfig, api: ApiVersionsResult, deadline: float) -> KafkaConnection:
    conn = KafkaConnection(addr, security, deadline)
    if security.sasl:
        try:
            authenticate(conn, api)
        except BaseException:
            conn.close()
            raise
    return conn


def _coordinator(bootstrap: str, group: str, security: SecurityConfig, api: ApiVersionsResult,
                 deadline: float) -> tuple[str, int] | int:
    """The coordinator's address, or a retriable error code."""
    version = pick_version(api, FIND_COORDINATOR_KEY, FIND_COORDINATOR_VERSIONS)
    with _open(parse_bootstrap(bootstrap), security, api, deadline) as conn:
        corr = conn.next_correlation_id()
        resp = decode_find_coordinator(conn.request(encode_find_coordinator_request(group, version, corr)), corr)
    if resp.error_code in RETRIABLE:
        return resp.error_code
    if resp.error_code:
        raise ProtocolError(f"FindCoordinator({group!r}): error code {resp.error_code} ({resp.error_message})")
    return resp.host, resp.port


def _ask_coordinator(bootstrap: str, group: str, security: SecurityConfig, api: ApiVersionsResult, timeout: float,
                     request: str, ask: Callable[[KafkaConnection], tuple[set[int], _Answer]]
                     ) -> tuple[_Answer, str, int]:
    """``ask`` ``group``'s coordinator (found anew each attempt) until its answer carries no retriable error
    code or ``timeout`` passes: (the answer, the coordinator's host:port, attempts). ``ask`` sends
    ``request`` on the connection and returns (the answer's error codes, the answer)."""
    deadline = time.monotonic() + timeout
    attempts, last = 0, "no attempt"
    while time.monotonic() < deadline:
        attempts += 1
        where = _coordinator(bootstrap, group, security, api, deadline)
        if isinstance(where, int):
            last = f"FindCoordinator error {where}"
            time.sleep(0.2)
            continue
        with _open(where, security, api, deadline) as conn:
            codes, answer = ask(conn)
        if codes & RETRIABLE:
            last = f"{request} errors {sorted(codes)} from {where[0]}:{where[1]}"
            time.sleep(0.2)
            continue
        return answer, f"{where[0]}:{where[1]}", attempts
    raise BrokerUnreachableError(f"{bootstrap}: no {request} answer for group {group!r} within {timeout:g} s "
                                 f"({attempts} attempts; last: {last})")


def commit_as_member(bootstrap: str, group: str, generation_id: int, member_id: str,
                     offsets: Mapping[str, Mapping[int, int]], *, api: ApiVersionsResult,
                     security: SecurityConfig | Mapping[str, object] | None = None,
                     timeout: float = 10.0) -> MemberCommit:
    """OffsetCommit ``offsets`` (``{topic: {partition: offset}}``) for ``group`` as ``member_id`` of
    ``generation_id``; ``api``: the broker's ApiVersions (picks the versions). Raises
    BrokerUnreachableError or ProtocolError when no answer came within ``timeout``."""
    sec = security if isinstance(security, SecurityConfig) else SecurityConfig.from_client_config(security)
    version = pick_version(api, OFFSET_COMMIT_KEY, OFFSET_COMMIT_VERSIONS)

    def ask(conn: KafkaConnection) -> tuple[set[int], OffsetCommitResponse]:
        corr = conn.next_correlation_id()
        frame = encode_offset_commit_request(group, generation_id, member_id, offsets, version, corr)
        resp = decode_offset_commit(conn.request(frame), version, corr)
        return {c for parts in resp.errors.values() for c in parts.values()}, resp

    resp, where, attempts = _ask_coordinator(bootstrap, group, sec, api, timeout, "OffsetCommit", ask)
    return MemberCommit(resp.errors, version, where, attempts)


def fetch_committed(bootstrap: str, group: str, topic: str, partitions: list[int], *, api: ApiVersionsResult,
                    security: SecurityConfig | Mapping[str, object] | None = None,
                    timeout: float = 10.0) -> dict[int, FetchedOffset]:
    """OffsetFetch of ``group``'s committed offsets of ``topic``'s ``partitions`` from its coordinator: per
    partition the offset (-1: none) and the metadata's bytes as the broker returned them. Raises
    BrokerUnreachableError or ProtocolError when no answer came within ``timeout``."""
    sec = security if isinstance(security, SecurityConfig) else SecurityConfig.from_client_config(security)
    version = pick_version(api, OFFSET_FETCH_KEY, OFFSET_FETCH_VERSIONS)

    def ask(conn: KafkaConnection) -> tuple[set[int], OffsetFetchResponse]:
        corr = conn.next_correlation_id()
        resp = decode_offset_fetch(conn.request(encode_offset_fetch_request(group, {topic: partitions}, version,
                                                                            corr)), version, corr)
        return {resp.error_code} | {f.error_code for f in resp.partitions.get(topic, {}).values()}, resp

    resp, _where, _attempts = _ask_coordinator(bootstrap, group, sec, api, timeout, "OffsetFetch", ask)
    if resp.error_code:
        raise ProtocolError(f"OffsetFetch({group!r}): error code {resp.error_code}")
    return dict(resp.partitions.get(topic, {}))
