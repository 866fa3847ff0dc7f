"""Gymnasium environments on MuJoCo for the geometric manipulation benchmark.

This package will hold a thin MuJoCo base environment and one task per module: rigid sliding, pushing,
insertion with one and two grippers, rope closing and shaping, and cloth hanging. Each environment exposes
its scene as a heterogeneous graph (object, rope or cloth nodes, gripper nodes, typed edges) inside a
``gymnasium.spaces.Dict`` observation and reports a success measure. No environment is registered yet:
the rigid and deformable task issues build them. ``envs`` never imports ``motion``.
"""
