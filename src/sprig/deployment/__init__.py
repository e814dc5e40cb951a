"""Deployments: validate everything first, persist, apply in dependency order, roll back."""
