"""The application shell: command line, settings, sub-commands, status server, metrics, logs."""
