"""Checkpoints of ``ModelCheckpoint``: what Orbax's public API lacks, on top of it.

Private: ``ModelCheckpoint`` and ``restore_checkpoint`` (``callbacks/``) are built on
these modules, which import nothing of ``callbacks/`` at run time.

* ``_format``: the format line, item names, Orbax handlers and save arguments;
* ``_integrity``: the checksums item and sealed records, written in a save, verified on restore;
* ``_identity``: which checkpoint a step directory holds, and which run the directory holds;
* ``_pytree``: the conversions between ``nnx.State`` and what Orbax saves and restores;
* ``_directory``, ``_runs``, ``_lock``: the marker, run ownership and the lock;
* ``_step_dirs``: which step directories are checkpoints, and which are a user's;
* ``_paths``: which paths are refused (not read back, not writable, hitting our files);
* ``_retention``: the preservation policy;
* ``_manager``: the writing manager, the processes' agreement on each save, failed saves;
* ``_restore``: reading a checkpoint back, and what a failed read says;
* ``_listing``: a directory's checkpoints from their ``meta`` alone, and the best one.
"""
