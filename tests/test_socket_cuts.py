"""C18's connection cutter (conformance/socket_cuts.py): /proc/net/tcp(6) rows to a driver's sockets.

Pure logic only: the rows are fixture text (tests/fixtures/proc_net/), nothing is destroyed."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.socket_cuts import (
    ESTABLISHED,
    TcpSocket,
    connections_of,
    local_ports,
    parse_proc_net_tcp,
    pending_at_cuts,
)

FIXTURES = Path(__file__).parent / "fixtures" / "proc_net"
# fixtures/proc_net/tcp: /proc/net/tcp of a host with a broker on 127.0.0.1:9092 (0x2384): a listener,
# two connections of the driver (inodes 5001, 5002: local ports 0xA1B2 = 41394, 0xA1B3 = 41395), one of
# the harness (5003), the broker's side of a driver connection (remote port 41394, inode 6001), a
# TIME_WAIT row (inode 0) and a driver connection in FIN_WAIT1 (state 04, inode 5004)
TCP = (FIXTURES / "tcp").read_text(encoding="ascii")

# fixtures/proc_net/tcp6: /proc/net/tcp6 of a Java driver (dual-stack sockets): a v4-mapped connection to
# 127.0.0.1:9092 (inode 7001, local port 0xD431 = 54321) and one to [::1]:9092 (inode 7002, local port 0xD432 = 54322)
TCP6 = (FIXTURES / "tcp6").read_text(encoding="ascii")


def test_rows_parse_to_addresses_ports_state_inode() -> None:
    rows = parse_proc_net_tcp(TCP)
    assert len(rows) == 7                      # the header is skipped
    assert rows[0] == TcpSocket("127.0.0.1", 9092, "0.0.0.0", 0, 0x0A, 4000)
    assert rows[1] == TcpSocket("127.0.0.1", 41394, "127.0.0.1", 9092, ESTABLISHED, 5001)
    assert rows[5].inode == 0 and rows[5].state == 0x06


def test_tcp6_rows_keep_the_v4_mapped_address() -> None:
    rows = parse_proc_net_tcp(TCP6)
    assert rows == [TcpSocket("::ffff:127.0.0.1", 54321, "::ffff:127.0.0.1", 9092, ESTABLISHED, 7001),
                    TcpSocket("::1", 54322, "::1", 9092, ESTABLISHED, 7002)]


def test_local_ports_only_of_the_given_inodes_established_to_the_broker() -> None:
    driver = {5001, 5002, 5004, 9999}          # 9999: a socket that is not TCP (a pipe's peer, UDP…)
    assert local_ports(TCP, driver, {9092}) == {5001: 41394, 5002: 41395}
    # the harness's connection and the broker's own side are never the driver's
    assert local_ports(TCP, {5003}, {9092}) == {5003: 45056}
    assert local_ports(TCP, {6001}, {9092}) == {}
    assert local_ports(TCP, driver, {9093}) == {}       # another port: not the broker's
    assert local_ports(TCP, set(), {9092}) == {}
    assert local_ports(TCP6, {7001, 7002}, {9092}) == {7001: 54321, 7002: 54322}


def test_an_inode_0_row_is_nobody_s() -> None:
    rows = parse_proc_net_tcp(TCP.replace(" 06 ", " 01 "))   # TIME_WAIT row made ESTABLISHED, inode still 0
    assert [s.inode for s in connections_of(rows, {0, 5001}, {9092})] == [5001]


@pytest.mark.parametrize("bad", ["", "garbage", "  sl  local_address rem_address st"])
def test_no_rows_in_text_without_socket_lines(bad: str) -> None:
    assert parse_proc_net_tcp(bad) == []


def test_records_pending_at_a_cut_were_due_and_not_yet_acked() -> None:
    t0, ms = 1_000_000_000, 1_000_000
    # 1,000 records/s: seq n due at t0 + n ms; (partition, offset, producer, seq, ack_ns)
    acks = [(0, 0, 0, 0, t0 + 2 * ms), (1, 0, 0, 1, t0 + 50 * ms), (0, 1, 0, 2, t0 + 50 * ms),
            (1, 1, 0, 3, t0 + 51 * ms)]
    cuts = [t0 + 1 * ms, t0 + 2 * ms + 500_000, t0 + 10 * ms, t0 + 60 * ms]
    # at 1 ms: seq 0 due, unacked (seq 1 due exactly then, and unacked); at 2.5 ms: seq 1, 2; at 10 ms:
    # seq 1, 2, 3; at 60 ms: everything acked
    assert pending_at_cuts(t0, acks, cuts, 1000.0) == [2, 2, 3, 0]
    assert pending_at_cuts(0, acks, cuts, 1000.0) == [0, 0, 0, 0]     # the producers never started
