"""Registrator's own exceptions; lower-level errors are wrapped with `raise ... from`.

    RegistratorError
    ├── ConfigError            bad option or value; the CLI prints one line and exits 2
    └── BackendError           a peer did not do what was asked
        ├── DockerError
        │   └── DockerUnavailable      the engine does not answer (transient)
        └── ConsulError
            ├── ConsulUnavailable      the agent does not answer or answers 5xx (transient)
            └── ConsulPermissionDenied 403: the ACL token lacks a permission (not transient)

Adapters raise these and never exit the process; only the CLI decides about exiting.
"""


class RegistratorError(Exception):
    """Base of every error registrator raises on purpose."""


class ConfigError(RegistratorError):
    """An option or setting has a value registrator cannot work with."""


class BackendError(RegistratorError):
    """Docker or Consul failed to do what was asked."""


class DockerError(BackendError):
    """The Docker engine refused or failed a request."""


class DockerUnavailable(DockerError):
    """The Docker engine cannot be reached; worth retrying."""


class ConsulError(BackendError):
    """The Consul agent refused or failed a request."""


class ConsulUnavailable(ConsulError):
    """The Consul agent cannot be reached or answered 5xx; worth retrying."""


class ConsulPermissionDenied(ConsulError):
    """Consul answered 403: the token is missing a permission. Retrying will not help."""
