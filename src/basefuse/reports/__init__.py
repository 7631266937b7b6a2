"""The experiment report: read results.jsonl, compute paired gains with CIs, render Markdown/HTML/PNG."""
