"""Artefacts on disk and condensed sets on the Hub.

``artifact`` (CondenseResult -> Artifact, the atomic local directory), ``views`` (the registry of
publishing views and the repo layout), ``card`` (README front matter and body), ``preview`` (image
grid), ``hub_http`` (HTTP failure classification, retries), ``push`` (one-commit publish), ``pull``
(read a condensation back).
"""
