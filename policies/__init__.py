"""Graph policies for the manipulation benchmark, trained with Stable-Baselines3 PPO.

This package will hold the heterogeneous SE(3)-equivariant graph policy (HEPi) and its baselines
(homogeneous equivariant EMPN, a Transformer over node tokens, an MLP on the flat observation), all plugged
into SB3 through its extension points. The networks are built from the shared layers of ``kernels``.
Nothing is implemented here yet: the policy issue builds it.
"""
