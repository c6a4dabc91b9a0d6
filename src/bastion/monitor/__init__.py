"""Online and batch detectors: drift, input anomalies/adversarial inputs, extraction patterns; alert rules."""
