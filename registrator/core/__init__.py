"""The pure core: what a container should have registered, and the plan that gets it there.

Standard library only: no Docker, no HTTP, no logging. Adapters translate Docker's and the
registries' JSON into `model` values at their edge; the runtime feeds those values through
`derive` and `plan` and executes the actions the plan returns.
"""
