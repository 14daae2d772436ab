"""The recipes: each trains a network that the library ships, with its data, its network and its model
card (``data_scripts/train_reference_models.py`` runs them and writes ``pcfilter_lib/weights/``), or,
for ``finetune`` and ``unet_finetune``, trains a shipped filter further on a user's own labelled scans
for ``pcfilter finetune``, which writes the result with its card. ``common`` holds what they share.

A chapter's comparisons and studies, which train as these recipes do and load what they shipped, are
in ``experiments``; the run-time steps ``pcfilter`` calls are in ``filters`` and ``pipelines``."""
