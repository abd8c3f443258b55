"""docker-compose.yml is for users with Docker (none here): check it parses, images pinned, ports distinct."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def _services() -> dict[str, dict]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc["services"]


def test_expected_brokers_present() -> None:
    assert {"kafka", "redpanda", "tansu"} <= set(_services())


def test_images_pinned() -> None:
    for name, svc in _services().items():
        image = svc["image"]
        assert "@sha256:" in image or re.search(r":v?\d+\.\d+\.\d+$", image), f"{name}: {image} is not pinned"
        assert not image.endswith(":latest")


def test_host_ports_distinct_and_loopback() -> None:
    seen: dict[str, str] = {}
    for name, svc in _services().items():
        for mapping in svc.get("ports", []):
            host_ip, host_port, _container = str(mapping).split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip}"
            assert host_port not in seen, f"{name} and {seen.get(host_port)} both use {host_port}"
            seen[host_port] = name
    assert len(seen) >= 3
