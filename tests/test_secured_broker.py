"""Secured embedded Kafka (``kbench broker up kafka --security MODE``, bench/brokers/security.py): the key
material and its permissions, what each mode lets in and keeps out, and the S checks on each mode.

One broker per mode (about 10 s each); every test is bounded and the brokers are stopped after the module.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from bench.brokers.security import MODES, client_properties_path, load_properties, plan_security
from bench.errors import AuthenticationError, ConfigError
from bench.kafka.protocol import api_versions

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
REPO = Path(__file__).resolve().parent.parent


# -------------------------------------------------------------------------------------- no broker
def test_plan_writes_private_material_and_keeps_secrets_out_of_the_configs(tmp_path: Path) -> None:
    for mode in MODES:
        plan = plan_security(mode, tmp_path / mode, ["127.0.0.1"])
        sec = tmp_path / mode / "security"
        assert stat.S_IMODE(sec.stat().st_mode) == 0o700
        for f in sec.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        client = load_properties(plan.client_properties)
        secrets = [v for k, v in client.items() if k == "sasl.password"]
        secrets += [line.split('password="')[1].split('"')[0]
                    for line in (sec / "secrets.properties").read_text().splitlines() if 'password="' in line]
        key_lines = (sec / "client.key").read_text().splitlines()[1:3]
        text = "\n".join(f"{k}={v}" for k, v in plan.configs.items())
        for s in [*secrets, *key_lines]:
            assert s not in text, f"{mode}: a secret in the server properties"
        assert plan.configs["allow.everyone.if.no.acl.found"] == "false"
        assert plan.configs["authorizer.class.name"].endswith("StandardAuthorizer")
        if mode.startswith("sasl-"):
            assert client["security.protocol"] == "SASL_SSL" and len(secrets) >= 2
        else:
            assert client["security.protocol"] == "SSL" and "ssl.certificate.location" in client
        assert bool(plan.format_args) == (mode == "sasl-scram")


def test_bad_mode_and_bad_properties_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected one of sasl-plain"):
        plan_security("kerberos", tmp_path, [])
    bad = tmp_path / "bad.properties"
    bad.write_text("security.protocol=SASL_SSL\nsasl.password hunter2-secret\n")
    with pytest.raises(ConfigError, match=r"bad.properties:2: expected key=value") as info:
        load_properties(bad)
    assert "hunter2" not in str(info.value)


def test_security_flag_is_for_kafka_only() -> None:
    from bench.cli.main import main

    assert main(["broker", "up", "tansu", "--security", "tls", "--port", "0"]) == 2


# ------------------------------------------------------------------------------------ brokers
@pytest.fixture(scope="module")
def brokers(_kbench_home: Path) -> Iterator[dict[str, tuple[str, dict[str, str]]]]:
    """mode -> (bootstrap, kbench's client properties); sasl-scram through the CLI, the rest in-process."""
    from bench.brokers import get_broker, start_broker

    started = []
    out: dict[str, tuple[str, dict[str, str]]] = {}
    try:
        name = f"sec-scram-{os.getpid()}"
        cli = subprocess.run([sys.executable, "-m", "bench.cli", "broker", "up", "kafka", "--security", "sasl-scram",
                              "--port", "0", "--name", name, "--timeout", "90"], capture_output=True, text=True,
                             timeout=150, check=False, cwd=REPO, env=dict(os.environ))
        assert cli.returncode == 0, cli.stderr[-2000:]
        handle = get_broker(name)
        assert handle is not None
        started.append(handle)
        path = client_properties_path(handle.state.base_dir)
        assert f"client properties: {path}" in cli.stdout
        out["sasl-scram"] = (handle.bootstrap, load_properties(path))
        for mode in ("sasl-plain", "tls", "mtls"):
            h = start_broker("kafka", port=0, name=f"sec-{mode}-{os.getpid()}", options={"security": mode})
            started.append(h)
            out[mode] = (h.bootstrap, load_properties(client_properties_path(h.state.base_dir)))
        yield out
    finally:
        for h in started:
            h.stop()


def _roundtrip(bootstrap: str, conf: dict[str, str], topic: str) -> bytes | None:
    p = Producer({"bootstrap.servers": bootstrap, **conf, "message.timeout.ms": 20000})
    p.produce(topic, b"secured")
    assert p.flush(25) == 0
    c = Consumer({"bootstrap.servers": bootstrap, **conf, "group.id": topic, "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        for _ in range(100):
            m = c.poll(0.3)
            if m is not None and not m.error():
                return m.value()
    finally:
        c.close()
    return None


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_kbench_super_user_produces_consumes_and_probes(brokers: dict[str, tuple[str, dict[str, str]]],
                                                       mode: str) -> None:
    bootstrap, conf = brokers[mode]
    res = api_versions(bootstrap, timeout=10, security=conf)
    assert res.tls_version in ("TLSv1.2", "TLSv1.3")
    if mode.startswith("sasl-"):
        assert res.sasl is not None
        assert set(res.sasl.enabled_mechanisms) == ({"PLAIN"} if mode == "sasl-plain"
                                                    else {"SCRAM-SHA-256", "SCRAM-SHA-512"})
    assert _roundtrip(bootstrap, conf, f"sec-{mode}") == b"secured"


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_no_way_in_without_the_credentials(brokers: dict[str, tuple[str, dict[str, str]]], mode: str) -> None:
    bootstrap, conf = brokers[mode]
    with pytest.raises(AuthenticationError, match="certificate check failed"):  # a CA that did not sign it
        api_versions(bootstrap, timeout=5, security={**conf, "ssl.ca.location": _other_ca(conf)})
    with pytest.raises(AuthenticationError, match="Hostname mismatch"):  # 127.1 is 127.0.0.1, not a name it has
        api_versions("127.1:" + bootstrap.rsplit(":", 1)[1], timeout=5, security=conf)
    if mode.startswith("sasl-"):
        wrong = {**conf, "sasl.password": "not-" + conf["sasl.password"]}
        with pytest.raises(AuthenticationError, match="SASL_AUTHENTICATION_FAILED") as info:
            api_versions(bootstrap, timeout=10, security=wrong)
        assert conf["sasl.password"] not in str(info.value)
    nocert = {k: v for k, v in conf.items() if k not in ("ssl.certificate.location", "ssl.key.location",
                                                         "sasl.username", "sasl.password", "sasl.mechanism")}
    nocert["security.protocol"] = "SSL"
    admin = AdminClient({"bootstrap.servers": bootstrap, **nocert, "log_level": 0})
    if mode == "tls":  # anonymous TLS is let in, and sees no topic
        md = admin.list_topics(timeout=10)
        assert "sec-tls" not in md.topics or md.topics["sec-tls"].error is not None
    else:
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=6)


def _other_ca(conf: dict[str, str]) -> str:
    """A CA file that did not sign the broker's certificate: kbench's client certificate itself."""
    return str(Path(conf["ssl.ca.location"]).parent / "client.pem")


@pytest.mark.integration
@pytest.mark.parametrize(("mode", "want"), [("sasl-scram", {"PASS": 8}), ("tls", {"PASS": 1, "N/A": 7})])
def test_security_checks_on_each_mode(brokers: dict[str, tuple[str, dict[str, str]]], tmp_path: Path, mode: str,
                                      want: dict[str, int]) -> None:
    import json

    bootstrap, conf = brokers[mode]
    path = tmp_path / "client.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in conf.items()))
    report = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "conformance", "--bootstrap", bootstrap,
                           "--client-config-file", str(path), "-k", "test_security", "--report-dir", str(report)],
                          capture_output=True, text=True, timeout=400, check=False, cwd=REPO, env=dict(os.environ))
    counts = json.loads((report / "report.json").read_text())["counts"]
    assert {k: v for k, v in counts.items() if v} == want, proc.stdout[-3000:]
