"""The one exception hierarchy of kbench.

Everything below the CLI raises one of these; only :mod:`bench.cli.main` turns them into a message on
stderr and an exit code (2 for anything the user can fix, never a traceback)::

    KbenchError                      base class; ``exit_code`` = 2
    ├── ConfigError                  bad user input (CLI values, environment)
    │   └── ScenarioError            a scenario file is unusable: file, line, key path, expectation
    ├── BrokerError                  an embedded or external broker cannot be used
    │   ├── JavaError                Java missing or too old
    │   ├── PortInUseError           a port the broker needs is taken
    │   ├── ArtifactError            a jar/binary could not be fetched (names the artifact)
    │   ├── BrokerStartError         the broker process exited or hung during start-up (log tail)
    │   ├── BrokerUnreachableError   a bootstrap address does not answer
    │   ├── AuthenticationError      TLS or SASL refused: certificate, mechanism, credentials (never the secret)
    │   └── TopicError               a topic operation failed: operation, topic, the broker's error
    ├── NetnsError                   a network-namespace topology cannot be made, used or removed (not root…)
    ├── ResultError                  a result document is missing, corrupt or of an unknown version
    └── RunAborted                   a run stopped early (Ctrl-C: 130, broker died or silent, --fail-fast: 1);
                                     partial results kept

A failed cell (a driver died, a worker never ready, a consumer never joined) is not an exception here: the
run marks it failed and goes on, and ``kbench run`` exits 1 at the end (docs/result-format.md#failed-cells).
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "AuthenticationError",
    "BrokerError",
    "BrokerStartError",
    "BrokerUnreachableError",
    "ConfigError",
    "JavaError",
    "KbenchError",
    "NetnsError",
    "PortInUseError",
    "ResultError",
    "RunAborted",
    "ScenarioError",
    "TopicError",
]


class KbenchError(Exception):
    """Base class: a failure kbench explains to the user without a traceback."""

    exit_code: int = 2


class ConfigError(KbenchError):
    """Bad user input: a command-line value, an environment variable, an option combination."""


class ScenarioError(ConfigError):
    """A scenario file is unusable.

    The message always names the file and, where known, the line and the dotted key path, and says
    what was expected, e.g. ``smoke.yaml:12: workload.rate: expected a positive number or 'max', got -5``.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.detail = message
        where = file or "<scenario>"
        if line is not None:
            where += f":{line}"
        prefix = f"{where}: {key}: " if key else f"{where}: "
        super().__init__(prefix + message)


class BrokerError(KbenchError):
    """A broker cannot be started, stopped or reached."""


class JavaError(BrokerError):
    """Java is missing or older than the broker needs."""


class PortInUseError(BrokerError):
    """A port the broker would listen on is already taken."""


class ArtifactError(BrokerError):
    """A jar or binary could not be fetched; the message names the artifact and the URL tried."""


class BrokerStartError(BrokerError):
    """The broker exited or did not become ready during start-up; carries the last log lines."""


class BrokerUnreachableError(BrokerError):
    """A bootstrap address did not answer a metadata request in time."""


class AuthenticationError(BrokerError):
    """The broker answered but the secured connection failed: TLS handshake or certificate check, an
    unsupported SASL mechanism, or refused credentials. The message says which; it never holds a secret."""


class TopicError(BrokerError):
    """A topic operation (create, delete, describe, watermarks, a wait) failed or timed out.

    ``code`` is the broker's (librdkafka's) error name, e.g. ``TOPIC_ALREADY_EXISTS``, or
    ``_TIMED_OUT`` for a deadline; ``retriable`` is the broker's hint that trying again may work.
    """

    def __init__(self, operation: str, topic: str | None, detail: str, *, code: str | None = None,
                 retriable: bool = False, what: str = "") -> None:
        self.operation, self.topic, self.detail = operation, topic, detail
        self.code, self.retriable = code, retriable
        subject = f"{operation} topic {topic}" if topic else operation
        super().__init__(f"could not {subject}{f' ({what})' if what else ''}: {detail}")


class NetnsError(KbenchError):
    """A namespace topology cannot be created, used or removed: not root, no iproute2, an ``ip`` command
    failed (the message carries the command and its stderr), or something was left after teardown."""


class ResultError(KbenchError):
    """A result document is missing, unreadable, or of a schema version this kbench cannot read."""


class RunAborted(KbenchError):
    """A run stopped before its end (Ctrl-C, broker died or stopped answering, a failed cell with
    ``--fail-fast``). Partial results were written.

    ``interrupted`` is True when the user stopped it (Ctrl-C, where KeyboardInterrupt was caught): exit
    130; any other early stop is a failed run, exit 1. The code comes from this flag, never from the text."""

    exit_code = 1

    def __init__(self, message: str, *, interrupted: bool = False) -> None:
        super().__init__(message)
        self.interrupted = interrupted
        self.exit_code = 130 if interrupted else 1
