"""From page to proof: one trace as a timeline, evidence bundles, content receipts, changes around a time.

- `receipts`: keyed hashes of raw content (pipeline stages) and the evidence key.
- `timeline`: one trace read from the store (calls, tool calls, detections, PII counts, changes, totals).
- `render`: the timeline as terminal tables and as Markdown.
- `bundle`: the deterministic evidence bundle (JSON, Markdown, manifest).
- `verify`: does a text match a stored hash of a trace's call?
- `changes`: what changed for a feature around a time.
"""
