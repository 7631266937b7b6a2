"""Experiments: pretrained vs fused vs intertrained bases, finetuned on held-out targets."""
