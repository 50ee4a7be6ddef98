"""The engine: plans of mutations executed under the quota, write-ahead journaled.

Reading order for one mutation, from a job's ``plan()`` to the journal:

1. :mod:`~bulkops.engine.mutations`: what a planned write is (a ``Mutation``: its
   request, the ``before``/``after`` a read must show, its inverse);
2. :mod:`~bulkops.engine.plans`: the hashed 0600 file a job's mutations become;
3. :mod:`~bulkops.engine.runner`: ``run_plan`` replays the checkpoint into states,
   builds the schedule and starts the writer and the workers; each worker takes the
   next ready mutation (``worker``, ``run_one``);
4. :mod:`~bulkops.engine.schedule`: which mutation may start (dependencies first, one
   object at a time in plan order, failures cascading to dependents);
5. :mod:`~bulkops.engine.send`: ``Sender.process``, the write-ahead protocol: intent,
   re-read, intent durable, quota slot, send, outcome; a failed attempt's fate is
   :func:`bulkops.api.retry.decide`'s, an ambiguous one is settled by a read;
6. :mod:`~bulkops.engine.apply`: the one place a mutation becomes an HTTP request;
   :mod:`~bulkops.engine.ratelimit`: the quota slot taken right before it;
7. :mod:`~bulkops.engine.writer`: the single journal writer and its fsync thread;
   :mod:`~bulkops.engine.journal`: the framed, CRC-chained checkpoint file;
   :mod:`bulkops.files`: how the tool's files are created, replaced and fsynced;
8. :mod:`~bulkops.engine.states`: what each outcome makes of a mutation;
   :mod:`~bulkops.engine.reconcile`: replaying a checkpoint, and settling by a read
   what a crash or a lost response left open.

Beside them: :mod:`~bulkops.engine.reviews` (which writes will open a review, what
those reviews say, finding them again; the rule itself is :mod:`bulkops.api.reviews`),
:mod:`~bulkops.engine.stopping` (stop reasons, Ctrl-C),
:mod:`~bulkops.engine.progress` (log events, the progress observer),
:mod:`~bulkops.engine.failpoints` (crash points for the crash tests),
:mod:`~bulkops.engine.quota` (quota windows) and :mod:`~bulkops.engine.locks` (one run
per checkpoint and per project). The engine imports no job.
"""

__all__: list[str] = []
