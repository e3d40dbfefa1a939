"""Artefacts on disk and condensed sets on the Hub.

``artifact`` (CondenseResult -> Artifact, the record and reading it back), ``views`` (the registry of
publishing views and the repo layout), ``card`` (the README: front matter and body, from
``card_metadata``'s YAML entries and ``card_body``'s Markdown), ``preview`` (image grid),
``repo_files`` (the repo files of a condensation as bytes), ``save`` (the atomic local directory, through
``hf_lodc.atomic``), ``hub_http`` (HTTP failure classification, retries), ``push`` (one-commit publish),
``pull`` (read a condensation back), ``model_repo`` (networks trained on a set, as model repos),
``artifact_source`` (a saved set's source dataset found and checked again).
"""
