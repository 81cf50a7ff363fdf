"""Checkpoints of ``ModelCheckpoint``: what Orbax's public API lacks, on top of it.

Private: ``ModelCheckpoint`` (``callbacks/model_checkpoint.py``) and
``restore_checkpoint`` / ``restore_run`` (``callbacks/_checkpoint_restore.py``) are built
on these modules, which import nothing of ``callbacks/`` at run time (they take plain
arguments), so dependencies between the two packages point one way.

* ``_format``: the format line, item names, Orbax handlers and save arguments;
* ``_integrity``: the checksums item, written in the save and verified on restore;
* ``_pytree``: the conversions between ``nnx.State`` and what Orbax saves and restores;
* ``_directory``, ``_runs``, ``_lock``: the marker, run ownership and the lock;
* ``_step_dirs``: which step directories are checkpoints;
* ``_retention`` and ``_manager``: the Orbax manager and its preservation policy;
* ``_agreement``: the processes' agreement on each save;
* ``_save_failure``: a failed save as an ``OSError``, and the asynchronous save in flight;
* ``_restore`` and ``_read_errors``: reading a checkpoint back, and what a failed read says.
"""
