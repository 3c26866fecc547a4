"""Insight inside the trainers people use: one callback each, importing its trainer only when imported.

    tb_plugin_insight.integrations.lightning.InsightCallback       PyTorch Lightning (`lightning` extra)
    tb_plugin_insight.integrations.transformers.InsightCallback    HuggingFace Trainer (`transformers` extra)

Both watch with manual steps (`watch(step="manual")`): the trainer's own hooks mark each training step with
the step number its scalars use, so it does not matter which forward the training step calls.
"""
