"""localcloud: run template.yaml locally on moto, with the Lambda behaviours moto lacks emulated.

A developer tool; never deployed.
"""
