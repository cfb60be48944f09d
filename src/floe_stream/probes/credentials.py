"""A probe credential and the targets the operator bound it to (``checks.probe_user`` / ``probe_password`` /
``probe_credential_hosts`` / ``probe_tls_ca_file``).

A credential goes only to a host the operator named, over TLS whose certificate is verified against that
name: a contract can point its ``servers`` anywhere, but it cannot make floe log in there.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr


@dataclass(frozen=True, slots=True)
class ProbeCredentials:
    user: str | None = None
    password: SecretStr | None = None
    hosts: frozenset[tuple[str, int | None]] = frozenset()
    """(host name lower-cased, port or None for any port) the password may be sent to"""
    ca_file: Path | None = None
    _tls: list[ssl.SSLContext] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def from_settings(
        cls, user: str | None, password: SecretStr | None, hosts: list[str], ca_file: Path | None = None
    ) -> ProbeCredentials:
        bound: set[tuple[str, int | None]] = set()
        for entry in hosts:
            host, sep, port = entry.strip().rpartition(":")
            if sep and port.isdigit() and host and not host.endswith(":"):
                bound.add((host.strip("[]").lower(), int(port)))
            else:
                bound.add((entry.strip().strip("[]").lower(), None))
        return cls(user, password, frozenset(bound), ca_file)

    def for_target(self, host: str, port: int) -> tuple[str, str, ssl.SSLContext] | None:
        """(user, password, verifying TLS context) when a password is bound to ``host:port``, else None."""
        if self.password is None or not self.user:
            return None
        name = host.strip("[]").lower()
        if (name, port) not in self.hosts and (name, None) not in self.hosts:
            return None
        if not self._tls:
            self._tls.append(ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None))
        return self.user, self.password.get_secret_value(), self._tls[0]
