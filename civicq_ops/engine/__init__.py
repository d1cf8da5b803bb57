"""The engine: checks to findings, thresholds, waivers, baselines, and the run itself."""
