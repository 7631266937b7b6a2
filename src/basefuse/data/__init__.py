"""Tasks: built-in offline datasets, user files and Hugging Face datasets behind one interface."""
