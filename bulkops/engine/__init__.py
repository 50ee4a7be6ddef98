"""The engine: plans of mutations executed under the quota, write-ahead journaled.

Reading order for one mutation, from a job's ``plan()`` to the journal:
:mod:`~bulkops.engine.mutations` (what a planned write is),
:mod:`~bulkops.engine.plans` (the file a plan becomes),
:mod:`~bulkops.engine.runner` (workers, the send loop),
:mod:`~bulkops.engine.ratelimit` (the quota), :mod:`~bulkops.engine.journal` (the
checkpoint) and :mod:`~bulkops.engine.reconcile` (settling what a crash left open).
The engine imports no job.
"""
