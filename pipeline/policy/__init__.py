"""Policy: scores in, decision out. Pure code."""

from pipeline.policy.threshold import DEFAULT_POLICY, Decision, Rule, ThresholdPolicy

__all__ = ["DEFAULT_POLICY", "Decision", "Rule", "ThresholdPolicy"]
