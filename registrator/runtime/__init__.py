"""The running parts: the reconcile path, the loops that feed it, retries and the observer seam."""
