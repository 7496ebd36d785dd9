"""Banerjee, Saha & Gopalan: acting on reward uncertainty.

Every reward source returns ``hr.RewardEstimate(mean, var)`` and every consumer takes
one: ``ensemble`` (K-head Bradley–Terry ensembles), ``interval_rewards`` (a judge's
[lo, hi] as a uniform reward), ``calibration`` (coverage, reliability, ECE of any
source), ``selection`` (best-of-N and pessimistic best-of-N), ``policy`` (closed-form
vanilla and variance-aware updates and their risks) and ``hetrlhf.alignment.ppo`` (variance-aware
PPO).
"""
