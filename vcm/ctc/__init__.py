"""The CTC experiment: every (sequence, codec, rate point) encoded, decoded and evaluated; the report."""
