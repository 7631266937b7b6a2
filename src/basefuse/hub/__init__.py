"""Publishing outputs on the Hugging Face Hub: model cards and uploads."""
