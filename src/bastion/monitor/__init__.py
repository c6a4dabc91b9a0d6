"""Online and batch detectors: drift, input anomalies, extraction patterns; alert rules."""
