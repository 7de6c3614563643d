"""Registrator's own exceptions; lower-level errors are wrapped with `raise ... from`.

    RegistratorError
    ├── ConfigError               bad option or value; the CLI prints one line and exits 2
    └── BackendError              a peer did not do what was asked
        ├── DockerError
        │   └── DockerUnavailable         the engine does not answer (transient)
        └── RegistryError
            ├── RegistryUnavailable       the registry does not answer, or answers 5xx (transient)
            ├── RegistryDenied            403: the ACL token lacks a permission (not transient)
            └── RegistryRefused           400: the registry refuses this value (permanent)

Adapters raise these and never exit the process; only the CLI decides about exiting.
"""


class RegistratorError(Exception):
    """Base of every error registrator raises on purpose."""


class ConfigError(RegistratorError):
    """An option or setting has a value registrator cannot work with."""


class BackendError(RegistratorError):
    """Docker or a registry failed to do what was asked."""


class DockerError(BackendError):
    """The Docker engine refused or failed a request."""


class DockerUnavailable(DockerError):
    """The Docker engine cannot be reached; worth retrying."""


class RegistryError(BackendError):
    """The registry refused or failed a request."""


class RegistryUnavailable(RegistryError):
    """The registry cannot be reached or answered 5xx; worth retrying."""


class RegistryDenied(RegistryError):
    """The registry answered 403: the token is missing a permission. Retrying will not help.

    `hint` says what the registry's token needs, in the registry's own terms."""

    hint = "the registry's token lacks a permission (see README, ACL)"

    def __init__(self, detail: str, *, hint: str = "") -> None:
        super().__init__(detail)
        if hint:
            self.hint = hint


class RegistryRefused(RegistryError):
    """The registry refused what was sent (HTTP 400): the same write will never succeed."""
