"""Red-team attacks, torch-native: evasion/, inference/, extraction/, poisoning/."""
