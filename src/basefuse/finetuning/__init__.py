"""Finetune a base model on a task and evaluate it, with the seed paper's protocol as defaults."""
