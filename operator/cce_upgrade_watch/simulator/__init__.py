"""A simulator of the CCE Autopilot upgrade-workflow API, served over real HTTP."""
