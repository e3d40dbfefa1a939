"""Artefacts on disk and condensed sets on the Hub (see ``artifact``, ``to_hub``, ``card``, ``preview``)."""
