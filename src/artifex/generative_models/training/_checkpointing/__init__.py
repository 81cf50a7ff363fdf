"""Checkpoints of ``ModelCheckpoint``: format, pytrees, directory, retention, restore.

Private: ``ModelCheckpoint`` (in ``callbacks/model_checkpoint.py``) is built on these
modules, importing each name from the module that owns it, and re-exports the public
names (``CHECKPOINT_FORMAT``, ``RestoredCheckpoint``, ``restore_checkpoint``); the
reference trainer's ``resume`` calls ``_resume.restore_run``.

* ``_format``: the marker file, item names, Orbax handlers and save arguments;
* ``_pytree``: the conversions between ``nnx.State`` and what Orbax saves and restores;
* ``_directory``: the marker and the directory's set-up across processes;
* ``_runs``: run ids, and which trainer or model continues a directory's run;
* ``_lock``: the directory's lock while a run writes it (pid and host, stale ones replaced);
* ``_retention``: which checkpoints Orbax keeps (the best ``save_top_k``, plus the last);
* ``_manager``: the Orbax manager that writes a directory, with that retention;
* ``_agreement``: the processes' agreement on each save;
* ``_save_failure``: a failed save as an ``OSError``, and the asynchronous save in flight;
* ``_restore`` and ``_resume``: reading a checkpoint back, and resuming a run from it.

The restore functions import the callback protocols and helpers of ``callbacks/``
(whose ``__init__`` is lazy, so importing them imports no ``ModelCheckpoint``).
"""
